import * as crypto from 'node:crypto';
import { inspect } from 'node:util';
import { isTesseraError } from '../../common/errors';
import { KEY_TYPES } from './base';
import type { KeyManager, KeyType, ManagedKey } from './keymanager';

/** What a contract run needs from an implementation under test. */
export interface KeyManagerFixture {
  km: KeyManager;
  /** A fresh manager over the same storage, for implementations that persist keys. */
  reopen?: () => Promise<KeyManager>;
  cleanup(): Promise<void>;
}

const HASH: Record<KeyType, string> = { 'ec-p256': 'sha256', 'ec-p384': 'sha384', 'rsa-2048': 'sha256' };
const DATA = Buffer.from('tessera key manager contract');

function verifies(key: ManagedKey, dsaEncoding: 'der' | 'ieee-p1363'): boolean {
  const sig = key.sign(DATA, dsaEncoding);
  return crypto.verify(HASH[key.type], DATA, { key: key.publicKey, dsaEncoding }, sig);
}

/** True if a private KeyObject is reachable through properties of `root` (own, hidden, symbols). */
function reachesPrivateKey(root: unknown): boolean {
  const seen = new Set<unknown>();
  const walk = (v: unknown, depth: number): boolean => {
    if (v === null || (typeof v !== 'object' && typeof v !== 'function') || seen.has(v) || depth > 6) return false;
    seen.add(v);
    if (v instanceof crypto.KeyObject) return v.type === 'private';
    for (const k of Reflect.ownKeys(v as object)) {
      const d = Object.getOwnPropertyDescriptor(v, k);
      if (d && 'value' in d && walk(d.value, depth + 1)) return true;
    }
    return false;
  };
  return walk(root, 0);
}

const sortedIds = (keys: ManagedKey[]) => keys.map((k) => k.id).sort();
const spkiHex = (k: ManagedKey | undefined) => k?.publicKeySpki.toString('hex');

/**
 * The conformance suite every KeyManager must pass (after SPIRE's
 * `keymanager/test/keymanagertest.go`). `make` is called before each test for a
 * fresh, empty manager; `cleanup` after it.
 */
export function runKeyManagerContract(name: string, make: () => Promise<KeyManagerFixture>): void {
  describe(`KeyManager contract: ${name}`, () => {
    let f: KeyManagerFixture;
    beforeEach(async () => {
      f = await make();
    });
    afterEach(async () => {
      await f.cleanup();
    });

    describe.each(KEY_TYPES)('%s', (type) => {
      it('generates a key that signs and verifies', async () => {
        const key = await f.km.generateKey(`k-${type}`, type);
        expect(key).toMatchObject({ id: `k-${type}`, type });
        expect(key.publicKey.type).toBe('public');
        expect(verifies(key, 'der')).toBe(true);
        if (type !== 'rsa-2048') {
          expect(verifies(key, 'ieee-p1363')).toBe(true);
          // JWS wants raw r||s: 32 bytes each for P-256, 48 for P-384
          expect(key.sign(DATA, 'ieee-p1363')).toHaveLength(type === 'ec-p256' ? 64 : 96);
        }
      });

      it('caches the SPKI DER of the public key and exports it as a JWK', async () => {
        const key = await f.km.generateKey('k', type);
        expect(key.publicKeySpki.equals(key.publicKey.export({ type: 'spki', format: 'der' }))).toBe(true);
        expect(key.publicKeySpki).toBe(key.publicKeySpki); // same Buffer: exported once
        expect(key.publicKey.export({ format: 'jwk' })).toHaveProperty('kty', type === 'rsa-2048' ? 'RSA' : 'EC');
      });
    });

    it('gets, lists and deletes keys', async () => {
      const a = await f.km.generateKey('a', 'ec-p256');
      await f.km.generateKey('b', 'ec-p384');
      expect(spkiHex(await f.km.getKey('a'))).toBe(spkiHex(a));
      expect(sortedIds(await f.km.getKeys())).toEqual(['a', 'b']);
      await f.km.deleteKey('a');
      expect(await f.km.getKey('a')).toBeUndefined();
      expect(sortedIds(await f.km.getKeys())).toEqual(['b']);
      await expect(f.km.deleteKey('a')).resolves.toBeUndefined(); // missing id is not an error
    });

    it('returns undefined for an unknown id and starts empty', async () => {
      expect(await f.km.getKey('nope')).toBeUndefined();
      expect(await f.km.getKeys()).toEqual([]);
    });

    it('replaces a key when an id is generated again, even with another type', async () => {
      const first = await f.km.generateKey('x', 'ec-p256');
      const second = await f.km.generateKey('x', 'ec-p256');
      expect(spkiHex(second)).not.toBe(spkiHex(first));
      expect(spkiHex(await f.km.getKey('x'))).toBe(spkiHex(second));
      const third = await f.km.generateKey('x', 'ec-p384');
      expect((await f.km.getKey('x'))?.type).toBe('ec-p384');
      expect(spkiHex(await f.km.getKey('x'))).toBe(spkiHex(third));
      expect(await f.km.getKeys()).toHaveLength(1);
    });

    it('generates keys concurrently', async () => {
      const ids = ['c0', 'c1', 'c2', 'c3', 'c4', 'c5'];
      await Promise.all(ids.map((id) => f.km.generateKey(id, 'ec-p256')));
      expect(sortedIds(await f.km.getKeys())).toEqual(ids);
    });

    it.each(['', '../escape', 'a/b', 'a\\b', 'a b', 'x'.repeat(129), 'ü'])('rejects the key id %j', async (id) => {
      await expect(f.km.generateKey(id, 'ec-p256')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      await expect(f.km.getKey(id)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      await expect(f.km.deleteKey(id)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    });

    it('rejects an unknown key type', async () => {
      const err = await f.km.generateKey('k', 'ed25519' as KeyType).catch((e: unknown) => e);
      expect(isTesseraError(err) && err.code).toBe('INVALID_ARGUMENT');
    });

    it('never exposes the private key', async () => {
      const key = await f.km.generateKey('secret', 'ec-p256');
      for (const shown of [JSON.stringify(key), inspect(key, { depth: Infinity, showHidden: true }), inspect(f.km, { depth: Infinity, showHidden: true }), JSON.stringify(await f.km.getKeys())]) {
        expect(shown).not.toMatch(/private/i);
        expect(shown).not.toContain('BEGIN');
      }
      expect(JSON.parse(JSON.stringify(key))).toEqual({ id: 'secret', type: 'ec-p256' });
      expect(Object.keys(key).sort()).toEqual(['id', 'publicKey', 'publicKeySpki', 'sign', 'type']);
      expect(reachesPrivateKey(key)).toBe(false);
      expect(reachesPrivateKey(f.km)).toBe(false);
    });

    it('keeps keys across a reopen when the implementation persists them', async () => {
      if (!f.reopen) return; // in-memory implementations keep nothing: nothing to check
      const before = await Promise.all(KEY_TYPES.map((t) => f.km.generateKey(`p-${t}`, t)));
      await f.km.generateKey('gone', 'ec-p256');
      await f.km.deleteKey('gone');
      const again = await f.reopen();
      expect(sortedIds(await again.getKeys())).toEqual(sortedIds(before));
      for (const old of before) {
        const key = await again.getKey(old.id);
        expect(key?.type).toBe(old.type);
        expect(spkiHex(key)).toBe(spkiHex(old));
        // the reloaded private key signs for the original public key
        const sig = key!.sign(DATA, 'der');
        expect(crypto.verify(HASH[old.type], DATA, { key: old.publicKey, dsaEncoding: 'der' }, sig)).toBe(true);
      }
    });
  });
}
