import * as x509 from '@peculiar/x509';
import { randomBytes, webcrypto } from 'node:crypto';
import { KeyUsage, OID, basicConstraints, extKeyUsages, extension, keyUsage, readCertificateFields, uriNames } from './certificate-fields';

// @peculiar/x509 (an independent encoder and decoder) makes the certificates
// and is the oracle: the hand-written reader must see what it sees.
x509.cryptoProvider.set(webcrypto as never);
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const F = x509.KeyUsageFlags;

async function make(extensions: (pub: webcrypto.CryptoKey) => Promise<x509.Extension[]> | x509.Extension[], subject = 'O=SPIFFE', serial = '01' + randomBytes(15).toString('hex')) {
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject,
    issuer: subject || 'O=Issuer',
    notBefore: new Date('2026-01-01T00:00:00Z'),
    notAfter: new Date('2051-01-01T00:00:00Z'), // GeneralizedTime from 2050 on
    publicKey: keys.publicKey as never,
    signingKey: keys.privateKey as never,
    signingAlgorithm: ALG,
    extensions: await extensions(keys.publicKey),
  });
  return { der: Buffer.from(cert.rawData), cert };
}

describe('readCertificateFields', () => {
  it('reads what @peculiar/x509 reads, for every usage bit, pathLen and SAN form', async () => {
    for (const [usages, ca, pathLength] of [
      [F.digitalSignature, false, undefined],
      [F.keyCertSign | F.cRLSign, true, 0],
      [F.keyCertSign, true, 300],
      [F.digitalSignature | F.keyEncipherment | F.decipherOnly, false, undefined],
    ] as const) {
      const { der, cert } = await make(async (pub) => [
        new x509.BasicConstraintsExtension(ca, pathLength, true),
        new x509.KeyUsagesExtension(usages, true),
        await x509.SubjectKeyIdentifierExtension.create(pub as never),
        new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'a.example' }, { type: 'url', value: 'spiffe://example.org/w' }, { type: 'email', value: 'x@example.org' }], false),
        new x509.ExtendedKeyUsageExtension(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'], false),
      ]);
      const f = readCertificateFields(der);
      expect(f.version).toBe(3);
      expect(f.notBefore).toEqual(cert.notBefore);
      expect(f.notAfter).toEqual(cert.notAfter);
      expect(f.subjectEmpty).toBe(false);
      expect(f.spki.equals(Buffer.from(cert.publicKey.rawData))).toBe(true);
      expect(f.extensions.map((e) => [e.oid, e.critical])).toEqual(cert.extensions.map((e) => [e.type, e.critical]));
      expect(basicConstraints(extension(f, OID.basicConstraints)!)).toEqual({ ca, pathLength });
      const has = keyUsage(extension(f, OID.keyUsage)!);
      for (let bit = 0; bit < 9; bit++) expect([bit, has(bit)]).toEqual([bit, (usages & (1 << bit)) !== 0]);
      expect(has(KeyUsage.digitalSignature)).toBe((usages & F.digitalSignature) !== 0);
      expect(uriNames(extension(f, OID.subjectAltName)!)).toEqual(['spiffe://example.org/w']);
      expect(extKeyUsages(extension(f, OID.extKeyUsage)!)).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    }
  });

  it('sees an empty subject and a negative or zero serial', async () => {
    const empty = readCertificateFields((await make(() => [], '')).der);
    expect(empty.subjectEmpty).toBe(true);
    expect(empty.extensions).toEqual([]);
    // the generator fixes such serials up, so patch its one-byte serial (version [0] 2, then INTEGER 01 ..)
    const { der } = await make(() => [], 'O=x', '01');
    const at = der.indexOf(Buffer.from([0xa0, 0x03, 0x02, 0x01, 0x02, 0x02, 0x01])) + 7;
    expect(readCertificateFields(der)).toMatchObject({ serialZero: false, serialNegative: false });
    expect(readCertificateFields(Buffer.from(der).fill(0x00, at, at + 1))).toMatchObject({ serialZero: true, serialNegative: false });
    expect(readCertificateFields(Buffer.from(der).fill(0x80, at, at + 1))).toMatchObject({ serialZero: false, serialNegative: true });
  });

  it('refuses an extension that appears twice (RFC 5280 4.2)', async () => {
    const { der } = await make(() => [new x509.KeyUsagesExtension(F.digitalSignature, true), new x509.KeyUsagesExtension(F.keyCertSign, true)]);
    expect(() => readCertificateFields(der)).toThrow(/extension 2\.5\.29\.15 appears twice/);
  });

  it('refuses truncated input, trailing bytes and a non-DER boolean', async () => {
    const { der } = await make(() => [new x509.BasicConstraintsExtension(true, 1, true)]);
    expect(() => readCertificateFields(der.subarray(0, der.length - 1))).toThrow(/der:/);
    expect(() => readCertificateFields(Buffer.concat([der, Buffer.from([0])]))).toThrow(/trailing bytes/);
    // the critical flag's 0xff turned into 0x01: BER allows it, DER does not
    const i = der.indexOf(Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x13, 0x01, 0x01, 0xff]));
    expect(i).toBeGreaterThan(0);
    const bad = Buffer.from(der);
    bad[i + 7] = 0x01;
    expect(() => readCertificateFields(bad)).toThrow(/not a DER BOOLEAN/);
  });
});
