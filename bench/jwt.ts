import * as crypto from 'node:crypto';
import { JWTSVIDSigner } from '../common/jwtsvid/sign';
import { generateManagedKey } from '../server/keymanager/base';

export interface JWTBenchResult {
  /** `crypto.sign` ES256 (ieee-p1363) calls per second over a JWT-sized input. */
  rawSignPerSec: number;
  /** `JWTSVIDSigner.mint` calls per second with a key manager key. */
  mintPerSec: number;
  /** mintPerSec / rawSignPerSec; the target is >= 0.6. */
  ratio: number;
}

/** Runs `op` until `ms` milliseconds pass; checks the clock every 32 ops to keep timing overhead out. */
function countFor(ms: number, op: () => void): { ops: number; ns: bigint } {
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(ms * 1e6));
  let ops = 0;
  let now = start;
  while (now < end) {
    for (let i = 0; i < 32; i++) op();
    ops += 32;
    now = process.hrtime.bigint();
  }
  return { ops, ns: now - start };
}

/**
 * Measures the JWT-SVID fast path against the signature alone, in one process on
 * one core, for about `seconds` in total. The two loops alternate in 10 rounds so
 * that CPU frequency drift hits both alike.
 */
export async function benchJWT(seconds: number): Promise<JWTBenchResult> {
  const key = await generateManagedKey('bench-jwt', 'ec-p256');
  const { privateKey } = await new Promise<{ privateKey: crypto.KeyObject }>((resolve, reject) =>
    crypto.generateKeyPair('ec', { namedCurve: 'P-256' }, (err, _pub, privateKey) => (err ? reject(err) : resolve({ privateKey }))),
  );
  const now = Math.floor(Date.now() / 1000);
  const signer = new JWTSVIDSigner({ kid: 'bench', alg: 'ES256', sign: (d) => key.sign(d, 'ieee-p1363'), notAfter: now + 86_400 });
  const req = { sub: 'spiffe://example.org/ns/prod/sa/payments', aud: ['spiffe://example.org/db'], ttlSeconds: 300, now };
  // The raw loop signs an input as long as a real token's signing input, so only the JWS work differs.
  const input = Buffer.from(signer.mint(req).token.split('.').slice(0, 2).join('.'));
  const raw = () => void crypto.sign('sha256', input, { key: privateKey, dsaEncoding: 'ieee-p1363' });
  const mint = () => void signer.mint(req);

  countFor(200, raw); // warm-up: JIT and OpenSSL caches
  countFor(200, mint);
  const rounds = 10;
  const slice = (seconds * 1000) / (2 * rounds);
  let rawOps = 0, rawNs = 0n, mintOps = 0, mintNs = 0n;
  for (let r = 0; r < rounds; r++) {
    const a = countFor(slice, raw);
    rawOps += a.ops;
    rawNs += a.ns;
    const b = countFor(slice, mint);
    mintOps += b.ops;
    mintNs += b.ns;
  }
  const rawSignPerSec = (rawOps * 1e9) / Number(rawNs);
  const mintPerSec = (mintOps * 1e9) / Number(mintNs);
  return { rawSignPerSec: Math.round(rawSignPerSec), mintPerSec: Math.round(mintPerSec), ratio: Math.round((mintPerSec / rawSignPerSec) * 1000) / 1000 };
}
