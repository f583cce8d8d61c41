import { generateKeyPair, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, chmodSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { Writable } from 'node:stream';
import { createSelfSignedCA } from '../../server/ca/ca-certificates';
import { makeTestKey } from '../../test/helpers/x509-test-keys';
import type { SpiffeBundle } from '../../common/bundle/bundle';
import type { EntryJSON } from '../client/server-client';
import { AgentStore, CACHE_FILE, IDENTITY_FILE, type StoredCache, type StoredIdentity, type StoredSVID } from './agent-store';
import { writeFileAtomic } from './atomic-file';

const gen = promisify(generateKeyPair);
const NOW = Date.parse('2026-06-01T00:00:00Z');
const clock = { now: () => new Date(NOW) };

/** A logger whose lines the test can read (to check what is, and is not, logged). */
function captureLog() {
  const lines: string[] = [];
  const stream = new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) });
  return { log: pino({ level: 'debug' }, stream), lines };
}

let dir: string;
let root: Buffer;
let key: KeyObject;
beforeAll(async () => {
  const ca = await makeTestKey('ec-p256');
  root = await createSelfSignedCA({ key: ca, trustDomain: 'example.org', notBefore: new Date(NOW - 3600e3), notAfter: new Date(NOW + 86400e3) });
  key = (await gen('ec', { namedCurve: 'P-256' })).privateKey;
});
beforeEach(() => (dir = path.join(mkdtempSync(path.join(os.tmpdir(), 'tas-')), 'data')));
afterEach(() => rmSync(path.dirname(dir), { recursive: true, force: true }));

const mode = (p: string) => statSync(p).mode & 0o777;
const bundle = (): SpiffeBundle => ({ trustDomain: 'example.org', x509Authorities: [root], jwtAuthorities: [], sequence: 3 });
const identity = (notAfter: number): StoredIdentity => ({
  agentId: 'spiffe://example.org/tessera/agent/join_token/abc',
  chain: [root],
  key,
  notBefore: NOW / 1000 - 10,
  notAfter,
  receivedAt: NOW,
});
const entry = (id: string): EntryJSON => ({
  id,
  spiffe_id: `spiffe://example.org/wl/${id}`,
  parent_id: 'spiffe://example.org/node',
  selectors: [{ type: 'unix', value: 'uid:1000' }],
  x509_svid_ttl: 0,
  jwt_svid_ttl: 0,
  dns_names: [],
  federates_with: [],
  admin: false,
  downstream: false,
  hint: '',
  expires_at: null,
  created_at: 1,
  revision: 1,
});
const svid = (entryId: string, notAfter: number): StoredSVID => ({
  entryId,
  spiffeId: `spiffe://example.org/wl/${entryId}`,
  chain: [root],
  keyPkcs8: Buffer.from(`secret-key-material-${entryId}`),
  notBefore: NOW / 1000 - 10,
  notAfter,
  receivedAt: NOW,
  rotateAt: NOW + 1000,
  dnsNames: ['a.example'],
  ttl: 10,
});
const cache = (svids: StoredSVID[]): StoredCache => ({
  trustDomain: 'example.org',
  revision: 42,
  bundleSequence: 3,
  bundle: bundle(),
  federated: [{ trustDomain: 'other.org', x509Authorities: [root], jwtAuthorities: [], sequence: 9 }],
  entries: [entry('a'), entry('b')],
  svids,
});

describe('AgentStore', () => {
  test('creates the data dir 0700 (tightening an existing one) and writes files 0600', async () => {
    mkdirSync(dir, { mode: 0o755 });
    chmodSync(dir, 0o755);
    const s = await AgentStore.open(dir, pino({ level: 'silent' }), clock);
    expect(mode(dir)).toBe(0o700);
    await s.saveIdentity(identity(NOW / 1000 + 60));
    await s.saveCache(cache([svid('a', NOW / 1000 + 60)]));
    expect(mode(path.join(dir, IDENTITY_FILE))).toBe(0o600);
    expect(mode(path.join(dir, CACHE_FILE))).toBe(0o600);
    expect(readdirSync(dir).sort()).toEqual([IDENTITY_FILE, CACHE_FILE].sort()); // no temp files left
  });

  test('round-trips the identity (key as PKCS#8) and the cache', async () => {
    const s = await AgentStore.open(dir, pino({ level: 'silent' }), clock);
    await s.saveIdentity(identity(NOW / 1000 + 60));
    const id = (await s.loadIdentity())!;
    expect(id.agentId).toBe('spiffe://example.org/tessera/agent/join_token/abc');
    expect(id.chain).toEqual([root]);
    expect(id.key.equals(key)).toBe(true);
    expect(JSON.parse(readFileSync(path.join(dir, IDENTITY_FILE), 'utf8')).key).toBe(
      (key.export({ type: 'pkcs8', format: 'der' }) as Buffer).toString('base64'),
    );

    await s.saveCache(cache([svid('a', NOW / 1000 + 60)]));
    const c = (await s.loadCache())!;
    expect(c.revision).toBe(42);
    expect(c.bundleSequence).toBe(3);
    expect(c.bundle!.x509Authorities).toEqual([root]);
    expect(c.bundle!.sequence).toBe(3);
    expect(c.federated.map((b) => [b.trustDomain, b.sequence])).toEqual([['other.org', 9]]);
    expect(c.entries.map((e) => e.id)).toEqual(['a', 'b']);
    expect(c.entries[0]).toEqual(entry('a'));
    expect(c.svids).toEqual([svid('a', NOW / 1000 + 60)]);
  });

  test('drops expired SVIDs and an expired agent SVID on load', async () => {
    const s = await AgentStore.open(dir, pino({ level: 'silent' }), clock);
    await s.saveIdentity(identity(NOW / 1000 - 1));
    await s.saveCache(cache([svid('a', NOW / 1000 - 1), svid('b', NOW / 1000 + 1)]));
    expect(await s.loadIdentity()).toBeUndefined();
    expect((await s.loadCache())!.svids.map((v) => v.entryId)).toEqual(['b']);
  });

  test('a corrupt or truncated file is logged without its content and treated as absent', async () => {
    const { log, lines } = captureLog();
    const s = await AgentStore.open(dir, log, clock);
    await s.saveCache(cache([svid('a', NOW / 1000 + 60)]));
    const full = readFileSync(path.join(dir, CACHE_FILE), 'utf8');
    writeFileSync(path.join(dir, CACHE_FILE), full.slice(0, full.length / 2));
    writeFileSync(path.join(dir, IDENTITY_FILE), JSON.stringify({ version: 1, agent_id: 'spiffe://example.org/x', chain: [], key: 'c2VjcmV0' }));
    await expect(s.loadCache()).resolves.toBeUndefined();
    await expect(s.loadIdentity()).resolves.toBeUndefined();
    const text = lines.join('');
    expect(text).toContain('corrupt');
    expect(text).not.toContain('secret');
    expect(text).not.toContain('c2VjcmV0');
    expect(text).not.toContain(Buffer.from('secret-key-material-a').toString('base64'));
  });

  test('missing files load as undefined; a new store still writes over a corrupt file', async () => {
    const s = await AgentStore.open(dir, pino({ level: 'silent' }), clock);
    expect(await s.loadCache()).toBeUndefined();
    expect(await s.loadIdentity()).toBeUndefined();
    writeFileSync(path.join(dir, CACHE_FILE), '{not json');
    await s.saveCache(cache([]));
    expect((await s.loadCache())!.revision).toBe(42);
  });

  test('open removes temp files a crash left behind', async () => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, `${CACHE_FILE}.123.abcd.tmp`), 'half-written key');
    await AgentStore.open(dir, pino({ level: 'silent' }), clock);
    expect(readdirSync(dir)).toEqual([]);
  });

  test('concurrent saves land in call order (the last one wins)', async () => {
    const s = await AgentStore.open(dir, pino({ level: 'silent' }), clock);
    await Promise.all([1, 2, 3, 4, 5].map((r) => s.saveCache({ ...cache([]), revision: r })));
    expect((await s.loadCache())!.revision).toBe(5);
  });

  test('a burst of saves merges into at most two writes, the last state winning', async () => {
    const s = await AgentStore.open(dir, pino({ level: 'silent' }), clock);
    let encodes = 0;
    let state = 0;
    const saves = [];
    for (let i = 1; i <= 10; i++) {
      state = i;
      saves.push(s.saveCache(() => (encodes++, { ...cache([]), revision: state })));
      if (i === 1) await Promise.resolve().then(() => undefined); // let the first write start
    }
    await Promise.all(saves);
    expect(encodes).toBeLessThanOrEqual(2);
    expect((await s.loadCache())!.revision).toBe(10);
  });

  test('peekBundle reads the cached bundle synchronously, checking the trust domain', async () => {
    const s = await AgentStore.open(dir, pino({ level: 'silent' }), clock);
    expect(AgentStore.peekBundle(dir)).toBeUndefined();
    await s.saveCache(cache([]));
    expect(AgentStore.peekBundle(dir)!.x509Authorities).toEqual([root]);
    expect(AgentStore.peekBundle(dir, 'example.org')!.sequence).toBe(3);
    expect(AgentStore.peekBundle(dir, 'other.org')).toBeUndefined();
  });
});

describe('writeFileAtomic', () => {
  test('replaces the file whole, mode 0600', async () => {
    mkdirSync(dir, { recursive: true });
    const f = path.join(dir, 'x.json');
    writeFileSync(f, 'old');
    await writeFileAtomic(f, 'new');
    expect(readFileSync(f, 'utf8')).toBe('new');
    expect(mode(f)).toBe(0o600);
  });

  test('a failed write leaves the old content and no temp file', async () => {
    mkdirSync(dir, { recursive: true });
    const f = path.join(dir, 'x.json');
    writeFileSync(f, 'old');
    // A directory where the target should be: the rename fails after the temp file is written.
    const d = path.join(dir, 'sub');
    mkdirSync(path.join(d, 'x.json'), { recursive: true });
    await expect(writeFileAtomic(path.join(d, 'x.json'), 'new')).rejects.toThrow();
    expect(readdirSync(d)).toEqual(['x.json']);
    expect(readFileSync(f, 'utf8')).toBe('old');
  });
});
