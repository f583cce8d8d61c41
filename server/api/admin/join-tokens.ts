import express, { type Router } from 'express';
import { F, audit } from '../../../common/log';
import { parseNewEntry } from '../../registration/entry-input';
import { hashJoinToken, newJoinToken } from '../../attestor/node/join-token';
import { agentIdFor } from '../../attestor/node/node-attestor';
import { intParam } from '../http';
import type { AdminApiDeps } from './deps';

/** Join tokens: one-time, hashed at rest; optionally with a node alias entry. */
export function joinTokensRouter(d: AdminApiDeps): Router {
  const r = express.Router();
  const log = d.log;
  r.post('/v1/join-tokens', async (req, res) => {
    const b = (req.body ?? {}) as Record<string, unknown>;
    const ttl = intParam(b.ttl, 'ttl', { min: 1, max: 30 * 24 * 3600 }) ?? d.joinTokenTtl;
    const { token, tokenId } = newJoinToken();
    const agentId = agentIdFor(d.trustDomain, 'join_token', tokenId);
    let alias: string | undefined;
    if (b.spiffe_id !== undefined) {
      // As SPIRE: the alias is an entry parented to the agent's ID, so workload
      // entries can name the alias as their parent.
      const aliasEntry = parseNewEntry(
        { spiffe_id: b.spiffe_id, parent_id: agentId, selectors: [`tessera:join_token:${tokenId}`] },
        d.trustDomain,
        '',
      );
      alias = aliasEntry.spiffeId;
      const [e] = await d.store.createRegistrationEntries([aliasEntry]);
      audit(log, 'entry_created', { [F.entryId]: e!.id, [F.spiffeId]: e!.spiffeId, parent_id: agentId, node_alias: true });
      d.changes.notify();
    }
    const expiresAt = d.now() + ttl;
    await d.store.createJoinToken({ tokenHash: hashJoinToken(token), tokenId, expiresAt });
    audit(log, 'join_token_created', { token_id: tokenId, [F.agentId]: agentId, [F.expiresAt]: expiresAt, alias });
    res.status(201).json({ token, token_id: tokenId, agent_id: agentId, spiffe_id: alias ?? null, expires_at: expiresAt });
  });
  return r;
}
