/**
 * The DataStore seam. Async on purpose: the SQLite implementation is synchronous
 * underneath (better-sqlite3), but a PostgreSQL implementation can be added later
 * without changing any caller. Every implementation must pass `contract.ts`.
 *
 * Errors: implementations throw TesseraError (common/errors) — NOT_FOUND for a
 * missing row on update/delete, ALREADY_EXISTS for a duplicate (same spiffe_id,
 * parent_id and selector set for entries), INVALID_ARGUMENT for bad input.
 * Times are Unix seconds (integers).
 */

import type { Selector } from '../../common/selector';

/** One selector type for the whole project (common/selector.ts: parsing, rules, the set order). */
export type { Selector };

export interface RegistrationEntry {
  id: string;
  spiffeId: string;
  parentId: string;
  selectors: Selector[]; // sorted by (type, value), no duplicates
  x509SvidTtl: number; // seconds; 0 = server default
  jwtSvidTtl: number; // seconds; 0 = server default
  dnsNames: string[];
  federatesWith: string[]; // trust domain names (no scheme)
  hint: string;
  /** JWT audiences its workloads may ask for (exact, or a prefix ending in `*`); empty = any (common/jwtsvid/audience-allowlist.ts) */
  jwtAudiences: string[];
  /** its JWT-SVIDs carry a unique `jti` (single-use: the agent does not cache them) */
  jwtJti: boolean;
  expiresAt: number | null; // entry expiry (unix s), null = never
  createdAt: number;
  revision: number; // store-wide revision at which this entry was last written
}

export type NewRegistrationEntry = Omit<RegistrationEntry, 'id' | 'createdAt' | 'revision' | 'jwtAudiences' | 'jwtJti'> & { id?: string; jwtAudiences?: string[]; jwtJti?: boolean };

/** Fields that may be changed by an update; absent = unchanged. */
export type RegistrationEntryUpdate = Partial<Omit<RegistrationEntry, 'id' | 'createdAt' | 'revision'>>;

export type SelectorMatch = 'exact' | 'subset' | 'superset' | 'any';

export interface ListEntriesQuery {
  spiffeId?: string;
  parentId?: string;
  /** entries whose parent_id is one of these (used for authorization walks) */
  parentIds?: string[];
  selectors?: { selectors: Selector[]; match: SelectorMatch };
  /**
   * exact: the entry's selector set equals the given set;
   * subset: the entry's selectors are a subset of the given ones (the entry applies to a caller that has them);
   * superset: the entry's selectors contain all the given ones;
   * any: the entry has at least one of the given selectors.
   */
  federatesWith?: string;
  hint?: string;
  pageSize?: number; // default: all
  pageToken?: string; // opaque, from Page.nextPageToken
}

export interface Page<T> {
  items: T[];
  nextPageToken?: string; // absent on the last page
}

/** One change to the entry table, kept so agents can sync only what changed. */
export interface EntryEvent {
  revision: number;
  entryId: string;
  op: 'create' | 'update' | 'delete';
  /** spiffe_id and parent_id before the change (update/delete) or after it (create) */
  oldSpiffeId: string | null;
  oldParentId: string | null;
  newSpiffeId: string | null;
  newParentId: string | null;
}

export interface AttestedNode {
  spiffeId: string;
  attestationType: string; // 'join_token' | 'x509pop' | ...
  serialNumber: string; // hex serial of the current agent SVID
  expiresAt: number; // current agent SVID expiry
  /** serial of a renewed SVID not yet used by the agent (SPIRE's new_serial_number), '' if none */
  newSerialNumber: string;
  newExpiresAt: number;
  selectors: Selector[];
  banned: boolean;
  createdAt: number;
  updatedAt: number;
}

export interface ListNodesQuery {
  attestationType?: string;
  banned?: boolean;
  pageSize?: number;
  pageToken?: string;
}

export interface JoinToken {
  /** sha-256 hex of the token secret; the secret itself is never stored */
  tokenHash: string;
  /** public, non-secret identifier; the agent ID is spiffe://<td>/tessera/agent/join_token/<tokenId> */
  tokenId: string;
  expiresAt: number;
  createdAt: number;
}

export interface Bundle {
  trustDomain: string; // name without scheme, e.g. "example.org"
  /** SPIFFE bundle JSON document (common/bundle) as stored */
  document: string;
  sequence: number;
  updatedAt: number;
}

/** A CA or JWT signing key slot in the key journal (issue #4 adds full rotation on top). */
export interface CAJournalEntry {
  id: string; // slot id
  kind: 'x509' | 'jwt';
  keyId: string; // key manager key id
  state: 'prepared' | 'active' | 'retired' | 'tainted' | 'revoked';
  /** x509: DER of the CA certificate; jwt: empty */
  certificateDer: Buffer | null;
  /** x509: DER of the upstream chain above the CA cert (concatenated), if any */
  upstreamChainDer: Buffer | null;
  /** jwt: the public JWK (JSON string); x509: null */
  publicJwk: string | null;
  /** jwt: kid; x509: SKI hex */
  kid: string;
  notBefore: number;
  notAfter: number;
  /**
   * The server instance whose key manager holds the key ('' = a single server's, from before
   * several servers could share a database). Each server rotates its own slots; the bundle holds all.
   */
  owner: string;
  createdAt: number;
  updatedAt: number;
}

/** Journal fields a caller writes; `owner` defaults to ''. */
export type CAJournalInput = Omit<CAJournalEntry, 'createdAt' | 'updatedAt' | 'owner'> & { owner?: string };

/** How a bundle endpoint is authenticated (SPIFFE Federation, section 5). */
export type FederationProfile = 'https_web' | 'https_spiffe';

/**
 * A federation relationship: this server polls `bundleEndpointUrl` for the bundle
 * of `trustDomain`. The fetched bundle is stored with setBundle under that trust
 * domain (never merged with another).
 */
export interface FederationRelationship {
  trustDomain: string; // bare name, never this server's own
  bundleEndpointUrl: string; // https, no userinfo
  profile: FederationProfile;
  /** https_spiffe: the SPIFFE ID the endpoint's X.509-SVID must carry; https_web: null */
  endpointSpiffeId: string | null;
  createdAt: number;
  /** last change of the configuration fields above (not of the refresh status) */
  updatedAt: number;
  lastRefreshAt: number | null;
  /** message of the last failed fetch; null after a success */
  lastError: string | null;
}

export type NewFederationRelationship = Pick<FederationRelationship, 'trustDomain' | 'bundleEndpointUrl' | 'profile' | 'endpointSpiffeId'>;

/** Fields that may be changed; absent = unchanged. Refresh status changes leave updatedAt alone. */
export type FederationRelationshipUpdate = Partial<
  Pick<FederationRelationship, 'bundleEndpointUrl' | 'profile' | 'endpointSpiffeId' | 'lastRefreshAt' | 'lastError'>
>;

/**
 * An SVID the server issued, by holder (see server/ca/svid-ledger.ts): the latest
 * record of a holder replaces the previous one (issue #4, revoke's dependents).
 */
export interface IssuedSVID {
  holder: string;
  /** ca_journal slot id of the signer */
  authorityId: string;
  expiresAt: number;
}

export interface AttestedNodeSummary {
  total: number;
  banned: number;
  /** the unbanned node with the earliest SVID expiry (expiresAt > 0), if any */
  earliest: { spiffeId: string; expiresAt: number } | null;
}

export interface DataStore {
  // --- registration entries ---
  createRegistrationEntry(e: NewRegistrationEntry): Promise<RegistrationEntry>;
  /** Creates all or none, in one transaction. */
  createRegistrationEntries(es: NewRegistrationEntry[]): Promise<RegistrationEntry[]>;
  fetchRegistrationEntry(id: string): Promise<RegistrationEntry | undefined>;
  listRegistrationEntries(q: ListEntriesQuery): Promise<Page<RegistrationEntry>>;
  countRegistrationEntries(): Promise<number>;
  updateRegistrationEntry(id: string, u: RegistrationEntryUpdate): Promise<RegistrationEntry>;
  deleteRegistrationEntry(id: string): Promise<RegistrationEntry>;
  /** Deletes entries whose expires_at is before `now`; returns how many. */
  pruneRegistrationEntries(now: number): Promise<number>;
  /** Current store-wide revision (0 for an empty store). Every entry write bumps it by one. */
  getRevision(): Promise<number>;
  /** Entry events with revision > since, ascending. */
  listEntryEvents(since: number): Promise<EntryEvent[]>;

  // --- attested nodes ---
  createAttestedNode(n: Omit<AttestedNode, 'createdAt' | 'updatedAt'>): Promise<AttestedNode>;
  fetchAttestedNode(spiffeId: string): Promise<AttestedNode | undefined>;
  listAttestedNodes(q: ListNodesQuery): Promise<Page<AttestedNode>>;
  /** Counts in one query (not by paging): all nodes, the banned ones, and the unbanned node whose SVID expires first (ties by SPIFFE ID). */
  summarizeAttestedNodes(): Promise<AttestedNodeSummary>;
  updateAttestedNode(
    spiffeId: string,
    u: Partial<Pick<AttestedNode, 'serialNumber' | 'expiresAt' | 'newSerialNumber' | 'newExpiresAt' | 'selectors' | 'banned'>>,
  ): Promise<AttestedNode>;
  deleteAttestedNode(spiffeId: string): Promise<AttestedNode>;

  // --- join tokens ---
  createJoinToken(t: Omit<JoinToken, 'createdAt'>): Promise<JoinToken>;
  /**
   * Atomically fetches and deletes the token with this hash (one-time use).
   * Returns undefined when there is none; an expired token is deleted and returned
   * so the caller can report expiry.
   */
  consumeJoinToken(tokenHash: string): Promise<JoinToken | undefined>;
  pruneJoinTokens(now: number): Promise<number>;

  // --- bundles (own and federated) ---
  /** Inserts or replaces; sequence is stored as given. */
  setBundle(b: Omit<Bundle, 'updatedAt'>): Promise<Bundle>;
  fetchBundle(trustDomain: string): Promise<Bundle | undefined>;
  listBundles(): Promise<Bundle[]>;
  deleteBundle(trustDomain: string): Promise<void>;

  // --- CA / JWT key journal ---
  putCAJournalEntry(e: CAJournalInput): Promise<CAJournalEntry>;
  listCAJournal(kind?: 'x509' | 'jwt'): Promise<CAJournalEntry[]>;
  deleteCAJournalEntry(id: string): Promise<void>;

  // --- federation relationships (issue #4) ---
  /** ALREADY_EXISTS if one exists for the trust domain; INVALID_ARGUMENT when endpointSpiffeId does not fit the profile. */
  createFederationRelationship(r: NewFederationRelationship): Promise<FederationRelationship>;
  fetchFederationRelationship(trustDomain: string): Promise<FederationRelationship | undefined>;
  /** All relationships, ordered by trust domain. */
  listFederationRelationships(): Promise<FederationRelationship[]>;
  /** NOT_FOUND if there is none. */
  updateFederationRelationship(trustDomain: string, u: FederationRelationshipUpdate): Promise<FederationRelationship>;
  /** NOT_FOUND if there is none. The trust domain's stored bundle is kept. */
  deleteFederationRelationship(trustDomain: string): Promise<FederationRelationship>;

  // --- issued SVIDs by signer (issue #4, key rotation) ---
  /** Upserts by holder, all or none, in one transaction. */
  recordIssuedSVIDs(items: IssuedSVID[]): Promise<void>;
  /** Records naming `authorityId` with expiresAt > now. */
  countIssuedSVIDs(authorityId: string, now: number): Promise<number>;
  /** The unexpired records naming `authorityId`, soonest expiry first, at most `limit` (the console's revoke preview). */
  listIssuedSVIDs(authorityId: string, now: number, limit: number): Promise<IssuedSVID[]>;
  /** Deletes records with expiresAt <= now; returns how many. */
  pruneIssuedSVIDs(now: number): Promise<number>;

  /**
   * Several servers on one database (PostgreSQL): calls `fn` when another server
   * (or this one) changed entries, the own bundle or its journal, or attested nodes,
   * and with 'all' after a lost connection (anything may have changed). Absent on
   * a store only one process uses (SQLite): the process wakes its own waiters.
   */
  subscribe?(fn: (what: StoreChange) => void): () => void;

  close(): Promise<void>;
}

export type StoreChange = 'entries' | 'bundle' | 'nodes' | 'all';
