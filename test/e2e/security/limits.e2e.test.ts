import { spawn, type ChildProcess } from 'node:child_process';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { ROOT, startAgentProcess, startServerProcess, removeDir, shortTempDir, type AgentProcess, type ServerProcess } from '../../helpers/processes';
import { attestedAgent } from '../../helpers/agent-identity';
import { makeTestCA, makeTestLeaf, type TestCert } from '../../helpers/test-pki';
import { ATTACKER_UID, agentApiRequest, agentIdentityPem, httpGet, logLines, metric, waitFor } from '../../helpers/security';
import { WorkloadAPIClient } from '../../../sdk/workloadapi/client';
import { probe } from '../../helpers/probe';

/**
 * Findings 5-8: connection floods on both listeners, a huge federated bundle, a
 * trickling bundle endpoint, and oversized JWT audiences, against the real processes.
 */
jest.setTimeout(120_000);

const td = 'limits.example.org';
const alias = `spiffe://${td}/node/limits`;
const FLOOD = path.join(ROOT, 'dist', 'test', 'helpers', 'flood.js');

/** A flood run by another uid (or root, from another loopback address); its JSON lines as they come. */
function flood(args: string[], uid?: number): { proc: ChildProcess; last: () => Record<string, number>; settled: Promise<Record<string, number>>; stop: () => void } {
  const pre = uid === undefined ? [] : ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups'];
  const [cmd, ...rest] = [...pre, process.execPath, FLOOD, ...args];
  const proc = spawn(cmd!, rest, { stdio: ['pipe', 'pipe', 'inherit'] });
  let last: Record<string, number> = {};
  let settle: (v: Record<string, number>) => void;
  const settled = new Promise<Record<string, number>>((r) => (settle = r));
  readline.createInterface({ input: proc.stdout! }).on('line', (l) => {
    const m = JSON.parse(l) as Record<string, number> & { type: string };
    last = { ...last, ...m };
    if (m.type === 'settled') settle(m);
  });
  return { proc, last: () => last, settled, stop: () => proc.stdin!.end() };
}

let server: ServerProcess;
beforeAll(async () => {
  // The server's open-file limit is low, so a flood could exhaust it (as the review did with ~1,000).
  server = await startServerProcess({ trustDomain: td, wrap: ['prlimit', '--nofile=512:512'] });
  await server.cli(['entry', 'create', '--spiffe-id', `spiffe://${td}/root-svc`, '--parent-id', alias, '--selector', 'unix:uid:0']);
});
afterAll(async () => {
  await server?.stop();
  removeDir(server?.dir);
});

describe('finding 5: connection floods', () => {
  it("another uid's idle flood on the Workload API is capped and timed out; root's open stream keeps working and root's new calls succeed", async () => {
    // The agent's open-file limit as in the review: a few hundred idle connections used to exhaust it.
    const agent = await startAgentProcess(server, { alias, wrap: ['prlimit', '--nofile=256:256'] });
    const client = new WorkloadAPIClient(agent.socket);
    const seen: string[][] = [];
    const stopWatch = client.watchX509SVIDs(
      (ctx) => seen.push(ctx.svids.map((s) => s.spiffeId)),
      () => undefined,
    );
    await waitFor('root stream', () => seen.length > 0);
    // Root's workload fetching through a fresh call each time, for the whole flood.
    const legit = probe('workload_api_idle_flood', async () => {
      const ctx = await client.fetchX509SVIDs();
      if (!ctx.svids.length) throw new Error('no SVID');
    });
    const f = flood(['unix', agent.socket, '300'], ATTACKER_UID);
    try {
      await f.settled;
      // Root: a new connection and call during the flood.
      const during = await agent.cli(['fetch', 'x509']);
      expect(during.stderr).toBe('');
      expect(JSON.parse(during.stdout).svids.map((s: { spiffe_id: string }) => s.spiffe_id)).toEqual([`spiffe://${td}/root-svc`]);
      // Root's open stream still gets updates.
      await server.cli(['entry', 'create', '--spiffe-id', `spiffe://${td}/during-flood`, '--parent-id', alias, '--selector', 'unix:uid:0']);
      await waitFor('the update on the open stream', () => seen.some((ids) => ids.includes(`spiffe://${td}/during-flood`)));
      // Every flood connection is closed: beyond the per-uid cap at once, the rest at the first-request deadline.
      await waitFor(`the flood to be closed (${JSON.stringify(f.last())})`, () => f.last().closed + f.last().refused === 300, 30_000);
      expect(await metric(agent.health, 'tessera_connections_refused_total', { listener: 'workload_api', reason: 'peer_cap' })).toBeGreaterThan(0);
      expect(await metric(agent.health, 'tessera_connections_refused_total', { listener: 'workload_api', reason: 'first_request_deadline' })).toBeGreaterThan(0);
      expect(logLines(agent.logs()).some((l) => l.msg === 'connection refused: this uid is at its connection cap' && l.uid === '4242')).toBe(true);
      expect(logLines(agent.logs()).some((l) => l.msg === 'connection closed: no request within the first-request deadline' && l.uid === '4242')).toBe(true);
      // The stream survived the whole flood.
      await server.cli(['entry', 'create', '--spiffe-id', `spiffe://${td}/after-flood`, '--parent-id', alias, '--selector', 'unix:uid:0']);
      await waitFor('the update after the flood', () => seen.some((ids) => ids.includes(`spiffe://${td}/after-flood`)));
      expect((await legit.stop()).failed).toEqual([]);
    } finally {
      await legit.stop();
      f.stop();
      stopWatch();
      client.close();
      await agent.stop();
      removeDir(agent.dir);
    }
  });

  it('an idle TCP flood on the agent API is capped per IP and closed at the handshake deadline; an agent from another address still attests', async () => {
    // The flood comes from 127.0.0.2; the legitimate agent from 127.0.0.1 (both loopback).
    const legitAgent = await attestedAgent(server);
    const legit = probe('agent_api_idle_flood', () => legitAgent.client.entries());
    const f = flood(['tcp', server.agentApi, '1000', '127.0.0.2']);
    try {
      await f.settled;
      const { client, svid } = await attestedAgent(server);
      expect(svid.agentId).toMatch(/join_token/);
      client.close();
      await waitFor('the flood to be closed', () => f.last().closed + f.last().refused === 1000, 30_000);
      expect((await legit.stop()).failed).toEqual([]);
      expect(await metric(server.health, 'tessera_connections_refused_total', { listener: 'agent_api', reason: 'peer_cap' })).toBeGreaterThan(0);
      expect(await metric(server.health, 'tessera_connections_refused_total', { listener: 'agent_api', reason: 'first_request_deadline' })).toBeGreaterThan(0);
      expect(logLines(server.logs()).some((l) => l.msg === 'connection refused: this ip is at its connection cap' && l.ip === '127.0.0.2')).toBe(true);
    } finally {
      await legit.stop();
      legitAgent.client.close();
      f.stop();
    }
  });
});

describe('findings 6 and 7: hostile bundle endpoints', () => {
  let pki: string;
  let ca: TestCert;
  let endpoint: https.Server;
  let url: string;
  const hits: string[] = [];
  let big: string;
  let small: string;

  beforeAll(async () => {
    pki = shortTempDir('fed-');
    ca = await makeTestCA(pki, 'web-ca');
    const leaf = await makeTestLeaf(pki, 'web', ca, { ip: ['127.0.0.1'] });
    const jwk = { kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0', use: 'jwt-svid' };
    big = JSON.stringify({ keys: Array.from({ length: 26_500 }, (_, i) => ({ ...jwk, kid: String(i) })) });
    small = JSON.stringify({ spiffe_refresh_hint: 300, keys: [{ ...jwk, kid: 'only' }] });
    endpoint = https.createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
      hits.push(req.url!);
      if (req.url === '/big') return void res.writeHead(200, { 'content-type': 'application/json' }).end(big);
      if (req.url === '/small') return void res.writeHead(200, { 'content-type': 'application/json' }).end(small);
      // /trickle: one byte every 300 ms, forever (never idle long enough for an idle timeout)
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{');
      const t = setInterval(() => res.write(' '), 300);
      res.on('close', () => clearInterval(t));
    });
    await new Promise<void>((r) => endpoint.listen(0, '127.0.0.1', r));
    url = `https://127.0.0.1:${(endpoint.address() as AddressInfo).port}`;
    expect(big.length).toBeGreaterThan(4_000_000);
    expect(big.length).toBeLessThan(4 * 1024 * 1024); // under the fetch size cap: the key count is what must stop it
  });
  afterAll(() => {
    endpoint?.close();
    removeDir(pki);
  });

  /** A server federating through `ca`; without `fetchTimeout` the default deadline (30 s) applies. */
  const fedServer = (fetchTimeout?: number) =>
    startServerProcess({ trustDomain: td, config: { federation: { web_ca_file: ca.certFile, min_refresh_hint: 30, ...(fetchTimeout ? { fetch_timeout: fetchTimeout } : {}) } } });

  it('a federated bundle of 26,500 keys is refused with a clear error, nothing is stored, and /live keeps answering', async () => {
    const s = await fedServer();
    // An agent of this server signing and syncing while the server fetches the huge bundle.
    const legitAgent = await attestedAgent(s);
    const legit = probe('huge_federated_bundle', () => legitAgent.client.entries());
    try {
      await s.cli(['federation', 'create', '--trust-domain', 'big.example', '--bundle-endpoint-url', `${url}/big`, '--profile', 'https_web']);
      const r = await s.cliResult(['federation', 'refresh', '--trust-domain', 'big.example']);
      expect((await legit.stop()).failed).toEqual([]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/has 26500 keys; a bundle may hold at most 1000/);
      expect((await httpGet(s.health, '/live')).status).toBe(200);
      const b = await s.cliResult(['bundle', 'list']);
      expect(b.stdout).not.toContain('big.example');
    } finally {
      await legit.stop();
      legitAgent.client.close();
      await s.stop();
      removeDir(s.dir);
    }
  });

  it('a trickling endpoint cannot hold a fetch past its deadline', async () => {
    const s = await fedServer(2);
    const legitAgent = await attestedAgent(s);
    const legit = probe('trickling_bundle_endpoint', () => legitAgent.client.entries());
    try {
      await s.cli(['federation', 'create', '--trust-domain', 'slow.example', '--bundle-endpoint-url', `${url}/trickle`, '--profile', 'https_web']);
      const r = await s.cliResult(['federation', 'refresh', '--trust-domain', 'slow.example']);
      expect((await legit.stop()).failed).toEqual([]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/did not complete within 2000 ms/);
    } finally {
      await legit.stop();
      legitAgent.client.close();
      await s.stop();
      removeDir(s.dir);
    }
  });

  it('changing the URL of a relationship aborts its stuck fetch, and the new URL is fetched at once (long before the 30-s deadline)', async () => {
    const s = await fedServer();
    try {
      await s.cli(['federation', 'create', '--trust-domain', 'moved.example', '--bundle-endpoint-url', `${url}/trickle`, '--profile', 'https_web']);
      const before = hits.length;
      await waitFor('the trickling fetch', () => hits.slice(before).includes('/trickle'));
      await s.cli(['federation', 'update', '--trust-domain', 'moved.example', '--bundle-endpoint-url', `${url}/small`]);
      await waitFor('the fetch of the new url', () => hits.slice(before).includes('/small'), 15_000);
      const shown = await waitFor('the stored bundle', async () => {
        const j = JSON.parse(await s.cli(['--output', 'json', 'federation', 'show', '--trust-domain', 'moved.example'])) as { last_error: string | null; bundle_sequence?: number | null };
        return j.last_error === null && j;
      });
      expect(shown.last_error).toBeNull();
    } finally {
      await s.stop();
      removeDir(s.dir);
    }
  });
});

describe('finding 8: JWT audiences', () => {
  let agent: AgentProcess;
  beforeAll(async () => {
    agent = await startAgentProcess(server, { alias });
  });
  afterAll(async () => {
    await agent?.stop();
    removeDir(agent?.dir);
  });

  it('too many or too long audiences are refused at the admin API, the agent API and the Workload API', async () => {
    // Root's workload minting JWT-SVIDs at its agent while the oversized requests come in.
    const client = new WorkloadAPIClient(agent.socket);
    const legit = probe('oversized_audiences', async () => {
      if (!(await client.fetchJWTSVIDs(['legit-aud'])).length) throw new Error('no JWT-SVID');
    });
    const many = Array.from({ length: 33 }, (_, i) => `aud-${i}`);
    const admin = await server.cliResult(['jwt', 'mint', '--spiffe-id', `spiffe://${td}/x`, ...many.flatMap((a) => ['--audience', a])]);
    expect(admin.code).not.toBe(0);
    expect(admin.stderr).toMatch(/audience has 33 entries; at most 32 are allowed/);

    const workload = await agent.cli(['fetch', 'jwt', '--audience', ...many]);
    expect(workload.code).not.toBe(0);
    expect(workload.stderr).toMatch(/at most 32/);

    // The agent API, called with the agent's own SVID as the review did: 5,000 audiences of 1,024 characters.
    const id = agentIdentityPem(path.join(agent.dir, 'data'));
    const entries = JSON.parse(await server.cli(['--output', 'json', 'entry', 'show', '--spiffe-id', `spiffe://${td}/root-svc`])) as { entries: Array<{ id: string }> };
    const huge = Array.from({ length: 5000 }, (_, i) => `${i}`.padEnd(1024, 'a'));
    const r = await agentApiRequest(server.agentApi, {
      method: 'POST',
      path: '/agent/v1/jwt-svids',
      body: { entry_id: entries.entries[0]!.id, audience: huge },
      ...id,
      ca: await server.cli(['bundle', 'show', '--format', 'pem']),
    });
    expect(r.status).toBe(400);
    expect(r.json.error.message).toMatch(/at most 32/);
    expect(Math.max(...server.logs().split("\n").map((l) => l.length))).toBeLessThan(64 * 1024); // no multi-megabyte audit line
    expect((await legit.stop()).failed).toEqual([]);
    client.close();
  });
});
