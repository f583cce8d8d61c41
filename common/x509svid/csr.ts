import { ECDH, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import * as der from '../der/der';
import { TesseraError, invalidArgument } from '../errors';
import { optionalCryptoAddon } from '../native/optional-addon';

/**
 * PKCS#10 certificate signing requests (RFC 2986), read with the strict DER
 * reader instead of an ASN.1 schema library: SVID issuance verifies one CSR per
 * certificate, and this path costs about one `crypto.verify`.
 */

const SUPPORTED_KEYS = 'use EC P-256, P-384 or RSA-2048+';
const MAX_RSA_BITS = 8192; // bounds the cost of verifying and of what we sign

interface SignatureAlgorithm {
  name: string;
  hash: 'sha256' | 'sha384' | 'sha512';
  family: 'ec' | 'rsa';
}

/** signatureAlgorithm OID (DER content hex) → what it means. */
const SIGNATURE_ALGORITHMS = new Map<string, SignatureAlgorithm>(
  (
    [
      ['1.2.840.10045.4.3.2', { name: 'ecdsa-with-SHA256', hash: 'sha256', family: 'ec' }],
      ['1.2.840.10045.4.3.3', { name: 'ecdsa-with-SHA384', hash: 'sha384', family: 'ec' }],
      ['1.2.840.10045.4.3.4', { name: 'ecdsa-with-SHA512', hash: 'sha512', family: 'ec' }],
      ['1.2.840.113549.1.1.11', { name: 'sha256WithRSAEncryption', hash: 'sha256', family: 'rsa' }],
      ['1.2.840.113549.1.1.12', { name: 'sha384WithRSAEncryption', hash: 'sha384', family: 'rsa' }],
      ['1.2.840.113549.1.1.13', { name: 'sha512WithRSAEncryption', hash: 'sha512', family: 'rsa' }],
    ] as const
  ).map(([oid, alg]) => [der.oid(oid).toString('hex'), alg]),
);
const RSASSA_PSS = der.oid('1.2.840.113549.1.1.10').toString('hex');
const CURVES: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384' };

function need(cond: boolean, what: string): asserts cond {
  if (!cond) throw new Error(what);
}

/** Reads a TLV with an expected tag; errors name the field. */
function read(buf: Buffer, offset: number, tag: number, what: string, limit: number): der.TLV {
  let t: der.TLV;
  try {
    t = der.readTLV(buf, offset, limit);
  } catch (e) {
    throw new Error(`${what}: ${(e as Error).message.replace(/^der: /, '')}`);
  }
  need(t.tag === tag, `${what} has the wrong tag (0x${t.tag.toString(16)})`);
  return t;
}

/**
 * Parses a DER PKCS#10 CSR and verifies its self-signature (proof that the
 * requester holds the private key).
 *
 * Only the public key is used. Subject, SANs and every other attribute or
 * extension in the CSR are ignored by design: the SVID's identity comes from the
 * registration entry (or attested node), never from what the requester asks for.
 * A CSR naming another SPIFFE ID therefore parses fine and gets nothing extra.
 *
 * Accepts EC P-256/P-384 (a compressed point is returned uncompressed, since
 * many TLS stacks reject compressed points in certificates) and RSA 2048–8192
 * keys, signed with ECDSA or RSA PKCS#1 v1.5 over SHA-256/384/512.
 *
 * @returns the SubjectPublicKeyInfo DER to put in the certificate (EC points uncompressed)
 * @throws TesseraError INVALID_ARGUMENT saying what is wrong, e.g.
 *   "csr is not valid DER: ...", "csr signature does not verify",
 *   "csr key type ed25519 is not supported; use EC P-256, P-384 or RSA-2048+"
 */
export function parseAndVerifyCSR(csrDer: Buffer): { publicKeySpki: Buffer } {
  if (!Buffer.isBuffer(csrDer)) throw invalidArgument('csr must be DER bytes');
  let cri: der.TLV, spki: der.TLV, algOid: der.TLV, algParams: der.TLV | undefined, sig: der.TLV;
  try {
    const outer = read(csrDer, 0, der.TAG.SEQUENCE, 'certificationRequest', csrDer.length);
    need(outer.end === csrDer.length, `${csrDer.length - outer.end} trailing bytes after the certificationRequest`);
    cri = read(csrDer, outer.start, der.TAG.SEQUENCE, 'certificationRequestInfo', outer.end);
    const alg = read(csrDer, cri.end, der.TAG.SEQUENCE, 'signatureAlgorithm', outer.end);
    sig = read(csrDer, alg.end, der.TAG.BIT_STRING, 'signature', outer.end);
    need(sig.end === outer.end, 'unexpected data after the signature');
    need(sig.end > sig.start && csrDer[sig.start] === 0, 'signature bit string has unused bits');
    algOid = read(csrDer, alg.start, der.TAG.OID, 'signatureAlgorithm oid', alg.end);
    algParams = algOid.end < alg.end ? der.readTLV(csrDer, algOid.end, alg.end) : undefined;
    need(!algParams || algParams.end === alg.end, 'signatureAlgorithm has extra fields');

    const version = read(csrDer, cri.start, der.TAG.INTEGER, 'version', cri.end);
    need(version.end - version.start === 1 && csrDer[version.start] === 0, 'version is not v1 (0)');
    const subject = read(csrDer, version.end, der.TAG.SEQUENCE, 'subject', cri.end);
    spki = read(csrDer, subject.end, der.TAG.SEQUENCE, 'subjectPKInfo', cri.end);
    // attributes [0] are required by RFC 2986 but some encoders omit an empty set; they are ignored either way.
    if (spki.end < cri.end) need(read(csrDer, spki.end, 0xa0, 'attributes', cri.end).end === cri.end, 'unexpected data after the attributes');
  } catch (e) {
    // Everything in this block is a shape check, so any failure means malformed DER.
    throw invalidArgument(`csr is not valid DER: ${(e as Error).message.replace(/^der: /, '')}`, e);
  }

  const tbs = csrDer.subarray(cri.offset, cri.end);
  const signature = csrDer.subarray(sig.start + 1, sig.end);
  let publicKeySpki: Buffer = Buffer.from(csrDer.subarray(spki.offset, spki.end));

  // Hot path: an uncompressed P-256/P-384 point, which is what agents send.
  const ec = uncompressedECPoint(publicKeySpki);
  if (ec) {
    const alg = signatureAlgorithm(csrDer, algOid, algParams, 'ec');
    if (!verifyECPoint(ec.crv, ec.point, alg.hash, tbs, signature)) throw SIGNATURE_MISMATCH();
    return { publicKeySpki };
  }

  // Everything else goes through a KeyObject. The key first: its type is the
  // more useful thing to tell a client about.
  let publicKey: KeyObject;
  let keyFamily: 'ec' | 'rsa';
  try {
    publicKey = createPublicKey({ key: publicKeySpki, format: 'der', type: 'spki' });
    keyFamily = checkKey(publicKey);
  } catch (e) {
    if (e instanceof TesseraError) throw e;
    throw invalidArgument(`csr public key cannot be parsed: ${(e as Error).message}`, e);
  }
  const alg = signatureAlgorithm(csrDer, algOid, algParams, keyFamily);
  if (!verify(alg.hash, tbs, { key: publicKey, dsaEncoding: 'der' }, signature)) throw SIGNATURE_MISMATCH();
  if (keyFamily === 'ec') publicKeySpki = uncompressedSpki(publicKeySpki, publicKey);
  return { publicKeySpki };
}

const SIGNATURE_MISMATCH = (): TesseraError => invalidArgument('csr signature does not verify; the csr was altered or signed with another key');

/** The CSR's signature algorithm; throws unless it is supported and matches the key's family. */
function signatureAlgorithm(csrDer: Buffer, algOid: der.TLV, algParams: der.TLV | undefined, keyFamily: 'ec' | 'rsa'): SignatureAlgorithm {
  const algHex = csrDer.subarray(algOid.offset, algOid.end).toString('hex');
  if (algHex === RSASSA_PSS) throw invalidArgument('csr signature algorithm RSASSA-PSS is not supported; sign the csr with ECDSA or RSA PKCS#1 v1.5');
  const alg = SIGNATURE_ALGORITHMS.get(algHex);
  if (!alg) throw invalidArgument(`csr signature algorithm ${oidText(csrDer, algOid)} is not supported; use ECDSA or RSA PKCS#1 v1.5 with SHA-256/384/512`);
  // RFC 5758: ECDSA has absent parameters; RFC 4055: RSA PKCS#1 v1.5 has NULL (or, leniently, absent).
  const paramsOk = !algParams || (alg.family === 'rsa' && algParams.tag === der.TAG.NULL && algParams.end === algParams.start);
  if (!paramsOk) throw invalidArgument(`csr signature algorithm ${alg.name} has unexpected parameters`);
  if (keyFamily !== alg.family) throw invalidArgument(`csr signature algorithm ${alg.name} does not match its ${keyFamily} key`);
  return alg;
}

/** SPKI prefixes of EC keys with an uncompressed point, and the point's coordinate size. */
const EC_SPKI_PREFIXES: Array<{ prefix: Buffer; crv: 'P-256' | 'P-384'; size: number }> = [
  { prefix: Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex'), crv: 'P-256', size: 32 },
  { prefix: Buffer.from('3076301006072a8648ce3d020106052b81040022036200', 'hex'), crv: 'P-384', size: 48 },
];

/** The uncompressed point (0x04 || X || Y) of a P-256/P-384 SPKI; undefined for any other key or encoding. */
function uncompressedECPoint(spki: Buffer): { crv: 'P-256' | 'P-384'; point: Buffer } | undefined {
  for (const { prefix, crv, size } of EC_SPKI_PREFIXES) {
    if (spki.length !== prefix.length + 1 + 2 * size || spki[prefix.length] !== 0x04 || !spki.subarray(0, prefix.length).equals(prefix)) continue;
    return { crv, point: spki.subarray(prefix.length) };
  }
  return undefined;
}

/**
 * Verifies an ECDSA signature under a raw uncompressed point. Uses the
 * @tessera/ecdsa-verify addon (OpenSSL's ECDSA_verify on a reused EC_KEY,
 * ~2.5x faster than importing every CSR's key as a KeyObject: see its source
 * for why); without it, Node's JWK import, which builds the key from the
 * coordinates and checks the point, then crypto.verify.
 * Throws INVALID_ARGUMENT when the point is not on the curve.
 */
function verifyECPoint(crv: 'P-256' | 'P-384', point: Buffer, hash: SignatureAlgorithm['hash'], data: Buffer, signature: Buffer): boolean {
  if (nativeVerify) {
    try {
      return nativeVerify(crv, point, hash, data, signature);
    } catch (e) {
      // RangeError: the point is not on the curve (bad input); anything else is a bug here.
      if ((e as Error).name === 'RangeError') throw invalidArgument(`csr public key cannot be parsed: ${(e as Error).message}`, e);
      throw e;
    }
  }
  let key: KeyObject;
  try {
    const size = (point.length - 1) / 2;
    const x = point.subarray(1, 1 + size).toString('base64url');
    const y = point.subarray(1 + size).toString('base64url');
    key = createPublicKey({ key: { kty: 'EC', crv, x, y }, format: 'jwk' });
  } catch (e) {
    throw invalidArgument(`csr public key cannot be parsed: ${(e as Error).message}`, e);
  }
  return verify(hash, data, { key, dsaEncoding: 'der' }, signature);
}

type NativeVerify = (curve: 'P-256' | 'P-384', point: Buffer, hash: 'sha256' | 'sha384' | 'sha512', data: Buffer, signature: Buffer) => boolean;

/** The native verifier, unless disabled by TESSERA_NATIVE_ECDSA=0 or not built. */
const loadNativeVerify = () => optionalCryptoAddon<NativeVerify>('@tessera/ecdsa-verify', 'verify');
let nativeVerify: NativeVerify | undefined = loadNativeVerify();

/** Which ECDSA verifier the CSR path uses; `useNativeECDSA(false)` switches to the KeyObject path (tests). */
export function csrVerifier(): 'native' | 'keyobject' {
  return nativeVerify ? 'native' : 'keyobject';
}
export function useNativeECDSA(on: boolean): void {
  nativeVerify = on ? loadNativeVerify() : undefined;
}

/** Dotted OID for a message; never throws. */
function oidText(buf: Buffer, t: der.TLV): string {
  try {
    return der.decodeOid(buf, t);
  } catch {
    return `(malformed oid ${buf.subarray(t.start, t.end).toString('hex')})`;
  }
}

/** Throws unless the key is EC P-256/P-384 or RSA 2048–8192; returns its family. */
function checkKey(key: KeyObject): 'ec' | 'rsa' {
  const type = key.asymmetricKeyType;
  const d = key.asymmetricKeyDetails ?? {};
  if (type === 'ec') {
    if (d.namedCurve && CURVES[d.namedCurve]) return 'ec';
    throw invalidArgument(`csr key type ec ${d.namedCurve ?? '(explicit curve parameters)'} is not supported; ${SUPPORTED_KEYS}`);
  }
  if (type === 'rsa') {
    const bits = d.modulusLength ?? 0;
    if (bits >= 2048 && bits <= MAX_RSA_BITS) return 'rsa';
    throw invalidArgument(`csr key type rsa-${bits} is not supported; ${SUPPORTED_KEYS} (at most ${MAX_RSA_BITS} bits)`);
  }
  throw invalidArgument(`csr key type ${type} is not supported; ${SUPPORTED_KEYS}`);
}

/** The SPKI with the EC point in uncompressed form (unchanged when it already is). */
function uncompressedSpki(spki: Buffer, key: KeyObject): Buffer {
  const outer = der.readTLV(spki, 0);
  const alg = der.readTLV(spki, outer.start);
  const bits = der.readTLV(spki, alg.end);
  const point = spki.subarray(bits.start + 1, bits.end);
  if (point[0] === 0x04) return spki;
  const curve = key.asymmetricKeyDetails!.namedCurve!;
  const full = ECDH.convertKey(point, curve, undefined, undefined, 'uncompressed') as Buffer;
  return der.sequence(spki.subarray(alg.offset, alg.end), der.bitString(full));
}

/** ecdsa-with-SHA256/384 or sha256WithRSAEncryption for a private key, plus its hash. */
function csrSignatureAlgorithm(key: KeyObject): { algorithm: Buffer; hash: 'sha256' | 'sha384' } {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (key.asymmetricKeyType === 'ec' && curve === 'prime256v1') return { algorithm: der.sequence(der.oid('1.2.840.10045.4.3.2')), hash: 'sha256' };
  if (key.asymmetricKeyType === 'ec' && curve === 'secp384r1') return { algorithm: der.sequence(der.oid('1.2.840.10045.4.3.3')), hash: 'sha384' };
  if (key.asymmetricKeyType === 'rsa') return { algorithm: der.sequence(der.oid('1.2.840.113549.1.1.11'), der.NULL), hash: 'sha256' };
  throw invalidArgument(`key type ${key.asymmetricKeyType} ${curve ?? ''} cannot make a csr; ${SUPPORTED_KEYS}`.replace('  ', ' '));
}

/**
 * Builds a DER PKCS#10 CSR for a key pair, with an empty subject and no
 * attributes (the server ignores both: identity comes from registration).
 * Signed with ECDSA SHA-256 (P-256), SHA-384 (P-384) or RSA PKCS#1 v1.5 SHA-256.
 * Throws INVALID_ARGUMENT if the keys are of an unsupported type or do not
 * belong together.
 *
 * @example
 * const { publicKey, privateKey } = await promisify(generateKeyPair)('ec', { namedCurve: 'P-256' });
 * const csr = await createCSR(privateKey, publicKey);
 */
export async function createCSR(privateKey: KeyObject, publicKey: KeyObject): Promise<Buffer> {
  if (privateKey.type !== 'private' || publicKey.type !== 'public') throw invalidArgument('createCSR needs a private and a public key');
  const { algorithm, hash } = csrSignatureAlgorithm(privateKey);
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const cri = der.sequence(der.integer(0), der.sequence(), spki, der.explicit(0));
  const signature = sign(hash, cri, { key: privateKey, dsaEncoding: 'der' });
  // A mismatched pair would produce a CSR the server rejects; say so here instead.
  if (!verify(hash, cri, { key: publicKey, dsaEncoding: 'der' }, signature)) {
    throw invalidArgument('createCSR: the public key does not belong to the private key');
  }
  return der.sequence(cri, algorithm, der.bitString(signature));
}
