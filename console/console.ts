import http from 'node:http';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import express, { type Request, type Response } from 'express';
import { Counter, Registry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from '../common/log';
import { systemClock, type Clock } from '../common/clock';
import { startHealthServer } from '../common/health/health-server';
import { Closers } from '../common/closers';
import { ConsoleSessions, sameSecret, type Session } from './session';
import { allowedAdminRoute, forwardToAdmin } from './admin-proxy';
import { securityHeaders } from './headers';
import { checkBind } from './bind';

export interface ConsoleOptions {
  adminSocket: string;
  bind: { host: string; port: number };
  allowRemote?: boolean;
  health?: { host: string; port: number };
  /** where the built UI is (dist/console/ui) */
  assetsDir?: string;
  log: Logger;
  clock?: Clock;
  /** told each login URL: the first at start, the next whenever one was used */
  onLoginUrl?: (url: string) => void;
}

export interface RunningConsole {
  address: AddressInfo;
  health?: AddressInfo;
  /** the login URL that works now (each works once) */
  loginUrl(): string;
  close(): Promise<void>;
}

const COOKIE = 'tessera_console';

/**
 * Wires `tessera console`: a loopback web server that serves the built UI and
 * forwards the UI's `/api/v1/...` calls to the server's admin socket. Whoever may
 * connect to the admin socket may run it; the browser proves it is that operator
 * with the printed one-time login URL, then a session cookie (HttpOnly,
 * SameSite=Strict) and, on every state-changing call, the session's CSRF token.
 */
export async function startConsole(o: ConsoleOptions): Promise<RunningConsole> {
  const clock = o.clock ?? systemClock;
  const { warning } = checkBind(o.bind.host, o.allowRemote ?? false);
  if (warning) o.log.warn(warning);
  const assets = o.assetsDir ?? path.join(__dirname, 'ui');
  const indexHtml = readFileSync(path.join(assets, 'index.html'), 'utf8');
  const opened = new Closers();

  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const requests = new Counter({ name: 'tessera_console_requests_total', help: 'console requests by kind and status', labelNames: ['kind', 'status'], registers: [registry] });
  const logins = new Counter({ name: 'tessera_console_logins_total', help: 'login attempts by result', labelNames: ['result'], registers: [registry] });

  let origin = '';
  const urlOf = (token: string) => `${origin}/login?token=${token}`;
  const sessions = new ConsoleSessions({ nowMs: () => clock.now().getTime(), onNewLoginToken: (t) => o.onLoginUrl?.(urlOf(t)) });

  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.set('query parser', 'extended');
  app.use(securityHeaders);
  app.use((req, res, next) => {
    res.on('finish', () => requests.inc({ kind: req.path.startsWith('/api/') ? 'api' : req.path.startsWith('/assets/') ? 'asset' : 'page', status: String(res.statusCode) }));
    next();
  });
  // A page reached under another host name (DNS rebinding) is refused before anything else.
  app.use((req, res, next) => {
    const host = req.headers.host ?? '';
    const port = (server.address() as AddressInfo).port;
    const ok = [`${o.bind.host}:${port}`, `localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`].includes(host);
    if (!ok && !o.allowRemote) return void res.status(421).type('text/plain').send(`this console answers only as ${o.bind.host}:${port}`);
    next();
  });

  app.get('/login', (req, res) => {
    const s = typeof req.query.token === 'string' ? sessions.login(req.query.token) : undefined;
    logins.inc({ result: s ? 'ok' : 'refused' });
    if (!s) return void refusePage(res, 'This login link is not valid, or it was used already. Each link printed by `tessera console` works once; use the newest one it printed.');
    o.log.info({ event: 'console_login' }, 'console login');
    res.cookie(COOKIE, s.id, { httpOnly: true, sameSite: 'strict', path: '/', maxAge: s.expiresAtMs - clock.now().getTime(), secure: false });
    res.redirect(303, '/');
  });

  const sessionOf = (req: Request): Session | undefined => sessions.get(cookieValue(req.headers.cookie, COOKIE));

  // Everything below needs a session.
  app.use((req, res, next) => {
    const s = sessionOf(req);
    if (!s) {
      if (req.path.startsWith('/api/')) return void res.status(401).json({ error: { code: 'UNAUTHENTICATED', message: 'not logged in: open the login URL that `tessera console` printed' } });
      return void refusePage(res, 'Not logged in. Open the login URL that `tessera console` printed in its terminal.');
    }
    res.locals.session = s;
    next();
  });

  // State-changing calls carry the session's CSRF token and, when the browser sends one, our own Origin.
  app.use('/api', (req, res, next) => {
    if (req.method === 'GET' || req.method === 'HEAD') return next();
    const s = res.locals.session as Session;
    const token = req.get('x-csrf-token') ?? '';
    const originHeader = req.get('origin');
    if (!sameSecret(token, s.csrf) || (originHeader !== undefined && originHeader !== `http://${req.headers.host}`)) {
      return void res.status(403).json({ error: { code: 'PERMISSION_DENIED', message: 'missing or wrong CSRF token: reload the console page and try again' } });
    }
    next();
  });

  app.get('/api/session', (_req, res) => {
    res.set('cache-control', 'no-store').json({ csrf: (res.locals.session as Session).csrf, admin_socket: o.adminSocket });
  });
  app.post('/api/logout', (_req, res) => {
    sessions.logout((res.locals.session as Session).id);
    res.clearCookie(COOKIE, { path: '/' }).json({ logged_out: true });
  });
  app.all(/^\/api(\/v1\/.*)$/, (req, res) => {
    const p = req.path.slice('/api'.length);
    if (!allowedAdminRoute(req.method, p)) return void res.status(404).json({ error: { code: 'NOT_FOUND', message: `the console does not offer ${req.method} ${p}` } });
    forwardToAdmin(o.adminSocket, o.log, req, res, p);
  });
  app.use('/api', (_req, res) => void res.status(404).json({ error: { code: 'NOT_FOUND', message: 'no such console API route' } }));

  app.use('/assets', express.static(path.join(assets, 'assets'), { index: false, fallthrough: false, maxAge: 0 }));
  // One page application: every other GET is the same page, the route is in the URL's hash.
  app.get('/', (_req, res) => void res.type('html').set('cache-control', 'no-store').send(indexHtml));
  app.use((_req, res) => void res.status(404).type('text/plain').send('not found'));

  const server = http.createServer(app);
  await new Promise<void>((res, rej) => server.once('error', rej).listen(o.bind.port, o.bind.host, () => res()));
  opened.add(server, (s) => new Promise<void>((r) => { s.closeAllConnections(); s.close(() => r()); }));
  const address = server.address() as AddressInfo;
  origin = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  const health = o.health
    ? opened.add(await startHealthServer({ host: o.health.host, port: o.health.port, registry, log: o.log, ready: () => ({ ready: true }) }), (h) => h.close())
    : undefined;
  o.onLoginUrl?.(urlOf(sessions.currentLoginToken));
  // Always logged; the login URL itself is not (it is a credential), it goes to stderr only.
  o.log.child({}, { level: 'info' }).info({ event: 'console_ready', url: origin, admin_socket: o.adminSocket, health: health && `${health.address.address}:${health.address.port}` }, 'console ready');
  return {
    address,
    health: health?.address,
    loginUrl: () => urlOf(sessions.currentLoginToken),
    close: () => opened.closeAll(),
  };
}

function refusePage(res: Response, message: string): void {
  // No script, no style: readable as it is.
  res.status(401).type('html').set('cache-control', 'no-store').send(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Tessera console: log in</title></head><body><h1>Tessera console</h1><p>${message.replace(/[<>&]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;' })[c]!)}</p></body></html>`);
}

/** The value of one cookie in a Cookie header. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}
