import { X509Certificate } from 'node:crypto';
import { createCSR } from '../../../common/x509svid/csr';
import { generateKeyPair } from '../../../test/helpers/agent-identity';
import { MemoryKeyManager } from '../../keymanager/memory';
import type { ManagedKey } from '../../keymanager/keymanager';
import { createSelfSignedCA } from '../ca-certificates';
import { SigningPool, type SignPlan } from './pool';

describe('SigningPool (worker threads; needs the build, as npm test does first)', () => {
  let pool: SigningPool;
  let plan: SignPlan;
  let caCert: X509Certificate;
  let csrs: Buffer[];

  beforeAll(async () => {
    const key = await new MemoryKeyManager().generateKey('pool-ca', 'ec-p256');
    const now = Date.now();
    const caCertDer = await createSelfSignedCA({ key, trustDomain: 'example.org', notBefore: new Date(now - 60_000), notAfter: new Date(now + 3_600_000) });
    caCert = new X509Certificate(caCertDer);
    plan = { authorityId: 'x509-a', caCertDer, key, notBefore: new Date(now - 10_000), notAfter: new Date(now + 600_000) };
    csrs = await Promise.all(
      Array.from({ length: 64 }, async () => {
        const { privateKey, publicKey } = await generateKeyPair();
        return createCSR(privateKey, publicKey);
      }),
    );
    pool = SigningPool.start({ size: 2 });
  });
  afterAll(() => pool.close());

  const items = (n: number) => Array.from({ length: n }, (_, i) => ({ csr: csrs[i % csrs.length]!, spiffeId: `spiffe://example.org/w${i}`, dnsNames: [] }));

  it('verifies and signs a batch on two workers: every leaf is signed by the CA, names its own SPIFFE ID and has a fresh serial', async () => {
    const results = await pool.sign(plan, items(64));
    expect(results).toHaveLength(64);
    const serials = new Set<string>();
    results.forEach((r, i) => {
      if ('error' in r) throw new Error(r.error.message);
      const leaf = new X509Certificate(Buffer.from(r.der));
      expect(leaf.verify(caCert.publicKey)).toBe(true);
      expect(leaf.subjectAltName).toBe(`URI:spiffe://example.org/w${i}`);
      expect(new Date(leaf.validTo).getTime()).toBe(Math.floor(plan.notAfter.getTime() / 1000) * 1000);
      serials.add(r.serialHex);
    });
    expect(serials.size).toBe(64);
  });

  it('refuses a CSR whose signature does not verify, failing only that item', async () => {
    const batch = items(16);
    const bad = Buffer.from(batch[3]!.csr);
    bad[bad.length - 2] ^= 0xff; // inside the signature
    batch[3] = { ...batch[3]!, csr: bad };
    const results = await pool.sign(plan, batch);
    expect(results[3]).toEqual({ error: { code: 'INVALID_ARGUMENT', message: expect.any(String) } });
    expect(results.filter((r) => 'error' in r)).toHaveLength(1);
  });

  it('a worker that dies mid-batch fails only its own items (UNAVAILABLE), and the pool carries on with a new worker', async () => {
    const pending = pool.sign(plan, items(800)); // 400 per worker, far more than a termination takes
    void pool.workersForTests()[0]!.terminate();
    const results = await pending;
    const failed = results.map((r, i) => ('error' in r ? i : -1)).filter((i) => i >= 0);
    expect(failed).toEqual(Array.from({ length: 400 }, (_, i) => i));
    expect(results[0]).toEqual({ error: { code: 'UNAVAILABLE', message: 'the signing worker handling this item stopped; retry' } });
    expect(results.slice(400).every((r) => !('error' in r))).toBe(true);
    const again = await pool.sign(plan, items(64));
    expect(again.every((r) => !('error' in r))).toBe(true);
    expect(pool.size).toBe(2);
  });

  it('never hands out a key that its manager keeps to itself', () => {
    const sealed = { ...plan.key } as ManagedKey; // a spread copies only the enumerable fields: no keyForWorkers
    expect(SigningPool.canSignWith(plan.key)).toBe(true);
    expect(SigningPool.canSignWith(sealed)).toBe(false);
    expect(Object.keys(plan.key)).not.toContain('keyForWorkers');
    expect(JSON.stringify(plan.key)).not.toMatch(/PRIVATE|"d"/);
  });
});
