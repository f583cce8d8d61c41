/**
 * Retry delays: exponential backoff with "full jitter" (a uniform delay between 0
 * and the exponential bound), which spreads agents that failed together so they do
 * not come back together.
 */

export interface BackoffOptions {
  /** bound of the first delay; default 1 s */
  baseMs?: number;
  /** largest bound; default 30 s */
  capMs?: number;
}

export const DEFAULT_BACKOFF = { baseMs: 1000, capMs: 30_000 } as const;

/**
 * The delay before retry number `attempt` (0 for the first retry): uniform in
 * [0, min(cap, base · 2^attempt)).
 * @example fullJitterDelay(3, 1000, 30_000, () => 0.5) // 4000
 */
export function fullJitterDelay(attempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  // Math.min before the power would overflow for large attempts; 2^31 is far past any cap.
  const bound = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 31));
  return Math.floor(random() * bound);
}

/** Counts consecutive failures; `reset()` after a success. */
export class Backoff {
  private attempt = 0;
  private readonly baseMs: number;
  private readonly capMs: number;

  constructor(opts: BackoffOptions = {}, private readonly random: () => number = Math.random) {
    this.baseMs = opts.baseMs ?? DEFAULT_BACKOFF.baseMs;
    this.capMs = opts.capMs ?? DEFAULT_BACKOFF.capMs;
  }

  /** The delay before the next retry; each call counts one more failure. */
  next(): number {
    return fullJitterDelay(this.attempt++, this.baseMs, this.capMs, this.random);
  }

  reset(): void {
    this.attempt = 0;
  }

  /** consecutive failures since the last reset */
  get failures(): number {
    return this.attempt;
  }
}
