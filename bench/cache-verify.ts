import 'reflect-metadata';
import * as crypto from 'node:crypto';
import { promisify } from 'node:util';
import { verifyStoredCache } from '../agent/storage/verify-cache';
import type { StoredCache, StoredSVID } from '../agent/storage/formats';
import type { EntryJSON } from '../agent/client/server-client';
import { X509SVIDTemplate } from '../server/ca/x509-leaf-template';
import { createSelfSignedCA } from '../server/ca/ca-certificates';
import { generateManagedKey } from '../server/keymanager/base';

const gen = promisify(crypto.generateKeyPair);

export interface CacheVerifyResult {
  svids: number;
  /** median over the rounds of one verifyStoredCache call */
  verifyMs: number;
  /** the same number of plain `crypto.verify` P-256 calls in the same run */
  rawVerifyMs: number;
}

/**
 * What an agent restart pays to check its stored SVIDs before serving them
 * (agent/storage/verify-cache.ts): `n` SVIDs of one CA, verified `rounds` times,
 * against `n` bare ECDSA verifications measured alternately in the same run.
 */
export async function benchCacheVerify(n: number, rounds = 3): Promise<CacheVerifyResult> {
  const now = Date.now();
  const caKey = await generateManagedKey('bench-ca', 'ec-p256');
  const root = await createSelfSignedCA({ key: caKey, trustDomain: 'bench.example', notBefore: new Date(now - 3600e3), notAfter: new Date(now + 86_400e3) });
  const template = new X509SVIDTemplate({ caCertDer: root, caKey });
  const entries: EntryJSON[] = [];
  const svids: StoredSVID[] = [];
  for (let i = 0; i < n; i++) {
    const { privateKey, publicKey } = await gen('ec', { namedCurve: 'P-256' });
    const spiffeId = `spiffe://bench.example/w/${i}`;
    const chain = [template.mint({ spiffeId, publicKeySpki: publicKey.export({ type: 'spki', format: 'der' }), notBefore: new Date(now - 10e3), notAfter: new Date(now + 3600e3) }).der];
    entries.push({ id: `e${i}`, spiffe_id: spiffeId, parent_id: 'spiffe://bench.example/n', selectors: [{ type: 'unix', value: 'uid:1' }], x509_svid_ttl: 0, jwt_svid_ttl: 0, dns_names: [], federates_with: [], hint: '', expires_at: null, created_at: 1, revision: 1 });
    svids.push({ entryId: `e${i}`, spiffeId, chain, keyPkcs8: privateKey.export({ type: 'pkcs8', format: 'der' }) as Buffer, notBefore: 0, notAfter: 0, receivedAt: now, rotateAt: now + 1e6, dnsNames: [], ttl: 0 });
  }
  const cache: StoredCache = { trustDomain: 'bench.example', federated: [], entries, svids, bundle: { trustDomain: 'bench.example', x509Authorities: [root], jwtAuthorities: [] } };
  const { privateKey, publicKey } = await gen('ec', { namedCurve: 'P-256' });
  const data = Buffer.alloc(400, 7);
  const sig = crypto.sign('sha256', data, privateKey);
  const verifyMs: number[] = [];
  const rawMs: number[] = [];
  for (let r = 0; r < rounds; r++) {
    let t = performance.now();
    const out = verifyStoredCache(cache, now);
    verifyMs.push(performance.now() - t);
    if (out.cache.svids.length !== n) throw new Error(`verifyStoredCache kept ${out.cache.svids.length} of ${n}`);
    t = performance.now();
    for (let i = 0; i < n; i++) crypto.verify('sha256', data, publicKey, sig);
    rawMs.push(performance.now() - t);
  }
  const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
  return { svids: n, verifyMs: median(verifyMs), rawVerifyMs: median(rawMs) };
}
