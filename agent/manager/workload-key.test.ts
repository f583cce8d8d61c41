import { createPrivateKey, createPublicKey, verify } from 'node:crypto';
import { newKeyPair, newWorkloadKey, p256FromSec1, workloadCSR } from './workload-key';
import * as der from '../../common/der/der';

test('the PKCS#8 and SPKI assembled from SEC1 are byte for byte what OpenSSL exports', async () => {
  for (let i = 0; i < 50; i++) {
    const { privateKey, publicKey } = await newKeyPair();
    const fast = p256FromSec1(privateKey.export({ type: 'sec1', format: 'der' }) as Buffer);
    expect(fast).toBeDefined();
    expect(fast!.pkcs8.equals(privateKey.export({ type: 'pkcs8', format: 'der' }) as Buffer)).toBe(true);
    expect(fast!.spki.equals(publicKey.export({ type: 'spki', format: 'der' }) as Buffer)).toBe(true);
  }
});

test('a workload key round-trips: its PKCS#8 loads as the same key and its CSR verifies under its SPKI', async () => {
  const k = await newWorkloadKey();
  const loaded = createPrivateKey({ key: k.pkcs8, format: 'der', type: 'pkcs8' });
  expect(loaded.equals(k.privateKey)).toBe(true);
  const csr = await workloadCSR(k);
  const top = der.expectTLV(csr, 0, der.TAG.SEQUENCE, 'csr');
  const [cri, , sig] = der.readChildren(csr, top);
  const ok = verify('sha256', csr.subarray(cri!.offset, cri!.end), createPublicKey({ key: k.spki, format: 'der', type: 'spki' }), csr.subarray(sig!.start + 1, sig!.end));
  expect(ok).toBe(true);
});

test('anything but a P-256 SEC1 key is left to the slow path', async () => {
  expect(p256FromSec1(Buffer.from('3003020101', 'hex'))).toBeUndefined();
  expect(p256FromSec1(Buffer.alloc(0))).toBeUndefined();
  const { generateKeyPair } = await import('node:crypto');
  const p384 = await new Promise<import('node:crypto').KeyObject>((res, rej) =>
    generateKeyPair('ec', { namedCurve: 'P-384' }, (e, _pub, priv) => (e ? rej(e) : res(priv))),
  );
  expect(p256FromSec1(p384.export({ type: 'sec1', format: 'der' }) as Buffer)).toBeUndefined();
});
