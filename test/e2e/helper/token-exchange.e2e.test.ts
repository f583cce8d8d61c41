import path from 'node:path';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import readline from 'node:readline';
import { TESSERA_BIN, removeDir, shortTempDir, startAgentProcess, startServerProcess, stopAndRemove, type AgentProcess, type ServerProcess } from '../../helpers/processes';
import { freePort } from '../../helpers/free-port';
import { waitFor } from '../../helpers/security';
import { startTokenEndpoint, type TokenEndpoint } from '../../../examples/ai-endpoint/provider-stand-in';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { JWTSource, TokenSource } from '../../../sdk/index';
import { TesseraError } from '../../../common/errors';
import { attempt } from '../../helpers/figures';

/**
 * Keyless access to model providers (workload identity federation) end to end:
 * the real server serves OIDC discovery, the real agent hands out JWT-SVIDs, and
 * two stand-ins for the providers' token endpoints (examples/ai-endpoint/provider-stand-in.ts,
 * built as OpenAI's RFC 8693 exchange and Anthropic's RFC 7523 jwt-bearer grant
 * are documented; the real ones cannot be reached from here) validate them through
 * discovery and answer access tokens. The SDK's TokenSource and the helper's
 * access-token files both use them; a JWT key rotation fails no exchange.
 */
jest.setTimeout(180_000);

const td = 'wif.example.org';
const alias = `spiffe://${td}/node/wif`;
const WEB = `spiffe://${td}/inference`;
const OPENAI_AUD = 'https://api.openai.com/v1';
const ANTHROPIC_AUD = 'https://api.anthropic.com';
let server: ServerProcess;
let agent: AgentProcess;
let issuer: string;
let openai: TokenEndpoint;
let anthropic: TokenEndpoint;
let work: string;

beforeAll(async () => {
  const oidcPort = await freePort();
  issuer = `http://127.0.0.1:${oidcPort}`;
  server = await startServerProcess({ trustDomain: td, config: { oidc: { bind: `127.0.0.1:${oidcPort}`, issuer } } });
  await server.cli(['entry', 'create', '--spiffe-id', WEB, '--parent-id', alias, '--selector', 'unix:uid:0', '--jwt-svid-ttl', '10', '--jwt-jti',
    '--jwt-audience', OPENAI_AUD, '--jwt-audience', ANTHROPIC_AUD, '--jwt-audience', 'https://registered-elsewhere.example']);
  agent = await startAgentProcess(server, { alias });
  // relying parties whose key caches are short, so that a rotation in this test is seen as hours would be
  const cache = { cooldownMs: 1000, maxAgeMs: 2000 };
  openai = await startTokenEndpoint({ issuer, audience: OPENAI_AUD, grant: 'token-exchange', requiredParams: { identity_provider_id: 'idp-tessera', service_account_id: 'sa-inference' }, expiresIn: 4, ...cache });
  anthropic = await startTokenEndpoint({ issuer, audience: ANTHROPIC_AUD, grant: 'jwt-bearer', requireJti: true, expiresIn: 4, ...cache });
  work = shortTempDir('wif-');
});
afterAll(async () => {
  await openai?.close();
  await anthropic?.close();
  await stopAndRemove(agent, server);
  removeDir(work);
});

it('the SDK TokenSource exchanges a JWT-SVID for an access token with both grants; a wrong audience or a missing parameter is refused by the provider', async () => {
  const jwt = new JWTSource({ address: agent.socket });
  try {
    await jwt.ready(20_000);
    const o = new TokenSource({ jwt, tokenEndpoint: openai.url, grant: 'token-exchange', audience: OPENAI_AUD, params: { identity_provider_id: 'idp-tessera', service_account_id: 'sa-inference' } });
    const a = new TokenSource({ jwt, tokenEndpoint: anthropic.url, grant: 'jwt-bearer', audience: ANTHROPIC_AUD });
    const [to, ta] = [await o.token(), await a.token()];
    expect(to).toBe(openai.issued.at(-1)!.accessToken);
    expect(ta).toBe(anthropic.issued.at(-1)!.accessToken);
    expect(openai.issued.at(-1)!.sub).toBe(WEB);
    expect(await o.token()).toBe(to); // held until it expires

    const wrongAud = new TokenSource({ jwt, tokenEndpoint: openai.url, grant: 'token-exchange', audience: 'https://registered-elsewhere.example', params: { identity_provider_id: 'idp-tessera', service_account_id: 'sa-inference' } });
    await expect(wrongAud.token()).rejects.toMatchObject({ code: 'PERMISSION_DENIED', message: expect.stringMatching(/400 invalid_grant.*aud/) });
    const noParams = new TokenSource({ jwt, tokenEndpoint: openai.url, grant: 'token-exchange', audience: OPENAI_AUD });
    await expect(noParams.token()).rejects.toMatchObject({ code: 'PERMISSION_DENIED', message: expect.stringMatching(/identity_provider_id/) });
    // an audience the entry does not allow never leaves the agent
    const notAllowed = new TokenSource({ jwt, tokenEndpoint: anthropic.url, grant: 'jwt-bearer', audience: 'https://api.example.net' });
    await expect(notAllowed.token()).rejects.toMatchObject({ code: 'PERMISSION_DENIED', message: expect.stringMatching(/jwt_audiences/) });
  } finally {
    jwt.close();
  }
});

it('JWT-SVIDs of a jwt_jti entry are single-use: each fetch is a new token with its own jti, and a replay is refused', async () => {
  const fetchToken = async () => (JSON.parse((await agent.cli(['fetch', 'jwt', '--audience', ANTHROPIC_AUD])).stdout) as { svids: Array<{ token: string }> }).svids[0]!.token;
  const [a, b] = [await fetchToken(), await fetchToken()];
  const jti = (t: string) => (JSON.parse(Buffer.from(t.split('.')[1]!, 'base64url').toString()) as { jti?: string }).jti;
  expect(a).not.toBe(b);
  expect(jti(a)).toMatch(/^[A-Za-z0-9_-]{22}$/);
  expect(jti(a)).not.toBe(jti(b));
  const post = (t: string) =>
    fetch(anthropic.url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: t }).toString() });
  expect((await post(a)).status).toBe(200);
  const replay = await post(a);
  expect(replay.status).toBe(400);
  expect(((await replay.json()) as { error_description: string }).error_description).toBe('jti already used');
  expect((await post(b)).status).toBe(200);
});

it('the helper keeps an access-token file per provider, replaced before each token expires', async () => {
  const out = path.join(work, 'tokens');
  const config = path.join(work, 'helper.json');
  writeFileSync(config, JSON.stringify({
    agent_address: `unix://${agent.socket}`,
    cert_dir: out,
    svid_file_name: '', svid_key_file_name: '', svid_bundle_file_name: '',
    token_exchanges: [
      { token_endpoint: openai.url, grant: 'token-exchange', jwt_audience: OPENAI_AUD, params: { identity_provider_id: 'idp-tessera', service_account_id: 'sa-inference' }, access_token_file_name: 'openai.token' },
      { token_endpoint: anthropic.url, grant: 'jwt-bearer', jwt_audience: ANTHROPIC_AUD, access_token_file_name: 'anthropic.token' },
    ],
  }));
  const h = spawn(process.execPath, [TESSERA_BIN, 'helper', '--config', config], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: Array<Record<string, any>> = [];
  readline.createInterface({ input: h.stdout! }).on('line', (l) => lines.push(JSON.parse(l)));
  const seen = { 'openai.token': new Map<string, number>(), 'anthropic.token': new Map<string, number>() };
  const look = () => {
    for (const f of Object.keys(seen) as Array<keyof typeof seen>) {
      try {
        const t = readFileSync(path.join(out, f), 'utf8');
        if (!seen[f].has(t)) seen[f].set(t, Date.now());
      } catch {
        // not written yet
      }
    }
    return seen['openai.token'].size >= 3 && seen['anthropic.token'].size >= 3;
  };
  try {
    await waitFor('three access tokens from each provider in the files', look, 60_000, 50);
    for (const [file, ep] of [['openai.token', openai], ['anthropic.token', anthropic]] as const) {
      const tokens = [...seen[file].keys()];
      for (let i = 1; i < tokens.length; i++) {
        const prev = ep.issued.find((x) => x.accessToken === tokens[i - 1])!;
        const margin = prev.expiresAt - seen[file].get(tokens[i]!)!;
        expect(margin).toBeGreaterThan(0); // the file held a valid token throughout
        process.stdout.write(`token refresh margin (${file}): ${margin} ms before expiry of a ${(prev.expiresAt - prev.at) / 1000}-s token\n`);
      }
    }
    expect(lines.filter((l) => l.event === 'helper_token_exchange_failed')).toEqual([]);
    const logText = JSON.stringify(lines);
    for (const t of [...seen['openai.token'].keys(), ...seen['anthropic.token'].keys()]) expect(logText).not.toContain(t);
  } finally {
    const gone = new Promise((r) => h.once('exit', r));
    h.kill('SIGTERM');
    await gone;
  }
});

it('a JWT key rotation (prepare, then activate) fails no exchange, and exchanges go on with the new key', async () => {
  const jwt = new JWTSource({ address: agent.socket });
  await jwt.ready(20_000);
  const kidsBefore = new Set(anthropic.issued.map((i) => i.kid));
  const failures: string[] = [];
  let n = 0;
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      // a new TokenSource each time: every iteration is a real exchange
      const ts = new TokenSource({ jwt, tokenEndpoint: anthropic.url, grant: 'jwt-bearer', audience: ANTHROPIC_AUD });
      await ts.token().then(() => n++, (e: Error) => failures.push(e.message));
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  try {
    await server.cli(['authority', 'jwt', 'prepare']);
    // the prepare → activate window is a third of the key's life (hours); here a few relying-party cache lifetimes
    await new Promise((r) => setTimeout(r, 5000));
    await server.cli(['authority', 'jwt', 'activate']);
    await waitFor('exchanges with a JWT-SVID signed by the new key', () => anthropic.issued.some((i) => !kidsBefore.has(i.kid)), 40_000, 200);
  } finally {
    stop = true;
    await loop;
    jwt.close();
  }
  expect(failures).toEqual([]);
  expect(n).toBeGreaterThan(10);
});

it('a hostile token endpoint: slow, garbage, or a token for someone else is refused with a typed error and never used', async () => {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const jwtFor = (sub: string) => `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64({ sub, aud: 'x', exp: 9_999_999_999 })}.c2ln`;
  const hostile = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const form = new URLSearchParams(body);
      const json = (o: object) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(o));
      switch (req.url) {
        case '/slow':
          return; // never answers
        case '/garbage':
          return void res.writeHead(200, { 'content-type': 'application/json' }).end('\u0000{"access_token": [1, 2');
        case '/garbage-fields':
          return json({ access_token: 42, expires_in: 'soon' });
        case '/someone-else':
          return json({ access_token: jwtFor(`spiffe://${td}/someone-else`), expires_in: 300, token_type: 'Bearer', issued_token_type: 'urn:ietf:params:oauth:token-type:access_token' });
        case '/echo':
          return json({ access_token: form.get('subject_token'), expires_in: 300, token_type: 'Bearer' });
        case '/mac':
          return json({ access_token: 'opaque', expires_in: 300, token_type: 'mac' });
        case '/id-token':
          return json({ access_token: 'opaque', expires_in: 300, token_type: 'Bearer', issued_token_type: 'urn:ietf:params:oauth:token-type:id_token' });
        default:
          return json({ access_token: 'good-opaque-token', expires_in: 300, token_type: 'Bearer' });
      }
    });
  });
  await new Promise<void>((r) => hostile.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(hostile.address() as AddressInfo).port}`;
  const jwt = new JWTSource({ address: agent.socket });
  try {
    await jwt.ready(20_000);
    const source = (p: string) => new TokenSource({ jwt, tokenEndpoint: base + p, grant: 'token-exchange', audience: OPENAI_AUD, timeoutMs: 1000 });
    // control: a well-formed answer is used
    expect(await source('/good').token()).toBe('good-opaque-token');
    const refusedBy = (p: string, reason: RegExp) => async () => {
      const s = source(p);
      const e = await s.token().then(() => undefined, (err: unknown) => err);
      return e instanceof TesseraError && reason.test(e.message) && s.held() === undefined && !e.message.includes('eyJ');
    };
    expect(await attempt('token_exchange_slow', refusedBy('/slow', /unreachable: .*(aborted|timeout)/i))).toBe(true);
    expect(await attempt('token_exchange_garbage', refusedBy('/garbage', /without a usable access_token/))).toBe(true);
    expect(await attempt('token_exchange_garbage', refusedBy('/garbage-fields', /without a usable access_token/))).toBe(true);
    expect(await attempt('token_exchange_token_for_someone_else', refusedBy('/someone-else', /a token for spiffe:\/\/wif\.example\.org\/someone-else/))).toBe(true);
    expect(await attempt('token_exchange_token_for_someone_else', refusedBy('/echo', /with the JWT-SVID it was sent/))).toBe(true);
    expect(await attempt('token_exchange_token_for_someone_else', refusedBy('/id-token', /not an access token/))).toBe(true);
    expect(await attempt('token_exchange_garbage', refusedBy('/mac', /a mac token, not a Bearer token/))).toBe(true);
  } finally {
    jwt.close();
    hostile.closeAllConnections();
    hostile.close();
  }
});
