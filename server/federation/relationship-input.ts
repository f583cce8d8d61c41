import { invalidArgument } from '../../common/errors';
import { decodeBundle, encodeBundle, type SpiffeBundle } from '../../common/bundle/bundle';
import { parseSpiffeId, parseTrustDomain } from '../../common/spiffeid/spiffe-id';
import type { DataStore, FederationProfile, FederationRelationship, NewFederationRelationship } from '../datastore/datastore';

/**
 * Checking of federation relationships as given by operators (admin API and the
 * config file's `federation.federates_with`), with messages naming the field. The
 * three values — trust domain, URL, profile — are always explicit (SPIFFE
 * Federation 5.1: never infer one from another).
 */

const PROFILES: FederationProfile[] = ['https_web', 'https_spiffe'];

/** An https URL without userinfo or fragment, at most 2048 characters; returned normalised. */
export function parseBundleEndpointUrl(v: unknown, field = 'bundle_endpoint_url'): string {
  if (typeof v !== 'string' || v === '' || v.length > 2048) throw invalidArgument(`${field} must be a url of 1..2048 characters`);
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw invalidArgument(`${field} ${JSON.stringify(v)} is not a valid url`);
  }
  if (u.protocol !== 'https:') throw invalidArgument(`${field} must use https (both federation profiles are https), not ${u.protocol.slice(0, -1)}`);
  if (u.username || u.password) throw invalidArgument(`${field} must not contain userinfo (user:password@); bundle endpoints take no client authentication`);
  if (u.hash) throw invalidArgument(`${field} must not have a #fragment`);
  return u.href;
}

/** Raw relationship fields, snake_case as in the API and the config file. */
export interface RelationshipFields {
  trust_domain?: unknown;
  bundle_endpoint_url?: unknown;
  profile?: unknown;
  endpoint_spiffe_id?: unknown;
}

/**
 * A complete, consistent relationship: a foreign trust domain (not `ownTrustDomain`),
 * an https URL, a profile, and for https_spiffe an endpoint SPIFFE ID in the foreign
 * trust domain (whose bundle authenticates it); https_web takes none.
 * @throws TesseraError INVALID_ARGUMENT naming the field
 */
export function parseRelationship(b: RelationshipFields, ownTrustDomain: string): NewFederationRelationship {
  if (typeof b.trust_domain !== 'string') throw invalidArgument('trust_domain must be a string, e.g. "b.example.org"');
  const trustDomain = parseTrustDomain(b.trust_domain);
  if (trustDomain === ownTrustDomain) throw invalidArgument(`trust_domain ${trustDomain} is this server's own trust domain; federate with another one`);
  const bundleEndpointUrl = parseBundleEndpointUrl(b.bundle_endpoint_url);
  if (!PROFILES.includes(b.profile as FederationProfile)) throw invalidArgument(`profile must be one of ${PROFILES.join(', ')}`);
  const profile = b.profile as FederationProfile;
  let endpointSpiffeId: string | null = null;
  if (profile === 'https_spiffe') {
    if (typeof b.endpoint_spiffe_id !== 'string') throw invalidArgument('endpoint_spiffe_id is required for https_spiffe: the SPIFFE ID the endpoint\'s certificate must carry');
    const id = parseSpiffeId(b.endpoint_spiffe_id);
    if (id.trustDomain !== trustDomain) {
      throw invalidArgument(`endpoint_spiffe_id ${id} is not in trust domain ${trustDomain}; the endpoint is authenticated with that trust domain's bundle`);
    }
    if (!id.path) throw invalidArgument('endpoint_spiffe_id needs a path (it names the bundle endpoint server)');
    endpointSpiffeId = id.toString();
  } else if (b.endpoint_spiffe_id !== undefined && b.endpoint_spiffe_id !== null) {
    throw invalidArgument('endpoint_spiffe_id applies only to https_spiffe; https_web endpoints are authenticated by their web certificate');
  }
  return { trustDomain, bundleEndpointUrl, profile, endpointSpiffeId };
}

/** The relationship as the admin API and CLI show it. */
export const relationshipToJSON = (r: FederationRelationship, bundleSequence: number | null) => ({
  trust_domain: r.trustDomain,
  bundle_endpoint_url: r.bundleEndpointUrl,
  profile: r.profile,
  endpoint_spiffe_id: r.endpointSpiffeId,
  created_at: r.createdAt,
  updated_at: r.updatedAt,
  last_refresh_at: r.lastRefreshAt,
  last_error: r.lastError,
  bundle_sequence: bundleSequence,
});

/**
 * Decodes a bootstrap bundle for `td` (SPIFFE JSON, object or text).
 * @throws TesseraError INVALID_ARGUMENT when it does not decode, or has no x509 authority for https_spiffe
 */
export function parseBootstrapBundle(td: string, doc: unknown, profile: FederationProfile): SpiffeBundle {
  if (typeof doc !== 'string' && (typeof doc !== 'object' || doc === null || Array.isArray(doc))) {
    throw invalidArgument('bundle must be a SPIFFE bundle JSON object ({"keys": [...]})');
  }
  const b = decodeBundle(td, doc);
  if (profile === 'https_spiffe' && b.x509Authorities.length === 0) {
    throw invalidArgument(`bundle for ${td} has no x509 authorities, so it cannot authenticate an https_spiffe endpoint`);
  }
  return b;
}

/** Stores a bootstrap bundle; its sequence continues any stored one so agents see the change. */
export async function storeBootstrapBundle(store: DataStore, b: SpiffeBundle): Promise<number> {
  const prev = await store.fetchBundle(b.trustDomain);
  const sequence = Math.max(b.sequence ?? 0, prev ? prev.sequence + 1 : 1);
  await store.setBundle({ trustDomain: b.trustDomain, document: encodeBundle(b), sequence });
  return sequence;
}
