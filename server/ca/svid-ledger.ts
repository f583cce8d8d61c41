import { createHash } from 'node:crypto';
import type { DataStore, IssuedSVID } from '../datastore/datastore';

/**
 * Which authority signed the SVIDs that are still out there, so that revoking a
 * tainted key can say how many SVIDs still depend on it.
 *
 * Every SVID the server issues to an agent is recorded under a *holder* key —
 * (agent, entry) for X.509-SVIDs, (agent, entry, audience set) for JWT-SVIDs,
 * the agent itself for its own SVID — with its signer and expiry. A later SVID
 * for the same holder replaces the record: an agent re-issuing for an entry stops
 * serving the previous SVID. The dependents of an authority are then the records
 * that name it and have not expired. This needs nothing from the agents, survives
 * server restarts, and errs on the safe side: an SVID whose entry was deleted, or
 * that an evicted or unreachable agent still holds, counts until it expires.
 * Not tracked: SVIDs minted by hand through the admin API (`x509 mint`, `jwt
 * mint`): no agent can replace them, their operator must.
 */
export class SVIDLedger {
  constructor(private readonly d: { store: Pick<DataStore, 'recordIssuedSVIDs' | 'countIssuedSVIDs' | 'listIssuedSVIDs' | 'pruneIssuedSVIDs'>; now: () => number }) {}

  /** Holder of an agent's X.509-SVID for an entry. */
  static x509Holder(agentId: string, entryId: string): string {
    return `x509 ${agentId} ${entryId}`;
  }

  /** Holder of an agent's own X.509-SVID. */
  static agentHolder(agentId: string): string {
    return `agent ${agentId}`;
  }

  /** Holder of an agent's JWT-SVID for an entry and audience set (order and duplicates do not matter, as in the agent's cache). */
  static jwtHolder(agentId: string, entryId: string, audience: readonly string[]): string {
    const aud = createHash('sha256').update(JSON.stringify([...new Set(audience)].sort())).digest('base64url');
    return `jwt ${agentId} ${entryId} ${aud}`;
  }

  /**
   * Records issued SVIDs, each replacing the earlier record of its holder. Within
   * one call a later item replaces an earlier one of the same holder, so only the
   * last is written (a batch re-issuing for one entry writes one row).
   */
  record(items: IssuedSVID[]): Promise<void> {
    if (items.length === 0) return Promise.resolve();
    const last = new Map<string, IssuedSVID>();
    for (const it of items) {
      last.delete(it.holder); // keep insertion order = order of the last occurrence
      last.set(it.holder, it);
    }
    return this.d.store.recordIssuedSVIDs(last.size === items.length ? items : [...last.values()]);
  }

  /** Unexpired SVIDs signed by `authorityId` that have not been replaced. */
  dependents(authorityId: string): Promise<number> {
    return this.d.store.countIssuedSVIDs(authorityId, this.d.now());
  }

  /**
   * Up to `limit` of those dependents, soonest expiry first, each with what its
   * holder key says: the kind of SVID, the agent holding it and the entry.
   */
  async listDependents(authorityId: string, limit: number): Promise<Array<{ kind: 'x509' | 'jwt' | 'agent'; agentId: string; entryId: string | null; expiresAt: number }>> {
    const rows = await this.d.store.listIssuedSVIDs(authorityId, this.d.now(), limit);
    return rows.map((r) => {
      const [kind, agentId, entryId] = r.holder.split(' ');
      return { kind: kind as 'x509' | 'jwt' | 'agent', agentId: agentId ?? '', entryId: entryId ?? null, expiresAt: r.expiresAt };
    });
  }

  /** Forgets expired records; returns how many. */
  prune(): Promise<number> {
    return this.d.store.pruneIssuedSVIDs(this.d.now());
  }
}
