import { generateKeyPair, sign, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import * as der from '../../common/der/der';

/**
 * Workload key pairs and their CSRs, on the agent's hot path: a 10,000-entry sync
 * makes 10,000 of each. Measured per 1,000 P-256 keys on this machine kind:
 * SPKI export 110 ms, PKCS#8 export 60 ms, CSR self-verify ~100 ms. The PKCS#8
 * export is needed anyway (it is what workloads receive), and OpenSSL puts the
 * public point in it, so the SPKI is read from there, and the CSR is not
 * verified here (the server verifies every CSR).
 */

const genKeyPair = promisify(generateKeyPair);

/** SPKI DER of a P-256 key up to the uncompressed point's 64 coordinate bytes. */
const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d03010703420004', 'hex');
/** AlgorithmIdentifier { id-ecPublicKey, prime256v1 }, as inside that prefix. */
const P256_ALGORITHM = P256_SPKI_PREFIX.subarray(2, 23);
const ECDSA_WITH_SHA256 = der.sequence(der.oid('1.2.840.10045.4.3.2'));

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
  const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'der' }) as Buffer;
  return { privateKey, pkcs8, spki: spkiFromPkcs8(pkcs8) ?? (publicKey.export({ type: 'spki', format: 'der' }) as Buffer) };
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
export function workloadCSR(k: WorkloadKey): Buffer {
  const cri = der.sequence(der.integer(0), der.sequence(), k.spki, der.explicit(0));
  const signature = sign('sha256', cri, { key: k.privateKey, dsaEncoding: 'der' });
  return der.sequence(cri, ECDSA_WITH_SHA256, der.bitString(signature));
}
