import { useState } from 'preact/hooks';
import { api, v1 } from '../api';
import { Confirm, Empty, ErrorBox, Pager, SelectorChips, useLoad, usePager } from '../components';
import { when } from '../format';
import type { AgentJSON, EntryJSON } from '../types';
import { EntryForm } from './entry-form';
import { ImportPanel } from './entry-import';

const PAGE = 50;
const MATCHES = ['exact', 'subset', 'superset', 'any'] as const;

/** Entries: search (the admin API's filters and match modes), paging by token, create, edit, delete, import. */
export function EntriesPage({ trustDomain }: { trustDomain: string }) {
  const [filters, setFilters] = useState({ spiffe_id: '', parent_id: '', selector: '', match: 'exact' });
  const [applied, setApplied] = useState(filters);
  const pager = usePager();
  const token = pager.token;
  const [mode, setMode] = useState<{ kind: 'list' } | { kind: 'create' } | { kind: 'edit'; entry: EntryJSON } | { kind: 'import' }>({ kind: 'list' });
  const [deleting, setDeleting] = useState<EntryJSON | null>(null);
  const [notice, setNotice] = useState('');
  const list = useLoad(
    () =>
      api<{ entries: EntryJSON[]; next_page_token: string | null }>(
        'GET',
        v1('/entries', {
          spiffe_id: applied.spiffe_id.trim(),
          parent_id: applied.parent_id.trim(),
          selector: applied.selector.split(/[\s,]+/).filter(Boolean),
          match: applied.selector.trim() ? applied.match : undefined,
          page_size: PAGE,
          page_token: token,
        }),
      ),
    [applied, token],
  );
  const count = useLoad(() => api<{ count: number }>('GET', v1('/entries/count')), [list.data]);
  const agents = useLoad(() => api<{ agents: AgentJSON[] }>('GET', v1('/agents', { page_size: 200 })));

  const search = (e: Event) => {
    e.preventDefault();
    pager.reset();
    setApplied({ ...filters });
  };
  const set = (k: keyof typeof filters) => (e: Event) => setFilters({ ...filters, [k]: (e.target as HTMLInputElement).value });
  const saved = (e: EntryJSON, verb: string) => {
    setNotice(`Entry ${e.id} (${e.spiffe_id}) ${verb}.`);
    setMode({ kind: 'list' });
    list.reload();
  };

  if (mode.kind === 'create' || mode.kind === 'edit') {
    return (
      <section>
        <datalist id="parent-suggestions">
          {(agents.data?.agents ?? []).map((a) => (
            <option value={a.spiffe_id} key={a.spiffe_id} />
          ))}
        </datalist>
        <EntryForm trustDomain={trustDomain} entry={mode.kind === 'edit' ? mode.entry : undefined} onCancel={() => setMode({ kind: 'list' })} onSaved={(e) => saved(e, mode.kind === 'edit' ? 'saved' : 'created')} />
      </section>
    );
  }
  if (mode.kind === 'import') return <ImportPanel onDone={() => { setMode({ kind: 'list' }); list.reload(); }} />;

  const entries = list.data?.entries ?? [];
  return (
    <section aria-labelledby="h-entries">
      <div class="page-head">
        <h1 id="h-entries">Entries</h1>
        <span class="muted" data-testid="entry-count">{count.data ? `${count.data.count} in all` : ''}</span>
        <div class="spacer" />
        <button type="button" onClick={() => setMode({ kind: 'import' })}>
          Import JSON…
        </button>
        <button type="button" class="primary" onClick={() => setMode({ kind: 'create' })}>
          Create entry
        </button>
      </div>
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      <form class="filters" onSubmit={search} role="search" aria-label="search entries">
        <label>
          SPIFFE ID <input name="spiffe_id" value={filters.spiffe_id} onInput={set('spiffe_id')} placeholder={`spiffe://${trustDomain}/…`} />
        </label>
        <label>
          Parent ID <input name="parent_id" value={filters.parent_id} onInput={set('parent_id')} />
        </label>
        <label>
          Selectors <input name="selector" value={filters.selector} onInput={set('selector')} placeholder="unix:uid:1000 unix:gid:1000" />
        </label>
        <label>
          Match
          <select name="match" value={filters.match} onChange={set('match')}>
            {MATCHES.map((m) => (
              <option key={m} value={m}>
                {m}
              </option>
            ))}
          </select>
        </label>
        <button type="submit">Search</button>
      </form>
      <ErrorBox error={list.error} />
      {list.loading && !list.data ? (
        <p class="loading">Loading…</p>
      ) : entries.length === 0 ? (
        <Empty>{applied.spiffe_id || applied.parent_id || applied.selector ? 'No entry matches this search.' : 'No registration entries yet. Create one, or import a JSON file.'}</Empty>
      ) : (
        <div class="table-wrap">
          <table data-testid="entries-table">
            <thead>
              <tr>
                <th>SPIFFE ID</th>
                <th>Parent</th>
                <th>Selectors</th>
                <th>TTL X.509 / JWT</th>
                <th>Expires</th>
                <th>Actions</th>
              </tr>
            </thead>
            <tbody>
              {entries.map((e) => (
                <tr key={e.id} data-entry-id={e.id}>
                  <td>
                    <code>{e.spiffe_id}</code>
                    <div class="muted">{e.id}</div>
                  </td>
                  <td>
                    <code>{e.parent_id}</code>
                  </td>
                  <td>
                    <SelectorChips selectors={e.selectors} />
                  </td>
                  <td>
                    {e.x509_svid_ttl || 'default'} / {e.jwt_svid_ttl || 'default'}
                  </td>
                  <td>{e.expires_at ? when(e.expires_at) : 'never'}</td>
                  <td class="row-actions">
                    <button type="button" onClick={() => setMode({ kind: 'edit', entry: e })} aria-label={`edit ${e.spiffe_id}`}>
                      Edit
                    </button>
                    <button type="button" class="danger" onClick={() => setDeleting(e)} aria-label={`delete ${e.spiffe_id}`}>
                      Delete
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <Pager pager={pager} nextToken={list.data?.next_page_token} />
      {deleting && (
        <Confirm
          title="Delete this entry?"
          confirmLabel="Delete entry"
          danger
          onClose={() => setDeleting(null)}
          run={async () => {
            await api('POST', v1('/entries/delete'), { ids: [deleting.id] });
            setNotice(`Entry ${deleting.id} (${deleting.spiffe_id}) deleted.`);
            list.reload();
          }}
        >
          <p>
            <code>{deleting.spiffe_id}</code> will no longer be issued. Workloads matching <em>{deleting.selectors.map((s) => `${s.type}:${s.value}`).join(', ')}</em> under{' '}
            <code>{deleting.parent_id}</code> lose this identity at their agent's next sync (within a second); SVIDs already issued stay valid until they expire.
          </p>
        </Confirm>
      )}
    </section>
  );
}
