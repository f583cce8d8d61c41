import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The server's Prometheus metrics; names live here with their labels (SPIRE telemetry).
 * `countEntries` is read when the metrics are scraped, not on every write: a count over
 * the whole table costs time linear in the number of entries (about 20 ms at 100,000 on
 * PostgreSQL), and it also sees what other servers on the same database wrote.
 */
export function createServerMetrics(opts: { countEntries?: () => Promise<number> } = {}) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'tessera_server_' });
  return {
    registry,
    svidsIssued: new Counter({
      name: 'tessera_svids_issued_total',
      help: 'SVIDs issued, by type (x509, jwt, agent_x509) and API (agent, admin)',
      labelNames: ['type', 'api'] as const,
      registers: [registry],
    }),
    errors: new Counter({
      name: 'tessera_api_errors_total',
      help: 'API requests answered with an error, by API and error code',
      labelNames: ['api', 'code'] as const,
      registers: [registry],
    }),
    attestations: new Counter({
      name: 'tessera_node_attestations_total',
      help: 'Node attestation attempts, by attestor type and result (ok, denied, error)',
      labelNames: ['type', 'result'] as const,
      registers: [registry],
    }),
    caExpiry: new Gauge({
      name: 'tessera_ca_expiry_timestamp_seconds',
      help: 'Unix time at which the active signing key expires, by kind (x509, jwt)',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    refused: new Counter({
      name: 'tessera_connections_refused_total',
      help: 'Connections refused or closed by a limit, by listener and reason (total_cap, peer_cap, first_request_deadline, fd_exhausted)',
      labelNames: ['listener', 'reason'] as const,
      registers: [registry],
    }),
    anomalies: new Counter({
      name: 'tessera_identity_anomalies_total',
      help: 'identity_anomaly audit events: an agent bursting far above its own baseline, by kind (requests, denials)',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    clockJumps: new Counter({
      name: 'tessera_clock_jumps_total',
      help: 'Wall-clock steps (forward or back) detected against the monotonic clock',
      registers: [registry],
    }),
    entries: new Gauge({
      name: 'tessera_registration_entries',
      help: 'Registration entries in the datastore (counted at scrape time)',
      registers: [registry],
      async collect() {
        if (!opts.countEntries) return;
        try {
          this.set(await opts.countEntries());
        } catch {
          // the datastore is unreachable: the scrape still answers, with the last count (and /ready says why)
        }
      },
    }),
  };
}
export type ServerMetrics = ReturnType<typeof createServerMetrics>;
