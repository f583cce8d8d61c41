import type { Logger } from '../../common/log';
import type { Clock } from '../../common/clock';
import { TesseraError, unavailable } from '../../common/errors';
import type { EntryJSON } from '../client/server-client';
import type { Connection } from './connection';
import { JWTSVIDCache, jwtCacheKey, type CachedJWTSVID } from './jwt-cache';
import type { ManagerEvent } from './types';

export interface FetchedJWTSVID {
  spiffeId: string;
  token: string;
  expiresAt: number;
}

/**
 * JWT-SVIDs on demand: from the cache while fresh (before half-life), else minted
 * by the server. Concurrent requests for one (SPIFFE ID, audience set) share one
 * mint. When the server cannot be reached, a cached token that has not expired
 * is still returned.
 */
export class JWTSVIDs {
  private readonly cache: JWTSVIDCache;
  private readonly inFlight = new Map<string, Promise<CachedJWTSVID>>();

  constructor(
    private readonly d: { conn: Connection; log: Logger; clock: Clock; onEvent(e: ManagerEvent): void },
    size?: number,
  ) {
    this.cache = new JWTSVIDCache(size);
  }

  /**
   * @throws TesseraError: the server's PERMISSION_DENIED or INVALID_ARGUMENT as is;
   * UNAVAILABLE for anything else when nothing unexpired is cached
   */
  async fetch(entry: EntryJSON, audience: string[]): Promise<FetchedJWTSVID> {
    const key = jwtCacheKey(entry.spiffe_id, audience);
    // Single-use tokens (entry jwt_jti): a new one per request, none cached or shared.
    if (entry.jwt_jti) {
      try {
        return pick(await this.mint(entry, audience, key, false));
      } catch (e) {
        const code = e instanceof TesseraError ? e.code : undefined;
        if (code === 'PERMISSION_DENIED' || code === 'INVALID_ARGUMENT' || code === 'UNAVAILABLE') throw e;
        throw unavailable(`cannot obtain a jwt-svid for ${entry.spiffe_id}: ${(e as Error).message}`, e);
      }
    }
    const hit = this.cache.fresh(key, this.now());
    if (hit) return pick(hit);
    let p = this.inFlight.get(key);
    if (!p) {
      p = this.mint(entry, audience, key).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, p);
    }
    try {
      return pick(await p);
    } catch (e) {
      const code = e instanceof TesseraError ? e.code : undefined;
      if (code === 'PERMISSION_DENIED' || code === 'INVALID_ARGUMENT') throw e;
      const old = this.cache.unexpired(key, this.now());
      if (old) {
        this.d.log.warn({ spiffe_id: entry.spiffe_id, error: (e as Error).message }, 'cannot refresh a jwt-svid; serving the cached one until it expires');
        return pick(old);
      }
      throw code === 'UNAVAILABLE' ? e : unavailable(`cannot obtain a jwt-svid for ${entry.spiffe_id}: ${(e as Error).message}`, e);
    }
  }

  /** Forgets cached tokens `tainted` selects (signed by a tainted key): the next fetch mints anew. */
  dropWhere(tainted: (token: string) => boolean): number {
    return this.cache.deleteWhere((v) => tainted(v.token));
  }

  private async mint(entry: EntryJSON, audience: string[], key: string, cache = true): Promise<CachedJWTSVID> {
    const gen = this.d.conn.generation;
    const call = () => this.d.conn.client.mintJWTSVID(entry.id, audience);
    // A connection dropped for a new agent SVID is not a failure: ask once more.
    const r = await call().catch((e: unknown) => {
      if (this.d.conn.generation === gen) throw e;
      return call();
    });
    const v = { spiffeId: r.spiffe_id, token: r.token, expiresAt: r.expires_at, receivedAt: this.now() };
    if (cache) this.cache.set(key, v);
    this.d.onEvent({ type: 'jwt_svid_minted' });
    return v;
  }

  private now(): number {
    return this.d.clock.now().getTime();
  }
}

const pick = (v: CachedJWTSVID): FetchedJWTSVID => ({ spiffeId: v.spiffeId, token: v.token, expiresAt: v.expiresAt });
