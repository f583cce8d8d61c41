import { existsSync, mkdirSync, copyFileSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ROOT, startAgentProcess, startServerProcess, stopAndRemove, type AgentProcess, type ServerProcess } from '../../helpers/processes';
import { startConsoleProcess, type ConsoleProcess } from '../../helpers/console-process';
import { agentApiRequest, agentIdentityPem, waitFor } from '../../helpers/security';

/**
 * The console's pages in a real browser: Debian's chromium, headless, driven by
 * playwright-core (Playwright's own browser download cannot work offline), against
 * a real server, agent and `tessera console` process. Each page's screenshot goes
 * to test-output/console/ (1280×800 and a 390-px-wide window); with
 * TESSERA_UPDATE_DOCS_IMAGES=1 the Overview and Authorities shots are copied into
 * docs/images/ for the README.
 *
 * Without chromium the suite is skipped loudly outside CI; in CI it must run.
 */
jest.setTimeout(180_000);

const CHROMIUM = process.env.TESSERA_CHROMIUM ?? '/usr/bin/chromium';
const haveBrowser = existsSync(CHROMIUM);
if (!haveBrowser && process.env.CI) throw new Error(`CI needs a browser for the console tests: ${CHROMIUM} is missing (.ci/run installs Debian's chromium)`);
if (!haveBrowser) console.warn(`\n*** SKIPPING the console browser tests: no ${CHROMIUM} (apt-get install chromium) ***\n`);
const describeBrowser = haveBrowser ? describe : describe.skip;

const OUT = path.join(ROOT, 'test-output', 'console');
const td = 'console.example.org';
const alias = `spiffe://${td}/node/web-1`;
const WORKLOAD = `spiffe://${td}/inference`;

let server: ServerProcess;
let agent: AgentProcess;
let con: ConsoleProcess;
let browser: Browser;
let page: Page;

async function shoot(name: string): Promise<void> {
  await page.screenshot({ path: path.join(OUT, `${name}.png`), fullPage: true });
}

/** Asks the server, as the agent (its current SVID, read from its data directory), for the workload's JWT-SVID. */
async function askServerForJwt(audience: string): Promise<{ status: number; json: any }> {
  const ca = await server.cli(['bundle', 'show', '--format', 'pem']);
  const [e] = (JSON.parse(await server.cli(['--output', 'json', 'entry', 'show', '--spiffe-id', WORKLOAD])) as { entries: Array<{ id: string }> }).entries;
  return agentApiRequest(server.agentApi, { method: 'POST', path: '/agent/v1/jwt-svids', body: { entry_id: e!.id, audience: [audience] }, ...agentIdentityPem(path.join(agent.dir, 'data')), ca });
}

async function go(hash: string, heading: string): Promise<void> {
  await page.getByRole('navigation', { name: 'pages' }).first().getByRole('link', { name: heading, exact: true }).click();
  await page.waitForURL(`**/#/${hash}`);
  await page.getByRole('heading', { level: 1, name: heading }).waitFor();
}

describeBrowser('the console in a browser', () => {
  beforeAll(async () => {
    mkdirSync(OUT, { recursive: true });
    server = await startServerProcess({ trustDomain: td });
    await server.cli(['entry', 'create', '--spiffe-id', WORKLOAD, '--parent-id', alias, '--selector', 'unix:uid:0', '--jwt-audience', 'https://api.openai.com/v1']);
    agent = await startAgentProcess(server, { alias });
    // the agent holds the workload's X.509-SVID (a dependent of the CA below)
    await waitFor('the workload SVID', async () => (await agent.cli(['fetch', 'x509'])).code === 0, 30_000, 200);
    con = await startConsoleProcess(server.adminSocket);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
    page.setDefaultTimeout(15_000);
  });

  afterAll(async () => {
    await browser?.close();
    await con?.stop();
    if (agent?.proc.exitCode === null) agent.proc.kill('SIGCONT');
    await stopAndRemove(agent, server);
  });

  it('logs in with the printed URL; without it every page and API call is refused; a POST without the CSRF token is refused', async () => {
    const stranger = await (await browser.newContext()).newPage();
    for (const p of ['/', '/api/v1/overview', '/api/session', '/assets/app.js']) expect((await stranger.goto(con.base + p))!.status()).toBe(401);
    expect((await stranger.goto(`${con.base}/login?token=not-the-token`))!.status()).toBe(401);
    await stranger.context().close();

    await page.goto(con.urls[0]!);
    expect(page.url()).toBe(`${con.base}/`);
    await page.getByTestId('trust-domain').waitFor();
    expect(await page.getByTestId('trust-domain').textContent()).toBe(td);
    // the workload's entry and the node alias the join token made
    expect(await page.getByTestId('count-entries').textContent()).toBe('2');
    expect(await page.getByTestId('count-agents').textContent()).toBe('1');
    // the same URL does not work twice
    const again = await (await browser.newContext()).newPage();
    expect((await again.goto(con.urls[0]!))!.status()).toBe(401);
    await again.context().close();

    // a script on the page (as a cross-site form could) posting without the CSRF token is refused
    const status = await page.evaluate(async () => {
      const r = await fetch('/api/v1/entries', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ entries: [] }) });
      return r.status;
    });
    expect(status).toBe(403);
    await shoot('overview');
  });

  it('creates an entry through the form (seen in the list and by `tessera entry show`); an invalid SPIFFE ID shows the server message by the field', async () => {
    await go('entries', 'Entries');
    await page.getByRole('button', { name: 'Create entry' }).click();
    await page.getByLabel('SPIFFE ID').fill(`spiffe://${td}/Bad Path`);
    await page.getByLabel('Parent ID').fill(alias);
    await page.getByLabel('Selectors').fill('unix:uid:1000');
    const [res] = await Promise.all([page.waitForResponse((r) => r.url().endsWith('/api/v1/entries') && r.request().method() === 'POST'), page.getByRole('button', { name: 'Create entry' }).click()]);
    expect(res.status()).toBe(400);
    const message = ((await res.json()) as { error: { message: string } }).error.message;
    expect(message).toMatch(/^entries\.0\.spiffe_id/);
    const fieldError = page.locator('[data-field-error="spiffe_id"]');
    await fieldError.filter({ hasText: message }).waitFor();
    expect(await page.getByLabel('SPIFFE ID').getAttribute('aria-invalid')).toBe('true');
    await shoot('entry-form-invalid');

    const id = `spiffe://${td}/billing`;
    await page.getByLabel('SPIFFE ID').fill(id);
    await page.getByRole('button', { name: 'Create entry' }).click();
    await page.locator('[data-testid="entries-table"] tr', { hasText: id }).waitFor();
    const shown = JSON.parse(await server.cli(['--output', 'json', 'entry', 'show', '--spiffe-id', id])) as { entries: Array<{ parent_id: string; selectors: Array<{ type: string; value: string }> }> };
    expect(shown.entries[0]!.parent_id).toBe(alias);
    expect(shown.entries[0]!.selectors).toEqual([{ type: 'unix', value: 'uid:1000' }]);
    await shoot('entries');
  });

  it('prepares and activates a CA from the Authorities page and the timeline follows; a revoke that would strand SVIDs is shown refused', async () => {
    await go('authorities', 'Authorities');
    const x509 = page.locator('section[data-kind="x509"]');
    const slots = page.locator('svg g[data-slot-id]');
    await slots.first().waitFor();
    const oldId = (await x509.locator('tr[data-state="active"]').getAttribute('data-authority-id'))!;
    expect(await page.locator(`svg g[data-slot-id="${oldId}"]`).getAttribute('data-state')).toBe('active');
    const before = await slots.count();

    await x509.getByRole('button', { name: 'Prepare new X.509 CA' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByText('published in the trust bundle now').waitFor();
    await dialog.getByRole('button', { name: 'Prepare', exact: true }).click();
    const prepared = x509.locator('tr[data-state="prepared"]');
    await prepared.waitFor();
    const newId = (await prepared.getAttribute('data-authority-id'))!;
    await page.locator(`svg g[data-slot-id="${newId}"][data-state="prepared"]`).waitFor();
    expect(await slots.count()).toBe(before + 1);

    await prepared.getByRole('button', { name: 'Activate' }).click();
    await dialog.getByRole('button', { name: 'Activate', exact: true }).click();
    await page.locator(`svg g[data-slot-id="${newId}"][data-state="active"]`).waitFor();
    await page.locator(`svg g[data-slot-id="${oldId}"][data-state="retired"]`).waitFor();
    const shown = JSON.parse(await server.cli(['--output', 'json', 'authority', 'x509', 'show'])) as { authorities: Array<{ id: string; state: string }> };
    expect(shown.authorities.find((a) => a.id === newId)!.state).toBe('active');

    // The agent is paused (an offline node): the SVIDs the old key signed stay in use after the taint.
    agent.proc.kill('SIGSTOP');
    try {
      await x509.locator(`tr[data-authority-id="${oldId}"]`).getByRole('button', { name: 'Taint' }).click();
      await dialog.getByTestId('dependents').filter({ hasText: /still held/ }).waitFor();
      await dialog.getByRole('button', { name: 'Taint', exact: true }).click();
      await x509.locator(`tr[data-authority-id="${oldId}"][data-state="tainted"]`).waitFor();
      await x509.locator(`tr[data-authority-id="${oldId}"]`).getByRole('button', { name: 'Revoke' }).click();
      const refused = dialog.getByTestId('refused');
      await refused.waitFor();
      expect(await refused.textContent()).toMatch(/\d+ unexpired svids .* have not been re-issued yet/i);
      expect(await dialog.locator('tbody tr', { hasText: agent.agentId }).count()).toBeGreaterThan(0);
      // refused: the dialog offers no Revoke button, only the force checkbox that would enable it
      expect(await dialog.getByRole('button', { name: 'Revoke', exact: true }).count()).toBe(0);
      await dialog.getByRole('checkbox').waitFor();
      await shoot('authorities-revoke-refused');
      await page.keyboard.press('Escape'); // the dialog closes with the keyboard
      await dialog.waitFor({ state: 'hidden' });
    } finally {
      agent.proc.kill('SIGCONT');
    }
    const still = JSON.parse(await server.cli(['--output', 'json', 'authority', 'x509', 'show'])) as { authorities: Array<{ id: string; state: string }> };
    expect(still.authorities.find((a) => a.id === oldId)!.state).toBe('tainted');
    await shoot('authorities');
  });

  it('a workload denied by the server appears on the Audit page within a second', async () => {
    await go('audit', 'Audit');
    await page.getByTestId('stream-state').filter({ hasText: 'live' }).waitFor();
    // The workload's JWT-SVID for an audience its entry does not allow, asked of the server.
    // The agent re-issues its own SVID after the taint above; until then the server refuses the
    // old one (agent_request_denied), so ask with the agent's current SVID until the refusal is
    // the audience's.
    let denied = 0;
    await waitFor('the audience refusal', async () => {
      const r = await askServerForJwt('https://evil.example.com');
      denied = Date.now();
      return r.status === 403 && /not in its jwt_audiences/.test(String(r.json?.error?.message));
    }, 30_000, 200);
    const row = page.locator('li[data-event="svid_denied"]').first();
    await row.waitFor({ timeout: 5_000 }).catch(async (err) => {
      throw new Error(`${String(err)}; the page shows: ${await page.locator('main').textContent()}`);
    });
    const ms = Date.now() - denied;
    console.log(`audit: svid_denied on the page ${ms} ms after the server refused`);
    expect(ms).toBeLessThan(1_000);
    expect(await row.textContent()).toContain('audience not in the entry allowlist');
    // the filter by kind and SPIFFE ID
    await page.getByLabel('Kind').fill('svid_denied');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.getByTestId('stream-state').filter({ hasText: 'live' }).waitFor();
    await row.waitFor();
    expect(await page.locator('li[data-event]:not([data-event="svid_denied"])').count()).toBe(0);
    await page.getByLabel('Kind').fill('');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.locator('li[data-event="x509_authority_activated"]').first().waitFor();
    await shoot('audit');
  });

  it('bans an agent from the Agents page, and the server refuses that agent', async () => {
    await go('agents', 'Agents');
    const row = page.locator(`tr[data-agent-id="${agent.agentId}"]`);
    await row.waitFor();
    await shoot('agents');
    await row.getByRole('button', { name: `ban ${agent.agentId}` }).click();
    const dialog = page.getByRole('dialog');
    // the workload's entry names the node alias, not the agent, as parent
    await dialog.getByTestId('affected-entries').waitFor();
    await dialog.getByText('Every server refuses this agent at once').waitFor();
    await dialog.getByRole('button', { name: 'Ban agent' }).click();
    await page.locator(`tr[data-agent-id="${agent.agentId}"][data-banned="true"]`).waitFor();
    const r = await askServerForJwt('https://api.openai.com/v1');
    expect(r.status).toBe(403);
    expect(JSON.stringify(r.json)).toMatch(/banned/);
  });

  it('the Federation page has a readable empty state; every page works on a narrow window and from the keyboard', async () => {
    await go('federation', 'Federation');
    await page.locator('.empty').waitFor();
    await shoot('federation');

    await page.setViewportSize({ width: 390, height: 800 });
    for (const [hash, name] of [['overview', 'Overview'], ['entries', 'Entries'], ['agents', 'Agents'], ['authorities', 'Authorities'], ['federation', 'Federation'], ['audit', 'Audit']] as const) {
      await go(hash, name);
      // nothing wider than the window but the tables, which scroll in their own box
      const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - document.documentElement.clientWidth');
      expect({ page: name, overflow }).toEqual({ page: name, overflow: 0 });
      await shoot(`${hash}-narrow`);
    }
    await page.setViewportSize({ width: 1280, height: 800 });

    if (process.env.TESSERA_UPDATE_DOCS_IMAGES === '1') {
      mkdirSync(path.join(ROOT, 'docs', 'images'), { recursive: true });
      for (const n of ['overview', 'authorities']) copyFileSync(path.join(OUT, `${n}.png`), path.join(ROOT, 'docs', 'images', `console-${n}.png`));
    }
    // keyboard: a page change moves focus to the content; Shift+Tab walks back into
    // the page links, and Enter follows one
    await page.goto(`${con.base}/#/overview`);
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    expect(await page.evaluate<string | undefined>('document.activeElement?.id')).toBe('main');
    let reached = false;
    for (let i = 0; i < 12 && !reached; i++) {
      await page.keyboard.press('Shift+Tab');
      reached = (await page.evaluate<string | undefined>('document.activeElement?.textContent')) === 'Entries';
    }
    expect(reached).toBe(true);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Entries' }).waitFor();
  });
});
