import { checkAudienceAllowlist } from '../../common/jwtsvid/audience-allowlist';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { TesseraError, alreadyExists, invalidArgument, notFound, unavailable } from '../../common/errors';
import { unixNow } from '../../common/clock';
import type {
  AttestedNode,
  Bundle,
  CAJournalEntry,
  DataStore,
  EntryEvent,
  FederationProfile,
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
  Selector,
} from './datastore';
import { defaultMigrationsDir, migrate, type MigrateLog } from './migrate';
import { effectiveUid, ensureTrustedDir } from '../../common/fs/trusted-dir';

type Db = BetterSqlite3.Database;

/**
 * Checks (or creates) the database file before SQLite opens it: its directory
 * must be trusted (ensureTrustedDir: owned by this uid or root, not writable by
 * others), and the file itself, and any -wal / -shm file, a regular file owned
 * by this uid or root, never a symlink: a database someone else planted would
 * hand them the CA journal. The file is created here, mode 0600, because SQLite
 * would use 0644 under the usual umask and gives -wal and -shm the database's mode.
 * @throws TesseraError FAILED_PRECONDITION naming the file and the problem
 */
function prepareDatabaseFiles(file: string): void {
  ensureTrustedDir(path.dirname(path.resolve(file)), { mode: 0o700, what: 'datastore directory' });
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new TesseraError('FAILED_PRECONDITION', code === 'ELOOP' ? `datastore ${file} is a symbolic link; refusing to open it` : `cannot open datastore ${file}: ${code}`);
  }
  try {
    const st = fs.fstatSync(fd);
    const euid = effectiveUid();
    if (!st.isFile()) throw new TesseraError('FAILED_PRECONDITION', `datastore ${file} is not a regular file`);
    if (euid !== undefined && st.uid !== euid && st.uid !== 0) {
      throw new TesseraError('FAILED_PRECONDITION', `datastore ${file} is owned by uid ${st.uid}, not by this process (uid ${euid}) or root; refusing to use it`);
    }
    fs.fchmodSync(fd, 0o600);
  } finally {
    fs.closeSync(fd);
  }
  for (const f of [`${file}-wal`, `${file}-shm`]) {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(f);
    } catch {
      continue;
    }
    if (!st.isFile() || (effectiveUid() !== undefined && st.uid !== effectiveUid() && st.uid !== 0)) {
      throw new TesseraError('FAILED_PRECONDITION', `datastore file ${f} is not a regular file of this user; remove it`);
    }
  }
}
type Stmt = BetterSqlite3.Statement<unknown[], unknown>;

/** Options for {@link SqliteDataStore.open}. */
export interface SqliteOpenOptions {
  /** defaults to the repository's `migrations/` ({@link defaultMigrationsDir}) */
  migrationsDir?: string;
  /** Unix seconds; defaults to the system clock */
  now?: () => number;
  /** receives one line per applied schema migration */
  log?: MigrateLog;
}

const MAX_PAGE_SIZE = 1000;

/**
 * The SQLite DataStore (better-sqlite3, one connection per process). Every entry
 * write bumps the store revision by one per entry, stamps the entry with it and
 * appends an entry event, all in one IMMEDIATE transaction; a failing write rolls
 * back completely. All values are bound parameters.
 */
export class SqliteDataStore implements DataStore {
  private readonly st: ReturnType<typeof prepareStatements>;
  /** list queries, prepared once per filter combination (a bounded set of constant SQL texts) */
  private readonly listStmts = new Map<string, Stmt>();
  private readonly tx: BetterSqlite3.Transaction<(fn: () => unknown) => unknown>;

  private constructor(
    private readonly db: Db,
    private readonly now: () => number,
  ) {
    this.st = prepareStatements(db);
    this.tx = db.transaction((fn: () => unknown) => fn());
  }

  /**
   * Opens (creating if needed) the database at `file`, creating its parent directory
   * (0700) and the file itself with mode 0600, and applies pending migrations.
   * `:memory:` gives a throwaway store. Throws FAILED_PRECONDITION when the file is
   * not a usable tessera database or its schema is newer than this build.
   */
  static open(file: string, opts: SqliteOpenOptions = {}): SqliteDataStore {
    const onDisk = file !== ':memory:' && file !== '';
    if (onDisk) prepareDatabaseFiles(file);
    const db = new BetterSqlite3(file);
    try {
      db.pragma('journal_mode = WAL');
      // In WAL mode NORMAL cannot corrupt the database; a power loss can only drop
      // the last few commits. It is ~3x faster for single-row writes (measured
      // 4,100/s FULL vs 13,000/s NORMAL). Entries and agents can be recreated and
      // SVIDs re-minted; the rare CA journal and bundle writes, whose loss would
      // orphan a CA that already signed SVIDs, are committed with FULL (durable()).
      db.pragma('synchronous = NORMAL');
      db.pragma('foreign_keys = ON');
      db.pragma('busy_timeout = 5000');
      migrate(db, opts.migrationsDir ?? defaultMigrationsDir(), opts.log);
      if (onDisk) {
        for (const f of [`${file}-wal`, `${file}-shm`]) if (fs.existsSync(f)) fs.chmodSync(f, 0o600);
      }
      return new SqliteDataStore(db, opts.now ?? (() => unixNow()));
    } catch (err) {
      db.close();
      if (err instanceof TesseraError) throw err;
      throw new TesseraError('FAILED_PRECONDITION', `cannot open datastore ${file}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  /** The connection's effective settings, for diagnostics and tests. */
  settings(): { journalMode: string; synchronous: number; foreignKeys: boolean; busyTimeoutMs: number } {
    const p = (name: string) => this.db.pragma(name, { simple: true });
    return {
      journalMode: String(p('journal_mode')),
      synchronous: Number(p('synchronous')),
      foreignKeys: Number(p('foreign_keys')) === 1,
      busyTimeoutMs: Number(p('busy_timeout')),
    };
  }

  // --- registration entries ---

  async createRegistrationEntry(e: NewRegistrationEntry): Promise<RegistrationEntry> {
    const n = normalizeEntry(e, 'entry');
    return this.write(() => this.insertEntry(n, this.ts()));
  }

  async createRegistrationEntries(es: NewRegistrationEntry[]): Promise<RegistrationEntry[]> {
    if (!Array.isArray(es)) throw invalidArgument('entries must be an array');
    const ns = es.map((e, i) => normalizeEntry(e, `entries[${i}]`));
    return this.write(() => {
      const ts = this.ts();
      return ns.map((n) => this.insertEntry(n, ts));
    });
  }

  async fetchRegistrationEntry(id: string): Promise<RegistrationEntry | undefined> {
    str(id, 'id');
    return this.run(() => {
      const row = this.st.fetchEntry.get(id) as EntryRow | undefined;
      return row && toEntry(row);
    });
  }

  async listRegistrationEntries(q: ListEntriesQuery): Promise<Page<RegistrationEntry>> {
    const { sql, params, pageSize } = entryListQuery(q ?? {});
    return this.run(() => page(this.listStmt(sql).all(params) as EntryRow[], pageSize, 'e', toEntry));
  }

  async countRegistrationEntries(): Promise<number> {
    return this.run(() => (this.st.countEntries.get() as { n: number }).n);
  }

  async updateRegistrationEntry(id: string, u: RegistrationEntryUpdate): Promise<RegistrationEntry> {
    str(id, 'id');
    const patch = checkPatch(u, ENTRY_UPDATABLE, 'registration entry');
    return this.write(() => {
      const old = this.st.fetchEntry.get(id) as EntryRow | undefined;
      if (!old) throw notFound(`registration entry ${id} not found`);
      const n = normalizeEntry({ ...toEntry(old), ...patch, id: undefined }, 'entry');
      const ts = this.ts();
      const revision = this.bump();
      try {
        this.st.updateEntry.run({ ...entryParams(n), id, revision });
      } catch (err) {
        throw mapEntryUnique(err, n, id);
      }
      if (n.selectorsKey !== old.selectors_key) {
        this.st.deleteEntrySelectors.run(id);
        for (const s of n.selectors) this.st.insertEntrySelector.run(id, s.type, s.value);
      }
      this.event(revision, id, 'update', old.spiffe_id, old.parent_id, n.spiffeId, n.parentId, ts);
      return toEntry(this.st.fetchEntry.get(id) as EntryRow);
    });
  }

  async deleteRegistrationEntry(id: string): Promise<RegistrationEntry> {
    str(id, 'id');
    return this.write(() => {
      const old = this.st.fetchEntry.get(id) as EntryRow | undefined;
      if (!old) throw notFound(`registration entry ${id} not found`);
      this.removeEntry(old, this.ts());
      return toEntry(old);
    });
  }

  async pruneRegistrationEntries(now: number): Promise<number> {
    nonNegInt(now, 'now');
    return this.write(() => {
      const rows = this.st.expiredEntries.all(now) as EntryRow[];
      const ts = this.ts();
      for (const r of rows) this.removeEntry(r, ts);
      return rows.length;
    });
  }

  async getRevision(): Promise<number> {
    return this.run(() => (this.st.getRevision.get() as { revision: number }).revision);
  }

  async listEntryEvents(since: number): Promise<EntryEvent[]> {
    nonNegInt(since, 'since');
    return this.run(() => (this.st.listEvents.all(since) as EventRow[]).map(toEvent));
  }

  // --- attested nodes ---

  async createAttestedNode(n: Omit<AttestedNode, 'createdAt' | 'updatedAt'>): Promise<AttestedNode> {
    const v = normalizeNode(n);
    return this.write(() => {
      const ts = this.ts();
      try {
        this.st.insertNode.run({ ...nodeParams(v), spiffe_id: v.spiffeId, created_at: ts, updated_at: ts });
      } catch (err) {
        throw isUnique(err) ? alreadyExists(`attested node ${v.spiffeId} already exists`) : err;
      }
      for (const s of v.selectors) this.st.insertNodeSelector.run(v.spiffeId, s.type, s.value);
      return toNode(this.st.fetchNode.get(v.spiffeId) as NodeRow);
    });
  }

  async fetchAttestedNode(spiffeId: string): Promise<AttestedNode | undefined> {
    str(spiffeId, 'spiffeId');
    return this.run(() => {
      const row = this.st.fetchNode.get(spiffeId) as NodeRow | undefined;
      return row && toNode(row);
    });
  }

  async listAttestedNodes(q: ListNodesQuery): Promise<Page<AttestedNode>> {
    q = q ?? {};
    const where = ['n.seq > @after'];
    const params: Record<string, unknown> = {};
    if (q.attestationType !== undefined) {
      where.push('n.attestation_type = @attestation_type');
      params.attestation_type = str(q.attestationType, 'attestationType');
    }
    if (q.banned !== undefined) {
      where.push('n.banned = @banned');
      params.banned = bool(q.banned, 'banned') ? 1 : 0;
    }
    const pageSize = checkPageSize(q.pageSize);
    params.after = decodePageToken(q.pageToken, 'n');
    params.limit = pageSize === undefined ? -1 : pageSize + 1;
    const sql = `${NODE_SELECT} WHERE ${where.join(' AND ')} ORDER BY n.seq LIMIT @limit`;
    return this.run(() => page(this.listStmt(sql).all(params) as NodeRow[], pageSize, 'n', toNode));
  }

  async updateAttestedNode(
    spiffeId: string,
    u: Partial<Pick<AttestedNode, 'serialNumber' | 'expiresAt' | 'newSerialNumber' | 'newExpiresAt' | 'selectors' | 'banned'>>,
  ): Promise<AttestedNode> {
    str(spiffeId, 'spiffeId');
    const patch = checkPatch(u, NODE_UPDATABLE, 'attested node');
    return this.write(() => {
      const old = this.st.fetchNode.get(spiffeId) as NodeRow | undefined;
      if (!old) throw notFound(`attested node ${spiffeId} not found`);
      const v = normalizeNode({ ...toNode(old), ...patch });
      this.st.updateNode.run({ ...nodeParams(v), spiffe_id: spiffeId, updated_at: this.ts() });
      if (patch.selectors !== undefined) {
        this.st.deleteNodeSelectors.run(spiffeId);
        for (const s of v.selectors) this.st.insertNodeSelector.run(spiffeId, s.type, s.value);
      }
      return toNode(this.st.fetchNode.get(spiffeId) as NodeRow);
    });
  }

  async deleteAttestedNode(spiffeId: string): Promise<AttestedNode> {
    str(spiffeId, 'spiffeId');
    return this.write(() => {
      const old = this.st.fetchNode.get(spiffeId) as NodeRow | undefined;
      if (!old) throw notFound(`attested node ${spiffeId} not found`);
      this.st.deleteNode.run(spiffeId); // node_selectors go by ON DELETE CASCADE
      return toNode(old);
    });
  }

  // --- join tokens ---

  async createJoinToken(t: Omit<JoinToken, 'createdAt'>): Promise<JoinToken> {
    obj(t, 'join token');
    if (typeof t.tokenHash !== 'string' || !/^[0-9a-f]{64}$/.test(t.tokenHash)) {
      // also keeps a raw secret from ever being stored by mistake
      throw invalidArgument('tokenHash must be a lower-case hex sha-256 digest');
    }
    const tokenId = str(t.tokenId, 'tokenId');
    const expiresAt = nonNegInt(t.expiresAt, 'expiresAt');
    return this.write(() => {
      try {
        return toJoinToken(this.st.insertJoinToken.get(t.tokenHash, tokenId, expiresAt, this.ts()) as JoinTokenRow);
      } catch (err) {
        throw isUnique(err) ? alreadyExists(`join token ${tokenId} already exists`) : err;
      }
    });
  }

  async consumeJoinToken(tokenHash: string): Promise<JoinToken | undefined> {
    str(tokenHash, 'tokenHash');
    // one DELETE ... RETURNING: of two concurrent consumers only one gets the row
    return this.run(() => {
      const row = this.st.consumeJoinToken.get(tokenHash) as JoinTokenRow | undefined;
      return row && toJoinToken(row);
    });
  }

  async pruneJoinTokens(now: number): Promise<number> {
    nonNegInt(now, 'now');
    return this.run(() => this.st.pruneJoinTokens.run(now).changes);
  }

  // --- bundles ---

  async setBundle(b: Omit<Bundle, 'updatedAt'>): Promise<Bundle> {
    obj(b, 'bundle');
    const trustDomain = trustDomainName(b.trustDomain, 'trustDomain');
    if (typeof b.document !== 'string' || !isJSONObject(b.document)) {
      throw invalidArgument('bundle document must be a JSON object');
    }
    const sequence = nonNegInt(b.sequence, 'sequence');
    return this.run(() =>
      this.durable(() => toBundle(this.st.upsertBundle.get(trustDomain, b.document, sequence, this.ts()) as BundleRow)),
    );
  }

  async fetchBundle(trustDomain: string): Promise<Bundle | undefined> {
    str(trustDomain, 'trustDomain');
    return this.run(() => {
      const row = this.st.fetchBundle.get(trustDomain) as BundleRow | undefined;
      return row && toBundle(row);
    });
  }

  async listBundles(): Promise<Bundle[]> {
    return this.run(() => (this.st.listBundles.all() as BundleRow[]).map(toBundle));
  }

  async deleteBundle(trustDomain: string): Promise<void> {
    str(trustDomain, 'trustDomain');
    return this.run(() => {
      if (this.durable(() => this.st.deleteBundle.run(trustDomain).changes) === 0) {
        throw notFound(`bundle for trust domain ${trustDomain} not found`);
      }
    });
  }

  // --- CA / JWT key journal ---

  async putCAJournalEntry(e: Omit<CAJournalEntry, 'createdAt' | 'updatedAt'>): Promise<CAJournalEntry> {
    const p = normalizeJournal(e);
    return this.run(() => {
      const ts = this.ts();
      const row = this.durable(() => this.st.upsertJournal.get({ ...p, created_at: ts, updated_at: ts })) as
        | JournalRow
        | undefined;
      // the upsert's WHERE refuses to turn an x509 slot into a jwt one or back
      if (!row) throw invalidArgument(`ca journal entry ${p.id} exists with another kind than ${p.kind}`);
      return toJournal(row);
    });
  }

  async listCAJournal(kind?: 'x509' | 'jwt'): Promise<CAJournalEntry[]> {
    if (kind !== undefined) oneOf(kind, KINDS, 'kind');
    return this.run(() => (this.st.listJournal.all({ kind: kind ?? null }) as JournalRow[]).map(toJournal));
  }

  async deleteCAJournalEntry(id: string): Promise<void> {
    str(id, 'id');
    return this.run(() => {
      if (this.durable(() => this.st.deleteJournal.run(id).changes) === 0) {
        throw notFound(`ca journal entry ${id} not found`);
      }
    });
  }

  /** Closes the connection; calling it again is harmless. */
  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }

  // --- internals ---

  private ts(): number {
    return Math.floor(this.now());
  }

  private assertOpen(): void {
    if (!this.db.open) throw unavailable('datastore is closed');
  }

  /** Runs a read or a single (hence atomic) autocommit statement. */
  private async run<T>(fn: () => T): Promise<T> {
    this.assertOpen();
    return fn();
  }

  /** Runs fn in an IMMEDIATE transaction (write lock up front: no upgrade deadlock between processes). */
  private async write<T>(fn: () => T): Promise<T> {
    this.assertOpen();
    return this.tx.immediate(fn) as T;
  }

  /**
   * Commits with synchronous=FULL: for the rare writes (CA journal, bundles) whose
   * loss after a power cut would leave issued SVIDs chained to a CA the server no
   * longer knows. Must run outside a transaction (fn is one autocommit statement).
   */
  private durable<T>(fn: () => T): T {
    this.db.pragma('synchronous = FULL');
    try {
      return fn();
    } finally {
      this.db.pragma('synchronous = NORMAL');
    }
  }

  private listStmt(sql: string): Stmt {
    let s = this.listStmts.get(sql);
    if (!s) this.listStmts.set(sql, (s = this.db.prepare(sql)));
    return s;
  }

  private bump(): number {
    return (this.st.bumpRevision.get() as { revision: number }).revision;
  }

  private event(
    revision: number,
    entryId: string,
    op: EntryEvent['op'],
    oldSpiffeId: string | null,
    oldParentId: string | null,
    newSpiffeId: string | null,
    newParentId: string | null,
    ts: number,
  ): void {
    this.st.insertEvent.run(revision, entryId, op, oldSpiffeId, oldParentId, newSpiffeId, newParentId, ts);
  }

  private insertEntry(n: NormalizedEntry, ts: number): RegistrationEntry {
    const id = n.id ?? crypto.randomUUID();
    const revision = this.bump();
    try {
      this.st.insertEntry.run({ ...entryParams(n), id, created_at: ts, revision });
    } catch (err) {
      throw mapEntryUnique(err, n, id);
    }
    for (const s of n.selectors) this.st.insertEntrySelector.run(id, s.type, s.value);
    this.event(revision, id, 'create', null, null, n.spiffeId, n.parentId, ts);
    return toEntry(this.st.fetchEntry.get(id) as EntryRow);
  }

  private removeEntry(old: EntryRow, ts: number): void {
    const revision = this.bump();
    this.st.deleteEntry.run(old.id); // entry_selectors go by ON DELETE CASCADE
    this.event(revision, old.id, 'delete', old.spiffe_id, old.parent_id, null, null, ts);
  }

  // ===== federation relationships (issue #4; statements and validation at the end of the file) =====

  private fedStmts?: ReturnType<typeof prepareFederationStatements>;
  /** Prepared on first use, so this section needs no change to the constructor. */
  private get fed(): ReturnType<typeof prepareFederationStatements> {
    return (this.fedStmts ??= prepareFederationStatements(this.db));
  }

  async createFederationRelationship(r: NewFederationRelationship): Promise<FederationRelationship> {
    obj(r, 'federation relationship');
    const v = normalizeFederation({ ...r }, trustDomainName(r.trustDomain, 'trustDomain'));
    return this.run(() => {
      const ts = this.ts();
      try {
        return toFederation(this.fed.insert.get({ ...v, created_at: ts, updated_at: ts }) as FederationRow);
      } catch (err) {
        throw isUnique(err) ? alreadyExists(`a federation relationship with ${v.trust_domain} already exists`) : err;
      }
    });
  }

  async fetchFederationRelationship(trustDomain: string): Promise<FederationRelationship | undefined> {
    str(trustDomain, 'trustDomain');
    return this.run(() => {
      const row = this.fed.fetch.get(trustDomain) as FederationRow | undefined;
      return row && toFederation(row);
    });
  }

  async listFederationRelationships(): Promise<FederationRelationship[]> {
    return this.run(() => (this.fed.list.all() as FederationRow[]).map(toFederation));
  }

  async updateFederationRelationship(trustDomain: string, u: FederationRelationshipUpdate): Promise<FederationRelationship> {
    str(trustDomain, 'trustDomain');
    const patch = checkPatch(u, FEDERATION_UPDATABLE, 'federation relationship');
    return this.write(() => {
      const old = this.fed.fetch.get(trustDomain) as FederationRow | undefined;
      if (!old) throw notFound(`federation relationship with ${trustDomain} not found`);
      const merged = { ...toFederation(old), ...patch };
      const v = normalizeFederation(merged, trustDomain);
      const configChanged = ['bundleEndpointUrl', 'profile', 'endpointSpiffeId'].some((k) => k in patch);
      return toFederation(
        this.fed.update.get({
          ...v,
          updated_at: configChanged ? this.ts() : old.updated_at,
          last_refresh_at: merged.lastRefreshAt === null ? null : nonNegInt(merged.lastRefreshAt, 'lastRefreshAt'),
          last_error: merged.lastError === null ? null : str(merged.lastError, 'lastError'),
        }) as FederationRow,
      );
    });
  }

  async deleteFederationRelationship(trustDomain: string): Promise<FederationRelationship> {
    str(trustDomain, 'trustDomain');
    return this.run(() => {
      const row = this.fed.remove.get(trustDomain) as FederationRow | undefined;
      if (!row) throw notFound(`federation relationship with ${trustDomain} not found`);
      return toFederation(row);
    });
  }

  // ===== issued SVIDs by signer (issue #4, key rotation; statements at the end of the file) =====

  private issuedStmts?: ReturnType<typeof prepareIssuedSVIDStatements>;
  /** Prepared on first use, so this section needs no change to the constructor. */
  private get issued(): ReturnType<typeof prepareIssuedSVIDStatements> {
    return (this.issuedStmts ??= prepareIssuedSVIDStatements(this.db));
  }

  // synchronous=NORMAL, like entries: losing the last records in a power cut only undercounts
  // SVIDs that are re-issued within their lifetime anyway.
  async recordIssuedSVIDs(items: IssuedSVID[]): Promise<void> {
    if (!Array.isArray(items)) throw invalidArgument('items must be an array');
    const rows = items.map((it, i) => {
      obj(it, `items[${i}]`);
      return { holder: str(it.holder, `items[${i}].holder`), authority_id: str(it.authorityId, `items[${i}].authorityId`), expires_at: nonNegInt(it.expiresAt, `items[${i}].expiresAt`) };
    });
    if (rows.length === 0) return;
    await this.write(() => {
      for (const r of rows) this.issued.upsert.run(r);
    });
  }

  async countIssuedSVIDs(authorityId: string, now: number): Promise<number> {
    str(authorityId, 'authorityId');
    nonNegInt(now, 'now');
    return this.run(() => (this.issued.count.get(authorityId, now) as { n: number }).n);
  }

  async pruneIssuedSVIDs(now: number): Promise<number> {
    nonNegInt(now, 'now');
    return this.run(() => this.issued.prune.run(now).changes);
  }
}

// --- statements ---

const NODE_SELECT = `SELECT n.*,
  (SELECT json_group_array(json_array(s.type, s.value)) FROM node_selectors s WHERE s.node_id = n.spiffe_id) AS selectors
  FROM attested_nodes n`;

function prepareStatements(db: Db) {
  const p = (sql: string): Stmt => db.prepare(sql);
  return {
    bumpRevision: p('UPDATE store_revision SET revision = revision + 1 WHERE id = 1 RETURNING revision'),
    getRevision: p('SELECT revision FROM store_revision WHERE id = 1'),
    insertEntry: p(`INSERT INTO registration_entries
      (id, spiffe_id, parent_id, selectors_key, x509_svid_ttl, jwt_svid_ttl, dns_names, federates_with,
       admin, downstream, hint, jwt_audiences, jwt_jti, expires_at, created_at, revision)
      VALUES (@id, @spiffe_id, @parent_id, @selectors_key, @x509_svid_ttl, @jwt_svid_ttl, @dns_names,
       @federates_with, 0, 0, @hint, @jwt_audiences, @jwt_jti, @expires_at, @created_at, @revision)`),
    updateEntry: p(`UPDATE registration_entries SET spiffe_id = @spiffe_id, parent_id = @parent_id,
      selectors_key = @selectors_key, x509_svid_ttl = @x509_svid_ttl, jwt_svid_ttl = @jwt_svid_ttl,
      dns_names = @dns_names, federates_with = @federates_with,
      hint = @hint, jwt_audiences = @jwt_audiences, jwt_jti = @jwt_jti, expires_at = @expires_at, revision = @revision WHERE id = @id`),
    insertEntrySelector: p('INSERT INTO entry_selectors (entry_id, type, value) VALUES (?, ?, ?)'),
    deleteEntrySelectors: p('DELETE FROM entry_selectors WHERE entry_id = ?'),
    fetchEntry: p('SELECT * FROM registration_entries WHERE id = ?'),
    deleteEntry: p('DELETE FROM registration_entries WHERE id = ?'),
    countEntries: p('SELECT COUNT(*) AS n FROM registration_entries'),
    expiredEntries: p('SELECT * FROM registration_entries WHERE expires_at < ? ORDER BY seq'),
    insertEvent: p(`INSERT INTO entry_events
      (revision, entry_id, op, old_spiffe_id, old_parent_id, new_spiffe_id, new_parent_id, created_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
    listEvents: p('SELECT * FROM entry_events WHERE revision > ? ORDER BY revision'),

    insertNode: p(`INSERT INTO attested_nodes (spiffe_id, attestation_type, serial_number, expires_at,
      new_serial_number, new_expires_at, banned, created_at, updated_at)
      VALUES (@spiffe_id, @attestation_type, @serial_number, @expires_at, @new_serial_number,
      @new_expires_at, @banned, @created_at, @updated_at)`),
    updateNode: p(`UPDATE attested_nodes SET serial_number = @serial_number, expires_at = @expires_at,
      new_serial_number = @new_serial_number, new_expires_at = @new_expires_at, banned = @banned,
      updated_at = @updated_at WHERE spiffe_id = @spiffe_id`),
    insertNodeSelector: p('INSERT INTO node_selectors (node_id, type, value) VALUES (?, ?, ?)'),
    deleteNodeSelectors: p('DELETE FROM node_selectors WHERE node_id = ?'),
    fetchNode: p(`${NODE_SELECT} WHERE n.spiffe_id = ?`),
    deleteNode: p('DELETE FROM attested_nodes WHERE spiffe_id = ?'),

    insertJoinToken: p(`INSERT INTO join_tokens (token_hash, token_id, expires_at, created_at)
      VALUES (?, ?, ?, ?) RETURNING *`),
    consumeJoinToken: p('DELETE FROM join_tokens WHERE token_hash = ? RETURNING *'),
    pruneJoinTokens: p('DELETE FROM join_tokens WHERE expires_at < ?'),

    upsertBundle: p(`INSERT INTO bundles (trust_domain, document, sequence, updated_at) VALUES (?, ?, ?, ?)
      ON CONFLICT (trust_domain) DO UPDATE SET document = excluded.document, sequence = excluded.sequence,
      updated_at = excluded.updated_at RETURNING *`),
    fetchBundle: p('SELECT * FROM bundles WHERE trust_domain = ?'),
    listBundles: p('SELECT * FROM bundles ORDER BY trust_domain'),
    deleteBundle: p('DELETE FROM bundles WHERE trust_domain = ?'),

    upsertJournal: p(`INSERT INTO ca_journal (id, kind, key_id, state, certificate_der, upstream_chain_der,
      public_jwk, kid, not_before, not_after, created_at, updated_at)
      VALUES (@id, @kind, @key_id, @state, @certificate_der, @upstream_chain_der, @public_jwk, @kid,
      @not_before, @not_after, @created_at, @updated_at)
      ON CONFLICT (id) DO UPDATE SET key_id = excluded.key_id, state = excluded.state,
      certificate_der = excluded.certificate_der, upstream_chain_der = excluded.upstream_chain_der,
      public_jwk = excluded.public_jwk, kid = excluded.kid, not_before = excluded.not_before,
      not_after = excluded.not_after, updated_at = excluded.updated_at
      WHERE ca_journal.kind = excluded.kind
      RETURNING *`),
    listJournal: p('SELECT * FROM ca_journal WHERE @kind IS NULL OR kind = @kind ORDER BY seq'),
    deleteJournal: p('DELETE FROM ca_journal WHERE id = ?'),
  };
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

/** Builds the SQL (from constant fragments only) and the bound values of a list query. */
function entryListQuery(q: ListEntriesQuery): { sql: string; params: Record<string, unknown>; pageSize?: number } {
  obj(q, 'query');
  const where = ['e.seq > @after'];
  const params: Record<string, unknown> = {};
  let cte = '';
  if (q.spiffeId !== undefined) {
    where.push('e.spiffe_id = @spiffe_id');
    params.spiffe_id = str(q.spiffeId, 'spiffeId');
  }
  if (q.parentId !== undefined) {
    where.push('e.parent_id = @parent_id');
    params.parent_id = str(q.parentId, 'parentId');
  }
  if (q.parentIds !== undefined) {
    where.push('e.parent_id IN (SELECT value FROM json_each(@parent_ids))');
    params.parent_ids = JSON.stringify(strList(q.parentIds, 'parentIds', (v, f) => str(v, f)));
  }
  if (q.federatesWith !== undefined) {
    where.push('EXISTS (SELECT 1 FROM json_each(e.federates_with) f WHERE f.value = @federates_with)');
    params.federates_with = str(q.federatesWith, 'federatesWith');
  }
  if (q.hint !== undefined) {
    where.push('e.hint = @hint');
    params.hint = str(q.hint, 'hint', true);
  }
  if (q.selectors !== undefined) {
    obj(q.selectors, 'selectors');
    const match = oneOf(q.selectors.match, ['exact', 'subset', 'superset', 'any'] as const, 'selectors.match');
    const sels = selectorSet(q.selectors.selectors, 'selectors.selectors');
    if (match === 'exact') params.selectors_key = selectorsKey(sels);
    else {
      cte = SELECTOR_CTE;
      params.selectors = selectorsKey(sels);
      if (match === 'superset') params.selector_count = sels.length;
    }
    where.push(SELECTOR_CLAUSE[match]);
  }
  const pageSize = checkPageSize(q.pageSize);
  params.after = decodePageToken(q.pageToken, 'e');
  params.limit = pageSize === undefined ? -1 : pageSize + 1;
  const sql = `${cte}SELECT e.* FROM registration_entries e WHERE ${where.join(' AND ')} ORDER BY e.seq LIMIT @limit`;
  return { sql, params, pageSize };
}

// --- paging ---

/** Cuts the pageSize+1 rows fetched into a page; the extra row only says there is more. */
function page<R extends { seq: number }, T>(rows: R[], pageSize: number | undefined, kind: string, map: (r: R) => T): Page<T> {
  if (pageSize === undefined || rows.length <= pageSize) return { items: rows.map(map) };
  const items = rows.slice(0, pageSize);
  return { items: items.map(map), nextPageToken: encodePageToken(kind, items[items.length - 1]!.seq) };
}

function checkPageSize(v: unknown): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > MAX_PAGE_SIZE) {
    throw invalidArgument(`pageSize must be an integer from 1 to ${MAX_PAGE_SIZE}`);
  }
  return v as number;
}

/** Page tokens are base64url JSON {k: table, a: last seq}; opaque to callers. */
function encodePageToken(kind: string, after: number): string {
  return Buffer.from(JSON.stringify({ k: kind, a: after })).toString('base64url');
}

function decodePageToken(token: unknown, kind: string): number {
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

// --- rows ---

interface EntryRow {
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
  jwt_jti: number;
  expires_at: number | null;
  created_at: number;
  revision: number;
}

interface EventRow {
  revision: number;
  entry_id: string;
  op: EntryEvent['op'];
  old_spiffe_id: string | null;
  old_parent_id: string | null;
  new_spiffe_id: string | null;
  new_parent_id: string | null;
}

interface NodeRow {
  seq: number;
  spiffe_id: string;
  attestation_type: string;
  serial_number: string;
  expires_at: number;
  new_serial_number: string;
  new_expires_at: number;
  banned: number;
  created_at: number;
  updated_at: number;
  selectors: string;
}

interface JoinTokenRow {
  token_hash: string;
  token_id: string;
  expires_at: number;
  created_at: number;
}

interface BundleRow {
  trust_domain: string;
  document: string;
  sequence: number;
  updated_at: number;
}

interface JournalRow {
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

const fromPairs = (json: string): Selector[] =>
  sortSelectors((JSON.parse(json) as [string, string][]).map(([type, value]) => ({ type, value })));

function toEntry(r: EntryRow): RegistrationEntry {
  return {
    id: r.id,
    spiffeId: r.spiffe_id,
    parentId: r.parent_id,
    selectors: fromPairs(r.selectors_key),
    x509SvidTtl: r.x509_svid_ttl,
    jwtSvidTtl: r.jwt_svid_ttl,
    dnsNames: JSON.parse(r.dns_names) as string[],
    federatesWith: JSON.parse(r.federates_with) as string[],
    hint: r.hint,
    jwtAudiences: JSON.parse(r.jwt_audiences) as string[],
    jwtJti: r.jwt_jti === 1,
    expiresAt: r.expires_at,
    createdAt: r.created_at,
    revision: r.revision,
  };
}

const toEvent = (r: EventRow): EntryEvent => ({
  revision: r.revision,
  entryId: r.entry_id,
  op: r.op,
  oldSpiffeId: r.old_spiffe_id,
  oldParentId: r.old_parent_id,
  newSpiffeId: r.new_spiffe_id,
  newParentId: r.new_parent_id,
});

const toNode = (r: NodeRow): AttestedNode => ({
  spiffeId: r.spiffe_id,
  attestationType: r.attestation_type,
  serialNumber: r.serial_number,
  expiresAt: r.expires_at,
  newSerialNumber: r.new_serial_number,
  newExpiresAt: r.new_expires_at,
  selectors: fromPairs(r.selectors),
  banned: r.banned === 1,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

const toJoinToken = (r: JoinTokenRow): JoinToken => ({
  tokenHash: r.token_hash,
  tokenId: r.token_id,
  expiresAt: r.expires_at,
  createdAt: r.created_at,
});

const toBundle = (r: BundleRow): Bundle => ({
  trustDomain: r.trust_domain,
  document: r.document,
  sequence: r.sequence,
  updatedAt: r.updated_at,
});

const toJournal = (r: JournalRow): CAJournalEntry => ({
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

// --- input validation (every message names the field; nothing is written before it passes) ---

interface NormalizedEntry {
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

function normalizeEntry(e: NewRegistrationEntry, what: string): NormalizedEntry {
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

const entryParams = (n: NormalizedEntry) => ({
  spiffe_id: n.spiffeId,
  parent_id: n.parentId,
  selectors_key: n.selectorsKey,
  x509_svid_ttl: n.x509SvidTtl,
  jwt_svid_ttl: n.jwtSvidTtl,
  dns_names: JSON.stringify(n.dnsNames),
  federates_with: JSON.stringify(n.federatesWith),
  hint: n.hint,
  jwt_audiences: JSON.stringify(n.jwtAudiences),
  jwt_jti: n.jwtJti ? 1 : 0,
  expires_at: n.expiresAt,
});

function mapEntryUnique(err: unknown, n: NormalizedEntry, id: string): unknown {
  if (!isUnique(err)) return err;
  if (err.message.includes('registration_entries.id')) return alreadyExists(`registration entry ${id} already exists`);
  return alreadyExists(
    `a registration entry for ${n.spiffeId} with parent ${n.parentId} and the same selectors already exists`,
  );
}

type NormalizedNode = Omit<AttestedNode, 'createdAt' | 'updatedAt'>;

function normalizeNode(n: NormalizedNode): NormalizedNode {
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

const nodeParams = (v: NormalizedNode) => ({
  attestation_type: v.attestationType,
  serial_number: v.serialNumber,
  expires_at: v.expiresAt,
  new_serial_number: v.newSerialNumber,
  new_expires_at: v.newExpiresAt,
  banned: v.banned ? 1 : 0,
});

const KINDS = ['x509', 'jwt'] as const;
const STATES = ['prepared', 'active', 'retired', 'tainted', 'revoked'] as const;

function normalizeJournal(e: Omit<CAJournalEntry, 'createdAt' | 'updatedAt'>) {
  obj(e, 'ca journal entry');
  const notBefore = nonNegInt(e.notBefore, 'notBefore');
  const notAfter = nonNegInt(e.notAfter, 'notAfter');
  if (notAfter < notBefore) throw invalidArgument('notAfter must not be before notBefore');
  return {
    id: str(e.id, 'id'),
    kind: oneOf(e.kind, KINDS, 'kind'),
    key_id: str(e.keyId, 'keyId'),
    state: oneOf(e.state, STATES, 'state'),
    certificate_der: blob(e.certificateDer, 'certificateDer'),
    upstream_chain_der: blob(e.upstreamChainDer, 'upstreamChainDer'),
    public_jwk: e.publicJwk === null ? null : str(e.publicJwk, 'publicJwk'),
    kid: str(e.kid, 'kid', true),
    not_before: notBefore,
    not_after: notAfter,
  };
}

const ENTRY_UPDATABLE = new Set([
  'spiffeId', 'parentId', 'selectors', 'x509SvidTtl', 'jwtSvidTtl', 'dnsNames',
  'federatesWith', 'hint', 'jwtAudiences', 'jwtJti', 'expiresAt',
]);
const NODE_UPDATABLE = new Set(['serialNumber', 'expiresAt', 'newSerialNumber', 'newExpiresAt', 'selectors', 'banned']);

/** Drops undefined values ("unchanged") and refuses fields that cannot be updated. */
function checkPatch<T extends object>(u: T, allowed: Set<string>, what: string): Partial<T> {
  obj(u, 'update');
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(u)) {
    if (v === undefined) continue;
    if (!allowed.has(k)) throw invalidArgument(`${what} field ${k} cannot be updated`);
    out[k] = v;
  }
  return out as Partial<T>;
}

function obj(v: unknown, field: string): void {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalidArgument(`${field} must be an object`);
}

function str(v: unknown, field: string, allowEmpty = false): string {
  if (typeof v !== 'string' || (!allowEmpty && v === '')) {
    throw invalidArgument(`${field} must be a ${allowEmpty ? '' : 'non-empty '}string`);
  }
  return v;
}

function nonNegInt(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw invalidArgument(`${field} must be a non-negative integer`);
  }
  return v;
}

function bool(v: unknown, field: string): boolean {
  if (typeof v !== 'boolean') throw invalidArgument(`${field} must be a boolean`);
  return v;
}

function oneOf<T extends string>(v: unknown, allowed: readonly T[], field: string): T {
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
function trustDomainName(v: unknown, field: string): string {
  if (typeof v !== 'string' || !/^[a-z0-9._-]+$/.test(v)) {
    throw invalidArgument(`${field} must be a trust domain name without scheme (lower-case letters, digits, . _ -)`);
  }
  return v;
}

function strList(v: unknown, field: string, each: (v: unknown, field: string) => string): string[] {
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

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const sortSelectors = (s: Selector[]) => s.sort((a, b) => cmp(a.type, b.type) || cmp(a.value, b.value));

/** Validates selectors and returns them as a set: sorted by (type, value), duplicates dropped. */
function selectorSet(v: unknown, field: string, allowEmpty = false): Selector[] {
  if (!Array.isArray(v) || (!allowEmpty && v.length === 0)) {
    throw invalidArgument(`${field} must be a ${allowEmpty ? '' : 'non-empty '}array of selectors`);
  }
  const out = sortSelectors(
    v.map((s: unknown, i) => {
      obj(s, `${field}[${i}]`);
      const { type, value } = s as Selector;
      return { type: str(type, `${field}[${i}].type`), value: str(value, `${field}[${i}].value`) };
    }),
  );
  return out.filter((s, i) => i === 0 || s.type !== out[i - 1]!.type || s.value !== out[i - 1]!.value);
}

/** Canonical text of a selector set (JSON pairs, so "a:b"/"c" and "a"/"b:c" stay distinct). */
const selectorsKey = (s: Selector[]): string => JSON.stringify(s.map((x) => [x.type, x.value]));

/**
 * Matched by name and code, not `instanceof`: better-sqlite3's native binding keeps
 * the SqliteError class of the first copy of the module that loaded it, so a second
 * module registry in the same process (jest runs one per test file) gets errors
 * that are not instances of its own class.
 */
function isUnique(err: unknown): err is InstanceType<typeof BetterSqlite3.SqliteError> {
  const e = err as { name?: unknown; code?: unknown } | null;
  return !!e && e.name === 'SqliteError' && (e.code === 'SQLITE_CONSTRAINT_UNIQUE' || e.code === 'SQLITE_CONSTRAINT_PRIMARYKEY');
}

// ===== federation relationships: statements, rows, validation =====

function prepareFederationStatements(db: Db) {
  const p = (sql: string): Stmt => db.prepare(sql);
  return {
    insert: p(`INSERT INTO federation_relationships (trust_domain, bundle_endpoint_url, profile, endpoint_spiffe_id,
      created_at, updated_at) VALUES (@trust_domain, @bundle_endpoint_url, @profile, @endpoint_spiffe_id,
      @created_at, @updated_at) RETURNING *`),
    fetch: p('SELECT * FROM federation_relationships WHERE trust_domain = ?'),
    list: p('SELECT * FROM federation_relationships ORDER BY trust_domain'),
    update: p(`UPDATE federation_relationships SET bundle_endpoint_url = @bundle_endpoint_url, profile = @profile,
      endpoint_spiffe_id = @endpoint_spiffe_id, updated_at = @updated_at, last_refresh_at = @last_refresh_at,
      last_error = @last_error WHERE trust_domain = @trust_domain RETURNING *`),
    remove: p('DELETE FROM federation_relationships WHERE trust_domain = ? RETURNING *'),
  };
}

interface FederationRow {
  trust_domain: string;
  bundle_endpoint_url: string;
  profile: FederationProfile;
  endpoint_spiffe_id: string | null;
  created_at: number;
  updated_at: number;
  last_refresh_at: number | null;
  last_error: string | null;
}

const toFederation = (r: FederationRow): FederationRelationship => ({
  trustDomain: r.trust_domain,
  bundleEndpointUrl: r.bundle_endpoint_url,
  profile: r.profile,
  endpointSpiffeId: r.endpoint_spiffe_id,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  lastRefreshAt: r.last_refresh_at,
  lastError: r.last_error,
});

const PROFILES = ['https_web', 'https_spiffe'] as const;
const FEDERATION_UPDATABLE = new Set(['bundleEndpointUrl', 'profile', 'endpointSpiffeId', 'lastRefreshAt', 'lastError']);

/**
 * The store's own checks (the admin API checks URLs and IDs more closely): an
 * https URL, a known profile, and an endpoint SPIFFE ID exactly when the profile
 * is https_spiffe.
 */
function normalizeFederation(
  r: Pick<FederationRelationship, 'bundleEndpointUrl' | 'profile' | 'endpointSpiffeId'>,
  trustDomain: string,
) {
  const url = str(r.bundleEndpointUrl, 'bundleEndpointUrl');
  if (!url.startsWith('https://')) throw invalidArgument('bundleEndpointUrl must be an https:// url');
  const profile = oneOf(r.profile, PROFILES, 'profile');
  const id = r.endpointSpiffeId === null || r.endpointSpiffeId === undefined ? null : spiffeID(r.endpointSpiffeId, 'endpointSpiffeId');
  if ((profile === 'https_spiffe') !== (id !== null)) {
    throw invalidArgument(profile === 'https_spiffe' ? 'endpointSpiffeId is required for https_spiffe' : 'endpointSpiffeId must be null for https_web');
  }
  return { trust_domain: trustDomain, bundle_endpoint_url: url, profile, endpoint_spiffe_id: id };
}

// ===== issued SVIDs by signer: statements =====

function prepareIssuedSVIDStatements(db: Db) {
  return {
    upsert: db.prepare(`INSERT INTO issued_svids (holder, authority_id, expires_at) VALUES (@holder, @authority_id, @expires_at)
      ON CONFLICT (holder) DO UPDATE SET authority_id = excluded.authority_id, expires_at = excluded.expires_at`),
    count: db.prepare('SELECT count(*) AS n FROM issued_svids WHERE authority_id = ? AND expires_at > ?'),
    prune: db.prepare('DELETE FROM issued_svids WHERE expires_at <= ?'),
  };
}
