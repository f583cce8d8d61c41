import type { KeyObject } from 'node:crypto';
import { verifyJWS } from './jws-verify';
import { unixNow } from '../clock';
import { invalidArgument, TesseraError } from '../errors';
import { parseSpiffeId, type SpiffeId } from '../spiffeid/spiffe-id';
import { isHighSP1363 } from '../x509svid/ecdsa-signature';

/** The JWT-SVID `alg` allowlist. `none`, `HS*` and `EdDSA` are not on it. */
export const JWT_SVID_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512'] as const;
const ALGORITHMS: ReadonlySet<string> = new Set(JWT_SVID_ALGORITHMS);
const HEADER_PARAMS: ReadonlySet<string> = new Set(['alg', 'kid', 'typ']);

/**
 * Default clock-skew allowance: one minute, the value the spec calls common and
 * the one go-spiffe (go-jose `DefaultLeeway`) and the .NET SPIFFE library use,
 * so Tessera and those validators accept the same tokens at the same instant.
 * It is small next to the 5-minute default JWT-SVID TTL's refresh at half-life.
 */
export const DEFAULT_LEEWAY_SECONDS = 60;

/** Far above any real JWT-SVID (a few hundred bytes); bounds work done on hostile input. */
const MAX_TOKEN_LENGTH = 16 * 1024;
const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** Which check a token failed; stable, for callers and tests to branch on. */
export type JWTSVIDRejectReason =
  | 'malformed'
  | 'not-compact'
  | 'alg-not-allowed'
  | 'header-not-allowed'
  | 'typ-not-allowed'
  | 'kid-missing'
  | 'sub-invalid'
  | 'sub-no-path'
  | 'no-keys-for-trust-domain'
  | 'kid-unknown'
  | 'signature-invalid'
  | 'signature-high-s'
  | 'exp-invalid'
  | 'expired'
  | 'not-yet-valid'
  | 'aud-invalid'
  | 'aud-mismatch';

/**
 * A rejected JWT-SVID. Always code INVALID_ARGUMENT: the token is the argument,
 * and SPIRE's Workload API `ValidateJWTSVID` answers InvalidArgument for a bad
 * token. An edge that authenticates callers with a JWT-SVID maps it to
 * UNAUTHENTICATED itself. The message names the failed check, never the token.
 */
export class JWTSVIDError extends TesseraError {
  constructor(readonly reason: JWTSVIDRejectReason, message: string, cause?: unknown) {
    super('INVALID_ARGUMENT', `invalid jwt-svid: ${message}`, { cause });
  }
}

export interface ValidateJWTSVIDOptions {
  /** The audience this validator speaks for; it must be one of the token's `aud`. */
  audience: string;
  /** The JWT keys of one trust domain's bundle, or undefined if there is no bundle for it. */
  keysFor: (trustDomain: string) => Array<{ kid: string; publicKey: KeyObject }> | undefined;
  /** Unix seconds; defaults to the system clock. */
  now?: number;
  /** Clock-skew allowance for `exp` (and `nbf`/`iat`); default {@link DEFAULT_LEEWAY_SECONDS}. */
  leewaySeconds?: number;
  /**
   * Trust domains whose ECDSA tokens must carry a low-S signature (s ≤ n/2). Tessera's
   * issuer signs only low-S, so a high-S token of its own trust domain is a copy
   * someone re-encoded (ECDSA's (r, n − s) twin): refuse it. Other issuers (SPIRE
   * via Go's crypto/ecdsa, jose via WebCrypto) do not normalise, so about half of
   * their honest tokens are high-S: federated trust domains are not listed here.
   */
  lowSOnly?: (trustDomain: string) => boolean;
}

export interface ValidatedJWTSVID {
  spiffeId: string;
  claims: Record<string, unknown>;
  expiresAt: number;
}

const reject = (reason: JWTSVIDRejectReason, message: string, cause?: unknown) => new JWTSVIDError(reason, message, cause);

/**
 * The bytes of a base64url part, which must be canonical: no padding, and no set
 * bits in the unused low bits of the last character. Node's decoder ignores
 * those bits, so "AB" and "AA" would be the same bytes; a token must have one spelling.
 */
function canonicalBase64url(part: string, what: string): Buffer {
  if (!BASE64URL.test(part) || part.length % 4 === 1) throw reject('malformed', `${what} is not base64url`);
  const bytes = Buffer.from(part, 'base64url');
  if (bytes.toString('base64url') !== part) throw reject('malformed', `${what} is not canonical base64url`);
  return bytes;
}

function decodeJSONObject(part: string, what: string): Record<string, unknown> {
  const bytes = canonicalBase64url(part, what);
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw reject('malformed', `${what} is not json`, err);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw reject('malformed', `${what} is not a json object`);
  return value as Record<string, unknown>;
}

/** The token's audiences; `aud` may be one string or an array of them. */
function audiences(aud: unknown): string[] {
  const list = typeof aud === 'string' ? [aud] : aud;
  if (!Array.isArray(list) || list.length === 0 || !list.every((a) => typeof a === 'string' && a !== '')) {
    throw reject('aud-invalid', 'aud claim must be a non-empty string or array of non-empty strings');
  }
  return list as string[];
}

/** An optional NumericDate claim must, when present, be a number not beyond now + leeway. */
function notInFuture(claims: Record<string, unknown>, name: 'nbf' | 'iat', now: number, leeway: number): void {
  const v = claims[name];
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw reject('malformed', `${name} claim is not a number`);
  if (v > now + leeway) throw reject('not-yet-valid', `${name} claim is in the future`);
}

/**
 * Validates a JWT-SVID in the order of the JWT-SVID profile: compact form, `alg`
 * allowlist (before anything else), header parameters (only alg/kid/typ), typ,
 * kid, payload, `sub` (a SPIFFE ID with a path), the keys of `sub`'s trust
 * domain only, key by kid, signature (the algorithm's key type enforced), `exp` (with
 * leeway), `nbf`/`iat` not in the future (as go-spiffe), and `aud`.
 *
 * @throws JWTSVIDError (INVALID_ARGUMENT) with the failed check as `reason`
 * @example
 * const { spiffeId } = await validateJWTSVID(bearer, { audience: 'spiffe://td/db', keysFor: (td) => bundles.jwtKeys(td) });
 */
export async function validateJWTSVID(token: string, opts: ValidateJWTSVIDOptions): Promise<ValidatedJWTSVID> {
  const leeway = opts.leewaySeconds ?? DEFAULT_LEEWAY_SECONDS;
  if (typeof opts.audience !== 'string' || opts.audience === '') throw invalidArgument('expected jwt-svid audience must be a non-empty string');
  if (!Number.isFinite(leeway) || leeway < 0) throw invalidArgument('jwt-svid leeway must be zero or more seconds');
  const now = opts.now ?? unixNow();

  // 1. JWS compact serialization, three parts, nothing else.
  if (typeof token !== 'string' || token.length === 0) throw reject('malformed', 'token is empty');
  if (token.length > MAX_TOKEN_LENGTH) throw reject('malformed', `token is longer than ${MAX_TOKEN_LENGTH} characters`);
  if (token.trimStart().startsWith('{')) throw reject('not-compact', 'json serialization is not allowed; use jws compact serialization');
  const parts = token.split('.');
  if (parts.length !== 3) throw reject('not-compact', `jws compact serialization has 3 parts, got ${parts.length}`);
  const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];
  const signature = canonicalBase64url(signaturePart, 'signature');

  // 2. Protected header: alg first, so none/HS*/EdDSA never reach any other code.
  const header = decodeJSONObject(headerPart, 'protected header');
  if (typeof header.alg !== 'string' || !ALGORITHMS.has(header.alg)) {
    throw reject('alg-not-allowed', `alg must be one of ${JWT_SVID_ALGORITHMS.join(', ')}`);
  }
  // Any other parameter (jku, x5u, jwk, crit, b64, ...) could redirect key lookup or change processing.
  if (Object.keys(header).some((k) => !HEADER_PARAMS.has(k))) {
    throw reject('header-not-allowed', 'protected header may contain only alg, kid and typ');
  }
  if (header.typ !== undefined && header.typ !== 'JWT' && header.typ !== 'JOSE') {
    throw reject('typ-not-allowed', 'typ must be JWT or JOSE when present');
  }
  if (typeof header.kid !== 'string' || header.kid === '') throw reject('kid-missing', 'protected header has no kid');

  // 3. Payload (not yet trusted): sub picks the trust domain whose keys may have signed it.
  const claims = decodeJSONObject(payloadPart, 'payload');
  if (typeof claims.sub !== 'string') throw reject('sub-invalid', 'sub claim is missing');
  let id: SpiffeId;
  try {
    id = parseSpiffeId(claims.sub);
  } catch (err) {
    throw reject('sub-invalid', 'sub claim is not a spiffe id', err);
  }
  if (id.path === '') throw reject('sub-no-path', 'sub claim names a trust domain, not a workload');

  // 4. Keys of sub's own trust domain only (never a pool of all bundles), then by kid.
  const keys = opts.keysFor(id.trustDomain);
  if (!keys) throw reject('no-keys-for-trust-domain', `no jwt bundle for trust domain ${id.trustDomain}`);
  const key = keys.find((k) => k.kid === header.kid);
  if (!key) throw reject('kid-unknown', `kid is not among the jwt keys of trust domain ${id.trustDomain}`);

  // 5. Signature, with the algorithm's key type, curve and size enforced (jws-verify.ts).
  if (!verifyJWS(header.alg as string, key.publicKey, `${headerPart}.${payloadPart}`, signature)) {
    throw reject('signature-invalid', 'signature verification failed');
  }

  if (opts.lowSOnly?.(id.trustDomain) && (header.alg === 'ES256' || header.alg === 'ES384' || header.alg === 'ES512')) {
    const sig = Buffer.from(token.slice(token.lastIndexOf('.') + 1), 'base64url');
    const curve = header.alg === 'ES256' ? 'P-256' : header.alg === 'ES384' ? 'P-384' : 'P-521';
    if (isHighSP1363(sig, curve)) throw reject('signature-high-s', `signature is not in low-s form; ${id.trustDomain} issues only low-s signatures, so this token was re-encoded`);
  }

  // 6. Time, then audience. The claims are authentic from here on.
  if (typeof claims.exp !== 'number' || !Number.isFinite(claims.exp)) throw reject('exp-invalid', 'exp claim is missing or not a number');
  if (now - leeway >= claims.exp) throw reject('expired', 'token has expired');
  notInFuture(claims, 'nbf', now, leeway);
  notInFuture(claims, 'iat', now, leeway);
  if (claims.aud === undefined) throw reject('aud-invalid', 'aud claim is missing');
  if (!audiences(claims.aud).includes(opts.audience)) throw reject('aud-mismatch', 'expected audience is not in the aud claim');

  return { spiffeId: id.toString(), claims, expiresAt: claims.exp };
}
