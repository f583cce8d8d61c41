import * as x509 from '@peculiar/x509';
import { X509Certificate as NodeX509, createHash } from 'node:crypto';
import * as der from '../../common/der/der';
import { checkX509CAProfile, checkX509SVIDProfile, validateX509SVIDChain } from '../../common/x509svid/validate';
import type { KeyType } from '../keymanager/keymanager';
import { makeTestKey, opensslVerify, type TestKey } from '../../test/helpers/x509-test-keys';
import { createIntermediateCA, createSelfSignedCA, signerFromKeyObject } from './ca-certificates';
import { readCertificateInfo, subjectPublicKeyBits } from './certificate-info';
import { X509SVIDTemplate } from './x509-leaf-template';

const TD = 'example.org';
const NB = new Date('2026-01-01T00:00:00Z');
const NA = new Date('2028-01-01T00:00:00Z');
const NOW = new Date('2026-06-01T00:00:00Z');
const SIG_OID: Record<KeyType, string> = {
  'ec-p256': '1.2.840.10045.4.3.2',
  'ec-p384': '1.2.840.10045.4.3.3',
  'rsa-2048': '1.2.840.113549.1.1.11',
};

const keys: Record<string, TestKey> = {};
beforeAll(async () => {
  const wanted: Array<[string, KeyType]> = [['p256', 'ec-p256'], ['p384', 'ec-p384'], ['rsa', 'rsa-2048'], ['i1', 'ec-p256'], ['i2', 'ec-p256'], ['leaf', 'ec-p256']];
  await Promise.all(wanted.map(async ([name, t]) => (keys[name] = await makeTestKey(t, name))));
});

const signatureOid = (certDer: Buffer) => {
  const cert = der.readTLV(certDer, 0);
  const tbs = der.readTLV(certDer, cert.start);
  const alg = der.readTLV(certDer, tbs.end);
  return der.decodeOid(certDer, der.readTLV(certDer, alg.start));
};

const serialAttr = (c: x509.X509Certificate) => c.subjectName.getField('2.5.4.5')[0];
const stripZeros = (h: string) => h.replace(/^(00)+/, '');

/** CA extensions common to roots and intermediates. */
function checkCA(certDer: Buffer, key: TestKey) {
  expect(checkX509CAProfile(certDer)).toEqual([]);
  const cert = new x509.X509Certificate(certDer);
  const bc = cert.getExtension(x509.BasicConstraintsExtension)!;
  expect([bc.ca, bc.critical, bc.pathLength]).toEqual([true, true, undefined]);
  const ku = cert.getExtension(x509.KeyUsagesExtension)!;
  expect([ku.usages, ku.critical]).toEqual([x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true]);
  expect(cert.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId).toBe(createHash('sha1').update(subjectPublicKeyBits(key.publicKeySpki)).digest('hex'));
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension)!;
  expect(san.names.items.map((n) => ({ type: n.type, value: n.value }))).toEqual([{ type: 'url', value: `spiffe://${TD}` }]);
  expect(readCertificateInfo(certDer).spki.equals(key.publicKeySpki)).toBe(true);
  expect(cert.serialNumber).toMatch(/^[0-9a-f]{28,32}$/i);
  return cert;
}

describe.each<[string, KeyType]>([['p256', 'ec-p256'], ['p384', 'ec-p384'], ['rsa', 'rsa-2048']])('createSelfSignedCA with a %s key', (name, type) => {
  it('makes a conforming self-signed root', async () => {
    const key = keys[name];
    const rootDer = await createSelfSignedCA({ key, trustDomain: TD, notBefore: NB, notAfter: NA });
    const cert = checkCA(rootDer, key);
    expect(cert.getExtension(x509.AuthorityKeyIdentifierExtension)).toBeNull();
    expect(cert.subject).toBe(`O=Tessera, CN=${TD}, 2.5.4.5=${serialAttr(cert)}`);
    expect(stripZeros(serialAttr(cert))).toBe(stripZeros(cert.serialNumber.toLowerCase()));
    expect(cert.issuer).toBe(cert.subject);
    expect([cert.notBefore.toISOString(), cert.notAfter.toISOString()]).toEqual([NB.toISOString(), NA.toISOString()]);
    expect(signatureOid(rootDer)).toBe(SIG_OID[type]);
    const node = new NodeX509(rootDer);
    expect(node.verify(key.publicKey)).toBe(true);
    expect(node.ca).toBe(true);
    expect((await opensslVerify([rootDer], [], rootDer, ['-attime', String(NOW.getTime() / 1000)])).ok).toBe(true);
  });
});

describe('createSelfSignedCA', () => {
  it('gives every CA certificate its own subject via the serialNumber attribute', async () => {
    const a = new x509.X509Certificate(await createSelfSignedCA({ key: keys.p256, trustDomain: TD, notBefore: NB, notAfter: NA }));
    const b = new x509.X509Certificate(await createSelfSignedCA({ key: keys.p256, trustDomain: TD, notBefore: NB, notAfter: NA }));
    expect(a.subject).not.toBe(b.subject);
    expect(stripZeros(serialAttr(b))).toBe(stripZeros(b.serialNumber.toLowerCase()));
  });

  it('honours organization and subject, and a spiffe:// trust domain', async () => {
    const org = new x509.X509Certificate(await createSelfSignedCA({ key: keys.p256, trustDomain: `spiffe://${TD}`, notBefore: NB, notAfter: NA, organization: 'Acme, Inc.' }));
    expect(org.subjectName.getField('O')).toEqual(['Acme, Inc.']);
    expect(org.getExtension(x509.SubjectAlternativeNameExtension)!.names.items[0].value).toBe(`spiffe://${TD}`);
    const custom = new x509.X509Certificate(await createSelfSignedCA({ key: keys.p256, trustDomain: TD, notBefore: NB, notAfter: NA, subject: 'CN=Custom Root, O=Acme' }));
    expect(custom.subject).toBe('CN=Custom Root, O=Acme');
  });

  it('rejects bad trust domains and validity', async () => {
    await expect(createSelfSignedCA({ key: keys.p256, trustDomain: 'Example.org', notBefore: NB, notAfter: NA })).rejects.toThrow(/uppercase/);
    await expect(createSelfSignedCA({ key: keys.p256, trustDomain: 'spiffe://example.org/x', notBefore: NB, notAfter: NA })).rejects.toThrow(/has a path/);
    await expect(createSelfSignedCA({ key: keys.p256, trustDomain: TD, notBefore: NA, notAfter: NB })).rejects.toThrow('notBefore must be before notAfter');
  });

  it('detects a key whose sign does not match its public key', async () => {
    const liar = { ...keys.p256, sign: keys.i1.sign };
    await expect(createSelfSignedCA({ key: liar, trustDomain: TD, notBefore: NB, notAfter: NA })).rejects.toThrow('ca key does not match its public key');
  });
});

describe('createIntermediateCA', () => {
  let rootDer: Buffer;
  beforeAll(async () => {
    rootDer = await createSelfSignedCA({ key: keys.p384, trustDomain: TD, notBefore: NB, notAfter: NA });
  });

  it.each([
    ['a ManagedKey', () => keys.p384 as never],
    ['a private KeyObject', () => keys.p384.privateKey as never],
  ])('issues a conforming intermediate signed by %s', async (_n, upstreamKey) => {
    const interDer = await createIntermediateCA({ key: keys.i1, upstreamCertDer: rootDer, upstreamKey: upstreamKey(), trustDomain: TD, notBefore: NB, notAfter: NA });
    checkCA(interDer, keys.i1);
    const cert = new x509.X509Certificate(interDer);
    const root = readCertificateInfo(rootDer);
    expect(readCertificateInfo(interDer).issuer.equals(root.subject)).toBe(true);
    expect(cert.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId).toBe(root.subjectKeyId!.toString('hex'));
    expect(cert.subject).not.toBe(new x509.X509Certificate(rootDer).subject);
    expect(signatureOid(interDer)).toBe(SIG_OID['ec-p384']); // the upstream's algorithm, not the new key's
    expect(new NodeX509(interDer).verify(keys.p384.publicKey)).toBe(true);
  });

  it('caps notAfter at the upstream notAfter', async () => {
    const interDer = await createIntermediateCA({ key: keys.i1, upstreamCertDer: rootDer, upstreamKey: keys.p384, trustDomain: TD, notBefore: NB, notAfter: new Date('2030-01-01T00:00:00Z') });
    expect(new x509.X509Certificate(interDer).notAfter.toISOString()).toBe(NA.toISOString());
  });

  it('chains root -> intermediate -> intermediate -> leaf for openssl and the SVID validator', async () => {
    const i1 = await createIntermediateCA({ key: keys.i1, upstreamCertDer: rootDer, upstreamKey: keys.p384, trustDomain: TD, notBefore: NB, notAfter: NA });
    const i2 = await createIntermediateCA({ key: keys.i2, upstreamCertDer: i1, upstreamKey: keys.i1, trustDomain: TD, notBefore: NB, notAfter: NA });
    const template = new X509SVIDTemplate({ caCertDer: i2, caKey: keys.i2 });
    const { der: leaf } = template.mint({ spiffeId: `spiffe://${TD}/w`, publicKeySpki: keys.leaf.publicKeySpki, notBefore: NOW, notAfter: new Date(NOW.getTime() + 3600_000) });
    expect(checkX509SVIDProfile(leaf)).toEqual([]);
    const at = ['-attime', String(NOW.getTime() / 1000 + 60)];
    const ok = await opensslVerify([rootDer], [i2, i1], leaf, at);
    expect(ok.output).toContain('OK');
    expect(ok.ok).toBe(true);
    expect((await opensslVerify([rootDer], [i1], leaf, at)).ok).toBe(false);
    const bundles = (td: string) => (td === TD ? [rootDer] : undefined);
    expect(validateX509SVIDChain([leaf, i2, i1], bundles, new Date(NOW.getTime() + 60_000)).spiffeId).toBe(`spiffe://${TD}/w`);
  });

  it('rejects an upstream key that does not belong to the upstream certificate', async () => {
    await expect(createIntermediateCA({ key: keys.i1, upstreamCertDer: rootDer, upstreamKey: keys.p256, trustDomain: TD, notBefore: NB, notAfter: NA })).rejects.toThrow(
      /upstream key does not match the upstream certificate|cannot sign with/,
    );
    const otherP384 = await makeTestKey('ec-p384', 'other');
    await expect(createIntermediateCA({ key: keys.i1, upstreamCertDer: rootDer, upstreamKey: otherP384, trustDomain: TD, notBefore: NB, notAfter: NA })).rejects.toThrow(
      'upstream key does not match the upstream certificate',
    );
  });

  it('rejects an upstream certificate that is not a CA, and validity outside the upstream', async () => {
    const template = new X509SVIDTemplate({ caCertDer: rootDer, caKey: keys.p384 });
    const { der: leaf } = template.mint({ spiffeId: `spiffe://${TD}/w`, publicKeySpki: keys.leaf.publicKeySpki, notBefore: NB, notAfter: NA });
    await expect(createIntermediateCA({ key: keys.i1, upstreamCertDer: leaf, upstreamKey: keys.leaf, trustDomain: TD, notBefore: NB, notAfter: NA })).rejects.toThrow(/not a ca certificate/);
    await expect(
      createIntermediateCA({ key: keys.i1, upstreamCertDer: rootDer, upstreamKey: keys.p384, trustDomain: TD, notBefore: new Date('2029-01-01T00:00:00Z'), notAfter: new Date('2030-01-01T00:00:00Z') }),
    ).rejects.toThrow('notBefore must be before notAfter');
  });
});

describe('signerFromKeyObject', () => {
  it('maps key types and refuses unsupported keys', async () => {
    expect(signerFromKeyObject(keys.p256.privateKey).type).toBe('ec-p256');
    expect(signerFromKeyObject(keys.p384.privateKey).type).toBe('ec-p384');
    expect(signerFromKeyObject(keys.rsa.privateKey).type).toBe('rsa-2048');
    expect(() => signerFromKeyObject(keys.rsa.publicKey)).toThrow(/must be a private key/);
    const { generateKeyPair } = await import('node:crypto');
    const { promisify } = await import('node:util');
    const ed = await promisify(generateKeyPair)('ed25519');
    expect(() => signerFromKeyObject(ed.privateKey)).toThrow(/ed25519.*not supported; use EC P-256, P-384 or RSA-2048\+/);
  });
});
