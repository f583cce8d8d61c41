import * as der from '../der/der';

/**
 * ECDSA signature malleability. For any valid signature (r, s), (r, n − s) is
 * valid too (n: the curve order). Anything that identifies a signed object by the
 * hash of its encoding including the signature (a certificate fingerprint, a
 * token string) can therefore be given a second identity by whoever holds a copy,
 * without the signer's key. Tessera issues only "low-S" signatures (s ≤ n/2) in
 * JWT-SVIDs, rejects high-S ones for its own trust domain, and does not identify
 * x509pop nodes by certificate fingerprints (see server/attestor/node/x509pop.ts).
 */

/** Curve orders (SEC 2 / FIPS 186-4; as `openssl ecparam -param_enc explicit -text` prints them). */
export const CURVE_ORDER: Record<string, bigint> = {
  'P-256': 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
  'P-384': 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
  'P-521': 0x01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409n,
};

/** OpenSSL curve names (KeyObject.asymmetricKeyDetails.namedCurve) to JOSE names. */
export const CURVE_NAME: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521', 'P-256': 'P-256', 'P-384': 'P-384', 'P-521': 'P-521' };

const toBig = (b: Uint8Array): bigint => (b.length === 0 ? 0n : BigInt('0x' + Buffer.from(b).toString('hex')));
const toBytes = (v: bigint, len: number): Buffer => Buffer.from(v.toString(16).padStart(len * 2, '0'), 'hex');

/** True when the s half of a JOSE (IEEE P1363, r || s) signature is above n/2. */
export function isHighSP1363(sig: Uint8Array, curve: string): boolean {
  const n = CURVE_ORDER[curve];
  if (!n || sig.length % 2 !== 0) return false;
  return toBig(sig.subarray(sig.length / 2)) > n / 2n;
}

/** The P1363 signature with s replaced by n − s when s is above n/2 (equally valid, canonical). */
export function lowSP1363(sig: Buffer, curve: string): Buffer {
  const n = CURVE_ORDER[curve];
  if (!n || !isHighSP1363(sig, curve)) return sig;
  const half = sig.length / 2;
  return Buffer.concat([sig.subarray(0, half), toBytes(n - toBig(sig.subarray(half)), half)]);
}

/**
 * The same certificate with its ECDSA signature's s replaced by n − s: a second,
 * equally valid encoding with another fingerprint. Undefined when the certificate
 * is not ECDSA-signed in the form the reader expects.
 * @param curve the issuer key's curve ('P-256', ...)
 */
export function withFlippedSignatureS(certDer: Buffer, curve: string): Buffer | undefined {
  const n = CURVE_ORDER[curve];
  if (!n) return undefined;
  try {
    const cert = der.expectTLV(certDer, 0, der.TAG.SEQUENCE, 'certificate');
    const [tbs, alg, sigBits] = der.readChildren(certDer, cert);
    if (!tbs || !alg || !sigBits || sigBits.tag !== der.TAG.BIT_STRING || certDer[sigBits.start] !== 0) return undefined;
    const sigDer = certDer.subarray(sigBits.start + 1, sigBits.end);
    const seq = der.expectTLV(sigDer, 0, der.TAG.SEQUENCE, 'ecdsa signature');
    const [r, s] = der.readChildren(sigDer, seq);
    if (!r || !s) return undefined;
    const flipped = der.sequence(sigDer.subarray(r.offset, r.end), der.integer(toBytes(n - toBig(sigDer.subarray(s.start, s.end)), 66)));
    return der.sequence(certDer.subarray(tbs.offset, tbs.end), certDer.subarray(alg.offset, alg.end), der.bitString(flipped));
  } catch {
    return undefined;
  }
}

/** The DER of a certificate's tbsCertificate: what its signature covers, the same in every re-encoding of the signature. */
export function tbsCertificate(certDer: Buffer): Buffer {
  const cert = der.expectTLV(certDer, 0, der.TAG.SEQUENCE, 'certificate');
  const tbs = der.expectTLV(certDer, cert.start, der.TAG.SEQUENCE, 'tbsCertificate', cert.end);
  return certDer.subarray(tbs.offset, tbs.end);
}
