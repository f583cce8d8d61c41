import { existsSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { startAgentProcess, startServerProcess, stopAndRemove, removeDir, run, shortTempDir, type AgentProcess, type ServerProcess } from '../../helpers/processes';
import { freePort } from '../../helpers/free-port';
import { logLines, metric, startExpectingRefusal, waitFor } from '../../helpers/security';
import * as grpc from '@grpc/grpc-js';
import { AdminClient } from '../../../cli/admin-client';
import { firstMessage, securityHeader, thirdPartyClient } from '../../helpers/third-party-client';
import { CURVE_ORDER, isHighSP1363 } from '../../../common/x509svid/ecdsa-signature';

/**
 * The review's smaller findings, against the real processes: TLS suites of the
 * agent API, high-S JWT signatures, FetchX509SVID messages over the gRPC default
 * limit, start-up failures that left listeners open, and the entry flags
 * `--admin` / `--downstream` that nothing read.
 */
jest.setTimeout(120_000);

const td = 'small.example.org';
const alias = `spiffe://${td}/node/small`;
let server: ServerProcess;
let agent: AgentProcess;

beforeAll(async () => {
  server = await startServerProcess({ trustDomain: td });
  await server.cli(['entry', 'create', '--spiffe-id', `spiffe://${td}/root-svc`, '--parent-id', alias, '--selector', 'unix:uid:0']);
  agent = await startAgentProcess(server, { alias });
});
afterAll(() => stopAndRemove(agent, server));

it('the agent API offers TLS 1.2 with AEAD suites only (no CBC, no SHA-1 MACs)', async () => {
  const handshake = async (cipher: string) =>
    (await run('openssl', ['s_client', '-connect', server.agentApi, '-tls1_2', '-cipher', cipher, '-brief'], { input: '' })).code;
  expect(await handshake('ECDHE-ECDSA-AES128-GCM-SHA256')).toBe(0);
  expect(await handshake('ECDHE-ECDSA-CHACHA20-POLY1305')).toBe(0);
  expect(await handshake('ECDHE-ECDSA-AES128-SHA')).not.toBe(0);
  expect(await handshake('ECDHE-ECDSA-AES256-SHA384')).not.toBe(0);
  expect(await handshake('ECDHE-ECDSA-AES128-SHA256')).not.toBe(0);
});

it('JWT-SVIDs are issued with low-S signatures only, and the high-S twin of one is refused by ValidateJWTSVID', async () => {
  let twin = '';
  for (let i = 0; i < 6; i++) {
    const r = await agent.cli(['fetch', 'jwt', '--audience', `aud-${i}`]);
    const token = (JSON.parse(r.stdout) as { svids: Array<{ token: string }> }).svids[0]!.token;
    const [h, p, s] = token.split('.');
    const sig = Buffer.from(s!, 'base64url');
    expect(isHighSP1363(sig, 'P-256')).toBe(false);
    const flipped = CURVE_ORDER['P-256']! - BigInt('0x' + sig.subarray(32).toString('hex'));
    twin = `${h}.${p}.${Buffer.concat([sig.subarray(0, 32), Buffer.from(flipped.toString(16).padStart(64, '0'), 'hex')]).toString('base64url')}`;
    expect((await agent.cli(['validate', 'jwt', '--audience', `aud-${i}`, '--svid', token])).code).toBe(0);
  }
  const r = await agent.cli(['validate', 'jwt', '--audience', 'aud-5', '--svid', twin]);
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/signature is not in low-s form/);
});

it('a workload whose FetchX509SVID message outgrows the 4 MiB gRPC default gets a clear warning in the agent log', async () => {
  const admin = new AdminClient(server.adminSocket);
  const n = 3600;
  for (let i = 0; i < n; i += 1000) {
    const entries = Array.from({ length: Math.min(1000, n - i) }, (_, j) => ({
      spiffe_id: `spiffe://${td}/many/${i + j}`,
      parent_id: alias,
      selectors: ['unix:uid:0', `unix:gid:0`],
      dns_names: [`many-${i + j}.small.example.org`],
    }));
    await admin.request('POST', '/v1/entries', { entries });
  }
  await waitFor('the SVIDs', async () => (await metric(agent.health, 'tessera_agent_cached_svids')) >= n, 60_000, 250);
  // A client with gRPC's default 4 MiB receive limit (go-spiffe, py-spiffe, grpc-js) cannot take it...
  const client = thirdPartyClient(agent.socket);
  try {
    await expect(firstMessage(client.FetchX509SVID({}, securityHeader()), 30_000)).rejects.toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED });
  } finally {
    client.close();
  }
  // ...Tessera's own client (the SDK's, used by the CLI) accepts up to 64 MiB
  const r = await agent.cli(['fetch', 'x509']);
  expect(r.code).toBe(0);
  expect((JSON.parse(r.stdout) as { svids: unknown[] }).svids.length).toBeGreaterThanOrEqual(n);
  await waitFor('the warning', () => logLines(agent.logs()).some((l) => typeof l.msg === 'string' && l.msg.startsWith('FetchX509SVID message is larger than the 4 MiB gRPC clients accept by default')));
  const w = logLines(agent.logs()).find((l) => typeof l.msg === 'string' && l.msg.startsWith('FetchX509SVID message is larger'))!;
  expect(w.bytes as number).toBeGreaterThan(4 * 1024 * 1024);
});

describe('a start-up failure closes what was opened and exits non-zero', () => {
  it('the server, when its health port is taken: the agent API port and the admin socket are let go', async () => {
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const taken = (holder.address() as net.AddressInfo).port;
    const dir = shortTempDir('fail-');
    const apiPort = await freePort();
    const cfg = path.join(dir, 'server.json');
    writeFileSync(
      cfg,
      JSON.stringify({ trust_domain: td, data_dir: path.join(dir, 'data'), bind: `127.0.0.1:${apiPort}`, health_bind: `127.0.0.1:${taken}`, admin_socket: path.join(dir, 'admin', 'api.sock') }),
    );
    try {
      const r = await startExpectingRefusal(['server', 'run', '--config', cfg], { readyEvent: 'server_ready', timeoutMs: 15_000 });
      expect(r.code).toBe(1);
      expect(r.output).toMatch(/EADDRINUSE/);
      // The agent API port is free again, and nothing answers on the admin socket.
      const probe = net.createServer();
      await new Promise<void>((resolve, reject) => probe.once('error', reject).listen(apiPort, '127.0.0.1', resolve));
      probe.close();
      expect(existsSync(path.join(dir, 'admin', 'api.sock'))).toBe(false);
    } finally {
      holder.close();
      removeDir(dir);
    }
  });

  it('the agent, when its health port is taken: its Workload API socket is gone', async () => {
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const taken = (holder.address() as net.AddressInfo).port;
    const dir = shortTempDir('afail-');
    const bundle = path.join(dir, 'bundle.pem');
    writeFileSync(bundle, await server.cli(['bundle', 'show', '--format', 'pem']));
    const token = /^Token: (\S+)$/m.exec(await server.cli(['token', 'generate']))![1]!;
    const cfg = path.join(dir, 'agent.json');
    const socket = path.join(dir, 'public', 'api.sock');
    writeFileSync(
      cfg,
      JSON.stringify({ server_address: server.agentApi, trust_domain: td, trust_bundle_path: bundle, data_dir: path.join(dir, 'data'), socket_path: socket, health_bind: `127.0.0.1:${taken}` }),
    );
    try {
      const r = await startExpectingRefusal(['agent', 'run', '--config', cfg], { readyEvent: 'agent_ready', env: { TESSERA_JOIN_TOKEN: token }, timeoutMs: 15_000 });
      expect(r.code).toBe(1);
      expect(r.output).toMatch(/EADDRINUSE/);
      expect(existsSync(socket)).toBe(false);
    } finally {
      holder.close();
      removeDir(dir);
    }
  });
});

it('--admin and --downstream are gone: the CLI does not offer them, the API refuses them set to true, and entries carry neither', async () => {
  const cli = await server.cliResult(['entry', 'create', '--spiffe-id', `spiffe://${td}/adm`, '--parent-id', alias, '--selector', 'unix:uid:7', '--admin']);
  expect(cli.code).not.toBe(0);
  expect(cli.stderr).toMatch(/unknown option '--admin'/);
  const admin = new AdminClient(server.adminSocket);
  for (const flag of ['admin', 'downstream']) {
    await expect(admin.request('POST', '/v1/entries', { entries: [{ spiffe_id: `spiffe://${td}/${flag}`, parent_id: alias, selectors: ['unix:uid:7'], [flag]: true }] })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringContaining(`${flag} entries are not supported`),
    });
  }
  // false, as SPIRE exports write it, still imports
  const ok = await admin.request<{ entries: Array<Record<string, unknown>> }>('POST', '/v1/entries', {
    entries: [{ spiffe_id: `spiffe://${td}/plain`, parent_id: alias, selectors: ['unix:uid:7'], admin: false, downstream: false }],
  });
  expect(Object.keys(ok.entries[0]!)).not.toContain('admin');
  expect(Object.keys(ok.entries[0]!)).not.toContain('downstream');
});
