import type BetterSqlite3 from 'better-sqlite3';
import type { EntryRow } from '../rows';
import type { NormalizedEntryQuery } from '../validation';
import { selectorsKey } from '../validation';

type Db = BetterSqlite3.Database;
export type Stmt = BetterSqlite3.Statement<unknown[], unknown>;

/** The SQL of the SQLite store: prepared once per connection; every value is a bound parameter. */

function prepareAll<K extends string>(db: Db, sql: Record<K, string>): Record<K, Stmt> {
  const out = {} as Record<K, Stmt>;
  for (const k of Object.keys(sql) as K[]) out[k] = db.prepare(sql[k]);
  return out;
}

/**
 * The entry columns a listing reads, in this order: listings return them as
 * arrays (better-sqlite3's `raw` mode) and {@link entryRowFromColumns} names them.
 * Building a keyed row object per row costs better-sqlite3 more than SQLite's own
 * work: 10,000 rows (a fresh agent's sync) took ~50 ms as objects and ~15 ms as
 * arrays on this machine kind.
 */
const ENTRY_COLUMNS = [
  'seq', 'id', 'spiffe_id', 'parent_id', 'selectors_key', 'x509_svid_ttl', 'jwt_svid_ttl', 'dns_names',
  'federates_with', 'hint', 'jwt_audiences', 'jwt_jti', 'expires_at', 'created_at', 'revision',
] as const satisfies ReadonlyArray<keyof EntryRow>;
const ENTRY_SELECT = ENTRY_COLUMNS.map((c) => `e.${c}`).join(', ');

/** An entry row from the columns of a listing ({@link ENTRY_COLUMNS} order). */
export function entryRowFromColumns(c: unknown[]): EntryRow {
  return {
    seq: c[0] as number,
    id: c[1] as string,
    spiffe_id: c[2] as string,
    parent_id: c[3] as string,
    selectors_key: c[4] as string,
    x509_svid_ttl: c[5] as number,
    jwt_svid_ttl: c[6] as number,
    dns_names: c[7] as string,
    federates_with: c[8] as string,
    hint: c[9] as string,
    jwt_audiences: c[10] as string,
    jwt_jti: c[11] as EntryRow['jwt_jti'],
    expires_at: c[12] as number | null,
    created_at: c[13] as number,
    revision: c[14] as number,
  };
}

export const NODE_SELECT = `SELECT n.*,
  (SELECT json_group_array(json_array(s.type, s.value)) FROM node_selectors s WHERE s.node_id = n.spiffe_id) AS selectors
  FROM attested_nodes n`;

const STORE_SQL = {
  bumpRevision: 'UPDATE store_revision SET revision = revision + 1 WHERE id = 1 RETURNING revision',
  getRevision: 'SELECT revision FROM store_revision WHERE id = 1',
  insertEntry: `INSERT INTO registration_entries
    (id, spiffe_id, parent_id, selectors_key, x509_svid_ttl, jwt_svid_ttl, dns_names, federates_with,
     admin, downstream, hint, jwt_audiences, jwt_jti, expires_at, created_at, revision)
    VALUES (@id, @spiffe_id, @parent_id, @selectors_key, @x509_svid_ttl, @jwt_svid_ttl, @dns_names,
     @federates_with, 0, 0, @hint, @jwt_audiences, @jwt_jti, @expires_at, @created_at, @revision)`,
  updateEntry: `UPDATE registration_entries SET spiffe_id = @spiffe_id, parent_id = @parent_id,
    selectors_key = @selectors_key, x509_svid_ttl = @x509_svid_ttl, jwt_svid_ttl = @jwt_svid_ttl,
    dns_names = @dns_names, federates_with = @federates_with,
    hint = @hint, jwt_audiences = @jwt_audiences, jwt_jti = @jwt_jti, expires_at = @expires_at, revision = @revision WHERE id = @id`,
  insertEntrySelector: 'INSERT INTO entry_selectors (entry_id, type, value) VALUES (?, ?, ?)',
  deleteEntrySelectors: 'DELETE FROM entry_selectors WHERE entry_id = ?',
  fetchEntry: 'SELECT * FROM registration_entries WHERE id = ?',
  deleteEntry: 'DELETE FROM registration_entries WHERE id = ?',
  countEntries: 'SELECT COUNT(*) AS n FROM registration_entries',
  countNodes: 'SELECT COUNT(*) AS total, COALESCE(SUM(banned), 0) AS banned FROM attested_nodes',
  earliestNode: 'SELECT spiffe_id, expires_at FROM attested_nodes WHERE banned = 0 AND expires_at > 0 ORDER BY expires_at, spiffe_id LIMIT 1',
  expiredEntries: 'SELECT * FROM registration_entries WHERE expires_at < ? ORDER BY seq',
  insertEvent: `INSERT INTO entry_events
    (revision, entry_id, op, old_spiffe_id, old_parent_id, new_spiffe_id, new_parent_id, created_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
  listEvents: 'SELECT * FROM entry_events WHERE revision > ? ORDER BY revision',

  insertNode: `INSERT INTO attested_nodes (spiffe_id, attestation_type, serial_number, expires_at,
    new_serial_number, new_expires_at, banned, created_at, updated_at)
    VALUES (@spiffe_id, @attestation_type, @serial_number, @expires_at, @new_serial_number,
    @new_expires_at, @banned, @created_at, @updated_at)`,
  updateNode: `UPDATE attested_nodes SET serial_number = @serial_number, expires_at = @expires_at,
    new_serial_number = @new_serial_number, new_expires_at = @new_expires_at, banned = @banned,
    updated_at = @updated_at WHERE spiffe_id = @spiffe_id`,
  insertNodeSelector: 'INSERT INTO node_selectors (node_id, type, value) VALUES (?, ?, ?)',
  deleteNodeSelectors: 'DELETE FROM node_selectors WHERE node_id = ?',
  fetchNode: `${NODE_SELECT} WHERE n.spiffe_id = ?`,
  deleteNode: 'DELETE FROM attested_nodes WHERE spiffe_id = ?',

  insertJoinToken: `INSERT INTO join_tokens (token_hash, token_id, expires_at, created_at)
    VALUES (?, ?, ?, ?) RETURNING *`,
  consumeJoinToken: 'DELETE FROM join_tokens WHERE token_hash = ? RETURNING *',
  pruneJoinTokens: 'DELETE FROM join_tokens WHERE expires_at < ?',

  upsertBundle: `INSERT INTO bundles (trust_domain, document, sequence, updated_at) VALUES (?, ?, ?, ?)
    ON CONFLICT (trust_domain) DO UPDATE SET document = excluded.document, sequence = excluded.sequence,
    updated_at = excluded.updated_at RETURNING *`,
  fetchBundle: 'SELECT * FROM bundles WHERE trust_domain = ?',
  listBundles: 'SELECT * FROM bundles ORDER BY trust_domain',
  deleteBundle: 'DELETE FROM bundles WHERE trust_domain = ?',

  upsertJournal: `INSERT INTO ca_journal (id, kind, key_id, state, certificate_der, upstream_chain_der,
    public_jwk, kid, not_before, not_after, owner, created_at, updated_at)
    VALUES (@id, @kind, @key_id, @state, @certificate_der, @upstream_chain_der, @public_jwk, @kid,
    @not_before, @not_after, @owner, @created_at, @updated_at)
    ON CONFLICT (id) DO UPDATE SET key_id = excluded.key_id, state = excluded.state,
    certificate_der = excluded.certificate_der, upstream_chain_der = excluded.upstream_chain_der,
    public_jwk = excluded.public_jwk, kid = excluded.kid, not_before = excluded.not_before,
    not_after = excluded.not_after, owner = excluded.owner, updated_at = excluded.updated_at
    WHERE ca_journal.kind = excluded.kind
    RETURNING *`,
  listJournal: 'SELECT * FROM ca_journal WHERE @kind IS NULL OR kind = @kind ORDER BY seq',
  deleteJournal: 'DELETE FROM ca_journal WHERE id = ?',
};

export function prepareStatements(db: Db): Record<keyof typeof STORE_SQL, Stmt> {
  return prepareAll(db, STORE_SQL);
}

// Query selectors arrive as one JSON parameter and become the relation q, so any
// number of selectors binds as a single value. MATERIALIZED: parsed once per query.
const SELECTOR_CTE = `WITH q(type, value) AS MATERIALIZED (
  SELECT json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]') FROM json_each(@selectors) j) `;
const MATCHING = 'SELECT es.entry_id FROM entry_selectors es JOIN q ON es.type = q.type AND es.value = q.value';
const SELECTOR_CLAUSE = {
  exact: 'e.selectors_key = @selectors_key', // canonical form, served by the unique index
  any: `e.id IN (${MATCHING})`,
  // every given selector matched: the count of matches equals the (deduplicated) count given
  superset: `e.id IN (${MATCHING} GROUP BY es.entry_id HAVING COUNT(*) = @selector_count)`,
  // matches at least one, and has none outside the given set
  subset: `e.id IN (${MATCHING}) AND NOT EXISTS (SELECT 1 FROM entry_selectors es WHERE es.entry_id = e.id
    AND NOT EXISTS (SELECT 1 FROM q WHERE q.type = es.type AND q.value = es.value))`,
} as const;

/** Builds the SQL (from constant fragments only) and the bound values of a checked list query. */
export function entryListQuery(q: NormalizedEntryQuery): { sql: string; params: Record<string, unknown> } {
  const where = ['e.seq > @after'];
  const params: Record<string, unknown> = { after: q.after, limit: q.pageSize === undefined ? -1 : q.pageSize + 1 };
  let cte = '';
  if (q.spiffeId !== undefined) {
    where.push('e.spiffe_id = @spiffe_id');
    params.spiffe_id = q.spiffeId;
  }
  if (q.parentId !== undefined) {
    where.push('e.parent_id = @parent_id');
    params.parent_id = q.parentId;
  }
  if (q.parentIds !== undefined) {
    where.push('e.parent_id IN (SELECT value FROM json_each(@parent_ids))');
    params.parent_ids = JSON.stringify(q.parentIds);
  }
  if (q.federatesWith !== undefined) {
    where.push('EXISTS (SELECT 1 FROM json_each(e.federates_with) f WHERE f.value = @federates_with)');
    params.federates_with = q.federatesWith;
  }
  if (q.hint !== undefined) {
    where.push('e.hint = @hint');
    params.hint = q.hint;
  }
  if (q.selectors !== undefined) {
    const { match, selectors } = q.selectors;
    if (match === 'exact') params.selectors_key = selectorsKey(selectors);
    else {
      cte = SELECTOR_CTE;
      params.selectors = selectorsKey(selectors);
      if (match === 'superset') params.selector_count = selectors.length;
    }
    where.push(SELECTOR_CLAUSE[match]);
  }
  const sql = `${cte}SELECT ${ENTRY_SELECT} FROM registration_entries e WHERE ${where.join(' AND ')} ORDER BY e.seq LIMIT @limit`;
  return { sql, params };
}

/** Same for attested nodes. */
export function nodeListQuery(q: { attestationType?: string; banned?: boolean; pageSize?: number; after: number }): {
  sql: string;
  params: Record<string, unknown>;
} {
  const where = ['n.seq > @after'];
  const params: Record<string, unknown> = { after: q.after, limit: q.pageSize === undefined ? -1 : q.pageSize + 1 };
  if (q.attestationType !== undefined) {
    where.push('n.attestation_type = @attestation_type');
    params.attestation_type = q.attestationType;
  }
  if (q.banned !== undefined) {
    where.push('n.banned = @banned');
    params.banned = q.banned ? 1 : 0;
  }
  return { sql: `${NODE_SELECT} WHERE ${where.join(' AND ')} ORDER BY n.seq LIMIT @limit`, params };
}

const FEDERATION_SQL = {
  insert: `INSERT INTO federation_relationships (trust_domain, bundle_endpoint_url, profile, endpoint_spiffe_id,
    created_at, updated_at) VALUES (@trust_domain, @bundle_endpoint_url, @profile, @endpoint_spiffe_id,
    @created_at, @updated_at) RETURNING *`,
  fetch: 'SELECT * FROM federation_relationships WHERE trust_domain = ?',
  list: 'SELECT * FROM federation_relationships ORDER BY trust_domain',
  update: `UPDATE federation_relationships SET bundle_endpoint_url = @bundle_endpoint_url, profile = @profile,
    endpoint_spiffe_id = @endpoint_spiffe_id, updated_at = @updated_at, last_refresh_at = @last_refresh_at,
    last_error = @last_error WHERE trust_domain = @trust_domain RETURNING *`,
  remove: 'DELETE FROM federation_relationships WHERE trust_domain = ? RETURNING *',
};

export function prepareFederationStatements(db: Db): Record<keyof typeof FEDERATION_SQL, Stmt> {
  return prepareAll(db, FEDERATION_SQL);
}

const ISSUED_SVID_SQL = {
  upsert: `INSERT INTO issued_svids (holder, authority_id, expires_at) VALUES (@holder, @authority_id, @expires_at)
    ON CONFLICT (holder) DO UPDATE SET authority_id = excluded.authority_id, expires_at = excluded.expires_at`,
  count: 'SELECT count(*) AS n FROM issued_svids WHERE authority_id = ? AND expires_at > ?',
  list: 'SELECT holder, authority_id, expires_at FROM issued_svids WHERE authority_id = ? AND expires_at > ? ORDER BY expires_at, holder LIMIT ?',
  prune: 'DELETE FROM issued_svids WHERE expires_at <= ?',
};

export function prepareIssuedSVIDStatements(db: Db): Record<keyof typeof ISSUED_SVID_SQL, Stmt> {
  return prepareAll(db, ISSUED_SVID_SQL);
}
