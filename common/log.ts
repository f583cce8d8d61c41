import pino, { type Logger, type DestinationStream } from 'pino';

export type { Logger } from 'pino';

/**
 * Log field names, kept in one place (SPIRE's telemetry names) so dashboards and
 * the log-scrubbing test agree on them.
 */
export const F = {
  subsystem: 'subsystem',
  event: 'event',
  audit: 'audit',
  spiffeId: 'spiffe_id',
  agentId: 'agent_id',
  entryId: 'entry_id',
  serial: 'serial',
  expiresAt: 'expires_at',
  reason: 'reason',
  attestationType: 'attestation_type',
  remoteAddr: 'remote_addr',
  pid: 'pid',
  uid: 'uid',
  gid: 'gid',
  code: 'code',
  kid: 'kid',
} as const;

/**
 * Paths redacted whatever a caller passes by mistake. This is a safety net only:
 * the code never puts keys, join tokens or JWTs into log calls in the first place
 * (and an e2e test greps a full run's logs for them).
 */
const REDACT = [
  'token', 'join_token', 'joinToken', 'jwt', 'svid', 'key', 'privateKey', 'private_key',
  '*.token', '*.join_token', '*.joinToken', '*.jwt', '*.privateKey', '*.private_key',
  'req.headers.authorization', 'headers.authorization',
];

export interface LogOptions {
  level?: string;
  name: string;
  destination?: DestinationStream;
}

/** Structured JSON-lines logger (pino). Pass the logger down; don't import a global. */
export function createLogger(opts: LogOptions): Logger {
  return pino(
    {
      name: opts.name,
      level: opts.level ?? 'info',
      redact: { paths: REDACT, censor: '[redacted]' },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    opts.destination ?? pino.destination({ fd: 1, sync: true }),
  );
}

/** Child logger for a subsystem, like SPIRE's `WithField(SubsystemName, ...)`. */
export function subsystem(log: Logger, name: string): Logger {
  return log.child({ [F.subsystem]: name });
}

/** Receives every audit event of a logger tree (the server's audit tail, server/audit). */
export type AuditSink = (event: string, fields: Record<string, unknown>) => void;

const SINK = Symbol('tessera.auditSink');
type WithSink = Logger & { [SINK]?: AuditSink };

/**
 * A child of `log` whose audit events, and those of every logger derived from it,
 * also go to `sink` (pino has no per-tree hook, so `child` is wrapped to carry the
 * sink down). The caller's logger is left as it was.
 */
export function withAuditSink(log: Logger, sink: AuditSink): Logger {
  return carry(log.child({}), sink);
}

function carry(l: Logger, sink: AuditSink): Logger {
  const w = l as WithSink;
  w[SINK] = sink;
  const child = l.child.bind(l);
  w.child = ((bindings: pino.Bindings, options?: pino.ChildLoggerOptions) => carry(child(bindings, options), sink)) as unknown as Logger['child'];
  return l;
}

/** An audit event: one line per attestation, issuance, denial, entry or agent change. */
export function audit(log: Logger, event: string, fields: Record<string, unknown>): void {
  log.info({ [F.audit]: true, [F.event]: event, ...fields }, event);
  (log as WithSink)[SINK]?.(event, fields);
}
