/**
 * A PostgreSQL connection URL with its password replaced, for logs and error
 * messages: `postgresql://tessera:***@db:5432/tessera`. Anything unparsable is
 * shown as `(unparsable url)` rather than echoed, since it may hold a password.
 */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    for (const k of [...u.searchParams.keys()]) if (/pass|secret|key/i.test(k)) u.searchParams.set(k, '***');
    return u.toString();
  } catch {
    return '(unparsable url)';
  }
}
