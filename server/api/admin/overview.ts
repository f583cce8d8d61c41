import express, { type Router } from 'express';
import type { AuditHub } from '../../audit/audit-hub';
import type { CAManager } from '../../ca/ca-manager';
import type { SVIDLedger } from '../../ca/svid-ledger';
import type { DataStore } from '../../datastore/datastore';
import { authorityToJSON } from '../authority-api';

export interface OverviewDeps {
  trustDomain: string;
  store: DataStore;
  ca: Pick<CAManager, 'authorities'>;
  ledger: Pick<SVIDLedger, 'dependents'>;
  audit: AuditHub;
  now: () => number;
}

/**
 * `GET /v1/overview`: the trust domain at a glance (the console's first page), in
 * one call: entry and agent counts, the agent SVID that expires first, this
 * server's issuance and denials in the last hour, every authority slot with its
 * schedule, and each federation relationship's refresh status. Agents and entries
 * are counted by the store, in SQL (a constant number of queries at any size).
 */
export function overviewRouter(d: OverviewDeps): Router {
  const r = express.Router();
  r.get('/v1/overview', async (_req, res) => {
    const nodes = await d.store.summarizeAttestedNodes();
    const authorities = async (kind: 'x509' | 'jwt') => Promise.all(d.ca.authorities(kind).map(async (a) => authorityToJSON(a, await d.ledger.dependents(a.id))));
    const federation = await Promise.all(
      (await d.store.listFederationRelationships()).map(async (f) => ({
        trust_domain: f.trustDomain,
        profile: f.profile,
        bundle_endpoint_url: f.bundleEndpointUrl,
        last_refresh_at: f.lastRefreshAt,
        last_error: f.lastError,
        bundle_sequence: (await d.store.fetchBundle(f.trustDomain))?.sequence ?? null,
      })),
    );
    const hour = d.audit.summary(60);
    res.json({
      trust_domain: d.trustDomain,
      now: d.now(),
      entries: await d.store.countRegistrationEntries(),
      agents: {
        total: nodes.total,
        banned: nodes.banned,
        earliest_svid_expiry: nodes.earliest && { agent_id: nodes.earliest.spiffeId, expires_at: nodes.earliest.expiresAt },
      },
      last_hour: { svids_issued: hour.issued, denials: hour.denied },
      authorities: { x509: await authorities('x509'), jwt: await authorities('jwt') },
      federation,
    });
  });
  return r;
}
