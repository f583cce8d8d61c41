import { TesseraError } from '../../common/errors';

/**
 * Token buckets keyed by caller (agent ID or client IP), as SPIRE limits node
 * attestation (1/s per IP) and signing (500/s per agent). A bucket holds one
 * second's worth of tokens, refilled continuously; idle buckets are dropped.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly perSecond: number,
    private readonly what: string,
    private readonly now: () => number = () => performance.now() / 1000,
  ) {}

  /** Takes `n` tokens or throws RESOURCE_EXHAUSTED (HTTP 429) saying when to retry. */
  take(key: string, n = 1): void {
    const t = this.now();
    const cap = Math.max(this.perSecond, 1);
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size > 100_000) this.sweep(t);
      b = { tokens: cap, at: t };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(cap, b.tokens + (t - b.at) * this.perSecond);
    b.at = t;
    // A batch larger than the bucket may pass when the bucket is full, so that a
    // legitimate large batch is slowed rather than refused for ever.
    if (b.tokens >= n || (b.tokens >= cap && n > cap)) {
      b.tokens -= n;
      return;
    }
    const wait = Math.ceil(((n - b.tokens) / this.perSecond) * 1000) / 1000;
    throw new TesseraError('RESOURCE_EXHAUSTED', `${this.what} rate limit (${this.perSecond}/s) exceeded; retry in ${wait}s`);
  }

  private sweep(t: number): void {
    for (const [k, b] of this.buckets) if (t - b.at > 60) this.buckets.delete(k);
  }
}
