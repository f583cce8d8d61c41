import { useEffect, useRef, useState } from 'preact/hooks';
import { api, v1 } from '../api';
import { ActivityChart } from '../activity-chart';
import { Empty, ErrorBox } from '../components';
import type { AuditEvent, AuditSummary } from '../types';

const KEEP = 500;
const KNOWN = [
  'node_attested', 'node_attestation_denied', 'agent_svid_renewed', 'x509_svids_issued', 'jwt_svid_issued', 'svid_denied', 'agent_request_denied', 'identity_anomaly',
  'entry_created', 'entry_updated', 'entry_deleted', 'agent_banned', 'agent_evicted', 'join_token_created',
  'x509_authority_prepared', 'x509_authority_activated', 'x509_authority_tainted', 'x509_authority_revoked', 'jwt_authority_prepared', 'jwt_authority_activated',
  'bundle_updated', 'federated_bundle_updated',
];
const DENIAL = /denied|anomaly/;

/** A short line of an event's fields, IDs first. */
function summary(e: AuditEvent): string {
  const f = e.fields;
  const parts: string[] = [];
  for (const k of ['spiffe_id', 'agent_id', 'entry_id', 'authority_id', 'count', 'audience', 'reason']) {
    const v = f[k];
    if (v !== undefined && v !== null && v !== '') parts.push(`${k}=${Array.isArray(v) ? v.join(',') : String(v)}`);
  }
  return parts.join('  ');
}

/** A live tail of this server's identity events (server-sent events), filterable, with issuance and denials per minute. */
export function AuditPage() {
  const [kind, setKind] = useState('');
  const [spiffeId, setSpiffeId] = useState('');
  const [applied, setApplied] = useState({ kind: '', spiffeId: '' });
  const [events, setEvents] = useState<AuditEvent[]>([]);
  const [state, setState] = useState<'connecting' | 'live' | 'reconnecting'>('connecting');
  const [chart, setChart] = useState<AuditSummary | null>(null);
  const [error, setError] = useState<unknown>(null);
  const pending = useRef<number | undefined>(undefined);

  const loadChart = () =>
    api<AuditSummary>('GET', v1('/audit/summary', { minutes: 60 })).then(
      (s) => setChart(s),
      (e) => setError(e),
    );

  useEffect(() => {
    void loadChart();
    const t = setInterval(() => void loadChart(), 15_000);
    return () => clearInterval(t);
  }, []);

  useEffect(() => {
    setEvents([]);
    setState('connecting');
    const es = new EventSource(v1('/audit/stream', { kind: applied.kind || undefined, spiffe_id: applied.spiffeId || undefined, limit: 200 }));
    es.addEventListener('open', () => setState('live'));
    es.addEventListener('error', () => setState('reconnecting'));
    es.addEventListener('audit', (m) => {
      const e = JSON.parse((m as MessageEvent<string>).data) as AuditEvent;
      setEvents((list) => [e, ...list].slice(0, KEEP));
      // the chart follows within a second of a burst
      if (pending.current === undefined) pending.current = window.setTimeout(() => { pending.current = undefined; void loadChart(); }, 1000);
    });
    return () => es.close();
  }, [applied]);

  return (
    <section aria-labelledby="h-audit">
      <div class="page-head">
        <h1 id="h-audit">Audit</h1>
        <span class={`badge ${state === 'live' ? 'badge-active' : 'badge-retired'}`} data-testid="stream-state" role="status">
          {state === 'live' ? 'live' : state}
        </span>
      </div>
      <ErrorBox error={error} />
      {chart && <ActivityChart summary={chart} />}
      <form class="filters" role="search" aria-label="filter events" onSubmit={(e) => { e.preventDefault(); setApplied({ kind, spiffeId }); }}>
        <label>
          Kind
          <input name="kind" list="audit-kinds" value={kind} onInput={(e) => setKind((e.target as HTMLInputElement).value)} placeholder="any" />
        </label>
        <datalist id="audit-kinds">
          {KNOWN.map((k) => (
            <option value={k} key={k} />
          ))}
        </datalist>
        <label>
          SPIFFE ID contains <input name="spiffe_id" value={spiffeId} onInput={(e) => setSpiffeId((e.target as HTMLInputElement).value)} />
        </label>
        <button type="submit">Filter</button>
      </form>
      {events.length === 0 ? (
        <Empty>No events yet{applied.kind || applied.spiffeId ? ' matching this filter' : ''}. Attestations, issuance, denials and changes appear here as they happen.</Empty>
      ) : (
        <ol class="events" data-testid="audit-events" aria-live="polite">
          {events.map((e) => (
            <li key={e.seq} class={DENIAL.test(e.event) ? 'event denial' : 'event'} data-event={e.event}>
              <time dateTime={e.time}>{new Date(e.time).toLocaleTimeString()}</time> <strong>{e.event}</strong> <span class="fields">{summary(e)}</span>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
