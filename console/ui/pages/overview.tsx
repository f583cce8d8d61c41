import { api, v1 } from '../api';
import { ErrorBox, Stat, useLoad } from '../components';
import { relative, when } from '../format';
import { Timeline } from '../timeline';
import type { Overview } from '../types';

export function OverviewPage() {
  const { data, error, loading } = useLoad(() => api<Overview>('GET', v1('/overview')));
  if (!data) return loading ? <p class="loading">Loading…</p> : <ErrorBox error={error} />;
  const o = data;
  const active = (k: 'x509' | 'jwt') => o.authorities[k].find((a) => a.state === 'active');
  const fedFailing = o.federation.filter((f) => f.last_error).length;
  return (
    <section aria-labelledby="h-overview">
      <h1 id="h-overview">Overview</h1>
      <ErrorBox error={error} />
      <p class="lead">
        Trust domain <code data-testid="trust-domain">{o.trust_domain}</code>
      </p>
      <div class="stats">
        <Stat label="Registration entries" value={<span data-testid="count-entries">{o.entries}</span>} />
        <Stat label="Agents" value={<span data-testid="count-agents">{o.agents.total}</span>} hint={o.agents.banned ? `${o.agents.banned} banned` : 'none banned'} />
        <Stat label="SVIDs issued, last hour" value={<span data-testid="count-issued">{o.last_hour.svids_issued}</span>} hint="by this server" />
        <Stat label="Denials, last hour" value={<span data-testid="count-denials">{o.last_hour.denials}</span>} hint="by this server" />
        <Stat
          label="Earliest agent SVID expiry"
          value={o.agents.earliest_svid_expiry ? relative(o.agents.earliest_svid_expiry.expires_at, o.now) : '—'}
          hint={o.agents.earliest_svid_expiry ? <code>{o.agents.earliest_svid_expiry.agent_id}</code> : 'no agent attested yet'}
        />
        <Stat
          label="Federation"
          value={o.federation.length === 0 ? 'none' : fedFailing ? `${fedFailing} of ${o.federation.length} failing` : `${o.federation.length} healthy`}
          hint={o.federation.length ? <a href="#/federation">relationships</a> : 'no federated trust domains'}
        />
      </div>
      <h2>Signing keys</h2>
      <p class="muted">
        X.509 CA: active until {when(active('x509')?.not_after)}, next prepare {relative(active('x509')?.prepare_at, o.now) || '—'}, next activate{' '}
        {relative(active('x509')?.activate_at, o.now) || '—'}. JWT key: active until {when(active('jwt')?.not_after)}.
      </p>
      <Timeline x509={o.authorities.x509} jwt={o.authorities.jwt} now={o.now} />
      <p>
        <a href="#/authorities">Manage authorities →</a>
      </p>
    </section>
  );
}
