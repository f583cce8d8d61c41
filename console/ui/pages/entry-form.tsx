import { useState } from 'preact/hooks';
import { api, ApiError, v1 } from '../api';
import { ErrorBox } from '../components';
import type { EntryJSON } from '../types';
// The server's own SPIFFE ID and selector rules, bundled: the form says what the server would.
import { parseSpiffeId } from '../../../common/spiffeid/spiffe-id';
import { parseSelector } from '../../../common/selector';

/** Selector types the agent's unix workload attestor produces, and the node selectors of the server's attestors. */
export const SELECTOR_SUGGESTIONS = [
  'unix:uid:', 'unix:gid:', 'unix:user:', 'unix:group:', 'unix:supplementary_gid:', 'unix:supplementary_group:', 'unix:path:', 'unix:sha256:',
  'join_token:', 'x509pop:subject:cn:', 'x509pop:ca:fingerprint:', 'x509pop:san:',
];

type Field = 'spiffe_id' | 'parent_id' | 'selectors' | 'x509_svid_ttl' | 'jwt_svid_ttl' | 'dns_names' | 'jwt_audiences' | 'federates_with' | 'hint' | 'form';

const lines = (s: string) => s.split(/[\n,]/).map((x) => x.trim()).filter(Boolean);

/** Which field a server message names: `entries.0.spiffe_id: ...` → spiffe_id. */
export function fieldOf(message: string): Field {
  const m = /^entries\.\d+\.([a-z0-9_]+)/.exec(message);
  const f = m?.[1] as Field | undefined;
  return f && ['spiffe_id', 'parent_id', 'selectors', 'x509_svid_ttl', 'jwt_svid_ttl', 'dns_names', 'jwt_audiences', 'federates_with', 'hint'].includes(f) ? f : 'form';
}

/** Create (no `entry`) or edit an entry; validates as you leave a field, and shows the server's message next to the field it names. */
export function EntryForm({ entry, trustDomain, onSaved, onCancel }: { entry?: EntryJSON; trustDomain: string; onSaved: (e: EntryJSON) => void; onCancel: () => void }) {
  const [v, setV] = useState({
    spiffe_id: entry?.spiffe_id ?? `spiffe://${trustDomain}/`,
    parent_id: entry?.parent_id ?? '',
    selectors: entry ? entry.selectors.map((s) => `${s.type}:${s.value}`).join('\n') : '',
    x509_svid_ttl: String(entry?.x509_svid_ttl ?? 0),
    jwt_svid_ttl: String(entry?.jwt_svid_ttl ?? 0),
    dns_names: (entry?.dns_names ?? []).join('\n'),
    jwt_audiences: (entry?.jwt_audiences ?? []).join('\n'),
    federates_with: (entry?.federates_with ?? []).join('\n'),
    hint: entry?.hint ?? '',
  });
  const [errors, setErrors] = useState<Partial<Record<Field, string>>>({});
  const [busy, setBusy] = useState(false);
  const set = (k: keyof typeof v) => (e: Event) => setV({ ...v, [k]: (e.target as HTMLInputElement).value });

  const localCheck = (k: Field) => {
    let msg: string | undefined;
    try {
      if (k === 'spiffe_id' || k === 'parent_id') parseSpiffeId(v[k]);
      if (k === 'selectors') for (const s of lines(v.selectors)) parseSelector(s);
    } catch (e) {
      msg = (e as Error).message;
    }
    setErrors((x) => ({ ...x, [k]: msg }));
  };

  const body = () => {
    const b: Record<string, unknown> = {
      spiffe_id: v.spiffe_id.trim(),
      parent_id: v.parent_id.trim(),
      selectors: lines(v.selectors),
      x509_svid_ttl: Number(v.x509_svid_ttl || 0),
      jwt_svid_ttl: Number(v.jwt_svid_ttl || 0),
      dns_names: lines(v.dns_names),
      federates_with: lines(v.federates_with),
      hint: v.hint,
    };
    const aud = lines(v.jwt_audiences);
    if (aud.length || entry?.jwt_audiences) b.jwt_audiences = aud;
    return b;
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setErrors({});
    try {
      const out = entry
        ? await api<{ entries: EntryJSON[] }>('PATCH', v1('/entries'), { entries: [{ id: entry.id, ...body() }] })
        : await api<{ entries: EntryJSON[] }>('POST', v1('/entries'), { entries: [body()] });
      onSaved(out.entries[0]!);
    } catch (err) {
      const msg = (err as Error).message;
      setErrors({ [err instanceof ApiError && err.status === 400 ? fieldOf(msg) : 'form']: msg });
    } finally {
      setBusy(false);
    }
  };

  const field = (k: Exclude<Field, 'form'>, label: string, opts: { multiline?: boolean; help?: string; type?: string; list?: string } = {}) => {
    const id = `f-${k}`;
    const err = errors[k];
    const props = {
      id,
      name: k,
      value: v[k],
      onInput: set(k),
      onBlur: () => localCheck(k),
      'aria-invalid': err ? 'true' : undefined,
      'aria-describedby': `${id}-help ${id}-error`,
    } as const;
    return (
      <div class={`field ${err ? 'invalid' : ''}`}>
        <label for={id}>{label}</label>
        {opts.multiline ? <textarea rows={3} {...props} /> : <input type={opts.type ?? 'text'} list={opts.list} {...props} />}
        {opts.help && (
          <div class="help" id={`${id}-help`}>
            {opts.help}
          </div>
        )}
        <div class="field-error" id={`${id}-error`} role={err ? 'alert' : undefined} data-field-error={k}>
          {err ?? ''}
        </div>
      </div>
    );
  };

  return (
    <form class="entry-form" onSubmit={submit} noValidate aria-labelledby="entry-form-title">
      <h2 id="entry-form-title">{entry ? `Edit entry ${entry.id}` : 'Create an entry'}</h2>
      {field('spiffe_id', 'SPIFFE ID', { help: `the workload's identity, spiffe://${trustDomain}/...` })}
      {field('parent_id', 'Parent ID', { help: 'the agent (spiffe://…/tessera/agent/…) or an entry whose SPIFFE ID is a node alias', list: 'parent-suggestions' })}
      {field('selectors', 'Selectors', { multiline: true, help: 'one per line, type:value — e.g. unix:uid:1000 (all must match)' })}
      <div class="help suggestions">
        Selector types:{' '}
        {SELECTOR_SUGGESTIONS.slice(0, 8).map((s) => (
          <button type="button" class="chip" key={s} onClick={() => setV({ ...v, selectors: (v.selectors ? `${v.selectors.replace(/\n$/, '')}\n` : '') + s })}>
            {s}
          </button>
        ))}
      </div>
      <div class="row">
        {field('x509_svid_ttl', 'X.509-SVID TTL (s)', { type: 'number', help: '0 = server default' })}
        {field('jwt_svid_ttl', 'JWT-SVID TTL (s)', { type: 'number', help: '0 = server default' })}
      </div>
      {field('jwt_audiences', 'JWT audiences allowed', { multiline: true, help: 'one per line; exact, or a prefix ending in *; empty = any (unless the server requires a list)' })}
      {field('dns_names', 'DNS names', { multiline: true, help: 'one per line, put in the X.509-SVID' })}
      {field('federates_with', 'Federates with', { multiline: true, help: 'trust domains whose bundles these workloads get' })}
      {field('hint', 'Hint', { help: 'tells several identities of one workload apart' })}
      <div class="field-error" role={errors.form ? 'alert' : undefined}>
        <ErrorBox error={errors.form ? new Error(errors.form) : null} />
      </div>
      <div class="actions">
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Saving…' : entry ? 'Save changes' : 'Create entry'}
        </button>
      </div>
    </form>
  );
}
