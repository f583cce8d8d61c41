import { X509Certificate, generateKeyPair, sign, verify } from 'node:crypto';
import { promisify } from 'node:util';
import { createSelfSignedCA } from '../../server/ca/ca-certificates';
import { makeTestKey } from '../../test/helpers/x509-test-keys';
import { CURVE_ORDER, isHighSP1363, lowSP1363, tbsCertificate, withFlippedSignatureS } from './ecdsa-signature';

const gen = promisify(generateKeyPair);

describe.each([
  ['P-256', 'sha256'],
  ['P-384', 'sha384'],
  ['P-521', 'sha512'],
])('%s', (curve, hash) => {
  it('n − s is an equally valid signature (the curve order is right), and lowSP1363 makes every signature low-S', async () => {
    const { privateKey, publicKey } = await gen('ec', { namedCurve: curve });
    let high = 0;
    for (let i = 0; i < 16; i++) {
      const data = Buffer.from(`message ${i}`);
      const sig = sign(hash, data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
      const half = sig.length / 2;
      const s = BigInt('0x' + sig.subarray(half).toString('hex'));
      const flipped = Buffer.concat([sig.subarray(0, half), Buffer.from((CURVE_ORDER[curve]! - s).toString(16).padStart(half * 2, '0'), 'hex')]);
      expect(verify(hash, data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, flipped)).toBe(true);
      if (isHighSP1363(sig, curve)) high++;
      const low = lowSP1363(sig, curve);
      expect(isHighSP1363(low, curve)).toBe(false);
      expect(verify(hash, data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, low)).toBe(true);
    }
    expect(high).toBeGreaterThan(0); // about half of them
  });
});

it('a certificate with a flipped signature S verifies, keeps its TBS, and has another fingerprint', async () => {
  const key = await makeTestKey('ec-p256');
  const der = await createSelfSignedCA({ key, trustDomain: 'example.org', notBefore: new Date(), notAfter: new Date(Date.now() + 3600e3) });
  const flipped = withFlippedSignatureS(der, 'P-256')!;
  const a = new X509Certificate(der);
  const b = new X509Certificate(flipped);
  expect(b.verify(a.publicKey)).toBe(true);
  expect(b.fingerprint256).not.toBe(a.fingerprint256);
  expect(tbsCertificate(flipped)).toEqual(tbsCertificate(der));
  expect(withFlippedSignatureS(flipped, 'P-256')).toEqual(der);
});
