import { useState } from 'preact/hooks';
import { api, v1 } from '../api';
import { Empty, ErrorBox, useLoad } from '../components';
import { nowUnix, relative, when } from '../format';
import type { FederationJSON } from '../types';

/** Federation relationships: profile, endpoint, last refresh and its error, and refresh now. */
export function FederationPage() {
  const list = useLoad(() => api<{ federation_relationships: FederationJSON[] }>('GET', v1('/federation')));
  const [busy, setBusy] = useState('');
  const [result, setResult] = useState<{ td: string; text: string } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const now = nowUnix();
  const refresh = async (td: string) => {
    setBusy(td);
    setError(null);
    try {
      const r = await api<{ changed: boolean; sequence: number | null; next_refresh_in: number }>('POST', v1(`/federation/${encodeURIComponent(td)}/refresh`));
      setResult({ td, text: `${td}: ${r.changed ? `new bundle, sequence ${r.sequence}` : 'bundle unchanged'}; next refresh in ${r.next_refresh_in} s.` });
    } catch (e) {
      setError(e);
    } finally {
      setBusy('');
      list.reload();
    }
  };
  const rels = list.data?.federation_relationships ?? [];
  return (
    <section aria-labelledby="h-federation">
      <h1 id="h-federation">Federation</h1>
      {result && (
        <p class="notice" role="status">
          {result.text}
        </p>
      )}
      <ErrorBox error={list.error ?? error} />
      {list.loading && !list.data ? (
        <p class="loading">Loading…</p>
      ) : rels.length === 0 ? (
        <Empty>
          No federation relationships. Add one with <code>tessera federation create --trust-domain TD --bundle-endpoint-url URL --profile https_web</code>.
        </Empty>
      ) : (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th>Trust domain</th>
                <th>Profile</th>
                <th>Bundle endpoint</th>
                <th>Last refresh</th>
                <th>Status</th>
                <th>Actions</th>
              </tr>
            </thead>
            <tbody>
              {rels.map((f) => (
                <tr key={f.trust_domain} data-trust-domain={f.trust_domain}>
                  <td>
                    <code>{f.trust_domain}</code>
                  </td>
                  <td>
                    {f.profile}
                    {f.endpoint_spiffe_id && <div class="muted">{f.endpoint_spiffe_id}</div>}
                  </td>
                  <td>
                    <code>{f.bundle_endpoint_url}</code>
                  </td>
                  <td>
                    {when(f.last_refresh_at)} <span class="muted">{relative(f.last_refresh_at, now)}</span>
                  </td>
                  <td>{f.last_error ? <span class="error-text">{f.last_error}</span> : f.last_refresh_at ? <span class="badge badge-active">ok</span> : 'not fetched yet'}</td>
                  <td class="row-actions">
                    <button type="button" disabled={busy === f.trust_domain} onClick={() => void refresh(f.trust_domain)}>
                      {busy === f.trust_domain ? 'Refreshing…' : 'Refresh now'}
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
