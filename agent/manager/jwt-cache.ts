import { jwtNeedsRefresh } from './rotation';

export interface CachedJWTSVID {
  spiffeId: string;
  token: string;
  /** unix seconds */
  expiresAt: number;
  /** unix ms, when minted for us */
  receivedAt: number;
}

/** Default number of (SPIFFE ID, audience set) pairs kept. */
export const JWT_CACHE_SIZE = 1000;

/** The cache key of a SPIFFE ID and an audience set (order and duplicates do not matter). */
export function jwtCacheKey(spiffeId: string, audience: readonly string[]): string {
  return JSON.stringify([spiffeId, [...new Set(audience)].sort()]);
}

/**
 * JWT-SVIDs per (SPIFFE ID, audience set), least recently used evicted first
 * (a Map iterates in insertion order, so re-inserting on use keeps it LRU).
 */
export class JWTSVIDCache {
  private readonly items = new Map<string, CachedJWTSVID>();

  constructor(private readonly max = JWT_CACHE_SIZE) {}

  /**
   * The cached token if still fresh (not past half its lifetime) at `now` (ms),
   * else undefined.
   */
  fresh(key: string, now: number): CachedJWTSVID | undefined {
    const v = this.items.get(key);
    if (!v || jwtNeedsRefresh(v.receivedAt, v.expiresAt * 1000, now)) return undefined;
    this.touch(key, v);
    return v;
  }

  /** The cached token if not yet expired at `now` (ms): the fallback when the server is unreachable. */
  unexpired(key: string, now: number): CachedJWTSVID | undefined {
    const v = this.items.get(key);
    return v && v.expiresAt * 1000 > now ? v : undefined;
  }

  set(key: string, v: CachedJWTSVID): void {
    this.touch(key, v);
    while (this.items.size > this.max) this.items.delete(this.items.keys().next().value!);
  }

  /** Drops every cached token `pred` selects; returns how many. */
  deleteWhere(pred: (v: CachedJWTSVID) => boolean): number {
    let n = 0;
    for (const [k, v] of this.items) {
      if (!pred(v)) continue;
      this.items.delete(k);
      n++;
    }
    return n;
  }

  get size(): number {
    return this.items.size;
  }

  private touch(key: string, v: CachedJWTSVID): void {
    this.items.delete(key);
    this.items.set(key, v);
  }
}
