/** The console's calls to its own origin: `/api/v1/...` is the server's admin API, forwarded. */

/** An error as the server (or the console) answered it: its code and its own message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

let csrf = '';

/** Reads this session's CSRF token; every state-changing call sends it. */
export async function loadSession(): Promise<void> {
  const s = await api<{ csrf: string }>('GET', '/api/session');
  csrf = s.csrf;
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET') headers['x-csrf-token'] = csrf;
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  } catch (e) {
    throw new ApiError(0, 'UNAVAILABLE', `the console does not answer (${(e as Error).message}); is tessera console still running?`);
  }
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (!res.ok) {
    const err = (parsed as { error?: { code?: string; message?: string } } | undefined)?.error;
    throw new ApiError(res.status, err?.code ?? 'INTERNAL', err?.message ?? `HTTP ${res.status}`);
  }
  return parsed as T;
}

/** `/api/v1/...` with a query string built from the defined values (arrays repeat the key). */
export function v1(path: string, query: Record<string, string | string[] | number | undefined> = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === '') continue;
    for (const x of Array.isArray(v) ? v : [v]) q.append(k, String(x));
  }
  const s = q.toString();
  return `/api/v1${path}${s ? `?${s}` : ''}`;
}
