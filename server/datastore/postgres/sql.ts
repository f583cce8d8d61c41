import type { NormalizedEntryQuery } from '../validation';
import { selectorsKey } from '../validation';

/** The SQL of the PostgreSQL store: constant texts; every value is a bound parameter ($n). */

export const NODE_SELECT = `SELECT n.*,
  (SELECT coalesce(json_agg(json_build_array(s.type, s.value))::text, '[]') FROM node_selectors s WHERE s.node_id = n.spiffe_id) AS selectors
  FROM attested_nodes n`;

export const SQL = {
  bumpRevision: 'UPDATE store_revision SET revision = revision + 1 WHERE id = 1 RETURNING revision',
  /** k revisions at once for a batch of k entries: the batch gets (returned - k, returned] */
  bumpRevisionBy: 'UPDATE store_revision SET revision = revision + $1 WHERE id = 1 RETURNING revision',
  getRevision: 'SELECT revision FROM store_revision WHERE id = 1',
  /** wakes every server listening on the channel once the transaction commits (a revision or sequence, never data) */
  notify: 'SELECT pg_notify($1, $2::text)',
  insertEntry: `INSERT INTO registration_entries
    (id, spiffe_id, parent_id, selectors_key, x509_svid_ttl, jwt_svid_ttl, dns_names, federates_with,
     hint, jwt_audiences, jwt_jti, expires_at, created_at, revision)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING *`,
  /**
   * A batch of entries in one statement: one array per column, element i of each is
   * entry i; $13 is created_at, $14 the batch's first revision (entry i gets $14 + i - 1).
   */
  insertEntries: `INSERT INTO registration_entries
    (id, spiffe_id, parent_id, selectors_key, x509_svid_ttl, jwt_svid_ttl, dns_names, federates_with,
     hint, jwt_audiences, jwt_jti, expires_at, created_at, revision)
    SELECT x.id, x.spiffe_id, x.parent_id, x.selectors_key, x.x509_svid_ttl, x.jwt_svid_ttl, x.dns_names,
      x.federates_with, x.hint, x.jwt_audiences, x.jwt_jti, x.expires_at, $13::bigint, $14::bigint + x.ord - 1
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::integer[], $6::integer[], $7::text[],
      $8::text[], $9::text[], $10::text[], $11::boolean[], $12::bigint[])
      WITH ORDINALITY AS x(id, spiffe_id, parent_id, selectors_key, x509_svid_ttl, jwt_svid_ttl, dns_names,
        federates_with, hint, jwt_audiences, jwt_jti, expires_at, ord)
    ORDER BY x.ord RETURNING *`,
  insertManyEntrySelectors: 'INSERT INTO entry_selectors (entry_id, type, value) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])',
  insertCreateEvents: `INSERT INTO entry_events
    (revision, entry_id, op, old_spiffe_id, old_parent_id, new_spiffe_id, new_parent_id, created_at)
    SELECT $1::bigint + x.ord - 1, x.id, 'create', NULL, NULL, x.spiffe_id, x.parent_id, $5::bigint
    FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS x(id, spiffe_id, parent_id, ord)`,
  updateEntry: `UPDATE registration_entries SET spiffe_id = $2, parent_id = $3, selectors_key = $4,
    x509_svid_ttl = $5, jwt_svid_ttl = $6, dns_names = $7, federates_with = $8, hint = $9,
    jwt_audiences = $10, jwt_jti = $11, expires_at = $12, revision = $13 WHERE id = $1 RETURNING *`,
  insertEntrySelectors: 'INSERT INTO entry_selectors (entry_id, type, value) SELECT $1, t, v FROM unnest($2::text[], $3::text[]) AS x(t, v)',
  deleteEntrySelectors: 'DELETE FROM entry_selectors WHERE entry_id = $1',
  fetchEntry: 'SELECT * FROM registration_entries WHERE id = $1',
  fetchEntryForUpdate: 'SELECT * FROM registration_entries WHERE id = $1 FOR UPDATE',
  deleteEntry: 'DELETE FROM registration_entries WHERE id = $1',
  countEntries: 'SELECT count(*) AS n FROM registration_entries',
  countNodes: 'SELECT count(*)::int AS total, (count(*) FILTER (WHERE banned))::int AS banned FROM attested_nodes',
  earliestNode: 'SELECT spiffe_id, expires_at FROM attested_nodes WHERE NOT banned AND expires_at > 0 ORDER BY expires_at, spiffe_id LIMIT 1',
  expiredEntries: 'SELECT * FROM registration_entries WHERE expires_at < $1 ORDER BY seq FOR UPDATE',
  insertEvent: `INSERT INTO entry_events
    (revision, entry_id, op, old_spiffe_id, old_parent_id, new_spiffe_id, new_parent_id, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
  listEvents: 'SELECT * FROM entry_events WHERE revision > $1 ORDER BY revision',

  insertNode: `INSERT INTO attested_nodes (spiffe_id, attestation_type, serial_number, expires_at,
    new_serial_number, new_expires_at, banned, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)`,
  updateNode: `UPDATE attested_nodes SET serial_number = $2, expires_at = $3, new_serial_number = $4,
    new_expires_at = $5, banned = $6, updated_at = $7 WHERE spiffe_id = $1`,
  insertNodeSelectors: 'INSERT INTO node_selectors (node_id, type, value) SELECT $1, t, v FROM unnest($2::text[], $3::text[]) AS x(t, v)',
  deleteNodeSelectors: 'DELETE FROM node_selectors WHERE node_id = $1',
  fetchNode: `${NODE_SELECT} WHERE n.spiffe_id = $1`,
  lockNode: 'SELECT 1 FROM attested_nodes WHERE spiffe_id = $1 FOR UPDATE',
  deleteNode: 'DELETE FROM attested_nodes WHERE spiffe_id = $1',

  insertJoinToken: 'INSERT INTO join_tokens (token_hash, token_id, expires_at, created_at) VALUES ($1, $2, $3, $4) RETURNING *',
  consumeJoinToken: 'DELETE FROM join_tokens WHERE token_hash = $1 RETURNING *',
  pruneJoinTokens: 'DELETE FROM join_tokens WHERE expires_at < $1',

  upsertBundle: `INSERT INTO bundles (trust_domain, document, sequence, updated_at) VALUES ($1, $2, $3, $4)
    ON CONFLICT (trust_domain) DO UPDATE SET document = excluded.document, sequence = excluded.sequence,
    updated_at = excluded.updated_at RETURNING *`,
  fetchBundle: 'SELECT * FROM bundles WHERE trust_domain = $1',
  listBundles: 'SELECT * FROM bundles ORDER BY trust_domain',
  deleteBundle: 'DELETE FROM bundles WHERE trust_domain = $1',

  upsertJournal: `INSERT INTO ca_journal (id, kind, key_id, state, certificate_der, upstream_chain_der,
    public_jwk, kid, not_before, not_after, owner, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $12, $11, $11)
    ON CONFLICT (id) DO UPDATE SET key_id = excluded.key_id, state = excluded.state,
    certificate_der = excluded.certificate_der, upstream_chain_der = excluded.upstream_chain_der,
    public_jwk = excluded.public_jwk, kid = excluded.kid, not_before = excluded.not_before,
    not_after = excluded.not_after, owner = excluded.owner, updated_at = excluded.updated_at
    WHERE ca_journal.kind = excluded.kind
    RETURNING *`,
  listJournal: 'SELECT * FROM ca_journal WHERE $1::text IS NULL OR kind = $1 ORDER BY seq',
  deleteJournal: 'DELETE FROM ca_journal WHERE id = $1',

  insertFederation: `INSERT INTO federation_relationships (trust_domain, bundle_endpoint_url, profile, endpoint_spiffe_id,
    created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) RETURNING *`,
  fetchFederation: 'SELECT * FROM federation_relationships WHERE trust_domain = $1',
  fetchFederationForUpdate: 'SELECT * FROM federation_relationships WHERE trust_domain = $1 FOR UPDATE',
  listFederations: 'SELECT * FROM federation_relationships ORDER BY trust_domain',
  updateFederation: `UPDATE federation_relationships SET bundle_endpoint_url = $2, profile = $3,
    endpoint_spiffe_id = $4, updated_at = $5, last_refresh_at = $6, last_error = $7 WHERE trust_domain = $1 RETURNING *`,
  deleteFederation: 'DELETE FROM federation_relationships WHERE trust_domain = $1 RETURNING *',

  // holders sorted and deduplicated by the caller: two servers upserting overlapping sets lock rows in one order
  upsertIssued: `INSERT INTO issued_svids (holder, authority_id, expires_at)
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
    ON CONFLICT (holder) DO UPDATE SET authority_id = excluded.authority_id, expires_at = excluded.expires_at`,
  countIssued: 'SELECT count(*) AS n FROM issued_svids WHERE authority_id = $1 AND expires_at > $2',
  listIssued: 'SELECT holder, authority_id, expires_at FROM issued_svids WHERE authority_id = $1 AND expires_at > $2 ORDER BY expires_at, holder LIMIT $3',
  pruneIssued: 'DELETE FROM issued_svids WHERE expires_at <= $1',
} as const;

/** Collects bound values and hands out their `$n` placeholders. */
class Params {
  readonly values: unknown[] = [];
  add(v: unknown): string {
    this.values.push(v);
    return `$${this.values.length}`;
  }
}

/** Builds the SQL (from constant fragments only) and the bound values of a checked entry list query. */
export function entryListQuery(q: NormalizedEntryQuery): { sql: string; values: unknown[] } {
  const p = new Params();
  const where = [`e.seq > ${p.add(q.after)}`];
  if (q.spiffeId !== undefined) where.push(`e.spiffe_id = ${p.add(q.spiffeId)}`);
  if (q.parentId !== undefined) where.push(`e.parent_id = ${p.add(q.parentId)}`);
  if (q.parentIds !== undefined) where.push(`e.parent_id = ANY(${p.add(q.parentIds)}::text[])`);
  if (q.federatesWith !== undefined) where.push(`e.federates_with::jsonb @> jsonb_build_array(${p.add(q.federatesWith)}::text)`);
  if (q.hint !== undefined) where.push(`e.hint = ${p.add(q.hint)}`);
  if (q.selectors !== undefined) {
    const { match, selectors } = q.selectors;
    if (match === 'exact') where.push(`e.selectors_key = ${p.add(selectorsKey(selectors))}`);
    else {
      // the query's selectors as a relation: any number of them binds as two arrays
      const types = p.add(selectors.map((s) => s.type));
      const values = p.add(selectors.map((s) => s.value));
      const qrel = `unnest(${types}::text[], ${values}::text[]) AS q(type, value)`;
      const matching = `SELECT es.entry_id FROM entry_selectors es JOIN ${qrel} ON es.type = q.type AND es.value = q.value`;
      if (match === 'any') where.push(`e.id IN (${matching})`);
      else if (match === 'superset') where.push(`e.id IN (${matching} GROUP BY es.entry_id HAVING count(*) = ${p.add(selectors.length)})`);
      else
        where.push(`e.id IN (${matching}) AND NOT EXISTS (SELECT 1 FROM entry_selectors es WHERE es.entry_id = e.id
          AND NOT EXISTS (SELECT 1 FROM ${qrel} WHERE q.type = es.type AND q.value = es.value))`);
    }
  }
  const limit = p.add(q.pageSize === undefined ? null : q.pageSize + 1);
  if (q.parentIds !== undefined) {
    // Several parents (the authorizer: one agent's entries, or "has any of these children"):
    // filter first, then order. Left to itself, the planner answers ORDER BY seq LIMIT 2
    // by walking the primary key in seq order and filtering, expecting an early match; when
    // there is none it reads every entry (measured 23-60 ms per call at 100,000 entries,
    // the cost of each entry change reaching an agent). The parents' entries are few.
    return {
      sql: `WITH m AS MATERIALIZED (SELECT e.* FROM registration_entries e WHERE ${where.join(' AND ')})
        SELECT * FROM m ORDER BY seq LIMIT ${limit}`,
      values: p.values,
    };
  }
  return { sql: `SELECT e.* FROM registration_entries e WHERE ${where.join(' AND ')} ORDER BY e.seq LIMIT ${limit}`, values: p.values };
}

/** Same for attested nodes. */
export function nodeListQuery(q: { attestationType?: string; banned?: boolean; pageSize?: number; after: number }): {
  sql: string;
  values: unknown[];
} {
  const p = new Params();
  const where = [`n.seq > ${p.add(q.after)}`];
  if (q.attestationType !== undefined) where.push(`n.attestation_type = ${p.add(q.attestationType)}`);
  if (q.banned !== undefined) where.push(`n.banned = ${p.add(q.banned)}`);
  const limit = p.add(q.pageSize === undefined ? null : q.pageSize + 1);
  return { sql: `${NODE_SELECT} WHERE ${where.join(' AND ')} ORDER BY n.seq LIMIT ${limit}`, values: p.values };
}
