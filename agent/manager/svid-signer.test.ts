import { X509Certificate } from 'node:crypto';
import { createSelfSignedCA } from '../../server/ca/ca-certificates';
import { makeTestKey } from '../../test/helpers/x509-test-keys';
import type { EntryJSON } from '../client/server-client';
import { certificateValidity, prepareBatch } from './svid-signer';

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

test('prepareBatch makes a distinct P-256 key and a CSR per entry, and knows each SPKI', async () => {
  const entries = [{ id: 'a' }, { id: 'b' }] as EntryJSON[];
  const b = await prepareBatch(entries);
  expect(b.keys).toHaveLength(2);
  expect(b.keys[0]!.privateKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
  expect(b.keys[0]!.privateKey.equals(b.keys[1]!.privateKey)).toBe(false);
  b.keys.forEach((k, i) => expect(b.spkis[i]!.equals(k.publicKey.export({ type: 'spki', format: 'der' }))).toBe(true));
});
