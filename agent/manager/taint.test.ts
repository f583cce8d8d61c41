import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import { authorityKeyId, subjectKeyId } from '../../common/x509svid/key-id';
import { MAX_TAINT_SPREAD_MS, TaintState, jwtKid, taintSpread, taintedRotateAt } from './taint';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

/** A CA and a leaf it signed (with SKI/AKI), made with @peculiar/x509 so this test needs no server code. */
async function caAndLeaf(): Promise<{ ca: Buffer; leaf: Buffer }> {
  type KeyPair = { publicKey: webcrypto.CryptoKey; privateKey: webcrypto.CryptoKey };
  const caKeys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as KeyPair;
  const leafKeys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as KeyPair;
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    name: 'CN=ca',
    keys: caKeys,
    signingAlgorithm: alg,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true), await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey)],
  });
  const leaf = await x509.X509CertificateGenerator.create({
    subject: 'CN=leaf',
    issuer: ca.subject,
    publicKey: leafKeys.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: alg,
    extensions: [await x509.AuthorityKeyIdentifierExtension.create(ca, false)],
  });
  return { ca: Buffer.from(ca.rawData), leaf: Buffer.from(leaf.rawData) };
}

describe('timing', () => {
  it('spreads re-issues over min(10 s, a tenth of the lifetime)', () => {
    expect(taintSpread(0, 60_000)).toBe(6000);
    expect(taintSpread(0, 3_600_000)).toBe(MAX_TAINT_SPREAD_MS);
  });

  it('draws a time within the spread, and leaves an SVID already due that soon alone', () => {
    expect(taintedRotateAt(50_000, 0, 60_000, 1000, () => 0.5)).toBe(4000);
    expect(taintedRotateAt(50_000, 0, 60_000, 1000, () => 0)).toBe(1000);
    expect(taintedRotateAt(3000, 0, 60_000, 1000, () => 0.9)).toBe(3000);
  });
});

describe('TaintState', () => {
  it('finds leaves by their AKI, moves only their renewal, once', async () => {
    const { ca, leaf } = await caAndLeaf();
    const other = await caAndLeaf();
    expect(authorityKeyId(leaf)).toBe(subjectKeyId(ca));
    const t = new TaintState();
    expect(t.update({ x509: [subjectKeyId(ca)!], jwt: [] })).toBe(true);
    expect(t.update({ x509: [subjectKeyId(ca)!], jwt: [] })).toBe(false);
    expect(t.taintedLeaf(leaf)).toBe(true);
    expect(t.taintedLeaf(other.leaf)).toBe(false);
    const mine = { chain: [leaf], notBefore: 0, notAfter: 100, rotateAt: 50_000 };
    const theirs = { chain: [other.leaf], notBefore: 0, notAfter: 100, rotateAt: 50_000 };
    expect(t.expedite([mine, theirs], 1000, () => 0.5)).toBe(1);
    expect(mine.rotateAt).toBe(6000);
    expect(theirs.rotateAt).toBe(50_000);
    expect(t.expedite([mine, theirs], 2000, () => 0)).toBe(0); // not drawn again on the next sync
    expect(t.update(undefined)).toBe(true);
    expect(t.empty).toBe(true);
    expect(t.taintedLeaf(leaf)).toBe(false);
  });

  it('finds JWT-SVIDs by the kid of their header', () => {
    const token = (kid: string) => `${Buffer.from(JSON.stringify({ alg: 'ES256', kid, typ: 'JWT' })).toString('base64url')}.e30.sig`;
    expect(jwtKid(token('k1'))).toBe('k1');
    expect(jwtKid('garbage')).toBeUndefined();
    const t = new TaintState();
    t.update({ x509: [], jwt: ['k1'] });
    expect(t.taintedJWT(token('k1'))).toBe(true);
    expect(t.taintedJWT(token('k2'))).toBe(false);
  });
});
