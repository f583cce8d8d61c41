import { createPrivateKey, createPublicKey, verify } from 'node:crypto';
import { newKeyPair, newWorkloadKey, newWorkloadKeys, p256FromSec1, useNativeKeys, workloadCSR, workloadKeyGenerator } from './workload-key';
import { createCSR, parseAndVerifyCSR } from '../../common/x509svid/csr';
import * as der from '../../common/der/der';

afterEach(() => useNativeKeys(true));

test('the PKCS#8 and SPKI assembled from SEC1 are byte for byte what OpenSSL exports', async () => {
  for (let i = 0; i < 50; i++) {
    const { privateKey, publicKey } = await newKeyPair();
    const fast = p256FromSec1(privateKey.export({ type: 'sec1', format: 'der' }) as Buffer);
    expect(fast).toBeDefined();
    expect(fast!.pkcs8.equals(privateKey.export({ type: 'pkcs8', format: 'der' }) as Buffer)).toBe(true);
    expect(fast!.spki.equals(publicKey.export({ type: 'spki', format: 'der' }) as Buffer)).toBe(true);
  }
});

test('a KeyObject workload key round-trips: its PKCS#8 loads as the same key and its CSR verifies under its SPKI', async () => {
  const k = await newWorkloadKey();
  const loaded = createPrivateKey({ key: k.pkcs8, format: 'der', type: 'pkcs8' });
  expect(loaded.equals(k.privateKey)).toBe(true);
  const csr = await workloadCSR(k);
  const top = der.expectTLV(csr, 0, der.TAG.SEQUENCE, 'csr');
  const [cri, , sig] = der.readChildren(csr, top);
  const ok = verify('sha256', csr.subarray(cri!.offset, cri!.end), createPublicKey({ key: k.spki, format: 'der', type: 'spki' }), csr.subarray(sig!.start + 1, sig!.end));
  expect(ok).toBe(true);
});

/** Checks keys from newWorkloadKeys against OpenSSL's own encodings and the CA's CSR check. */
async function checkKeys(count: number): Promise<void> {
  const keys = await newWorkloadKeys(count);
  expect(keys).toHaveLength(count);
  for (const k of keys) {
    // The PKCS#8 loads, and OpenSSL writes that key back byte for byte as we assembled it.
    const privateKey = createPrivateKey({ key: k.pkcs8, format: 'der', type: 'pkcs8' });
    expect(privateKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect((privateKey.export({ type: 'pkcs8', format: 'der' }) as Buffer).equals(k.pkcs8)).toBe(true);
    const publicKey = createPublicKey(privateKey);
    expect((publicKey.export({ type: 'spki', format: 'der' }) as Buffer).equals(k.spki)).toBe(true);
    // The CSR is what createCSR makes for that key, up to the (randomised) signature, and the CA accepts it.
    const reference = await createCSR(privateKey, publicKey);
    const criOf = (csr: Buffer) => {
      const [cri] = der.readChildren(csr, der.expectTLV(csr, 0, der.TAG.SEQUENCE, 'csr'));
      return csr.subarray(cri!.offset, cri!.end);
    };
    expect(criOf(k.csr).equals(criOf(reference))).toBe(true);
    expect(parseAndVerifyCSR(k.csr).publicKeySpki.equals(k.spki)).toBe(true);
  }
  expect(new Set(keys.map((k) => k.pkcs8.toString('hex'))).size).toBe(count);
}

test('native batch keys: PKCS#8, SPKI and CSR are what OpenSSL writes, and the CA verifies every CSR', async () => {
  expect(workloadKeyGenerator()).toBe('native');
  await checkKeys(131); // split over pool jobs, not a multiple of the job count
  await checkKeys(1);
  expect(await newWorkloadKeys(0)).toEqual([]);
});

test('without the addon the KeyObject path gives the same encodings', async () => {
  useNativeKeys(false);
  expect(workloadKeyGenerator()).toBe('keyobject');
  await checkKeys(20);
});

test('a CSR whose key was swapped after signing is refused by the CA', async () => {
  const [a, b] = await newWorkloadKeys(2);
  // a's CSR with b's coordinates spliced into the same place: the signature no longer covers the key it names.
  const xyAt = a!.csr.indexOf(a!.spki.subarray(-64));
  const forged = Buffer.from(a!.csr);
  b!.spki.subarray(-64).copy(forged, xyAt);
  expect(() => parseAndVerifyCSR(forged)).toThrow(/csr signature does not verify/);
});

test('the addon refuses bad arguments', async () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { generateSigned } = require('@tessera/p256-keys') as typeof import('@tessera/p256-keys');
  // (TypeErrors, from the addon's realm: jest's own TypeError is another class, so match the messages)
  expect(() => generateSigned(0, Buffer.alloc(0), Buffer.alloc(0))).toThrow(/count must be an integer from 1 to 10000/);
  expect(() => generateSigned(10_001, Buffer.alloc(0), Buffer.alloc(0))).toThrow(/count must be/);
  expect(() => generateSigned(1.5, Buffer.alloc(0), Buffer.alloc(0))).toThrow(/count must be/);
  expect(() => generateSigned(1, Buffer.alloc(4097), Buffer.alloc(0))).toThrow(/at most 4096/);
  expect(() => (generateSigned as unknown as (a: unknown) => unknown)('3')).toThrow(/count is a number, prefix and suffix Buffers/);
  // and signs exactly prefix || X || Y || suffix
  const prefix = Buffer.from('before'), suffix = Buffer.from('after');
  const r = await generateSigned(2, prefix, suffix);
  expect(r.privateKeys).toHaveLength(64);
  for (let i = 0; i < 2; i++) {
    const xy = r.publicKeys.subarray(i * 64, i * 64 + 64);
    const spki = Buffer.concat([Buffer.from('3059301306072a8648ce3d020106082a8648ce3d03010703420004', 'hex'), xy]);
    const key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
    expect(verify('sha256', Buffer.concat([prefix, xy, suffix]), { key, dsaEncoding: 'der' }, r.signatures[i]!)).toBe(true);
  }
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
