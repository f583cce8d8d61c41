import express, { type Request, type Router } from 'express';
import { F, audit } from '../../../common/log';
import { notFound } from '../../../common/errors';
import { parseSpiffeId } from '../../../common/spiffeid/spiffe-id';
import { intParam } from '../http';
import { nodeToJSON } from './shared';
import type { AdminApiDeps } from './deps';

/** Attested agents: list, show, evict (it must attest again), ban (refused until evicted). */
export function agentsRouter(d: AdminApiDeps): Router {
  const r = express.Router();
  const log = d.log;
  r.get('/v1/agents', async (req, res) => {
    const page = await d.store.listAttestedNodes({
      banned: req.query.banned === undefined ? undefined : req.query.banned === 'true',
      attestationType: req.query.attestation_type ? String(req.query.attestation_type) : undefined,
      pageSize: intParam(req.query.page_size, 'page_size', { min: 1, max: 1000 }),
      pageToken: req.query.page_token !== undefined ? String(req.query.page_token) : undefined,
    });
    res.json({ agents: page.items.map(nodeToJSON), next_page_token: page.nextPageToken ?? null });
  });

  const agentParam = (req: Request) => parseSpiffeId(String(req.params.id)).toString();

  r.get('/v1/agents/:id', async (req, res) => {
    const id = agentParam(req);
    const n = await d.store.fetchAttestedNode(id);
    if (!n) throw notFound(`agent ${id} not found`);
    res.json({ agent: nodeToJSON(n) });
  });

  r.post('/v1/agents/:id/evict', async (req, res) => {
    const n = await d.store.deleteAttestedNode(agentParam(req));
    audit(log, 'agent_evicted', { [F.agentId]: n.spiffeId });
    d.changes.notify(); // wake its long poll so it learns at once
    res.json({ agent: nodeToJSON(n) });
  });

  r.post('/v1/agents/:id/ban', async (req, res) => {
    const n = await d.store.updateAttestedNode(agentParam(req), { banned: true, newSerialNumber: '', newExpiresAt: 0 });
    audit(log, 'agent_banned', { [F.agentId]: n.spiffeId });
    d.changes.notify();
    res.json({ agent: nodeToJSON(n) });
  });
  return r;
}
