import { availableParallelism } from 'node:os';
import { generateKeyPair, sign, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import * as der from '../../common/der/der';
import { optionalCryptoAddon } from '../../common/native/optional-addon';

/**
 * Workload key pairs and their CSRs, on the agent's hot path: a 10,000-entry sync
 * makes 10,000 of each.
 *
 * The fast path is the @tessera/p256-keys addon: it makes a batch of P-256 keys
 * on libuv pool threads and has each sign its own CSR's certificationRequestInfo
 * (the bytes around the SPKI's coordinates come from here), with OpenSSL's
 * EC_KEY_generate_key and ECDSA_sign on one reused EC_KEY. Measured on this
 * machine kind for 10,000 keys and CSRs: ~0.4 CPU-s, none on the main thread,
 * against ~1.2 CPU-s through KeyObjects (one pool job per key and one per
 * signature, and ~30-45 µs per key on the main thread for the first export of a
 * fresh key, where OpenSSL 3 converts its provider key to a legacy one).
 *
 * Without the addon (not built, or TESSERA_NATIVE_ECDSA=0) each key is a
 * KeyObject made by async generateKeyPair, exported once as SEC1 (RFC 5915
 * ECPrivateKey: 13 µs against 68–80 µs for PKCS#8 and 120–140 µs for SPKI, as
 * OpenSSL 3's generic encoders are slow and the EC one is not), and its CSR
 * signed on the libuv pool.
 *
 * Either way the PKCS#8 and SPKI are assembled from the key's fields here, byte
 * for byte what OpenSSL's own exports give (a unit test compares them), and the
 * CSR is not self-verified (the server verifies every CSR).
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
  /** unencrypted PKCS#8 DER (what the Workload API hands out) */
  pkcs8: Buffer;
  /** SubjectPublicKeyInfo DER */
  spki: Buffer;
}

/** A workload key and the DER PKCS#10 CSR it signed (empty subject, no attributes, ECDSA with SHA-256). */
export interface WorkloadKeyWithCSR extends WorkloadKey {
  csr: Buffer;
}

/**
 * `count` new workload keys, each with its CSR (made on this node; the private
 * keys are never sent anywhere).
 */
export async function newWorkloadKeys(count: number): Promise<WorkloadKeyWithCSR[]> {
  if (count === 0) return [];
  const generate = nativeGenerate;
  if (!generate) {
    return Promise.all(
      Array.from({ length: count }, async () => {
        const k = await newWorkloadKey();
        return { pkcs8: k.pkcs8, spki: k.spki, csr: await workloadCSR(k) };
      }),
    );
  }
  // One pool job per core (at least NATIVE_MIN_PER_JOB keys each): the pool has 4 threads, the machine maybe fewer cores.
  const jobs = Math.max(1, Math.min(availableParallelism(), Math.floor(count / NATIVE_MIN_PER_JOB)));
  const sizes = Array.from({ length: jobs }, (_, j) => Math.floor(count / jobs) + (j < count % jobs ? 1 : 0));
  const parts = await Promise.all(sizes.map((n) => generate(n, CRI_PREFIX, CRI_SUFFIX)));
  const out: WorkloadKeyWithCSR[] = [];
  for (const part of parts) {
    for (let i = 0; i < part.signatures.length; i++) {
      const d = part.privateKeys.subarray(i * 32, i * 32 + 32);
      const xy = part.publicKeys.subarray(i * 64, i * 64 + 64);
      const cri = Buffer.concat([CRI_PREFIX, xy, CRI_SUFFIX]);
      out.push({
        pkcs8: Buffer.concat([PKCS8_HEAD, d, SEC1_MIDDLE.subarray(12), xy]),
        spki: Buffer.concat([P256_SPKI_PREFIX, xy]),
        csr: der.sequence(cri, ECDSA_WITH_SHA256, der.bitString(part.signatures[i]!)),
      });
    }
    part.privateKeys.fill(0); // the scalars now live only in the PKCS#8 buffers
  }
  return out;
}

const NATIVE_MIN_PER_JOB = 64;

/**
 * The certificationRequestInfo of a workload CSR around the key's 64 coordinate
 * bytes: `SEQUENCE { INTEGER 0, SEQUENCE {} (empty subject), SPKI, [0] {} (no attributes) }`.
 */
const [CRI_PREFIX, CRI_SUFFIX] = ((): [Buffer, Buffer] => {
  const spki = Buffer.concat([P256_SPKI_PREFIX, Buffer.alloc(64)]);
  const cri = der.sequence(der.integer(0), der.sequence(), spki, der.explicit(0));
  const at = cri.indexOf(P256_SPKI_PREFIX) + P256_SPKI_PREFIX.length;
  return [cri.subarray(0, at), cri.subarray(at + 64)];
})();

type NativeGenerate = (count: number, prefix: Buffer, suffix: Buffer) => Promise<{ privateKeys: Buffer; publicKeys: Buffer; signatures: Buffer[] }>;

/** The native batch generator, unless disabled by TESSERA_NATIVE_ECDSA=0 or not built. */
const loadNativeGenerate = () => optionalCryptoAddon<NativeGenerate>('@tessera/p256-keys', 'generateSigned');
let nativeGenerate: NativeGenerate | undefined = loadNativeGenerate();

/** Which generator {@link newWorkloadKeys} uses; `useNativeKeys(false)` switches to the KeyObject path (tests). */
export function workloadKeyGenerator(): 'native' | 'keyobject' {
  return nativeGenerate ? 'native' : 'keyobject';
}
export function useNativeKeys(on: boolean): void {
  nativeGenerate = on ? loadNativeGenerate() : undefined;
}

/** A KeyObject workload key: the path without the addon. */
export interface KeyObjectWorkloadKey extends WorkloadKey {
  privateKey: KeyObject;
}

/** A new workload key as a KeyObject (the path without the addon). */
export async function newWorkloadKey(): Promise<KeyObjectWorkloadKey> {
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
export async function workloadCSR(k: KeyObjectWorkloadKey): Promise<Buffer> {
  const cri = der.sequence(der.integer(0), der.sequence(), k.spki, der.explicit(0));
  const signature = await signAsync('sha256', cri, { key: k.privateKey, dsaEncoding: 'der' });
  return der.sequence(cri, ECDSA_WITH_SHA256, der.bitString(signature));
}
