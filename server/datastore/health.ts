import type { Logger } from 'pino';

/**
 * Watches whether the datastore answers, for /ready: one cheap query a second
 * (PostgreSQL: SELECT 1 on the pool; SQLite: nothing to ask). The server answers
 * not-ready while the database is gone and ready again once it answers, without a
 * restart; each change is logged once.
 */
export class DatastoreHealth {
  private ok = true;
  private timer?: NodeJS.Timeout;
  private lastError?: string;
  private readonly listeners: Array<(reachable: boolean) => void> = [];

  constructor(
    private readonly ping: () => Promise<void>,
    private readonly log: Logger,
    private readonly intervalMs = 1000,
  ) {}

  start(): this {
    const tick = async () => {
      const was = this.ok;
      try {
        await this.ping();
        this.ok = true;
        this.lastError = undefined;
        if (!was) {
          this.log.info({ event: 'datastore_reconnected' }, 'datastore reachable again');
          this.emit(true);
        }
      } catch (err) {
        this.ok = false;
        this.lastError = (err as Error).message;
        if (was) {
          this.log.error({ event: 'datastore_unreachable', err: { message: (err as Error).message } }, 'datastore unreachable; the server is not ready until it answers');
          this.emit(false);
        }
      }
      if (this.timer) this.timer = setTimeout(tick, this.intervalMs).unref();
    };
    this.timer = setTimeout(tick, this.intervalMs).unref();
    return this;
  }

  /** fn(reachable) on every change (the server wakes held long polls when the database goes away) */
  onChange(fn: (reachable: boolean) => void): void {
    this.listeners.push(fn);
  }

  private emit(reachable: boolean): void {
    for (const fn of this.listeners) fn(reachable);
  }

  /** as of the last ping */
  reachable(): boolean {
    return this.ok;
  }

  status(): { reachable: boolean; error?: string } {
    return this.lastError ? { reachable: this.ok, error: this.lastError } : { reachable: this.ok };
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
