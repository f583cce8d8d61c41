/** Injected time (SPIRE's clock): production uses the system clock, tests a fake one. */
export interface Clock {
  now(): Date;
  /**
   * Milliseconds on a clock that never steps (CLOCK_MONOTONIC), for measuring
   * elapsed time and noticing when the wall clock jumps. Optional: without it
   * nothing can tell a step of the wall clock from time passing.
   */
  monotonic?(): number;
}

export const systemClock: Clock = { now: () => new Date(), monotonic: () => performance.now() };

/** Unix seconds of a clock's now. */
export const unixNow = (c: Clock = systemClock): number => Math.floor(c.now().getTime() / 1000);
