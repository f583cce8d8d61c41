import * as x509 from '@peculiar/x509';
import { execFileSync } from 'node:child_process';
import { ECDH, createPrivateKey, generateKeyPair, sign, webcrypto, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as der from '../der/der';
import { createCSR, csrVerifier, parseAndVerifyCSR, useNativeECDSA } from './csr';

const gen = promisify(generateKeyPair);
type Pair = { publicKey: KeyObject; privateKey: KeyObject };
const pairs: Record<string, Pair> = {};
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tessera-csr-'));
  const [p256, p384, rsa, p521, rsa1024, ed] = await Promise.all([
    gen('ec', { namedCurve: 'P-256' }),
    gen('ec', { namedCurve: 'P-384' }),
    gen('rsa', { modulusLength: 2048 }),
    gen('ec', { namedCurve: 'P-521' }),
    gen('rsa', { modulusLength: 1024 }),
    gen('ed25519'),
  ]);
  Object.assign(pairs, { p256, p384, rsa, p521, rsa1024, ed });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const spkiOf = (k: KeyObject) => k.export({ type: 'spki', format: 'der' });

/** `openssl req` with a private key we made; returns the CSR DER. */
function opensslCSR(name: string, key: KeyObject, args: string[] = []): Buffer {
  const keyPath = join(dir, `${name}.key`);
  writeFileSync(keyPath, key.export({ type: 'pkcs8', format: 'pem' }));
  const out = join(dir, `${name}.csr`);
  execFileSync('openssl', ['req', '-new', '-key', keyPath, '-subj', '/O=Evil/CN=not-me', '-outform', 'DER', '-out', out, ...args]);
  return readFileSync(out);
}

/** Asserts the INVALID_ARGUMENT code and message. */
function expectInvalid(fn: () => unknown, message: RegExp | string) {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeDefined();
  expect((err as { code?: string }).code).toBe('INVALID_ARGUMENT');
  expect((err as Error).message).toMatch(message);
}

describe('createCSR + parseAndVerifyCSR', () => {
  it.each(['p256', 'p384', 'rsa'])('round-trips a %s key, and openssl accepts the CSR', async (name) => {
    const { publicKey, privateKey } = pairs[name];
    const csr = await createCSR(privateKey, publicKey);
    const r = parseAndVerifyCSR(csr);
    expect(r.publicKeySpki.equals(spkiOf(publicKey))).toBe(true);
    const path = join(dir, `own-${name}.csr`);
    writeFileSync(path, csr);
    const out = execFileSync('openssl', ['req', '-in', path, '-inform', 'DER', '-verify', '-noout'], { stdio: 'pipe' });
    expect(out.toString()).toBe('');
  });

  it('refuses to build a CSR from mismatched or unsupported keys', async () => {
    await expect(createCSR(pairs.p256.privateKey, pairs.rsa.publicKey)).rejects.toThrow(/does not belong/);
    await expect(createCSR(pairs.ed.privateKey, pairs.ed.publicKey)).rejects.toThrow(/ed25519 cannot make a csr/);
    await expect(createCSR(pairs.p256.publicKey, pairs.p256.publicKey)).rejects.toThrow(/private and a public key/);
  });
});

it('verifies EC CSRs with the native addon when it is built (CI builds it)', () => {
  expect(csrVerifier()).toBe('native');
});

it('TESSERA_NATIVE_ECDSA=0 switches CSR verification to the KeyObject path', () => {
  process.env.TESSERA_NATIVE_ECDSA = '0';
  try {
    useNativeECDSA(true); // loads again, honouring the variable
    expect(csrVerifier()).toBe('keyobject');
  } finally {
    delete process.env.TESSERA_NATIVE_ECDSA;
    useNativeECDSA(true);
  }
  expect(csrVerifier()).toBe('native');
});

// Every case runs against both ECDSA verifiers: the @tessera/ecdsa-verify addon and the KeyObject fallback.
describe.each(['native', 'keyobject'] as const)('parseAndVerifyCSR (%s verifier)', (mode) => {
  beforeAll(() => {
    useNativeECDSA(mode === 'native');
    expect(csrVerifier()).toBe(mode);
  });
  afterAll(() => useNativeECDSA(true));

  it('accepts a CSR from @peculiar/x509 and ignores the SPIFFE ID it claims', async () => {
    const { privateKey, publicKey } = pairs.p256;
    const subtle = webcrypto.subtle;
    const cryptoKeys = {
      privateKey: await subtle.importKey('pkcs8', privateKey.export({ type: 'pkcs8', format: 'der' }), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']),
      publicKey: await subtle.importKey('spki', spkiOf(publicKey), { name: 'ECDSA', namedCurve: 'P-256' }, true, ['verify']),
    };
    const req = await x509.Pkcs10CertificateRequestGenerator.create(
      {
        name: 'CN=admin',
        keys: cryptoKeys as never,
        signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
        extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: 'spiffe://other.org/admin' }])],
      },
      webcrypto as never,
    );
    const r = parseAndVerifyCSR(Buffer.from(req.rawData));
    expect(r.publicKeySpki.equals(spkiOf(publicKey))).toBe(true);
    expect(Object.keys(r)).toEqual(['publicKeySpki']); // nothing from the subject or SAN leaks out
  });

  it.each(['p256', 'p384', 'rsa'])('accepts a %s CSR from openssl req claiming another SPIFFE ID', (name) => {
    const csr = opensslCSR(`ossl-${name}`, pairs[name].privateKey, ['-addext', 'subjectAltName=URI:spiffe://evil.org/admin,DNS:evil.org']);
    expect(parseAndVerifyCSR(csr).publicKeySpki.equals(spkiOf(pairs[name].publicKey))).toBe(true);
  });

  it('accepts SHA-512 ECDSA and SHA-384 RSA signatures', () => {
    expect(() => parseAndVerifyCSR(opensslCSR('sha512', pairs.p256.privateKey, ['-sha512']))).not.toThrow();
    expect(() => parseAndVerifyCSR(opensslCSR('rsa384', pairs.rsa.privateKey, ['-sha384']))).not.toThrow();
  });

  it('rejects a tampered signature', async () => {
    const csr = await createCSR(pairs.p256.privateKey, pairs.p256.publicKey);
    const bad = Buffer.from(csr);
    bad[bad.length - 5] ^= 0x01;
    expectInvalid(() => parseAndVerifyCSR(bad), /^csr signature does not verify/);
  });

  it('rejects a CSR whose signed content was changed', () => {
    const csr = opensslCSR('tamper', pairs.rsa.privateKey);
    const at = csr.indexOf(Buffer.from('not-me'));
    const bad = Buffer.from(csr);
    bad[at] = 'N'.charCodeAt(0);
    expectInvalid(() => parseAndVerifyCSR(bad), /^csr signature does not verify/);
  });

  it('rejects truncated, padded and garbage input as invalid DER', async () => {
    const csr = await createCSR(pairs.p256.privateKey, pairs.p256.publicKey);
    for (const n of [1, 2, 10, 50, csr.length - 1]) expectInvalid(() => parseAndVerifyCSR(csr.subarray(0, n)), /^csr is not valid DER: /);
    expectInvalid(() => parseAndVerifyCSR(Buffer.concat([csr, Buffer.from([0])])), /^csr is not valid DER: 1 trailing bytes/);
    expectInvalid(() => parseAndVerifyCSR(Buffer.from('not a csr at all')), /^csr is not valid DER: /);
    expectInvalid(() => parseAndVerifyCSR(Buffer.alloc(0)), /^csr is not valid DER: /);
    expectInvalid(() => parseAndVerifyCSR('MIIB' as unknown as Buffer), 'csr must be DER bytes');
    // a certificate is not a CSR
    const pem = execFileSync('openssl', ['req', '-x509', '-key', join(dir, 'tamper.key'), '-subj', '/CN=x', '-days', '1', '-outform', 'DER']);
    expectInvalid(() => parseAndVerifyCSR(pem), /^csr is not valid DER: /);
  });

  it.each([
    ['ed', /^csr key type ed25519 is not supported; use EC P-256, P-384 or RSA-2048\+$/],
    ['p521', /^csr key type ec secp521r1 is not supported; use EC P-256, P-384 or RSA-2048\+$/],
    ['rsa1024', /^csr key type rsa-1024 is not supported; use EC P-256, P-384 or RSA-2048\+/],
  ])('rejects a %s key with an actionable message', (name, msg) => {
    expectInvalid(() => parseAndVerifyCSR(opensslCSR(`bad-${name}`, pairs[name].privateKey)), msg);
  });

  it('rejects RSASSA-PSS with a clear message', () => {
    const csr = opensslCSR('pss', pairs.rsa.privateKey, ['-sigopt', 'rsa_padding_mode:pss']);
    expectInvalid(() => parseAndVerifyCSR(csr), 'csr signature algorithm RSASSA-PSS is not supported; sign the csr with ECDSA or RSA PKCS#1 v1.5');
  });

  /** Builds a CSR by hand so single fields can be wrong. */
  function handCSR(key: KeyObject, spki: Buffer, alg: Buffer, hash = 'sha256'): Buffer {
    const cri = der.sequence(der.integer(0), der.sequence(), spki, der.explicit(0));
    return der.sequence(cri, alg, der.bitString(sign(hash, cri, { key, dsaEncoding: 'der' })));
  }

  it('rejects a signature algorithm that does not fit the key', () => {
    const csr = handCSR(pairs.p256.privateKey, spkiOf(pairs.p256.publicKey), der.sequence(der.oid('1.2.840.113549.1.1.11'), der.NULL));
    expectInvalid(() => parseAndVerifyCSR(csr), 'csr signature algorithm sha256WithRSAEncryption does not match its ec key');
  });

  it('rejects unknown signature algorithms and bad parameters', () => {
    const md5 = handCSR(pairs.rsa.privateKey, spkiOf(pairs.rsa.publicKey), der.sequence(der.oid('1.2.840.113549.1.1.4'), der.NULL));
    expectInvalid(() => parseAndVerifyCSR(md5), /^csr signature algorithm 1\.2\.840\.113549\.1\.1\.4 is not supported/);
    const ecWithNull = handCSR(pairs.p256.privateKey, spkiOf(pairs.p256.publicKey), der.sequence(der.oid('1.2.840.10045.4.3.2'), der.NULL));
    expectInvalid(() => parseAndVerifyCSR(ecWithNull), 'csr signature algorithm ecdsa-with-SHA256 has unexpected parameters');
  });

  it('returns an uncompressed point for a CSR with a compressed EC key', () => {
    const full = spkiOf(pairs.p256.publicKey);
    const alg = der.readTLV(full, 2);
    const point = ECDH.convertKey(full.subarray(-65), 'prime256v1', undefined, undefined, 'compressed') as Buffer;
    const compressed = der.sequence(full.subarray(alg.offset, alg.end), der.bitString(point));
    const csr = handCSR(pairs.p256.privateKey, compressed, der.sequence(der.oid('1.2.840.10045.4.3.2')));
    expect(parseAndVerifyCSR(csr).publicKeySpki.equals(full)).toBe(true);
  });

  it('rejects a CSR with a version other than v1', () => {
    const spki = spkiOf(pairs.p256.publicKey);
    const cri = der.sequence(der.integer(1), der.sequence(), spki, der.explicit(0));
    const csr = der.sequence(cri, der.sequence(der.oid('1.2.840.10045.4.3.2')), der.bitString(sign('sha256', cri, pairs.p256.privateKey)));
    expectInvalid(() => parseAndVerifyCSR(csr), 'csr is not valid DER: version is not v1 (0)');
  });

  it('keeps working for a key re-imported from DER', async () => {
    const priv = createPrivateKey({ key: pairs.p384.privateKey.export({ type: 'pkcs8', format: 'der' }), format: 'der', type: 'pkcs8' });
    const csr = await createCSR(priv, pairs.p384.publicKey);
    expect(parseAndVerifyCSR(csr).publicKeySpki.equals(spkiOf(pairs.p384.publicKey))).toBe(true);
  });

  it('rejects a CSR whose EC point is not on the curve', () => {
    const spki = Buffer.from(spkiOf(pairs.p256.publicKey));
    spki[spki.length - 1] ^= 0x01; // y no longer fits x
    const csr = handCSR(pairs.p256.privateKey, spki, der.sequence(der.oid('1.2.840.10045.4.3.2')));
    expectInvalid(() => parseAndVerifyCSR(csr), /^csr public key cannot be parsed: /);
  });

  it('rejects ECDSA signatures that are not strict DER or are cut short', () => {
    const spki = spkiOf(pairs.p384.publicKey);
    const alg = der.sequence(der.oid('1.2.840.10045.4.3.3'));
    const cri = der.sequence(der.integer(0), der.sequence(), spki, der.explicit(0));
    const good = sign('sha384', cri, { key: pairs.p384.privateKey, dsaEncoding: 'der' });
    const withSig = (s: Buffer) => der.sequence(cri, alg, der.bitString(s));
    expect(() => parseAndVerifyCSR(withSig(good))).not.toThrow();
    // The same signature with a long-form length (BER, not DER), with trailing bytes, and truncated.
    const ber = Buffer.concat([Buffer.from([0x30, 0x81, good[1]!]), good.subarray(2)]);
    for (const s of [ber, Buffer.concat([good, Buffer.from([0, 0])]), good.subarray(0, good.length - 1), Buffer.alloc(0)]) {
      expectInvalid(() => parseAndVerifyCSR(withSig(s)), /^csr signature does not verify/);
    }
  });

  it('rejects an EC CSR signed by another key or with another hash than it names', () => {
    const spki = spkiOf(pairs.p256.publicKey);
    const cri = der.sequence(der.integer(0), der.sequence(), spki, der.explicit(0));
    const other = sign('sha256', cri, { key: pairs.p384.privateKey, dsaEncoding: 'der' });
    expectInvalid(() => parseAndVerifyCSR(der.sequence(cri, der.sequence(der.oid('1.2.840.10045.4.3.2')), der.bitString(other))), /^csr signature does not verify/);
    const sha256Sig = sign('sha256', cri, { key: pairs.p256.privateKey, dsaEncoding: 'der' });
    expectInvalid(() => parseAndVerifyCSR(der.sequence(cri, der.sequence(der.oid('1.2.840.10045.4.3.4')), der.bitString(sha256Sig))), /^csr signature does not verify/);
  });
});
