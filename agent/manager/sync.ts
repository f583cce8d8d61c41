import type { Logger } from '../../common/log';
import type { Clock } from '../../common/clock';
import { bundlesEqual, type SpiffeBundle } from '../../common/bundle/bundle';
import type { EntrySyncResponse } from '../client/server-client';
import { isIdentityRejected, type AgentSVID } from './agent-svid';
import type { Backoff } from '../../common/backoff';
import type { Connection } from './connection';
import type { ManagerEvent } from './types';
import type { WorkloadCache } from './workload-cache';

/** Federated bundles change without the own bundle's sequence moving: refetch at least this often. */
export const BUNDLE_REFRESH_MS = 5 * 60_000;

export interface SyncDeps {
  conn: Connection;
  cache: WorkloadCache;
  agent: AgentSVID;
  log: Logger;
  clock: Clock;
  backoff: Backoff;
  waitSeconds: number;
  stopped(): boolean;
  /** a sleep that ends early when the manager stops */
  sleep(ms: number): Promise<void>;
  /** entries were applied (`changed`: the entry set changed) */
  onApplied(changed: boolean, r: EntrySyncResponse): void;
  onBundleChanged(): void;
  onEvent(e: ManagerEvent): void;
}

/**
 * The entry sync loop: long-polls the server with the last revision and bundle
 * sequence (the server answers at once when either moved, otherwise after
 * `waitSeconds`), applies full sets or deltas, and refetches bundles when the
 * sequence differs. Errors back off exponentially with full jitter; the cache keeps
 * serving meanwhile. Also (re-)attests when the agent has no usable SVID.
 */
export class SyncLoop {
  lastOk?: number;
  private bundleFetchedAt = 0;
  private bundleFetchedFor?: string;
  private failures = 0;
  private noIdentityLogged = false;

  constructor(private readonly d: SyncDeps) {}

  async run(): Promise<void> {
    while (!this.d.stopped()) {
      if (await this.ensureIdentity()) await this.once();
    }
  }

  /** True when a request can be made; otherwise it has tried to attest or waited. */
  private async ensureIdentity(): Promise<boolean> {
    const { agent, log } = this.d;
    const now = this.d.clock.now().getTime();
    if (agent.hasValidSVID(now) && !(agent.rejected && agent.mayAttest())) return true;
    if (agent.mayAttest()) {
      try {
        await agent.attest();
        return true;
      } catch (e) {
        if (this.d.stopped()) return false;
        log.error({ error: (e as Error).message }, 'agent attestation failed; will retry');
      }
    } else if (!this.noIdentityLogged) {
      this.noIdentityLogged = true;
      log.error('the agent has no valid svid and no attestation method: give it a new join token and restart it; cached svids are served until they expire');
    }
    await this.d.sleep(this.d.backoff.next());
    return false;
  }

  private async once(): Promise<void> {
    const { conn, cache, log } = this.d;
    const gen = conn.generation;
    const epoch = this.d.agent.epoch;
    try {
      const r = await conn.client.entries({ since: cache.revision, waitSeconds: this.d.waitSeconds, bundleSequence: cache.bundleSequence });
      if (this.d.stopped()) return;
      this.d.agent.accepted(epoch);
      const changed = cache.applySync(r);
      this.lastOk = this.d.clock.now().getTime();
      if (this.failures > 0) log.info({ failures: this.failures }, 'sync with the server restored');
      this.failures = 0;
      this.d.backoff.reset();
      this.d.onEvent({ type: 'sync', ok: true, full: r.full });
      this.d.onApplied(changed, r);
      await this.maybeFetchBundles(r.bundle_sequence);
    } catch (e) {
      if (this.d.stopped()) return;
      // The client dropped its connections for a new SVID or new roots: ask again at once.
      if (conn.generation !== gen) return;
      const rejected = isIdentityRejected(e);
      if (rejected) this.d.agent.reject(e);
      this.failures++;
      this.d.onEvent({ type: 'sync', ok: false });
      // Evicted and allowed to re-attest: do it at once, once; repeated refusals back off below.
      if (rejected && this.d.agent.mayAttest() && this.failures === 1) return;
      const delay = this.d.backoff.next();
      const fields = { error: (e as Error).message, failures: this.failures, retry_ms: delay };
      if (this.failures === 1) log.warn(fields, 'sync with the server failed; serving the cache and retrying');
      else log.debug(fields, 'sync with the server failed again');
      await this.d.sleep(delay);
    }
  }

  private async maybeFetchBundles(serverSequence: number): Promise<void> {
    const { cache } = this.d;
    const now = this.d.clock.now().getTime();
    const wanted = [...cache.federatedTrustDomains()].sort().join(' ');
    const stale =
      !cache.bundle ||
      cache.bundleSequence !== serverSequence ||
      wanted !== this.bundleFetchedFor ||
      now - this.bundleFetchedAt >= BUNDLE_REFRESH_MS;
    if (!stale) return;
    const b = await this.d.conn.client.bundle();
    this.bundleFetchedAt = now;
    this.bundleFetchedFor = wanted;
    const changed = !cache.bundle || !bundlesEqual(cache.bundle, b.bundle) || !sameBundles(cache.federated, b.federated);
    cache.bundle = b.bundle;
    // The server's value versions own and federated bundles together: keep it as given.
    cache.bundleSequence = serverSequence;
    cache.federated.clear();
    for (const f of b.federated) cache.federated.set(f.trustDomain, f);
    // Later connections trust the current roots, not just the bootstrap ones.
    this.d.conn.setRoots(b.bundle.x509Authorities);
    if (changed) {
      this.d.log.info({ sequence: cache.bundleSequence, federated: b.federated.length }, 'bundles updated');
      this.d.onEvent({ type: 'bundle_updated' });
      this.d.onBundleChanged();
    }
  }
}

function sameBundles(held: Map<string, SpiffeBundle>, fetched: SpiffeBundle[]): boolean {
  if (held.size !== fetched.length) return false;
  return fetched.every((b) => {
    const h = held.get(b.trustDomain);
    return h !== undefined && bundlesEqual(h, b);
  });
}
