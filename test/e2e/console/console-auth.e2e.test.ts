import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { startServerProcess, removeDir, type ServerProcess } from '../../helpers/processes';

/**
 * `tessera console` as a real process against a real server: the one-time login
 * URL, the session cookie, the CSRF check and the admin-route allowlist. (The
 * browser tests of the pages are not written yet.)
 */
jest.setTimeout(60_000);

const BIN = path.join(__dirname, '..', '..', '..', 'bin', 'tessera.js');
let server: ServerProcess;
let proc: ChildProcess;
let loginUrl = '';
let base = '';
const urls: string[] = [];

beforeAll(async () => {
  server = await startServerProcess({ trustDomain: 'console.example.org' });
  proc = spawn(process.execPath, [BIN, '--admin-socket', server.adminSocket, 'console', '--bind', '127.0.0.1:0', '--health-bind', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  proc.stdout!.on('data', (c) => (stdout += c));
  await new Promise<void>((resolve, reject) => {
    let err = '';
    proc.stderr!.on('data', (c) => {
      err += c;
      for (const m of err.matchAll(/open (http:\/\/\S+)/g)) if (!urls.includes(m[1]!)) urls.push(m[1]!);
      if (urls.length) resolve();
    });
    proc.once('exit', (code) => reject(new Error(`console exited ${code}: ${err}`)));
  });
  loginUrl = urls[0]!;
  base = loginUrl.slice(0, loginUrl.indexOf('/login'));
  // the JSON log never holds the token
  expect(stdout).not.toContain(new URL(loginUrl).searchParams.get('token')!);
});

afterAll(async () => {
  proc?.kill('SIGTERM');
  await server?.stop();
  removeDir(server?.dir);
});

const ENTRY = { spiffe_id: 'spiffe://console.example.org/web', parent_id: 'spiffe://console.example.org/tessera/server', selectors: ['unix:uid:1000'] };

it('refuses everything without a session, logs in once per URL, and needs the CSRF token to change anything', async () => {
  for (const p of ['/', '/api/v1/overview', '/assets/app.js', '/api/session']) expect((await fetch(base + p)).status).toBe(401);
  const res = await fetch(loginUrl, { redirect: 'manual' });
  expect(res.status).toBe(303);
  const cookie = res.headers.get('set-cookie')!;
  expect(cookie).toMatch(/HttpOnly/i);
  expect(cookie).toMatch(/SameSite=Strict/i);
  const jar = cookie.split(';')[0]!;
  expect((await fetch(loginUrl, { redirect: 'manual' })).status).toBe(401); // used once
  const page = await fetch(`${base}/`, { headers: { cookie: jar } });
  expect(page.status).toBe(200);
  expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
  expect(await page.text()).not.toMatch(/<script>(?!<\/script>)/);

  const overview = (await (await fetch(`${base}/api/v1/overview`, { headers: { cookie: jar } })).json()) as { trust_domain: string };
  expect(overview.trust_domain).toBe('console.example.org');
  const post = (headers: Record<string, string>) => fetch(`${base}/api/v1/entries`, { method: 'POST', headers: { cookie: jar, 'content-type': 'application/json', ...headers }, body: JSON.stringify({ entries: [ENTRY] }) });
  expect((await post({})).status).toBe(403);
  const { csrf } = (await (await fetch(`${base}/api/session`, { headers: { cookie: jar } })).json()) as { csrf: string };
  expect((await post({ 'x-csrf-token': csrf, origin: 'http://evil.example' })).status).toBe(403);
  const bad = await fetch(`${base}/api/v1/entries`, { method: 'POST', headers: { cookie: jar, 'content-type': 'application/json', 'x-csrf-token': csrf }, body: JSON.stringify({ entries: [{ ...ENTRY, spiffe_id: 'spiffe://Console.example.org/x' }] }) });
  expect(bad.status).toBe(400);
  expect(((await bad.json()) as { error: { message: string } }).error.message).toMatch(/^entries\.0\.spiffe_id/);
  expect((await post({ 'x-csrf-token': csrf })).status).toBe(201);
  expect(JSON.parse(await server.cli(['--output', 'json', 'entry', 'show', '--spiffe-id', ENTRY.spiffe_id]))).toBeTruthy();
  // routes outside the allowlist never reach the server
  expect((await fetch(`${base}/api/v1/join-tokens`, { method: 'POST', headers: { cookie: jar, 'x-csrf-token': csrf } })).status).toBe(404);
  // the audit tail saw the entry
  const ev = (await (await fetch(`${base}/api/v1/audit/events?kind=entry_created`, { headers: { cookie: jar } })).json()) as { events: Array<{ fields: { spiffe_id: string } }> };
  expect(ev.events.map((e) => e.fields.spiffe_id)).toContain(ENTRY.spiffe_id);
  // a new login URL was printed after the first was used, and it works
  expect(urls.length).toBeGreaterThanOrEqual(2);
  expect((await fetch(urls[1]!, { redirect: 'manual' })).status).toBe(303);
});
