/**
 * What a process has opened so far during start-up, closed in reverse order if
 * the start fails, so that a half-started server or agent never keeps a port, a
 * socket or a database open while it logs `fatal` (a supervisor must see it exit).
 *
 * @example
 * const opened = new Closers();
 * try {
 *   const store = opened.add(openStore(), (s) => s.close());
 *   await listen(server); opened.add(server, closeServer);
 * } catch (e) {
 *   await opened.closeAll();
 *   throw e;
 * }
 */
export class Closers {
  private readonly list: Array<() => unknown> = [];

  /** Registers `close(resource)` and returns the resource. */
  add<T>(resource: T, close: (r: T) => unknown): T {
    this.list.push(() => close(resource));
    return resource;
  }

  /** Closes everything registered, newest first; errors are ignored (the start already failed). */
  async closeAll(): Promise<void> {
    while (this.list.length > 0) {
      const close = this.list.pop()!;
      try {
        await close();
      } catch {
        // best effort: the original failure is what gets reported
      }
    }
  }
}
