/** Longest timer: deadlines are re-checked at least this often (clock jumps, suspend). */
export const MAX_TIMER_MS = 60_000;
/** Shortest timer: a deadline that cannot be acted on yet must not spin the event loop. */
export const MIN_TIMER_MS = 50;

/**
 * The manager's timers in one place, so `stop()` clears all of them: one wake-up
 * at the earliest deadline, a debounced callback, and sleeps that end on stop.
 * Timers are unref'd: they never keep a process alive on their own.
 */
export class Wakeups {
  private timer?: NodeJS.Timeout;
  private debounced?: NodeJS.Timeout;
  private readonly sleepers = new Set<() => void>();
  private stopped = false;

  constructor(private readonly onWake: () => void) {}

  /** Calls onWake at the earliest of `deadlines` (unix ms; undefined ones ignored), clamped to [MIN, MAX]. */
  at(deadlines: Array<number | undefined>, now: number): void {
    if (this.stopped) return;
    const due = deadlines.filter((d): d is number => d !== undefined);
    const next = due.length > 0 ? Math.min(...due) : now + MAX_TIMER_MS;
    const delay = Math.min(MAX_TIMER_MS, Math.max(MIN_TIMER_MS, next - now));
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.onWake();
    }, delay).unref();
  }

  /** Runs `fn` `ms` after the first of a burst of calls (later calls in the burst are folded in). */
  debounce(ms: number, fn: () => void): void {
    if (this.stopped || this.debounced) return;
    this.debounced = setTimeout(() => {
      this.debounced = undefined;
      fn();
    }, ms).unref();
  }

  /** Resolves after `ms`, or at once when stopped. */
  sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.sleepers.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.sleepers.add(done);
    });
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.debounced) clearTimeout(this.debounced);
    for (const s of [...this.sleepers]) s();
  }
}
