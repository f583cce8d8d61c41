import { EventEmitter } from 'node:events';
import type { SpiffeBundle } from '../../common/bundle/bundle';
import { invalidArgument } from '../../common/errors';
import { checkAudience } from '../../common/jwtsvid/audience';
import { validateJWTSVID, type ValidatedJWTSVID } from '../../common/jwtsvid/validate';
import { parseSpiffeId, parseTrustDomain } from '../../common/spiffeid/spiffe-id';
import type { WorkloadAPIClient } from '../workloadapi/client';
import { clientFor, type SourceOptions } from './x509-source';
import { StreamWatcher } from './watcher';

/** A JWT-SVID as the source hands it out. */
export interface FetchedJWTSVID {
  spiffeId: string;
  token: string;
  hint: string;
  /** unix seconds */
  expiresAt: number;
}

export interface JWTSourceOptions extends SourceOptions {
  /**
   * Trust domains whose ECDSA tokens must be low-S (s ≤ n/2): those issued by
   * Tessera, which signs no other kind (see common/x509svid/ecdsa-signature.ts).
   * Default none: other issuers (SPIRE, jose) do not normalise S.
   */
  lowSOnlyTrustDomains?: string[];
  /** the clock (unix ms) the JWT-SVID cache and local validation use; default Date.now */
  now?: () => number;
}

interface CachedToken {
  svid: FetchedJWTSVID;
  /** unix ms after which it is fetched again: half its lifetime, as the agent does */
  refreshAt: number;
}

/**
 * JWT-SVIDs and JWT bundles over the Workload API, as go-spiffe's
 * `workloadapi.JWTSource`: `fetchJWTSVID` asks the agent for a token for an
 * audience and caches it until half its lifetime has passed; `validate` checks a
 * token locally against the JWT bundle of its own trust domain (held current
 * from a FetchJWTBundles stream); `validateWithAgent` asks the agent instead.
 *
 * Local validation applies the same rules as the agent (common/jwtsvid/validate.ts):
 * the algorithm allowlist before anything else, only alg/kid/typ in the header,
 * a `kid`, canonical base64url, the key of the `sub`'s trust domain by kid, the
 * signature, `exp` (60-s leeway), and the exact audience.
 */
export class JWTSource extends EventEmitter {
  private bundles = new Map<string, SpiffeBundle>();
  private readonly singleUse = new Set<string>();
  private readonly watcher: StreamWatcher<Map<string, SpiffeBundle>>;
  private readonly client: WorkloadAPIClient;
  private readonly ownsClient: boolean;
  private readonly cache = new Map<string, CachedToken>();
  private readonly inflight = new Map<string, Promise<FetchedJWTSVID>>();
  private readonly lowS: Set<string>;
  private readonly now: () => number;

  constructor(opts: JWTSourceOptions = {}) {
    super();
    ({ client: this.client, owned: this.ownsClient } = clientFor(opts));
    this.lowS = new Set((opts.lowSOnlyTrustDomains ?? []).map((td) => parseTrustDomain(td)));
    this.now = opts.now ?? Date.now;
    this.watcher = new StreamWatcher((u, e) => this.client.watchJWTBundles(u, e), (b) => (this.bundles = b), 'jwt source');
    this.watcher.on('update', () => this.emit('update'));
    this.watcher.on('error', (e) => this.listenerCount('error') > 0 && this.emit('error', e));
  }

  /** Resolves once the first JWT bundles arrived. */
  ready(timeoutMs?: number): Promise<void> {
    return this.watcher.ready(timeoutMs);
  }

  /**
   * A JWT-SVID for `audience` (the default identity's, or `spiffeId`'s), from the
   * cache while it has more than half its lifetime left.
   * @throws TesseraError as the Workload API answers (PERMISSION_DENIED without an identity, INVALID_ARGUMENT for bad audiences)
   */
  fetchJWTSVID(audience: string | string[], spiffeId?: string): Promise<FetchedJWTSVID> {
    const aud = checkAudience(typeof audience === 'string' ? [audience] : audience);
    const id = spiffeId === undefined ? '' : parseSpiffeId(spiffeId).toString();
    const key = JSON.stringify([id, [...aud].sort()]);
    const hit = this.cache.get(key);
    if (hit && this.now() < hit.refreshAt) return Promise.resolve(hit.svid);
    // Tokens with a `jti` are single-use (a provider may refuse a replayed one): never
    // cached, and once seen for a key, never shared between concurrent callers either.
    if (this.singleUse.has(key)) return this.fetch(aud, id, key);
    let p = this.inflight.get(key);
    if (!p) {
      p = this.fetch(aud, id, key).finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    return p;
  }

  private async fetch(aud: string[], id: string, key: string): Promise<FetchedJWTSVID> {
    const [first] = await this.client.fetchJWTSVIDs(aud, id || undefined);
    if (!first) throw invalidArgument('the agent returned no jwt-svid');
    const claims = JSON.parse(Buffer.from(first.token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { exp?: number; iat?: number; jti?: unknown };
    const exp = typeof claims.exp === 'number' ? claims.exp : Math.floor(this.now() / 1000);
    const iat = typeof claims.iat === 'number' ? claims.iat : Math.floor(this.now() / 1000);
    const svid = { spiffeId: first.spiffeId, token: first.token, hint: first.hint, expiresAt: exp };
    if (claims.jti !== undefined) this.singleUse.add(key);
    else this.cache.set(key, { svid, refreshAt: (iat + (exp - iat) / 2) * 1000 });
    return svid;
  }

  /**
   * Validates `token` locally for `audience` with the JWT bundle of its `sub`'s trust domain.
   * @throws JWTSVIDError (INVALID_ARGUMENT) naming the failed check, never the token
   */
  validate(token: string, audience: string): Promise<ValidatedJWTSVID> {
    return validateJWTSVID(token, {
      audience,
      keysFor: (td) => this.bundles.get(td)?.jwtAuthorities,
      now: Math.floor(this.now() / 1000),
      lowSOnly: (td) => this.lowS.has(td),
    });
  }

  /** Asks the agent's ValidateJWTSVID instead (the agent's bundles for this caller). */
  validateWithAgent(token: string, audience: string): Promise<{ spiffeId: string; claims: Record<string, unknown> }> {
    return this.client.validateJWTSVID(token, audience);
  }

  /** Every JWT bundle held (own and federated), by bare trust domain name. */
  allBundles(): ReadonlyMap<string, SpiffeBundle> {
    return this.bundles;
  }

  /** The JWT bundle of `trustDomain`, if held. */
  bundleFor(trustDomain: string): SpiffeBundle | undefined {
    return this.bundles.get(parseTrustDomain(trustDomain));
  }

  close(): void {
    this.watcher.close();
    if (this.ownsClient) this.client.close();
  }
}
