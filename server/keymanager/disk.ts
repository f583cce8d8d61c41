import * as crypto from 'node:crypto';
import { constants } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { inspect } from 'node:util';
import { TesseraError } from '../../common/errors';
import { effectiveUid, ensureTrustedDir } from '../../common/fs/trusted-dir';
import { assertKeyId, assertKeyType, generatePrivateKey, KEY_ID_PATTERN, keyTypeOf, managedKeyFromPrivate } from './base';
import type { KeyManager, KeyType, ManagedKey } from './keymanager';

const KEY_SUFFIX = '.key';
/** Temp files end in `.tmp`, never `.key`, so no key id can collide with one. */
const TEMP_FILE = /\.key\.[0-9a-f]{16}\.tmp$/;

const precondition = (msg: string, cause?: unknown) => new TesseraError('FAILED_PRECONDITION', msg, { cause });

/**
 * A KeyManager that keeps each key as a plain PKCS#8 DER file `<dir>/<id>.key`
 * (mode 0600, in a 0700 directory), so keys survive a restart. The key type is
 * read back from the DER itself (curve / modulus), so there is no sidecar that
 * could disagree with the key, and the files stay readable by
 * `openssl pkey -inform DER`.
 *
 * Writes are atomic (temp file created 0600 with O_EXCL, fsync, rename, fsync of
 * the directory): a crash leaves the old key or the new one, never half a key.
 * Keys are loaded on first use (or by {@link DiskKeyManager.open}); a key file
 * that is not a regular file, is accessible by group or others, or holds an
 * unsupported key fails the load with FAILED_PRECONDITION naming the file.
 * One process per directory: the files are not locked.
 */
export class DiskKeyManager implements KeyManager {
  readonly #dir: string;
  #keys = new Map<string, ManagedKey>();
  #loaded: Promise<void> | undefined;
  /** Serialises file writes with map updates, so the map always matches the disk. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(dir: string) {
    this.#dir = path.resolve(dir);
  }

  /** Creates the directory if needed and loads every key now, so bad files fail at startup. */
  static async open(dir: string): Promise<DiskKeyManager> {
    const km = new DiskKeyManager(dir);
    await km.#load();
    return km;
  }

  async generateKey(id: string, type: KeyType): Promise<ManagedKey> {
    assertKeyId(id);
    assertKeyType(type);
    await this.#load();
    const privateKey = await generatePrivateKey(type);
    const key = managedKeyFromPrivate(id, type, privateKey);
    const der = privateKey.export({ type: 'pkcs8', format: 'der' });
    try {
      await this.#serialize(async () => {
        await this.#writeAtomic(this.#file(id), der);
        this.#keys.set(id, key);
      });
    } finally {
      der.fill(0); // do not leave a plaintext copy of the key on the heap
    }
    return key;
  }

  async getKey(id: string): Promise<ManagedKey | undefined> {
    assertKeyId(id);
    await this.#load();
    return this.#keys.get(id);
  }

  async getKeys(): Promise<ManagedKey[]> {
    await this.#load();
    return [...this.#keys.values()];
  }

  async deleteKey(id: string): Promise<void> {
    assertKeyId(id);
    await this.#load();
    await this.#serialize(async () => {
      await fs.rm(this.#file(id), { force: true });
      await this.#syncDir();
      this.#keys.delete(id);
    });
  }

  [inspect.custom](): string {
    return `DiskKeyManager { dir: ${JSON.stringify(this.#dir)}, keys: [${[...this.#keys.keys()].join(', ')}] }`;
  }

  /** `id` is validated by every caller ([A-Za-z0-9._-]{1,128}), so this stays inside the dir. */
  #file(id: string): string {
    return path.join(this.#dir, id + KEY_SUFFIX);
  }

  #serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #load(): Promise<void> {
    // Memoised; a failed load is forgotten so that a retry after the fix (chmod) works.
    this.#loaded ??= this.#loadAll().catch((err: unknown) => {
      this.#loaded = undefined;
      throw err;
    });
    return this.#loaded;
  }

  async #loadAll(): Promise<void> {
    // A directory another user owns, or others can write to, lets them plant their own key as ours.
    ensureTrustedDir(this.#dir, { mode: 0o700, what: 'key directory' });
    const keys = new Map<string, ManagedKey>();
    for (const name of (await fs.readdir(this.#dir)).sort()) {
      const file = path.join(this.#dir, name);
      if (TEMP_FILE.test(name)) {
        await fs.rm(file, { force: true }); // left by a crash mid-write; the rename never happened
        continue;
      }
      const id = name.slice(0, -KEY_SUFFIX.length);
      if (!name.endsWith(KEY_SUFFIX) || !KEY_ID_PATTERN.test(id)) continue; // not ours
      keys.set(id, await readKeyFile(id, file));
    }
    this.#keys = keys;
  }

  async #writeAtomic(file: string, data: Buffer): Promise<void> {
    const tmp = `${file}.${crypto.randomBytes(8).toString('hex')}.tmp`;
    // 'wx' = O_CREAT|O_EXCL: never reuses (or follows a symlink at) an existing path.
    const fh = await fs.open(tmp, 'wx', 0o600);
    let renamed = false;
    try {
      await fh.writeFile(data);
      await fh.sync();
      await fh.close();
      await fs.rename(tmp, file);
      renamed = true;
      await this.#syncDir();
    } finally {
      if (!renamed) {
        await fh.close().catch(() => undefined);
        await fs.rm(tmp, { force: true });
      }
    }
  }

  /** Makes a rename or unlink durable: the directory entry itself must reach the disk. */
  async #syncDir(): Promise<void> {
    const dh = await fs.open(this.#dir, constants.O_RDONLY);
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  }
}

async function readKeyFile(id: string, file: string): Promise<ManagedKey> {
  let der: Buffer;
  // O_NOFOLLOW + fstat on the same descriptor: no symlink, and no swap between check and read.
  const fh = await fs.open(file, constants.O_RDONLY | constants.O_NOFOLLOW).catch((err: NodeJS.ErrnoException) => {
    throw err.code === 'ELOOP' ? precondition(`key file ${file} is a symbolic link; replace it with the file itself`) : err;
  });
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw precondition(`key file ${file} is not a regular file`);
    const euid = effectiveUid();
    if (euid !== undefined && st.uid !== euid && st.uid !== 0) throw precondition(`key file ${file} is owned by uid ${st.uid}, not by this process (uid ${euid}) or root`);
    if ((st.mode & 0o077) !== 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
      throw precondition(`key file ${file} is accessible by group or others (mode ${mode}); run chmod 600 ${file}`);
    }
    der = await fh.readFile();
  } finally {
    await fh.close();
  }
  try {
    let privateKey: crypto.KeyObject;
    try {
      privateKey = crypto.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    } catch (err) {
      throw precondition(`key file ${file} is not a PKCS#8 DER private key`, err);
    }
    const type = keyTypeOf(privateKey);
    if (!type) throw precondition(`key file ${file} holds an unsupported key type (want EC P-256, EC P-384 or RSA-2048)`);
    return managedKeyFromPrivate(id, type, privateKey);
  } finally {
    der.fill(0);
  }
}
