import type { Logger } from '../../common/log';
import { subsystem } from '../../common/log';
import { systemClock, type Clock } from '../../common/clock';
import { TesseraError, permissionDenied } from '../../common/errors';
import { checkAudience } from '../../common/jwtsvid/audience';
import type { SpiffeBundle } from '../../common/bundle/bundle';
import type { Selector } from '../../common/selector';
import { AgentStore } from '../storage/agent-store';
import { AgentSVID } from './agent-svid';
import { Backoff } from '../../common/backoff';
import { Connection } from './connection';
import type { CachedX509SVID, Entitlement, WorkloadIdentitySource } from './identity-source';
import { JWTSVIDs } from './jwt-source';
import { SyncLoop } from './sync';
import type { AgentManagerOptions, ManagerEvent, ManagerStats } from './types';
import { WorkloadCache } from './workload-cache';
import { X509Rotator } from './x509-rotator';
import { Wakeups } from './wakeups';
import { Notifier } from './notifier';
import { TaintState } from './taint';
import type { EntrySyncResponse } from '../client/server-client';

/** Longest wait between a change and saving it. */
const MAX_PERSIST_DELAY_MS = 5000;

export type { AgentManagerOptions, AttestFn, AttestedIdentity, ManagerEvent, ManagerStats } from './types';

/**
 * The agent's manager: its own identity, entry sync, the workload SVID cache with
 * rotation, JWT-SVIDs, and persistence. Implements what the Workload API serves
 * from ({@link WorkloadIdentitySource}); every read is answered from memory.
 *
 * `start` restores the agent SVID and the cache from `dataDir` and never waits
 * for the server when it has something to serve; it attests (and waits for that)
 * only when there is neither a usable agent SVID nor a cache.
 */
export class AgentManager implements WorkloadIdentitySource {
  private readonly conn: Connection;
  private readonly agent: AgentSVID;
  private readonly rotator: X509Rotator;
  private readonly sync: SyncLoop;
  private readonly jwt: JWTSVIDs;
  private readonly wake: Wakeups;
  private readonly notifier: Notifier;
  private readonly taint = new TaintState();
  private stopped = false;
  private restored: boolean;
  private synced = false;
  private isReady = false;
  private loop?: Promise<void>;
  private lastPersistMs = 0;
  /** performance.now() of the first change not saved yet (undefined: all saved) */
  private unsavedSince?: number;
  /** a save was held back for the running signing round */
  private saveAfterRound = false;

  private constructor(
    private readonly opts: AgentManagerOptions,
    private readonly log: Logger,
    private readonly clock: Clock,
    private readonly store: AgentStore,
    private readonly cache: WorkloadCache,
  ) {
    const random = opts.random ?? Math.random;
    const onEvent = (e: ManagerEvent) => opts.onMetrics?.(e);
    const stopped = () => this.stopped;
    this.conn = new Connection(opts.client);
    this.notifier = new Notifier(log);
    this.restored = cache.svids.size > 0; // the store dropped expired SVIDs on load
    this.isReady = this.restored;
    this.wake = new Wakeups(() => this.tick());
    const common = { conn: this.conn, log, clock, random, backoff: opts.backoff, onEvent };
    this.agent = new AgentSVID({
      ...common,
      store,
      trustDomain: opts.trustDomain,
      attest: opts.attest,
      reattestOnEviction: opts.reattestOnEviction,
      onAttested: (a) => this.attested(a.agentIdChanged, a.bundle),
    });
    this.rotator = new X509Rotator({
      ...common,
      cache,
      agent: this.agent,
      stopped,
      onChanged: () => this.changed(),
      onRoundDone: () => {
        if (this.synced) this.isReady = true;
        if (this.saveAfterRound) this.persistSoon();
        this.reschedule();
      },
    });
    this.sync = new SyncLoop({
      ...common,
      cache,
      agent: this.agent,
      stopped,
      backoff: new Backoff(opts.backoff, random),
      waitSeconds: opts.syncWaitSeconds ?? 30,
      sleep: (ms) => this.wake.sleep(ms),
      onApplied: (changed, r) => this.applied(changed, r),
      onBundleChanged: () => this.changed(),
    });
    this.jwt = new JWTSVIDs({ conn: this.conn, log, clock, onEvent });
  }

  /** Restores state, attests if it must, and starts syncing. @throws when attestation is needed and definitively fails */
  static async start(opts: AgentManagerOptions): Promise<AgentManager> {
    const log = subsystem(opts.log, 'agent_manager');
    const clock = opts.clock ?? systemClock;
    const store = await AgentStore.open(opts.dataDir, log, clock);
    const stored = await store.loadCache();
    if (stored && stored.trustDomain !== opts.trustDomain) log.warn({ cached: stored.trustDomain }, 'cached state is for another trust domain; ignoring it');
    const cache = stored?.trustDomain === opts.trustDomain ? WorkloadCache.fromStored(stored) : new WorkloadCache(opts.trustDomain);
    const m = new AgentManager(opts, log, clock, store, cache);
    await m.init();
    return m;
  }

  private async init(): Promise<void> {
    // The cached bundle is newer than the bootstrap one: trust the server's current roots.
    if (this.cache.bundle) this.conn.setRoots(this.cache.bundle.x509Authorities);
    const haveSVID = await this.agent.load(this.cache.bundle?.x509Authorities);
    if (this.restored) this.log.info({ svids: this.cache.svids.size, entries: this.cache.entries.size }, 'serving svids restored from disk');
    if (!haveSVID && !this.restored) {
      // Nothing to serve yet: attest now, so a bad join token fails the start.
      await this.agent.attest().catch((e: unknown) => {
        if (!(e instanceof TesseraError && e.code === 'UNAVAILABLE')) throw e;
        this.log.warn({ error: e.message }, 'cannot reach the server to attest; will retry');
      });
    }
    this.loop = this.sync.run().catch((e: unknown) => this.log.error({ error: (e as Error).message }, 'sync loop ended unexpectedly'));
    this.rotator.kick();
    this.reschedule();
  }

  /** Stops syncing and timers, closes the client (ending the long poll) and saves the cache. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.wake.stop();
    this.notifier.close();
    this.opts.client.close();
    await this.loop;
    await this.rotator.idle();
    await this.agent.idle();
    await this.persist();
  }

  ready(): boolean {
    return this.isReady;
  }

  x509SVIDsFor(callerSelectors: Selector[]): CachedX509SVID[] {
    return this.cache.x509SVIDsFor(callerSelectors, this.now());
  }

  entitlementsFor(callerSelectors: Selector[]): Entitlement[] {
    return this.cache.entitlementsFor(callerSelectors, this.now());
  }

  bundle(): SpiffeBundle {
    return this.cache.bundle ?? { trustDomain: this.opts.trustDomain, x509Authorities: [], jwtAuthorities: [] };
  }

  federatedBundles(trustDomains: Iterable<string>): SpiffeBundle[] {
    const out: SpiffeBundle[] = [];
    for (const td of new Set(trustDomains)) {
      const b = this.cache.federated.get(td.replace(/^spiffe:\/\//, ''));
      if (b) out.push(b);
    }
    return out;
  }

  async fetchJWTSVID(entryId: string, audience: string[]): Promise<{ spiffeId: string; token: string; expiresAt: number }> {
    checkAudience(audience);
    const entry = this.cache.entries.get(entryId);
    if (!entry) throw permissionDenied(`entry ${entryId} is not held by this agent`);
    return this.jwt.fetch(entry, audience);
  }

  subscribe(listener: () => void): () => void {
    return this.notifier.subscribe(listener);
  }

  stats(): ManagerStats {
    const now = this.now();
    let cached = 0;
    let earliest: number | null = null;
    for (const s of this.cache.svids.values()) {
      if (s.notAfter * 1000 <= now) continue;
      cached++;
      if (earliest === null || s.notAfter < earliest) earliest = s.notAfter;
    }
    const last = this.sync.lastOk;
    return { cachedSVIDs: cached, rotations: this.rotator.rotations, earliestExpiry: earliest, lastSyncOk: last === undefined ? null : Math.floor(last / 1000) };
  }

  /** The agent's SPIFFE ID; empty while unknown (no stored SVID and not yet attested). */
  agentId(): string {
    return this.agent.agentId ?? '';
  }

  private applied(changed: boolean, r: EntrySyncResponse): void {
    this.synced = true;
    this.applyTaint(r);
    this.rotator.serverReachable();
    this.rotator.kick(); // also after an outage: renewals that failed go out now
    if (changed) this.changed();
  }

  /**
   * The server's tainted authorities: SVIDs (ours and the workloads') signed by a
   * tainted CA are renewed within a jittered spread; cached JWT-SVIDs signed by a
   * tainted key are dropped, so the next fetch gets one signed by the active key.
   * Runs on every sync while anything is tainted, to catch SVIDs that arrived meanwhile.
   */
  private applyTaint(r: EntrySyncResponse): void {
    const changed = this.taint.update(r.tainted_authorities);
    if (this.taint.empty) return;
    const now = this.now();
    const random = this.opts.random ?? Math.random;
    const svids = this.taint.expedite(this.cache.svids.values(), now, random);
    const own = this.agent.expedite((leaf) => this.taint.taintedLeaf(leaf), now);
    const jwts = this.jwt.dropWhere((token) => this.taint.taintedJWT(token));
    if (changed || svids > 0 || own || jwts > 0) {
      this.log.info({ tainted: r.tainted_authorities, svids, agent_svid: own, jwt_svids_dropped: jwts }, 'tainted authorities: re-issuing what they signed');
    }
  }

  private attested(agentIdChanged: boolean, bundle: SpiffeBundle): void {
    // A new agent ID may be authorized for other entries: ask for the full set.
    if (agentIdChanged) this.cache.revision = undefined;
    // The attestation answer came over TLS verified with the roots held so far (with
    // --trust-bundle-sha256: only the pinned root), so its bundle is the server's own.
    if (!this.cache.bundle) {
      this.cache.bundle = bundle;
      this.conn.setRoots(bundle.x509Authorities);
    }
    this.rotator.serverReachable();
    this.rotator.kick();
  }

  /** Timer: drop expired SVIDs, renew the agent SVID and workload SVIDs when due. */
  private tick(): void {
    const dropped = this.cache.dropExpired(this.now());
    if (dropped > 0) {
      this.log.warn({ count: dropped }, 'x509-svids expired before they could be renewed; no longer served');
      this.opts.onMetrics?.({ type: 'x509_svids_expired', count: dropped });
      this.changed();
    }
    void this.agent.maybeRenew().then(() => this.reschedule());
    this.rotator.kick();
    this.reschedule();
  }

  private reschedule(): void {
    const deadlines = [this.cache.nextExpiry(), this.agent.nextDeadline(), this.rotator.nextDeadline()];
    this.wake.at(deadlines, this.now());
  }

  /** Something a workload can see changed: notify (once per tick) and persist (debounced). */
  private changed(): void {
    if (this.stopped) return;
    this.notifier.notify();
    // Saves of a large cache (15 MB at 10,000 SVIDs) take a while: space them so
    // that saving never takes more than about a fifth of the time during a bulk sync.
    const delay = Math.min(MAX_PERSIST_DELAY_MS, Math.max(this.opts.persistDelayMs ?? 200, 4 * this.lastPersistMs));
    this.unsavedSince ??= performance.now();
    this.wake.debounce(delay, () => this.persistSoon());
    this.reschedule();
  }

  /**
   * Saves the cache, unless a signing round is under way: then the save waits for
   * the round's end, so a bulk sync (a fresh node's 10,000 SVIDs arrive in 20
   * batches) writes once with everything rather than every few batches, each
   * re-joining up to 15 MB of JSON. It never waits more than maxPersistDelayMs
   * (5 s) after the first unsaved change. (Elapsed real time, like the timers it sets:
   * this schedules disk writes, not anything a certificate's validity depends on.)
   */
  private persistSoon(): void {
    if (this.unsavedSince === undefined || this.stopped) return;
    const waited = performance.now() - this.unsavedSince;
    const cap = this.opts.maxPersistDelayMs ?? MAX_PERSIST_DELAY_MS;
    if (this.rotator.busy() && waited < cap) {
      this.saveAfterRound = true;
      this.wake.debounce(cap - waited, () => this.persistSoon());
      return;
    }
    void this.persist();
  }

  private async persist(): Promise<void> {
    this.unsavedSince = undefined;
    this.saveAfterRound = false;
    const t = performance.now();
    let svids = 0;
    const snapshot = () => {
      const stored = this.cache.toStored();
      svids = stored.svids.length;
      return stored;
    };
    await this.store.saveCache(snapshot).then(
      () => this.log.debug({ svids, ms: Math.round(performance.now() - t) }, 'agent cache saved'),
      (e: Error) => this.log.error({ error: e.message }, 'cannot save the agent cache'),
    );
    this.lastPersistMs = performance.now() - t;
  }

  private now(): number {
    return this.clock.now().getTime();
  }
}
