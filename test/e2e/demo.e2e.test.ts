import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { ROOT, TESSERA_BIN, removeDir, run, shortTempDir } from '../helpers/processes';
import { waitFor } from '../helpers/security';

/**
 * The README's first command and its AI-endpoint walkthrough, as a user runs
 * them: `npm start` (dist/scripts/demo.js: a real server on SQLite, a real agent,
 * the demo workload's SVID shown), then `npm run example:ai-endpoint`
 * (dist/examples/ai-endpoint/run.js) against it with no other setting, then
 * Ctrl-C, and both again on the same state. Only the state directory
 * (TESSERA_DEMO_DIR) and the ports (TESSERA_DEMO_PORTS=0) differ from a user's
 * run, so a demo the developer has running is not disturbed.
 */
jest.setTimeout(180_000);

const td = 'demo.tessera.local';
let dir: string;
beforeAll(() => {
  dir = shortTempDir('demo-');
});
afterAll(() => removeDir(dir));

/** The environment of a user's shell, plus the state directory and port 0. */
function env(): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, TESSERA_DEMO_DIR: dir, TESSERA_DEMO_PORTS: '0' };
  for (const k of ['TESSERA_TRUST_DOMAIN', 'SPIFFE_ENDPOINT_SOCKET', 'TESSERA_ADMIN_SOCKET', 'TESSERA_PARENT_ID']) delete e[k];
  return e;
}

function startDemo(): { proc: ChildProcess; out: () => string } {
  const proc = spawn(process.execPath, [path.join(ROOT, 'dist', 'scripts', 'demo.js')], { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (c) => (out += c));
  proc.stderr!.on('data', (c) => (out += c));
  return { proc, out: () => out };
}

function runExample(): Promise<{ code: number; out: string }> {
  const p = spawn(process.execPath, [path.join(ROOT, 'dist', 'examples', 'ai-endpoint', 'run.js')], { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (c) => (out += c));
  p.stderr.on('data', (c) => (out += c));
  return new Promise((r) => p.once('close', (code) => r({ code: code ?? 1, out })));
}

const refused = (port: number) =>
  new Promise<boolean>((r) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), r(false)));
    s.once('error', () => r(true));
  });

async function stop(demo: ReturnType<typeof startDemo>): Promise<number | null> {
  const exited = new Promise<number | null>((r) => demo.proc.once('exit', (code) => r(code)));
  demo.proc.kill('SIGINT');
  return exited;
}

it('npm start shows the demo workload SVID; the AI-endpoint example runs against it, every call as policy.cedar says; Ctrl-C stops everything; both run again on the same state', async () => {
  for (const round of [1, 2]) {
    const demo = startDemo();
    try {
      await waitFor(`the demo to be up (round ${round})`, () => demo.out().includes('Ctrl-C stops both') || demo.proc.exitCode !== null, 90_000);
      const out = demo.out();
      expect(out).toContain(`SPIFFE ID   spiffe://${td}/demo/workload`);
      expect(out).toContain(`URI SAN     URI:spiffe://${td}/demo/workload`);
      const socket = /npx tessera agent api fetch x509 --socket (\S+)/.exec(out)![1]!;
      const agentApiPort = Number(/agent API https:\/\/127\.0\.0\.1:(\d+)/.exec(out)![1]);

      // the command the demo prints works
      const fetched = await run(process.execPath, [TESSERA_BIN, '--output', 'json', 'agent', 'api', 'fetch', 'x509', '--socket', socket]);
      expect(fetched.code).toBe(0);
      expect(fetched.stdout).toContain(`spiffe://${td}/demo/workload`);

      const ex = await runExample();
      expect(ex.out).toContain('every outcome is what policy.cedar says (11 calls)');
      expect(ex.code).toBe(0);
      expect(ex.out).toContain(round === 1 ? `registered spiffe://${td}/ai/caller` : `spiffe://${td}/ai/caller is already registered`);
      expect(ex.out).toMatch(/jwt\s+tools\/call summarize\s+denied\s+-32003 MCP error -32003: tool summarize is not available to spiffe:\/\/demo/);
      expect(ex.out).toMatch(/mtls\s+tools\/list\s+allowed\s+\[search, summarize\]/);
      const audit = ex.out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
      const deletes = audit.filter((l) => l.resource === 'Tool::delete_everything');
      expect(deletes.map((l) => l.authn).sort()).toEqual(['jwt', 'mtls']);
      for (const l of deletes) {
        expect(l).toMatchObject({ audit: true, event: 'authz_decision', spiffe_id: `spiffe://${td}/ai/caller`, action: 'call_tool', decision: 'deny', policies: ['nobody-deletes-everything'] });
        expect(typeof l.correlation_id).toBe('string');
      }
      expect(ex.out).not.toMatch(/eyJ[\w-]+\.eyJ/); // no token in anything printed
      // /v1/chat went to the model-provider stand-in with an access token from tessera helper, no API key
      expect(ex.out).toMatch(new RegExp(`tessera helper exchanged spiffe://${td}/ai/endpoint's JWT-SVID for a model-provider access token`));
      const answered = new RegExp(`the model provider answered (\\d+) calls from spiffe://${td}/ai/endpoint, each with an access token`).exec(ex.out);
      expect(Number(answered?.[1])).toBeGreaterThanOrEqual(2); // both chats, over mTLS and with a JWT-SVID
      expect(ex.out).not.toMatch(/at-[0-9a-f]{32}/);

      expect(await stop(demo)).toBe(0);
      expect(await refused(agentApiPort)).toBe(true); // the server is gone too
    } finally {
      if (demo.proc.exitCode === null) demo.proc.kill('SIGKILL');
    }
  }
});
