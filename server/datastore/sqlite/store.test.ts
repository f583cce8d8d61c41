import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { TesseraError } from '../../../common/errors';
import { runDataStoreContract } from '../contract';
import type { DataStore } from '../datastore';
import { defaultMigrationsDir, migrate } from './migrate';
import { SqliteDataStore } from './store';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-ds-'));

runDataStoreContract('sqlite', async () => {
  const dir = tmp();
  const file = path.join(dir, 'datastore.sqlite3');
  let current: DataStore = SqliteDataStore.open(file);
  return {
    store: current,
    reopen: async () => (current = SqliteDataStore.open(file)),
    cleanup: async () => {
      await current.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe('SqliteDataStore on disk', () => {
  let dir: string;
  const opened: SqliteDataStore[] = [];
  const open = (file: string, opts?: Parameters<typeof SqliteDataStore.open>[1]) => {
    const s = SqliteDataStore.open(file, opts);
    opened.push(s);
    return s;
  };
  beforeEach(() => {
    dir = tmp();
  });
  afterEach(async () => {
    for (const s of opened.splice(0)) await s.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('sets WAL, synchronous=NORMAL, foreign keys and the busy timeout', () => {
    const s = open(path.join(dir, 'ds.db'));
    expect(s.settings()).toEqual({ journalMode: 'wal', synchronous: 1, foreignKeys: true, busyTimeoutMs: 5000 });
  });

  it('goes back to synchronous=NORMAL after a FULL-synced CA journal or bundle write', async () => {
    const s = open(path.join(dir, 'ds.db'));
    await s.putCAJournalEntry({
      id: 'j', kind: 'jwt', keyId: 'k', state: 'prepared', certificateDer: null, upstreamChainDer: null,
      publicJwk: '{}', kid: 'kid', notBefore: 1, notAfter: 2,
    });
    await s.setBundle({ trustDomain: 'example.org', document: '{"keys":[]}', sequence: 1 });
    await expect(s.deleteBundle('nope.org')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(s.settings().synchronous).toBe(1);
  });

  it('creates the parent directory and keeps the database files at mode 0600', async () => {
    const file = path.join(dir, 'a', 'b', 'ds.db');
    const s = open(file);
    await s.createRegistrationEntry({
      spiffeId: 'spiffe://example.org/w', parentId: 'spiffe://example.org/a', selectors: [{ type: 'unix', value: 'uid:0' }],
      x509SvidTtl: 0, jwtSvidTtl: 0, dnsNames: [], federatesWith: [], hint: '', expiresAt: null,
    });
    for (const f of [file, `${file}-wal`, `${file}-shm`]) expect(fs.statSync(f).mode & 0o777).toBe(0o600);
  });

  it('tightens an existing database file to 0600', () => {
    const file = path.join(dir, 'ds.db');
    fs.writeFileSync(file, '', { mode: 0o644 });
    open(file);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  });

  it('uses the injected clock', async () => {
    const s = open(path.join(dir, 'ds.db'), { now: () => 1_234_567.9 });
    const n = await s.createAttestedNode({
      spiffeId: 'spiffe://example.org/a', attestationType: 'join_token', serialNumber: '1', expiresAt: 2,
      newSerialNumber: '', newExpiresAt: 0, selectors: [], banned: false,
    });
    expect([n.createdAt, n.updatedAt]).toEqual([1_234_567, 1_234_567]);
  });

  it('refuses to turn an x509 journal slot into a jwt one', async () => {
    const s = open(path.join(dir, 'ds.db'));
    const base = { id: 'slot', keyId: 'k', state: 'prepared' as const, upstreamChainDer: null, kid: 'k', notBefore: 1, notAfter: 2 };
    await s.putCAJournalEntry({ ...base, kind: 'x509', certificateDer: Buffer.from([1]), publicJwk: null });
    await expect(s.putCAJournalEntry({ ...base, kind: 'jwt', certificateDer: null, publicJwk: '{}' })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    expect((await s.listCAJournal())[0]?.kind).toBe('x509');
  });

  it('rejects a page token made for another list', async () => {
    const s = open(path.join(dir, 'ds.db'));
    for (let i = 0; i < 3; i++) {
      await s.createAttestedNode({
        spiffeId: `spiffe://example.org/a${i}`, attestationType: 'join_token', serialNumber: '1', expiresAt: 2,
        newSerialNumber: '', newExpiresAt: 0, selectors: [], banned: false,
      });
    }
    const { nextPageToken } = await s.listAttestedNodes({ pageSize: 1 });
    await expect(s.listRegistrationEntries({ pageToken: nextPageToken })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('is unavailable after close', async () => {
    const s = open(path.join(dir, 'ds.db'));
    await s.close();
    await s.close(); // harmless
    await expect(s.getRevision()).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });

  it('refuses a file that is not a database', () => {
    const file = path.join(dir, 'ds.db');
    fs.writeFileSync(file, 'this is not sqlite, just some bytes to look at'.repeat(50));
    expect(() => open(file)).toThrow(expect.objectContaining({ code: 'FAILED_PRECONDITION' }));
  });
});

describe('migrate', () => {
  let dir: string;
  let db: BetterSqlite3.Database;
  beforeEach(() => {
    dir = tmp();
    db = new BetterSqlite3(':memory:');
  });
  afterEach(() => {
    db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const versions = () => db.prepare('SELECT version, name, applied_at FROM schema_version ORDER BY version').all();
  const write = (files: Record<string, string>) => {
    for (const [f, sql] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), sql);
  };
  const thrown = (fn: () => unknown): TesseraError => {
    try {
      fn();
    } catch (e) {
      expect(e).toBeInstanceOf(TesseraError);
      return e as TesseraError;
    }
    throw new Error('expected a throw');
  };

  it('finds the repository migrations from the source tree', () => {
    expect(defaultMigrationsDir()).toBe(path.resolve(__dirname, '../../../migrations/sqlite'));
  });

  it('applies the real migrations once; a second run is a no-op', () => {
    const lines: unknown[] = [];
    const log = { info: (o: Record<string, unknown>) => lines.push(o) };
    const latest = fs.readdirSync(defaultMigrationsDir()).filter((f) => f.endsWith('.sql')).length;
    expect(migrate(db, defaultMigrationsDir(), log)).toEqual({ from: 0, to: latest });
    expect(lines[0]).toEqual({ version: 1, name: 'init' });
    expect(lines).toHaveLength(latest);
    const before = versions();
    expect(migrate(db, defaultMigrationsDir(), log)).toEqual({ from: latest, to: latest });
    expect(versions()).toEqual(before);
    expect(lines).toHaveLength(latest);
  });

  it('migration 6 re-sorts a selector set stored in UTF-16 order to code point order, and leaves other keys byte-equal', () => {
    const real = defaultMigrationsDir();
    const files = fs.readdirSync(real).filter((f) => f.endsWith('.sql')).sort();
    for (const f of files.slice(0, 5)) fs.copyFileSync(path.join(real, f), path.join(dir, f));
    expect(migrate(db, dir)).toEqual({ from: 0, to: 5 });
    const put = (id: string, key: string, sels: [string, string][]) => {
      db.prepare(`INSERT INTO registration_entries (id, spiffe_id, parent_id, selectors_key, x509_svid_ttl, jwt_svid_ttl,
        admin, downstream, created_at, revision) VALUES (?, 'spiffe://td/w', 'spiffe://td/a', ?, 0, 0, 0, 0, 0, 1)`).run(id, key);
      for (const [t, v] of sels) db.prepare('INSERT INTO entry_selectors VALUES (?, ?, ?)').run(id, t, v);
    };
    // the old store's order: '\u{1F600}' < '\uFFFD' by UTF-16 units
    put('astral', JSON.stringify([['k', '\u{1F600}'], ['k', '\uFFFD']]), [['k', '\u{1F600}'], ['k', '\uFFFD']]);
    const plain = JSON.stringify([['unix', 'gid:"1"\\'], ['unix', 'uid:1000\u00e9']]);
    put('plain', plain, [['unix', 'gid:"1"\\'], ['unix', 'uid:1000\u00e9']]);
    fs.copyFileSync(path.join(real, files[5]!), path.join(dir, files[5]!));
    expect(migrate(db, dir)).toEqual({ from: 5, to: 6 });
    const key = (id: string) => (db.prepare('SELECT selectors_key AS k FROM registration_entries WHERE id = ?').get(id) as { k: string }).k;
    expect(key('astral')).toBe(JSON.stringify([['k', '\uFFFD'], ['k', '\u{1F600}']]));
    expect(key('plain')).toBe(plain);
  });

  it('applies only the files not yet applied, in order', () => {
    write({ '0001_a.sql': 'CREATE TABLE a (x);', 'README.md': 'ignored' });
    expect(migrate(db, dir)).toEqual({ from: 0, to: 1 });
    write({ '0002_b.sql': 'CREATE TABLE b (x); INSERT INTO a VALUES (1);', '0003_c.sql': 'ALTER TABLE b ADD COLUMN y;' });
    expect(migrate(db, dir)).toEqual({ from: 1, to: 3 });
    expect(versions().map((v) => (v as { name: string }).name)).toEqual(['a', 'b', 'c']);
  });

  it('rolls back a failing file and records nothing for it', () => {
    write({ '0001_a.sql': 'CREATE TABLE a (x);', '0002_bad.sql': 'CREATE TABLE b (x); SELECT * FROM missing;' });
    expect(() => migrate(db, dir)).toThrow(/missing/);
    expect(versions()).toHaveLength(1);
    expect(db.prepare("SELECT name FROM sqlite_master WHERE name = 'b'").get()).toBeUndefined();
  });

  it('refuses a database newer than its files', () => {
    write({ '0001_a.sql': 'CREATE TABLE a (x);', '0002_b.sql': 'CREATE TABLE b (x);', '0003_c.sql': 'CREATE TABLE c (x);' });
    migrate(db, dir);
    db.prepare('INSERT INTO schema_version VALUES (7, ?, 0)').run('future');
    const err = thrown(() => migrate(db, dir));
    expect(err.code).toBe('FAILED_PRECONDITION');
    expect(err.message).toBe(
      'database schema version 7 is newer than this tessera supports (3); upgrade tessera or point it at another data directory',
    );
  });

  it('refuses to open a data file stamped with a newer schema', async () => {
    const file = path.join(dir, 'ds.db');
    await SqliteDataStore.open(file).close();
    const raw = new BetterSqlite3(file);
    raw.prepare("INSERT INTO schema_version VALUES (70, 'future', 0)").run();
    raw.close();
    const err = thrown(() => SqliteDataStore.open(file));
    expect(err.code).toBe('FAILED_PRECONDITION');
    const latest = fs.readdirSync(defaultMigrationsDir()).filter((f) => f.endsWith('.sql')).length;
    expect(err.message).toBe(
      `database schema version 70 is newer than this tessera supports (${latest}); upgrade tessera or point it at another data directory`,
    );
  });

  it('refuses a recorded version whose name differs from the file', () => {
    write({ '0001_a.sql': 'CREATE TABLE a (x);' });
    migrate(db, dir);
    fs.renameSync(path.join(dir, '0001_a.sql'), path.join(dir, '0001_other.sql'));
    expect(thrown(() => migrate(db, dir)).message).toMatch(/applied as "a" but this tessera has "other"/);
  });

  it.each<[string, Record<string, string>, RegExp]>([
    ['a gap', { '0001_a.sql': '', '0003_c.sql': '' }, /missing version 2/],
    ['a duplicate number', { '0001_a.sql': '', '0002_b.sql': '', '0002_c.sql': '' }, /duplicate version 2/],
    ['a first file other than 0001', { '0002_b.sql': '' }, /missing version 1/],
    ['a misnamed file', { '0001_a.sql': '', '2_b.sql': '' }, /2_b\.sql is not named NNNN_name\.sql/],
  ])('refuses a directory with %s', (_what, files, message) => {
    write(files);
    const err = thrown(() => migrate(db, dir));
    expect(err.code).toBe('FAILED_PRECONDITION');
    expect(err.message).toMatch(message);
    expect(db.prepare('SELECT COUNT(*) AS n FROM sqlite_master').get()).toEqual({ n: 0 }); // checked before any write
  });
});
