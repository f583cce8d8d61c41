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
  /** one write at a time per file, so an older snapshot can never land after a newer one */
  private readonly queues = new Map<string, Promise<void>>();

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

  /** Saves a snapshot; `encode` runs when the write starts, so queued saves see fresh state. */
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
    const file = path.join(this.dir, name);
    const prev = this.queues.get(name) ?? Promise.resolve();
    const next = prev.then(() => writeFileAtomic(file, encode()));
    const settled = next.catch(() => undefined);
    this.queues.set(name, settled);
    void settled.then(() => {
      if (this.queues.get(name) === settled) this.queues.delete(name);
    });
    return next;
  }
}
