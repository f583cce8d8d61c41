import { constants, verify, type KeyObject } from 'node:crypto';

/**
 * The JWS signature check of a JWT-SVID (RFC 7515 / 7518) for the allowlisted
 * algorithms, with Node's crypto directly. This is hand-written rather than
 * jose's `compactVerify` because the token's structure, header and claims are
 * already checked by validate.ts, and jose's extra per-call work made local
 * validation run at about half the rate of the signature check itself; the SDK
 * validates a token per request. What jose also enforces is kept here: the key
 * type and curve must be those of the algorithm, RSA keys at least 2048 bits,
 * ECDSA signatures in the raw r||s form of the curve's size, PSS with a salt as
 * long as the hash.
 */

interface AlgSpec {
  hash: 'sha256' | 'sha384' | 'sha512';
  kind: 'ec' | 'rsa' | 'pss';
  /** ECDSA: the curve (OpenSSL name) and the r||s length */
  curve?: string;
  sigLength?: number;
}

const ALGS: Record<string, AlgSpec> = {
  ES256: { hash: 'sha256', kind: 'ec', curve: 'prime256v1', sigLength: 64 },
  ES384: { hash: 'sha384', kind: 'ec', curve: 'secp384r1', sigLength: 96 },
  ES512: { hash: 'sha512', kind: 'ec', curve: 'secp521r1', sigLength: 132 },
  RS256: { hash: 'sha256', kind: 'rsa' },
  RS384: { hash: 'sha384', kind: 'rsa' },
  RS512: { hash: 'sha512', kind: 'rsa' },
  PS256: { hash: 'sha256', kind: 'pss' },
  PS384: { hash: 'sha384', kind: 'pss' },
  PS512: { hash: 'sha512', kind: 'pss' },
};
const HASH_BYTES = { sha256: 32, sha384: 48, sha512: 64 } as const;

/** A key's type facts, read once per key. */
const details = new WeakMap<KeyObject, { type: string | undefined; curve: string | undefined; bits: number | undefined }>();
function detailsOf(key: KeyObject) {
  let d = details.get(key);
  if (!d) {
    const a = key.asymmetricKeyDetails;
    d = { type: key.asymmetricKeyType, curve: a?.namedCurve, bits: a?.modulusLength };
    details.set(key, d);
  }
  return d;
}

/**
 * @returns whether `signature` is a valid `alg` signature of `signingInput` (the
 * ASCII `header.payload`) under `key`; false for an algorithm outside the
 * allowlist or a key of the wrong type
 */
export function verifyJWS(alg: string, key: KeyObject, signingInput: string, signature: Buffer): boolean {
  const spec = ALGS[alg];
  if (!spec || key.type !== 'public') return false;
  const d = detailsOf(key);
  const data = Buffer.from(signingInput, 'latin1');
  try {
    if (spec.kind === 'ec') {
      if (d.type !== 'ec' || d.curve !== spec.curve || signature.length !== spec.sigLength) return false;
      return verify(spec.hash, data, { key, dsaEncoding: 'ieee-p1363' }, signature);
    }
    if (d.type !== 'rsa' && !(spec.kind === 'pss' && d.type === 'rsa-pss')) return false;
    if ((d.bits ?? 0) < 2048) return false;
    if (spec.kind === 'rsa') return verify(spec.hash, data, { key, padding: constants.RSA_PKCS1_PADDING }, signature);
    return verify(spec.hash, data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: HASH_BYTES[spec.hash] }, signature);
  } catch {
    return false;
  }
}
