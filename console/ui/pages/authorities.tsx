import { useState } from 'preact/hooks';
import { api, v1 } from '../api';
import { Confirm, ErrorBox, useLoad } from '../components';
import { nowUnix, relative, when } from '../format';
import { SlotTable, Timeline } from '../timeline';
import type { AuthorityJSON } from '../types';

type Kind = 'x509' | 'jwt';
type Op = 'prepare' | 'activate' | 'taint' | 'revoke';

interface Detail {
  authority: AuthorityJSON;
  dependent_svids: Array<{ kind: string; agent_id: string; entry_id: string | null; spiffe_id: string | null; expires_at: number }>;
  preview: { activate: string | null; taint: string | null; revoke: string | null; revoke_force: string | null };
}

const NAME: Record<Kind, string> = { x509: 'X.509 CA', jwt: 'JWT key' };

const EFFECT: Record<Op, (k: Kind) => string> = {
  prepare: (k) => `A new ${NAME[k]} key is made and published in the trust bundle now, so relying parties learn it before it signs anything. It signs nothing until it is activated. A prepared key that already exists is replaced (it signed nothing).`,
  activate: (k) => `The prepared ${NAME[k]} becomes the signer of every new ${k === 'x509' ? 'X.509' : 'JWT'}-SVID. The active one is retired: it stays in the bundle until it expires, so what it signed keeps validating.`,
  taint: (k) => `The ${NAME[k]} is marked tainted: agents re-issue every SVID it signed, spread over a short jitter window, and relying parties should stop trusting it soon. It stays in the bundle until revoked.`,
  revoke: (k) => `The tainted ${NAME[k]} leaves the trust bundle: anything it signed stops validating everywhere the bundle reaches.`,
};

/** Authorities: both kinds on the timeline, and prepare / activate / taint / revoke, each previewed before it runs. */
export function AuthoritiesPage() {
  const x509 = useLoad(() => api<{ authorities: AuthorityJSON[] }>('GET', v1('/authorities/x509')));
  const jwt = useLoad(() => api<{ authorities: AuthorityJSON[] }>('GET', v1('/authorities/jwt')));
  const [op, setOp] = useState<{ kind: Kind; op: Op; id?: string; detail?: Detail } | null>(null);
  const [force, setForce] = useState(false);
  const [notice, setNotice] = useState('');
  const [error, setError] = useState<unknown>(null);
  const now = nowUnix();
  const reload = () => {
    x509.reload();
    jwt.reload();
  };

  const start = async (kind: Kind, o: Op, id?: string) => {
    setError(null);
    setForce(false);
    try {
      const detail = id ? await api<Detail>('GET', v1(`/authorities/${kind}/${encodeURIComponent(id)}`)) : undefined;
      setOp({ kind, op: o, id, detail });
    } catch (e) {
      setError(e);
    }
  };

  const refusal = (): string | null => {
    if (!op?.detail) return null;
    if (op.op === 'revoke') return force ? op.detail.preview.revoke_force : op.detail.preview.revoke;
    return op.op === 'activate' ? op.detail.preview.activate : op.op === 'taint' ? op.detail.preview.taint : null;
  };

  const actions = (kind: Kind) => (a: AuthorityJSON) => (
    <>
      {a.state === 'prepared' && (
        <button type="button" class="primary" onClick={() => void start(kind, 'activate', a.id)}>
          Activate
        </button>
      )}
      {a.state === 'retired' && (
        <button type="button" onClick={() => void start(kind, 'taint', a.id)}>
          Taint
        </button>
      )}
      {a.state === 'tainted' && (
        <button type="button" class="danger" onClick={() => void start(kind, 'revoke', a.id)}>
          Revoke
        </button>
      )}
    </>
  );

  const section = (kind: Kind, l: typeof x509) => (
    <section aria-labelledby={`h-${kind}`} data-kind={kind}>
      <div class="page-head">
        <h2 id={`h-${kind}`}>{NAME[kind]}</h2>
        <div class="spacer" />
        <button type="button" onClick={() => void start(kind, 'prepare')}>
          Prepare new {NAME[kind]}
        </button>
      </div>
      <ErrorBox error={l.error} />
      {l.data && <SlotTable slots={l.data.authorities} now={now} actions={actions(kind)} />}
    </section>
  );

  const refused = refusal();
  return (
    <section aria-labelledby="h-authorities">
      <h1 id="h-authorities">Authorities</h1>
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      <ErrorBox error={error} />
      {x509.data && jwt.data && <Timeline x509={x509.data.authorities} jwt={jwt.data.authorities} now={now} />}
      {section('x509', x509)}
      {section('jwt', jwt)}
      {op && (
        <Confirm
          title={`${op.op[0]!.toUpperCase()}${op.op.slice(1)} ${NAME[op.kind]}${op.id ? ` ${op.id}` : ''}?`}
          confirmLabel={`${op.op[0]!.toUpperCase()}${op.op.slice(1)}${op.op === 'revoke' && force ? ' with force' : ''}`}
          danger={op.op === 'revoke' || op.op === 'taint'}
          allowed={refused === null}
          onClose={() => setOp(null)}
          run={async () => {
            const body = op.op === 'prepare' ? undefined : op.op === 'revoke' ? { authority_id: op.id, force } : { authority_id: op.id };
            const out = await api<{ authority: AuthorityJSON }>('POST', v1(`/authorities/${op.kind}/${op.op}`), body);
            setNotice(`${NAME[op.kind]} ${out.authority.id} is now ${out.authority.state}.`);
            reload();
          }}
        >
          <p>{EFFECT[op.op](op.kind)}</p>
          {op.detail && (
            <>
              <p data-testid="dependents">
                {op.detail.authority.svids === 0
                  ? 'No unexpired SVID signed by this key is still in use.'
                  : `${op.detail.authority.svids} unexpired SVID${op.detail.authority.svids === 1 ? '' : 's'} signed by this key ${op.detail.authority.svids === 1 ? 'is' : 'are'} still held:`}
              </p>
              {op.detail.dependent_svids.length > 0 && (
                <div class="table-wrap small">
                  <table>
                    <thead>
                      <tr>
                        <th>SVID</th>
                        <th>Held by agent</th>
                        <th>Expires</th>
                      </tr>
                    </thead>
                    <tbody>
                      {op.detail.dependent_svids.map((d, i) => (
                        <tr key={i}>
                          <td>
                            {d.kind} <code>{d.spiffe_id ?? d.entry_id ?? ''}</code>
                          </td>
                          <td>
                            <code>{d.agent_id}</code>
                          </td>
                          <td>{relative(d.expires_at, now)}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              )}
              <p class="muted">
                Key {op.detail.authority.key_id}, valid {when(op.detail.authority.not_before)} → {when(op.detail.authority.not_after)}.
              </p>
            </>
          )}
          {refused && (
            <div class="refused" role="alert" data-testid="refused">
              <strong>Refused:</strong> {refused}
            </div>
          )}
          {op.op === 'revoke' && op.detail && op.detail.preview.revoke !== null && op.detail.preview.revoke_force === null && (
            <label class="check">
              <input type="checkbox" checked={force} onChange={(e) => setForce((e.target as HTMLInputElement).checked)} /> Revoke anyway (force): those SVIDs stop validating
            </label>
          )}
        </Confirm>
      )}
    </section>
  );
}
