import type { Router } from 'express';
import type { Logger } from '../../../common/log';
import type { CAManager } from '../../ca/ca-manager';
import type { DataStore } from '../../datastore/datastore';
import type { X509Issuance } from '../../issuance/x509-issuance';
import type { ChangeFeed } from '../../registration/change-feed';
import type { ServerMetrics } from '../../telemetry';

/** What the admin API's routers need (server/server.ts wires them). */
export interface AdminApiDeps {
  trustDomain: string;
  store: DataStore;
  ca: CAManager;
  /** verify CSR → mint (shared with the agent API) */
  issuance: X509Issuance;
  changes: ChangeFeed;
  log: Logger;
  metrics: ServerMetrics;
  joinTokenTtl: number;
  defaultX509SvidTtl: number;
  defaultJwtSvidTtl: number;
  now: () => number;
  ready: () => boolean;
  /** `jwt.require_audience_allowlist`: entries must name their JWT audiences */
  requireAudienceAllowlist?: boolean;
  /** more admin routes (federation, issue #4), mounted before the 404 handler so errors map the same way */
  extraRouters?: Router[];
}
