import http from 'node:http';
import type { Request, Response } from 'express';
import type { Logger } from '../common/log';

/**
 * The admin API routes the console may call, as `METHOD path` patterns (the
 * console's `/api` prefix removed). Anything else answers 404 without reaching the
 * server: the console is a view of the admin API, not a tunnel to all of it
 * (no join tokens, no SVID minting, no bundle writes from a browser).
 */
const ALLOWED: Array<[string, RegExp]> = [
  ['GET', /^\/v1\/(health|overview|bundle)$/],
  ['GET', /^\/v1\/entries(\/count|\/[^/]+)?$/],
  ['POST', /^\/v1\/entries(\/delete)?$/],
  ['PATCH', /^\/v1\/entries$/],
  ['GET', /^\/v1\/agents(\/[^/]+)?$/],
  ['POST', /^\/v1\/agents\/[^/]+\/(evict|ban)$/],
  ['GET', /^\/v1\/authorities\/(x509|jwt)(\/[^/]+)?$/],
  ['POST', /^\/v1\/authorities\/(x509|jwt)\/(prepare|activate|taint|revoke)$/],
  ['GET', /^\/v1\/federation(\/[^/]+)?$/],
  ['POST', /^\/v1\/federation\/[^/]+\/refresh$/],
  ['GET', /^\/v1\/audit\/(events|summary|stream)$/],
];

export function allowedAdminRoute(method: string, path: string): boolean {
  return ALLOWED.some(([m, re]) => m === method && re.test(path));
}

/**
 * Forwards one request to the admin API on its Unix socket and streams the answer
 * back (the audit stream included: nothing is buffered). Status, body and the
 * server's own error messages pass through unchanged; a socket that does not
 * answer becomes 502 with an UNAVAILABLE error naming it.
 */
export function forwardToAdmin(socketPath: string, log: Logger, req: Request, res: Response, path: string): void {
  const headers: Record<string, string> = {};
  for (const h of ['content-type', 'content-length', 'accept', 'last-event-id']) {
    const v = req.headers[h];
    if (typeof v === 'string') headers[h] = v;
  }
  const query = req.url.includes('?') ? req.url.slice(req.url.indexOf('?')) : '';
  const upstream = http.request({ socketPath, method: req.method, path: path + query, headers }, (up) => {
    const out: Record<string, string> = { 'cache-control': 'no-store' };
    const type = up.headers['content-type'];
    if (type) out['content-type'] = type;
    res.writeHead(up.statusCode ?? 502, out);
    if (String(type).startsWith('text/event-stream')) res.flushHeaders();
    up.pipe(res);
  });
  upstream.on('error', (err) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    log.warn({ err: { message: err.message }, admin_socket: socketPath }, 'admin API did not answer');
    res.status(502).json({ error: { code: 'UNAVAILABLE', message: `the server's admin socket ${socketPath} does not answer (${err.message}); is tessera server running?` } });
  });
  // The browser went away (a closed audit tail): end the upstream request too.
  res.on('close', () => upstream.destroy());
  req.pipe(upstream);
}
