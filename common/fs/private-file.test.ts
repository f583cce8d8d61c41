import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readTrustedFile, readTrustedFileSync, removeTempFiles, writeFileAtomic } from './private-file';

let dir: string;
beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'tpf-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));
const mode = (p: string) => statSync(p).mode & 0o777;
const opts = { what: 'test file', private: true };

describe('writeFileAtomic', () => {
  test('replaces the file whole with exactly the mode asked for, whatever the umask', async () => {
    const f = path.join(dir, 'x.json');
    writeFileSync(f, 'old', { mode: 0o644 });
    const old = process.umask(0);
    try {
      await writeFileAtomic(f, 'new', 0o600);
      expect(mode(f)).toBe(0o600);
      process.umask(0o077);
      await writeFileAtomic(f, 'newer', 0o644);
      expect(mode(f)).toBe(0o644);
    } finally {
      process.umask(old);
    }
    expect(readFileSync(f, 'utf8')).toBe('newer');
    expect(readdirSync(dir)).toEqual(['x.json']);
  });

  test('replaces a symlink instead of writing through it', async () => {
    const target = path.join(dir, 'victim');
    writeFileSync(target, 'untouched');
    const f = path.join(dir, 'key.pem');
    symlinkSync(target, f);
    await writeFileAtomic(f, 'secret', 0o600);
    expect(readFileSync(target, 'utf8')).toBe('untouched');
    expect(readFileSync(f, 'utf8')).toBe('secret');
    expect(statSync(f).isFile()).toBe(true);
  });

  test('a failed write leaves the old content and no temp file', async () => {
    const f = path.join(dir, 'x.json');
    writeFileSync(f, 'old');
    const d = path.join(dir, 'sub');
    mkdirSync(path.join(d, 'x.json'), { recursive: true }); // a directory where the target should be
    await expect(writeFileAtomic(path.join(d, 'x.json'), 'new')).rejects.toThrow();
    expect(readdirSync(d)).toEqual(['x.json']);
    expect(readFileSync(f, 'utf8')).toBe('old');
  });

  test('removeTempFiles removes what a crash left', async () => {
    writeFileSync(path.join(dir, 'a.json.1.abc.tmp'), 'half');
    writeFileSync(path.join(dir, 'a.json'), 'whole');
    await removeTempFiles(dir);
    expect(readdirSync(dir)).toEqual(['a.json']);
  });
});

describe('readTrustedFile', () => {
  test('reads a private file; a missing one is undefined', async () => {
    const f = path.join(dir, 'state');
    writeFileSync(f, 'ok', { mode: 0o600 });
    expect((await readTrustedFile(f, opts))!.toString()).toBe('ok');
    expect(readTrustedFileSync(f, opts)!.toString()).toBe('ok');
    expect(await readTrustedFile(path.join(dir, 'none'), opts)).toBeUndefined();
  });

  test('refuses a symlink, a directory, a file others can read (private) or write (public)', async () => {
    const f = path.join(dir, 'state');
    writeFileSync(f, 'ok', { mode: 0o600 });
    symlinkSync(f, path.join(dir, 'link'));
    await expect(readTrustedFile(path.join(dir, 'link'), opts)).rejects.toThrow(/is a symbolic link/);
    expect(() => readTrustedFileSync(path.join(dir, 'link'), opts)).toThrow(/is a symbolic link/);
    mkdirSync(path.join(dir, 'd'));
    await expect(readTrustedFile(path.join(dir, 'd'), opts)).rejects.toThrow(/not a regular file/);
    chmodSync(f, 0o640);
    await expect(readTrustedFile(f, opts)).rejects.toThrow(/accessible by group or others \(mode 0640\)/);
    expect((await readTrustedFile(f, { what: 'bundle', private: false }))!.toString()).toBe('ok');
    chmodSync(f, 0o666);
    await expect(readTrustedFile(f, { what: 'bundle', private: false })).rejects.toThrow(/writable by group or others/);
  });

  (process.geteuid?.() === 0 ? test : test.skip)('refuses a file owned by another user', async () => {
    const f = path.join(dir, 'state');
    writeFileSync(f, 'planted', { mode: 0o600 });
    chownSync(f, 4242, 4242);
    await expect(readTrustedFile(f, opts)).rejects.toThrow(/owned by uid 4242/);
  });
});
