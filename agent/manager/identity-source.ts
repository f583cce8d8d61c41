import type { SpiffeBundle } from '../../common/bundle/bundle';
import type { Selector } from '../../common/selector';

/** One workload X.509-SVID held by the agent, with the entry it was minted for. */
export interface CachedX509SVID {
  entryId: string;
  spiffeId: string;
  /** leaf first, then intermediates (never the root) */
  chain: Buffer[];
  /** unencrypted PKCS#8 DER; generated on this node, never sent anywhere */
  privateKeyPkcs8: Buffer;
  /** unix seconds (notAfter of the leaf) */
  expiresAt: number;
  /** unix seconds (notBefore of the leaf) */
  issuedAt: number;
  hint: string;
  /** the entry's selectors; the SVID is for callers whose selectors include all of them */
  selectors: Selector[];
  federatesWith: string[];
  /** the entry's JWT audience allowlist; empty = any (common/jwtsvid/audience-allowlist.ts) */
  jwtAudiences: string[];
  /** entry creation time: older entries come first, so the default identity is stable */
  entryCreatedAt: number;
}

/**
 * A live registration entry that matches a caller, whether or not its X.509-SVID
 * is held right now: what the caller is entitled to.
 */
export interface Entitlement {
  entryId: string;
  spiffeId: string;
  federatesWith: string[];
}

/**
 * What the Workload API needs from the agent's cache (a small consumer-side seam,
 * as SPIRE's workload handler declares its own Manager). Every method answers from
 * memory; none calls the server except `fetchJWTSVID` on a cache miss.
 */
export interface WorkloadIdentitySource {
  /** true once entries and SVIDs are known (synced, or restored from disk) */
  ready(): boolean;
  /**
   * X.509-SVIDs whose entry selectors are a subset of the caller's, never expired,
   * in a stable order: the first is the caller's default identity.
   */
  x509SVIDsFor(callerSelectors: Selector[]): CachedX509SVID[];
  /**
   * The live entries whose selectors are a subset of the caller's, SVID held or
   * not. An entry can match while its SVID is not held: created a moment ago and
   * not signed yet, or expired while the server could not be reached. That caller
   * is entitled and waits; only a caller with no entitlement is denied.
   */
  entitlementsFor(callerSelectors: Selector[]): Entitlement[];
  /** the agent's own trust domain bundle */
  bundle(): SpiffeBundle;
  /** federated bundles by trust domain name (only those the agent holds) */
  federatedBundles(trustDomains: Iterable<string>): SpiffeBundle[];
  /**
   * A JWT-SVID for the entry, cached per (SPIFFE ID, audience set) and refreshed
   * once past half its lifetime. Throws TesseraError (UNAVAILABLE when the server
   * cannot be reached and nothing valid is cached).
   */
  fetchJWTSVID(entryId: string, audience: string[]): Promise<{ spiffeId: string; token: string; expiresAt: number }>;
  /** Called after anything a workload could see changed (rotation, entries, bundles). */
  subscribe(listener: () => void): () => void;
}
