import 'reflect-metadata';
import { generateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';
import { createCSR, parseAndVerifyCSR } from '../common/x509svid/csr';
import { createSelfSignedCA } from '../server/ca/ca-certificates';
import { SigningPool, type SignPlan } from '../server/ca/signing/pool';
import { X509SVIDTemplate } from '../server/ca/x509-leaf-template';
import { MemoryKeyManager } from '../server/keymanager/memory';

const CSRS = 1000;
const BATCH = 500;
const IN_FLIGHT = 2;
const ROUNDS = 6;

/**
 * Batch signing (CSR verify + leaf signature, as the agent API's batches) on the
 * signing pool with 1 worker and with 2 workers, alternating in rounds of
 * `seconds / (2 * ROUNDS)` so load from the rest of the machine hits both, with
 * IN_FLIGHT batches of BATCH queued so no worker waits on the main thread. Also
 * the same work inline on the main thread. Target: 2 workers ≥ 1.7× 1 worker on
 * a 2-core machine.
 */
export async function benchSigningPool(seconds: number): Promise<{ inlinePerSec: number; oneWorkerPerSec: number; twoWorkersPerSec: number; ratio: number }> {
  const key = await new MemoryKeyManager().generateKey('bench-pool-ca', 'ec-p256');
  const now = Date.now();
  const caCertDer = await createSelfSignedCA({ key, trustDomain: 'bench.example', notBefore: new Date(now - 60_000), notAfter: new Date(now + 86_400_000) });
  const gen = promisify(generateKeyPair);
  const csrs = await Promise.all(
    Array.from({ length: CSRS }, async () => {
      const { privateKey, publicKey } = await gen('ec', { namedCurve: 'P-256' });
      return createCSR(privateKey, publicKey);
    }),
  );
  const plan: SignPlan = { authorityId: 'bench', caCertDer, key, notBefore: new Date(now - 10_000), notAfter: new Date(now + 3_600_000) };
  let offset = 0;
  const batch = () => {
    const items = Array.from({ length: BATCH }, (_, i) => ({ csr: csrs[(offset + i) % CSRS]!, spiffeId: `spiffe://bench.example/w${(offset + i) % CSRS}`, dnsNames: [] }));
    offset += BATCH;
    return items;
  };

  const template = new X509SVIDTemplate({ caCertDer, caKey: key });
  const inline = (ms: number): [number, number] => {
    const start = performance.now();
    let n = 0;
    while (performance.now() - start < ms) {
      for (const it of batch()) {
        const { publicKeySpki } = parseAndVerifyCSR(it.csr);
        template.mint({ spiffeId: it.spiffeId, publicKeySpki, notBefore: plan.notBefore, notAfter: plan.notAfter });
        n++;
      }
    }
    return [n, performance.now() - start];
  };
  const onPool = async (pool: SigningPool, ms: number): Promise<[number, number]> => {
    const start = performance.now();
    let n = 0;
    const lane = async () => {
      while (performance.now() - start < ms) {
        const r = await pool.sign(plan, batch());
        n += r.length;
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
    return [n, performance.now() - start];
  };

  const one = SigningPool.start({ size: 1 });
  const two = SigningPool.start({ size: 2 });
  try {
    await onPool(one, 300); // warm-up: workers load, JIT, authority installed
    await onPool(two, 300);
    inline(200);
    const slice = (seconds * 1000) / (2 * ROUNDS);
    const t = { one: [0, 0], two: [0, 0], inline: [0, 0] };
    const add = (k: keyof typeof t, [n, ms]: [number, number]) => {
      t[k][0] += n;
      t[k][1] += ms;
    };
    for (let r = 0; r < ROUNDS; r++) {
      add('one', await onPool(one, slice));
      add('two', await onPool(two, slice));
      add('inline', inline(slice / 2));
    }
    const rate = (k: keyof typeof t) => Math.round((t[k][0] / t[k][1]) * 1000);
    return { inlinePerSec: rate('inline'), oneWorkerPerSec: rate('one'), twoWorkersPerSec: rate('two'), ratio: Math.round((rate('two') / rate('one')) * 1000) / 1000 };
  } finally {
    await Promise.all([one.close(), two.close()]);
  }
}
