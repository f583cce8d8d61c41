import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { generateKeyPair, webcrypto, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { TesseraError } from '../errors';
import {
  bundleToPem,
  bundlesEqual,
  concatDer,
  decodeBundle,
  decodeBundleMap,
  encodeBundle,
  encodeBundleMap,
  jwtBundleJwks,
  decodeJwtBundleJwks,
  splitConcatenatedDer,
  x509AuthoritiesFromPem,
  MAX_BUNDLE_KEYS,
  type SpiffeBundle,
} from './bundle';

// Node's WebCrypto; its type differs nominally from the DOM Crypto the library declares.
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type KeyKind = 'P-256' | 'P-384' | 'RSA';
const ALGS: Record<KeyKind, webcrypto.RsaHashedKeyGenParams | (webcrypto.EcKeyGenParams & { hash: string })> = {
  'P-256': { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' },
  'P-384': { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' },
  RSA: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
};

/** A real self-signed CA certificate (DER) with a key of the given kind. */
async function makeCA(kind: KeyKind, cn = 'Tessera Test CA'): Promise<Buffer> {
  const keys = (await webcrypto.subtle.generateKey(ALGS[kind], false, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: `CN=${cn}, O=SPIFFE`,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    keys,
    signingAlgorithm: ALGS[kind],
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
  });
  return Buffer.from(cert.rawData);
}

/** A JWT public key, made asynchronously (never generateKeyPairSync: on Node 20 a JWK export of such a key can hang the process). */
async function makeJWTKey(kind: KeyKind): Promise<{ publicKey: KeyObject; privateKey: KeyObject }> {
  const gen = promisify(generateKeyPair);
  return kind === 'RSA' ? gen('rsa', { modulusLength: 2048 }) : gen('ec', { namedCurve: kind });
}

function rejectMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(TesseraError);
    expect((e as TesseraError).code).toBe('INVALID_ARGUMENT');
    return (e as Error).message;
  }
  throw new Error('expected a rejection');
}

let cas: Record<KeyKind, Buffer>;
let jwtKeys: Record<KeyKind, KeyObject>;
let privateJWTKey: KeyObject;
let bundle: SpiffeBundle; // P-256 CA + P-384 CA, two JWT keys
let bundleJson: Record<string, unknown>;

beforeAll(async () => {
  const [p256, p384, rsa, j256, j384, jrsa] = await Promise.all([
    makeCA('P-256'), makeCA('P-384'), makeCA('RSA'), makeJWTKey('P-256'), makeJWTKey('P-384'), makeJWTKey('RSA'),
  ]);
  cas = { 'P-256': p256, 'P-384': p384, RSA: rsa };
  jwtKeys = { 'P-256': j256.publicKey, 'P-384': j384.publicKey, RSA: jrsa.publicKey };
  privateJWTKey = j256.privateKey;
  bundle = {
    trustDomain: 'example.org',
    x509Authorities: [p256, p384],
    jwtAuthorities: [{ kid: 'k1', publicKey: j256.publicKey }, { kid: 'k2', publicKey: jrsa.publicKey }],
    sequence: 7,
    refreshHint: 300,
  };
  bundleJson = JSON.parse(encodeBundle(bundle));
});

/** The encoded test bundle with its key list replaced. */
const withKeys = (keys: unknown[]) => JSON.stringify({ ...bundleJson, keys });
const keyAt = (i: number) => (bundleJson.keys as Record<string, unknown>[])[i];

describe('encodeBundle / decodeBundle', () => {
  it.each<KeyKind>(['P-256', 'P-384', 'RSA'])('round-trips a %s CA certificate and JWT key', (kind) => {
    const b: SpiffeBundle = { trustDomain: 'td', x509Authorities: [cas[kind]], jwtAuthorities: [{ kid: 'a', publicKey: jwtKeys[kind] }], sequence: 1, refreshHint: 60 };
    const back = decodeBundle('td', encodeBundle(b));
    expect(bundlesEqual(back, b)).toBe(true);
    expect(back.x509Authorities[0].equals(cas[kind])).toBe(true);
    expect(back.jwtAuthorities[0].publicKey.equals(jwtKeys[kind])).toBe(true);
  });

  it('writes the SPIFFE bundle shape', () => {
    expect(bundleJson.spiffe_sequence).toBe(7);
    expect(bundleJson.spiffe_refresh_hint).toBe(300);
    const [x1, x2, j1, j2] = bundleJson.keys as Record<string, unknown>[];
    expect(x1).toEqual({ kty: 'EC', crv: 'P-256', x: expect.any(String), y: expect.any(String), use: 'x509-svid', x5c: [cas['P-256'].toString('base64')] });
    expect(x2).toMatchObject({ kty: 'EC', crv: 'P-384', use: 'x509-svid' });
    expect(j1).toEqual({ kty: 'EC', crv: 'P-256', x: expect.any(String), y: expect.any(String), use: 'jwt-svid', kid: 'k1' });
    expect(j2).toEqual({ kty: 'RSA', n: expect.any(String), e: 'AQAB', use: 'jwt-svid', kid: 'k2' });
    expect(Object.keys(x1)[0]).toBe('kty');
  });

  it('omits sequence and refresh hint when unset, and decodes an empty key list', () => {
    const text = encodeBundle({ trustDomain: 'td', x509Authorities: [], jwtAuthorities: [] });
    expect(text).toBe('{"keys":[]}');
    expect(decodeBundle('spiffe://td', text)).toEqual({ trustDomain: 'td', x509Authorities: [], jwtAuthorities: [] });
  });

  it('accepts text, bytes or a parsed object', () => {
    for (const input of [withKeys(bundleJson.keys as unknown[]), Buffer.from(JSON.stringify(bundleJson)), bundleJson]) {
      expect(bundlesEqual(decodeBundle('example.org', input), bundle)).toBe(true);
    }
  });

  it.each<[string, Record<string, unknown>]>([
    ['an unknown kty', { kty: 'oct', k: 'AAAA', use: 'jwt-svid', kid: 'x' }],
    ['a kty of the wrong case', { kty: 'ec', crv: 'P-256', use: 'jwt-svid', kid: 'x' }],
    ['no kty', { use: 'jwt-svid', kid: 'x' }],
    ['no use', { kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA' }],
    ['an unknown use', { kty: 'EC', use: 'sig', kid: 'x' }],
    ['a use of the wrong case', { kty: 'EC', use: 'X509-SVID', x5c: ['!!'] }],
    ['an x509-svid entry without x5c', { kty: 'EC', use: 'x509-svid' }],
    ['an x509-svid entry with an empty x5c', { kty: 'EC', use: 'x509-svid', x5c: [] }],
    ['a jwt-svid entry without kid', { kty: 'EC', crv: 'P-256', use: 'jwt-svid' }],
    ['a jwt-svid entry with an empty kid', { kty: 'EC', crv: 'P-256', use: 'jwt-svid', kid: '' }],
  ])('skips %s and keeps the rest', (_, extra) => {
    const b = decodeBundle('example.org', withKeys([extra, ...(bundleJson.keys as unknown[])]));
    expect(bundlesEqual(b, bundle)).toBe(true);
  });

  it('uses only the first x5c element and ignores a kid on an x509 entry', () => {
    const entry = { ...keyAt(0), kid: 'not-allowed-but-harmless', x5c: [cas['P-256'].toString('base64'), cas.RSA.toString('base64')] };
    const b = decodeBundle('td', withKeys([entry]));
    expect(b.x509Authorities).toEqual([cas['P-256']]);
    expect(b.jwtAuthorities).toEqual([]);
  });

  it('accepts an x509 entry that carries only x5c', () => {
    const b = decodeBundle('td', withKeys([{ kty: 'EC', use: 'x509-svid', x5c: keyAt(0).x5c }]));
    expect(b.x509Authorities).toEqual([cas['P-256']]);
  });

  it.each<[string, () => string | object, string]>([
    ['malformed json', () => '{"keys": [}', 'is not valid json'],
    ['an array document', () => '[]', 'is not a json object'],
    ['no keys', () => '{"spiffe_sequence": 1}', 'has no "keys" array'],
    ['keys that are not an array', () => '{"keys": {}}', 'has no "keys" array'],
    ['a key that is not an object', () => withKeys([7]), 'key 0 of bundle for "example.org" is not a json object'],
    ['a negative sequence', () => ({ ...bundleJson, spiffe_sequence: -1 }), 'spiffe_sequence -1; it must be a non-negative integer'],
    ['a fractional sequence', () => ({ ...bundleJson, spiffe_sequence: 1.5 }), 'spiffe_sequence 1.5'],
    ['a string sequence', () => ({ ...bundleJson, spiffe_sequence: '7' }), 'spiffe_sequence "7"'],
    ['a null sequence', () => ({ ...bundleJson, spiffe_sequence: null }), 'spiffe_sequence null'],
    ['a sequence beyond 2^53-1', () => '{"spiffe_sequence": 18446744073709551615, "keys": []}', 'above 2^53-1'],
    ['a negative refresh hint', () => ({ ...bundleJson, spiffe_refresh_hint: -5 }), 'spiffe_refresh_hint -5'],
    ['base64url in x5c', () => withKeys([{ ...keyAt(0), x5c: ['MII_-A=='] }]), 'not standard base64'],
    ['x5c that is not a certificate', () => withKeys([{ ...keyAt(0), x5c: ['MAMCAQU='] }]), 'x5c of key 0 of bundle for "example.org" is not a der x.509 certificate'],
    ['key members that do not match x5c', () => withKeys([{ ...keyAt(0), x5c: keyAt(1).x5c }]), 'do not match its x5c certificate'],
    ['broken jwt key members', () => withKeys([{ ...keyAt(2), x: 'AAAA' }]), 'do not form a valid public key'],
    ['private key material', () => withKeys([{ ...keyAt(2), d: 'AAAA' }]), 'holds private key material ("d")'],
    ['a repeated kid', () => withKeys([keyAt(2), { ...keyAt(3), kid: 'k1' }]), 'repeats kid "k1"'],
    ['a repeated member', () => `{"keys": [], "keys": ${JSON.stringify(bundleJson.keys)}}`, 'duplicate json member "keys"'],
    ['a repeated member spelled with an escape', () => '{"keys": [{"kty": "EC", "\\u006bty": "RSA"}]}', 'duplicate json member "kty"'],
  ])('rejects %s', (_, input, words) => {
    expect(rejectMessage(() => decodeBundle('example.org', input()))).toContain(words);
  });

  it('rejects an invalid trust domain argument', () => {
    expect(rejectMessage(() => decodeBundle('Example.org', '{"keys":[]}'))).toContain('uppercase');
  });

  it('tells duplicate members apart from look-alikes in strings and nested objects', () => {
    // The scanner must not see names inside string values or confuse sibling objects.
    const arb = fc.dictionary(fc.string().filter((k) => !k.startsWith('spiffe_')), fc.jsonValue({ maxDepth: 3 }));
    fc.assert(
      fc.property(arb, (extra) => {
        const text = JSON.stringify({ ...extra, keys: [], spiffe_sequence: 3 });
        expect(decodeBundle('td', text).sequence).toBe(3);
      }),
    );
  });

  it.each<[string, (b: SpiffeBundle) => SpiffeBundle, string]>([
    ['a private jwt key', (b) => ({ ...b, jwtAuthorities: [{ kid: 'p', publicKey: privateJWTKey }] }), 'jwt authority "p" is not a public key'],
    ['an empty kid', (b) => ({ ...b, jwtAuthorities: [{ kid: '', publicKey: jwtKeys.RSA }] }), 'empty kid'],
    ['a repeated kid', (b) => ({ ...b, jwtAuthorities: [...b.jwtAuthorities, { kid: 'k1', publicKey: jwtKeys.RSA }] }), 'two jwt authorities with kid "k1"'],
    ['a non-certificate', (b) => ({ ...b, x509Authorities: [Buffer.from('3003020105', 'hex')] }), 'x509 authority 0 of bundle for "example.org" is not a der x.509 certificate'],
    ['a negative sequence', (b) => ({ ...b, sequence: -1 }), 'spiffe_sequence -1'],
    ['a fractional refresh hint', (b) => ({ ...b, refreshHint: 0.5 }), 'spiffe_refresh_hint 0.5'],
  ])('encodeBundle rejects %s', (_, change, words) => {
    expect(rejectMessage(() => encodeBundle(change(bundle)))).toContain(words);
  });
});

describe('jwtBundleJwks', () => {
  it('holds only the JWT keys, each with kid and no use, and reads back with decodeJwtBundleJwks', () => {
    const jwks = JSON.parse(jwtBundleJwks(bundle));
    expect(Object.keys(jwks)).toEqual(['keys']);
    expect(jwks.keys.map((k: { kid: string }) => k.kid)).toEqual(['k1', 'k2']);
    for (const k of jwks.keys) expect(k.x5c).toBeUndefined();
    for (const k of jwks.keys) expect(k.use).toBeUndefined();
    const back = decodeJwtBundleJwks('example.org', jwtBundleJwks(bundle));
    expect(bundlesEqual(back, { ...bundle, x509Authorities: [], sequence: undefined, refreshHint: undefined })).toBe(true);
  });
});

describe('bundle map', () => {
  let other: SpiffeBundle;
  beforeAll(() => {
    other = { trustDomain: 'a.example', x509Authorities: [cas.RSA], jwtAuthorities: [], sequence: 2, refreshHint: 10 };
  });

  it('round-trips, sorted by trust domain, without refresh hints', () => {
    const text = encodeBundleMap([bundle, other]);
    const doc = JSON.parse(text);
    expect(Object.keys(doc.trust_domains)).toEqual(['a.example', 'example.org']);
    expect(doc.trust_domains['example.org'].spiffe_refresh_hint).toBeUndefined();
    expect(doc.trust_domains['example.org'].spiffe_sequence).toBe(7);
    const back = decodeBundleMap(text);
    expect(back.map((b) => b.trustDomain)).toEqual(['a.example', 'example.org']);
    expect(bundlesEqual(back[0], { ...other, refreshHint: undefined })).toBe(true);
    expect(bundlesEqual(back[1], { ...bundle, refreshHint: undefined })).toBe(true);
  });

  it('ignores refresh hints inside a map and accepts spiffe:// names', () => {
    const text = JSON.stringify({ trust_domains: { 'spiffe://td': { spiffe_refresh_hint: 5, keys: [] } } });
    expect(decodeBundleMap(text)).toEqual([{ trustDomain: 'td', x509Authorities: [], jwtAuthorities: [] }]);
  });

  it('handles a trust domain named __proto__ as an ordinary name', () => {
    const text = encodeBundleMap([{ trustDomain: '__proto__', x509Authorities: [], jwtAuthorities: [] }]);
    expect(text).toBe('{"trust_domains":{"__proto__":{"keys":[]}}}');
    expect(decodeBundleMap(text).map((b) => b.trustDomain)).toEqual(['__proto__']);
  });

  it.each<[string, string, string]>([
    ['a repeated trust domain', '{"trust_domains": {"td": {"keys": []}, "td": {"keys": []}}}', 'duplicate json member "td"'],
    ['one trust domain under two names', '{"trust_domains": {"td": {"keys": []}, "spiffe://td": {"keys": []}}}', 'names trust domain "td" twice'],
    ['a missing trust_domains', '{"keys": []}', 'has no "trust_domains" object'],
    ['an array trust_domains', '{"trust_domains": []}', 'has no "trust_domains" object'],
    ['an invalid trust domain', '{"trust_domains": {"TD": {"keys": []}}}', 'trust domain "TD" contains uppercase'],
    ['a bundle without keys', '{"trust_domains": {"td": {}}}', 'bundle for "td" has no "keys" array'],
    ['malformed json', '{"trust_domains": ', 'bundle map is not valid json'],
  ])('rejects %s', (_, text, words) => {
    expect(rejectMessage(() => decodeBundleMap(text))).toContain(words);
  });

  it('refuses to encode two bundles for one trust domain', () => {
    const twin = { ...bundle, trustDomain: 'spiffe://example.org' };
    expect(rejectMessage(() => encodeBundleMap([bundle, twin]))).toContain('two bundles for trust domain "example.org"');
  });
});

describe('bundlesEqual', () => {
  it('ignores the order of authorities', () => {
    const shuffled = { ...bundle, x509Authorities: [...bundle.x509Authorities].reverse(), jwtAuthorities: [...bundle.jwtAuthorities].reverse() };
    expect(bundlesEqual(bundle, shuffled)).toBe(true);
    expect(bundlesEqual(bundle, decodeBundle('example.org', encodeBundle(shuffled)))).toBe(true);
  });

  it.each<[string, (b: SpiffeBundle) => SpiffeBundle]>([
    ['trust domain', (b) => ({ ...b, trustDomain: 'example.com' })],
    ['sequence', (b) => ({ ...b, sequence: 8 })],
    ['missing sequence', (b) => ({ ...b, sequence: undefined })],
    ['refresh hint', (b) => ({ ...b, refreshHint: 301 })],
    ['an x509 authority', (b) => ({ ...b, x509Authorities: [b.x509Authorities[0], cas.RSA] })],
    ['a missing x509 authority', (b) => ({ ...b, x509Authorities: [b.x509Authorities[0]] })],
    ['a jwt key', (b) => ({ ...b, jwtAuthorities: [b.jwtAuthorities[0], { kid: 'k2', publicKey: jwtKeys['P-384'] }] })],
    ['a kid', (b) => ({ ...b, jwtAuthorities: [b.jwtAuthorities[0], { ...b.jwtAuthorities[1], kid: 'k3' }] })],
    ['a repeated jwt authority', (b) => ({ ...b, jwtAuthorities: [b.jwtAuthorities[0], b.jwtAuthorities[0]] })],
  ])('sees a different %s', (_, change) => {
    expect(bundlesEqual(bundle, change(bundle))).toBe(false);
    expect(bundlesEqual(change(bundle), bundle)).toBe(false);
  });
});

describe('PEM', () => {
  it('round-trips the x509 authorities, 64-column base64 in CERTIFICATE blocks', () => {
    const pem = bundleToPem(bundle);
    expect(pem.match(/-----BEGIN CERTIFICATE-----/g)).toHaveLength(2);
    expect(pem.split('\n').every((l) => l.length <= 64)).toBe(true);
    expect(x509AuthoritiesFromPem(pem)).toEqual(bundle.x509Authorities);
    expect(bundleToPem({ x509Authorities: [] })).toBe('');
    expect(x509AuthoritiesFromPem('')).toEqual([]);
  });

  it('ignores text between blocks and reads CRLF files', () => {
    const pem = `subject=CN = Tessera Test CA\r\n${bundleToPem({ x509Authorities: [cas.RSA] }).replace(/\n/g, '\r\n')}# trailing note\n`;
    expect(x509AuthoritiesFromPem(pem)).toEqual([cas.RSA]);
  });

  it.each<[string, () => string, string]>([
    ['a private key block', () => '-----BEGIN PRIVATE KEY-----\nMAMCAQU=\n-----END PRIVATE KEY-----\n', 'pem block 1 is a PRIVATE KEY; only CERTIFICATE blocks are allowed'],
    ['an unterminated block', () => `${bundleToPem(bundle)}-----BEGIN CERTIFICATE-----\nMIIB`, '1 block(s) without a matching END line'],
    ['mismatched BEGIN and END', () => '-----BEGIN CERTIFICATE-----\nMAMCAQU=\n-----END X509 CRL-----\n', 'without a matching END line'],
    ['bad base64', () => '-----BEGIN CERTIFICATE-----\nMA*CAQU=\n-----END CERTIFICATE-----\n', 'pem block 1 is not valid base64'],
    ['a block that is not a certificate', () => '-----BEGIN CERTIFICATE-----\nMAMCAQU=\n-----END CERTIFICATE-----\n', 'pem block 1 is not an x.509 certificate'],
  ])('rejects %s', (_, pem, words) => {
    expect(rejectMessage(() => x509AuthoritiesFromPem(pem()))).toContain(words);
  });
});

describe('concatenated DER', () => {
  it('splits what concatDer joined, for short and long lengths', () => {
    const tiny = Buffer.from('3003020105', 'hex'); // short-form length
    const parts = [cas['P-256'], tiny, cas.RSA, cas['P-384']]; // certificates use 2-byte long form
    const split = splitConcatenatedDer(concatDer(parts));
    expect(split).toEqual(parts);
    expect(splitConcatenatedDer(Buffer.alloc(0))).toEqual([]);
  });

  it('returns copies, not views of the input', () => {
    const joined = concatDer([cas['P-256']]);
    const [part] = splitConcatenatedDer(joined);
    joined[10] ^= 0xff;
    expect(part.equals(cas['P-256'])).toBe(true);
  });

  it('names the offset of trailing garbage', () => {
    const n = cas['P-256'].length;
    const msg = rejectMessage(() => splitConcatenatedDer(Buffer.concat([cas['P-256'], Buffer.from([0x00])])));
    expect(msg).toBe(`der data has byte 0x00 at offset ${n} where a SEQUENCE (0x30) must start`);
  });

  it.each<[string, () => Buffer, string]>([
    ['trailing garbage', () => Buffer.concat([cas['P-256'], Buffer.from([0x00])]), 'where a SEQUENCE (0x30) must start'],
    ['a truncated certificate', () => concatDer([cas['P-256'], cas.RSA.subarray(0, 100)]), 'is truncated: needs'],
    ['a lone tag byte', () => Buffer.from([0x30]), 'no length byte'],
    ['missing length bytes', () => Buffer.from([0x30, 0x82, 0x01]), 'length bytes missing'],
    ['indefinite length', () => Buffer.from('308002010500 00'.replace(/ /g, ''), 'hex'), 'unsupported length encoding'],
    ['a five-byte length', () => Buffer.from('30850000000001', 'hex'), 'unsupported length encoding'],
    ['PEM text', () => Buffer.from(bundleToPem(bundle)), 'byte 0x2d at offset 0'],
  ])('rejects %s', (_, input, words) => {
    expect(rejectMessage(() => splitConcatenatedDer(input()))).toContain(words);
  });
});

describe('size limits', () => {
  it(`refuses a bundle of more than ${MAX_BUNDLE_KEYS} keys with a clear error, before importing any`, () => {
    const keys = Array.from({ length: MAX_BUNDLE_KEYS + 1 }, (_, i) => ({ kty: 'EC', crv: 'P-256', x: 'bad', y: 'bad', use: 'jwt-svid', kid: `k${i}` }));
    expect(() => decodeBundle('big.example', JSON.stringify({ keys }))).toThrow(`has ${MAX_BUNDLE_KEYS + 1} keys; a bundle may hold at most ${MAX_BUNDLE_KEYS}`);
  });

  it(`decodes and compares a bundle of ${MAX_BUNDLE_KEYS} jwt keys (kid lookups by map, not pairwise)`, () => {
    const jwk = JSON.parse(encodeBundle(bundle)).keys.find((k: { use: string }) => k.use === 'jwt-svid');
    const keys = Array.from({ length: MAX_BUNDLE_KEYS }, (_, i) => ({ ...jwk, kid: `k${i}` }));
    const a = decodeBundle('big.example', JSON.stringify({ keys }));
    const b = decodeBundle('big.example', JSON.stringify({ keys: [...keys].reverse() }));
    expect(a.jwtAuthorities).toHaveLength(MAX_BUNDLE_KEYS);
    expect(bundlesEqual(a, b)).toBe(true);
    expect(bundlesEqual(a, { ...b, jwtAuthorities: b.jwtAuthorities.slice(1) })).toBe(false);
    expect(() => decodeBundle('big.example', JSON.stringify({ keys: [...keys, { ...jwk, kid: 'k7' }].slice(1) }))).toThrow(/repeats kid "k7"/);
  });
});
