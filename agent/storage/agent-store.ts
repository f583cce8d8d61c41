import path from 'node:path';
import { decodeBundle, type SpiffeBundle } from '../../common/bundle/bundle';
import type { Logger } from '../../common/log';
import { systemClock, type Clock } from '../../common/clock';
import { ensureTrustedDir } from '../../common/fs/trusted-dir';
import { readTrustedFile, readTrustedFileSync, removeTempFiles, writeFileAtomic } from '../../common/fs/private-file';
import { decodeCache, decodeIdentity, encodeCache, encodeIdentity, type StoredCache, type StoredIdentity } from './formats';
import { verifyStoredCache, verifyStoredIdentity } from './verify-cache';

export type { StoredCache, StoredIdentity, StoredSVID } from './formats';

export const IDENTITY_FILE = 'agent-svid.json';
export const CACHE_FILE = 'cache.json';

/**
 * The agent data directory (mode 0700): its own SVID and key in `agent-svid.json`,
 * the workload cache (entries, SVIDs with their keys, revision, bundles) in
 * `cache.json`, both mode 0600 and replaced atomically. Each file is one document,
 * so a key can never be paired with the wrong certificate after a crash.
 *
 * The directory is refused unless it and its parents are owned by this uid (or
 * root) and not writable by others (see ensureTrustedDir): after bootstrap it is
 * the agent's trust anchor, since the cached bundle authenticates the server.
 * State files are opened without following symlinks and must be owned by this
 * uid (or root) with mode 0600.
 *
 * Loading never throws for bad content: a corrupt, unreadable or untrusted file
 * is logged (without its content) and treated as absent, so the agent starts
 * empty rather than not at all. Every stored SVID is verified before it can be
 * served (see verifyStoredCache); what fails, expired ones included, is dropped.
 */
export class AgentStore {
  /**
   * Per file: the end of the last queued write, and a queued write not yet
   * started. Writes run one at a time, so an older snapshot never lands after a
   * newer one, and saves arriving while one runs merge into the single waiting
   * write (which encodes the state when it starts), so a burst of changes costs
   * at most two writes.
   */
  private readonly queues = new Map<string, { tail: Promise<void>; waiting?: { encode: () => string; done: Promise<void> } }>();

  private constructor(
    readonly dir: string,
    private readonly log: Logger,
    private readonly clock: Clock,
  ) {}

  /**
   * Creates (or tightens to 0700) the directory and removes temp files left by a crash.
   * @throws TesseraError FAILED_PRECONDITION when the directory or a parent is another user's or writable by others
   */
  static async open(dir: string, log: Logger, clock: Clock = systemClock): Promise<AgentStore> {
    ensureTrustedDir(dir, { mode: 0o700, what: 'agent data directory' });
    await removeTempFiles(dir);
    return new AgentStore(dir, log, clock);
  }

  /**
   * The trust domain bundle held in `dir`'s cache, read synchronously and without
   * a logger, for choosing the server roots before anything else starts.
   * Undefined when there is none, it is of another trust domain than `trustDomain`
   * (when given), or it cannot be read; never throws.
   */
  static peekBundle(dir: string, trustDomain?: string): SpiffeBundle | undefined {
    try {
      const text = readTrustedFileSync(path.join(dir, CACHE_FILE), { what: 'agent state file', private: true });
      if (!text) return undefined;
      const doc = JSON.parse(text.toString('utf8')) as { trust_domain?: unknown; bundle?: unknown };
      if (typeof doc.trust_domain !== 'string' || typeof doc.bundle !== 'object' || doc.bundle === null) return undefined;
      if (trustDomain !== undefined && doc.trust_domain !== trustDomain) return undefined;
      return decodeBundle(doc.trust_domain, doc.bundle);
    } catch {
      return undefined;
    }
  }

  /**
   * The agent's own SVID, or undefined when absent, corrupt, failing verification
   * (with `roots`, the cached bundle: its chain too) or expired.
   */
  async loadIdentity(trustDomain: string, roots?: Buffer[]): Promise<StoredIdentity | undefined> {
    const stored = await this.read(IDENTITY_FILE, decodeIdentity);
    if (!stored) return undefined;
    const id = verifyStoredIdentity(stored, roots, trustDomain, this.clock.now().getTime());
    if (typeof id === 'string') {
      if (/expired/.test(id)) this.log.info({ agent_id: stored.agentId }, 'stored agent svid has expired; the agent must attest again');
      else this.log.error({ agent_id: stored.agentId, reason: id }, 'stored agent svid failed verification; ignoring it (the agent must attest again)');
      return undefined;
    }
    if (id.notAfter * 1000 <= this.clock.now().getTime()) {
      this.log.info({ agent_id: id.agentId, expires_at: id.notAfter }, 'stored agent svid has expired; the agent must attest again');
      return undefined;
    }
    return id;
  }

  saveIdentity(id: StoredIdentity): Promise<void> {
    return this.write(IDENTITY_FILE, () => encodeIdentity(id));
  }

  /** The workload cache with only the SVIDs that pass verification, or undefined when absent or corrupt. */
  async loadCache(): Promise<StoredCache | undefined> {
    const c = await this.read(CACHE_FILE, decodeCache);
    if (!c) return undefined;
    const { cache, dropped } = verifyStoredCache(c, this.clock.now().getTime());
    const expired = dropped.filter((d) => /expired/.test(d.reason));
    if (expired.length > 0) this.log.debug({ dropped: expired.length }, 'dropped expired svids from the stored cache');
    const bad = dropped.filter((d) => !/expired/.test(d.reason));
    if (bad.length > 0) {
      this.log.error({ count: bad.length, svids: bad.slice(0, 10) }, 'stored svids failed verification and were dropped; they will be signed again at the next sync');
    }
    return cache;
  }

  /** Saves a snapshot; a function runs when the write starts, so a queued save writes fresh state. */
  saveCache(snapshot: StoredCache | (() => StoredCache)): Promise<void> {
    return this.write(CACHE_FILE, () => encodeCache(typeof snapshot === 'function' ? snapshot() : snapshot));
  }

  private async read<T>(name: string, decode: (text: string) => T): Promise<T | undefined> {
    const file = path.join(this.dir, name);
    let data: Buffer | undefined;
    try {
      data = await readTrustedFile(file, { what: 'agent state file', private: true });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      this.log.error({ file, err_code: err.code, reason: err.message }, 'cannot read agent state file; starting without it');
      return undefined;
    }
    if (data === undefined) return undefined;
    try {
      return decode(data.toString('utf8'));
    } catch (e) {
      // Only the error's kind: zod and JSON messages can quote the content, which may hold a key.
      this.log.error({ file, error: (e as Error).name }, 'agent state file is corrupt; starting without it (it will be overwritten)');
      return undefined;
    }
  }

  private write(name: string, encode: () => string): Promise<void> {
    let q = this.queues.get(name);
    if (!q) this.queues.set(name, (q = { tail: Promise.resolve() }));
    if (q.waiting) {
      q.waiting.encode = encode;
      return q.waiting.done;
    }
    const job = { encode, done: Promise.resolve() };
    const queue = q;
    job.done = queue.tail.then(() => {
      queue.waiting = undefined; // started: later saves queue behind this one
      return writeFileAtomic(path.join(this.dir, name), job.encode(), 0o600);
    });
    queue.waiting = job;
    queue.tail = job.done.catch(() => undefined);
    return job.done;
  }
}
