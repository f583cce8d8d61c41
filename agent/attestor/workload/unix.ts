/**
 * The `unix` workload attestor: selectors (type `unix`) for the process at the
 * other end of a Workload API connection.
 *
 * ## What the selectors can and cannot prove
 *
 * - `uid:<n>`, `gid:<n>` come from SO_PEERCRED: the effective uid and gid the
 *   kernel recorded for the process that called connect(), at connect time. The
 *   client cannot forge them, and they hold for the life of the connection.
 *   `user:<name>` and `group:<name>` are those ids' names in this host's
 *   /etc/passwd and /etc/group. (A caller in a user namespace whose ids have no
 *   mapping shows up as 65534.) These are the security boundary.
 * - `path:<file>`, `sha256:<hex>`, `supplementary_gid:<n>` and
 *   `supplementary_group:<name>` describe what the connecting pid runs, and
 *   which groups it has, *when the agent reads /proc*, not at connect time:
 *   - a process can connect and then exec another binary; /proc shows the new one;
 *   - a process can connect, fork, and exec a trusted binary in one half while
 *     the other half keeps the socket and makes the calls. SO_PEERCRED (and the
 *     pidfd) name the process that connected, which now really runs the trusted
 *     binary, so path and sha256 match while an untrusted program is talking.
 *     Nothing visible on a Unix socket tells these apart.
 *   So path and sha256 cannot separate a hostile process from a trusted one
 *   under the same uid: anyone who can execute the binary can borrow its path
 *   and hash. They narrow the choice among cooperating processes and catch
 *   mistakes. **Registration entries should combine `path`/`sha256` with
 *   `uid`/`gid`**; an entry with `path`/`sha256` alone grants its identity to
 *   every local user who can execute that binary.
 * - The pidfd only guards against PID reuse: after reading /proc we check that
 *   the process the pidfd names is still alive and still has that pid. If it is
 *   not, or there is no pidfd, or the pid is 0 (the caller is in another PID
 *   namespace), or /proc cannot be read (an agent that is not root cannot read
 *   other users' /proc/<pid>/exe), the /proc-based selectors are left out
 *   entirely (fail closed) and a warning says why. That is never an error.
 * - Later calls of the same caller (connection) repeat its last complete
 *   attestation while the connecting process is alive and /proc/<pid>/exe is
 *   still the same file (device, inode, size, mtime, ctime) and /etc/passwd and
 *   /etc/group are unchanged; supplementary groups are then those read at that
 *   attestation. A process that exec'd another binary is attested afresh, and
 *   one that exited keeps only the kernel selectors.
 *
 * ## Caller contract
 *
 * Build the {@link CallerInfo} in the `connection` handler, before anything else
 * (fd numbers are reused after close): {@link readCallerInfo} does it, taking the
 * pidfd from SO_PEERPIDFD (Linux ≥ 6.5) or, failing that, from pidfd_open(pid)
 * right away, which narrows but does not close the PID-reuse window. The caller
 * owns `pidfd` and closes it (`closeFd`) when the connection closes.
 *
 * @example
 * const peercred = require('@tessera/peercred');
 * const attestor = new UnixWorkloadAttestor({ pidfd: peercred });
 * server.on('connection', (socket) => {
 *   const caller = readCallerInfo(socket._handle.fd, peercred);
 *   socket.once('close', () => caller.pidfd >= 0 && peercred.closeFd(caller.pidfd));
 *   // later, per call:
 *   const { selectors, warnings } = await attestor.attest(caller);
 * });
 */
import { createHash } from 'crypto';
import { closeSync, createReadStream, fstatSync, openSync, readFileSync, readlinkSync, statSync, type BigIntStats } from 'fs';
import { invalidArgument } from '../../../common/errors';
import { sortSelectors, validateSelector, type Selector } from '../../../common/selector';

export interface CallerInfo {
  /** From SO_PEERCRED; 0 when the caller is in a PID namespace the agent cannot see. */
  pid: number;
  uid: number;
  gid: number;
  /** A pidfd for the connecting process, or -1 if none could be had. */
  pidfd: number;
}

/** What {@link UnixWorkloadAttestor.attest} uses from `@tessera/peercred`. */
export interface PidfdOps {
  pidfdIsAlive(pidfd: number): boolean;
  pidfdGetPid(pidfd: number): number;
}

/** What {@link readCallerInfo} uses from `@tessera/peercred`. */
export interface PeerCredOps {
  getPeerCred(fd: number): { pid: number; uid: number; gid: number };
  getPeerPidfd(fd: number): number;
  pidfdOpen(pid: number): number;
}

/**
 * Kernel credentials of the peer of the accepted socket `fd`, with a pidfd:
 * SO_PEERPIDFD if the kernel has it, else pidfd_open(pid) at once. The pidfd is
 * -1 if neither works (peer already gone, pid 0); it never falls back to
 * pidfd_open after SO_PEERPIDFD failed for another reason, as the pid may be stale.
 * @throws the getsockopt(SO_PEERCRED) error (e.g. ENOTSOCK)
 */
export function readCallerInfo(fd: number, ops: PeerCredOps): CallerInfo {
  const { pid, uid, gid } = ops.getPeerCred(fd);
  let pidfd = -1;
  try {
    pidfd = ops.getPeerPidfd(fd);
    if (pidfd < 0 && pid > 0) pidfd = ops.pidfdOpen(pid);
  } catch {
    pidfd = -1;
  }
  return { pid, uid, gid, pidfd };
}

/**
 * `selectors` are sorted, without duplicates. `warnings` say which selectors
 * were left out and why (lower-case, for logs); empty when all were produced.
 */
export interface UnixAttestation {
  selectors: Selector[];
  warnings: string[];
}

export interface UnixWorkloadAttestorOptions {
  /** Entries in the LRU cache of binary hashes; default 256. */
  hashCacheSize?: number;
  /** Default: `require('@tessera/peercred')`, loaded by the constructor so a missing addon fails at startup. */
  pidfd?: PidfdOps;
  /** Defaults: /etc/passwd and /etc/group. */
  passwdFile?: string;
  groupFile?: string;
}

export class UnixWorkloadAttestor {
  private readonly hashes: HashCache;
  private readonly users: IdNames;
  private readonly groups: IdNames;
  private readonly ops: PidfdOps;
  /** Callers whose pidfd was seen to name their pid; after that, alive is all there is to check. */
  private readonly pidConfirmed = new WeakSet<CallerInfo>();
  /** The last complete attestation of each caller (connection), with what it was read from. */
  private readonly lastFull = new WeakMap<CallerInfo, { key: string; selectors: Selector[] }>();
  private reused = 0;

  constructor(opts: UnixWorkloadAttestorOptions = {}) {
    const size = opts.hashCacheSize ?? 256;
    if (!Number.isInteger(size) || size < 1) throw invalidArgument(`hashCacheSize must be a positive integer, got ${size}`);
    this.hashes = new HashCache(size);
    this.users = new IdNames(opts.passwdFile ?? '/etc/passwd');
    this.groups = new IdNames(opts.groupFile ?? '/etc/group');
    // A plain require: the package is a native addon that only the root package depends on.
    this.ops = opts.pidfd ?? (require('@tessera/peercred') as PidfdOps);
  }

  /** Counters for tests and metrics: binaries hashed, hash cache hits, and calls answered from a caller's last attestation. */
  get stats(): { hashed: number; cacheHits: number; reused: number } {
    return { hashed: this.hashes.hashed, cacheHits: this.hashes.hits, reused: this.reused };
  }

  /**
   * Selectors for the caller; see the module comment for what each proves. Never rejects.
   *
   * The same caller (one connection) calls many times. A call whose process is
   * still alive and still runs the very binary of the caller's last complete
   * attestation (same device, inode, size, mtime and ctime of /proc/<pid>/exe),
   * with /etc/passwd and /etc/group unchanged, gets that attestation again: one
   * stat and one pidfd check instead of re-reading /proc (~40 us instead of ~190
   * us per call, measured in the agent). Supplementary groups are then those of
   * that attestation; a process that exec'd another binary is attested afresh.
   */
  async attest(c: CallerInfo): Promise<UnixAttestation> {
    const again = this.again(c);
    if (again) return again;
    const out = new Out();
    out.add('uid', c.uid);
    out.add('gid', c.gid);
    out.add('user', this.users.name(c.uid, out.warnings));
    out.add('group', this.groups.name(c.gid, out.warnings));
    if (c.pid <= 0) return out.done('caller pid is 0 (another pid namespace); path, sha256 and supplementary groups skipped');
    if (c.pidfd < 0) return out.done(`no pidfd for pid ${c.pid}; path, sha256 and supplementary groups skipped`);

    const proc = readProc(c.pid, out.warnings);
    if (!proc) return out.done();
    // Everything above was read from whatever held the pid; trust it only if
    // the process that connected is still alive and still holds it.
    if (!this.sameProcess(c)) {
      return out.done(`pid ${c.pid} exited or was reused during attestation; path, sha256 and supplementary groups skipped`);
    }
    for (const gid of proc.groups) {
      out.add('supplementary_gid', gid);
      out.add('supplementary_group', this.groups.name(gid, out.warnings));
    }
    out.add('path', proc.path);
    try {
      out.add('sha256', await this.hashes.hash(c.pid, proc.stat));
    } catch (e) {
      out.warnings.push(`cannot hash the binary of pid ${c.pid} (${errCode(e)}); sha256 skipped`);
    }
    const result = out.done();
    // Only a complete attestation is worth repeating; anything left out is retried next call.
    if (result.warnings.length === 0) this.lastFull.set(c, { key: this.reuseKey(proc.stat), selectors: result.selectors });
    return result;
  }

  /** The caller's last complete attestation, if it still holds (see {@link attest}); undefined to attest afresh. */
  private again(c: CallerInfo): UnixAttestation | undefined {
    const last = this.lastFull.get(c);
    if (!last) return undefined;
    let stat: BigIntStats;
    try {
      stat = statSync(`/proc/${c.pid}/exe`, { bigint: true });
    } catch {
      return undefined;
    }
    // After the stat: alive means the stat was of the process that connected.
    if (this.reuseKey(stat) !== last.key || !this.sameProcess(c)) return undefined;
    this.reused++;
    return { selectors: [...last.selectors], warnings: [] };
  }

  /** What a repeated attestation depends on: the binary, and the passwd and group files that name ids. */
  private reuseKey(binary: BigIntStats): string {
    return `${statKey(binary)}|${this.users.version()}|${this.groups.version()}`;
  }

  /**
   * True if the pidfd's process is alive and has pid `c.pid`. A pidfd names one
   * process for good, so once it was seen to hold the pid, that process being
   * alive means the pid has not changed hands; only then is the fdinfo read skipped.
   */
  private sameProcess(c: CallerInfo): boolean {
    try {
      if (!this.ops.pidfdIsAlive(c.pidfd)) return false;
      if (this.pidConfirmed.has(c)) return true;
      if (this.ops.pidfdGetPid(c.pidfd) !== c.pid) return false;
      this.pidConfirmed.add(c);
      return true;
    } catch {
      return false;
    }
  }
}

/** Collects valid selectors; a value that fails validation becomes a warning. */
class Out {
  private readonly selectors: Selector[] = [];
  readonly warnings: string[] = [];
  add(kind: string, value: string | number | undefined): void {
    if (value === undefined) return;
    try {
      this.selectors.push(validateSelector({ type: 'unix', value: `${kind}:${value}` }));
    } catch {
      this.warnings.push(`${kind} value is not a valid selector; skipped`);
    }
  }
  done(warning?: string): UnixAttestation {
    if (warning) this.warnings.push(warning);
    return { selectors: sortSelectors(this.selectors), warnings: this.warnings };
  }
}

interface ProcInfo {
  /** stat of the binary the process runs, through /proc/<pid>/exe. */
  stat: BigIntStats;
  /** Undefined if the binary's path no longer names that file (deleted, replaced). */
  path?: string;
  groups: number[];
}

/**
 * Synchronous on purpose: /proc and /etc/{passwd,group} reads are in-memory and
 * take microseconds, while each async fs call costs a thread-pool round trip;
 * done async, attestation dominated the Workload API's first-message latency.
 */
function readProc(pid: number, warnings: string[]): ProcInfo | undefined {
  try {
    const stat = statSync(`/proc/${pid}/exe`, { bigint: true });
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const path = pathOf(pid, stat, warnings);
    return { stat, path, groups: parseGroups(status) };
  } catch (e) {
    warnings.push(`cannot read /proc/${pid} (${errCode(e)}); path, sha256 and supplementary groups skipped`);
    return undefined;
  }
}

/**
 * The binary's path, if it still names the binary the process runs (same device
 * and inode). The kernel's /proc/<pid>/exe link is already absolute and resolved
 * (the path the binary was executed through, with symlinks followed), so one
 * readlink does what realpath would do with a walk over every component.
 */
function pathOf(pid: number, exe: BigIntStats, warnings: string[]): string | undefined {
  try {
    const path = readlinkSync(`/proc/${pid}/exe`);
    const st = statSync(path, { bigint: true });
    if (st.dev === exe.dev && st.ino === exe.ino) return path;
    warnings.push(`binary path of pid ${pid} now names another file; path skipped`);
  } catch (e) {
    warnings.push(`binary path of pid ${pid} not found (${errCode(e)}), it may have been deleted; path skipped`);
  }
  return undefined;
}

/** Supplementary gids from the `Groups:` line of /proc/<pid>/status. */
export function parseGroups(status: string): number[] {
  const line = /^Groups:(.*)$/m.exec(status);
  if (!line) return [];
  return line[1].split(/\s+/).filter((s) => /^\d+$/.test(s)).map(Number);
}

/** id → name from a file shaped like /etc/passwd or /etc/group; the first name for an id wins, as in getpwuid. */
export function parseIdFile(text: string): Map<number, string> {
  const names = new Map<number, string>();
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 3 || f[0] === '' || f[0].startsWith('#') || !/^\d+$/.test(f[2])) continue;
    const id = Number(f[2]);
    if (!names.has(id)) names.set(id, f[0]);
  }
  return names;
}

/** Names from /etc/passwd or /etc/group, re-read when the file's inode, size or mtime changes. */
class IdNames {
  private cached?: { key: string; names: Map<number, string> };
  constructor(private readonly file: string) {}

  private checkedAt = -Infinity;

  name(id: number, warnings: string[]): string | undefined {
    try {
      return this.current().names.get(id);
    } catch (e) {
      warnings.push(`cannot read ${this.file} (${errCode(e)}); names skipped`);
      return undefined;
    }
  }

  /** Identifies the file's current content (changes when it is edited); 'unreadable' if it cannot be read. */
  version(): string {
    try {
      return this.current().key;
    } catch {
      return 'unreadable';
    }
  }

  private current(): { key: string; names: Map<number, string> } {
    // stat at most every 500 ms: it runs several times per call otherwise, and
    // an edited passwd/group file is still picked up within half a second.
    const now = performance.now();
    if (!this.cached || now - this.checkedAt >= 500) {
      const st = statSync(this.file, { bigint: true });
      const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`;
      if (this.cached?.key !== key) this.cached = { key, names: parseIdFile(readFileSync(this.file, 'utf8')) };
      this.checkedAt = now;
    }
    return this.cached;
  }
}

/**
 * sha256 of binaries, LRU-cached by (device, inode, size, mtime, ctime): ctime
 * too, because mtime can be set back after a write and ctime cannot. Hashing
 * streams (a 100 MB binary takes ~150 ms) and concurrent misses share one read.
 */
class HashCache {
  private readonly lru = new Map<string, Promise<string>>();
  hashed = 0;
  hits = 0;
  constructor(private readonly max: number) {}

  /** sha256 of the binary pid runs, which `st` (from /proc/<pid>/exe) describes; the file is opened only on a miss. */
  hash(pid: number, st: BigIntStats): Promise<string> {
    const key = statKey(st);
    const hit = this.lru.get(key);
    if (hit) {
      this.hits++;
      this.lru.delete(key); // re-insert: Map order is the LRU order
      this.lru.set(key, hit);
      return hit;
    }
    this.hashed++;
    const p = sha256Of(pid, key);
    this.lru.set(key, p);
    p.catch(() => this.lru.get(key) === p && this.lru.delete(key));
    if (this.lru.size > this.max) this.lru.delete(this.lru.keys().next().value as string);
    return p;
  }
}

const statKey = (st: BigIntStats): string => `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;

/**
 * Opens /proc/<pid>/exe and streams it (never a synchronous read: a 100 MB
 * binary takes ~150 ms to hash). Fails if the opened file is not the one `key`
 * describes (the process exec'd another binary meanwhile), so a hash is never
 * cached under another binary's key.
 */
async function sha256Of(pid: number, key: string): Promise<string> {
  const fd = openSync(`/proc/${pid}/exe`, 'r');
  try {
    if (statKey(fstatSync(fd, { bigint: true })) !== key) throw Object.assign(new Error('binary changed'), { code: 'ECHANGED' });
    const h = createHash('sha256');
    for await (const chunk of createReadStream('', { fd, start: 0, autoClose: false, highWaterMark: 1 << 20 })) {
      h.update(chunk as Buffer);
    }
    return h.digest('hex');
  } finally {
    closeSync(fd);
  }
}

const errCode = (e: unknown): string => (e as NodeJS.ErrnoException)?.code ?? String((e as Error)?.message ?? e);
