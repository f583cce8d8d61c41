import type { KeyObject } from 'node:crypto';

/**
 * The KeyManager seam (after SPIRE's keymanager plugin): every key is a signer
 * with an id, and the private key never leaves the key manager. Implementations:
 * `memory` (nothing persisted) and `disk` (PKCS#8 files, mode 0600, in the data
 * directory; keys survive a restart). Both pass `contract.ts`.
 */
export type KeyType = 'ec-p256' | 'ec-p384' | 'rsa-2048';

export interface ManagedKey {
  readonly id: string;
  readonly type: KeyType;
  /** The public key; safe to hand out. */
  readonly publicKey: KeyObject;
  /** SubjectPublicKeyInfo DER of the public key (cached). */
  readonly publicKeySpki: Buffer;
  /**
   * Signs `data` with the key's natural hash (SHA-256 for P-256 and RSA-2048,
   * SHA-384 for P-384). Synchronous on purpose: this is the SVID hot path and a
   * `crypto.sign` with a KeyObject is ~16x faster than any async path.
   * `dsaEncoding` 'der' is what X.509 wants, 'ieee-p1363' what JWS wants.
   */
  sign(data: Uint8Array, dsaEncoding?: 'der' | 'ieee-p1363'): Buffer;
  /**
   * The private key, for this process's own signing workers only
   * (server/ca/signing/): a KeyObject posted to a worker thread is cloned inside
   * the process and cannot be serialized, logged or written anywhere by that.
   * Absent for keys that cannot leave their store (an HSM-backed manager).
   */
  readonly keyForWorkers?: () => KeyObject;
}

export interface KeyManager {
  /** Generates a new key under `id`, replacing any existing key with that id. */
  generateKey(id: string, type: KeyType): Promise<ManagedKey>;
  /** The key with that id, or undefined. */
  getKey(id: string): Promise<ManagedKey | undefined>;
  getKeys(): Promise<ManagedKey[]>;
  /** Deletes the key; a missing id is not an error. */
  deleteKey(id: string): Promise<void>;
}
