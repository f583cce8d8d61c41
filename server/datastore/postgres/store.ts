import { newEntryId } from '../entry-id';
import pg from 'pg';
import { TesseraError, invalidArgument, notFound, unavailable } from '../../../common/errors';
import { unixNow } from '../../../common/clock';
import type {
  AttestedNode,
  AttestedNodeSummary,
  Bundle,
  CAJournalEntry,
  CAJournalInput,
  DataStore,
  EntryEvent,
  FederationRelationship,
  FederationRelationshipUpdate,
  IssuedSVID,
  JoinToken,
  ListEntriesQuery,
  ListNodesQuery,
  NewFederationRelationship,
  NewRegistrationEntry,
  Page,
  RegistrationEntry,
  RegistrationEntryUpdate,
  StoreChange,
} from '../datastore';
import { defaultMigrationsDir, type MigrateLog } from '../migrations';
import {
  ENTRY_UPDATABLE,
  FEDERATION_CONFIG_FIELDS,
  FEDERATION_UPDATABLE,
  JOURNAL_KINDS,
  NODE_UPDATABLE,
  checkPatch,
  federationStatus,
  nonNegInt,
  normalizeBundle,
  normalizeEntry,
  normalizeEntryQuery,
  normalizeFederation,
  normalizeIssuedSVIDs,
  normalizeJoinToken,
  normalizeJournal,
  normalizeNode,
  normalizeNodeQuery,
  obj,
  oneOf,
  page,
  str,
  trustDomainName,
  type NormalizedEntry,
  type NormalizedNode,
} from '../validation';
import { mapPgError, mapUnique, isRetryable } from './errors';
import { migratePostgres } from './migrate';
import {
  type BundleRow,
  type EntryRow,
  type EventRow,
  type FederationRow,
  type JoinTokenRow,
  type JournalRow,
  type NodeRow,
  toBundle,
  toEntry,
  toEvent,
  toFederation,
  toJoinToken,
  toJournal,
  toNode,
} from '../rows';
import { SQL, entryListQuery, nodeListQuery } from './sql';
import { ChangeListener } from './listener';
import { redactUrl } from './url';

/** Where and how to connect; see the README's "PostgreSQL" section. */
export interface PostgresOpenOptions {
  /** postgresql://user:password@host:port/db (the password is never logged; PGPASSWORD and ~/.pgpass work too) */
  url: string;
  /** connections in this server's pool (default 10) */
  poolSize?: number;
  /** per statement, enforced by PostgreSQL (default 5000 ms); a dead database then fails a request instead of hanging it */
  statementTimeoutMs?: number;
  /** to get a connection from the pool or open one (default 5000 ms) */
  connectTimeoutMs?: number;
  /** the schema (search_path) Tessera's tables live in; default: the database's default (public) */
  schema?: string;
  /** defaults to migrations/postgres */
  migrationsDir?: string;
  /** Unix seconds; defaults to the system clock */
  now?: () => number;
  /** receives one line per applied schema migration, and pool errors */
  log?: MigrateLog & { warn?(obj: Record<string, unknown>, msg: string): void };
}

type Q = Pick<pg.PoolClient, 'query'>;

const BIGINT_OID = 20;
/** BIGINT columns (times, revisions, seq) fit in a double: Unix seconds and counters stay below 2^53. */
const types = new pg.TypeOverrides();
types.setTypeParser(BIGINT_OID, (v: string) => Number(v));

/** Times a transaction is run again after a serialization failure or a deadlock. */
const MAX_ATTEMPTS = 4;

/**
 * The PostgreSQL DataStore (`pg` Pool). It keeps the SQLite store's guarantees for
 * several servers on one database: every entry write takes the single revision
 * row's lock first, so revisions are handed out in commit order across servers
 * and an event stream read from any server never skips one; join tokens are
 * consumed by one DELETE ... RETURNING (one server wins); every entry write sends
 * NOTIFY tessera_entries with its revision so the other servers wake their
 * agents' long polls at once. Errors are the same typed errors as SQLite's; an
 * unreachable database is UNAVAILABLE, and the pool reconnects by itself.
 */
export class PostgresDataStore implements DataStore {
  private closed = false;
  private listener?: ChangeListener;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly now: () => number,
    readonly description: string,
    private readonly connection: pg.ClientConfig,
    private readonly channelSuffix: string,
    private readonly log?: PostgresOpenOptions['log'],
  ) {}

  /** Connects, applies pending migrations (under an advisory lock) and returns the store. */
  static async open(opts: PostgresOpenOptions): Promise<PostgresDataStore> {
    const description = redactUrl(opts.url);
    const statementTimeout = opts.statementTimeoutMs ?? 5000;
    const options = [`-c statement_timeout=${Math.floor(statementTimeout)}`];
    if (opts.schema !== undefined) {
      if (!/^[a-z_][a-z0-9_]*$/.test(opts.schema)) throw invalidArgument('datastore schema must be a plain lower-case identifier');
      options.push(`-c search_path=${opts.schema}`);
    }
    const connection: pg.ClientConfig = { connectionString: opts.url, connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000, options: options.join(' '), types };
    const pool = new pg.Pool({ ...connection, max: opts.poolSize ?? 10, idleTimeoutMillis: 30_000 });
    // An idle connection that dies (database restart) emits 'error' on the pool; without
    // a listener that would crash the process. The pool drops it and opens a new one.
    pool.on('error', (err) => opts.log?.warn?.({ code: (err as { code?: string }).code, datastore: description }, 'datastore connection lost; reconnecting'));
    const now = opts.now ?? (() => unixNow());
    try {
      await migratePostgres(pool, opts.migrationsDir ?? defaultMigrationsDir('postgres'), () => Math.floor(now()), opts.log);
    } catch (err) {
      await pool.end().catch(() => undefined);
      if (err instanceof TesseraError) throw err;
      const mapped = mapPgError(err);
      if (mapped instanceof TesseraError) throw new TesseraError(mapped.code, `cannot open datastore ${description}: ${mapped.message}`, { cause: err });
      throw new TesseraError('FAILED_PRECONDITION', `cannot open datastore ${description}: ${(err as Error).message}`, { cause: err });
    }
    return new PostgresDataStore(pool, now, description, connection, opts.schema ? `__${opts.schema}` : '', opts.log);
  }

  /** Resolves when the database answers; throws UNAVAILABLE otherwise (the server's /ready). */
  async ping(): Promise<void> {
    await this.run((q) => q.query('SELECT 1'));
  }

  /** The pool, for the LISTEN client of several-servers mode and for tests. */
  get connectionPool(): pg.Pool {
    return this.pool;
  }

  // --- registration entries ---

  async createRegistrationEntry(e: NewRegistrationEntry): Promise<RegistrationEntry> {
    const n = normalizeEntry(e, 'entry');
    return this.write(async (q) => {
      const out = await this.insertEntry(q, n, this.ts());
      await this.notify(q, 'tessera_entries', out.revision);
      return out;
    });
  }

  async createRegistrationEntries(es: NewRegistrationEntry[]): Promise<RegistrationEntry[]> {
    if (!Array.isArray(es)) throw invalidArgument('entries must be an array');
    const ns = es.map((e, i) => normalizeEntry(e, `entries[${i}]`));
    if (ns.length === 0) return [];
    try {
      return await this.write((q) => this.insertEntries(q, ns, this.ts()));
    } catch (err) {
      if (!(err instanceof TesseraError && err.code === 'ALREADY_EXISTS')) throw err;
      // The batch statement says only that some row clashed. Run the batch again entry by
      // entry (still all or nothing) so the error names the entry; if the clash is gone
      // meanwhile (a concurrent delete), that run simply succeeds.
      return this.write(async (q) => {
        const ts = this.ts();
        const out: RegistrationEntry[] = [];
        for (const n of ns) out.push(await this.insertEntry(q, n, ts));
        await this.notify(q, 'tessera_entries', out[out.length - 1]!.revision);
        return out;
      });
    }
  }

  async fetchRegistrationEntry(id: string): Promise<RegistrationEntry | undefined> {
    str(id, 'id');
    const r = await this.run((q) => q.query<EntryRow>(SQL.fetchEntry, [id]));
    return r.rows[0] && toEntry(r.rows[0]);
  }

  async listRegistrationEntries(query: ListEntriesQuery): Promise<Page<RegistrationEntry>> {
    const nq = normalizeEntryQuery(query);
    const { sql, values } = entryListQuery(nq);
    const r = await this.run((q) => q.query<EntryRow>(sql, values));
    return page(r.rows, nq.pageSize, 'e', toEntry);
  }

  async countRegistrationEntries(): Promise<number> {
    return (await this.run((q) => q.query<{ n: number }>(SQL.countEntries))).rows[0]!.n;
  }

  async updateRegistrationEntry(id: string, u: RegistrationEntryUpdate): Promise<RegistrationEntry> {
    str(id, 'id');
    const patch = checkPatch(u, ENTRY_UPDATABLE, 'registration entry');
    return this.write(async (q) => {
      // the revision lock first, always: entry writes then never wait on each other in two orders
      const revision = await this.bump(q);
      const old = (await q.query<EntryRow>(SQL.fetchEntryForUpdate, [id])).rows[0];
      if (!old) throw notFound(`registration entry ${id} not found`);
      const n = normalizeEntry({ ...toEntry(old), ...patch, id: undefined }, 'entry');
      let row: EntryRow;
      try {
        row = (await q.query<EntryRow>(SQL.updateEntry, [id, ...entryValues(n), revision])).rows[0]!;
      } catch (err) {
        throw mapEntryUnique(err, n, id);
      }
      if (n.selectorsKey !== old.selectors_key) {
        await q.query(SQL.deleteEntrySelectors, [id]);
        await this.insertSelectors(q, SQL.insertEntrySelectors, id, n.selectors);
      }
      await this.event(q, revision, id, 'update', old.spiffe_id, old.parent_id, n.spiffeId, n.parentId, this.ts());
      await this.notify(q, 'tessera_entries', revision);
      return toEntry(row);
    });
  }

  async deleteRegistrationEntry(id: string): Promise<RegistrationEntry> {
    str(id, 'id');
    return this.write(async (q) => {
      const revision = await this.bump(q);
      const old = (await q.query<EntryRow>(SQL.fetchEntryForUpdate, [id])).rows[0];
      if (!old) throw notFound(`registration entry ${id} not found`);
      await this.removeEntry(q, old, revision, this.ts());
      await this.notify(q, 'tessera_entries', revision);
      return toEntry(old);
    });
  }

  async pruneRegistrationEntries(now: number): Promise<number> {
    nonNegInt(now, 'now');
    return this.write(async (q) => {
      const rows = (await q.query<EntryRow>(SQL.expiredEntries, [now])).rows;
      if (rows.length === 0) return 0;
      const ts = this.ts();
      let revision = 0;
      for (const r of rows) await this.removeEntry(q, r, (revision = await this.bump(q)), ts);
      await this.notify(q, 'tessera_entries', revision);
      return rows.length;
    });
  }

  async getRevision(): Promise<number> {
    return (await this.run((q) => q.query<{ revision: number }>(SQL.getRevision))).rows[0]!.revision;
  }

  async listEntryEvents(since: number): Promise<EntryEvent[]> {
    nonNegInt(since, 'since');
    return (await this.run((q) => q.query<EventRow>(SQL.listEvents, [since]))).rows.map(toEvent);
  }

  // --- attested nodes ---

  async createAttestedNode(n: Omit<AttestedNode, 'createdAt' | 'updatedAt'>): Promise<AttestedNode> {
    const v = normalizeNode(n);
    return this.write(async (q) => {
      try {
        await q.query(SQL.insertNode, [v.spiffeId, ...nodeValues(v), this.ts()]);
      } catch (err) {
        throw mapUnique(err, () => `attested node ${v.spiffeId} already exists`);
      }
      await this.insertSelectors(q, SQL.insertNodeSelectors, v.spiffeId, v.selectors);
      return toNode((await q.query<NodeRow>(SQL.fetchNode, [v.spiffeId])).rows[0]!);
    });
  }

  async fetchAttestedNode(spiffeId: string): Promise<AttestedNode | undefined> {
    str(spiffeId, 'spiffeId');
    const r = await this.run((q) => q.query<NodeRow>(SQL.fetchNode, [spiffeId]));
    return r.rows[0] && toNode(r.rows[0]);
  }

  async listAttestedNodes(query: ListNodesQuery): Promise<Page<AttestedNode>> {
    const nq = normalizeNodeQuery(query);
    const { sql, values } = nodeListQuery(nq);
    const r = await this.run((q) => q.query<NodeRow>(sql, values));
    return page(r.rows, nq.pageSize, 'n', toNode);
  }

  async summarizeAttestedNodes(): Promise<AttestedNodeSummary> {
    const [c, e] = await this.run((q) => Promise.all([q.query<{ total: number; banned: number }>(SQL.countNodes), q.query<{ spiffe_id: string; expires_at: string | number }>(SQL.earliestNode)]));
    const row = e.rows[0];
    return { total: Number(c.rows[0]!.total), banned: Number(c.rows[0]!.banned), earliest: row ? { spiffeId: row.spiffe_id, expiresAt: Number(row.expires_at) } : null };
  }

  async updateAttestedNode(
    spiffeId: string,
    u: Partial<Pick<AttestedNode, 'serialNumber' | 'expiresAt' | 'newSerialNumber' | 'newExpiresAt' | 'selectors' | 'banned'>>,
  ): Promise<AttestedNode> {
    str(spiffeId, 'spiffeId');
    const patch = checkPatch(u, NODE_UPDATABLE, 'attested node');
    return this.write(async (q) => {
      if ((await q.query(SQL.lockNode, [spiffeId])).rowCount === 0) throw notFound(`attested node ${spiffeId} not found`);
      const old = (await q.query<NodeRow>(SQL.fetchNode, [spiffeId])).rows[0]!;
      const v = normalizeNode({ ...toNode(old), ...patch });
      await q.query(SQL.updateNode, [spiffeId, v.serialNumber, v.expiresAt, v.newSerialNumber, v.newExpiresAt, v.banned, this.ts()]);
      if (patch.selectors !== undefined) {
        await q.query(SQL.deleteNodeSelectors, [spiffeId]);
        await this.insertSelectors(q, SQL.insertNodeSelectors, spiffeId, v.selectors);
      }
      // a ban (or new SVID serial) must reach every server's open long polls at once
      await this.notify(q, 'tessera_nodes', 0);
      return toNode((await q.query<NodeRow>(SQL.fetchNode, [spiffeId])).rows[0]!);
    });
  }

  async deleteAttestedNode(spiffeId: string): Promise<AttestedNode> {
    str(spiffeId, 'spiffeId');
    return this.write(async (q) => {
      if ((await q.query(SQL.lockNode, [spiffeId])).rowCount === 0) throw notFound(`attested node ${spiffeId} not found`);
      const old = (await q.query<NodeRow>(SQL.fetchNode, [spiffeId])).rows[0]!;
      await q.query(SQL.deleteNode, [spiffeId]); // node_selectors go by ON DELETE CASCADE
      await this.notify(q, 'tessera_nodes', 0);
      return toNode(old);
    });
  }

  // --- join tokens ---

  async createJoinToken(t: Omit<JoinToken, 'createdAt'>): Promise<JoinToken> {
    const { tokenHash, tokenId, expiresAt } = normalizeJoinToken(t);
    try {
      const r = await this.run((q) => q.query<JoinTokenRow>(SQL.insertJoinToken, [tokenHash, tokenId, expiresAt, this.ts()]));
      return toJoinToken(r.rows[0]!);
    } catch (err) {
      throw mapUnique(err, () => `join token ${tokenId} already exists`);
    }
  }

  async consumeJoinToken(tokenHash: string): Promise<JoinToken | undefined> {
    str(tokenHash, 'tokenHash');
    // one DELETE ... RETURNING: of consumers on any number of servers only one gets the row
    const r = await this.run((q) => q.query<JoinTokenRow>(SQL.consumeJoinToken, [tokenHash]));
    return r.rows[0] && toJoinToken(r.rows[0]);
  }

  async pruneJoinTokens(now: number): Promise<number> {
    nonNegInt(now, 'now');
    return (await this.run((q) => q.query(SQL.pruneJoinTokens, [now]))).rowCount ?? 0;
  }

  // --- bundles ---

  async setBundle(b: Omit<Bundle, 'updatedAt'>): Promise<Bundle> {
    const { trustDomain, document, sequence } = normalizeBundle(b);
    return this.write(async (q) => {
      const r = await q.query<BundleRow>(SQL.upsertBundle, [trustDomain, document, sequence, this.ts()]);
      await this.notify(q, 'tessera_bundle', sequence);
      return toBundle(r.rows[0]!);
    });
  }

  async fetchBundle(trustDomain: string): Promise<Bundle | undefined> {
    str(trustDomain, 'trustDomain');
    const r = await this.run((q) => q.query<BundleRow>(SQL.fetchBundle, [trustDomain]));
    return r.rows[0] && toBundle(r.rows[0]);
  }

  async listBundles(): Promise<Bundle[]> {
    return (await this.run((q) => q.query<BundleRow>(SQL.listBundles))).rows.map(toBundle);
  }

  async deleteBundle(trustDomain: string): Promise<void> {
    str(trustDomain, 'trustDomain');
    if ((await this.run((q) => q.query(SQL.deleteBundle, [trustDomain]))).rowCount === 0) {
      throw notFound(`bundle for trust domain ${trustDomain} not found`);
    }
  }

  // --- CA / JWT key journal (public halves only; keys stay in each server's key manager) ---

  async putCAJournalEntry(e: CAJournalInput): Promise<CAJournalEntry> {
    const p = normalizeJournal(e);
    // every server re-publishes the bundle from the journal on this: a key another server
    // prepared reaches the shared bundle even if two servers published at the same moment
    const r = await this.write(async (q) => {
      const out = await q.query<JournalRow>(SQL.upsertJournal, [
        p.id, p.kind, p.keyId, p.state, p.certificateDer, p.upstreamChainDer, p.publicJwk, p.kid, p.notBefore, p.notAfter, this.ts(), p.owner,
      ]);
      if (out.rows[0]) await this.notify(q, 'tessera_bundle', 0);
      return out;
    });
    // the upsert's WHERE refuses to turn an x509 slot into a jwt one or back
    if (!r.rows[0]) throw invalidArgument(`ca journal entry ${p.id} exists with another kind than ${p.kind}`);
    return toJournal(r.rows[0]);
  }

  async listCAJournal(kind?: 'x509' | 'jwt'): Promise<CAJournalEntry[]> {
    if (kind !== undefined) oneOf(kind, JOURNAL_KINDS, 'kind');
    return (await this.run((q) => q.query<JournalRow>(SQL.listJournal, [kind ?? null]))).rows.map(toJournal);
  }

  async deleteCAJournalEntry(id: string): Promise<void> {
    str(id, 'id');
    await this.write(async (q) => {
      if ((await q.query(SQL.deleteJournal, [id])).rowCount === 0) throw notFound(`ca journal entry ${id} not found`);
      await this.notify(q, 'tessera_bundle', 0);
    });
  }

  // --- federation relationships ---

  async createFederationRelationship(r: NewFederationRelationship): Promise<FederationRelationship> {
    obj(r, 'federation relationship');
    const v = normalizeFederation({ ...r }, trustDomainName(r.trustDomain, 'trustDomain'));
    try {
      const row = await this.run((q) =>
        q.query<FederationRow>(SQL.insertFederation, [v.trustDomain, v.bundleEndpointUrl, v.profile, v.endpointSpiffeId, this.ts()]),
      );
      return toFederation(row.rows[0]!);
    } catch (err) {
      throw mapUnique(err, () => `a federation relationship with ${v.trustDomain} already exists`);
    }
  }

  async fetchFederationRelationship(trustDomain: string): Promise<FederationRelationship | undefined> {
    str(trustDomain, 'trustDomain');
    const r = await this.run((q) => q.query<FederationRow>(SQL.fetchFederation, [trustDomain]));
    return r.rows[0] && toFederation(r.rows[0]);
  }

  async listFederationRelationships(): Promise<FederationRelationship[]> {
    return (await this.run((q) => q.query<FederationRow>(SQL.listFederations))).rows.map(toFederation);
  }

  async updateFederationRelationship(trustDomain: string, u: FederationRelationshipUpdate): Promise<FederationRelationship> {
    str(trustDomain, 'trustDomain');
    const patch = checkPatch(u, FEDERATION_UPDATABLE, 'federation relationship');
    return this.write(async (q) => {
      const old = (await q.query<FederationRow>(SQL.fetchFederationForUpdate, [trustDomain])).rows[0];
      if (!old) throw notFound(`federation relationship with ${trustDomain} not found`);
      const merged = { ...toFederation(old), ...patch };
      const v = normalizeFederation(merged, trustDomain);
      const status = federationStatus(merged);
      const configChanged = FEDERATION_CONFIG_FIELDS.some((k) => k in patch);
      const r = await q.query<FederationRow>(SQL.updateFederation, [
        trustDomain, v.bundleEndpointUrl, v.profile, v.endpointSpiffeId, configChanged ? this.ts() : old.updated_at,
        status.lastRefreshAt, status.lastError,
      ]);
      return toFederation(r.rows[0]!);
    });
  }

  async deleteFederationRelationship(trustDomain: string): Promise<FederationRelationship> {
    str(trustDomain, 'trustDomain');
    const r = await this.run((q) => q.query<FederationRow>(SQL.deleteFederation, [trustDomain]));
    if (!r.rows[0]) throw notFound(`federation relationship with ${trustDomain} not found`);
    return toFederation(r.rows[0]);
  }

  // --- issued SVIDs by signer (key rotation: revoke's dependents) ---

  async recordIssuedSVIDs(items: IssuedSVID[]): Promise<void> {
    const checked = normalizeIssuedSVIDs(items);
    if (checked.length === 0) return;
    // the last record of a holder wins, as one upsert after another would; sorted so that
    // two servers recording overlapping holders lock the rows in the same order
    const byHolder = new Map(checked.map((it) => [it.holder, it]));
    const rows = [...byHolder.values()].sort((a, b) => (a.holder < b.holder ? -1 : a.holder > b.holder ? 1 : 0));
    await this.run((q) => q.query(SQL.upsertIssued, [rows.map((r) => r.holder), rows.map((r) => r.authorityId), rows.map((r) => r.expiresAt)]));
  }

  async countIssuedSVIDs(authorityId: string, now: number): Promise<number> {
    str(authorityId, 'authorityId');
    nonNegInt(now, 'now');
    return (await this.run((q) => q.query<{ n: number }>(SQL.countIssued, [authorityId, now]))).rows[0]!.n;
  }

  async listIssuedSVIDs(authorityId: string, now: number, limit: number): Promise<IssuedSVID[]> {
    str(authorityId, 'authorityId');
    nonNegInt(now, 'now');
    nonNegInt(limit, 'limit');
    const rows = (await this.run((q) => q.query<{ holder: string; authority_id: string; expires_at: string | number }>(SQL.listIssued, [authorityId, now, limit]))).rows;
    return rows.map((r) => ({ holder: r.holder, authorityId: r.authority_id, expiresAt: Number(r.expires_at) }));
  }

  async pruneIssuedSVIDs(now: number): Promise<number> {
    nonNegInt(now, 'now');
    return (await this.run((q) => q.query(SQL.pruneIssued, [now]))).rowCount ?? 0;
  }

  /** See DataStore.subscribe: LISTEN on one dedicated connection, reconnecting by itself. */
  subscribe(fn: (what: StoreChange) => void): () => void {
    this.listener ??= new ChangeListener({ ...this.connection, options: undefined }, this.log, this.channelSuffix);
    return this.listener.subscribe(fn);
  }

  /** Ends the pool and the change subscription; calling it again is harmless. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.listener?.close();
    await this.pool.end();
  }

  // --- internals ---

  private ts(): number {
    return Math.floor(this.now());
  }

  /** One statement (or a few reads) on a pooled connection, errors mapped. */
  private async run<T>(fn: (q: Q) => Promise<T>): Promise<T> {
    if (this.closed) throw unavailable('datastore is closed');
    try {
      return await fn(this.pool);
    } catch (err) {
      throw mapPgError(err);
    }
  }

  /** fn in a READ COMMITTED transaction on one connection; run again on a serialization failure or deadlock. */
  private async write<T>(fn: (q: Q) => Promise<T>): Promise<T> {
    if (this.closed) throw unavailable('datastore is closed');
    for (let attempt = 1; ; attempt++) {
      let client: pg.PoolClient;
      try {
        client = await this.pool.connect();
      } catch (err) {
        throw mapPgError(err);
      }
      let broken = false;
      // A checked-out client emits 'error' when the database goes away mid-transaction (the
      // pool listens only while it is idle); unheard, that would crash the process. The query
      // itself rejects too, and that is what reaches the caller.
      const onError = () => void (broken = true);
      client.on('error', onError);
      try {
        await client.query('BEGIN');
        const out = await fn(client);
        await client.query('COMMIT');
        return out;
      } catch (err) {
        try {
          await client.query('ROLLBACK');
        } catch {
          broken = true; // the connection is gone; do not hand it back to the pool
        }
        if (isRetryable(err) && attempt < MAX_ATTEMPTS) continue;
        throw mapPgError(err);
      } finally {
        client.off('error', onError);
        client.release(broken);
      }
    }
  }

  /** NOTIFY on a channel of this store (schema-qualified, so stores in other schemas do not hear it) at commit. */
  private async notify(q: Q, channel: string, value: number): Promise<void> {
    await q.query(SQL.notify, [channel + this.channelSuffix, value]);
  }

  private async bump(q: Q): Promise<number> {
    return (await q.query<{ revision: number }>(SQL.bumpRevision)).rows[0]!.revision;
  }

  private async insertSelectors(q: Q, sql: string, owner: string, sels: { type: string; value: string }[]): Promise<void> {
    if (sels.length) await q.query(sql, [owner, sels.map((s) => s.type), sels.map((s) => s.value)]);
  }

  private async event(
    q: Q,
    revision: number,
    entryId: string,
    op: EntryEvent['op'],
    oldSpiffeId: string | null,
    oldParentId: string | null,
    newSpiffeId: string | null,
    newParentId: string | null,
    ts: number,
  ): Promise<void> {
    await q.query(SQL.insertEvent, [revision, entryId, op, oldSpiffeId, oldParentId, newSpiffeId, newParentId, ts]);
  }

  private async insertEntry(q: Q, n: NormalizedEntry, ts: number): Promise<RegistrationEntry> {
    const id = n.id ?? newEntryId();
    const revision = await this.bump(q);
    let row: EntryRow;
    try {
      row = (await q.query<EntryRow>(SQL.insertEntry, [id, ...entryValues(n), ts, revision])).rows[0]!;
    } catch (err) {
      throw mapEntryUnique(err, n, id);
    }
    await this.insertSelectors(q, SQL.insertEntrySelectors, id, n.selectors);
    await this.event(q, revision, id, 'create', null, null, n.spiffeId, n.parentId, ts);
    return toEntry(row);
  }

  /**
   * A batch of new entries in four statements whatever its size (revisions, entries,
   * selectors, events) instead of four per entry: 1M entries fill in minutes, not hours.
   * The entries get consecutive revisions in input order, as one by one would give them.
   */
  private async insertEntries(q: Q, ns: NormalizedEntry[], ts: number): Promise<RegistrationEntry[]> {
    const last = (await q.query<{ revision: number }>(SQL.bumpRevisionBy, [ns.length])).rows[0]!.revision;
    const first = last - ns.length + 1;
    const ids = ns.map((n) => n.id ?? newEntryId());
    const rows = ns.map(entryValues);
    const column = (i: number) => rows.map((r) => r[i]);
    let inserted: EntryRow[];
    try {
      inserted = (await q.query<EntryRow>(SQL.insertEntries, [ids, ...rows[0]!.map((_, i) => column(i)), ts, first])).rows;
    } catch (err) {
      throw mapUnique(err, () => 'a registration entry of the batch already exists');
    }
    const sel: [string[], string[], string[]] = [[], [], []];
    ns.forEach((n, i) => {
      for (const s of n.selectors) {
        sel[0].push(ids[i]!);
        sel[1].push(s.type);
        sel[2].push(s.value);
      }
    });
    await q.query(SQL.insertManyEntrySelectors, sel);
    await q.query(SQL.insertCreateEvents, [first, ids, ns.map((n) => n.spiffeId), ns.map((n) => n.parentId), ts]);
    await this.notify(q, 'tessera_entries', last);
    // RETURNING's row order is not promised; the revisions are (input order)
    return inserted.sort((a, b) => a.revision - b.revision).map(toEntry);
  }

  private async removeEntry(q: Q, old: EntryRow, revision: number, ts: number): Promise<void> {
    await q.query(SQL.deleteEntry, [old.id]); // entry_selectors go by ON DELETE CASCADE
    await this.event(q, revision, old.id, 'delete', old.spiffe_id, old.parent_id, null, null, ts);
  }
}

/** $2..$12 of insertEntry / updateEntry */
const entryValues = (n: NormalizedEntry): unknown[] => [
  n.spiffeId,
  n.parentId,
  n.selectorsKey,
  n.x509SvidTtl,
  n.jwtSvidTtl,
  JSON.stringify(n.dnsNames),
  JSON.stringify(n.federatesWith),
  n.hint,
  JSON.stringify(n.jwtAudiences),
  n.jwtJti,
  n.expiresAt,
];

const nodeValues = (v: NormalizedNode): unknown[] => [
  v.attestationType,
  v.serialNumber,
  v.expiresAt,
  v.newSerialNumber,
  v.newExpiresAt,
  v.banned,
];

function mapEntryUnique(err: unknown, n: NormalizedEntry, id: string): unknown {
  return mapUnique(err, (constraint) =>
    constraint === 'registration_entries_id_key'
      ? `registration entry ${id} already exists`
      : `a registration entry for ${n.spiffeId} with parent ${n.parentId} and the same selectors already exists`,
  );
}
