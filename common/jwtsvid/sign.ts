import { unixNow } from '../clock';
import { lowSP1363 } from '../x509svid/ecdsa-signature';
import { failedPrecondition, invalidArgument, TesseraError } from '../errors';

/** The algorithms Tessera signs JWT-SVIDs with (one per key manager key type). */
export type JWTSVIDSigningAlg = 'ES256' | 'ES384' | 'RS256';

/** Length of an IEEE P1363 (raw r||s) signature; DER-encoded ECDSA would not fit JWS. */
const P1363_LENGTH: Partial<Record<JWTSVIDSigningAlg, number>> = { ES256: 64, ES384: 96 };

export interface JWTSVIDSignerOptions {
  /** Key id, published with the key in the JWT bundle. */
  kid: string;
  alg: JWTSVIDSigningAlg;
  /**
   * Signs the JWS signing input with the key's natural hash; for EC keys it must
   * return IEEE P1363 (r||s), e.g. `(d) => managedKey.sign(d, 'ieee-p1363')`.
   */
  sign: (data: Buffer) => Buffer;
  /** Unix seconds at which the signing key expires; no token outlives it. */
  notAfter: number;
}

export interface MintJWTSVIDRequest {
  /** The SPIFFE ID; the caller has already validated it. */
  sub: string;
  /** One or more non-empty audiences; always emitted as an array. */
  aud: string[];
  ttlSeconds: number;
  iss?: string;
  /** a unique token id (the caller makes it: 128 random bits, base64url) */
  jti?: string;
  /** Unix seconds; defaults to the system clock. */
  now?: number;
}

/**
 * Mints JWT-SVIDs with one JWT signing key; create one per key. The JWS is
 * assembled by hand because jose's `SignJWT` needs a key object and a key
 * manager never hands out its private key: node-oidc-provider does the same for
 * its `ExternalSigningKey` (`lib/helpers/keystore.js`, `lib/helpers/jwt.js`).
 * The protected header is encoded once here, so minting costs one JSON
 * encoding, two base64url encodings and the signature.
 *
 * @example
 * const signer = new JWTSVIDSigner({ kid, alg: 'ES256', sign: (d) => key.sign(d, 'ieee-p1363'), notAfter });
 * const { token, expiresAt } = signer.mint({ sub: 'spiffe://td/web', aud: ['db'], ttlSeconds: 300 });
 */
export class JWTSVIDSigner {
  readonly kid: string;
  readonly alg: JWTSVIDSigningAlg;
  readonly notAfter: number;
  readonly #sign: (data: Buffer) => Buffer;
  /** `base64url({"alg":..,"kid":..,"typ":"JWT"}) + "."`, the fixed start of every token. */
  readonly #headerDot: string;

  constructor(opts: JWTSVIDSignerOptions) {
    if (!['ES256', 'ES384', 'RS256'].includes(opts.alg)) throw invalidArgument('jwt-svid alg must be ES256, ES384 or RS256');
    if (typeof opts.kid !== 'string' || opts.kid === '') throw invalidArgument('jwt-svid kid must be a non-empty string');
    if (!Number.isFinite(opts.notAfter)) throw invalidArgument('jwt-svid signing key notAfter must be a unix time');
    this.kid = opts.kid;
    this.alg = opts.alg;
    this.notAfter = opts.notAfter;
    this.#sign = opts.sign;
    // Key order is fixed by this literal: alg, kid, typ.
    const header = JSON.stringify({ alg: opts.alg, kid: opts.kid, typ: 'JWT' });
    this.#headerDot = Buffer.from(header).toString('base64url') + '.';
  }

  /**
   * Mints a JWT-SVID with claims `sub`, `aud`, `exp`, `iat` (and `iss` when
   * given). `exp` is now+ttl, capped at the key's `notAfter`: a token never
   * outlives its key. Throws INVALID_ARGUMENT for a bad request and
   * FAILED_PRECONDITION once the key has expired.
   */
  mint(req: MintJWTSVIDRequest): { token: string; expiresAt: number } {
    const { sub, aud, ttlSeconds, iss } = req;
    if (typeof sub !== 'string' || sub === '') throw invalidArgument('jwt-svid sub must be a non-empty string');
    if (!Array.isArray(aud) || aud.length === 0 || !aud.every((a) => typeof a === 'string' && a !== '')) {
      throw invalidArgument('jwt-svid audience must be one or more non-empty strings');
    }
    if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds <= 0) throw invalidArgument('jwt-svid ttl must be a positive number of seconds');
    if (iss !== undefined && (typeof iss !== 'string' || iss === '')) throw invalidArgument('jwt-svid iss must be a non-empty string');
    const now = req.now ?? unixNow();
    const exp = Math.min(now + ttlSeconds, this.notAfter);
    if (exp <= now) throw failedPrecondition('the jwt signing key has expired');

    if (req.jti !== undefined && (typeof req.jti !== 'string' || req.jti === '')) throw invalidArgument('jwt-svid jti must be a non-empty string');
    const claims: Record<string, unknown> = iss === undefined ? { sub, aud, exp, iat: now } : { sub, aud, exp, iat: now, iss };
    if (req.jti !== undefined) claims.jti = req.jti;
    const input = this.#headerDot + Buffer.from(JSON.stringify(claims)).toString('base64url');
    // The signing input is pure base64url ASCII: latin1 is the cheapest exact encoding.
    const sig = this.#sign(Buffer.from(input, 'latin1'));
    const want = P1363_LENGTH[this.alg];
    if (want !== undefined && sig.length !== want) {
      // Most likely a DER signature: it would verify nowhere, so fail loudly here.
      throw new TesseraError('INTERNAL', `jwt-svid ${this.alg} signature must be ${want} bytes of ieee-p1363, got ${sig.length}`);
    }
    // Low-S only (s ≤ n/2): (r, n − s) verifies as well, and a token must have one encoding.
    const canonical = this.alg === 'ES256' ? lowSP1363(sig, 'P-256') : this.alg === 'ES384' ? lowSP1363(sig, 'P-384') : sig;
    return { token: input + '.' + canonical.toString('base64url'), expiresAt: exp };
  }
}
