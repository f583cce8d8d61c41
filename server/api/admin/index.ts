import express, { type Router } from 'express';
import { notFound } from '../../../common/errors';
import { errorHandler } from '../http';
import { agentsRouter } from './agents';
import { bundlesRouter } from './bundles';
import type { AdminApiDeps } from './deps';
import { entriesRouter } from './entries';
import { joinTokensRouter } from './join-tokens';
import { svidsRouter } from './svids';

export type { AdminApiDeps } from './deps';
export { nodeToJSON } from './shared';

/**
 * The admin API, served only on the local admin Unix socket (directory mode 0770):
 * whoever can reach it is an operator. Batches are atomic: if any item is invalid
 * the request fails with 400 naming it, and nothing is stored. One router per
 * resource (this folder); authorities and federation come in as `extraRouters`.
 */
export function adminApi(d: AdminApiDeps): Router {
  const r = express.Router();
  r.use(express.json({ limit: '16mb' }));
  r.get('/v1/health', (_req, res) => {
    const ready = d.ready();
    res.status(ready ? 200 : 503).json({ live: true, ready, trust_domain: d.trustDomain });
  });
  for (const resource of [entriesRouter, agentsRouter, joinTokensRouter, bundlesRouter, svidsRouter]) r.use(resource(d));
  for (const extra of d.extraRouters ?? []) r.use(extra);
  r.use((_req, _res) => {
    throw notFound('no such admin API route');
  });
  r.use(errorHandler(d.log, 'admin', (code) => d.metrics.errors.inc({ api: 'admin', code })));
  return r;
}
