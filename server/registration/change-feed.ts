/**
 * In-process wake-up for agents long-polling for entry or bundle changes. Writers
 * (admin API, CA manager) call `notify()` after committing; waiters re-read the
 * store. A single server process is assumed (a shared database across several
 * servers would need the store's own notification, e.g. PostgreSQL LISTEN).
 */
export class ChangeFeed {
  private waiters = new Set<() => void>();

  notify(): void {
    const ws = this.waiters;
    this.waiters = new Set();
    for (const w of ws) w();
  }

  /** Resolves on the next notify, after `timeoutMs`, or when `signal` aborts. */
  wait(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.waiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const t = setTimeout(done, timeoutMs);
      this.waiters.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  get waiting(): number {
    return this.waiters.size;
  }
}
