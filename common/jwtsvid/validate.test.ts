import * as crypto from 'node:crypto';
import { SignJWT } from 'jose';
import { JWTSVIDSigner } from './sign';
import { CURVE_ORDER, isHighSP1363 } from '../x509svid/ecdsa-signature';
import { DEFAULT_LEEWAY_SECONDS, JWTSVIDError, validateJWTSVID, type JWTSVIDRejectReason, type ValidateJWTSVIDOptions } from './validate';

const NOW = 1_800_000_000;
const SUB = 'spiffe://example.org/web';
const AUD = 'spiffe://example.org/db';

type Pair = { publicKey: crypto.KeyObject; privateKey: crypto.KeyObject };
/** Async generation only: sync-generated keys can deadlock jose on Node 20 (a JWK export of such a key can hang the process). */
const gen = (type: 'ec' | 'rsa' | 'ed25519', opts: object): Promise<Pair> =>
  new Promise((resolve, reject) =>
    crypto.generateKeyPair(type as 'ec', opts as crypto.ECKeyPairKeyObjectOptions, (err, publicKey, privateKey) =>
      err ? reject(err) : resolve({ publicKey, privateKey }),
    ),
  );

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** A hand-made compact JWS, so tests can put anything in the header. */
function jws(header: object, payload: object, sign: (input: Buffer) => Buffer): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${sign(Buffer.from(input)).toString('base64url')}`;
}

let keys: Record<string, Pair>;
let opts: ValidateJWTSVIDOptions;
const es256 = (k: Pair) => (d: Buffer) => crypto.sign('sha256', d, { key: k.privateKey, dsaEncoding: 'ieee-p1363' });
const claims = (extra: object = {}) => ({ sub: SUB, aud: [AUD], exp: NOW + 300, iat: NOW, ...extra });
/** A correctly ES256-signed token with key k1 of example.org and the given header/claims. */
const signed = (header: object = {}, payload: object = claims()) => jws({ alg: 'ES256', kid: 'k1', typ: 'JWT', ...header }, payload, es256(keys.k1!));

beforeAll(async () => {
  keys = {
    k1: await gen('ec', { namedCurve: 'P-256' }),
    e384: await gen('ec', { namedCurve: 'P-384' }),
    e521: await gen('ec', { namedCurve: 'P-521' }),
    r1: await gen('rsa', { modulusLength: 2048 }),
    o1: await gen('ec', { namedCurve: 'P-256' }),
    ed: await gen('ed25519', {}),
  };
  const bundles: Record<string, string[]> = { 'example.org': ['k1', 'e384', 'e521', 'r1'], 'other.org': ['o1'] };
  opts = {
    audience: AUD,
    now: NOW,
    keysFor: (td) => bundles[td]?.map((kid) => ({ kid, publicKey: keys[kid]!.publicKey })),
  };
});

describe('validateJWTSVID accepts', () => {
  it.each([
    ['ES256', 'k1', 'sha256'],
    ['ES384', 'e384', 'sha384'],
    ['RS256', 'r1', 'sha256'],
  ] as const)('a %s token from the fast signer', async (alg, kid, hash) => {
    const k = keys[kid]!;
    const sign = (d: Buffer) => crypto.sign(hash, d, { key: k.privateKey, dsaEncoding: 'ieee-p1363' });
    const signer = new JWTSVIDSigner({ kid, alg, sign, notAfter: NOW + 3600 });
    const { token, expiresAt } = signer.mint({ sub: SUB, aud: ['x', AUD], ttlSeconds: 300, iss: 'https://td', now: NOW });
    const r = await validateJWTSVID(token, opts);
    expect(r).toEqual({ spiffeId: SUB, expiresAt, claims: { sub: SUB, aud: ['x', AUD], exp: NOW + 300, iat: NOW, iss: 'https://td' } });
  });

  it('ES512 and PS256 tokens made by jose', async () => {
    const es512 = await new SignJWT(claims()).setProtectedHeader({ alg: 'ES512', kid: 'e521' }).sign(keys.e521!.privateKey);
    const ps256 = await new SignJWT(claims()).setProtectedHeader({ alg: 'PS256', kid: 'r1', typ: 'JWT' }).sign(keys.r1!.privateKey);
    await expect(validateJWTSVID(es512, opts)).resolves.toMatchObject({ spiffeId: SUB });
    await expect(validateJWTSVID(ps256, opts)).resolves.toMatchObject({ spiffeId: SUB });
  });

  it('typ JOSE or no typ, a string aud, and exp within the leeway', async () => {
    await expect(validateJWTSVID(signed({ typ: 'JOSE' }), opts)).resolves.toBeDefined();
    const noTyp = jws({ alg: 'ES256', kid: 'k1' }, claims({ aud: AUD }), es256(keys.k1!));
    await expect(validateJWTSVID(noTyp, opts)).resolves.toBeDefined();
    const late = signed({}, claims({ exp: NOW - DEFAULT_LEEWAY_SECONDS + 1 }));
    await expect(validateJWTSVID(late, opts)).resolves.toBeDefined();
  });

  it('uses the system clock by default', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = signed({}, claims({ exp: now + 60, iat: now }));
    await expect(validateJWTSVID(token, { ...opts, now: undefined })).resolves.toBeDefined();
  });
});

describe('validateJWTSVID rejects', () => {
  const hs256 = (d: Buffer) =>
    // the classic confusion attack: the verifier's public key used as the HMAC secret
    crypto.createHmac('sha256', keys.k1!.publicKey.export({ type: 'spki', format: 'pem' })).update(d).digest();
  const flip = (s: string) => (s[0] === 'A' ? 'B' : 'A') + s.slice(1);

  const cases: Array<[string, () => string, JWTSVIDRejectReason, Partial<ValidateJWTSVIDOptions>?]> = [
    ['alg none', () => jws({ alg: 'none', kid: 'k1', typ: 'JWT' }, claims(), () => Buffer.alloc(0)), 'alg-not-allowed'],
    ['HS256 keyed with the public key', () => jws({ alg: 'HS256', kid: 'k1', typ: 'JWT' }, claims(), hs256), 'alg-not-allowed'],
    ['EdDSA', () => jws({ alg: 'EdDSA', kid: 'k1', typ: 'JWT' }, claims(), (d) => crypto.sign(null, d, keys.ed!.privateKey)), 'alg-not-allowed'],
    ['no alg', () => jws({ kid: 'k1', typ: 'JWT' }, claims(), es256(keys.k1!)), 'alg-not-allowed'],
    ['alg none even with other bad headers', () => jws({ alg: 'none', jku: 'https://evil' }, {}, () => Buffer.alloc(0)), 'alg-not-allowed'],
    ['a jku header', () => signed({ jku: 'https://evil.example/jwks' }), 'header-not-allowed'],
    ['an x5u header', () => signed({ x5u: 'https://evil.example/cert' }), 'header-not-allowed'],
    ['a crit header', () => signed({ crit: ['exp'] }), 'header-not-allowed'],
    ['an embedded jwk header', () => signed({ jwk: keys.k1!.publicKey.export({ format: 'jwk' }) }), 'header-not-allowed'],
    ['typ at+jwt', () => signed({ typ: 'at+jwt' }), 'typ-not-allowed'],
    ['typ jwt in lower case', () => signed({ typ: 'jwt' }), 'typ-not-allowed'],
    ['a missing kid', () => jws({ alg: 'ES256', typ: 'JWT' }, claims(), es256(keys.k1!)), 'kid-missing'],
    ['an empty kid', () => signed({ kid: '' }), 'kid-missing'],
    ['an unknown kid', () => signed({ kid: 'nope' }), 'kid-unknown'],
    // other.org's key signs a token claiming an example.org identity: only example.org keys count
    ['a kid from another trust domain', () => jws({ alg: 'ES256', kid: 'o1', typ: 'JWT' }, claims(), es256(keys.o1!)), 'kid-unknown'],
    ['a trust domain with no bundle', () => signed({}, claims({ sub: 'spiffe://unknown.org/web' })), 'no-keys-for-trust-domain'],
    ['a tampered payload', () => { const [h, , s] = signed().split('.'); return `${h}.${b64(claims({ sub: 'spiffe://example.org/admin' }))}.${s}`; }, 'signature-invalid'],
    ['a tampered signature', () => { const [h, p, s] = signed().split('.'); return `${h}.${p}.${flip(s!)}`; }, 'signature-invalid'],
    ['an empty signature', () => signed().replace(/[^.]+$/, ''), 'signature-invalid'],
    ['a DER ECDSA signature', () => jws({ alg: 'ES256', kid: 'k1', typ: 'JWT' }, claims(), (d) => crypto.sign('sha256', d, keys.k1!.privateKey)), 'signature-invalid'],
    ['an RSA kid with alg ES256', () => jws({ alg: 'ES256', kid: 'r1', typ: 'JWT' }, claims(), es256(keys.k1!)), 'signature-invalid'],
    ['the wrong audience', () => signed({}, claims({ aud: ['spiffe://example.org/other'] })), 'aud-mismatch'],
    ['a missing aud', () => signed({}, claims({ aud: undefined })), 'aud-invalid'],
    ['an empty aud array', () => signed({}, claims({ aud: [] })), 'aud-invalid'],
    ['a non-string aud', () => signed({}, claims({ aud: [AUD, 7] })), 'aud-invalid'],
    ['a missing exp', () => signed({}, claims({ exp: undefined })), 'exp-invalid'],
    ['a string exp', () => signed({}, claims({ exp: String(NOW + 300) })), 'exp-invalid'],
    ['an exp beyond the leeway', () => signed({}, claims({ exp: NOW - DEFAULT_LEEWAY_SECONDS })), 'expired'],
    ['an expired token with leeway 0', () => signed({}, claims({ exp: NOW })), 'expired', { leewaySeconds: 0 }],
    ['an nbf beyond the leeway', () => signed({}, claims({ nbf: NOW + DEFAULT_LEEWAY_SECONDS + 1 })), 'not-yet-valid'],
    ['an iat beyond the leeway', () => signed({}, claims({ iat: NOW + DEFAULT_LEEWAY_SECONDS + 1 })), 'not-yet-valid'],
    ['a sub that is not a spiffe id', () => signed({}, claims({ sub: 'https://example.org/web' })), 'sub-invalid'],
    ['a sub with an uppercase trust domain', () => signed({}, claims({ sub: 'spiffe://Example.org/web' })), 'sub-invalid'],
    ['a missing sub', () => signed({}, claims({ sub: undefined })), 'sub-invalid'],
    ['a sub with no path', () => signed({}, claims({ sub: 'spiffe://example.org' })), 'sub-no-path'],
    ['the JSON serialization', () => { const [h, p, s] = signed().split('.'); return JSON.stringify({ protected: h, payload: p, signature: s }); }, 'not-compact'],
    ['2 parts', () => signed().split('.').slice(0, 2).join('.'), 'not-compact'],
    ['4 parts', () => `${signed()}.AAAA`, 'not-compact'],
    ['a JWE-shaped token (5 parts)', () => 'a.b.c.d.e', 'not-compact'],
    ['a header that is not base64url', () => `${signed()}`.replace(/^[^.]+/, 'eyJ+/='), 'malformed'],
    ['a header that is not json', () => `${b64('not json')}.${b64(claims())}.AAAA`, 'malformed'],
    ['a payload that is a json array', () => signed({}, [SUB] as unknown as object), 'malformed'],
    ['an empty token', () => '', 'malformed'],
    ['a huge token', () => 'A'.repeat(20_000), 'malformed'],
  ];

  // Every row gets a patch: jest-each hands a `done` callback to a test whose arity exceeds its row length.
  it.each(cases.map(([n, make, reason, patch]) => [n, make, reason, patch ?? {}] as const))('%s', async (_name, make, reason, patch) => {
    const token = make();
    const err = await validateJWTSVID(token, { ...opts, ...patch }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JWTSVIDError);
    expect(err).toMatchObject({ reason, code: 'INVALID_ARGUMENT' });
    const message = (err as Error).message;
    expect(message).toMatch(/^invalid jwt-svid: /);
    // the token, or any sizeable piece of it, never appears in the message
    for (const piece of token.split('.').filter((p) => p.length >= 8)) expect(message).not.toContain(piece);
  });

  it('rejects bad options as a caller error', async () => {
    await expect(validateJWTSVID(signed(), { ...opts, audience: '' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(validateJWTSVID(signed(), { ...opts, leewaySeconds: -1 })).rejects.toThrow(/leeway/);
  });
});

describe('low-S signatures (ECDSA malleability)', () => {
  const flipS = (token: string) => {
    const [h, p, s] = token.split('.');
    const sig = Buffer.from(s!, 'base64url');
    const n = CURVE_ORDER['P-256']!;
    const hi = n - BigInt('0x' + sig.subarray(32).toString('hex'));
    return `${h}.${p}.${Buffer.concat([sig.subarray(0, 32), Buffer.from(hi.toString(16).padStart(64, '0'), 'hex')]).toString('base64url')}`;
  };

  it('the issuer signs only low-S; the high-S twin of its token is refused for its own trust domain, accepted elsewhere', async () => {
    const signer = new JWTSVIDSigner({ kid: 'k1', alg: 'ES256', sign: es256(keys.k1!), notAfter: NOW + 3600 });
    for (let i = 0; i < 24; i++) {
      const { token } = signer.mint({ sub: SUB, aud: [AUD], ttlSeconds: 60 + i, now: NOW });
      expect(isHighSP1363(Buffer.from(token.split('.')[2]!, 'base64url'), 'P-256')).toBe(false);
      const twin = flipS(token);
      expect(isHighSP1363(Buffer.from(twin.split('.')[2]!, 'base64url'), 'P-256')).toBe(true);
      await expect(validateJWTSVID(twin, { ...opts, lowSOnly: (td) => td === 'example.org' })).rejects.toMatchObject({ reason: 'signature-high-s' });
      // Federated issuers (SPIRE, jose) do not normalise: the same check is off for them.
      await expect(validateJWTSVID(twin, { ...opts, lowSOnly: () => false })).resolves.toMatchObject({ spiffeId: SUB });
      await expect(validateJWTSVID(token, { ...opts, lowSOnly: (td) => td === 'example.org' })).resolves.toMatchObject({ spiffeId: SUB });
    }
  });
});

describe('canonical base64url and key types', () => {
  it('refuses a signature or payload spelled with non-zero unused bits (same bytes, another string)', async () => {
    const token = signed();
    const [h, p, s] = token.split('.') as [string, string, string];
    // The last character of a 64-byte signature (86 chars) carries 4 unused bits: flip one.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = alphabet.indexOf(s[s.length - 1]!);
    const twinSig = s.slice(0, -1) + alphabet[last ^ 1];
    expect(Buffer.from(twinSig, 'base64url')).toEqual(Buffer.from(s, 'base64url'));
    await expect(validateJWTSVID(`${h}.${p}.${twinSig}`, opts)).rejects.toMatchObject({ reason: 'malformed', message: expect.stringContaining('signature is not canonical base64url') });
    await expect(validateJWTSVID(`${h}.${p}.${s}=`, opts)).rejects.toMatchObject({ reason: 'malformed' });
  });

  it('refuses a signature made with a key of another type than alg says, even with the right bytes', async () => {
    const rsa = jws({ alg: 'RS256', kid: 'k1', typ: 'JWT' }, claims(), (d) => crypto.sign('sha256', d, keys.r1!.privateKey));
    await expect(validateJWTSVID(rsa, opts)).rejects.toMatchObject({ reason: 'signature-invalid' }); // k1 is an EC key
  });
});
