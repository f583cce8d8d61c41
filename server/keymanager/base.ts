import * as crypto from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { inspect } from 'node:util';
import { invalidArgument } from '../../common/errors';
import type { KeyType, ManagedKey } from './keymanager';

/** Every key type a key manager can generate, in a stable order. */
export const KEY_TYPES: readonly KeyType[] = ['ec-p256', 'ec-p384', 'rsa-2048'];

/**
 * Key ids: 1-128 of `A-Z a-z 0-9 . _ -`. No `/` (or anything else), so an id
 * used as a file name can never leave the key directory.
 */
export const KEY_ID_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;

/** Throws INVALID_ARGUMENT unless `id` is a well-formed key id. */
export function assertKeyId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || !KEY_ID_PATTERN.test(id)) {
    throw invalidArgument('key id must be 1-128 characters of A-Z a-z 0-9 . _ -');
  }
}

/** Throws INVALID_ARGUMENT unless `type` is a supported key type. */
export function assertKeyType(type: unknown): asserts type is KeyType {
  if (!(KEY_TYPES as readonly unknown[]).includes(type)) {
    throw invalidArgument(`key type must be one of ${KEY_TYPES.join(', ')}`);
  }
}

/**
 * Generates a private key of `type`. Always the async `crypto.generateKeyPair`:
 * on Node 20 a key from `generateKeyPairSync` can deadlock a later JWK export
 * (on Node 20, JWK-exporting a generateKeyPairSync key can hang the process: a lock held by the export is wanted again by a GC callback), and jose JWK-exports any KeyObject it is handed.
 */
export async function generatePrivateKey(type: KeyType): Promise<KeyObject> {
  assertKeyType(type);
  const { privateKey } = await new Promise<{ privateKey: KeyObject }>((resolve, reject) => {
    const done = (err: Error | null, _pub: KeyObject, privateKey: KeyObject) =>
      err ? reject(err) : resolve({ privateKey });
    if (type === 'rsa-2048') crypto.generateKeyPair('rsa', { modulusLength: 2048, publicExponent: 65537 }, done);
    else crypto.generateKeyPair('ec', { namedCurve: type === 'ec-p256' ? 'P-256' : 'P-384' }, done);
  });
  return privateKey;
}

/**
 * The key type of a private key, or undefined if it is not one we support
 * (other curve, other RSA size or exponent, Ed25519, ...). Lets a PKCS#8 file
 * describe itself, with no separate type record to get out of step.
 */
export function keyTypeOf(key: KeyObject): KeyType | undefined {
  const d = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') {
    if (d.namedCurve === 'prime256v1') return 'ec-p256';
    if (d.namedCurve === 'secp384r1') return 'ec-p384';
  }
  if (key.asymmetricKeyType === 'rsa' && d.modulusLength === 2048 && d.publicExponent === 65537n) return 'rsa-2048';
  return undefined;
}

/** Generates a new key and wraps it as a ManagedKey. */
export async function generateManagedKey(id: string, type: KeyType): Promise<ManagedKey> {
  assertKeyId(id);
  return managedKeyFromPrivate(id, type, await generatePrivateKey(type));
}

/**
 * Wraps a private key as a ManagedKey. The private KeyObject is captured only by
 * the `sign` closure: it is no property of the result, so neither
 * `JSON.stringify`, `util.inspect` nor property walking can reach it.
 * Throws INVALID_ARGUMENT if the key is not private or does not match `type`.
 */
export function managedKeyFromPrivate(id: string, type: KeyType, privateKey: KeyObject): ManagedKey {
  assertKeyId(id);
  assertKeyType(type);
  if (privateKey.type !== 'private') throw invalidArgument(`key ${id} is not a private key`);
  const actual = keyTypeOf(privateKey);
  if (actual !== type) throw invalidArgument(`key ${id} is ${actual ?? 'an unsupported key'}, not ${type}`);

  // Export the SPKI once (about 4,000/s: too slow for every call) and re-import
  // the public key from that DER: a DER-imported key is safe to JWK-export even
  // if the caller's private key came from generateKeyPairSync.
  const publicKeySpki = crypto.createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  const publicKey = crypto.createPublicKey({ key: publicKeySpki, format: 'der', type: 'spki' });
  const hash = type === 'ec-p384' ? 'sha384' : 'sha256';
  const isRSA = type === 'rsa-2048';

  const sign = (data: Uint8Array, dsaEncoding: 'der' | 'ieee-p1363' = 'der'): Buffer =>
    isRSA
      ? crypto.sign(hash, data, { key: privateKey, padding: crypto.constants.RSA_PKCS1_PADDING })
      : crypto.sign(hash, data, { key: privateKey, dsaEncoding });

  const describe = { id, type };
  const key: ManagedKey & { toJSON(): object } = {
    id,
    type,
    publicKey,
    publicKeySpki,
    sign,
    toJSON: () => ({ ...describe }),
  };
  // Non-enumerable so spreading or Object.keys() show only the data fields.
  Object.defineProperty(key, 'toJSON', { enumerable: false });
  Object.defineProperty(key, 'keyForWorkers', { enumerable: false, value: () => privateKey });
  Object.defineProperty(key, inspect.custom, {
    enumerable: false,
    value: () => `ManagedKey { id: ${JSON.stringify(id)}, type: '${type}' }`,
  });
  return Object.freeze(key);
}
