import 'reflect-metadata';
import { generateKeyPair, randomBytes, sign, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import * as der from '../common/der/der';
import { createSelfSignedCA } from '../server/ca/ca-certificates';
import { X509SVIDTemplate } from '../server/ca/x509-leaf-template';
import { MemoryKeyManager } from '../server/keymanager/memory';

const POOL = 1000;
const ROUNDS = 6;

/** Runs `fn` in batches until `ms` have passed; returns [operations, elapsed ms]. */
function timed(fn: (i: number) => void, ms: number): [number, number] {
  const start = process.hrtime.bigint();
  let n = 0;
  let elapsed = 0;
  while (elapsed < ms) {
    for (let i = 0; i < 64; i++) fn(n + i);
    n += 64;
    elapsed = Number(process.hrtime.bigint() - start) / 1e6;
  }
  return [n, elapsed];
}

/**
 * X.509-SVID leaf issuance rate against the raw signing limit, in one run on
 * one core: raw `crypto.sign('sha256', tbsSizedData, keyObject)` with a P-256
 * key vs `X509SVIDTemplate.mint` with a P-256 CA key from the memory key
 * manager. The two alternate in rounds so drift (thermal, other load) hits both.
 * Workload keys come from a pre-generated pool, so key generation and export
 * are not measured. Target: ratio ≥ 0.5.
 */
export async function benchX509(seconds: number): Promise<{ rawSignPerSec: number; mintPerSec: number; ratio: number }> {
  const km = new MemoryKeyManager();
  const caKey = await km.generateKey('bench-x509-ca', 'ec-p256');
  const now = Date.now();
  const caDer = await createSelfSignedCA({
    key: caKey,
    trustDomain: 'bench.example',
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 86_400_000),
  });
  const template = new X509SVIDTemplate({ caCertDer: caDer, caKey });
  const gen = promisify(generateKeyPair);
  const spkis = await Promise.all(
    Array.from({ length: POOL }, async () => (await gen('ec', { namedCurve: 'P-256' })).publicKey.export({ type: 'spki', format: 'der' })),
  );
  const rawKey: KeyObject = (await gen('ec', { namedCurve: 'P-256' })).privateKey;

  const notBefore = new Date(now - 10_000);
  const notAfter = new Date(now + 3_600_000);
  const mint = (i: number) =>
    template.mint({ spiffeId: `spiffe://bench.example/ns/default/sa/w${i % POOL}`, publicKeySpki: spkis[i % POOL], notBefore, notAfter });
  // Raw signing gets data the size of a real leaf TBS.
  const sample = mint(0).der;
  const tbs = der.readTLV(sample, der.readTLV(sample, 0).start);
  const data = randomBytes(tbs.end - tbs.offset);
  const raw = () => sign('sha256', data, rawKey);

  timed(raw, 200); // warm-up
  timed(mint, 200);
  const slice = (seconds * 1000) / (2 * ROUNDS);
  let rawOps = 0, rawMs = 0, mintOps = 0, mintMs = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const [a, am] = timed(raw, slice);
    const [b, bm] = timed(mint, slice);
    rawOps += a; rawMs += am; mintOps += b; mintMs += bm;
  }
  const rawSignPerSec = Math.round((rawOps / rawMs) * 1000);
  const mintPerSec = Math.round((mintOps / mintMs) * 1000);
  return { rawSignPerSec, mintPerSec, ratio: Math.round((mintPerSec / rawSignPerSec) * 1000) / 1000 };
}
