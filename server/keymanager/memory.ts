import { inspect } from 'node:util';
import { assertKeyId, generateManagedKey } from './base';
import type { KeyManager, KeyType, ManagedKey } from './keymanager';

/**
 * A KeyManager that keeps keys in process memory only: every key is lost when
 * the process exits. For tests and for deployments that accept a new CA on
 * every restart (SPIRE's `memory` key manager).
 */
export class MemoryKeyManager implements KeyManager {
  readonly #keys = new Map<string, ManagedKey>();

  async generateKey(id: string, type: KeyType): Promise<ManagedKey> {
    const key = await generateManagedKey(id, type);
    this.#keys.set(id, key);
    return key;
  }

  async getKey(id: string): Promise<ManagedKey | undefined> {
    assertKeyId(id);
    return this.#keys.get(id);
  }

  async getKeys(): Promise<ManagedKey[]> {
    return [...this.#keys.values()];
  }

  async deleteKey(id: string): Promise<void> {
    assertKeyId(id);
    this.#keys.delete(id);
  }

  [inspect.custom](): string {
    return `MemoryKeyManager { keys: [${[...this.#keys.keys()].join(', ')}] }`;
  }
}
