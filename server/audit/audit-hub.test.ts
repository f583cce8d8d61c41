import { Writable } from 'node:stream';
import { audit, createLogger, subsystem, withAuditSink } from '../../common/log';
import { AuditHub, auditMatches } from './audit-hub';

function sinkLogger() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { log: createLogger({ name: 'test', destination }), lines };
}

describe('AuditHub', () => {
  let nowMs = Date.UTC(2026, 0, 1, 12, 0, 30);
  const hub = () => new AuditHub({ nowMs: () => nowMs, capacity: 5 });

  it('gets every audit line of a logger tree, children included, and the log still gets it', () => {
    const h = hub();
    const { log, lines } = sinkLogger();
    const tapped = withAuditSink(log, h.record);
    audit(subsystem(tapped, 'agent_api').child({ x: 1 }), 'svid_denied', { agent_id: 'spiffe://td/tessera/agent/a', entry_ids: ['e1', 'e2'] });
    tapped.info('not an audit line');
    audit(log, 'entry_created', { spiffe_id: 'spiffe://td/untapped' }); // the caller's own logger is untouched
    expect(h.recent().map((e) => e.event)).toEqual(['svid_denied']);
    expect(lines.filter((l) => l.includes('"svid_denied"'))).toHaveLength(1);
    expect(h.summary(1).denied).toBe(2);
  });

  it('keeps the last events, replays after a sequence number, and notifies subscribers', () => {
    const h = hub();
    const seen: number[] = [];
    const off = h.subscribe((e) => seen.push(e.seq));
    for (let i = 0; i < 7; i++) h.record('entry_created', { spiffe_id: `spiffe://td/w${i}` });
    off();
    h.record('entry_created', { spiffe_id: 'spiffe://td/late' });
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(h.recent().map((e) => e.seq)).toEqual([4, 5, 6, 7, 8]); // capacity 5
    expect(h.recent(6).map((e) => e.seq)).toEqual([7, 8]);
    expect(h.recent(0, 2).map((e) => e.seq)).toEqual([7, 8]);
  });

  it('counts issuance and denials per minute over a window, empty minutes included', () => {
    const h = hub();
    h.record('x509_svids_issued', { count: 40, svids: [] });
    h.record('jwt_svid_issued', {});
    nowMs += 120_000; // two minutes later
    h.record('svid_denied', { entry_ids: ['e'] });
    h.record('entry_created', {}); // neither
    const s = h.summary(3);
    expect(s.buckets.map((b) => [b.issued, b.denied])).toEqual([
      [41, 0],
      [0, 0],
      [0, 1],
    ]);
    expect(s.issued).toBe(41);
    expect(s.denied).toBe(1);
    expect(h.summary(1).issued).toBe(0);
  });

  it('cuts long arrays in stored events and filters by kind and by any SPIFFE ID field', () => {
    const h = hub();
    const svids = Array.from({ length: 120 }, (_, i) => ({ spiffe_id: `spiffe://td/w${i}` }));
    h.record('x509_svids_issued', { agent_id: 'spiffe://td/tessera/agent/a', count: 120, svids });
    const [e] = h.recent();
    expect((e!.fields.svids as unknown[]).length).toBe(50);
    expect(e!.fields.svids_truncated).toBe(70);
    expect(auditMatches(e!, { spiffeId: 'spiffe://td/w7' })).toBe(true);
    expect(auditMatches(e!, { spiffeId: 'tessera/agent/a' })).toBe(true);
    expect(auditMatches(e!, { spiffeId: 'spiffe://other' })).toBe(false);
    expect(auditMatches(e!, { kinds: ['svid_denied'] })).toBe(false);
    expect(auditMatches(e!, { kinds: ['svid_denied', 'x509_svids_issued'] })).toBe(true);
  });
});
