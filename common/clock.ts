/** Injected time (SPIRE's clock): production uses the system clock, tests a fake one. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** Unix seconds of a clock's now. */
export const unixNow = (c: Clock = systemClock): number => Math.floor(c.now().getTime() / 1000);
