import fs from 'node:fs';
import path from 'node:path';
import { TesseraError } from '../../../common/errors';
import { effectiveUid, ensureTrustedDir } from '../../../common/fs/trusted-dir';

/**
 * Checks (or creates) the database file before SQLite opens it: its directory
 * must be trusted (ensureTrustedDir: owned by this uid or root, not writable by
 * others), and the file itself, and any -wal / -shm file, a regular file owned
 * by this uid or root, never a symlink: a database someone else planted would
 * hand them the CA journal. The file is created here, mode 0600, because SQLite
 * would use 0644 under the usual umask and gives -wal and -shm the database's mode.
 * @throws TesseraError FAILED_PRECONDITION naming the file and the problem
 */
export function prepareDatabaseFiles(file: string): void {
  ensureTrustedDir(path.dirname(path.resolve(file)), { mode: 0o700, what: 'datastore directory' });
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new TesseraError('FAILED_PRECONDITION', code === 'ELOOP' ? `datastore ${file} is a symbolic link; refusing to open it` : `cannot open datastore ${file}: ${code}`);
  }
  try {
    const st = fs.fstatSync(fd);
    const euid = effectiveUid();
    if (!st.isFile()) throw new TesseraError('FAILED_PRECONDITION', `datastore ${file} is not a regular file`);
    if (euid !== undefined && st.uid !== euid && st.uid !== 0) {
      throw new TesseraError('FAILED_PRECONDITION', `datastore ${file} is owned by uid ${st.uid}, not by this process (uid ${euid}) or root; refusing to use it`);
    }
    fs.fchmodSync(fd, 0o600);
  } finally {
    fs.closeSync(fd);
  }
  for (const f of [`${file}-wal`, `${file}-shm`]) {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(f);
    } catch {
      continue;
    }
    if (!st.isFile() || (effectiveUid() !== undefined && st.uid !== effectiveUid() && st.uid !== 0)) {
      throw new TesseraError('FAILED_PRECONDITION', `datastore file ${f} is not a regular file of this user; remove it`);
    }
  }
}
