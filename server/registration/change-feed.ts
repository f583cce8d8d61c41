/**
 * In-process wake-up for agents long-polling for entry or bundle changes. Writers
 * (admin API, CA manager) call `notify()` after committing; waiters re-read the
 * store. With several servers on one database, the store's change subscription
 * (PostgreSQL LISTEN) calls `notify()` for what the other servers wrote.
 *
 * A waiter reads `version` before it checks the store and passes it to `wait`: a
 * notify that lands between the check and the wait (the check awaits the database)
 * then ends the wait at once instead of being missed.
 */
export class ChangeFeed {
  private waiters = new Set<() => void>();
  private notified = 0;

  /** Grows by one on every notify. */
  get version(): number {
    return this.notified;
  }

  notify(): void {
    this.notified++;
    const ws = this.waiters;
    this.waiters = new Set();
    for (const w of ws) w();
  }

  /**
   * Resolves on the next notify, after `timeoutMs`, or when `signal` aborts; at once
   * when a notify happened since `since` (a {@link version} read earlier).
   */
  wait(timeoutMs: number, signal?: AbortSignal, since?: number): Promise<void> {
    if (since !== undefined && since !== this.notified) return Promise.resolve();
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
