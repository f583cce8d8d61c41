import { constants, promises as fsp } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { syncDir } from '../../common/fs/private-file';

/** One output file: its name in cert_dir, its bytes and its mode. */
export interface OutputFile {
  name: string;
  data: string | Uint8Array;
  mode: number;
  /** what the bytes were made from, when equal input gives other bytes (salted PKCS#12) */
  source?: string;
}

const DATA_LINK = '..data';
const SNAPSHOT_PREFIX = '..snapshot-';

/**
 * Writes a set of files so that they change **together**: a reader never finds a
 * new certificate next to the old key. Written by hand because no npm package
 * does this; it is the scheme Kubernetes' AtomicWriter uses for Secret volumes:
 *
 *   cert_dir/..snapshot-<time>-<random>/   the files of one version (directory 0755)
 *   cert_dir/..data -> ..snapshot-...     one symlink, replaced by rename(2): the switch
 *   cert_dir/svid.pem -> ..data/svid.pem  what users open; made once
 *
 * Each file is created exclusively (O_EXCL | O_NOFOLLOW) with its mode set on the
 * descriptor and fsynced, the snapshot directory is fsynced, then the `..data`
 * link is swapped with one rename, and the previous snapshot is removed. A crash
 * at any point leaves the last complete version in place. The directory itself
 * must already be trusted (ensureTrustedDir): renames are only as safe as it is.
 */
export class SnapshotDir {
  constructor(private readonly dir: string) {}

  /** Removes snapshots a crashed run left behind (not the current one). */
  async cleanUp(): Promise<void> {
    const current = await this.current();
    for (const name of await fsp.readdir(this.dir)) {
      if (name.startsWith(SNAPSHOT_PREFIX) && name !== current) await fsp.rm(path.join(this.dir, name), { recursive: true, force: true });
      if (name.startsWith(`${DATA_LINK}.`) && name.endsWith('.tmp')) await fsp.rm(path.join(this.dir, name), { force: true });
    }
  }

  /** The name of the snapshot `..data` points to, if any. */
  async current(): Promise<string | undefined> {
    try {
      return await fsp.readlink(path.join(this.dir, DATA_LINK));
    } catch {
      return undefined;
    }
  }

  /** Makes `files` the directory's content in one step. */
  async write(files: readonly OutputFile[], now: number): Promise<void> {
    const snapshot = `${SNAPSHOT_PREFIX}${now}-${randomBytes(4).toString('hex')}`;
    const snapDir = path.join(this.dir, snapshot);
    await fsp.mkdir(snapDir, { mode: 0o755 });
    await fsp.chmod(snapDir, 0o755); // whatever the umask
    try {
      for (const f of files) {
        const fh = await fsp.open(path.join(snapDir, f.name), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, f.mode);
        try {
          await fh.chmod(f.mode);
          await fh.writeFile(f.data);
          await fh.sync();
        } finally {
          await fh.close();
        }
      }
      await syncDir(snapDir);
    } catch (e) {
      await fsp.rm(snapDir, { recursive: true, force: true });
      throw e;
    }
    const previous = await this.current();
    const tmpLink = path.join(this.dir, `${DATA_LINK}.${randomBytes(4).toString('hex')}.tmp`);
    await fsp.symlink(snapshot, tmpLink);
    await fsp.rename(tmpLink, path.join(this.dir, DATA_LINK)); // the switch
    for (const f of files) await this.ensureLink(f.name);
    await syncDir(this.dir);
    if (previous && previous !== snapshot && previous.startsWith(SNAPSHOT_PREFIX)) await fsp.rm(path.join(this.dir, previous), { recursive: true, force: true });
  }

  /** `cert_dir/<name>` -> `..data/<name>`; a regular file or another link there is replaced atomically. */
  private async ensureLink(name: string): Promise<void> {
    const target = path.join(DATA_LINK, name);
    const file = path.join(this.dir, name);
    try {
      if ((await fsp.readlink(file)) === target) return;
    } catch {
      // missing, or not a symlink
    }
    const tmp = path.join(this.dir, `${DATA_LINK}.${randomBytes(4).toString('hex')}.tmp`);
    await fsp.symlink(target, tmp);
    await fsp.rename(tmp, file);
  }
}
