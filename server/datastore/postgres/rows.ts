import type {
  AttestedNode,
  Bundle,
  CAJournalEntry,
  EntryEvent,
  FederationProfile,
  FederationRelationship,
  JoinToken,
  RegistrationEntry,
} from '../datastore';
import { selectorsFromKey } from '../validation';

/**
 * PostgreSQL's rows as `pg` returns them (BIGINT parsed to number by the pool's
 * type parser, BOOLEAN as boolean, BYTEA as Buffer) and their mapping.
 */

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
  jwt_jti: boolean;
  expires_at: number | null;
  created_at: number;
  revision: number;
}

export const toEntry = (r: EntryRow): RegistrationEntry => ({
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
  jwtJti: r.jwt_jti,
  expiresAt: r.expires_at,
  createdAt: r.created_at,
  revision: r.revision,
});

export interface EventRow {
  revision: number;
  entry_id: string;
  op: EntryEvent['op'];
  old_spiffe_id: string | null;
  old_parent_id: string | null;
  new_spiffe_id: string | null;
  new_parent_id: string | null;
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

export interface NodeRow {
  seq: number;
  spiffe_id: string;
  attestation_type: string;
  serial_number: string;
  expires_at: number;
  new_serial_number: string;
  new_expires_at: number;
  banned: boolean;
  created_at: number;
  updated_at: number;
  /** JSON text of [[type, value], ...] */
  selectors: string;
}

export const toNode = (r: NodeRow): AttestedNode => ({
  spiffeId: r.spiffe_id,
  attestationType: r.attestation_type,
  serialNumber: r.serial_number,
  expiresAt: r.expires_at,
  newSerialNumber: r.new_serial_number,
  newExpiresAt: r.new_expires_at,
  selectors: selectorsFromKey(r.selectors),
  banned: r.banned,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export interface JoinTokenRow {
  token_hash: string;
  token_id: string;
  expires_at: number;
  created_at: number;
}

export const toJoinToken = (r: JoinTokenRow): JoinToken => ({
  tokenHash: r.token_hash,
  tokenId: r.token_id,
  expiresAt: r.expires_at,
  createdAt: r.created_at,
});

export interface BundleRow {
  trust_domain: string;
  document: string;
  sequence: number;
  updated_at: number;
}

export const toBundle = (r: BundleRow): Bundle => ({
  trustDomain: r.trust_domain,
  document: r.document,
  sequence: r.sequence,
  updatedAt: r.updated_at,
});

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
  created_at: number;
  updated_at: number;
}

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
