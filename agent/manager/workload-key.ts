import { generateKeyPair, sign, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import * as der from '../../common/der/der';

/**
 * Workload key pairs and their CSRs, on the agent's hot path: a 10,000-entry sync
 * makes 10,000 of each. Measured per key on this machine kind (OpenSSL 3, Node 20):
 * PKCS#8 DER export 68–80 µs, SPKI export 120–140 µs, but SEC1 (RFC 5915
 * ECPrivateKey) export 13 µs: OpenSSL 3's generic encoders are slow, the EC one is
 * not. So the key is exported once as SEC1 and the PKCS#8 and SPKI are assembled
 * from its fields here (a few µs), byte for byte what OpenSSL's own PKCS#8 export
 * gives (a unit test compares them); that took ~1 s of main thread off a
 * 10,000-entry sync. The CSR is signed on the libuv thread pool, and not
 * self-verified (the server verifies every CSR).
 */
const genKeyPair = promisify(generateKeyPair);

/** SPKI DER of a P-256 key up to the uncompressed point's 64 coordinate bytes. */
const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d03010703420004', 'hex');
/** AlgorithmIdentifier { id-ecPublicKey, prime256v1 }, as inside that prefix. */
const P256_ALGORITHM = P256_SPKI_PREFIX.subarray(2, 23);
/** SEC1 up to the private key: SEQUENCE (119 bytes), version 1, OCTET STRING (32 bytes) */
const SEC1_HEAD = Buffer.from('3077020101' + '0420', 'hex');
/** SEC1 between the private key and the point: `[0] { prime256v1 }`, then `[1] { BIT STRING 00 04 ...` */
const SEC1_MIDDLE = Buffer.concat([Buffer.from('a00a', 'hex'), P256_SPKI_PREFIX.subarray(13, 23), Buffer.from('a14403420004', 'hex')]);
/** PKCS#8 up to the private key: SEQUENCE (135), version 0, the algorithm, OCTET STRING (109) { ECPrivateKey SEQUENCE (107), version 1, OCTET STRING (32) */
const PKCS8_HEAD = Buffer.concat([Buffer.from('308187020100', 'hex'), P256_ALGORITHM, Buffer.from('046d306b020101' + '0420', 'hex')]);
const ECDSA_WITH_SHA256 = der.sequence(der.oid('1.2.840.10045.4.3.2'));
const signAsync = promisify(sign);

/**
 * A fresh P-256 key pair. Async generation on purpose: a key made by
 * generateKeyPairSync can deadlock Node 20 when JWK-exported later (the export holds a lock a GC callback wants again; the process hangs at 0 % CPU).
 */
export async function newKeyPair(): Promise<{ privateKey: KeyObject; publicKey: KeyObject }> {
  return genKeyPair('ec', { namedCurve: 'P-256' });
}

export interface WorkloadKey {
  privateKey: KeyObject;
  /** unencrypted PKCS#8 DER (what the Workload API hands out) */
  pkcs8: Buffer;
  /** SubjectPublicKeyInfo DER */
  spki: Buffer;
}

/** A new workload key (made on this node; the private key is never sent anywhere). */
export async function newWorkloadKey(): Promise<WorkloadKey> {
  const { privateKey, publicKey } = await newKeyPair();
  const fast = p256FromSec1(privateKey.export({ type: 'sec1', format: 'der' }) as Buffer);
  if (fast) return { privateKey, ...fast };
  const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'der' }) as Buffer;
  return { privateKey, pkcs8, spki: spkiFromPkcs8(pkcs8) ?? (publicKey.export({ type: 'spki', format: 'der' }) as Buffer) };
}

/**
 * PKCS#8 (RFC 5958) and SPKI of a P-256 key from its SEC1 DER. OpenSSL writes that
 * as one fixed 121-byte layout,
 * `30 77 | 02 01 01 | 04 20 d(32) | a0 0a <prime256v1 OID> | a1 44 03 42 00 04 x y`,
 * so this checks the fixed bytes and splices: the PKCS#8 carries the curve in its
 * AlgorithmIdentifier, and its inner ECPrivateKey drops `[0] parameters`, as
 * OpenSSL and Go write it. Undefined for anything else (the caller then uses the
 * slow exports).
 */
export function p256FromSec1(sec1: Buffer): { pkcs8: Buffer; spki: Buffer } | undefined {
  if (sec1.length !== 121 || !sec1.subarray(0, 7).equals(SEC1_HEAD) || !sec1.subarray(39, 57).equals(SEC1_MIDDLE)) return undefined;
  const d = sec1.subarray(7, 39);
  const xy = sec1.subarray(57);
  return {
    pkcs8: Buffer.concat([PKCS8_HEAD, d, SEC1_MIDDLE.subarray(12), xy]),
    spki: Buffer.concat([P256_SPKI_PREFIX, xy]),
  };
}

/**
 * The SPKI of a P-256 PKCS#8 key from the public point its ECPrivateKey carries
 * (`[1] publicKey`, RFC 5915); undefined when the key is not P-256 or the point is absent.
 */
export function spkiFromPkcs8(pkcs8: Buffer): Buffer | undefined {
  try {
    const info = der.expectTLV(pkcs8, 0, der.TAG.SEQUENCE, 'privateKeyInfo');
    const [, alg, key] = der.readChildren(pkcs8, info);
    if (!alg || !key || !pkcs8.subarray(alg.offset, alg.end).equals(P256_ALGORITHM) || key.tag !== der.TAG.OCTET_STRING) return undefined;
    const ec = der.expectTLV(pkcs8, key.start, der.TAG.SEQUENCE, 'ecPrivateKey', key.end);
    const pub = der.readChildren(pkcs8, ec).find((t) => t.tag === 0xa1);
    if (!pub) return undefined;
    const bits = der.expectTLV(pkcs8, pub.start, der.TAG.BIT_STRING, 'publicKey', pub.end);
    const point = pkcs8.subarray(bits.start + 1, bits.end);
    if (pkcs8[bits.start] !== 0 || point.length !== 65 || point[0] !== 0x04) return undefined;
    return Buffer.concat([P256_SPKI_PREFIX, point.subarray(1)]);
  } catch {
    return undefined;
  }
}

/**
 * A DER PKCS#10 CSR for a workload key, the same as common createCSR makes
 * (empty subject, no attributes, ECDSA with SHA-256) from the SPKI already at hand.
 */
export async function workloadCSR(k: WorkloadKey): Promise<Buffer> {
  const cri = der.sequence(der.integer(0), der.sequence(), k.spki, der.explicit(0));
  const signature = await signAsync('sha256', cri, { key: k.privateKey, dsaEncoding: 'der' });
  return der.sequence(cri, ECDSA_WITH_SHA256, der.bitString(signature));
}
