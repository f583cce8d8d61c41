import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { X509Certificate, generateKeyPair as gen, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import pino from 'pino';
import { CAManager, type CAManagerConfig, type CAManagerDeps } from './ca-manager';
import { SqliteDataStore } from '../datastore/sqlite/store';
import type { DataStore } from '../datastore/datastore';
import { MemoryKeyManager } from '../keymanager/memory';
import { decodeBundle } from '../../common/bundle/bundle';
import { authorityKeyId } from '../../common/x509svid/key-id';
import type { Clock } from '../../common/clock';

/**
 * The CA manager's slots over time with a fake clock, the real SQLite store and
 * a key manager that outlives "restarts" (like the disk one). CA lifetime 600 s:
 * prepare at +300, activate at +500, prune the old CA at +600.
 */
const log = pino({ level: 'silent' });
const T0 = 1_800_000_000;
const config: CAManagerConfig = { trustDomain: 'rot.test', caKeyType: 'ec-p256', caTtl: 600, organization: 'Tessera', jwtKeyType: 'ec-p256', refreshHint: 60 };

class FakeClock implements Clock {
  constructor(public s: number) {}
  now() {
    return new Date(this.s * 1000);
  }
}

let dir: string;
let dbPath: string;
let spki: Buffer;
let clock: FakeClock;
let keys: MemoryKeyManager;
let store: SqliteDataStore;
beforeAll(async () => {
  const { publicKey } = (await promisify(gen)('ec', { namedCurve: 'P-256' })) as { publicKey: KeyObject };
  spki = publicKey.export({ format: 'der', type: 'spki' });
});
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ca-rot-'));
  dbPath = path.join(dir, 'db.sqlite3');
  clock = new FakeClock(T0);
  keys = new MemoryKeyManager();
  store = SqliteDataStore.open(dbPath);
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const start = (over: Partial<CAManagerDeps> = {}) => CAManager.start({ config, keyManager: keys, store, log, clock, ...over });
/** A server restart: a new manager over the reopened database and the same keys. */
async function restart(): Promise<CAManager> {
  await store.close();
  store = SqliteDataStore.open(dbPath);
  return start();
}
const states = (ca: CAManager, kind: 'x509' | 'jwt' = 'x509') => ca.authorities(kind).map((a) => a.state);
const mint = (ca: CAManager) => ca.mintX509SVID({ spiffeId: 'spiffe://rot.test/w', publicKeySpki: spki, ttl: 60 });

/** The invariant: the SVID chains to a root in the bundle *stored* (published) at the moment it was minted. */
async function expectSignedByPublished(s: DataStore, leaf: Buffer): Promise<void> {
  const stored = await s.fetchBundle('rot.test');
  const roots = decodeBundle('rot.test', stored!.document).x509Authorities.map((d) => new X509Certificate(d));
  const cert = new X509Certificate(leaf);
  expect(roots.some((r) => cert.checkIssued(r) && cert.verify(r.publicKey))).toBe(true);
}

it('prepares at half-life (published, not signing), activates at five-sixths, prunes once the old CA expired', async () => {
  const ca = await start();
  const first = ca.authorities('x509')[0]!;
  expect(states(ca)).toEqual(['active']);
  expect(first).toMatchObject({ prepareAt: T0 + 300, activateAt: T0 + 500 });
  const seq0 = ca.bundle().sequence!;

  clock.s = T0 + 299;
  await ca.rotate();
  expect(states(ca)).toEqual(['active']);

  clock.s = T0 + 300;
  await ca.rotate();
  expect(states(ca)).toEqual(['active', 'prepared']);
  expect(states(ca, 'jwt')).toEqual(['active', 'prepared']);
  expect(ca.bundle().x509Authorities).toHaveLength(2);
  expect(ca.bundle().jwtAuthorities).toHaveLength(2);
  expect(ca.bundle().sequence).toBe(seq0 + 2);
  const before = mint(ca);
  expect(before.authorityId).toBe(first.id); // the prepared key does not sign yet
  expect(ca.mintJWTSVID({ spiffeId: 'spiffe://rot.test/w', audience: ['a'], ttl: 60 }).authorityId).toBe(ca.authorities('jwt')[0]!.id);

  clock.s = T0 + 499;
  const late = ca.mintX509SVID({ spiffeId: 'spiffe://rot.test/w', publicKeySpki: spki, ttl: 600 }); // capped at the old CA's expiry
  expect(late.expiresAt).toBe(first.notAfter);
  clock.s = T0 + 500;
  await ca.rotate();
  expect(states(ca)).toEqual(['retired', 'active']);
  const second = ca.authorities('x509')[1]!;
  const after = mint(ca);
  expect(after.authorityId).toBe(second.id);
  expect(authorityKeyId(after.chain[0]!)).toBe(second.keyId);
  expect(authorityKeyId(late.chain[0]!)).toBe(first.keyId);
  expect(ca.bundle().sequence).toBe(seq0 + 2); // activation changes no published key

  clock.s = T0 + 599;
  await ca.rotate();
  expect(ca.bundle().x509Authorities).toHaveLength(2); // `late` is still valid until T0+600
  clock.s = T0 + 600;
  await ca.rotate();
  // the first CA is gone; the second is at half-life, so the third is prepared in the same step
  expect(ca.authorities('x509').map((a) => a.id)).not.toContain(first.id);
  expect(states(ca)).toEqual(['active', 'prepared']);
  expect(states(ca, 'jwt')).toEqual(['active', 'prepared']);
  const roots = ca.bundle().x509Authorities.map((d) => new X509Certificate(d));
  expect(roots.some((r) => new X509Certificate(late.chain[0]!).checkIssued(r))).toBe(false);
  await expectSignedByPublished(store, after.chain[0]!);
  await ca.stop();
});

it('three rotations in a row keep exactly one active key and at most two published ones', async () => {
  const ca = await start();
  const activations: number[] = [];
  let active = ca.authorities('x509').find((a) => a.state === 'active')!.id;
  for (let t = T0; t <= T0 + 1300; t += 10) {
    clock.s = t;
    await ca.rotate();
    expect(states(ca).filter((s) => s === 'active')).toHaveLength(1);
    expect(ca.bundle().x509Authorities.length).toBeLessThanOrEqual(2);
    await expectSignedByPublished(store, mint(ca).chain[0]!);
    const now = ca.authorities('x509').find((a) => a.state === 'active')!.id;
    if (now !== active) activations.push(t - T0);
    active = now;
  }
  // Each key lives 600 s from its prepare: prepared at +300, +600, +900, +1200; activated 200 s later.
  expect(activations).toEqual([500, 800, 1100]);
  expect(states(ca)).toEqual(['active', 'prepared']);
});

describe('a restart resumes exactly where it was', () => {
  it.each([
    ['after prepare', 300, ['active', 'prepared']],
    ['after activate', 500, ['retired', 'active']],
    ['after prune', 600, ['active']],
  ])('%s', async (_name, at, expected) => {
    const ca = await start();
    clock.s = T0 + at;
    await ca.rotate();
    const slots = ca.authorities('x509');
    const jwt = ca.authorities('jwt');
    const bundle = ca.bundle();
    expect(slots.map((s) => s.state)).toEqual(expected);
    await ca.stop();
    const again = await restart();
    expect(again.authorities('x509')).toEqual(slots);
    expect(again.authorities('jwt')).toEqual(jwt);
    expect(again.bundle().sequence).toBe(bundle.sequence);
    expect(mint(again).authorityId).toBe(slots.find((s) => s.state === 'active')!.id);
    await again.stop();
  });

  it('a prepared key whose publication was lost in a crash is published before it signs', async () => {
    const ca = await start();
    clock.s = T0 + 300;
    // Crash between the journal write of the prepared slot and the bundle write.
    const setBundle = store.setBundle.bind(store);
    store.setBundle = async () => {
      throw new Error('killed');
    };
    await expect(ca.rotate()).rejects.toThrow('killed');
    store.setBundle = setBundle;
    expect((await store.listCAJournal('x509')).map((s) => s.state)).toEqual(['active', 'prepared']);
    expect(decodeBundle('rot.test', (await store.fetchBundle('rot.test'))!.document).x509Authorities).toHaveLength(1);

    clock.s = T0 + 550; // restarted late, past the activation time
    const again = await restart();
    expect(states(again)).toEqual(['retired', 'active']);
    await expectSignedByPublished(store, mint(again).chain[0]!);
    await again.stop();
  });

  it('a crash between "activate new" and "retire old" leaves two active slots: the newer one signs and the older is retired', async () => {
    const ca = await start();
    clock.s = T0 + 300;
    await ca.rotate();
    await ca.stop();
    const [old, next] = await store.listCAJournal('x509');
    await store.putCAJournalEntry({ ...next!, state: 'active' }); // the first write of an activation, then "killed"
    const again = await restart();
    expect(states(again)).toEqual(['retired', 'active']);
    expect(mint(again).authorityId).toBe(next!.id);
    expect(again.authorities('x509')[0]!.id).toBe(old!.id);
    await again.stop();
  });
});

describe('operator control', () => {
  it('prepare and activate by hand; taint only an old key; revoke only when nothing depends on it, or with force', async () => {
    const ca = await start();
    const first = ca.authorities('x509')[0]!;
    const old = mint(ca);
    await expect(ca.taint('x509', first.id)).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    await expect(ca.activate('x509')).rejects.toMatchObject({ code: 'FAILED_PRECONDITION', message: expect.stringMatching(/prepare/) });
    const prepared = await ca.prepare('x509');
    expect(prepared.state).toBe('prepared');
    await expect(ca.taint('x509', prepared.id)).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    await expect(ca.activate('x509', 'x509-other')).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    expect((await ca.activate('x509', prepared.id)).state).toBe('active');
    await expect(ca.revoke('x509', first.id, { force: false, dependents: async () => 0 })).rejects.toMatchObject({ message: expect.stringMatching(/taint it first/) });

    const seq = ca.bundle().sequence!;
    const tainted = await ca.taint('x509', first.id);
    expect(tainted).toMatchObject({ state: 'tainted', tainted: true });
    expect(ca.bundle().sequence).toBe(seq + 1); // agents hear of it on their long polls
    expect(ca.bundle().x509Authorities).toHaveLength(2); // still trusted until revoked
    expect(ca.taintedAuthorities().x509).toEqual([authorityKeyId(old.chain[0]!)]);

    await expect(ca.revoke('x509', first.id, { force: false, dependents: async () => 2 })).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION',
      message: expect.stringMatching(/^2 unexpired svids signed by x509 authority .* have not been re-issued/),
    });
    const r = await ca.revoke('x509', first.id, { force: true, dependents: async () => 2 });
    expect(r).toMatchObject({ dependents: 2, authority: { state: 'revoked', tainted: true } });
    expect(ca.bundle().x509Authorities).toHaveLength(1);
    await expect(ca.taint('x509', 'x509-nope')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await ca.stop();
  });

  it('revokes a JWT key once nothing depends on it; its kid is reported as tainted until it expires', async () => {
    const ca = await start();
    const first = ca.authorities('jwt')[0]!;
    await ca.prepare('jwt');
    await ca.activate('jwt');
    await ca.taint('jwt', first.id);
    expect(ca.taintedAuthorities().jwt).toEqual([first.keyId]);
    await ca.revoke('jwt', first.id, { force: false, dependents: async () => 0 });
    expect(ca.bundle().jwtAuthorities.map((a) => a.kid)).not.toContain(first.keyId);
    clock.s = first.notAfter;
    await ca.rotate();
    expect(ca.taintedAuthorities().jwt).toEqual([]);
    expect(ca.authorities('jwt').map((a) => a.id)).not.toContain(first.id); // pruned
    await ca.stop();
  });
});

describe('with an upstream authority', () => {
  it('each rotation gets a new intermediate signed by the upstream; the bundle keeps the upstream roots', async () => {
    const { makeTestKey } = await import('../../test/helpers/x509-test-keys');
    const { createSelfSignedCA, createIntermediateCA } = await import('./ca-certificates');
    const upstreamKey = await makeTestKey('ec-p256', 'upstream');
    const rootDer = await createSelfSignedCA({ key: upstreamKey, trustDomain: 'rot.test', notBefore: new Date((T0 - 60) * 1000), notAfter: new Date((T0 + 86400) * 1000) });
    const upstream = {
      mintIntermediate: async (req: { key: import('../keymanager/keymanager').ManagedKey; trustDomain: string; notBefore: number; notAfter: number }) => ({
        certificateDer: await createIntermediateCA({
          key: req.key,
          upstreamCertDer: rootDer,
          upstreamKey,
          trustDomain: req.trustDomain,
          notBefore: new Date(req.notBefore * 1000),
          notAfter: new Date(req.notAfter * 1000),
        }),
        upstreamChain: [],
      }),
      roots: () => [rootDer],
      notAfter: () => T0 + 365 * 86400,
    };
    const ca = await start({ upstream });
    const root = new X509Certificate(rootDer);
    const chains: Buffer[][] = [];
    for (const t of [T0, T0 + 300, T0 + 500, T0 + 600, T0 + 800, T0 + 900, T0 + 1100]) {
      clock.s = t;
      await ca.rotate();
      expect(ca.bundle().x509Authorities).toEqual([rootDer]);
      chains.push(mint(ca).chain);
    }
    const intermediates = new Set(chains.map((c) => c[1]!.toString('base64')));
    expect(intermediates.size).toBe(4); // the first CA and three rotations
    for (const [leaf, intermediate] of chains) {
      const i = new X509Certificate(intermediate!);
      expect(i.checkIssued(root) && i.verify(root.publicKey)).toBe(true);
      expect(new X509Certificate(leaf!).verify(i.publicKey)).toBe(true);
    }
    expect(ca.authorities('x509').every((a) => a.upstream)).toBe(true);
    await ca.stop();
  });
});

describe('several servers on one database', () => {
  it("a server removed for good: its keys leave the journal and the bundle an hour after they expired, pruned by the one still running", async () => {
    const a = await start({ instanceId: 'server-a' });
    const b = await start({ instanceId: 'server-b', keyManager: new MemoryKeyManager() });
    await a.rotate(); // re-reads the bundle b published
    const bundled = async () => decodeBundle('rot.test', (await store.fetchBundle('rot.test'))!.document);
    const owners = async (kind: 'x509' | 'jwt') => [...new Set((await store.listCAJournal(kind)).map((s) => s.owner))].sort();
    const bCa = (await store.listCAJournal('x509')).find((s) => s.owner === 'server-b')!;
    expect((await bundled()).x509Authorities.some((d) => d.equals(bCa.certificateDer!))).toBe(true);
    expect((await bundled()).jwtAuthorities).toHaveLength(2);
    await b.stop(); // b is gone; a keeps rotating its own keys every 50 s of the fake clock

    const until = async (t: number) => {
      while (clock.s < t) {
        clock.s = Math.min(t, clock.s + 50);
        await a.rotate();
      }
    };
    await until(bCa.notAfter + 3599);
    // expired, but not yet an hour ago: still there
    expect(await owners('x509')).toEqual(['server-a', 'server-b']);
    expect(await owners('jwt')).toEqual(['server-a', 'server-b']);
    await until(bCa.notAfter + 3650);
    expect(await owners('x509')).toEqual(['server-a']);
    expect(await owners('jwt')).toEqual(['server-a']);
    const now = await bundled();
    expect(now.x509Authorities.some((d) => d.equals(bCa.certificateDer!))).toBe(false);
    expect(now.jwtAuthorities.length).toBeGreaterThanOrEqual(1);
    // a still signs, with a key of its own in the bundle
    await expectSignedByPublished(store, (await mint(a)).chain[0]!);
    await a.stop();
  });
});
