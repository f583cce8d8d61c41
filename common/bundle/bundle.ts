import { X509Certificate, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { invalidArgument } from '../errors';
import { parseTrustDomain } from '../spiffeid/spiffe-id';

/**
 * SPIFFE bundles: the JSON JWK Set of the Trust Domain and Bundle standard, the
 * bundle map, and the Workload API encodings (concatenated DER for X.509, a plain
 * JWKS for JWT). A bundle never names its trust domain on the wire, so every
 * decode takes the trust domain from the caller.
 */

export interface JWTAuthority {
  kid: string;
  publicKey: KeyObject;
}

export interface SpiffeBundle {
  trustDomain: string;
  /** DER CA certificates. */
  x509Authorities: Buffer[];
  jwtAuthorities: JWTAuthority[];
  sequence?: number;
  /** Seconds between consumer refreshes. */
  refreshHint?: number;
}

type Json = Record<string, unknown>;

const X509_USE = 'x509-svid';
const JWT_USE = 'jwt-svid';
// Key types we can import; the standard says to skip any other kty, not fail.
const KNOWN_KTY = new Set(['EC', 'RSA', 'OKP']);
const STD_BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * Keys a bundle may hold. Real bundles hold a handful (a CA and a JWT key per
 * rotation slot); a federated bundle is someone else's input, and decoding each
 * key costs a public-key import, so an unbounded one could stall the server and
 * every agent (26,500 keys took seconds per request). 1,000 leaves ample room.
 */
export const MAX_BUNDLE_KEYS = 1000;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const byTrustDomain = (a: SpiffeBundle, b: SpiffeBundle) => (a.trustDomain < b.trustDomain ? -1 : a.trustDomain > b.trustDomain ? 1 : 0);

/**
 * Public JWK members of a key. The key goes through SPKI DER first: JWK-exporting a
 * key made by generateKeyPairSync can deadlock Node 20 (the export holds a lock a GC callback wants again), and one
 * re-imported from DER is safe whatever its origin.
 */
function publicJwk(key: KeyObject, what: string): Json {
  if (key?.type !== 'public') throw invalidArgument(`${what} is not a public key; bundles hold public keys only`);
  try {
    const der = key.export({ type: 'spki', format: 'der' });
    const jwk = createPublicKey({ key: der, format: 'der', type: 'spki' }).export({ format: 'jwk' });
    return { kty: jwk.kty, ...jwk };
  } catch (e) {
    throw invalidArgument(`${what} has a key type that a jwk cannot express`, e);
  }
}

function parseCertificate(der: Buffer, what: string): X509Certificate {
  try {
    return new X509Certificate(der);
  } catch (e) {
    throw invalidArgument(`${what} is not a der x.509 certificate`, e);
  }
}

function checkUnsigned(v: unknown, name: string, what: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
    throw invalidArgument(`${what} has ${name} ${JSON.stringify(v)}; it must be a non-negative integer`);
  }
  if (!Number.isSafeInteger(v)) throw invalidArgument(`${what} has ${name} ${v}, above 2^53-1, which cannot be held exactly`);
  return v;
}

function jwtKeys(b: SpiffeBundle, what: string): Json[] {
  if (b.jwtAuthorities.length + b.x509Authorities.length > MAX_BUNDLE_KEYS) {
    throw invalidArgument(`${what} has ${b.jwtAuthorities.length + b.x509Authorities.length} keys; a bundle may hold at most ${MAX_BUNDLE_KEYS}`);
  }
  const seen = new Set<string>();
  return b.jwtAuthorities.map((a) => {
    if (typeof a.kid !== 'string' || a.kid === '') throw invalidArgument(`${what} has a jwt authority with an empty kid`);
    // Validators look keys up by kid, so two keys under one kid would be ambiguous.
    if (seen.has(a.kid)) throw invalidArgument(`${what} has two jwt authorities with kid ${JSON.stringify(a.kid)}`);
    seen.add(a.kid);
    return { ...publicJwk(a.publicKey, `jwt authority ${JSON.stringify(a.kid)}`), use: JWT_USE, kid: a.kid };
  });
}

function bundleDocument(b: SpiffeBundle, withRefreshHint: boolean): Json {
  const what = `bundle for ${JSON.stringify(b.trustDomain)}`;
  const doc: Json = {};
  if (checkUnsigned(b.sequence, 'spiffe_sequence', what) !== undefined) doc.spiffe_sequence = b.sequence;
  if (withRefreshHint && checkUnsigned(b.refreshHint, 'spiffe_refresh_hint', what) !== undefined) {
    doc.spiffe_refresh_hint = b.refreshHint;
  }
  const x509Keys = b.x509Authorities.map((der, i) => {
    const cert = parseCertificate(der, `x509 authority ${i} of ${what}`);
    // The standard forbids kid on x509-svid entries.
    return { ...publicJwk(cert.publicKey, `x509 authority ${i} of ${what}`), use: X509_USE, x5c: [der.toString('base64')] };
  });
  doc.keys = [...x509Keys, ...jwtKeys(b, what)];
  return doc;
}

/**
 * Encodes a bundle as SPIFFE bundle JSON: `spiffe_sequence` and `spiffe_refresh_hint`
 * when set, then one JWK per X.509 authority (`use: "x509-svid"`, `x5c`, no kid)
 * and per JWT authority (`use: "jwt-svid"`, `kid`).
 * @throws TesseraError INVALID_ARGUMENT for a non-certificate, a non-public key, an empty or repeated kid, or a bad sequence/refresh hint
 */
export function encodeBundle(b: SpiffeBundle): string {
  return JSON.stringify(bundleDocument(b, true));
}

/** The public key of a JWK, from its public members only. */
function importJwk(k: Json, what: string): KeyObject {
  const { kty, crv, x, y, n, e } = k;
  const jwk = (kty === 'RSA' ? { kty, n, e } : { kty, crv, x, y }) as JsonWebKey;
  try {
    return createPublicKey({ key: jwk, format: 'jwk' });
  } catch (err) {
    throw invalidArgument(`${what} has ${String(kty)} key parameters that do not form a valid public key`, err);
  }
}

/** Adds JWK `k` to `b`, or skips it where the standard says to ignore it. `kids`: the JWT kids added so far. */
function addKey(b: SpiffeBundle, k: unknown, what: string, kids: Set<string>): void {
  if (!isObject(k)) throw invalidArgument(`${what} is not a json object`);
  if (typeof k.kty !== 'string' || !KNOWN_KTY.has(k.kty)) return;
  if ('d' in k) throw invalidArgument(`${what} holds private key material ("d"); a bundle must hold public keys only`);
  if (k.use === X509_USE) {
    if (!Array.isArray(k.x5c) || k.x5c.length === 0) return;
    // Only the first x5c element counts. A kid here breaks the standard, but dropping a root over it would be worse.
    const b64 = k.x5c[0];
    if (typeof b64 !== 'string' || b64.length % 4 !== 0 || !STD_BASE64.test(b64)) {
      throw invalidArgument(`${what} has an x5c entry that is not standard base64`);
    }
    const der = Buffer.from(b64, 'base64');
    const cert = parseCertificate(der, `x5c of ${what}`);
    // As go-jose does: when the JWK carries key members they must be the certificate's key.
    if (('x' in k || 'n' in k) && !importJwk(k, what).equals(cert.publicKey)) {
      throw invalidArgument(`${what} has key parameters that do not match its x5c certificate`);
    }
    b.x509Authorities.push(der);
  } else if (k.use === JWT_USE) {
    if (typeof k.kid !== 'string' || k.kid === '') return;
    if (kids.has(k.kid)) throw invalidArgument(`${what} repeats kid ${JSON.stringify(k.kid)}`);
    kids.add(k.kid);
    b.jwtAuthorities.push({ kid: k.kid, publicKey: importJwk(k, what) });
  }
}

function bundleFromDocument(td: string, doc: unknown, withRefreshHint: boolean): SpiffeBundle {
  const what = `bundle for ${JSON.stringify(td)}`;
  if (!isObject(doc)) throw invalidArgument(`${what} is not a json object`);
  if (!Array.isArray(doc.keys)) throw invalidArgument(`${what} has no "keys" array`);
  if (doc.keys.length > MAX_BUNDLE_KEYS) throw invalidArgument(`${what} has ${doc.keys.length} keys; a bundle may hold at most ${MAX_BUNDLE_KEYS}`);
  const b: SpiffeBundle = { trustDomain: td, x509Authorities: [], jwtAuthorities: [] };
  const sequence = checkUnsigned(doc.spiffe_sequence, 'spiffe_sequence', what);
  if (sequence !== undefined) b.sequence = sequence;
  const hint = withRefreshHint ? checkUnsigned(doc.spiffe_refresh_hint, 'spiffe_refresh_hint', what) : undefined;
  if (hint !== undefined) b.refreshHint = hint;
  const kids = new Set<string>();
  doc.keys.forEach((k, i) => addKey(b, k, `key ${i} of ${what}`, kids));
  return b;
}

/**
 * Finds a repeated member name in any object of a JSON text that JSON.parse has
 * already accepted. JSON.parse keeps the last of two equal names silently, and
 * another parser may keep the first: a document meaning two things to two
 * consumers is refused instead. Names compare after unescaping ("a" equals "\u0061").
 */
function findDuplicateKey(text: string): string | undefined {
  const stack: (Set<string> | null)[] = []; // a Set per open object, null per open array
  let expectName = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const names = stack[stack.length - 1];
      if (names && expectName) {
        const name = JSON.parse(text.slice(i, j + 1)) as string;
        if (names.has(name)) return name;
        names.add(name);
        expectName = false;
      }
      i = j;
    } else if (c === '{') {
      stack.push(new Set());
      expectName = true;
    } else if (c === '[') {
      stack.push(null);
    } else if (c === '}' || c === ']') {
      stack.pop();
    } else if (c === ',') {
      expectName = stack[stack.length - 1] != null;
    }
  }
  return undefined;
}

function parseDocument(json: string | object, what: string): unknown {
  const text = json instanceof Uint8Array ? Buffer.from(json).toString('utf8') : json;
  if (typeof text !== 'string') return text;
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw invalidArgument(`${what} is not valid json: ${(e as Error).message}`, e);
  }
  const dup = findDuplicateKey(text);
  if (dup !== undefined) throw invalidArgument(`${what} has duplicate json member ${JSON.stringify(dup)}`);
  return doc;
}

/**
 * Decodes SPIFFE bundle JSON (text, bytes or an already parsed object) for trust
 * domain `trustDomain` (`example.org` or `spiffe://example.org`). JWKs the standard
 * says to ignore are skipped: unknown kty, missing or unknown use, x509-svid without
 * x5c, jwt-svid without kid. Duplicate JSON member names are refused (text input only).
 * @throws TesseraError INVALID_ARGUMENT for bad JSON, a missing `keys` array, a bad
 * sequence or refresh hint, undecodable key material, private key members or a repeated kid
 */
export function decodeBundle(trustDomain: string, json: string | object): SpiffeBundle {
  const td = parseTrustDomain(trustDomain);
  return bundleFromDocument(td, parseDocument(json, `bundle for ${JSON.stringify(td)}`), true);
}

/**
 * The JWT authorities as a plain JWKS `{"keys": [...]}`, the Workload API's JWT
 * bundle (and what OIDC relying parties fetch). Each key has `kid` and no `use`:
 * go-spiffe writes none, and generic JOSE libraries (jose among them) skip a key
 * whose `use` is anything but "sig". Read it back with `decodeJwtBundleJwks`.
 */
export function jwtBundleJwks(b: SpiffeBundle): string {
  const keys = jwtKeys(b, `bundle for ${JSON.stringify(b.trustDomain)}`).map(({ use: _use, ...k }) => k);
  return JSON.stringify({ keys });
}

/**
 * Reads a Workload API JWT bundle (plain JWKS) for `trustDomain`: keys without a
 * kid, or with a `use` other than "sig"/"jwt-svid", or of unknown type are skipped.
 */
export function decodeJwtBundleJwks(trustDomain: string, json: string | object): SpiffeBundle {
  const td = parseTrustDomain(trustDomain);
  const doc = parseDocument(json, `jwt bundle for ${JSON.stringify(td)}`);
  if (!isObject(doc) || !Array.isArray(doc.keys)) throw invalidArgument(`jwt bundle for ${JSON.stringify(td)} has no "keys" array`);
  const keys = doc.keys.map((k) =>
    isObject(k) && (k.use === undefined || k.use === 'sig' || k.use === JWT_USE) ? { ...k, use: JWT_USE } : k,
  );
  return bundleFromDocument(td, { keys }, false);
}

/**
 * Encodes `{"trust_domains": {"<name>": <bundle>, ...}}`, sorted by trust domain.
 * Refresh hints are left out: consumers of a map ignore them.
 * @throws TesseraError INVALID_ARGUMENT for an invalid or repeated trust domain, or as encodeBundle
 */
export function encodeBundleMap(bundles: readonly SpiffeBundle[]): string {
  // No prototype, so a trust domain named "__proto__" becomes an ordinary member.
  const map: Json = Object.create(null);
  for (const b of [...bundles].sort(byTrustDomain)) {
    const td = parseTrustDomain(b.trustDomain);
    if (Object.hasOwn(map, td)) throw invalidArgument(`bundle map has two bundles for trust domain ${JSON.stringify(td)}`);
    map[td] = bundleDocument(b, false);
  }
  return JSON.stringify({ trust_domains: map });
}

/**
 * Decodes a bundle map into bundles sorted by trust domain. Names may be given as
 * `example.org` or `spiffe://example.org`; two names for one trust domain are refused.
 * Refresh hints inside the map are ignored.
 * @throws TesseraError INVALID_ARGUMENT for bad JSON, duplicate members, a missing
 * `trust_domains` object, an invalid trust domain, or a bundle decodeBundle would refuse
 */
export function decodeBundleMap(json: string | object): SpiffeBundle[] {
  const doc = parseDocument(json, 'bundle map');
  if (!isObject(doc) || !isObject(doc.trust_domains)) throw invalidArgument('bundle map has no "trust_domains" object');
  const out: SpiffeBundle[] = [];
  for (const [name, bundle] of Object.entries(doc.trust_domains)) {
    const td = parseTrustDomain(name);
    if (out.some((b) => b.trustDomain === td)) throw invalidArgument(`bundle map names trust domain ${JSON.stringify(td)} twice`);
    out.push(bundleFromDocument(td, bundle, false));
  }
  return out.sort(byTrustDomain);
}

/**
 * True if both bundles have the same trust domain, sequence, refresh hint and
 * authorities. Authority order does not matter: reordering trusts nothing new.
 */
export function bundlesEqual(a: SpiffeBundle, b: SpiffeBundle): boolean {
  if (a.trustDomain !== b.trustDomain || a.sequence !== b.sequence || a.refreshHint !== b.refreshHint) return false;
  if (a.x509Authorities.length !== b.x509Authorities.length || a.jwtAuthorities.length !== b.jwtAuthorities.length) return false;
  const xa = [...a.x509Authorities].sort(Buffer.compare);
  const xb = [...b.x509Authorities].sort(Buffer.compare);
  if (!xa.every((der, i) => der.equals(xb[i]))) return false;
  // By kid (unique in any decoded bundle): linear, where comparing every pair was quadratic.
  const ka = new Map(a.jwtAuthorities.map((k) => [k.kid, k.publicKey]));
  const kb = new Map(b.jwtAuthorities.map((k) => [k.kid, k.publicKey]));
  if (ka.size === a.jwtAuthorities.length && kb.size === b.jwtAuthorities.length) {
    return a.jwtAuthorities.every((j) => kb.get(j.kid)?.equals(j.publicKey) === true);
  }
  // A hand-built bundle repeating a kid: compare the lists both ways.
  const covers = (p: JWTAuthority[], q: JWTAuthority[]) => p.every((j) => q.some((k) => k.kid === j.kid && k.publicKey.equals(j.publicKey)));
  return covers(a.jwtAuthorities, b.jwtAuthorities) && covers(b.jwtAuthorities, a.jwtAuthorities);
}

export { bundleToPem, concatDer, splitConcatenatedDer, x509AuthoritiesFromPem } from './der-pem';
