import type { SpiffeBundle } from '../../common/bundle/bundle';
import { selectorsSubsetOf, type Selector } from '../../common/selector';
import type { EntryJSON, EntrySyncResponse } from '../client/server-client';
import type { StoredCache, StoredSVID } from '../storage/agent-store';
import type { CachedX509SVID, Entitlement } from './identity-source';
import { coalesceWindow } from './rotation';

const selectorKey = (s: Selector) => JSON.stringify([s.type, s.value]);

const sameList = (a: readonly string[], b: readonly string[]) => {
  if (a.length !== b.length) return false;
  const sa = [...a].sort();
  const sb = [...b].sort();
  return sa.every((x, i) => x === sb[i]);
};

/** True when the SVID no longer fits its entry: a new certificate is needed (the key stays local either way). */
export function svidOutdated(svid: StoredSVID, entry: EntryJSON): boolean {
  return svid.spiffeId !== entry.spiffe_id || svid.ttl !== entry.x509_svid_ttl || !sameList(svid.dnsNames, entry.dns_names);
}

/**
 * The agent's in-memory view: entries by id, the X.509-SVID of each entry,
 * the entry revision and the bundles. Plain state with no I/O; the manager
 * decides when to sign, notify and persist.
 */
export class WorkloadCache {
  revision?: number;
  bundleSequence?: number;
  bundle?: SpiffeBundle;
  readonly federated = new Map<string, SpiffeBundle>();
  /** read-only outside this class: writes go through setEntry/deleteEntry to keep the index */
  readonly entries = new Map<string, EntryJSON>();
  readonly svids = new Map<string, StoredSVID>();
  /**
   * Entry ids by their first selector. An entry matches a caller only if all its
   * selectors are the caller's, so its first one must be: looking up the caller's
   * few selectors finds every candidate without scanning 10,000 entries per call.
   */
  private readonly byFirstSelector = new Map<string, Set<string>>();

  constructor(readonly trustDomain: string) {}

  static fromStored(s: StoredCache): WorkloadCache {
    const c = new WorkloadCache(s.trustDomain);
    c.revision = s.revision;
    c.bundleSequence = s.bundleSequence;
    c.bundle = s.bundle;
    for (const b of s.federated) c.federated.set(b.trustDomain, b);
    for (const e of s.entries) c.setEntry(e);
    // An SVID whose entry is gone would never be served; don't carry it.
    for (const v of s.svids) if (c.entries.has(v.entryId)) c.svids.set(v.entryId, v);
    return c;
  }

  toStored(): StoredCache {
    return {
      trustDomain: this.trustDomain,
      revision: this.revision,
      bundleSequence: this.bundleSequence,
      bundle: this.bundle,
      federated: [...this.federated.values()],
      entries: [...this.entries.values()],
      svids: [...this.svids.values()],
    };
  }

  /**
   * Applies a sync answer: `full` replaces the entry set, otherwise `entries` are
   * upserted and `removed` deleted. SVIDs of removed entries are dropped.
   * @returns whether the entry set changed
   */
  applySync(r: EntrySyncResponse): boolean {
    let changed = false;
    if (r.full) {
      const keep = new Set(r.entries.map((e) => e.id));
      for (const id of this.entries.keys()) if (!keep.has(id)) changed = this.remove(id) || changed;
    }
    for (const e of r.entries) {
      const old = this.entries.get(e.id);
      if (!old || old.revision !== e.revision || JSON.stringify(old) !== JSON.stringify(e)) changed = true;
      this.setEntry(e);
    }
    for (const id of r.removed) changed = this.remove(id) || changed;
    this.revision = r.revision;
    return changed;
  }

  private remove(id: string): boolean {
    this.svids.delete(id);
    const e = this.entries.get(id);
    if (!e) return false;
    this.unindex(e);
    return this.entries.delete(id);
  }

  private setEntry(e: EntryJSON): void {
    const old = this.entries.get(e.id);
    if (old) this.unindex(old);
    this.entries.set(e.id, e);
    if (e.selectors.length === 0) return; // matches no caller
    const k = selectorKey(e.selectors[0]!);
    let ids = this.byFirstSelector.get(k);
    if (!ids) this.byFirstSelector.set(k, (ids = new Set()));
    ids.add(e.id);
  }

  private unindex(e: EntryJSON): void {
    if (e.selectors.length === 0) return;
    const k = selectorKey(e.selectors[0]!);
    const ids = this.byFirstSelector.get(k);
    ids?.delete(e.id);
    if (ids?.size === 0) this.byFirstSelector.delete(k);
  }

  /** Drops SVIDs expired at `now` (ms); returns how many. */
  dropExpired(now: number): number {
    let n = 0;
    for (const [id, s] of this.svids) {
      if (s.notAfter * 1000 <= now) {
        this.svids.delete(id);
        n++;
      }
    }
    return n;
  }

  /**
   * Whether an entry can be served at all: it has selectors (an entry without any
   * matches no caller) and has not passed its own expiry (the server drops it at
   * its next change, which may be a while).
   */
  live(entry: EntryJSON, now: number): boolean {
    return entry.selectors.length > 0 && (entry.expires_at === null || entry.expires_at * 1000 > now);
  }

  /**
   * When an entry next needs signing (ms): at once without an SVID or with an
   * outdated one, else at its SVID's renewal time; undefined for entries never served.
   */
  signingTime(entry: EntryJSON, now: number): number | undefined {
    if (!this.live(entry, now)) return undefined;
    const s = this.svids.get(entry.id);
    return !s || svidOutdated(s, entry) ? now : s.rotateAt;
  }

  /**
   * Entries that need a (new) SVID at `now`: none yet, outdated by an entry
   * change, or due for renewal, counting renewals due within the coalescing
   * window so that renewals close together go out in one batch.
   */
  dueForSigning(now: number, skip: (entry: EntryJSON) => boolean): EntryJSON[] {
    const due: EntryJSON[] = [];
    for (const e of this.entries.values()) {
      const t = this.signingTime(e, now);
      if (t === undefined || skip(e)) continue;
      const s = this.svids.get(e.id);
      if (t <= now + (s ? coalesceWindow(s.receivedAt, s.notAfter * 1000) : 0)) due.push(e);
    }
    return due;
  }

  /** The earliest expiry (ms) of a held SVID, when it must stop being served. */
  nextExpiry(): number | undefined {
    let t: number | undefined;
    for (const s of this.svids.values()) if (t === undefined || s.notAfter * 1000 < t) t = s.notAfter * 1000;
    return t;
  }

  /** The SVID of an entry, if it is current for that entry's SPIFFE ID and unexpired at `now`. */
  servable(entry: EntryJSON, now: number): StoredSVID | undefined {
    const s = this.svids.get(entry.id);
    // After a SPIFFE ID change the old certificate names an identity the entry no longer grants.
    return s && s.spiffeId === entry.spiffe_id && s.notAfter * 1000 > now ? s : undefined;
  }

  /**
   * SVIDs for a caller: live entries whose selectors are a subset of the
   * caller's, with an unexpired SVID, oldest entry first (then by id) so the
   * default identity stays the same across rotations.
   */
  x509SVIDsFor(callerSelectors: Selector[], now: number): CachedX509SVID[] {
    const out: CachedX509SVID[] = [];
    this.forMatching(callerSelectors, now, (e) => this.pushServable(out, e, now));
    return out.sort((a, b) => a.entryCreatedAt - b.entryCreatedAt || (a.entryId < b.entryId ? -1 : a.entryId > b.entryId ? 1 : 0));
  }

  /** Live entries matching the caller, SVID held or not (identity-source.ts, `entitlementsFor`). */
  entitlementsFor(callerSelectors: Selector[], now: number): Entitlement[] {
    const out: Entitlement[] = [];
    this.forMatching(callerSelectors, now, (e) => out.push({ entryId: e.id, spiffeId: e.spiffe_id, federatesWith: e.federates_with }));
    return out;
  }

  /** Calls `visit` once per live entry whose selectors are a subset of the caller's. */
  private forMatching(callerSelectors: Selector[], now: number, visit: (e: EntryJSON) => void): void {
    const seen = new Set<string>();
    for (const sel of callerSelectors) {
      for (const id of this.byFirstSelector.get(selectorKey(sel)) ?? []) {
        if (seen.has(id)) continue; // the caller listed a selector twice
        seen.add(id);
        const e = this.entries.get(id)!;
        if (this.live(e, now) && selectorsSubsetOf(e.selectors, callerSelectors)) visit(e);
      }
    }
  }

  private pushServable(out: CachedX509SVID[], e: EntryJSON, now: number): void {
    const s = this.servable(e, now);
    if (!s) return;
    out.push({
      entryId: e.id,
      spiffeId: s.spiffeId,
      chain: s.chain,
      privateKeyPkcs8: s.keyPkcs8,
      expiresAt: s.notAfter,
      issuedAt: s.notBefore,
      hint: e.hint,
      selectors: e.selectors,
      federatesWith: e.federates_with,
      jwtAudiences: e.jwt_audiences ?? [],
      entryCreatedAt: e.created_at,
    });
  }

  /** Trust domains the held entries federate with. */
  federatedTrustDomains(): Set<string> {
    const tds = new Set<string>();
    for (const e of this.entries.values()) for (const td of e.federates_with) tds.add(td);
    return tds;
  }
}
