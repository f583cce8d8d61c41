import http from 'node:http';
import { startServerProcess, removeDir, run, TESSERA_BIN, type ServerProcess } from '../../helpers/processes';
import { waitFor } from '../../helpers/security';
import { startConsoleProcess, type ConsoleProcess } from '../../helpers/console-process';

/**
 * `tessera console` as a real process against a real server: the one-time login
 * URL, the session cookie, the CSRF check, the Host check and the admin-route
 * allowlist, over plain HTTP (console-browser.e2e.test.ts drives the pages).
 */
jest.setTimeout(60_000);

let server: ServerProcess;
let con: ConsoleProcess;
let loginUrl = '';
let base = '';
let urls: string[] = [];

beforeAll(async () => {
  server = await startServerProcess({ trustDomain: 'console.example.org' });
  con = await startConsoleProcess(server.adminSocket);
  urls = con.urls;
  loginUrl = urls[0]!;
  base = con.base;
  // the JSON log never holds the token
  expect(con.stdout()).not.toContain(new URL(loginUrl).searchParams.get('token')!);
});

afterAll(async () => {
  await con?.stop();
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

/** A request with a Host header of our choosing (fetch does not let one set Host). */
function getWithHost(url: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http.get(url, { headers: { host } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject);
  });
}

it('answers a foreign Host (DNS rebinding) with 421 before anything else', async () => {
  const port = new URL(base).port;
  expect(await getWithHost(`${base}/`, `evil.example:${port}`)).toBe(421);
  expect(await getWithHost(`${base}/login?token=x`, `rebind.example.com:${port}`)).toBe(421);
  expect(await getWithHost(`${base}/`, `localhost:${port}`)).toBe(401); // our own name: on to the login check
});

it('refuses a non-loopback --bind unless --allow-remote, and then warns', async () => {
  const refused = await run(process.execPath, [TESSERA_BIN, '--admin-socket', server.adminSocket, 'console', '--bind', '0.0.0.0:0', '--health-bind', '127.0.0.1:0']);
  expect(refused.code).not.toBe(0);
  expect(refused.stderr).toMatch(/--bind 0\.0\.0\.0 is not a loopback address.*--allow-remote/);
  const remote = await startConsoleProcess(server.adminSocket, ['--bind', '0.0.0.0:0', '--allow-remote']);
  try {
    await waitFor('the warning', () => /reachable from other machines over plain HTTP/.test(remote.stdout()), 10_000);
    // bound to every address, it answers whatever name it is reached by
    expect(await getWithHost(`${remote.base.replace('0.0.0.0', '127.0.0.1')}/`, 'console.internal.example:80')).toBe(401);
  } finally {
    await remote.stop();
  }
});
