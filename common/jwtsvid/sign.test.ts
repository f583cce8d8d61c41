import * as crypto from 'node:crypto';
import { decodeProtectedHeader, jwtVerify } from 'jose';
import { JWTSVIDSigner, type JWTSVIDSigningAlg } from './sign';

const NOW = 1_800_000_000;
const SUB = 'spiffe://example.org/web';

/** Async generation: a generateKeyPairSync key can deadlock jose on Node 20 (a JWK export of such a key can hang the process). */
function keyPair(alg: JWTSVIDSigningAlg): Promise<crypto.KeyPairKeyObjectResult> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, publicKey: crypto.KeyObject, privateKey: crypto.KeyObject) =>
      err ? reject(err) : resolve({ publicKey, privateKey });
    if (alg === 'RS256') crypto.generateKeyPair('rsa', { modulusLength: 2048 }, done);
    else crypto.generateKeyPair('ec', { namedCurve: alg === 'ES256' ? 'P-256' : 'P-384' }, done);
  });
}

async function makeSigner(alg: JWTSVIDSigningAlg, notAfter = NOW + 86_400) {
  const { publicKey, privateKey } = await keyPair(alg);
  const hash = alg === 'ES384' ? 'sha384' : 'sha256';
  const sign = (d: Buffer) => crypto.sign(hash, d, { key: privateKey, dsaEncoding: 'ieee-p1363' });
  return { publicKey, privateKey, signer: new JWTSVIDSigner({ kid: 'kid-1', alg, sign, notAfter }) };
}

const decodePart = (token: string, i: number) => Buffer.from(token.split('.')[i]!, 'base64url').toString();

describe('JWTSVIDSigner', () => {
  describe.each(['ES256', 'ES384', 'RS256'] as const)('%s', (alg) => {
    it('mints a token that jose verifies with the public key', async () => {
      const { publicKey, signer } = await makeSigner(alg);
      const { token, expiresAt } = signer.mint({ sub: SUB, aud: ['db'], ttlSeconds: 300, now: NOW });
      const { payload, protectedHeader } = await jwtVerify(token, publicKey, {
        algorithms: [alg],
        audience: 'db',
        currentDate: new Date(NOW * 1000),
      });
      expect(protectedHeader).toEqual({ alg, kid: 'kid-1', typ: 'JWT' });
      expect(payload).toEqual({ sub: SUB, aud: ['db'], exp: NOW + 300, iat: NOW });
      expect(expiresAt).toBe(NOW + 300);
    });

    it('encodes the header as exactly alg, kid, typ in that order', async () => {
      const { signer } = await makeSigner(alg);
      const { token } = signer.mint({ sub: SUB, aud: ['db'], ttlSeconds: 60, now: NOW });
      expect(decodePart(token, 0)).toBe(`{"alg":"${alg}","kid":"kid-1","typ":"JWT"}`);
      expect(decodeProtectedHeader(token)).toEqual({ alg, kid: 'kid-1', typ: 'JWT' });
    });
  });

  it('emits exactly sub, aud (an array), exp, iat and iss when given', async () => {
    const { publicKey, signer } = await makeSigner('ES256');
    const { token } = signer.mint({ sub: SUB, aud: ['a', 'b'], ttlSeconds: 60, iss: 'https://oidc.example.org', now: NOW });
    expect(JSON.parse(decodePart(token, 1))).toEqual({ sub: SUB, aud: ['a', 'b'], exp: NOW + 60, iat: NOW, iss: 'https://oidc.example.org' });
    await expect(jwtVerify(token, publicKey, { audience: 'b', issuer: 'https://oidc.example.org', currentDate: new Date(NOW * 1000) })).resolves.toBeDefined();
  });

  it('caps exp at the signing key expiry, never longer', async () => {
    const { signer } = await makeSigner('ES256', NOW + 100);
    const r = signer.mint({ sub: SUB, aud: ['db'], ttlSeconds: 300, now: NOW });
    expect(r.expiresAt).toBe(NOW + 100);
    expect(JSON.parse(decodePart(r.token, 1)).exp).toBe(NOW + 100);
    expect(signer.mint({ sub: SUB, aud: ['db'], ttlSeconds: 50, now: NOW }).expiresAt).toBe(NOW + 50);
  });

  it('refuses to mint once the key has expired', async () => {
    const { signer } = await makeSigner('ES256', NOW);
    expect(() => signer.mint({ sub: SUB, aud: ['db'], ttlSeconds: 300, now: NOW })).toThrow(expect.objectContaining({ code: 'FAILED_PRECONDITION' }));
  });

  it.each([
    ['no audience', { aud: [] }],
    ['an empty audience', { aud: ['db', ''] }],
    ['a non-array audience', { aud: 'db' as unknown as string[] }],
    ['an empty sub', { sub: '' }],
    ['a zero ttl', { ttlSeconds: 0 }],
    ['a fractional ttl', { ttlSeconds: 1.5 }],
    ['an empty iss', { iss: '' }],
  ])('rejects %s with INVALID_ARGUMENT', async (_name, patch) => {
    const { signer } = await makeSigner('ES256');
    expect(() => signer.mint({ sub: SUB, aud: ['db'], ttlSeconds: 60, now: NOW, ...patch })).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    );
  });

  it('fails loudly when an EC sign function returns DER instead of ieee-p1363', async () => {
    const { privateKey } = await keyPair('ES256');
    const signer = new JWTSVIDSigner({ kid: 'k', alg: 'ES256', notAfter: NOW + 600, sign: (d) => crypto.sign('sha256', d, privateKey) });
    expect(() => signer.mint({ sub: SUB, aud: ['db'], ttlSeconds: 60, now: NOW })).toThrow(/ieee-p1363/);
  });

  it('defaults now to the system clock', async () => {
    const { signer } = await makeSigner('ES256', Math.floor(Date.now() / 1000) + 3600);
    const before = Math.floor(Date.now() / 1000);
    const { expiresAt } = signer.mint({ sub: SUB, aud: ['db'], ttlSeconds: 60 });
    expect(expiresAt).toBeGreaterThanOrEqual(before + 60);
    expect(expiresAt).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + 60);
  });
});
