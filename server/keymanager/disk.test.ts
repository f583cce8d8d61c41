import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { inspect } from 'node:util';
import { runKeyManagerContract } from './contract';
import { DiskKeyManager } from './disk';

const tempDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-km-'));
const mode = (p: string) => fs.statSync(p).mode & 0o777;

runKeyManagerContract('disk', async () => {
  const dir = tempDir();
  return {
    km: new DiskKeyManager(dir),
    reopen: () => DiskKeyManager.open(dir),
    cleanup: () => fs.promises.rm(dir, { recursive: true, force: true }),
  };
});

describe('DiskKeyManager', () => {
  let root: string;
  beforeEach(() => {
    root = tempDir();
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  it('creates the directory 0700 and key files 0600, leaving no temp files', async () => {
    const dir = path.join(root, 'nested', 'keys');
    const km = await DiskKeyManager.open(dir);
    expect(mode(dir)).toBe(0o700);
    await km.generateKey('jwt-1', 'ec-p256');
    expect(fs.readdirSync(dir)).toEqual(['jwt-1.key']);
    expect(mode(path.join(dir, 'jwt-1.key'))).toBe(0o600);
  });

  it('stores plain PKCS#8 DER that matches the public key', async () => {
    const km = new DiskKeyManager(root);
    const key = await km.generateKey('ca', 'ec-p384');
    const der = fs.readFileSync(path.join(root, 'ca.key'));
    const priv = crypto.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    expect(crypto.createPublicKey(priv).export({ type: 'spki', format: 'der' }).equals(key.publicKeySpki)).toBe(true);
    // the private bytes appear in no rendering of the key or the manager
    const d = priv.export({ format: 'jwk' }).d!;
    for (const shown of [inspect(key, { showHidden: true, depth: Infinity }), inspect(km, { showHidden: true }), JSON.stringify(key)]) {
      expect(shown).not.toContain(d);
      expect(shown).not.toContain(der.toString('base64'));
    }
  });

  it('survives a restart with a lazily loading manager', async () => {
    const key = await new DiskKeyManager(root).generateKey('rsa', 'rsa-2048');
    const again = new DiskKeyManager(root);
    const loaded = await again.getKey('rsa');
    expect(loaded?.type).toBe('rsa-2048');
    expect(loaded?.publicKeySpki.equals(key.publicKeySpki)).toBe(true);
    expect(loaded?.publicKey.export({ format: 'jwk' }).kty).toBe('RSA'); // DER-reloaded keys are JWK-safe
  });

  it('deletes the key file', async () => {
    const km = new DiskKeyManager(root);
    await km.generateKey('a', 'ec-p256');
    await km.deleteKey('a');
    expect(fs.readdirSync(root)).toEqual([]);
  });

  it('never writes outside its directory for a bad id', async () => {
    const dir = path.join(root, 'keys');
    const km = await DiskKeyManager.open(dir);
    for (const id of ['../evil', '..%2fevil', '/abs']) {
      await expect(km.generateKey(id, 'ec-p256')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    }
    expect(fs.readdirSync(root)).toEqual(['keys']);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('refuses a group- or world-readable key file, naming the file and the fix', async () => {
    await new DiskKeyManager(root).generateKey('ca', 'ec-p256');
    const file = path.join(root, 'ca.key');
    fs.chmodSync(file, 0o644);
    const err = await DiskKeyManager.open(root).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'FAILED_PRECONDITION' });
    expect((err as Error).message).toContain(file);
    expect((err as Error).message).toContain(`chmod 600 ${file}`);
    // a lazy manager fails on first use, and works once the file is fixed
    const km = new DiskKeyManager(root);
    await expect(km.getKeys()).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    fs.chmodSync(file, 0o600);
    expect(await km.getKey('ca')).toBeDefined();
  });

  it('refuses a symlinked key file and a directory others can write to', async () => {
    const other = path.join(root, 'elsewhere.der');
    fs.writeFileSync(other, 'x', { mode: 0o600 });
    const dir = path.join(root, 'keys');
    fs.mkdirSync(dir, { mode: 0o700 });
    fs.symlinkSync(other, path.join(dir, 'ca.key'));
    await expect(DiskKeyManager.open(dir)).rejects.toThrow(/symbolic link/);
    fs.unlinkSync(path.join(dir, 'ca.key'));
    fs.chmodSync(dir, 0o777);
    await expect(DiskKeyManager.open(dir)).rejects.toThrow(`chmod go-w ${dir}`);
  });

  it('refuses a key file holding an unsupported key or garbage', async () => {
    const { privateKey } = await new Promise<{ privateKey: crypto.KeyObject }>((res, rej) =>
      crypto.generateKeyPair('ed25519', {}, (err, _pub, privateKey) => (err ? rej(err) : res({ privateKey }))),
    );
    const file = path.join(root, 'ed.key');
    fs.writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'der' }), { mode: 0o600 });
    await expect(DiskKeyManager.open(root)).rejects.toThrow(/unsupported key type/);
    fs.writeFileSync(file, 'not a key', { mode: 0o600 });
    await expect(DiskKeyManager.open(root)).rejects.toThrow(/not a PKCS#8/);
  });

  it('removes temp files left by a crash and ignores files that are not keys', async () => {
    fs.writeFileSync(path.join(root, 'ca.key.0123456789abcdef.tmp'), 'half a key', { mode: 0o600 });
    fs.writeFileSync(path.join(root, 'README'), 'hello', { mode: 0o644 });
    const km = await DiskKeyManager.open(root);
    expect(await km.getKeys()).toEqual([]);
    expect(fs.readdirSync(root)).toEqual(['README']);
  });
});
