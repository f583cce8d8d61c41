import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/** The agent's Prometheus metrics (names live here with their labels). */
export function createAgentMetrics(stats: () => { cachedSVIDs: number; rotations: number; earliestExpiry: number | null }) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'tessera_agent_' });
  const calls = new Counter({
    name: 'tessera_workload_api_calls_total',
    help: 'Workload API calls by RPC and gRPC status code (OK, PERMISSION_DENIED, INVALID_ARGUMENT, ...)',
    labelNames: ['rpc', 'code'] as const,
    registers: [registry],
  });
  const refused = new Counter({
    name: 'tessera_connections_refused_total',
    help: 'Connections refused or closed by a limit, by listener and reason (total_cap, peer_cap, first_request_deadline, fd_exhausted)',
    labelNames: ['listener', 'reason'] as const,
    registers: [registry],
  });
  new Gauge({
    name: 'tessera_agent_cached_svids',
    help: 'X.509-SVIDs held in the agent cache',
    registers: [registry],
    collect() {
      this.set(stats().cachedSVIDs);
    },
  });
  new Gauge({
    name: 'tessera_agent_svid_rotations',
    help: 'X.509-SVID rotations since the agent started',
    registers: [registry],
    collect() {
      this.set(stats().rotations);
    },
  });
  new Gauge({
    name: 'tessera_agent_earliest_svid_expiry_seconds',
    help: 'Seconds until the earliest cached SVID expires (negative if one is past; absent with none cached)',
    registers: [registry],
    collect() {
      const e = stats().earliestExpiry;
      if (e !== null) this.set(e - Date.now() / 1000);
      else this.reset();
    },
  });
  const anomalies = new Counter({
    name: 'tessera_identity_anomalies_total',
    help: 'identity_anomaly audit events: a caller (uid) bursting far above its own baseline, by kind (requests, denials)',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  return { registry, calls, refused, anomalies };
}
