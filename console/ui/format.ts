/** Unix seconds → local date and time, to the second. */
export function when(unix: number | null | undefined): string {
  if (!unix) return '—';
  return new Date(unix * 1000).toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

/** How far `unix` is from `now` (both Unix seconds), e.g. "in 4 min", "2 h ago". */
export function relative(unix: number | null | undefined, now: number): string {
  if (!unix) return '';
  const d = unix - now;
  const a = Math.abs(d);
  const txt = a < 60 ? `${a} s` : a < 3600 ? `${Math.round(a / 60)} min` : a < 172800 ? `${(a / 3600).toFixed(1)} h` : `${Math.round(a / 86400)} d`;
  return d >= 0 ? `in ${txt}` : `${txt} ago`;
}

export const nowUnix = () => Math.floor(Date.now() / 1000);
