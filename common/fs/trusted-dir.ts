import { chmodSync, lstatSync, mkdirSync, realpathSync, type Stats } from 'node:fs';
import path from 'node:path';
import { failedPrecondition } from '../errors';

/**
 * Directories a process may trust with keys, state and sockets. The rule is the
 * one OpenSSH applies to `~/.ssh` (StrictModes) and sudo to its files:
 *
 * - every directory from `/` down to the target (after resolving symlinks) is
 *   owned by root or by this process's effective uid, and is not writable by
 *   group or others, except that an *ancestor* may be world-writable when it has
 *   the sticky bit (`/tmp`): there nobody can rename or delete what another user
 *   created;
 * - the target itself is never writable by group or others (no sticky exception).
 *
 * A directory that another local user created first (the defaults live under the
 * world-writable `/tmp` when not running as root) fails this check, so that user
 * cannot plant a key, a database, a cached bundle or a fake socket in it. Missing
 * directories are created with exactly `mode` (chmod after mkdir, so the umask
 * cannot loosen or tighten it).
 */

export interface TrustedDirOptions {
  /** mode of the target, when this call creates it or this process owns it */
  mode: number;
  /** mode of missing parents this call creates; default 0755 (others may need to pass through to a socket) */
  parentMode?: number;
  /** what the directory is, for error messages ("agent data directory") */
  what: string;
  /** leave an existing target's mode alone (an output directory the user made); default false */
  keepMode?: boolean;
  /** the target must be this uid's own, root's is not enough (a directory the CLI writes keys into); default false */
  ownOnly?: boolean;
}

/** The effective uid, or undefined where there is none (Windows). */
export const effectiveUid = (): number | undefined => process.geteuid?.();

const octal = (m: number) => (m & 0o7777).toString(8).padStart(4, '0');

function problem(what: string, dir: string, st: Stats, isTarget: boolean): string | undefined {
  const euid = effectiveUid();
  if (!st.isDirectory()) return `${what}: ${dir} is not a directory`;
  if (euid !== undefined && st.uid !== 0 && st.uid !== euid) {
    return `${what}: ${dir} is owned by uid ${st.uid}, not by this process (uid ${euid}) or root; another user may have created it first: remove it or choose another path`;
  }
  const writableByOthers = (st.mode & 0o022) !== 0;
  const sticky = (st.mode & 0o1000) !== 0;
  if (writableByOthers && (isTarget || !sticky)) {
    return `${what}: ${dir} is writable by group or others (mode ${octal(st.mode)}); run chmod go-w ${dir} or choose another path`;
  }
  return undefined;
}

/**
 * Refuses `dir` unless it and every ancestor pass the rule above. `dir` must exist.
 * @throws TesseraError FAILED_PRECONDITION naming the directory, its owner or mode, and the fix
 */
export function assertTrustedDir(dir: string, what: string): string {
  let real: string;
  try {
    real = realpathSync(dir);
  } catch (e) {
    throw failedPrecondition(`${what}: cannot resolve ${dir} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const parts = real.split(path.sep).filter(Boolean);
  for (let i = 0; i <= parts.length; i++) {
    const p = path.sep + parts.slice(0, i).join(path.sep);
    const msg = problem(what, p, lstatSync(p), i === parts.length);
    if (msg) throw failedPrecondition(msg);
  }
  return real;
}

/**
 * Creates `dir` (mode `opts.mode`) and missing parents (`opts.parentMode`), then checks it with
 * {@link assertTrustedDir}. When this process owns an existing target, permission
 * bits beyond `opts.mode` are removed (a data directory left 0755 becomes 0700);
 * none are added.
 * @returns the resolved path
 * @throws TesseraError FAILED_PRECONDITION as {@link assertTrustedDir}
 */
export function ensureTrustedDir(dir: string, opts: TrustedDirOptions): string {
  const abs = path.resolve(dir);
  const parts = abs.split(path.sep).filter(Boolean);
  for (let i = 1; i <= parts.length; i++) {
    const p = path.sep + parts.slice(0, i).join(path.sep);
    const mode = i === parts.length ? opts.mode : (opts.parentMode ?? 0o755);
    try {
      mkdirSync(p, { mode });
      chmodSync(p, mode); // the umask applied to mkdir; we want exactly this mode
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') throw failedPrecondition(`${opts.what}: cannot create ${p} (${code ?? (e as Error).message})`);
    }
  }
  const real = assertTrustedDir(abs, opts.what);
  const st = lstatSync(real);
  const euid = effectiveUid();
  if (opts.ownOnly && euid !== undefined && st.uid !== euid) {
    throw failedPrecondition(`${opts.what}: ${real} is owned by uid ${st.uid}, not by this process (uid ${euid}); write into a directory of your own`);
  }
  // An existing directory is only ever tightened (a 0755 data directory becomes 0700), never
  // loosened: a socket directory the user keeps 0700 stays theirs alone.
  const extra = st.mode & 0o777 & ~opts.mode;
  if (!opts.keepMode && st.uid === euid && extra !== 0) chmodSync(real, st.mode & 0o777 & opts.mode);
  return real;
}
