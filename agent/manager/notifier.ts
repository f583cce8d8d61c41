import type { Logger } from '../../common/log';

/**
 * Subscribers of the cache. Changes are folded into one notification per event
 * loop turn (setImmediate): a sync that adds 500 SVIDs, or renewals that land
 * together, wake each Workload API stream once, not 500 times.
 */
export class Notifier {
  private readonly listeners = new Set<() => void>();
  private pending = false;
  private closed = false;

  constructor(private readonly log: Logger) {}

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Schedules one notification for this turn of the event loop. */
  notify(): void {
    if (this.pending || this.closed) return;
    this.pending = true;
    setImmediate(() => {
      this.pending = false;
      if (this.closed) return;
      for (const l of [...this.listeners]) {
        try {
          l();
        } catch (e) {
          this.log.error({ error: (e as Error).message }, 'a cache subscriber threw');
        }
      }
    });
  }

  close(): void {
    this.closed = true;
  }
}
