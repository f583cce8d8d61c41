import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { Agent, fetch as undiciFetch } from 'undici';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { TESSERA_BIN, startAgentProcess, startServerProcess, stopAndRemove, type AgentProcess, type ServerProcess } from '../../helpers/processes';
import { makeTestCA, makeTestLeaf, type TestCert } from '../../helpers/test-pki';
import { waitFor } from '../../helpers/security';
import { JWTSource, PolicyFile, X509Source } from '../../../sdk/index';
import { TOOL_CALL_DENIED } from '../../../sdk/mcp';
import { startAiEndpoint, type RunningEndpoint } from '../../../examples/ai-endpoint/endpoint';
import { tried } from '../../helpers/figures';

/**
 * The Express middleware and the MCP guard with the real server, agent and TLS,
 * and the official MCP SDK client over HTTPS: who is allowed, who is refused and
 * why, policy reloads, and the audit line of every decision.
 */
jest.setTimeout(120_000);

const td = 'ai.example.org';
const alias = `spiffe://${td}/node/ai`;
const ENDPOINT = `spiffe://${td}/endpoint`;
const OK = `spiffe://${td}/caller-ok`;
const DENIED = `spiffe://${td}/caller-denied`;
const asUid = (uid: number) => ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', process.execPath, TESSERA_BIN, '--output', 'json', 'agent', 'api'];

const POLICY = `
@id("chat-for-ok") permit (principal == Workload::"${OK}", action == Action::"http", resource == Route::"POST /v1/chat");
@id("models-for-all") permit (principal, action == Action::"http", resource == Route::"GET /v1/models");
@id("b-no-chat") forbid (principal in TrustDomain::"b.example", action == Action::"http", resource == Route::"POST /v1/chat");
@id("search") permit (principal == Workload::"${OK}", action == Action::"call_tool", resource == Tool::"search");
@id("summarize") permit (principal == Workload::"${OK}", action == Action::"call_tool", resource == Tool::"summarize") when { context.authn == "mtls" };
`;

let server: ServerProcess;
let other: ServerProcess; // a trust domain nobody federates with
let agent: AgentProcess;
let source: X509Source;
let jwt: JWTSource;
let policyFile: PolicyFile;
let endpoint: RunningEndpoint;
let policyPath: string;
const logs: string[] = [];
let bundlePem: string;
let bCA: TestCert;
const cert: Record<string, { cert: string; key: string }> = {};
const token: Record<string, string> = {};

/** The SVID files of a workload running as `uid`, written by `tessera agent api fetch x509 --write`. */
function svidFilesAs(uid: number, dir: string): { cert: string; key: string } {
  mkdirSync(dir, { mode: 0o700 });
  chownSync(dir, uid, uid); // the workload's own directory: --write refuses anyone else's
  execFileSync(asUid(uid)[0]!, [...asUid(uid).slice(1), 'fetch', 'x509', '--write', dir, '--socket', agent.socket]);
  return { cert: readFileSync(path.join(dir, 'svid.0.pem'), 'utf8'), key: readFileSync(path.join(dir, 'svid.0.key'), 'utf8') };
}
const jwtAs = (uid: number, audience: string): string =>
  (JSON.parse(execFileSync(asUid(uid)[0]!, [...asUid(uid).slice(1), 'fetch', 'jwt', '--audience', audience, '--socket', agent.socket], { encoding: 'utf8' })) as { svids: Array<{ token: string }> }).svids[0]!.token;

beforeAll(async () => {
  server = await startServerProcess({ trustDomain: td });
  other = await startServerProcess({ trustDomain: 'c.example' });
  // b.example: a trust domain whose CA the test holds; the endpoint federates with it.
  bCA = await makeTestCA(server.dir, 'b-ca', { spiffeTrustDomain: 'b.example' });
  const bBundle = path.join(server.dir, 'b.json');
  writeFileSync(bBundle, JSON.stringify({ keys: [{ kty: 'EC', use: 'x509-svid', x5c: [bCA.der.toString('base64')] }] }));
  await server.cli(['bundle', 'set', '--id', 'b.example', '--path', bBundle]);
  const entry = (id: string, uid: number, extra: string[] = []) =>
    server.cli(['entry', 'create', '--spiffe-id', id, '--parent-id', alias, '--selector', `unix:uid:${uid}`, ...extra]);
  await entry(ENDPOINT, 0, ['--federates-with', 'b.example']);
  await entry(OK, 1001);
  await entry(DENIED, 1002);
  agent = await startAgentProcess(server, { alias });
  chmodSync(agent.dir, 0o755);

  source = new X509Source({ address: agent.socket });
  jwt = new JWTSource({ address: agent.socket });
  await Promise.all([source.ready(20_000), jwt.ready(20_000)]);
  await waitFor('the b.example bundle', () => source.bundleFor('b.example'));
  policyPath = path.join(server.dir, 'policy.cedar');
  writeFileSync(policyPath, POLICY);
  const log = pino({ level: 'debug' }, new Writable({ write: (c, _e, cb) => (logs.push(String(c)), cb()) }));
  policyFile = PolicyFile.load(policyPath, { log, pollMs: 100 });
  endpoint = await startAiEndpoint({ source, jwt, audience: ENDPOINT, policy: policyFile, log });

  bundlePem = await server.cli(['bundle', 'show', '--format', 'pem']);
  cert.ok = svidFilesAs(1001, path.join(agent.dir, 'ok'));
  cert.denied = svidFilesAs(1002, path.join(agent.dir, 'denied'));
  const bLeaf = await makeTestLeaf(server.dir, 'b-svc', bCA, { uri: 'spiffe://b.example/svc' });
  cert.b = { cert: bLeaf.certPem, key: bLeaf.keyPem };
  // b.example's CA signing an ID of this trust domain: it must never vouch for it.
  const forged = await makeTestLeaf(server.dir, 'forged', bCA, { uri: OK });
  cert.forged = { cert: forged.certPem, key: forged.keyPem };
  token.ok = jwtAs(1001, ENDPOINT);
  token.denied = jwtAs(1002, ENDPOINT);
  token.wrongAudience = jwtAs(1001, 'spiffe://elsewhere/api');
  token.foreign = (await other.cli(['jwt', 'mint', '--spiffe-id', 'spiffe://c.example/svc', '--audience', ENDPOINT])).trim();
});

afterAll(async () => {
  await endpoint?.close();
  policyFile?.close();
  source?.close();
  jwt?.close();
  await stopAndRemove(agent, server, other);
});

/** An HTTPS request to the endpoint with a client certificate and/or a bearer token. */
function call(method: string, p: string, o: { tls?: { cert: string; key: string }; bearer?: string; body?: unknown } = {}): Promise<{ status: number; body: any; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const payload = o.body === undefined ? undefined : Buffer.from(JSON.stringify(o.body));
    const req = https.request(
      {
        host: '127.0.0.1',
        port: endpoint.port,
        method,
        path: p,
        ca: bundlePem,
        ...o.tls,
        checkServerIdentity: () => undefined, // its SVID names no host; the chain is still verified
        agent: false,
        headers: { ...(o.bearer ? { authorization: `Bearer ${o.bearer}` } : {}), ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}) },
      },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined, headers: res.headers }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

const decisions = () => logs.map((l) => JSON.parse(l) as Record<string, any>).filter((l) => l.event === 'authz_decision');

describe('the middleware', () => {
  it('allows what the policy permits, over mTLS and with a JWT-SVID, and says who is calling', async () => {
    const m = await call('POST', '/v1/chat', { tls: cert.ok, body: { messages: [] } });
    expect(m).toMatchObject({ status: 200, body: { caller: OK, via: 'mtls' } });
    const j = await call('POST', '/v1/chat', { bearer: token.ok, body: { messages: [] } });
    expect(j).toMatchObject({ status: 200, body: { caller: OK, via: 'jwt' } });
    expect((await call('GET', '/v1/models', { tls: cert.b })).status).toBe(200); // another trust domain, allowed by the policy
  });

  it('refuses: an ID the policy does not list (403); a forbidden trust domain (403); no identity, a wrong audience, a token from an unfederated trust domain (401)', async () => {
    let refused = tried('sdk_express_id_not_in_policy');
    const denied = await call('POST', '/v1/chat', { tls: cert.denied });
    expect(denied.status).toBe(403);
    expect(denied.body.error).toMatchObject({ code: 'PERMISSION_DENIED', message: `${DENIED} may not POST /v1/chat` });
    refused();
    refused = tried('sdk_express_id_not_in_policy');
    expect((await call('POST', '/v1/chat', { bearer: token.denied })).status).toBe(403);
    refused();
    refused = tried('sdk_express_forbidden_trust_domain');
    expect((await call('POST', '/v1/chat', { tls: cert.b })).status).toBe(403);
    refused();

    refused = tried('sdk_express_no_identity');
    const none = await call('POST', '/v1/chat');
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer realm="tessera"');
    refused();
    refused = tried('sdk_express_jwt_other_audience');
    const aud = await call('POST', '/v1/chat', { bearer: token.wrongAudience });
    expect(aud.status).toBe(401);
    expect(aud.headers['www-authenticate']).toMatch(/^Bearer realm="tessera", error="invalid_token", error_description=".*audience/);
    refused();
    refused = tried('sdk_express_jwt_unfederated_trust_domain');
    const foreign = await call('POST', '/v1/chat', { bearer: token.foreign });
    expect(foreign.status).toBe(401);
    expect(foreign.body.error.message).toMatch(/no jwt bundle for trust domain c\.example/);
    refused();
    expect(JSON.stringify(logs)).not.toContain(token.ok.split('.')[2]); // no token in any log line
  });

  it('refuses a chain signed by a CA of another trust domain for an ID in this one, at the handshake', async () => {
    const refused = tried('sdk_express_cross_trust_domain_certificate');
    await expect(call('POST', '/v1/chat', { tls: cert.forged })).rejects.toThrow(/socket hang up|ECONNRESET|EPIPE/);
    // refused by the SPIFFE check (the chain must end at ai.example.org's bundle), not by OpenSSL, which knows b.example's CA
    const refusal = logs.map((l) => JSON.parse(l) as Record<string, string>).find((l) => l.event === 'tls_peer_refused');
    expect(refusal?.reason).toMatch(/not issued by any root in the bundle of trust domain ai\.example\.org/);
    refused();
  });

  it('refuses an expired JWT-SVID', async () => {
    // A second endpoint whose JWT source runs two hours ahead: the same real token is expired there.
    const ahead = new JWTSource({ address: agent.socket, now: () => Date.now() + 2 * 3600_000 });
    await ahead.ready(10_000);
    const e2 = await startAiEndpoint({ source, jwt: ahead, audience: ENDPOINT, policy: policyFile, log: pino({ level: 'silent' }) });
    try {
      const r = await new Promise<{ status: number; body: any }>((resolve, reject) => {
        https
          .request({ host: '127.0.0.1', port: e2.port, method: 'POST', path: '/v1/chat', ca: bundlePem, checkServerIdentity: () => undefined, headers: { authorization: `Bearer ${token.ok}` } }, (res) => {
            let t = '';
            res.on('data', (c) => (t += c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(t) }));
          })
          .on('error', reject)
          .end();
      });
      expect(r.status).toBe(401);
      expect(r.body.error.message).toMatch(/expired/);
      tried('sdk_express_jwt_expired')(); // tried and refused: the expectations above passed
    } finally {
      await e2.close();
      ahead.close();
    }
  });

  it('writes an audit line per decision: caller, how it authenticated, action, resource, decision, policies, correlation id, time', async () => {
    await call('POST', '/v1/chat', { tls: cert.denied });
    const d = decisions().find((l) => l.spiffe_id === DENIED && l.decision === 'deny')!;
    expect(d).toMatchObject({ audit: true, trust_domain: td, authn: 'mtls', action: 'http', resource: 'Route::POST /v1/chat', decision: 'deny', policies: [] });
    expect(typeof d.correlation_id).toBe('string');
    expect(typeof d.eval_us).toBe('number');
    const allowed = decisions().find((l) => l.spiffe_id === OK && l.decision === 'allow')!;
    expect(allowed.policies).toEqual(['chat-for-ok']);
  });

  it('a policy change takes effect without a restart; a broken policy file is refused and the last good one stays', async () => {
    writeFileSync(policyPath, POLICY + `\n@id("chat-for-denied") permit (principal == Workload::"${DENIED}", action == Action::"http", resource == Route::"POST /v1/chat");\n`);
    await waitFor('the new policy', async () => (await call('POST', '/v1/chat', { tls: cert.denied })).status === 200, 10_000, 100);
    const swapped = tried('sdk_policy_file_swapped_for_broken');
    writeFileSync(policyPath, POLICY + '\npermit (principal, action, resource) when { principal.nosuch == 1 };\n');
    await waitFor('the refusal in the log', () => logs.some((l) => l.includes('"event":"policy_refused"')), 10_000, 50);
    const refused = logs.map((l) => JSON.parse(l)).find((l) => l.event === 'policy_refused');
    expect(refused.error).toMatch(/line 8: policy policy5: .*nosuch/);
    expect((await call('POST', '/v1/chat', { tls: cert.denied })).status).toBe(200); // the last good policy
    swapped();
    writeFileSync(policyPath, POLICY);
    await waitFor('the original policy', async () => (await call('POST', '/v1/chat', { tls: cert.denied })).status === 403, 10_000, 100);
  });
});

describe('the MCP guard, with the official MCP client over HTTPS', () => {
  /** An MCP client authenticated with a client SVID (mTLS) or a JWT-SVID bearer token. */
  async function mcpClient(o: { tls?: { cert: string; key: string }; bearer?: string }): Promise<{ client: Client; close(): Promise<void> }> {
    const dispatcher = new Agent({ connect: { ca: bundlePem, ...o.tls, checkServerIdentity: () => undefined } });
    const transport = new StreamableHTTPClientTransport(new URL(`https://127.0.0.1:${endpoint.port}/mcp`), {
      fetch: ((url: string | URL, init?: RequestInit) => undiciFetch(url, { ...(init as object), dispatcher } as never)) as never,
      requestInit: o.bearer ? { headers: { authorization: `Bearer ${o.bearer}` } } : undefined,
    });
    const client = new Client({ name: 'e2e', version: '1.0.0' });
    await client.connect(transport);
    return { client, close: async () => (await client.close(), await dispatcher.close()) };
  }

  it('lists only the tools the caller may call, runs allowed calls with the caller identity, refuses the rest with an MCP error', async () => {
    const ok = await mcpClient({ tls: cert.ok });
    try {
      expect((await ok.client.listTools()).tools.map((t) => t.name).sort()).toEqual(['search', 'summarize']);
      const r = await ok.client.callTool({ name: 'search', arguments: { query: 'spiffe' } });
      expect(r.content).toEqual([{ type: 'text', text: `results for "spiffe" (asked by ${OK})` }]);
      // hidden from tools/list, called by name anyway
      const hidden = tried('mcp_tool_hidden_called_by_name');
      await expect(ok.client.callTool({ name: 'delete_everything', arguments: {} })).rejects.toMatchObject({ code: TOOL_CALL_DENIED });
      hidden();
      const audit = decisions().find((l) => l.resource === 'Tool::delete_everything')!;
      expect(audit).toMatchObject({ spiffe_id: OK, authn: 'mtls', action: 'call_tool', decision: 'deny' });
    } finally {
      await ok.close();
    }

    const viaJwt = await mcpClient({ bearer: token.ok });
    try {
      // summarize needs mTLS: with a bearer token only search is offered
      expect((await viaJwt.client.listTools()).tools.map((t) => t.name)).toEqual(['search']);
      const notAllowed = tried('mcp_tool_not_allowed');
      await expect(viaJwt.client.callTool({ name: 'summarize', arguments: { text: 'x' } })).rejects.toMatchObject({ code: TOOL_CALL_DENIED });
      notAllowed();
    } finally {
      await viaJwt.close();
    }

    const denied = await mcpClient({ tls: cert.denied });
    try {
      expect((await denied.client.listTools()).tools).toEqual([]);
      const notAllowed = tried('mcp_tool_not_allowed');
      await expect(denied.client.callTool({ name: 'search', arguments: { query: 'x' } })).rejects.toMatchObject({ code: TOOL_CALL_DENIED });
      notAllowed();
    } finally {
      await denied.close();
    }
  });

  it('an MCP request with no identity gets 401 before any JSON-RPC', async () => {
    const refused = tried('mcp_no_identity');
    const r = await call('POST', '/mcp', { body: { jsonrpc: '2.0', id: 1, method: 'tools/list' } });
    expect(r.status).toBe(401);
    refused();
  });
});
