import { createPrivateKey } from 'node:crypto';
import { parseAndVerifyCSR } from '../../common/x509svid/csr';
import { KeyPrefetch } from './key-prefetch';
import type { WorkloadKeyWithCSR } from './workload-key';

async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; !cond(); i++) {
    if (i > 2000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

test('makes keys up to its limit; each is handed out once, with a CSR the CA accepts', async () => {
  const p = new KeyPrefetch();
  p.start(300);
  await until('300 keys', () => p.size === 300);
  await p.stop();
  const a = p.take(200);
  const b = p.take(200);
  expect([a.length, b.length, p.size]).toEqual([200, 100, 0]);
  const all = [...a, ...b];
  expect(new Set(all.map((k) => k.spki.toString('hex'))).size).toBe(300);
  for (const k of all.slice(0, 20)) {
    expect(parseAndVerifyCSR(k.csr).publicKeySpki.equals(k.spki)).toBe(true);
    expect(createPrivateKey({ key: k.pkcs8, format: 'der', type: 'pkcs8' }).asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
  }
});

test('stop ends the making (keeping what was made); discard zeroes and drops the keys nobody took', async () => {
  const p = new KeyPrefetch();
  p.start(100_000);
  await until('a first step', () => p.size > 0);
  await p.stop();
  const made = p.size;
  expect(made).toBeLessThan(100_000);
  await new Promise((r) => setTimeout(r, 50));
  expect(p.size).toBe(made); // nothing more after stop
  const taken = p.take(1);
  // The keys still held (its private array, read here only to see them zeroed).
  const untaken = [...(p as unknown as { keys: WorkloadKeyWithCSR[] }).keys];
  expect(untaken).toHaveLength(made - 1);
  await p.discard();
  expect(p.size).toBe(0);
  for (const k of untaken) expect(k.pkcs8.every((b) => b === 0)).toBe(true);
  expect(taken[0]!.pkcs8.some((b) => b !== 0)).toBe(true); // a key handed out is the taker's
  p.start(10); // a stopped prefetch does not start again
  expect(p.size).toBe(0);
});
