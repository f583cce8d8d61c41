import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { X509Certificate, generateKeyPair as gen, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import pino from 'pino';
import { CAManager, defaultPruneGrace, type CAManagerConfig } from './ca-manager';
import { SqliteDataStore } from '../datastore/sqlite/store';
import { MemoryKeyManager } from '../keymanager/memory';
import { validateX509SVIDChain } from '../../common/x509svid/validate';
import type { Clock } from '../../common/clock';

/**
 * The server's wall clock stepped forward and back (finding 14), driven exactly
 * with an injected clock whose wall time steps while its monotonic time does not.
 * Invariant: every SVID the CA mints is valid, at the time it was minted, under a
 * CA in the bundle of that moment; and SVIDs minted before a forward step still
 * validate (at real time) after the clock comes back: their CA was not pruned.
 */
const T0 = 1_800_000_000;
const CA_TTL = 1200; // 20 minutes, so +30 min puts the first CA past its expiry
const config: CAManagerConfig = { trustDomain: 'clock.test', caKeyType: 'ec-p256', caTtl: CA_TTL, organization: 'T', jwtKeyType: 'ec-p256', refreshHint: 60 };

/** Wall time that can step; monotonic time that only moves forward by `advance`. */
class SteppingClock implements Clock {
  wall = T0 * 1000;
  mono = 0;
  now() {
    return new Date(this.wall);
  }
  monotonic() {
    return this.mono;
  }
  advance(ms: number) {
    this.wall += ms;
    this.mono += ms;
  }
  step(ms: number) {
    this.wall += ms;
  }
}

let dir: string;
let spki: Buffer;
beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'clk-'));
  spki = ((await promisify(gen)('ec', { namedCurve: 'P-256' })) as { publicKey: KeyObject }).publicKey.export({ format: 'der', type: 'spki' });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('a step forward and back, then a step back of two hours: no SVID is ever minted outside its CA, and no CA relying parties need is pruned', async () => {
  const clock = new SteppingClock();
  const jumps: number[] = [];
  const store = SqliteDataStore.open(path.join(dir, 'db.sqlite3'));
  const ca = await CAManager.start({
    config,
    keyManager: new MemoryKeyManager(),
    store,
    log: pino({ level: 'silent' }),
    clock,
    pruneGraceSeconds: defaultPruneGrace(CA_TTL),
    onClockJump: (s) => jumps.push(s),
  });
  const checkMint = async (label: string) => {
    await ca.rotate();
    let svid;
    try {
      svid = ca.mintX509SVID({ spiffeId: 'spiffe://clock.test/w', publicKeySpki: spki, ttl: 60 });
    } catch {
      await ca.rotate(); // the mint asked for a rotation (not valid yet): the next step has made one
      svid = ca.mintX509SVID({ spiffeId: 'spiffe://clock.test/w', publicKeySpki: spki, ttl: 60 });
    }
    const at = clock.now();
    expect({ label, ok: check(svid.chain, ca.bundle().x509Authorities, at) }).toEqual({ label, ok: true });
    return svid;
  };
  const check = (chain: Buffer[], roots: Buffer[], at: Date) => {
    try {
      validateX509SVIDChain(chain, () => roots, at);
      return true;
    } catch (e) {
      return (e as Error).message;
    }
  };

  const before = await checkMint('before');
  clock.advance(5_000);
  clock.step(30 * 60_000); // +30 min: the first CA looks expired
  const during = await checkMint('during +30 min');
  expect(jumps).toEqual([1800]);
  clock.advance(5_000);
  clock.step(-30 * 60_000); // back to real time
  const after = await checkMint('after the step back');
  // The SVID minted before the step is still valid now, under a CA still in the bundle.
  expect(check(before.chain, ca.bundle().x509Authorities, new Date(T0 * 1000 + 10_000))).toBe(true);
  // The one minted during the step, at the time it was minted, under the bundle of now.
  expect(check(during.chain, ca.bundle().x509Authorities, new Date(Date.parse(new X509Certificate(during.chain[0]!).validFrom) + 10_000))).toBe(true);
  clock.advance(5_000);
  clock.step(-2 * 3600_000); // two hours back: every CA so far is "not valid yet"
  const early = await checkMint('two hours back');
  expect(jumps).toEqual([1800, -1800, -7200]);
  expect(after.authorityId).not.toBe(early.authorityId); // rotated to a CA valid at this clock
  await ca.stop();
  await store.close();
});

it('a retired CA that expired is pruned only after the prune grace of monotonic time', async () => {
  const clock = new SteppingClock();
  const store = SqliteDataStore.open(path.join(dir, 'db2.sqlite3'));
  const ca = await CAManager.start({ config, keyManager: new MemoryKeyManager(), store, log: pino({ level: 'silent' }), clock, pruneGraceSeconds: 100 });
  const first = ca.authorities('x509')[0]!.id;
  for (let t = 0; t <= CA_TTL; t += 60) {
    clock.advance(60_000);
    await ca.rotate();
  }
  expect(ca.authorities('x509').find((a) => a.id === first)?.state).toBe('retired'); // expired, within the grace
  clock.advance(100_000);
  await ca.rotate();
  expect(ca.authorities('x509').some((a) => a.id === first)).toBe(false);
  await ca.stop();
  await store.close();
});
