import type { DataStore, RegistrationEntry, Selector } from '../datastore/datastore';
import { selectorsSubsetOf } from '../../common/selector';

/** How far parent chains are followed (agent → alias → entry → downstream ...). */
const MAX_DEPTH = 16;
/** More events than this since an agent's revision: send it everything instead. */
const MAX_DELTA_EVENTS = 2000;
const CACHE_MAX = 10_000;

export interface AgentIdentity {
  spiffeId: string;
  selectors: Selector[];
}

export interface AuthorizedSet {
  revision: number;
  /** the agent's own ID plus its node aliases */
  agentIds: Set<string>;
  entries: RegistrationEntry[];
  byId: Map<string, RegistrationEntry>;
}

export interface EntrySync {
  revision: number;
  /** true: `entries` is the complete set and the agent drops everything else */
  full: boolean;
  entries: RegistrationEntry[];
  removed: string[];
}

/**
 * Decides which registration entries an agent may obtain SVIDs for (SPIRE's
 * "authorized entries"): entries whose parent is the agent's ID or one of its
 * node aliases (entries parented to the server ID whose selectors are a subset of
 * the agent's node selectors, or the alias made with `token generate --spiffe-id`),
 * followed transitively through parent chains. Results are cached per agent and
 * store revision, so the hot signing path costs one map lookup.
 */
export class EntryAuthorizer {
  private readonly cache = new Map<string, AuthorizedSet>();

  constructor(
    private readonly store: DataStore,
    private readonly serverId: string,
    private readonly now: () => number,
  ) {}

  async authorized(agent: AgentIdentity): Promise<AuthorizedSet> {
    const revision = await this.store.getRevision();
    const key = agent.spiffeId + '\0' + agent.selectors.map((s) => `${s.type}:${s.value}`).join('\0');
    const hit = this.cache.get(key);
    if (hit && hit.revision === revision) return hit;
    const set = await this.compute(agent, revision);
    if (this.cache.size >= CACHE_MAX) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, set);
    return set;
  }

  private async compute(agent: AgentIdentity, revision: number): Promise<AuthorizedSet> {
    const now = this.now();
    const live = (e: RegistrationEntry) => e.expiresAt === null || e.expiresAt > now;
    const agentIds = new Set<string>([agent.spiffeId]);
    const aliases = (await this.store.listRegistrationEntries({ parentId: this.serverId })).items;
    for (const a of aliases) {
      if (live(a) && a.selectors.length > 0 && selectorsSubsetOf(a.selectors, agent.selectors)) agentIds.add(a.spiffeId);
    }
    const byId = new Map<string, RegistrationEntry>();
    const seenParents = new Set<string>(agentIds);
    let frontier = [...agentIds];
    for (let depth = 0; depth < MAX_DEPTH && frontier.length > 0; depth++) {
      const page = await this.store.listRegistrationEntries({ parentIds: frontier });
      frontier = [];
      for (const e of page.items) {
        if (!live(e) || byId.has(e.id)) continue;
        byId.set(e.id, e);
        if (!seenParents.has(e.spiffeId)) {
          seenParents.add(e.spiffeId);
          frontier.push(e.spiffeId);
        }
      }
    }
    return { revision, agentIds, entries: [...byId.values()], byId };
  }

  /**
   * What changed for this agent since `since`. Incremental when only leaf entries
   * changed; a full set when a change could alter which entries are authorized
   * (a node alias, or an entry that is some other entry's parent).
   */
  async sync(agent: AgentIdentity, since: number | undefined): Promise<EntrySync> {
    const set = await this.authorized(agent);
    if (since === undefined || since > set.revision) return { revision: set.revision, full: true, entries: set.entries, removed: [] };
    if (since === set.revision) return { revision: set.revision, full: false, entries: [], removed: [] };
    const events = await this.store.listEntryEvents(since);
    if (events.length > MAX_DELTA_EVENTS) return { revision: set.revision, full: true, entries: set.entries, removed: [] };
    const touched = new Set<string>();
    for (const ev of events) {
      if (ev.oldParentId === this.serverId || ev.newParentId === this.serverId) {
        return { revision: set.revision, full: true, entries: set.entries, removed: [] };
      }
      if (ev.oldSpiffeId) touched.add(ev.oldSpiffeId);
      if (ev.newSpiffeId) touched.add(ev.newSpiffeId);
    }
    if (touched.size > 0) {
      const children = await this.store.listRegistrationEntries({ parentIds: [...touched], pageSize: 1 });
      if (children.items.length > 0) return { revision: set.revision, full: true, entries: set.entries, removed: [] };
    }
    const parents = new Set<string>([...set.agentIds, ...set.entries.map((e) => e.spiffeId)]);
    const entries = set.entries.filter((e) => e.revision > since);
    const removed = [
      ...new Set(
        events
          .filter((ev) => !set.byId.has(ev.entryId) && ev.oldParentId !== null && parents.has(ev.oldParentId))
          .map((ev) => ev.entryId),
      ),
    ];
    return { revision: set.revision, full: false, entries, removed };
  }
}
