import { randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readFileSync, type Stats } from 'node:fs';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { failedPrecondition } from '../errors';
import { effectiveUid } from './trusted-dir';

/**
 * Reading and writing files that hold keys, tokens or state a process trusts.
 * Reads open the file without following a symlink and check, on that same
 * descriptor, that it is a regular file owned by this process's uid (or root) and
 * not writable (for private files: not accessible at all) by group or others.
 * Writes go to a fresh temp file in the same directory, created exclusively
 * (O_EXCL|O_NOFOLLOW, so neither a planted file nor a symlink is reused), whose
 * mode is set on the descriptor (the umask cannot loosen it), then fsync, rename
 * over the target (which replaces a symlink or another user's file rather than
 * writing through it), and fsync of the directory. A crash leaves the old content
 * or the new, never a mix.
 */

/** Suffix of temp files; leftovers of a crash are removed by {@link removeTempFiles}. */
export const TEMP_SUFFIX = '.tmp';

export interface TrustedFileOptions {
  /** what the file is, for error messages ("agent state file") */
  what: string;
  /** private: no access for group or others (keys, state); otherwise only no write access */
  private: boolean;
}

const octal = (m: number) => (m & 0o777).toString(8).padStart(4, '0');

function checkStat(file: string, st: Stats, o: TrustedFileOptions): void {
  const euid = effectiveUid();
  if (!st.isFile()) throw failedPrecondition(`${o.what} ${file} is not a regular file`);
  if (euid !== undefined && st.uid !== euid && st.uid !== 0) {
    throw failedPrecondition(`${o.what} ${file} is owned by uid ${st.uid}, not by this process (uid ${euid}) or root; remove it`);
  }
  const mask = o.private ? 0o077 : 0o022;
  if ((st.mode & mask) !== 0) {
    throw failedPrecondition(
      `${o.what} ${file} is ${o.private ? 'accessible' : 'writable'} by group or others (mode ${octal(st.mode)}); run chmod ${o.private ? '600' : 'go-w'} ${file}`,
    );
  }
}

const openError = (file: string, o: TrustedFileOptions, e: NodeJS.ErrnoException) =>
  e.code === 'ELOOP' ? failedPrecondition(`${o.what} ${file} is a symbolic link; replace it with the file itself`) : e;

/**
 * The content of `file`, or undefined when it does not exist.
 * @throws TesseraError FAILED_PRECONDITION for a symlink, a non-regular file, a foreign owner or a loose mode; other I/O errors as is
 */
export async function readTrustedFile(file: string, o: TrustedFileOptions): Promise<Buffer | undefined> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw openError(file, o, e as NodeJS.ErrnoException);
  }
  try {
    checkStat(file, await fh.stat(), o);
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}

/** {@link readTrustedFile}, synchronously. */
export function readTrustedFileSync(file: string, o: TrustedFileOptions): Buffer | undefined {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw openError(file, o, e as NodeJS.ErrnoException);
  }
  try {
    checkStat(file, fstatSync(fd), o);
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Replaces `file` with `data` atomically (see above); the new file has exactly `mode`.
 * The directory must already be trusted (see ensureTrustedDir): a rename is only
 * as safe as the directory it happens in.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`;
  const fh = await fsp.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  let renamed = false;
  try {
    await fh.chmod(mode); // on the descriptor: the umask applied to open()
    await fh.writeFile(data);
    await fh.sync();
    await fh.close();
    await fsp.rename(tmp, file);
    renamed = true;
  } finally {
    if (!renamed) {
      await fh.close().catch(() => undefined);
      await fsp.rm(tmp, { force: true });
    }
  }
  await syncDir(path.dirname(file));
}

/** Makes a rename or unlink durable: the directory entry itself must reach the disk. */
export async function syncDir(dir: string): Promise<void> {
  const dh = await fsp.open(dir, constants.O_RDONLY);
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

/** Removes temp files a crashed writer left behind in `dir` (they may hold key material). */
export async function removeTempFiles(dir: string): Promise<void> {
  for (const name of await fsp.readdir(dir)) {
    if (name.endsWith(TEMP_SUFFIX)) await fsp.rm(path.join(dir, name), { force: true });
  }
}
