import { checkAudienceAllowlist } from '../../common/jwtsvid/audience-allowlist';
import { invalidArgument } from '../../common/errors';
import { sortSelectors, validateSelector, type Selector } from '../../common/selector';
import type {
  AttestedNode,
  Bundle,
  CAJournalEntry,
  CAJournalInput,
  FederationRelationship,
  IssuedSVID,
  JoinToken,
  ListEntriesQuery,
  ListNodesQuery,
  NewRegistrationEntry,
  SelectorMatch,
} from './datastore';

/**
 * Input checks every DataStore runs before it touches its database, whatever the
 * engine: each message names the field, and nothing is written before all of a
 * call's input passes. The stores differ only in how they store what passes.
 */

export const MAX_PAGE_SIZE = 1000;

// --- primitives ---

export function obj(v: unknown, field: string): void {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalidArgument(`${field} must be an object`);
}

export function str(v: unknown, field: string, allowEmpty = false): string {
  if (typeof v !== 'string' || (!allowEmpty && v === '')) {
    throw invalidArgument(`${field} must be a ${allowEmpty ? '' : 'non-empty '}string`);
  }
  return v;
}

export function nonNegInt(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw invalidArgument(`${field} must be a non-negative integer`);
  }
  return v;
}

export function bool(v: unknown, field: string): boolean {
  if (typeof v !== 'boolean') throw invalidArgument(`${field} must be a boolean`);
  return v;
}

export function oneOf<T extends string>(v: unknown, allowed: readonly T[], field: string): T {
  if (!allowed.includes(v as T)) throw invalidArgument(`${field} must be one of ${allowed.join(', ')}`);
  return v as T;
}

function spiffeID(v: unknown, field: string): string {
  if (typeof v !== 'string' || !v.startsWith('spiffe://') || v.length <= 'spiffe://'.length) {
    throw invalidArgument(`${field} must be a spiffe:// id`);
  }
  return v;
}

/** A trust domain name as the SPIFFE spec allows it: no scheme, lower case. */
export function trustDomainName(v: unknown, field: string): string {
  if (typeof v !== 'string' || !/^[a-z0-9._-]+$/.test(v)) {
    throw invalidArgument(`${field} must be a trust domain name without scheme (lower-case letters, digits, . _ -)`);
  }
  return v;
}

export function strList(v: unknown, field: string, each: (v: unknown, field: string) => string): string[] {
  if (!Array.isArray(v)) throw invalidArgument(`${field} must be an array`);
  return v.map((x, i) => each(x, `${field}[${i}]`));
}

function blob(v: unknown, field: string): Buffer | null {
  if (v === null) return null;
  if (!(v instanceof Uint8Array)) throw invalidArgument(`${field} must be a Buffer or null`);
  return Buffer.from(v);
}

function isJSONObject(s: string): boolean {
  try {
    const v: unknown = JSON.parse(s);
    return typeof v === 'object' && v !== null && !Array.isArray(v);
  } catch {
    return false;
  }
}

/** Drops undefined values ("unchanged") and refuses fields that cannot be updated. */
export function checkPatch<T extends object>(u: T, allowed: Set<string>, what: string): Partial<T> {
  obj(u, 'update');
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(u)) {
    if (v === undefined) continue;
    if (!allowed.has(k)) throw invalidArgument(`${what} field ${k} cannot be updated`);
    out[k] = v;
  }
  return out as Partial<T>;
}

// --- selectors ---

/**
 * Validates selectors by the rules of common/selector.ts (the same ones the CLI
 * and admin API apply) and returns them as a set: sorted by (type, value) in code
 * point order, duplicates dropped. Code point order is also the byte order of
 * UTF-8, so SQLite's BINARY and PostgreSQL's "C" collation sort the same way.
 */
export function selectorSet(v: unknown, field: string, allowEmpty = false): Selector[] {
  if (!Array.isArray(v) || (!allowEmpty && v.length === 0)) {
    throw invalidArgument(`${field} must be a ${allowEmpty ? '' : 'non-empty '}array of selectors`);
  }
  return sortSelectors(
    v.map((s: unknown, i) => {
      obj(s, `${field}[${i}]`);
      const { type, value } = s as Selector;
      str(type, `${field}[${i}].type`);
      str(value, `${field}[${i}].value`);
      try {
        return validateSelector({ type, value });
      } catch (err) {
        throw invalidArgument(`${field}[${i}]: ${(err as Error).message}`);
      }
    }),
  );
}

/**
 * Canonical text of a selector set (JSON pairs of a sorted set, so "a:b"/"c" and
 * "a"/"b:c" stay distinct). Both stores keep it in `selectors_key`: a unique index
 * on it with spiffe_id and parent_id makes "same entry" race-free across writers.
 */
export const selectorsKey = (s: readonly Selector[]): string => JSON.stringify(s.map((x) => [x.type, x.value]));

/** The selector set held in a `selectors_key` (or any JSON list of pairs). */
export const selectorsFromKey = (json: string): Selector[] =>
  sortSelectors((JSON.parse(json) as [string, string][]).map(([type, value]) => ({ type, value })));

// --- registration entries ---

export interface NormalizedEntry {
  id?: string;
  spiffeId: string;
  parentId: string;
  selectors: Selector[];
  selectorsKey: string;
  x509SvidTtl: number;
  jwtSvidTtl: number;
  dnsNames: string[];
  federatesWith: string[];
  hint: string;
  jwtAudiences: string[];
  jwtJti: boolean;
  expiresAt: number | null;
}

export function normalizeEntry(e: NewRegistrationEntry, what: string): NormalizedEntry {
  obj(e, what);
  const f = (name: string) => `${what}.${name}`;
  const selectors = selectorSet(e.selectors, f('selectors'));
  return {
    id: e.id === undefined ? undefined : str(e.id, f('id')),
    spiffeId: spiffeID(e.spiffeId, f('spiffeId')),
    parentId: spiffeID(e.parentId, f('parentId')),
    selectors,
    selectorsKey: selectorsKey(selectors),
    x509SvidTtl: nonNegInt(e.x509SvidTtl, f('x509SvidTtl')),
    jwtSvidTtl: nonNegInt(e.jwtSvidTtl, f('jwtSvidTtl')),
    dnsNames: strList(e.dnsNames, f('dnsNames'), (v, n) => str(v, n)),
    federatesWith: strList(e.federatesWith, f('federatesWith'), trustDomainName),
    hint: str(e.hint, f('hint'), true),
    jwtAudiences: checkAudienceAllowlist(e.jwtAudiences ?? [], f('jwtAudiences')),
    jwtJti: bool(e.jwtJti ?? false, f('jwtJti')),
    expiresAt: e.expiresAt === null ? null : nonNegInt(e.expiresAt, f('expiresAt')),
  };
}

export const ENTRY_UPDATABLE = new Set([
  'spiffeId', 'parentId', 'selectors', 'x509SvidTtl', 'jwtSvidTtl', 'dnsNames',
  'federatesWith', 'hint', 'jwtAudiences', 'jwtJti', 'expiresAt',
]);

/** A list query's filters, checked; selectors as a set. */
export interface NormalizedEntryQuery {
  spiffeId?: string;
  parentId?: string;
  parentIds?: string[];
  federatesWith?: string;
  hint?: string;
  selectors?: { selectors: Selector[]; match: SelectorMatch };
  pageSize?: number;
  /** the last `seq` of the previous page; 0 for the first */
  after: number;
}

export function normalizeEntryQuery(q: ListEntriesQuery): NormalizedEntryQuery {
  q = q ?? {};
  obj(q, 'query');
  const out: NormalizedEntryQuery = { pageSize: checkPageSize(q.pageSize), after: decodePageToken(q.pageToken, 'e') };
  if (q.spiffeId !== undefined) out.spiffeId = str(q.spiffeId, 'spiffeId');
  if (q.parentId !== undefined) out.parentId = str(q.parentId, 'parentId');
  if (q.parentIds !== undefined) out.parentIds = strList(q.parentIds, 'parentIds', (v, f) => str(v, f));
  if (q.federatesWith !== undefined) out.federatesWith = str(q.federatesWith, 'federatesWith');
  if (q.hint !== undefined) out.hint = str(q.hint, 'hint', true);
  if (q.selectors !== undefined) {
    obj(q.selectors, 'selectors');
    out.selectors = {
      match: oneOf(q.selectors.match, ['exact', 'subset', 'superset', 'any'] as const, 'selectors.match'),
      selectors: selectorSet(q.selectors.selectors, 'selectors.selectors'),
    };
  }
  return out;
}

// --- attested nodes ---

export type NormalizedNode = Omit<AttestedNode, 'createdAt' | 'updatedAt'>;

export function normalizeNode(n: NormalizedNode): NormalizedNode {
  obj(n, 'attested node');
  return {
    spiffeId: spiffeID(n.spiffeId, 'spiffeId'),
    attestationType: str(n.attestationType, 'attestationType'),
    serialNumber: str(n.serialNumber, 'serialNumber', true),
    expiresAt: nonNegInt(n.expiresAt, 'expiresAt'),
    newSerialNumber: str(n.newSerialNumber, 'newSerialNumber', true),
    newExpiresAt: nonNegInt(n.newExpiresAt, 'newExpiresAt'),
    selectors: selectorSet(n.selectors, 'selectors', true),
    banned: bool(n.banned, 'banned'),
  };
}

export const NODE_UPDATABLE = new Set(['serialNumber', 'expiresAt', 'newSerialNumber', 'newExpiresAt', 'selectors', 'banned']);

export function normalizeNodeQuery(q: ListNodesQuery): { attestationType?: string; banned?: boolean; pageSize?: number; after: number } {
  q = q ?? {};
  obj(q, 'query');
  return {
    attestationType: q.attestationType === undefined ? undefined : str(q.attestationType, 'attestationType'),
    banned: q.banned === undefined ? undefined : bool(q.banned, 'banned'),
    pageSize: checkPageSize(q.pageSize),
    after: decodePageToken(q.pageToken, 'n'),
  };
}

// --- join tokens, bundles, issued SVIDs ---

export function normalizeJoinToken(t: Omit<JoinToken, 'createdAt'>): Omit<JoinToken, 'createdAt'> {
  obj(t, 'join token');
  if (typeof t.tokenHash !== 'string' || !/^[0-9a-f]{64}$/.test(t.tokenHash)) {
    // also keeps a raw secret from ever being stored by mistake
    throw invalidArgument('tokenHash must be a lower-case hex sha-256 digest');
  }
  return { tokenHash: t.tokenHash, tokenId: str(t.tokenId, 'tokenId'), expiresAt: nonNegInt(t.expiresAt, 'expiresAt') };
}

export function normalizeBundle(b: Omit<Bundle, 'updatedAt'>): Omit<Bundle, 'updatedAt'> {
  obj(b, 'bundle');
  const trustDomain = trustDomainName(b.trustDomain, 'trustDomain');
  if (typeof b.document !== 'string' || !isJSONObject(b.document)) {
    throw invalidArgument('bundle document must be a JSON object');
  }
  return { trustDomain, document: b.document, sequence: nonNegInt(b.sequence, 'sequence') };
}

export function normalizeIssuedSVIDs(items: IssuedSVID[]): IssuedSVID[] {
  if (!Array.isArray(items)) throw invalidArgument('items must be an array');
  return items.map((it, i) => {
    obj(it, `items[${i}]`);
    return {
      holder: str(it.holder, `items[${i}].holder`),
      authorityId: str(it.authorityId, `items[${i}].authorityId`),
      expiresAt: nonNegInt(it.expiresAt, `items[${i}].expiresAt`),
    };
  });
}

// --- CA / JWT key journal ---

export const JOURNAL_KINDS = ['x509', 'jwt'] as const;
const STATES = ['prepared', 'active', 'retired', 'tainted', 'revoked'] as const;

export type NormalizedJournal = Omit<CAJournalEntry, 'createdAt' | 'updatedAt'>;

export function normalizeJournal(e: CAJournalInput): NormalizedJournal {
  obj(e, 'ca journal entry');
  const notBefore = nonNegInt(e.notBefore, 'notBefore');
  const notAfter = nonNegInt(e.notAfter, 'notAfter');
  if (notAfter < notBefore) throw invalidArgument('notAfter must not be before notBefore');
  return {
    id: str(e.id, 'id'),
    kind: oneOf(e.kind, JOURNAL_KINDS, 'kind'),
    keyId: str(e.keyId, 'keyId'),
    state: oneOf(e.state, STATES, 'state'),
    certificateDer: blob(e.certificateDer, 'certificateDer'),
    upstreamChainDer: blob(e.upstreamChainDer, 'upstreamChainDer'),
    publicJwk: e.publicJwk === null ? null : str(e.publicJwk, 'publicJwk'),
    kid: str(e.kid, 'kid', true),
    notBefore,
    notAfter,
    owner: e.owner === undefined ? '' : str(e.owner, 'owner', true),
  };
}

// --- federation relationships ---

const PROFILES = ['https_web', 'https_spiffe'] as const;
export const FEDERATION_UPDATABLE = new Set(['bundleEndpointUrl', 'profile', 'endpointSpiffeId', 'lastRefreshAt', 'lastError']);
/** the fields whose change moves updatedAt (a refresh status change does not) */
export const FEDERATION_CONFIG_FIELDS = ['bundleEndpointUrl', 'profile', 'endpointSpiffeId'] as const;

/**
 * The store's own checks (the admin API checks URLs and IDs more closely): an
 * https URL, a known profile, and an endpoint SPIFFE ID exactly when the profile
 * is https_spiffe.
 */
export function normalizeFederation(
  r: Pick<FederationRelationship, 'bundleEndpointUrl' | 'profile' | 'endpointSpiffeId'>,
  trustDomain: string,
): Pick<FederationRelationship, 'trustDomain' | 'bundleEndpointUrl' | 'profile' | 'endpointSpiffeId'> {
  const url = str(r.bundleEndpointUrl, 'bundleEndpointUrl');
  if (!url.startsWith('https://')) throw invalidArgument('bundleEndpointUrl must be an https:// url');
  const profile = oneOf(r.profile, PROFILES, 'profile');
  const id = r.endpointSpiffeId === null || r.endpointSpiffeId === undefined ? null : spiffeID(r.endpointSpiffeId, 'endpointSpiffeId');
  if ((profile === 'https_spiffe') !== (id !== null)) {
    throw invalidArgument(profile === 'https_spiffe' ? 'endpointSpiffeId is required for https_spiffe' : 'endpointSpiffeId must be null for https_web');
  }
  return { trustDomain, bundleEndpointUrl: url, profile, endpointSpiffeId: id };
}

/** The refresh status of a merged federation update, checked. */
export function federationStatus(merged: Pick<FederationRelationship, 'lastRefreshAt' | 'lastError'>) {
  return {
    lastRefreshAt: merged.lastRefreshAt === null ? null : nonNegInt(merged.lastRefreshAt, 'lastRefreshAt'),
    lastError: merged.lastError === null ? null : str(merged.lastError, 'lastError'),
  };
}

// --- paging ---

export function checkPageSize(v: unknown): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > MAX_PAGE_SIZE) {
    throw invalidArgument(`pageSize must be an integer from 1 to ${MAX_PAGE_SIZE}`);
  }
  return v as number;
}

/** Page tokens are base64url JSON {k: table, a: last seq}; opaque to callers. */
export function encodePageToken(kind: string, after: number): string {
  return Buffer.from(JSON.stringify({ k: kind, a: after })).toString('base64url');
}

export function decodePageToken(token: unknown, kind: string): number {
  if (token === undefined || token === '') return 0; // '' is protobuf's "no token"
  const bad = () => invalidArgument('invalid page token');
  if (typeof token !== 'string') throw bad();
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw bad();
  }
  const after = (v as { a?: unknown })?.a;
  // re-encoding must give the same text: base64url decoding skips junk characters
  if (typeof after !== 'number' || !Number.isSafeInteger(after) || after < 0 || encodePageToken(kind, after) !== token) {
    throw bad();
  }
  return after;
}

/** Cuts the pageSize+1 rows fetched into a page; the extra row only says there is more. */
export function page<R extends { seq: number | string }, T>(
  rows: R[],
  pageSize: number | undefined,
  kind: string,
  map: (r: R) => T,
): { items: T[]; nextPageToken?: string } {
  if (pageSize === undefined || rows.length <= pageSize) return { items: rows.map(map) };
  const items = rows.slice(0, pageSize);
  return { items: items.map(map), nextPageToken: encodePageToken(kind, Number(items[items.length - 1]!.seq)) };
}
