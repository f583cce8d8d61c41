import { concatDer, jwtBundleJwks, type SpiffeBundle } from '../../common/bundle/bundle';
import { parseTrustDomain, trustDomainId } from '../../common/spiffeid/spiffe-id';
import type { CachedX509SVID } from '../manager/identity-source';
import type { JWTBundlesResponse, X509BundlesResponse, X509SVIDResponse } from '../../common/workloadapi/proto';

/**
 * Pure builders of Workload API responses from what the identity source holds.
 * Every response is the complete current state, built in a fixed order (SVIDs
 * as the source ranks them, maps sorted by trust domain) so that equal content
 * always encodes to equal bytes and the stream code can compare encodings.
 */

/**
 * Splits SVIDs into those to serve and those whose non-empty hint an earlier
 * SVID already uses. Hints must be unique within a response and clients pick the
 * first on duplicates, so a later duplicate could never be chosen: like SPIRE,
 * leave it out (its entry is usually a registration mistake worth a log line).
 */
export function uniqueHints<T extends { hint: string }>(svids: readonly T[]): { kept: T[]; dropped: T[] } {
  const seen = new Set<string>();
  const kept: T[] = [];
  const dropped: T[] = [];
  for (const s of svids) {
    if (s.hint !== '' && seen.has(s.hint)) {
      dropped.push(s);
      continue;
    }
    if (s.hint !== '') seen.add(s.hint);
    kept.push(s);
  }
  return { kept, dropped };
}

/**
 * The trust domains (bare names, sorted) the SVIDs' entries federate with,
 * without the own one (its bundle is sent anyway) and without names that are not
 * valid trust domains (the entry was checked by the server; skip, never fail).
 */
export function federatedTrustDomains(svids: ReadonlyArray<Pick<CachedX509SVID, 'federatesWith'>>, ownTrustDomain: string): string[] {
  const out = new Set<string>();
  for (const s of svids) {
    for (const name of s.federatesWith) {
      try {
        const td = parseTrustDomain(name);
        if (td !== ownTrustDomain) out.add(td);
      } catch {
        // not a trust domain: nothing to send for it
      }
    }
  }
  return [...out].sort();
}

/** A map keyed by trust domain SPIFFE ID, in sorted order, with one value per bundle. */
function bundleMap<V>(bundles: readonly SpiffeBundle[], value: (b: SpiffeBundle) => V): Record<string, V> {
  const entries = bundles.map((b) => [trustDomainId(b.trustDomain), value(b)] as const);
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return Object.fromEntries(entries);
}

const x509Bytes = (b: SpiffeBundle): Buffer => concatDer(b.x509Authorities);

/**
 * X509SVIDResponse: each SVID with its chain (concatenated DER, leaf first), its
 * PKCS#8 key and the own trust domain's CA certificates; `federated_bundles` for
 * the trust domains the returned SVIDs' entries federate with.
 */
export function x509SVIDResponse(svids: readonly CachedX509SVID[], own: SpiffeBundle, federated: readonly SpiffeBundle[]): X509SVIDResponse {
  const bundle = x509Bytes(own);
  return {
    svids: svids.map((s) => ({
      spiffe_id: s.spiffeId,
      x509_svid: concatDer(s.chain),
      x509_svid_key: s.privateKeyPkcs8,
      bundle,
      hint: s.hint,
    })),
    crl: [],
    federated_bundles: bundleMap(federated, x509Bytes),
  };
}

/** X509BundlesResponse: the own trust domain's CA certificates and the federated ones. */
export function x509BundlesResponse(own: SpiffeBundle, federated: readonly SpiffeBundle[]): X509BundlesResponse {
  return { crl: [], bundles: bundleMap([...federated, own], x509Bytes) };
}

/** JWTBundlesResponse: JWKS JSON (kid on every key) of the own and the federated trust domains. */
export function jwtBundlesResponse(own: SpiffeBundle, federated: readonly SpiffeBundle[]): JWTBundlesResponse {
  return { bundles: bundleMap([...federated, own], (b) => Buffer.from(jwtBundleJwks(b), 'utf8')) };
}
