import { readFileSync } from 'node:fs';
import path from 'node:path';
import { decodeBundle, type SpiffeBundle } from '../../common/bundle/bundle';
import type { Logger } from '../../common/log';
import { systemClock, type Clock } from '../../common/clock';
import { ensurePrivateDir, readIfExists, removeTempFiles, writeFileAtomic } from './atomic-file';
import { decodeCache, decodeIdentity, encodeCache, encodeIdentity, type StoredCache, type StoredIdentity } from './formats';

export type { StoredCache, StoredIdentity, StoredSVID } from './formats';

export const IDENTITY_FILE = 'agent-svid.json';
export const CACHE_FILE = 'cache.json';

/**
 * The agent data directory (mode 0700): its own SVID and key in `agent-svid.json`,
 * the workload cache (entries, SVIDs with their keys, revision, bundles) in
 * `cache.json`, both mode 0600 and replaced atomically. Each file is one document,
 * so a key can never be paired with the wrong certificate after a crash.
 *
 * Loading never throws for bad content: a corrupt or unreadable file is logged
 * (without its content) and treated as absent, so the agent starts empty rather
 * than not at all. Expired SVIDs are dropped on load.
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

  /** Creates (or tightens) the directory and removes temp files left by a crash. */
  static async open(dir: string, log: Logger, clock: Clock = systemClock): Promise<AgentStore> {
    await ensurePrivateDir(dir);
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
      const doc = JSON.parse(readFileSync(path.join(dir, CACHE_FILE), 'utf8')) as { trust_domain?: unknown; bundle?: unknown };
      if (typeof doc.trust_domain !== 'string' || typeof doc.bundle !== 'object' || doc.bundle === null) return undefined;
      if (trustDomain !== undefined && doc.trust_domain !== trustDomain) return undefined;
      return decodeBundle(doc.trust_domain, doc.bundle);
    } catch {
      return undefined;
    }
  }

  /** The agent's own SVID, or undefined when absent, corrupt or expired. */
  async loadIdentity(): Promise<StoredIdentity | undefined> {
    const id = await this.read(IDENTITY_FILE, decodeIdentity);
    if (id && id.notAfter * 1000 <= this.clock.now().getTime()) {
      this.log.info({ agent_id: id.agentId, expires_at: id.notAfter }, 'stored agent svid has expired; the agent must attest again');
      return undefined;
    }
    return id;
  }

  saveIdentity(id: StoredIdentity): Promise<void> {
    return this.write(IDENTITY_FILE, () => encodeIdentity(id));
  }

  /** The workload cache without expired SVIDs, or undefined when absent or corrupt. */
  async loadCache(): Promise<StoredCache | undefined> {
    const c = await this.read(CACHE_FILE, decodeCache);
    if (!c) return undefined;
    const now = this.clock.now().getTime();
    const svids = c.svids.filter((s) => s.notAfter * 1000 > now);
    if (svids.length < c.svids.length) this.log.debug({ dropped: c.svids.length - svids.length }, 'dropped expired svids from the stored cache');
    return { ...c, svids };
  }

  /** Saves a snapshot; a function runs when the write starts, so a queued save writes fresh state. */
  saveCache(snapshot: StoredCache | (() => StoredCache)): Promise<void> {
    return this.write(CACHE_FILE, () => encodeCache(typeof snapshot === 'function' ? snapshot() : snapshot));
  }

  private async read<T>(name: string, decode: (text: string) => T): Promise<T | undefined> {
    const file = path.join(this.dir, name);
    let text: string | undefined;
    try {
      text = await readIfExists(file);
    } catch (e) {
      this.log.error({ file, err_code: (e as NodeJS.ErrnoException).code }, 'cannot read agent state file; starting without it');
      return undefined;
    }
    if (text === undefined) return undefined;
    try {
      return decode(text);
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
      return writeFileAtomic(path.join(this.dir, name), job.encode());
    });
    queue.waiting = job;
    queue.tail = job.done.catch(() => undefined);
    return job.done;
  }
}
