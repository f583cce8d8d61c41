import express, { type Router } from 'express';
import { auditMatches, type AuditEvent, type AuditHub } from '../../audit/audit-hub';
import { intParam } from '../http';
import { queryList } from './shared';

/** How often an idle stream sends an SSE comment, so proxies and browsers keep it open. */
const HEARTBEAT_MS = 15_000;

/**
 * The audit tail (the console's Audit page), from this server's {@link AuditHub}:
 *   GET /v1/audit/events?kind=K&spiffe_id=S&after=SEQ&limit=N → {events: [...]}
 *   GET /v1/audit/stream?kind=K&spiffe_id=S                  → text/event-stream
 *   GET /v1/audit/summary?minutes=M                          → issuance and denials per minute
 * The stream first replays the stored events after `Last-Event-ID` (or the last
 * `limit`, default 100), then sends each new one as `event: audit`, `id: <seq>`.
 * `kind` may repeat; `spiffe_id` matches a substring of any ID field of the event.
 */
export function auditRouter(d: { audit: AuditHub }): Router {
  const r = express.Router();
  const filters = (q: Record<string, unknown>) => ({
    kinds: queryList(q.kind).flatMap((k) => k.split(',')).filter(Boolean),
    spiffeId: q.spiffe_id ? String(q.spiffe_id) : undefined,
  });

  r.get('/v1/audit/events', (req, res) => {
    const f = filters(req.query);
    const after = intParam(req.query.after, 'after') ?? 0;
    const limit = intParam(req.query.limit, 'limit', { min: 1, max: 2000 }) ?? 200;
    res.json({ events: d.audit.recent(after, 2000).filter((e) => auditMatches(e, f)).slice(-limit) });
  });

  r.get('/v1/audit/summary', (req, res) => {
    const minutes = intParam(req.query.minutes, 'minutes', { min: 1, max: 24 * 60 }) ?? 60;
    res.json(d.audit.summary(minutes));
  });

  r.get('/v1/audit/stream', (req, res) => {
    const f = filters(req.query);
    const lastId = intParam(req.get('last-event-id') ?? req.query.after, 'Last-Event-ID');
    const limit = intParam(req.query.limit, 'limit', { min: 1, max: 2000 }) ?? 100;
    res.status(200).set({ 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
    res.flushHeaders();
    const send = (e: AuditEvent) => {
      if (auditMatches(e, f)) res.write(`id: ${e.seq}\nevent: audit\ndata: ${JSON.stringify(e)}\n\n`);
    };
    res.write('retry: 2000\n\n');
    const backlog = d.audit.recent(lastId ?? 0, 2000).filter((e) => auditMatches(e, f));
    for (const e of lastId === undefined ? backlog.slice(-limit) : backlog) send(e);
    const unsubscribe = d.audit.subscribe(send);
    const beat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
    beat.unref();
    const end = () => {
      clearInterval(beat);
      unsubscribe();
    };
    // The response's close, not the request's: a request's 'close' fires as soon as its
    // (empty) body has been read, which would unsubscribe a stream that is still open.
    res.on('close', end);
    res.on('error', end);
  });
  return r;
}
