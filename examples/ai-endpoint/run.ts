/**
 * `npm run example:ai-endpoint`: the AI endpoint and its caller against the
 * `npm start` demo (run that first, in another terminal). It
 *   1. registers two workloads under the demo agent through the admin socket
 *      (both run as this uid, so their entries are told apart by hint:
 *      `ai-endpoint` and `ai-caller`; a real deployment gives each its own uid
 *      or container, and the same selectors that tell them apart);
 *   2. waits until the agent serves both SVIDs;
 *   3. starts a stand-in for a model provider (provider-stand-in.ts: a jwt-bearer
 *      token endpoint that checks JWT-SVIDs through the demo server's OIDC
 *      discovery, and an API that wants its access tokens) and `tessera helper`,
 *      which exchanges the endpoint's JWT-SVID for an access token and keeps it
 *      fresh in a file;
 *   4. starts the endpoint (serve.js) with policy.cedar and that token file, then
 *      the caller (caller.js); the endpoint answers /v1/chat by asking the provider;
 *   5. prints each call and its outcome, then the endpoint's audit lines for the
 *      denied calls, and checks every outcome against what the policy says.
 * Exits 0 when every outcome is the expected one.
 * Options (env): TESSERA_ADMIN_SOCKET, SPIFFE_ENDPOINT_SOCKET, TESSERA_TRUST_DOMAIN,
 * TESSERA_PARENT_ID override the demo's defaults.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { AdminClient } from '../../cli/admin-client';
import { demoPaths } from '../../scripts/demo-paths';
import { TesseraError, X509Source, type X509SVIDWithKey } from '../../sdk/index';
import { startTokenEndpoint } from './provider-stand-in';

const demo = demoPaths();
const td = demo.trustDomain;
const adminSocket = process.env.TESSERA_ADMIN_SOCKET ?? demo.adminSocket;
const agentSocket = (process.env.SPIFFE_ENDPOINT_SOCKET ?? demo.agentSocket).replace(/^unix:\/\//, '');
const parent = process.env.TESSERA_PARENT_ID ?? demo.alias;
const ENDPOINT = `spiffe://${td}/ai/endpoint`;
const CALLER = `spiffe://${td}/ai/caller`;
/** the audience the provider was told to expect (chosen when Tessera is registered there) */
const PROVIDER_AUD = 'https://api.model-provider.example';
const TESSERA_BIN = path.join(demo.root, 'bin', 'tessera.js');
const uid = process.getuid?.() ?? 0;

/** What policy.cedar allows, call by call (authn: how the caller authenticated). */
const EXPECTED: Array<{ call: string; authn: string; outcome: 'allowed' | 'denied'; tools?: string[] }> = [
  { call: 'GET /v1/models', authn: 'mtls', outcome: 'allowed' },
  { call: 'POST /v1/chat', authn: 'mtls', outcome: 'allowed' },
  { call: 'POST /v1/chat', authn: 'jwt', outcome: 'allowed' },
  { call: 'tools/list', authn: 'mtls', outcome: 'allowed', tools: ['search', 'summarize'] },
  { call: 'tools/call search', authn: 'mtls', outcome: 'allowed' },
  { call: 'tools/call summarize', authn: 'mtls', outcome: 'allowed' },
  { call: 'tools/call delete_everything', authn: 'mtls', outcome: 'denied' },
  { call: 'tools/list', authn: 'jwt', outcome: 'allowed', tools: ['search'] },
  { call: 'tools/call search', authn: 'jwt', outcome: 'allowed' },
  { call: 'tools/call summarize', authn: 'jwt', outcome: 'denied' },
  { call: 'tools/call delete_everything', authn: 'jwt', outcome: 'denied' },
];

function lines(p: ChildProcess): Array<Record<string, any>> {
  const out: Array<Record<string, any>> = [];
  readline.createInterface({ input: p.stdout! }).on('line', (l) => {
    try {
      out.push(JSON.parse(l));
    } catch {
      process.stdout.write(`${l}\n`);
    }
  });
  return out;
}

function exited(p: ChildProcess): Promise<number> {
  return new Promise((r) => (p.exitCode !== null ? r(p.exitCode) : p.once('exit', (code) => r(code ?? 1))));
}

async function register(): Promise<void> {
  const admin = new AdminClient(adminSocket);
  // The endpoint may get JWT-SVIDs only for the provider (single-use: jti), the caller only for the endpoint.
  const entries = [
    { spiffe_id: ENDPOINT, hint: 'ai-endpoint', jwt_audiences: [PROVIDER_AUD], jwt_jti: true },
    { spiffe_id: CALLER, hint: 'ai-caller', jwt_audiences: [ENDPOINT] },
  ];
  for (const { spiffe_id: id, ...fields } of entries) {
    try {
      await admin.request('POST', '/v1/entries', { entries: [{ spiffe_id: id, parent_id: parent, selectors: [`unix:uid:${uid}`], ...fields }] });
      process.stdout.write(`registered ${id} (hint ${fields.hint}, jwt audiences ${fields.jwt_audiences.join(', ')}) for unix:uid:${uid} under ${parent}\n`);
    } catch (e) {
      if (!(e instanceof TesseraError && e.code === 'ALREADY_EXISTS')) throw e;
      const found = await admin.request<{ entries: Array<{ id: string }> }>('GET', `/v1/entries?spiffe_id=${encodeURIComponent(id)}&parent_id=${encodeURIComponent(parent)}`);
      await admin.request('PATCH', '/v1/entries', { entries: found.entries.map((x) => ({ id: x.id, ...fields })) });
      process.stdout.write(`${id} is already registered\n`);
    }
  }
}

/** Resolves once the agent hands this uid an SVID for each hint (its sync is a long poll: seconds). */
async function bothServed(timeoutMs: number): Promise<void> {
  const source = new X509Source({ address: agentSocket });
  const has = () => {
    try {
      const hints = new Set(source.allSVIDs().map((s: X509SVIDWithKey) => s.hint));
      return hints.has('ai-endpoint') && hints.has('ai-caller');
    } catch {
      return false;
    }
  };
  try {
    await source.ready(timeoutMs);
    if (has()) return;
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`the agent did not serve both SVIDs within ${timeoutMs / 1000} s`)), timeoutMs);
      source.on('update', () => has() && (clearTimeout(t), resolve()));
    });
  } finally {
    source.close();
  }
}

async function main(): Promise<void> {
  await register();
  await bothServed(60_000);
  const env = { ...process.env, SPIFFE_ENDPOINT_SOCKET: `unix://${agentSocket}` };

  // The model provider, and the helper that trades the endpoint's JWT-SVID for its access token.
  if (!existsSync(demo.oidcIssuerFile)) throw new Error('the demo serves no OIDC discovery yet: restart `npm start`');
  const issuer = readFileSync(demo.oidcIssuerFile, 'utf8').trim();
  const provider = await startTokenEndpoint({ issuer, audience: PROVIDER_AUD, grant: 'jwt-bearer', requireJti: true, expiresIn: 3600 });
  const work = path.join(demo.base, 'ai-example');
  mkdirSync(work, { recursive: true, mode: 0o700 });
  const creds = path.join(work, 'creds');
  const helperConfig = path.join(work, 'helper.json');
  writeFileSync(helperConfig, JSON.stringify({
    agent_address: `unix://${agentSocket}`,
    cert_dir: creds,
    spiffe_id: ENDPOINT,
    svid_file_name: '', svid_key_file_name: '', svid_bundle_file_name: '',
    token_exchanges: [{ token_endpoint: provider.url, grant: 'jwt-bearer', jwt_audience: PROVIDER_AUD, access_token_file_name: 'provider.token' }],
  }, null, 2));
  const helper = spawn(process.execPath, [TESSERA_BIN, 'helper', '--config', helperConfig], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const helperLog = lines(helper);
  const endpoint = spawn(process.execPath, [path.join(__dirname, 'serve.js'), '--model-url', provider.apiUrl, '--model-token-file', path.join(creds, 'provider.token')], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const endpointLog = lines(endpoint);
  try {
    await new Promise<void>((resolve, reject) => {
      const t = setInterval(() => helperLog.some((l) => l.event === 'helper_files_written') && (clearInterval(t), resolve()), 50);
      void exited(helper).then((code) => (clearInterval(t), reject(new Error(`tessera helper exited (${code}) before it wrote the access token`))));
    });
    process.stdout.write(`tessera helper exchanged ${ENDPOINT}'s JWT-SVID for a model-provider access token (${path.join(creds, 'provider.token')}, 0600)\n`);
    const ready = await new Promise<Record<string, any>>((resolve, reject) => {
      const t = setInterval(() => {
        const l = endpointLog.find((x) => x.event === 'endpoint_ready');
        if (l) resolve(l);
      }, 50);
      void exited(endpoint).then((code) => (clearInterval(t), reject(new Error(`the endpoint exited (${code}) before it was ready`))));
    });
    const url = `https://127.0.0.1:${ready.port}`;
    process.stdout.write(`\nendpoint ${ready.spiffe_id} listening on ${url} (policy ${ready.policy})\n\n`);

    const caller = spawn(process.execPath, [path.join(__dirname, 'caller.js'), url, ENDPOINT], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    const results = lines(caller);
    const code = await exited(caller);
    await new Promise((r) => setImmediate(r)); // the last lines
    const calls = results.filter((r) => r.call);
    for (const r of calls) {
      const what = r.tools ? `[${r.tools.join(', ')}]` : r.status ? `${r.status}` : `${r.code ?? ''}`;
      process.stdout.write(`${r.authn.padEnd(5)} ${r.call.padEnd(30)} ${r.outcome.padEnd(8)} ${what.padEnd(6)} ${String(r.detail ?? '').slice(0, 90)}\n`);
    }
    const denied = endpointLog.filter((l) => l.event === 'authz_decision' && l.decision === 'deny');
    process.stdout.write(`\nthe endpoint's audit lines for the ${denied.length} denied decisions:\n`);
    for (const l of denied) process.stdout.write(`${JSON.stringify(l)}\n`);

    const wrong = EXPECTED.filter((e, i) => {
      const r = calls[i];
      return !r || r.call !== e.call || r.authn !== e.authn || r.outcome !== e.outcome || (e.tools && JSON.stringify(r.tools) !== JSON.stringify(e.tools));
    });
    const chats = calls.filter((r) => r.call === 'POST /v1/chat');
    const fromProvider = chats.every((r) => String(r.detail).includes('model-provider stand-in')) && provider.apiCalls.filter((s) => s === ENDPOINT).length >= chats.length;
    process.stdout.write(`\nthe model provider answered ${provider.apiCalls.length} calls from ${[...new Set(provider.apiCalls)].join(', ')}, each with an access token from tessera helper\n`);
    if (!fromProvider) wrong.push({ call: 'POST /v1/chat (through the model provider)', authn: '-', outcome: 'allowed' });
    if (code !== 0 || calls.length !== EXPECTED.length || wrong.length > 0) {
      process.stdout.write(`\nunexpected: caller exit ${code}, ${calls.length} calls; differs from policy.cedar at ${wrong.map((w) => `${w.authn} ${w.call}`).join('; ') || '-'}\n`);
      process.exitCode = 1;
    } else {
      process.stdout.write(`\nevery outcome is what policy.cedar says (${calls.length} calls); no API key anywhere: not for the endpoint, not for the model provider\n`);
    }
  } finally {
    endpoint.kill('SIGTERM');
    helper.kill('SIGTERM');
    await Promise.all([exited(endpoint), exited(helper)]);
    await provider.close();
  }
}

main().catch((e: Error) => {
  process.stderr.write(`example failed: ${e.message}\n(is \`npm start\` running? admin socket ${adminSocket}, agent socket ${agentSocket})\n`);
  process.exit(1);
});
