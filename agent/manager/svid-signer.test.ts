import { X509Certificate, createPrivateKey, createPublicKey, generateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';
import { parseAndVerifyCSR } from '../../common/x509svid/csr';
import { newKeyPair, spkiFromPkcs8 } from './workload-key';
import { createSelfSignedCA } from '../../server/ca/ca-certificates';
import { makeTestKey } from '../../test/helpers/x509-test-keys';
import type { EntryJSON } from '../client/server-client';
import { prepareBatch } from './svid-signer';
import { certificateValidity } from '../../common/x509svid/certificate-validity';

test('certificateValidity agrees with X509Certificate', async () => {
  const key = await makeTestKey('ec-p256');
  const nb = new Date('2026-01-01T00:00:10Z');
  const na = new Date('2026-01-01T01:00:00Z');
  const der = await createSelfSignedCA({ key, trustDomain: 'example.org', notBefore: nb, notAfter: na });
  const v = certificateValidity(der);
  const x = new X509Certificate(der);
  expect(v.notBefore * 1000).toBe(Date.parse(x.validFrom));
  expect(v.notAfter * 1000).toBe(Date.parse(x.validTo));
  expect(v.spki.equals(x.publicKey.export({ type: 'spki', format: 'der' }))).toBe(true);
  expect(() => certificateValidity(Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00]))).toThrow();
});

test('prepareBatch makes a distinct P-256 key and a CSR the server accepts per entry', async () => {
  const entries = [{ id: 'a' }, { id: 'b' }] as EntryJSON[];
  const b = await prepareBatch(entries);
  expect(b.keys).toHaveLength(2);
  const privateKeys = b.keys.map((k) => createPrivateKey({ key: k.pkcs8, format: 'der', type: 'pkcs8' }));
  expect(privateKeys[0]!.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
  expect(privateKeys[0]!.equals(privateKeys[1]!)).toBe(false);
  b.keys.forEach((k, i) => {
    const pub = createPublicKey(privateKeys[i]!).export({ type: 'spki', format: 'der' });
    expect(k.spki.equals(pub)).toBe(true);
    expect(k.pkcs8.equals(privateKeys[i]!.export({ type: 'pkcs8', format: 'der' }) as Buffer)).toBe(true);
    // the server's own CSR parser (it verifies the signature)
    expect(parseAndVerifyCSR(b.csrs[i]!).publicKeySpki.equals(pub)).toBe(true);
  });
});

test('spkiFromPkcs8 reads the point of P-256 keys only', async () => {
  const { privateKey } = await newKeyPair();
  const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'der' }) as Buffer;
  expect(spkiFromPkcs8(pkcs8)!.equals(createPublicKey(privateKey).export({ type: 'spki', format: 'der' }))).toBe(true);
  const p384 = (await promisify(generateKeyPair)('ec', { namedCurve: 'P-384' })).privateKey.export({ type: 'pkcs8', format: 'der' }) as Buffer;
  expect(spkiFromPkcs8(p384)).toBeUndefined();
  expect(spkiFromPkcs8(Buffer.from('3000', 'hex'))).toBeUndefined();
});
