import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { assertTrustedDir, ensureTrustedDir } from './trusted-dir';

let base: string;
beforeEach(() => (base = mkdtempSync(path.join(os.tmpdir(), 'ttd-'))));
afterEach(() => rmSync(base, { recursive: true, force: true }));
const mode = (p: string) => statSync(p).mode & 0o7777;
const asRoot = process.geteuid?.() === 0 ? test : test.skip;

test('creates missing directories with exactly the mode asked for, even under umask 000 or 077', () => {
  const old = process.umask(0);
  try {
    const d = path.join(base, 'a', 'b');
    ensureTrustedDir(d, { mode: 0o700, what: 'data directory' });
    expect(mode(path.join(base, 'a'))).toBe(0o755);
    expect(mode(d)).toBe(0o700);
    process.umask(0o077);
    const s = path.join(base, 'sock', 'public');
    ensureTrustedDir(s, { mode: 0o755, what: 'socket directory' });
    expect(mode(s)).toBe(0o755);
  } finally {
    process.umask(old);
  }
});

test('an existing directory of ours is tightened to the mode, never loosened; a sticky world-writable ancestor (/tmp) is fine', () => {
  const d = path.join(base, 'data');
  mkdirSync(d, { mode: 0o755 });
  ensureTrustedDir(d, { mode: 0o700, what: 'data directory' });
  expect(mode(d)).toBe(0o700);
  ensureTrustedDir(d, { mode: 0o755, what: 'socket directory' });
  expect(mode(d)).toBe(0o700);
  expect(mode(os.tmpdir()) & 0o1000).toBe(0o1000);
});

test('a target or an ancestor writable by group or others is refused; a sticky target too', () => {
  const d = path.join(base, 'open');
  mkdirSync(d);
  for (const m of [0o770, 0o777, 0o1777]) {
    chmodSync(d, m);
    expect(() => ensureTrustedDir(d, { mode: 0o700, what: 'data directory' })).toThrow(/data directory: .*open is writable by group or others/);
  }
  chmodSync(d, 0o777); // not sticky: anyone can rename what is inside
  expect(() => ensureTrustedDir(path.join(d, 'inner'), { mode: 0o700, what: 'data directory' })).toThrow(/open is writable by group or others \(mode 0777\)/);
});

test('a symlink is followed, and the directory it points to is what gets checked', () => {
  const real = path.join(base, 'real');
  mkdirSync(real, { mode: 0o700 });
  symlinkSync(real, path.join(base, 'link'));
  expect(ensureTrustedDir(path.join(base, 'link'), { mode: 0o700, what: 'x' })).toBe(real);
  chmodSync(real, 0o777);
  expect(() => assertTrustedDir(path.join(base, 'link'), 'x')).toThrow(/real is writable/);
});

asRoot('a directory another user created first is refused, and so is anything below it', () => {
  const d = path.join(base, 'tessera-agent');
  mkdirSync(d, { mode: 0o755 });
  chownSync(d, 4242, 4242);
  expect(() => ensureTrustedDir(d, { mode: 0o755, what: 'workload api socket directory' })).toThrow(
    /workload api socket directory: .*tessera-agent is owned by uid 4242, not by this process \(uid 0\) or root/,
  );
  expect(() => ensureTrustedDir(path.join(d, 'public'), { mode: 0o755, what: 'x' })).toThrow(/owned by uid 4242/);
});
