import type {
  AttestedNode,
  Bundle,
  CAJournalEntry,
  EntryEvent,
  FederationProfile,
  FederationRelationship,
  JoinToken,
  RegistrationEntry,
} from './datastore';
import { selectorsFromKey } from './validation';

/**
 * Rows as the drivers return them, and their mapping to the store's types; one
 * schema shape for both engines. SQLite (better-sqlite3) gives booleans as 0/1
 * integers, PostgreSQL (`pg`) as booleans; BIGINTs come as numbers from both (the
 * PostgreSQL pool parses them). BLOB/BYTEA columns come as Buffers.
 */
type Bool = number | boolean;
const bool = (v: Bool): boolean => v === true || v === 1;


export interface EntryRow {
  seq: number;
  id: string;
  spiffe_id: string;
  parent_id: string;
  selectors_key: string;
  x509_svid_ttl: number;
  jwt_svid_ttl: number;
  dns_names: string;
  federates_with: string;
  hint: string;
  jwt_audiences: string;
  jwt_jti: Bool;
  expires_at: number | null;
  created_at: number;
  revision: number;
}

export interface EventRow {
  revision: number;
  entry_id: string;
  op: EntryEvent['op'];
  old_spiffe_id: string | null;
  old_parent_id: string | null;
  new_spiffe_id: string | null;
  new_parent_id: string | null;
}

export interface NodeRow {
  seq: number;
  spiffe_id: string;
  attestation_type: string;
  serial_number: string;
  expires_at: number;
  new_serial_number: string;
  new_expires_at: number;
  banned: Bool;
  created_at: number;
  updated_at: number;
  selectors: string;
}

export interface JoinTokenRow {
  token_hash: string;
  token_id: string;
  expires_at: number;
  created_at: number;
}

export interface BundleRow {
  trust_domain: string;
  document: string;
  sequence: number;
  updated_at: number;
}

export interface JournalRow {
  id: string;
  kind: CAJournalEntry['kind'];
  key_id: string;
  state: CAJournalEntry['state'];
  certificate_der: Buffer | null;
  upstream_chain_der: Buffer | null;
  public_jwk: string | null;
  kid: string;
  not_before: number;
  not_after: number;
  owner: string;
  created_at: number;
  updated_at: number;
}


export function toEntry(r: EntryRow): RegistrationEntry {
  return {
    id: r.id,
    spiffeId: r.spiffe_id,
    parentId: r.parent_id,
    selectors: selectorsFromKey(r.selectors_key),
    x509SvidTtl: r.x509_svid_ttl,
    jwtSvidTtl: r.jwt_svid_ttl,
    dnsNames: JSON.parse(r.dns_names) as string[],
    federatesWith: JSON.parse(r.federates_with) as string[],
    hint: r.hint,
    jwtAudiences: JSON.parse(r.jwt_audiences) as string[],
    jwtJti: bool(r.jwt_jti),
    expiresAt: r.expires_at,
    createdAt: r.created_at,
    revision: r.revision,
  };
}

export const toEvent = (r: EventRow): EntryEvent => ({
  revision: r.revision,
  entryId: r.entry_id,
  op: r.op,
  oldSpiffeId: r.old_spiffe_id,
  oldParentId: r.old_parent_id,
  newSpiffeId: r.new_spiffe_id,
  newParentId: r.new_parent_id,
});

export const toNode = (r: NodeRow): AttestedNode => ({
  spiffeId: r.spiffe_id,
  attestationType: r.attestation_type,
  serialNumber: r.serial_number,
  expiresAt: r.expires_at,
  newSerialNumber: r.new_serial_number,
  newExpiresAt: r.new_expires_at,
  selectors: selectorsFromKey(r.selectors),
  banned: bool(r.banned),
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export const toJoinToken = (r: JoinTokenRow): JoinToken => ({
  tokenHash: r.token_hash,
  tokenId: r.token_id,
  expiresAt: r.expires_at,
  createdAt: r.created_at,
});

export const toBundle = (r: BundleRow): Bundle => ({
  trustDomain: r.trust_domain,
  document: r.document,
  sequence: r.sequence,
  updatedAt: r.updated_at,
});

export const toJournal = (r: JournalRow): CAJournalEntry => ({
  id: r.id,
  kind: r.kind,
  keyId: r.key_id,
  state: r.state,
  certificateDer: r.certificate_der,
  upstreamChainDer: r.upstream_chain_der,
  publicJwk: r.public_jwk,
  kid: r.kid,
  notBefore: r.not_before,
  notAfter: r.not_after,
  owner: r.owner,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export interface FederationRow {
  trust_domain: string;
  bundle_endpoint_url: string;
  profile: FederationProfile;
  endpoint_spiffe_id: string | null;
  created_at: number;
  updated_at: number;
  last_refresh_at: number | null;
  last_error: string | null;
}

export const toFederation = (r: FederationRow): FederationRelationship => ({
  trustDomain: r.trust_domain,
  bundleEndpointUrl: r.bundle_endpoint_url,
  profile: r.profile,
  endpointSpiffeId: r.endpoint_spiffe_id,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  lastRefreshAt: r.last_refresh_at,
  lastError: r.last_error,
});
