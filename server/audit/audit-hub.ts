/**
 * The server's recent identity events, for the admin API's audit tail
 * (`GET /v1/audit/events`, server-sent events) and its per-minute summary
 * (`GET /v1/audit/summary`), which the Tessera console shows.
 *
 * Every `audit(...)` line the server logs also reaches {@link AuditHub.record}
 * (common/log.ts `withAuditSink`): the tail shows exactly what the log says, with
 * the same field names, and nothing the log would not hold. The hub keeps the last
 * `capacity` events in memory and counts issuance and denials per minute for the
 * last 24 hours. It is per server process: with several servers on one database,
 * each one's tail holds the events it handled (the log pipeline is where they meet).
 */

/** One audit event as the admin API serves it. */
export interface AuditEvent {
  /** grows by one per event in this process; the SSE event id */
  seq: number;
  /** ISO 8601 */
  time: string;
  event: string;
  fields: Record<string, unknown>;
}

export interface AuditBucket {
  /** Unix seconds of the minute's start */
  start: number;
  issued: number;
  denied: number;
}

/** Events that are an SVID (or agent SVID) handed out, and how many each counts. */
const ISSUANCE: Record<string, (f: Record<string, unknown>) => number> = {
  x509_svids_issued: (f) => (typeof f.count === 'number' ? f.count : 1),
  jwt_svid_issued: () => 1,
  jwt_svid_minted: () => 1,
  x509_svid_minted: () => 1,
  agent_svid_renewed: () => 1,
  node_attested: () => 1,
};

/** Events that refused a caller. */
const DENIALS: Record<string, (f: Record<string, unknown>) => number> = {
  svid_denied: (f) => (Array.isArray(f.entry_ids) ? Math.max(1, f.entry_ids.length) : 1),
  agent_request_denied: () => 1,
  node_attestation_denied: () => 1,
  workload_api_denied: () => 1,
};

/** Arrays longer than this are cut in stored events (a 500-SVID batch would hold 500 objects). */
const MAX_ARRAY = 50;
const BUCKET_SECONDS = 60;
const BUCKETS_KEPT = 24 * 60;

export class AuditHub {
  private readonly events: AuditEvent[] = [];
  private seq = 0;
  private readonly subscribers = new Set<(e: AuditEvent) => void>();
  private readonly buckets = new Map<number, AuditBucket>();

  constructor(
    private readonly d: {
      /** the process's clock, in ms */
      nowMs: () => number;
      capacity?: number;
    },
  ) {}

  /** The audit sink: stores the event, counts it, and hands it to every subscriber. */
  record = (event: string, fields: Record<string, unknown>): void => {
    const nowMs = this.d.nowMs();
    const e: AuditEvent = { seq: ++this.seq, time: new Date(nowMs).toISOString(), event, fields: trim(fields) };
    this.events.push(e);
    if (this.events.length > (this.d.capacity ?? 2000)) this.events.shift();
    const issued = ISSUANCE[event]?.(fields) ?? 0;
    const denied = DENIALS[event]?.(fields) ?? 0;
    if (issued || denied) {
      const start = Math.floor(nowMs / 1000 / BUCKET_SECONDS) * BUCKET_SECONDS;
      let b = this.buckets.get(start);
      if (!b) {
        b = { start, issued: 0, denied: 0 };
        this.buckets.set(start, b);
        for (const k of this.buckets.keys()) if (k <= start - BUCKETS_KEPT * BUCKET_SECONDS) this.buckets.delete(k);
      }
      b.issued += issued;
      b.denied += denied;
    }
    for (const s of this.subscribers) s(e);
  };

  /** Stored events after `afterSeq` (all stored when 0), oldest first, at most `limit` (the newest ones). */
  recent(afterSeq = 0, limit = 200): AuditEvent[] {
    const out = this.events.filter((e) => e.seq > afterSeq);
    return out.slice(Math.max(0, out.length - limit));
  }

  /** Called with each new event until the returned function is called. */
  subscribe(fn: (e: AuditEvent) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }

  /** Issuance and denials per minute over the last `minutes`, oldest first, empty minutes included. */
  summary(minutes: number): { bucket_seconds: number; buckets: AuditBucket[]; issued: number; denied: number } {
    const nowStart = Math.floor(this.d.nowMs() / 1000 / BUCKET_SECONDS) * BUCKET_SECONDS;
    const buckets: AuditBucket[] = [];
    let issued = 0;
    let denied = 0;
    for (let i = minutes - 1; i >= 0; i--) {
      const start = nowStart - i * BUCKET_SECONDS;
      const b = this.buckets.get(start) ?? { start, issued: 0, denied: 0 };
      buckets.push({ ...b });
      issued += b.issued;
      denied += b.denied;
    }
    return { bucket_seconds: BUCKET_SECONDS, buckets, issued, denied };
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }
}

/** Whether an event matches the tail's filters: kinds (any of), and a SPIFFE ID found in any of its ID fields. */
export function auditMatches(e: AuditEvent, f: { kinds?: readonly string[]; spiffeId?: string }): boolean {
  if (f.kinds && f.kinds.length > 0 && !f.kinds.includes(e.event)) return false;
  if (f.spiffeId) {
    const x = e.fields;
    const ids = [x.spiffe_id, x.agent_id, x.parent_id, x.trust_domain, x.owner];
    if (Array.isArray(x.svids)) for (const s of x.svids) ids.push((s as { spiffe_id?: unknown })?.spiffe_id);
    if (!ids.some((v) => typeof v === 'string' && v.includes(f.spiffeId!))) return false;
  }
  return true;
}

function trim(fields: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const [k, v] of Object.entries(fields)) {
    if (Array.isArray(v) && v.length > MAX_ARRAY) {
      out ??= { ...fields };
      out[k] = v.slice(0, MAX_ARRAY);
      out[`${k}_truncated`] = v.length - MAX_ARRAY;
    }
  }
  return out ?? fields;
}
