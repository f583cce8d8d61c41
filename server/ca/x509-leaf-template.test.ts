import * as x509 from '@peculiar/x509';
import { X509Certificate as NodeX509, createHash } from 'node:crypto';
import * as der from '../../common/der/der';
import type { KeyType } from '../keymanager/keymanager';
import { makeTestKey, opensslVerify, type TestKey } from '../../test/helpers/x509-test-keys';
import { createIntermediateCA, createSelfSignedCA } from './ca-certificates';
import { readCertificateInfo, subjectPublicKeyBits } from './certificate-info';
import { X509SVIDTemplate } from './x509-leaf-template';

const TD = 'example.org';
const SPIFFE_ID = 'spiffe://example.org/ns/prod/web';
const CA_NB = new Date('2026-01-01T00:00:00Z');
const CA_NA = new Date('2027-01-01T00:00:00Z');
const NB = new Date('2026-06-01T12:00:00Z');
const NA = new Date('2026-06-01T13:00:00Z');

const SIG_ALG: Record<KeyType, { oid: string; nullParams: boolean }> = {
  'ec-p256': { oid: '1.2.840.10045.4.3.2', nullParams: false },
  'ec-p384': { oid: '1.2.840.10045.4.3.3', nullParams: false },
  'rsa-2048': { oid: '1.2.840.113549.1.1.11', nullParams: true },
};

const keys: Partial<Record<string, TestKey>> = {};
const key = (type: KeyType, slot = 'a'): TestKey => keys[`${type}/${slot}`]!;

beforeAll(async () => {
  const wanted: Array<[KeyType, string]> = [
    ['ec-p256', 'a'], ['ec-p256', 'b'], ['ec-p384', 'a'], ['rsa-2048', 'a'], ['rsa-2048', 'b'], ['ec-p256', 'leaf'], ['ec-p384', 'leaf'], ['rsa-2048', 'leaf'],
  ];
  await Promise.all(wanted.map(async ([t, s]) => (keys[`${t}/${s}`] = await makeTestKey(t, `${t}/${s}`))));
});

/** The TBS fields by position: [version, serial, sigAlg, issuer, validity, subject, spki, extensions]. */
function tbsFields(certDer: Buffer) {
  const cert = der.readTLV(certDer, 0);
  const [tbs, sigAlg] = der.readChildren(certDer, cert);
  return { fields: der.readChildren(certDer, tbs), outerSigAlg: sigAlg };
}

/** Asserts every X.509-SVID profile item on a minted leaf. */
function checkLeaf(leafDer: Buffer, caDer: Buffer, ca: TestKey, leafKey: TestKey, want: { dns?: string[]; nb?: Date; na?: Date; serialHex: string }) {
  const cert = new x509.X509Certificate(leafDer);
  const { fields, outerSigAlg } = tbsFields(leafDer);

  // version 3
  expect(fields[0].tag).toBe(0xa0);
  expect(leafDer.subarray(fields[0].start, fields[0].end).toString('hex')).toBe('020102');

  // serial: positive, minimal, at most 128 bits of magnitude, reported correctly
  const serial = leafDer.subarray(fields[1].start, fields[1].end);
  expect(serial[0] & 0x80).toBe(0);
  if (serial.length > 1) expect(serial[0] === 0 && serial[1] < 0x80).toBe(false);
  expect(serial.length).toBeLessThanOrEqual(17);
  expect(cert.serialNumber.toLowerCase()).toBe(want.serialHex);
  expect(new NodeX509(leafDer).serialNumber.toLowerCase()).toBe(want.serialHex);

  // signature algorithm (inner == outer) for the CA key type
  const sa = SIG_ALG[ca.type];
  for (const t of [fields[2], outerSigAlg]) {
    const parts = der.readChildren(leafDer, t);
    expect(der.decodeOid(leafDer, parts[0])).toBe(sa.oid);
    expect(parts.length).toBe(sa.nullParams ? 2 : 1);
    if (sa.nullParams) expect(parts[1].tag).toBe(der.TAG.NULL);
  }

  // issuer == CA subject, byte for byte; subject O=SPIFFE
  expect(leafDer.subarray(fields[3].offset, fields[3].end).equals(readCertificateInfo(caDer).subject)).toBe(true);
  expect(cert.subject).toBe('O=SPIFFE');

  // validity exactly as asked
  expect(cert.notBefore.getTime()).toBe((want.nb ?? NB).getTime());
  expect(cert.notAfter.getTime()).toBe((want.na ?? NA).getTime());

  // public key spliced verbatim
  expect(leafDer.subarray(fields[6].offset, fields[6].end).equals(leafKey.publicKeySpki)).toBe(true);

  // extensions
  expect(cert.extensions).toHaveLength(6);
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension)!;
  expect(san.critical).toBe(false);
  const uris = san.names.items.filter((n) => n.type === 'url').map((n) => n.value);
  expect(uris).toEqual([SPIFFE_ID]);
  expect(san.names.items.filter((n) => n.type === 'dns').map((n) => n.value)).toEqual(want.dns ?? []);
  expect(san.names.items).toHaveLength(1 + (want.dns?.length ?? 0));

  const bc = cert.getExtension(x509.BasicConstraintsExtension)!;
  expect(bc.critical).toBe(true);
  expect(bc.ca).toBe(false);
  expect(bc.pathLength).toBeUndefined();

  const ku = cert.getExtension(x509.KeyUsagesExtension)!;
  expect(ku.critical).toBe(true);
  const wantKU = leafKey.type === 'rsa-2048' ? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment : x509.KeyUsageFlags.digitalSignature;
  expect(ku.usages).toBe(wantKU);

  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension)!;
  expect(eku.usages).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);

  const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension)!;
  expect(ski.keyId).toBe(createHash('sha1').update(subjectPublicKeyBits(leafKey.publicKeySpki)).digest('hex'));

  const aki = cert.getExtension(x509.AuthorityKeyIdentifierExtension)!;
  expect(aki.keyId).toBe(readCertificateInfo(caDer).subjectKeyId!.toString('hex'));

  // signature verifies under the CA key (Node/OpenSSL)
  expect(new NodeX509(leafDer).verify(ca.publicKey)).toBe(true);
  expect(new NodeX509(leafDer).checkIssued(new NodeX509(caDer))).toBe(true);
}

describe.each<KeyType>(['ec-p256', 'ec-p384', 'rsa-2048'])('X509SVIDTemplate with a %s CA key', (caType) => {
  let caDer: Buffer;
  let template: X509SVIDTemplate;
  beforeAll(async () => {
    caDer = await createSelfSignedCA({ key: key(caType), trustDomain: TD, notBefore: CA_NB, notAfter: CA_NA });
    template = new X509SVIDTemplate({ caCertDer: caDer, caKey: key(caType) });
  });

  it.each<KeyType>(['ec-p256', 'ec-p384', 'rsa-2048'])('mints a conforming leaf for a %s workload key', async (leafType) => {
    const leafKey = key(leafType, 'leaf');
    const dns = ['web.example.org', '*.svc.example.org'];
    const { der: leaf, serialHex } = template.mint({ spiffeId: SPIFFE_ID, dnsNames: dns, publicKeySpki: leafKey.publicKeySpki, notBefore: NB, notAfter: NA });
    checkLeaf(leaf, caDer, key(caType), leafKey, { dns, serialHex });
    const r = await opensslVerify([caDer], [], leaf, ['-attime', String(NB.getTime() / 1000 + 60)]);
    expect(r.output).toContain('OK');
    expect(r.ok).toBe(true);
  });

  it('uses a fresh random serial every time', () => {
    const spki = key('ec-p256', 'leaf').publicKeySpki;
    const serials = new Set<string>();
    for (let i = 0; i < 200; i++) serials.add(template.mint({ spiffeId: SPIFFE_ID, publicKeySpki: spki, notBefore: NB, notAfter: NA }).serialHex);
    expect(serials.size).toBe(200);
    // 128 random bits: leading zero bytes aside, the magnitude is 16 bytes long
    expect([...serials].filter((s) => s.length === 32).length).toBeGreaterThan(190);
  });
});

describe('X509SVIDTemplate', () => {
  let caDer: Buffer;
  let template: X509SVIDTemplate;
  const ca = () => key('ec-p256');
  const leafSpki = () => key('ec-p256', 'leaf').publicKeySpki;
  const mint = (over: Partial<Parameters<X509SVIDTemplate['mint']>[0]> = {}) =>
    template.mint({ spiffeId: SPIFFE_ID, publicKeySpki: leafSpki(), notBefore: NB, notAfter: NA, ...over });

  beforeAll(async () => {
    caDer = await createSelfSignedCA({ key: ca(), trustDomain: TD, notBefore: CA_NB, notAfter: CA_NA });
    template = new X509SVIDTemplate({ caCertDer: caDer, caKey: ca() });
  });

  it('reads the CA notAfter once', () => {
    expect(template.caNotAfter.toISOString()).toBe(CA_NA.toISOString());
  });

  it('allows notAfter equal to the CA notAfter and drops milliseconds', () => {
    const { der: leaf } = mint({ notAfter: new Date(CA_NA.getTime() + 999) });
    expect(new x509.X509Certificate(leaf).notAfter.getTime()).toBe(CA_NA.getTime());
  });

  it('throws instead of issuing past the CA notAfter', () => {
    expect(() => mint({ notAfter: new Date(CA_NA.getTime() + 1000) })).toThrow(/later than the ca certificate's notAfter/);
    try {
      mint({ notAfter: new Date(CA_NA.getTime() + 1000) });
    } catch (e) {
      expect((e as { code: string }).code).toBe('INVALID_ARGUMENT');
    }
  });

  it('rejects notBefore at or after notAfter and invalid dates', () => {
    expect(() => mint({ notBefore: NA })).toThrow('notBefore must be before notAfter');
    expect(() => mint({ notBefore: new Date(NaN) })).toThrow(/valid dates/);
  });

  it('uses GeneralizedTime for dates after 2049', async () => {
    const caKey = key('ec-p384');
    const farCA = await createSelfSignedCA({ key: caKey, trustDomain: TD, notBefore: CA_NB, notAfter: new Date('2070-01-01T00:00:00Z') });
    const t = new X509SVIDTemplate({ caCertDer: farCA, caKey });
    const nb = new Date('2049-12-31T23:59:50Z');
    const na = new Date('2055-05-05T05:05:05Z');
    const leafKey = key('ec-p256', 'leaf');
    const { der: leaf, serialHex } = t.mint({ spiffeId: SPIFFE_ID, publicKeySpki: leafKey.publicKeySpki, notBefore: nb, notAfter: na });
    const validity = der.readChildren(leaf, tbsFields(leaf).fields[4]);
    expect(validity.map((v) => v.tag)).toEqual([der.TAG.UTC_TIME, der.TAG.GENERALIZED_TIME]);
    checkLeaf(leaf, farCA, caKey, leafKey, { nb, na, serialHex });
    const r = await opensslVerify([farCA], [], leaf, ['-attime', String(Date.parse('2052-01-01T00:00:00Z') / 1000)]);
    expect(r.output).toContain('OK');
  });

  it('chains root -> intermediate -> leaf for openssl', async () => {
    const root = await createSelfSignedCA({ key: key('rsa-2048'), trustDomain: TD, notBefore: CA_NB, notAfter: CA_NA });
    const inter = await createIntermediateCA({
      key: key('ec-p256', 'b'),
      upstreamCertDer: root,
      upstreamKey: key('rsa-2048'),
      trustDomain: TD,
      notBefore: CA_NB,
      notAfter: CA_NA,
    });
    const t = new X509SVIDTemplate({ caCertDer: inter, caKey: key('ec-p256', 'b') });
    const leafKey = key('rsa-2048', 'leaf');
    const { der: leaf, serialHex } = t.mint({ spiffeId: SPIFFE_ID, publicKeySpki: leafKey.publicKeySpki, notBefore: NB, notAfter: NA });
    checkLeaf(leaf, inter, key('ec-p256', 'b'), leafKey, { serialHex });
    const at = ['-attime', String(NB.getTime() / 1000 + 60)];
    const ok = await opensslVerify([root], [inter], leaf, at);
    expect(ok.output).toContain('OK');
    expect(ok.ok).toBe(true);
    // without the intermediate the chain must not build
    const missing = await opensslVerify([root], [], leaf, at);
    expect(missing.ok).toBe(false);
    // the intermediate alone is not a trust anchor
    const wrongRoot = await opensslVerify([caDer], [inter], leaf, at);
    expect(wrongRoot.ok).toBe(false);
  });

  it('accepts a caller-chosen serial and reports it', () => {
    const { der: leaf, serialHex } = mint({ serial: Buffer.from('00ff01', 'hex') });
    expect(serialHex).toBe('ff01');
    const { fields } = tbsFields(leaf);
    expect(leaf.subarray(fields[1].start, fields[1].end).toString('hex')).toBe('00ff01');
    expect(() => mint({ serial: Buffer.from([0, 0]) })).toThrow(/non-zero/);
    expect(() => mint({ serial: Buffer.alloc(21, 1) })).toThrow(/at most 20 octets/);
  });

  it('marks SAN critical when configured with an empty subject', () => {
    const t = new X509SVIDTemplate({ caCertDer: caDer, caKey: ca(), subject: [] });
    const cert = new x509.X509Certificate(t.mint({ spiffeId: SPIFFE_ID, publicKeySpki: leafSpki(), notBefore: NB, notAfter: NA }).der);
    expect(cert.subject).toBe('');
    expect(cert.getExtension(x509.SubjectAlternativeNameExtension)!.critical).toBe(true);
  });

  it('encodes a custom subject', () => {
    const t = new X509SVIDTemplate({ caCertDer: caDer, caKey: ca(), subject: [['C', 'US'], ['O', 'Acme, Inc.'], ['CN', 'wörkload']] });
    const cert = new NodeX509(t.mint({ spiffeId: SPIFFE_ID, publicKeySpki: leafSpki(), notBefore: NB, notAfter: NA }).der);
    expect(cert.subject).toBe('C=US\nO=Acme\\, Inc.\nCN=wörkload');
  });

  it.each([
    ['garbage', Buffer.from('hello')],
    ['a truncated spki', () => leafSpki().subarray(0, 40)],
    ['trailing bytes', () => Buffer.concat([leafSpki(), Buffer.from([0])])],
    ['a compressed point', () => Buffer.concat([leafSpki().subarray(0, -65), Buffer.from([0x02]), leafSpki().subarray(-64)])],
  ])('rejects %s as public key', (_n, spki) => {
    const publicKeySpki = typeof spki === 'function' ? spki() : spki;
    expect(() => mint({ publicKeySpki })).toThrow(/publicKeySpki is not a usable subjectPublicKeyInfo/);
  });

  it('rejects an ed25519 key with a clear message', async () => {
    const { generateKeyPair } = await import('node:crypto');
    const { promisify } = await import('node:util');
    const { publicKey } = await promisify(generateKeyPair)('ed25519');
    expect(() => mint({ publicKeySpki: publicKey.export({ type: 'spki', format: 'der' }) })).toThrow(/key algorithm is not EC or RSA/);
  });

  it('rejects malformed SPIFFE IDs and DNS names', () => {
    expect(() => mint({ spiffeId: 'https://example.org/x' })).toThrow(/is not a spiffe id/);
    expect(() => mint({ spiffeId: 'spiffe://example.org/a b' })).toThrow(/is not a spiffe id/);
    expect(() => mint({ dnsNames: ['bad name'] })).toThrow(/"bad name" is not a valid dns name/);
    expect(() => mint({ dnsNames: ['ünicode.example'] })).toThrow(/not a valid dns name/);
    expect(() => mint({ dnsNames: ['a..b'] })).toThrow(/not a valid dns name/);
  });

  it('refuses a CA key that does not match the CA certificate', () => {
    expect(() => new X509SVIDTemplate({ caCertDer: caDer, caKey: key('ec-p256', 'b') })).toThrow(/does not match the public key of the ca certificate/);
  });

  it('refuses a certificate that is not a CA', () => {
    const leaf = mint().der;
    expect(() => new X509SVIDTemplate({ caCertDer: leaf, caKey: ca() })).toThrow(/cA=true/);
  });

  it('refuses bytes that are not a certificate', () => {
    expect(() => new X509SVIDTemplate({ caCertDer: Buffer.from('3003020101', 'hex'), caKey: ca() })).toThrow(/not a valid X.509 certificate/);
  });
});
