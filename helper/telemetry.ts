import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/** The helper's Prometheus metrics. */
export function createHelperMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'tessera_helper_' });
  return {
    registry,
    writes: new Counter({ name: 'tessera_helper_writes_total', help: 'Complete versions of the output files written', registers: [registry] }),
    filesWritten: new Counter({ name: 'tessera_helper_files_written_total', help: 'Output files written, by file name', labelNames: ['file'] as const, registers: [registry] }),
    lastWrite: new Gauge({ name: 'tessera_helper_last_write_timestamp_seconds', help: 'Unix time of the last complete write', registers: [registry] }),
    svidExpiry: new Gauge({ name: 'tessera_helper_svid_expiry_timestamp_seconds', help: 'notAfter of the X.509-SVID written last', registers: [registry] }),
    failures: new Counter({
      name: 'tessera_helper_failures_total',
      help: 'Failures by kind: write, jwt_fetch, signal, command, cmd_restart, token_exchange',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
  };
}
export type HelperMetrics = ReturnType<typeof createHelperMetrics>;
