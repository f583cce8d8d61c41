import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { X509Certificate, generateKeyPair as gen, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import pino from 'pino';
import * as jose from 'jose';
import { CAManager, type CAManagerConfig } from './ca-manager';
import { SqliteDataStore } from '../datastore/sqlite/store';
import { MemoryKeyManager } from '../keymanager/memory';
import { DiskKeyManager } from '../keymanager/disk';
import { jwtBundleJwks } from '../../common/bundle/bundle';
import { checkX509SVIDProfile } from '../../common/x509svid/validate';
import type { Clock } from '../../common/clock';

const log = pino({ level: 'silent' });
const config: CAManagerConfig = {
  trustDomain: 'ca.test',
  caKeyType: 'ec-p256',
  caTtl: 3600,
  organization: 'Tessera',
  jwtKeyType: 'ec-p256',
  jwtIssuer: 'https://oidc.ca.test',
  refreshHint: 120,
};

class FakeClock implements Clock {
  constructor(public t: number) {}
  now() {
    return new Date(this.t);
  }
}

let dir: string;
let spki: Buffer;
beforeAll(async () => {
  const { publicKey } = (await promisify(gen)('ec', { namedCurve: 'P-256' })) as { publicKey: KeyObject };
  spki = publicKey.export({ format: 'der', type: 'spki' });
});
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ca-mgr-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

it('creates a root and a JWT key, publishes each before use (never an empty bundle), and mints to the profile', async () => {
  const store = SqliteDataStore.open(path.join(dir, 'db.sqlite3'));
  const ca = await CAManager.start({ config, keyManager: new MemoryKeyManager(), store, log });
  const b = ca.bundle();
  expect(b.sequence).toBe(2); // the root, then the JWT key
  expect(b.refreshHint).toBe(120);
  expect(b.x509Authorities).toHaveLength(1);
  expect(b.jwtAuthorities).toHaveLength(1);
  const svid = ca.mintX509SVID({ spiffeId: 'spiffe://ca.test/w', publicKeySpki: spki, ttl: 600, dnsNames: ['w.local'] });
  expect(svid.chain).toHaveLength(1); // self-signed root: the leaf alone
  expect(checkX509SVIDProfile(svid.chain[0]!)).toEqual([]);
  const leaf = new X509Certificate(svid.chain[0]!);
  expect(leaf.verify(new X509Certificate(b.x509Authorities[0]!).publicKey)).toBe(true);
  const jwt = ca.mintJWTSVID({ spiffeId: 'spiffe://ca.test/w', audience: ['a'], ttl: 60 });
  const { payload } = await jose.jwtVerify(jwt.token, jose.createLocalJWKSet(JSON.parse(jwtBundleJwks(b))), { audience: 'a' });
  expect(payload).toMatchObject({ sub: 'spiffe://ca.test/w', iss: 'https://oidc.ca.test', aud: ['a'] });
  await store.close();
});

it('caps SVID and JWT lifetimes at the signer expiry instead of silently exceeding it', async () => {
  const clock = new FakeClock(Date.now());
  const store = SqliteDataStore.open(path.join(dir, 'db.sqlite3'));
  const ca = await CAManager.start({ config, keyManager: new MemoryKeyManager(), store, log, clock });
  clock.t += 3500 * 1000; // 100 s of CA life left
  const svid = ca.mintX509SVID({ spiffeId: 'spiffe://ca.test/w', publicKeySpki: spki, ttl: 3600 });
  expect(svid.expiresAt).toBe(ca.x509NotAfter());
  expect(Math.floor(Date.parse(new X509Certificate(svid.chain[0]!).validTo) / 1000)).toBe(ca.x509NotAfter());
  const jwt = ca.mintJWTSVID({ spiffeId: 'spiffe://ca.test/w', audience: ['a'], ttl: 3600 });
  expect(jwt.expiresAt).toBe(ca.jwtNotAfter());
  await store.close();
});

it('keeps the same CA across a restart with the disk key manager', async () => {
  const dbPath = path.join(dir, 'db.sqlite3');
  let store = SqliteDataStore.open(dbPath);
  const first = await CAManager.start({ config, keyManager: await DiskKeyManager.open(path.join(dir, 'keys')), store, log });
  const before = first.bundle();
  await store.close();
  store = SqliteDataStore.open(dbPath);
  const second = await CAManager.start({ config, keyManager: await DiskKeyManager.open(path.join(dir, 'keys')), store, log });
  expect(second.bundle().sequence).toBe(before.sequence);
  expect(second.bundle().x509Authorities).toEqual(before.x509Authorities);
  // and it still signs with that CA
  const svid = second.mintX509SVID({ spiffeId: 'spiffe://ca.test/w', publicKeySpki: spki, ttl: 60 });
  expect(new X509Certificate(svid.chain[0]!).verify(new X509Certificate(before.x509Authorities[0]!).publicKey)).toBe(true);
  await store.close();
});

it('with the memory key manager a restart makes a new CA, keeping the old root published until it expires', async () => {
  const dbPath = path.join(dir, 'db.sqlite3');
  let store = SqliteDataStore.open(dbPath);
  const first = await CAManager.start({ config, keyManager: new MemoryKeyManager(), store, log });
  const oldRoot = first.bundle().x509Authorities[0]!;
  await store.close();
  store = SqliteDataStore.open(dbPath);
  const second = await CAManager.start({ config, keyManager: new MemoryKeyManager(), store, log });
  const b = second.bundle();
  expect(b.sequence).toBe(4); // a new root, then a new JWT key
  expect(b.x509Authorities).toHaveLength(2);
  expect(b.x509Authorities).toContainEqual(oldRoot);
  expect(b.jwtAuthorities).toHaveLength(2);
  const journal = await store.listCAJournal();
  expect(journal.filter((s) => s.state === 'retired')).toHaveLength(2);
  await store.close();
});
