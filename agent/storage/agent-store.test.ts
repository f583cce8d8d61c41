import { createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, chmodSync, chownSync, mkdirSync, symlinkSync } from 'node:fs';
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
import { X509SVIDTemplate } from '../../server/ca/x509-leaf-template';

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
let template: X509SVIDTemplate;
let otherTemplate: X509SVIDTemplate;
/** A real leaf for `spiffeId` over `k`, valid [NOW - 10 s, notAfter], signed by the test root (or another CA). */
const leaves = new Map<string, Buffer>();
const leaf = (spiffeId: string, k: KeyObject, notAfter: number, t = template): Buffer => {
  const id = `${spiffeId} ${notAfter} ${t === template ? 'ours' : 'other'}`;
  if (!leaves.has(id)) leaves.set(id, mintLeaf(spiffeId, k, notAfter, t));
  return leaves.get(id)!;
};
const mintLeaf = (spiffeId: string, k: KeyObject, notAfter: number, t: X509SVIDTemplate) =>
  t.mint({
    spiffeId,
    publicKeySpki: createPublicKey(k).export({ type: 'spki', format: 'der' }),
    notBefore: new Date(NOW - 10e3),
    notAfter: new Date(notAfter * 1000),
  }).der;
beforeAll(async () => {
  const ca = await makeTestKey('ec-p256');
  root = await createSelfSignedCA({ key: ca, trustDomain: 'example.org', notBefore: new Date(NOW - 3600e3), notAfter: new Date(NOW + 86400e3) });
  template = new X509SVIDTemplate({ caCertDer: root, caKey: ca });
  const other = await makeTestKey('ec-p256');
  const otherRoot = await createSelfSignedCA({ key: other, trustDomain: 'example.org', notBefore: new Date(NOW - 3600e3), notAfter: new Date(NOW + 86400e3) });
  otherTemplate = new X509SVIDTemplate({ caCertDer: otherRoot, caKey: other });
  key = (await gen('ec', { namedCurve: 'P-256' })).privateKey;
});
beforeEach(() => (dir = path.join(mkdtempSync(path.join(os.tmpdir(), 'tas-')), 'data')));
afterEach(() => rmSync(path.dirname(dir), { recursive: true, force: true }));

const mode = (p: string) => statSync(p).mode & 0o777;
const bundle = (): SpiffeBundle => ({ trustDomain: 'example.org', x509Authorities: [root], jwtAuthorities: [], sequence: 3 });
const AGENT_ID = 'spiffe://example.org/tessera/agent/join_token/abc';
const identity = (notAfter: number): StoredIdentity => ({
  agentId: AGENT_ID,
  chain: [leaf(AGENT_ID, key, notAfter)],
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
  hint: '',
  expires_at: null,
  created_at: 1,
  revision: 1,
});
const svid = (entryId: string, notAfter: number, t = template): StoredSVID => ({
  entryId,
  spiffeId: `spiffe://example.org/wl/${entryId}`,
  chain: [leaf(`spiffe://example.org/wl/${entryId}`, key, notAfter, t)],
  keyPkcs8: key.export({ type: 'pkcs8', format: 'der' }) as Buffer,
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
    const id = (await s.loadIdentity('example.org', [root]))!;
    expect(id.agentId).toBe('spiffe://example.org/tessera/agent/join_token/abc');
    expect(id.chain).toEqual(identity(NOW / 1000 + 60).chain);
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
    expect(await s.loadIdentity('example.org', [root])).toBeUndefined();
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
    await expect(s.loadIdentity('example.org', [root])).resolves.toBeUndefined();
    const text = lines.join('');
    expect(text).toContain('corrupt');
    expect(text).not.toContain('secret');
    expect(text).not.toContain('c2VjcmV0');
    expect(text).not.toContain((key.export({ type: 'pkcs8', format: 'der' }) as Buffer).toString('base64'));
  });

  test('missing files load as undefined; a new store still writes over a corrupt file', async () => {
    const s = await AgentStore.open(dir, pino({ level: 'silent' }), clock);
    expect(await s.loadCache()).toBeUndefined();
    expect(await s.loadIdentity('example.org', [root])).toBeUndefined();
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

describe('AgentStore refuses what it cannot trust', () => {
  test('a stored SVID signed by another CA, for another SPIFFE ID, with another key, or with a longer JSON expiry is dropped or corrected, and logged', async () => {
    const { log, lines } = captureLog();
    const s = await AgentStore.open(dir, log, clock);
    const forged = svid('a', NOW / 1000 + 60, otherTemplate);
    const wrongId: StoredSVID = { ...svid('b', NOW / 1000 + 60), chain: [leaf('spiffe://example.org/wl/a', key, NOW / 1000 + 60)] };
    const longer: StoredSVID = { ...svid('b', NOW / 1000 + 60), notAfter: NOW / 1000 + 86400 };
    const c = cache([forged, wrongId]);
    c.entries.push(entry('c'));
    const otherKey = (await gen('ec', { namedCurve: 'P-256' })).privateKey;
    const wrongKey: StoredSVID = { ...svid('c', NOW / 1000 + 60), keyPkcs8: otherKey.export({ type: 'pkcs8', format: 'der' }) as Buffer };
    await s.saveCache({ ...c, svids: [forged, wrongId, wrongKey] });
    expect((await s.loadCache())!.svids).toEqual([]);
    const text = lines.join('');
    expect(text).toContain('failed verification');
    expect(text).toMatch(/"entryId":"a","reason":"invalid x509-svid/);
    expect(text).toMatch(/"entryId":"b","reason":"its uri san spiffe:\/\/example.org\/wl\/a is not the entry's spiffe id/);
    expect(text).toMatch(/"entryId":"c","reason":"the stored key is not the certificate key"/);

    await s.saveCache(cache([longer]));
    const [kept] = (await s.loadCache())!.svids;
    expect(kept!.notAfter).toBe(NOW / 1000 + 60); // from the certificate, not the JSON
  });

  test('many SVIDs of one CA verify, each on its own signature', async () => {
    const s = await AgentStore.open(dir, pino({ level: 'silent' }), clock);
    const c = cache([]);
    c.entries = Array.from({ length: 50 }, (_, i) => entry(`e${i}`));
    c.svids = c.entries.map((e) => svid(e.id, NOW / 1000 + 60));
    // One leaf in the middle with a broken signature (last byte flipped).
    const bad = Buffer.from(c.svids[25]!.chain[0]!);
    bad[bad.length - 1] ^= 1;
    c.svids[25] = { ...c.svids[25]!, chain: [bad] };
    await s.saveCache(c);
    const ids = (await s.loadCache())!.svids.map((v) => v.entryId);
    expect(ids).toHaveLength(49);
    expect(ids).not.toContain('e25');
  });

  test('an agent SVID whose chain does not verify with the cached bundle, or whose key differs, is ignored', async () => {
    const s = await AgentStore.open(dir, pino({ level: 'silent' }), clock);
    await s.saveIdentity({ ...identity(NOW / 1000 + 60), chain: [mintLeaf(AGENT_ID, key, NOW / 1000 + 60, otherTemplate)] });
    expect(await s.loadIdentity('example.org', [root])).toBeUndefined();
    const otherKey = (await gen('ec', { namedCurve: 'P-256' })).privateKey;
    await s.saveIdentity({ ...identity(NOW / 1000 + 60), key: otherKey });
    expect(await s.loadIdentity('example.org', [root])).toBeUndefined();
    await s.saveIdentity(identity(NOW / 1000 + 60));
    expect((await s.loadIdentity('example.org', [root]))!.agentId).toBe(AGENT_ID);
  });

  test('a state file that is a symlink, or is readable by others, is not read', async () => {
    const { log, lines } = captureLog();
    const s = await AgentStore.open(dir, log, clock);
    await s.saveCache(cache([svid('a', NOW / 1000 + 60)]));
    const real = path.join(path.dirname(dir), 'elsewhere.json');
    writeFileSync(real, readFileSync(path.join(dir, CACHE_FILE)), { mode: 0o600 });
    rmSync(path.join(dir, CACHE_FILE));
    symlinkSync(real, path.join(dir, CACHE_FILE));
    expect(await s.loadCache()).toBeUndefined();
    expect(AgentStore.peekBundle(dir)).toBeUndefined();
    expect(lines.join('')).toContain('is a symbolic link');
    rmSync(path.join(dir, CACHE_FILE));
    writeFileSync(path.join(dir, CACHE_FILE), readFileSync(real), { mode: 0o644 });
    chmodSync(path.join(dir, CACHE_FILE), 0o644);
    expect(await s.loadCache()).toBeUndefined();
    expect(lines.join('')).toContain('accessible by group or others');
    // The next save replaces the file (and a symlink) rather than writing through it.
    await s.saveCache(cache([]));
    expect(mode(path.join(dir, CACHE_FILE))).toBe(0o600);
  });

  test.each([
    ['group-writable', 0o770],
    ['world-writable', 0o777],
  ])('a %s data directory is refused', async (_what, m) => {
    mkdirSync(dir, { mode: m });
    chmodSync(dir, m);
    await expect(AgentStore.open(dir, pino({ level: 'silent' }), clock)).rejects.toThrow(/agent data directory: .* is writable by group or others/);
  });

  const asRoot = process.geteuid?.() === 0 ? test : test.skip;
  asRoot('a data directory (or a parent) owned by another user is refused', async () => {
    mkdirSync(dir, { mode: 0o700 });
    chownSync(dir, 4242, 4242);
    await expect(AgentStore.open(dir, pino({ level: 'silent' }), clock)).rejects.toThrow(/is owned by uid 4242, not by this process/);
    const child = path.join(dir, 'agent');
    await expect(AgentStore.open(child, pino({ level: 'silent' }), clock)).rejects.toThrow(/is owned by uid 4242/);
  });
});
