import { X509Certificate, createPrivateKey } from 'node:crypto';
import { realpathSync, writeFileSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import * as jose from 'jose';
import { startServerProcess, startAgentProcess, removeDir, run, TESSERA_BIN, type ServerProcess, type AgentProcess } from '../helpers/processes';
import { opensslVerify, uriSan } from '../helpers/agent-identity';
import { thirdPartyClient, securityHeader, firstMessage, unary } from '../helpers/third-party-client';
import { splitConcatenatedDer, x509AuthoritiesFromPem } from '../../common/bundle/bundle';

/**
 * The real server and agent processes, a real Unix socket, clients under other
 * uids (setpriv), and a Workload API client generated from the proto as a third
 * party would write it.
 */
jest.setTimeout(120_000);

const td = 'agent.example.org';
const alias = `spiffe://${td}/node/e2e`;
let server: ServerProcess;
let agent: AgentProcess;

async function entry(spiffeId: string, selectors: string[], extra: string[] = []): Promise<string> {
  const args = ['--output', 'json', 'entry', 'create', '--spiffe-id', `spiffe://${td}${spiffeId}`, '--parent-id', alias, ...extra];
  for (const s of selectors) args.push('--selector', s);
  return (JSON.parse(await server.cli(args)) as { id: string }).id;
}

interface X509Msg {
  svids: Array<{ spiffe_id: string; x509_svid: Buffer; x509_svid_key: Buffer; bundle: Buffer; hint: string }>;
  federated_bundles: Record<string, Buffer>;
}

beforeAll(async () => {
  server = await startServerProcess({ trustDomain: td });
  await entry('/root-svc', ['unix:uid:0'], ['--hint', 'root']);
  await entry('/nobody-svc', ['unix:uid:65534']);
  agent = await startAgentProcess(server, { alias });
});

afterAll(async () => {
  await agent?.stop();
  await server?.stop();
  removeDir(agent?.dir);
  removeDir(server?.dir);
});

describe('workload attestation by kernel peer credentials', () => {
  it('each uid gets only its own SVID; no entry → PermissionDenied; no header → InvalidArgument', async () => {
    const asRoot = await agent.cli(['fetch', 'x509']);
    expect(asRoot.code).toBe(0);
    expect(JSON.parse(asRoot.stdout).svids.map((s: { spiffe_id: string }) => s.spiffe_id)).toEqual([`spiffe://${td}/root-svc`]);

    const asNobody = await agent.cli(['fetch', 'x509'], { uid: 65534 });
    expect(asNobody.stderr).toBe('');
    expect(JSON.parse(asNobody.stdout).svids.map((s: { spiffe_id: string }) => s.spiffe_id)).toEqual([`spiffe://${td}/nobody-svc`]);

    const out = path.join(agent.dir, 'written');
    expect((await agent.cli(['fetch', 'x509', '--write', out])).code).toBe(0);
    expect(statSync(path.join(out, 'svid.0.key')).mode & 0o777).toBe(0o600);
    const written = x509AuthoritiesFromPem(readFileSync(path.join(out, 'svid.0.pem'), 'utf8'));
    const writtenBundle = x509AuthoritiesFromPem(readFileSync(path.join(out, 'bundle.0.pem'), 'utf8'));
    expect((await opensslVerify(out, written, writtenBundle, 'w')).code).toBe(0);

    const health = await run(process.execPath, [TESSERA_BIN, 'agent', 'healthcheck', '--health-addr', agent.health]);
    expect(health.stdout).toMatch(/Agent is healthy/);
    expect(health.code).toBe(0);

    const stranger = await agent.cli(['fetch', 'x509'], { uid: 4242 });
    expect(stranger.code).toBe(1);
    expect(stranger.stderr).toMatch(/no registration entry matches the caller/);

    const c = thirdPartyClient(agent.socket);
    const err = await firstMessage(c.FetchX509SVID({}, new grpc.Metadata())).catch((e: grpc.ServiceError) => e);
    expect((err as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
    c.close();
    await new Promise((r) => setTimeout(r, 200));
    expect(agent.logs()).toMatch(/"uid":4242/);
  });
});

describe('a third-party grpc-js client generated from the proto', () => {
  it('fetches X.509-SVIDs and bundles that verify with openssl', async () => {
    const c = thirdPartyClient(agent.socket);
    const m = await firstMessage<X509Msg>(c.FetchX509SVID({}, securityHeader()));
    const svid = m.svids.find((s) => s.spiffe_id === `spiffe://${td}/root-svc`)!;
    expect(svid.hint).toBe('root');
    const chain = splitConcatenatedDer(svid.x509_svid);
    const bundle = splitConcatenatedDer(svid.bundle);
    expect(uriSan(chain[0]!)).toEqual([svid.spiffe_id]);
    expect(new X509Certificate(chain[0]!).checkPrivateKey(createPrivateKey({ key: svid.x509_svid_key, format: 'der', type: 'pkcs8' }))).toBe(true);
    expect((await opensslVerify(agent.dir, chain, bundle, 'tp')).code).toBe(0);
    const b = await firstMessage<{ bundles: Record<string, Buffer> }>(c.FetchX509Bundles({}, securityHeader()));
    expect(Object.keys(b.bundles)).toEqual([`spiffe://${td}`]);
    expect(splitConcatenatedDer(b.bundles[`spiffe://${td}`]!)).toEqual(bundle);
    c.close();
  });

  it('fetches a JWT-SVID, verifies it with the JWT bundle, validates it through the agent, rejects a wrong audience and a tampered token', async () => {
    const c = thirdPartyClient(agent.socket);
    const res = await unary<object, { svids: Array<{ spiffe_id: string; svid: string }> }>(c, 'FetchJWTSVID', { audience: ['svc-b'] });
    expect(res.svids.map((s) => s.spiffe_id)).toEqual([`spiffe://${td}/root-svc`]);
    const token = res.svids[0]!.svid;
    const jb = await firstMessage<{ bundles: Record<string, Buffer> }>(c.FetchJWTBundles({}, securityHeader()));
    const jwks = JSON.parse(jb.bundles[`spiffe://${td}`]!.toString('utf8'));
    expect(jwks.keys.every((k: { kid?: string }) => typeof k.kid === 'string')).toBe(true);
    const { payload } = await jose.jwtVerify(token, jose.createLocalJWKSet(jwks), { audience: 'svc-b' });
    expect(payload.sub).toBe(`spiffe://${td}/root-svc`);

    const v = await unary<object, { spiffe_id: string; claims: { fields: Record<string, any> } }>(c, 'ValidateJWTSVID', { audience: 'svc-b', svid: token });
    expect(v.spiffe_id).toBe(`spiffe://${td}/root-svc`);
    expect(v.claims.fields.aud.listValue.values.map((x: { stringValue: string }) => x.stringValue)).toEqual(['svc-b']);

    const wrongAud = await unary(c, 'ValidateJWTSVID', { audience: 'other', svid: token }).catch((e: grpc.ServiceError) => e);
    expect((wrongAud as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
    const [h, p, s] = token.split('.');
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p!, 'base64url').toString()), sub: `spiffe://${td}/admin` })).toString('base64url');
    const tampered = await unary(c, 'ValidateJWTSVID', { audience: 'svc-b', svid: `${h}.${forged}.${s}` }).catch((e: grpc.ServiceError) => e);
    expect((tampered as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
    const noAud = await unary(c, 'FetchJWTSVID', { audience: [] }).catch((e: grpc.ServiceError) => e);
    expect((noAud as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
    const wit = await firstMessage(c.FetchWITSVID({}, securityHeader())).catch((e: grpc.ServiceError) => e);
    expect((wit as grpc.ServiceError).code).toBe(grpc.status.UNIMPLEMENTED);
    c.close();
  });
});

describe('streams follow entries and rotation', () => {
  it('a new entry reaches an open stream, and a deleted one disappears from it', async () => {
    const c = thirdPartyClient(agent.socket);
    const stream = c.FetchX509SVID({}, securityHeader());
    const msgs: Array<{ at: number; ids: string[] }> = [];
    stream.on('data', (m: X509Msg) => msgs.push({ at: Date.now(), ids: m.svids.map((s) => s.spiffe_id) }));
    stream.on('error', () => undefined);
    const waitFor = async (pred: (ids: string[]) => boolean, from = 0) => {
      for (let i = 0; i < 100; i++) {
        const hit = msgs.slice(from).find((m) => pred(m.ids));
        if (hit) return hit;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`no matching stream message; got ${JSON.stringify(msgs.map((m) => m.ids))}`);
    };
    await waitFor((ids) => ids.length > 0);
    const t0 = Date.now();
    const id = await entry('/late', ['unix:uid:0']);
    const added = await waitFor((ids) => ids.includes(`spiffe://${td}/late`));
    const addLatency = added.at - t0;
    const t1 = Date.now();
    await server.cli(['entry', 'delete', '--entry-id', id]);
    const after = msgs.indexOf(added);
    const gone = await waitFor((ids) => ids.length > 0 && !ids.includes(`spiffe://${td}/late`), after + 1);
    expect(gone.at).toBeGreaterThanOrEqual(added.at);
    process.stdout.write(`entry propagation to an open stream: add ${addLatency} ms, delete ${gone.at - t1} ms (both include starting the CLI process)\n`);
    expect(addLatency).toBeLessThan(5000);
    stream.cancel();
    c.close();
  });

  it('with 10-s SVIDs the stream delivers a new SVID before the old one expires, several times; every chain verifies', async () => {
    await entry('/rotating', ['unix:uid:0'], ['--x509-svid-ttl', '10']);
    const c = thirdPartyClient(agent.socket);
    const stream = c.FetchX509SVID({}, securityHeader());
    const seen: Array<{ at: number; serial: string; notAfter: number; chain: Buffer[]; bundle: Buffer[] }> = [];
    stream.on('data', (m: X509Msg) => {
      const s = m.svids.find((x) => x.spiffe_id === `spiffe://${td}/rotating`);
      if (!s) return;
      const chain = splitConcatenatedDer(s.x509_svid);
      const leaf = new X509Certificate(chain[0]!);
      if (seen.length && seen[seen.length - 1]!.serial === leaf.serialNumber) return;
      seen.push({ at: Date.now(), serial: leaf.serialNumber, notAfter: Date.parse(leaf.validTo), chain, bundle: splitConcatenatedDer(s.bundle) });
    });
    stream.on('error', () => undefined);
    await new Promise((r) => setTimeout(r, 27_000));
    stream.cancel();
    c.close();
    expect(seen.length).toBeGreaterThanOrEqual(4);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.at).toBeLessThan(seen[i - 1]!.notAfter);
    // each chain as of when it was delivered (the early ones have expired by now)
    for (const [i, s] of seen.entries()) expect((await opensslVerify(agent.dir, s.chain, s.bundle, `rot${i}`, s.at / 1000)).out).toMatch(/OK/);
  });
});

describe('federated bundles', () => {
  it('a federated bundle set on the server reaches an open bundle stream of an entry that federates with it', async () => {
    await entry('/federating', ['unix:uid:0'], ['--federates-with', 'partner.example']);
    const c = thirdPartyClient(agent.socket);
    const stream = c.FetchX509Bundles({}, securityHeader());
    const seen: string[][] = [];
    stream.on('data', (m: { bundles: Record<string, Buffer> }) => seen.push(Object.keys(m.bundles).sort()));
    stream.on('error', () => undefined);
    await new Promise((r) => setTimeout(r, 1000));
    const file = path.join(agent.dir, 'partner.json');
    writeFileSync(file, await server.cli(['bundle', 'show', '--format', 'spiffe'])); // any valid bundle will do
    const t0 = Date.now();
    await server.cli(['bundle', 'set', '--id', 'partner.example', '--path', file]);
    for (let i = 0; i < 100 && !seen.some((k) => k.includes('spiffe://partner.example')); i++) await new Promise((r) => setTimeout(r, 50));
    stream.cancel();
    c.close();
    expect(seen[seen.length - 1]).toEqual([`spiffe://${td}`, 'spiffe://partner.example']);
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});

describe('a caller that exits mid-call', () => {
  it('gets no path-bound SVID through a socket handed to another process', async () => {
    const nodePath = realpathSync(process.execPath);
    const boundId = `spiffe://${td}/path-bound`;
    await entry('/path-bound', ['unix:uid:0', `unix:path:${nodePath}`]);
    await new Promise((r) => setTimeout(r, 1000));
    // B: makes a raw gRPC FetchJWTSVID call for `boundId` over an HTTP/2 session on a given socket.
    const b = path.join(agent.dir, 'b.js');
    writeFileSync(
      b,
      `const http2 = require('http2'); const net = require('net');
const id = ${JSON.stringify(boundId)};
function call(sock) {
  const s = http2.connect('http://localhost', { createConnection: () => sock });
  const aud = Buffer.from('x'); const sid = Buffer.from(id);
  const msg = Buffer.concat([Buffer.from([0x0a, aud.length]), aud, Buffer.from([0x12, sid.length]), sid]);
  const frame = Buffer.alloc(5 + msg.length); frame.writeUInt32BE(msg.length, 1); msg.copy(frame, 5);
  const req = s.request({ ':method': 'POST', ':path': '/SpiffeWorkloadAPI/FetchJWTSVID', 'content-type': 'application/grpc', te: 'trailers', 'workload.spiffe.io': 'true' });
  let status = null;
  req.on('response', (h) => { if (h['grpc-status'] !== undefined) status = h['grpc-status']; });
  req.on('trailers', (t) => { status = t['grpc-status']; });
  req.on('data', () => {});
  req.on('close', () => { require('fs').writeFileSync(process.argv[process.argv.length - 1], 'grpc-status ' + status); s.close(); process.exit(0); });
  req.end(frame);
}
if (process.argv[2] === 'direct') call(net.connect(process.argv[3]));  // argv: direct SOCKET RESULT_FILE
else process.on('message', (m, sock) => { const wait = () => { try { process.kill(Number(m), 0); setTimeout(wait, 20); } catch { call(sock); } }; wait(); });
`,
    );
    // A: connects, hands the socket to B, and exits before B uses it.
    const a = path.join(agent.dir, 'a.js');
    writeFileSync(
      a,
      `const { fork } = require('child_process'); const net = require('net');
const sock = net.connect(process.argv[2], () => {
  const child = fork(${JSON.stringify(b)}, ['handed', process.argv[3]], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'], detached: true });
  child.send(String(process.pid), sock, () => { sock.destroy(); child.disconnect(); process.exit(0); });
});`,
    );
    const resultOf = async (file: string) => {
      for (let i = 0; i < 100; i++) {
        try {
          return require('node:fs').readFileSync(file, 'utf8') as string;
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      throw new Error('the client wrote no result');
    };
    const directOut = path.join(agent.dir, 'direct.out');
    await run(process.execPath, [b, 'direct', agent.socket, directOut]);
    expect(await resultOf(directOut)).toBe('grpc-status 0'); // control: a live node process gets it
    const handedOut = path.join(agent.dir, 'handed.out');
    await run(process.execPath, [a, agent.socket, handedOut]);
    expect(await resultOf(handedOut)).toBe('grpc-status 7'); // PermissionDenied: the connecting process is gone
  });
});

describe('an SVID that expires while the server cannot be reached', () => {
  it('holds the open stream (no PermissionDenied): the JWT ask is Unavailable meanwhile, and the renewed SVID arrives on the same stream', async () => {
    // uid 4343's only entry has 6-s SVIDs; with the server paused (SIGSTOP: connections hang, as on a
    // partitioned network) the agent cannot renew, and the SVID passes its notAfter while the stream is open.
    await entry('/short-lived', ['unix:uid:4343'], ['--x509-svid-ttl', '6']);
    const watch = spawn('setpriv', ['--reuid=4343', '--regid=4343', '--clear-groups', process.execPath, TESSERA_BIN, '--output', 'json', 'agent', 'api', 'watch', '--socket', agent.socket]);
    let out = '';
    let err = '';
    watch.stdout.on('data', (b: Buffer) => (out += b));
    watch.stderr.on('data', (b: Buffer) => (err += b));
    const exited = new Promise<number | null>((resolve) => watch.on('exit', resolve));
    const serials = () => [...out.matchAll(/"serial": "([0-9a-f]+)"/g)].map((m) => m[1]!);
    const notAfters = () => [...out.matchAll(/"not_after": "([^"]+)"/g)].map((m) => Date.parse(m[1]!));
    const until = async (what: string, cond: () => boolean, ms: number) => {
      for (const end = Date.now() + ms; !cond(); await new Promise((r) => setTimeout(r, 50))) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}; watch stdout ${out.slice(-500)} stderr ${err}`);
      }
    };
    let paused = false;
    try {
      await until('the first svid on the stream', () => serials().length >= 1, 30_000);
      server.proc.kill('SIGSTOP');
      paused = true;
      const lastNotAfter = Math.max(...notAfters());
      // The agent drops the SVID once it expires; the stream must stay open past that.
      await until('the svid to expire', () => Date.now() > lastNotAfter + 1500, 20_000);
      const jwt = await agent.cli(['fetch', 'jwt', '--audience', 'db', '--timeout', '5'], { uid: 4343 });
      expect(jwt.code).not.toBe(0);
      expect(jwt.stderr).toMatch(/UNAVAILABLE|not issued yet/);
      expect(jwt.stderr).not.toMatch(/PERMISSION_DENIED|no registration entry/);
      // A one-shot fetch waits for the SVID like the stream, and ends at its deadline.
      const once = await agent.cli(['fetch', 'x509', '--timeout', '2'], { uid: 4343 });
      expect(once.code).not.toBe(0);
      expect(once.stderr).toMatch(/DEADLINE_EXCEEDED|deadline/i);
      expect(once.stderr).not.toMatch(/PERMISSION_DENIED|no registration entry/);
      expect(watch.exitCode).toBeNull();
      const held = serials().length;
      server.proc.kill('SIGCONT');
      paused = false;
      await until('a renewed svid on the same stream', () => serials().length > held, 60_000);
      expect(new Set(serials()).size).toBe(serials().length); // each message a new certificate
      expect(Math.max(...notAfters())).toBeGreaterThan(lastNotAfter);
      expect(err).toBe('');
      expect(watch.exitCode).toBeNull();
      expect(agent.logs()).not.toMatch(/"uid":4343[^\n]*workload_api_denied|workload_api_denied[^\n]*"uid":4343/);
    } finally {
      if (paused) server.proc.kill('SIGCONT');
      watch.kill('SIGTERM');
      await exited;
    }
  });
});

describe('the server goes away', () => {
  it('the agent keeps serving; restarted while the server is down it serves cached SVIDs at once; sync resumes when the server is back', async () => {
    const dir = server.dir;
    const port = Number(server.agentApi.split(':').pop());
    expect(await server.stop()).toBe(0);
    const during = await agent.cli(['fetch', 'x509']);
    expect(during.code).toBe(0);
    expect(await agent.stop()).toBe(0);

    const t0 = Date.now();
    agent = await startAgentProcess({ agentApi: server.agentApi, trustDomain: td }, { dir: agent.dir, join: false });
    const cached = await agent.cli(['fetch', 'x509']);
    expect(cached.code).toBe(0);
    expect(JSON.parse(cached.stdout).svids.map((s: { spiffe_id: string }) => s.spiffe_id)).toContain(`spiffe://${td}/root-svc`);
    process.stdout.write(`agent restart with the server down → first SVID served after ${Date.now() - t0} ms\n`);

    server = await startServerProcess({ trustDomain: td, dir, config: { bind: `127.0.0.1:${port}` } });
    await entry('/after-outage', ['unix:uid:0']);
    let ids: string[] = [];
    for (let i = 0; i < 90 && !ids.includes(`spiffe://${td}/after-outage`); i++) {
      await new Promise((r) => setTimeout(r, 500));
      const r = await agent.cli(['fetch', 'x509']);
      if (r.code === 0) ids = JSON.parse(r.stdout).svids.map((s: { spiffe_id: string }) => s.spiffe_id);
    }
    expect(ids).toContain(`spiffe://${td}/after-outage`);
  });

  it('an evicted agent says so clearly and keeps serving its cached SVIDs', async () => {
    await server.cli(['agent', 'evict', '--spiffe-id', agent.agentId]);
    let logged = false;
    for (let i = 0; i < 100 && !logged; i++) {
      await new Promise((r) => setTimeout(r, 200));
      logged = /the server no longer accepts this agent \(evicted\)/.test(agent.logs());
    }
    expect(logged).toBe(true);
    const r = await agent.cli(['fetch', 'x509']);
    expect(r.code).toBe(0);
  });

  it('logs no private key, join token or JWT', () => {
    const logs = agent.logs() + server.logs();
    expect(logs).not.toMatch(/PRIVATE KEY/);
    expect(logs).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.eyJ/);
  });
});
