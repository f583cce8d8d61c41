import type { AuthorityJSON } from './types';
import { relative, when } from './format';

const ROW = 26;
const LABEL = 150;
const WIDTH = 900;

/**
 * The key slots of both authorities on one time axis (SVG drawn here: a chart
 * library adds nothing to a handful of bars). Each bar runs from not-before to
 * not-after, coloured by state; dashed lines mark now and the next prepare and
 * activate of each kind. A table below says the same in words.
 */
export function Timeline({ x509, jwt, now }: { x509: AuthorityJSON[]; jwt: AuthorityJSON[]; now: number }) {
  const slots = [...x509, ...jwt];
  if (slots.length === 0) return <p class="empty">No authority slots yet: the server makes its first keys at start.</p>;
  const marks: Array<{ at: number; label: string }> = [{ at: now, label: 'now' }];
  for (const a of slots) {
    if (a.state !== 'active') continue;
    const k = a.kind === 'x509' ? 'X.509' : 'JWT';
    if (a.prepare_at) marks.push({ at: a.prepare_at, label: `${k} prepare` });
    if (a.activate_at) marks.push({ at: a.activate_at, label: `${k} activate` });
  }
  const lo = Math.min(now, ...slots.map((s) => s.not_before));
  const hi = Math.max(now, ...slots.map((s) => s.not_after), ...marks.map((m) => m.at));
  const span = Math.max(1, hi - lo);
  // Marks within 2% of the axis of each other share one line and one label
  // ("X.509 + JWT prepare"): both kinds often rotate on the same schedule.
  const merged: typeof marks = [];
  for (const m of [...marks].sort((a, b) => a.at - b.at)) {
    const near = merged.find((n) => n.label !== 'now' && m.label !== 'now' && Math.abs(n.at - m.at) < span * 0.02 && n.label.split(' ').pop() === m.label.split(' ').pop());
    if (near) near.label = `${near.label.split(' ').slice(0, -1).join(' ')} + ${m.label}`;
    else merged.push({ ...m });
  }
  const x = (t: number) => LABEL + ((t - lo) / span) * (WIDTH - LABEL - 10);
  const height = slots.length * ROW + 46;
  return (
    <figure class="timeline">
      <svg viewBox={`0 0 ${WIDTH} ${height}`} role="img" aria-label="authority key slots over time" preserveAspectRatio="xMinYMin meet">
        {slots.map((s, i) => (
          <g key={s.id} data-slot-id={s.id} data-state={s.state} class={`slot slot-${s.state}`}>
            <text x={4} y={i * ROW + 18} class="slot-label">
              {s.kind === 'x509' ? 'X.509' : 'JWT'} {s.state}
            </text>
            <rect x={x(s.not_before)} y={i * ROW + 5} width={Math.max(2, x(s.not_after) - x(s.not_before))} height={ROW - 10} rx={3}>
              <title>{`${s.id}: ${s.state}, ${when(s.not_before)} → ${when(s.not_after)}`}</title>
            </rect>
          </g>
        ))}
        {merged.map((m, i) => (
          <g key={`${m.label}-${i}`} class={m.label === 'now' ? 'mark mark-now' : 'mark'}>
            <line x1={x(m.at)} x2={x(m.at)} y1={0} y2={slots.length * ROW} />
            <text x={x(m.at)} y={slots.length * ROW + 14 + (i % 2) * 14} text-anchor="middle">
              {m.label}
            </text>
          </g>
        ))}
        <text x={LABEL} y={height - 2} class="axis">{when(lo)}</text>
        <text x={WIDTH - 10} y={height - 2} class="axis" text-anchor="end">{when(hi)}</text>
      </svg>
      <figcaption class="sr-only">Authority slots: the table below lists each with its state and times.</figcaption>
    </figure>
  );
}

/** The same slots in a table, with the schedule of the active one. */
export function SlotTable({ slots, now, actions }: { slots: AuthorityJSON[]; now: number; actions?: (a: AuthorityJSON) => preact.ComponentChildren }) {
  return (
    <div class="table-wrap">
      <table>
        <thead>
          <tr>
            <th>State</th>
            <th>Authority</th>
            <th>Not after</th>
            <th>Next prepare / activate</th>
            <th>SVIDs depending</th>
            {actions && <th>Actions</th>}
          </tr>
        </thead>
        <tbody>
          {slots.map((a) => (
            <tr key={a.id} data-authority-id={a.id} data-state={a.state}>
              <td>
                <span class={`badge badge-${a.state}`}>{a.state}</span>
                {a.upstream && <span class="badge">upstream</span>}
              </td>
              <td>
                <code>{a.id}</code>
                <div class="muted">key {a.key_id.slice(0, 16)}…</div>
              </td>
              <td>
                {when(a.not_after)} <span class="muted">{relative(a.not_after, now)}</span>
              </td>
              <td>{a.state === 'active' ? `${when(a.prepare_at)} / ${when(a.activate_at)}` : '—'}</td>
              <td>{a.svids}</td>
              {actions && <td class="row-actions">{actions(a)}</td>}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
