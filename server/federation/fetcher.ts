import { rootCertificates } from 'node:tls';
import { bundlesEqual, decodeBundle, encodeBundle, type SpiffeBundle } from '../../common/bundle/bundle';
import { TesseraError, failedPrecondition, notFound, unavailable } from '../../common/errors';
import type { Logger } from '../../common/log';
import { audit } from '../../common/log';
import type { DataStore } from '../datastore/datastore';
import { fetchBundleDocument } from './bundle-client';

/** SPIFFE Federation: poll every 5 minutes when a bundle has no refresh hint. */
export const DEFAULT_REFRESH_HINT = 300;
/** Longest wait between polls, whatever the hint says: a day. */
export const MAX_REFRESH_HINT = 86_400;

export interface BundleFetcherDeps {
  store: DataStore;
  /** relationships for this trust domain are never polled (its bundle is the CA's) */
  ownTrustDomain: string;
  log: Logger;
  /** called after a fetched bundle changed the store (wired to the agents' change feed) */
  onChange: () => void;
  /** floor of the polling interval, seconds */
  minRefreshHint: number;
  /** extra roots (PEM) for https_web endpoints, on top of Node's default CAs */
  webCaPem?: string[];
  now?: () => number;
  /** idle timeout of a fetch (ms) */
  timeoutMs?: number;
  /** overall deadline of a fetch (ms) */
  deadlineMs?: number;
}

/** What one fetch did. */
export interface RefreshResult {
  trustDomain: string;
  /** the stored bundle was replaced */
  changed: boolean;
  /** sequence of the stored bundle after the fetch */
  sequence: number;
  /** seconds until the next scheduled fetch */
  nextRefreshIn: number;
}

/**
 * Polls the bundle endpoint of every federation relationship (SPIFFE Federation
 * 4.4): at the fetched bundle's `spiffe_refresh_hint` (clamped to
 * [minRefreshHint, 1 day]; 300 s when absent) and, after a failure, at the same
 * interval again. A fetched bundle is stored under its own trust domain, never
 * merged, and only when it differs from the stored one. https_spiffe endpoints are
 * authenticated with the latest stored bundle of their trust domain, so the foreign
 * side can rotate its CA between polls.
 */
export class BundleFetcher {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly inflight = new Map<string, Promise<RefreshResult>>();
  /** the fetch under way per trust domain, to abort when its relationship changes */
  private readonly aborts = new Map<string, AbortController>();
  private readonly webRoots: string[];
  private readonly now: () => number;
  private closed = false;

  constructor(private readonly d: BundleFetcherDeps) {
    this.webRoots = [...rootCertificates, ...(d.webCaPem ?? [])];
    this.now = d.now ?? (() => Math.floor(Date.now() / 1000));
  }

  /** Schedules a first fetch of every stored relationship right away. */
  async start(): Promise<void> {
    for (const r of await this.d.store.listFederationRelationships()) this.relationshipChanged(r.trustDomain);
  }

  /**
   * The relationship of `td` was created, changed or deleted: a fetch under way
   * (of the old URL, maybe stuck on a slow endpoint) is aborted, and a new one runs
   * at once (or none, after a delete).
   */
  relationshipChanged(td: string): void {
    this.aborts.get(td)?.abort();
    this.schedule(td, 0);
  }

  /**
   * Fetches `td`'s bundle now (after any fetch already under way) and restarts its schedule.
   * @throws TesseraError NOT_FOUND without a relationship, UNAVAILABLE (with the reason) when the fetch fails
   */
  refresh(td: string): Promise<RefreshResult> {
    // A fetch under way is aborted (it may be stuck on a slow endpoint), and this one queued
    // behind it, so two fetches of one trust domain never race to the store.
    this.aborts.get(td)?.abort();
    const before = this.inflight.get(td)?.catch(() => undefined) ?? Promise.resolve();
    const p: Promise<RefreshResult> = before.then(() => this.fetchOnce(td)).finally(() => {
      if (this.inflight.get(td) === p) this.inflight.delete(td);
    });
    this.inflight.set(td, p);
    return p;
  }

  /** Stops every timer; fetches under way finish but schedule nothing. */
  close(): void {
    this.closed = true;
    for (const a of this.aborts.values()) a.abort();
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  private schedule(td: string, seconds: number): void {
    clearTimeout(this.timers.get(td));
    this.timers.delete(td);
    if (this.closed) return;
    const t = setTimeout(() => {
      this.timers.delete(td);
      if (this.inflight.has(td)) return; // that fetch schedules the next one
      void this.refresh(td).catch(() => undefined); // logged and recorded by fetchOnce
    }, seconds * 1000);
    t.unref();
    this.timers.set(td, t);
  }

  private clamp(hint: number | undefined): number {
    return Math.min(MAX_REFRESH_HINT, Math.max(this.d.minRefreshHint, hint ?? DEFAULT_REFRESH_HINT));
  }

  private async fetchOnce(td: string): Promise<RefreshResult> {
    const { store, log } = this.d;
    const rel = await store.fetchFederationRelationship(td);
    if (!rel) {
      clearTimeout(this.timers.get(td));
      this.timers.delete(td);
      throw notFound(`no federation relationship with ${td}`);
    }
    let interval = this.clamp(undefined);
    let superseded = false;
    try {
      const stored = await store.fetchBundle(td);
      const prev = stored ? decodeBundle(td, stored.document) : undefined;
      interval = this.clamp(prev?.refreshHint);
      if (td === this.d.ownTrustDomain) throw failedPrecondition(`${td} is this server's own trust domain; its bundle is the ca's`);
      const abort = new AbortController();
      this.aborts.set(td, abort);
      const text = await fetchBundleDocument(
        { url: rel.bundleEndpointUrl, profile: rel.profile, trustDomain: td, endpointSpiffeId: rel.endpointSpiffeId, spiffeRoots: prev?.x509Authorities ?? [] },
        { webRoots: this.webRoots, timeoutMs: this.d.timeoutMs, deadlineMs: this.d.deadlineMs, signal: abort.signal },
      ).finally(() => {
        superseded = abort.signal.aborted;
        if (this.aborts.get(td) === abort) this.aborts.delete(td);
      });
      const fetched = decodeBundle(td, text);
      interval = this.clamp(fetched.refreshHint);
      const changed = !prev || !bundlesEqual(prev, fetched);
      const sequence = changed ? await this.store(td, fetched, stored?.sequence) : stored!.sequence;
      await store.updateFederationRelationship(td, { lastRefreshAt: this.now(), lastError: null });
      log.debug({ trust_domain: td, changed, sequence, next_refresh_s: interval }, 'federated bundle fetched');
      if (changed) this.d.onChange();
      return { trustDomain: td, changed, sequence, nextRefreshIn: interval };
    } catch (e) {
      const msg = (e as Error).message;
      log.warn({ trust_domain: td, url: rel.bundleEndpointUrl, error: msg, retry_s: interval }, 'federated bundle fetch failed');
      await store.updateFederationRelationship(td, { lastRefreshAt: this.now(), lastError: msg }).catch(() => undefined);
      throw e instanceof TesseraError && e.code === 'UNAVAILABLE' ? e : unavailable(`fetching the bundle of ${td}: ${msg}`, e);
    } finally {
      // Aborted for a changed relationship or a new refresh: the next fetch is due now, not in an interval.
      this.schedule(td, superseded ? 0 : interval);
    }
  }

  /**
   * Stores a changed bundle. The stored sequence only grows, so agents (which compare
   * sequences) notice every change even from a publisher that reuses or lowers its
   * own `spiffe_sequence`; the document keeps the publisher's values.
   */
  private async store(td: string, b: SpiffeBundle, prevSequence: number | undefined): Promise<number> {
    const next = prevSequence === undefined ? (b.sequence ?? 1) : b.sequence !== undefined && b.sequence > prevSequence ? b.sequence : prevSequence + 1;
    await this.d.store.setBundle({ trustDomain: td, document: encodeBundle(b), sequence: next });
    audit(this.d.log, 'federated_bundle_updated', {
      trust_domain: td,
      sequence: next,
      spiffe_sequence: b.sequence,
      x509_authorities: b.x509Authorities.length,
      jwt_authorities: b.jwtAuthorities.length,
    });
    return next;
  }
}
