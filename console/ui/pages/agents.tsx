import { useState } from 'preact/hooks';
import { api, v1 } from '../api';
import { Confirm, Empty, ErrorBox, Pager, SelectorChips, useLoad, usePager } from '../components';
import { nowUnix, relative, when } from '../format';
import type { AgentJSON, EntryJSON } from '../types';

type Action = { kind: 'ban' | 'evict'; agent: AgentJSON; entries?: EntryJSON[]; more?: boolean };

/** Agents: attestation, node selectors, last seen, SVID expiry; evict and ban, each saying what happens to the node's workloads. */
export function AgentsPage() {
  const pager = usePager();
  const token = pager.token;
  const [banned, setBanned] = useState('');
  const list = useLoad(() => api<{ agents: AgentJSON[]; next_page_token: string | null }>('GET', v1('/agents', { page_size: 50, page_token: token, banned: banned || undefined })), [token, banned]);
  const [action, setAction] = useState<Action | null>(null);
  const [notice, setNotice] = useState('');
  const [error, setError] = useState<unknown>(null);
  const now = nowUnix();

  const open = async (kind: Action['kind'], agent: AgentJSON) => {
    setError(null);
    try {
      const r = await api<{ entries: EntryJSON[]; next_page_token: string | null }>('GET', v1('/entries', { parent_id: agent.spiffe_id, page_size: 100 }));
      setAction({ kind, agent, entries: r.entries, more: !!r.next_page_token });
    } catch (e) {
      setError(e);
    }
  };

  const agents = list.data?.agents ?? [];
  return (
    <section aria-labelledby="h-agents">
      <div class="page-head">
        <h1 id="h-agents">Agents</h1>
        <div class="spacer" />
        <label>
          Show{' '}
          <select value={banned} onChange={(e) => { pager.reset(); setBanned((e.target as HTMLSelectElement).value); }}>
            <option value="">all</option>
            <option value="false">not banned</option>
            <option value="true">banned</option>
          </select>
        </label>
      </div>
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      <ErrorBox error={list.error ?? error} />
      {list.loading && !list.data ? (
        <p class="loading">Loading…</p>
      ) : agents.length === 0 ? (
        <Empty>No agents have attested yet. Create a join token with <code>tessera agent token create</code> and start an agent with it.</Empty>
      ) : (
        <div class="table-wrap">
          <table data-testid="agents-table">
            <thead>
              <tr>
                <th>SPIFFE ID</th>
                <th>Attestation</th>
                <th>Node selectors</th>
                <th>Last seen</th>
                <th>SVID expires</th>
                <th>Actions</th>
              </tr>
            </thead>
            <tbody>
              {agents.map((a) => (
                <tr key={a.spiffe_id} data-agent-id={a.spiffe_id} data-banned={String(a.banned)}>
                  <td>
                    <code>{a.spiffe_id}</code> {a.banned && <span class="badge badge-revoked">banned</span>}
                  </td>
                  <td>{a.attestation_type}</td>
                  <td>
                    <SelectorChips selectors={a.selectors} />
                  </td>
                  <td title="when the agent last attested or renewed its SVID">
                    {when(a.updated_at)} <span class="muted">{relative(a.updated_at, now)}</span>
                  </td>
                  <td>{a.banned ? '—' : <>{when(a.expires_at)} <span class="muted">{relative(a.expires_at, now)}</span></>}</td>
                  <td class="row-actions">
                    <button type="button" onClick={() => void open('evict', a)} aria-label={`evict ${a.spiffe_id}`}>
                      Evict
                    </button>
                    {!a.banned && (
                      <button type="button" class="danger" onClick={() => void open('ban', a)} aria-label={`ban ${a.spiffe_id}`}>
                        Ban
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <Pager pager={pager} nextToken={list.data?.next_page_token} />
      {action && (
        <Confirm
          title={action.kind === 'ban' ? 'Ban this agent?' : 'Evict this agent?'}
          confirmLabel={action.kind === 'ban' ? 'Ban agent' : 'Evict agent'}
          danger
          onClose={() => setAction(null)}
          run={async () => {
            await api('POST', v1(`/agents/${encodeURIComponent(action.agent.spiffe_id)}/${action.kind}`));
            setNotice(`${action.agent.spiffe_id} ${action.kind === 'ban' ? 'banned' : 'evicted'}.`);
            list.reload();
          }}
        >
          <p>
            <code>{action.agent.spiffe_id}</code>
          </p>
          {action.kind === 'ban' ? (
            <p>
              Every server refuses this agent at once: it gets no new SVIDs, for itself or its workloads, and cannot attest again until it is evicted. Its workloads keep the SVIDs they hold
              until those expire, then have none.
            </p>
          ) : (
            <p>
              The agent's record is deleted: its next request is refused and it must attest again ({action.agent.attestation_type === 'join_token' ? 'with a new join token, since tokens work once' : 'x509pop agents do so by themselves'}).
              Until then its workloads get no new SVIDs; those they hold stay valid until they expire.
            </p>
          )}
          <p data-testid="affected-entries">
            {action.entries!.length === 0
              ? 'No entry names this agent as its parent.'
              : `${action.entries!.length}${action.more ? '+' : ''} entr${action.entries!.length === 1 ? 'y names' : 'ies name'} this agent as parent: ${action.entries!.slice(0, 5).map((e) => e.spiffe_id).join(', ')}${action.entries!.length > 5 ? ', …' : ''}.`}
          </p>
        </Confirm>
      )}
    </section>
  );
}
