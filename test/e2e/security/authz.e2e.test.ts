import { execFileSync, spawn } from 'node:child_process';
import { generateKeyPair, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { ROOT, startAgentProcess, startServerProcess, stopAndRemove, type AgentProcess, type ServerProcess } from '../../helpers/processes';
import { ATTACKER_UID, agentApiRequest, agentIdentityPem, waitFor } from '../../helpers/security';
import { JWTSVIDSigner } from '../../../common/jwtsvid/sign';

/**
 * Findings 9, 10 and 13, against the real server and agent: an agent asking for
 * a longer JWT-SVID than its entry allows; ValidateJWTSVID with federated bundles
 * that belong to other callers; a stream left behind by a process that exited.
 */
jest.setTimeout(120_000);

const td = 'authz.example.org';
const alias = `spiffe://${td}/node/authz`;
let server: ServerProcess;
let agent: AgentProcess;

const entry = async (id: string, selectors: string[], extra: string[] = []) =>
  (JSON.parse(
    await server.cli(['--output', 'json', 'entry', 'create', '--spiffe-id', `spiffe://${td}${id}`, '--parent-id', alias, ...selectors.flatMap((s) => ['--selector', s]), ...extra]),
  ) as { id: string }).id;

let foreignKey: KeyObject;
beforeAll(async () => {
  server = await startServerProcess({ trustDomain: td });
  // A federated trust domain b.example whose JWT key the test holds.
  const { privateKey, publicKey } = await promisify(generateKeyPair)('ec', { namedCurve: 'P-256' });
  foreignKey = privateKey;
  const bundleFile = path.join(server.dir, 'b.json');
  writeFileSync(bundleFile, JSON.stringify({ keys: [{ ...publicKey.export({ format: 'jwk' }), use: 'jwt-svid', kid: 'b-key' }] }));
  await server.cli(['bundle', 'set', '--id', 'b.example', '--path', bundleFile]);
  await entry('/root-fed', ['unix:uid:0'], ['--federates-with', 'b.example', '--jwt-svid-ttl', '60']);
  await entry('/nobody', ['unix:uid:65534']);
  agent = await startAgentProcess(server, { alias });
});
afterAll(() => stopAndRemove(agent, server));

it("finding 9: an agent's requested JWT-SVID ttl may only shorten the entry's", async () => {
  const id = agentIdentityPem(path.join(agent.dir, 'data'));
  const ca = await server.cli(['bundle', 'show', '--format', 'pem']);
  const [e] = (JSON.parse(await server.cli(['--output', 'json', 'entry', 'show', '--spiffe-id', `spiffe://${td}/root-fed`])) as { entries: Array<{ id: string }> }).entries;
  const lifetime = async (ttl?: number) => {
    const r = await agentApiRequest(server.agentApi, { method: 'POST', path: '/agent/v1/jwt-svids', body: { entry_id: e!.id, audience: ['svc'], ttl }, ...id, ca });
    expect(r.status).toBe(200);
    const claims = JSON.parse(Buffer.from(r.json.token.split('.')[1], 'base64url').toString()) as { exp: number; iat: number };
    return claims.exp - claims.iat;
  };
  expect(await lifetime(86_400)).toBe(60); // the review got a 24-hour token for a 60-s entry
  expect(await lifetime()).toBe(60);
  expect(await lifetime(20)).toBe(20);
});

it("finding 10: ValidateJWTSVID uses only the caller's own bundles (own trust domain plus its entries' federates_with)", async () => {
  const signer = new JWTSVIDSigner({ kid: 'b-key', alg: 'ES256', sign: (d) => cryptoSign('sha256', d, { key: foreignKey, dsaEncoding: 'ieee-p1363' }), notAfter: Math.floor(Date.now() / 1000) + 3600 });
  const { token } = signer.mint({ sub: 'spiffe://b.example/svc', aud: ['me'], ttlSeconds: 300 });
  const validate = (uid?: number) => agent.cli(['validate', 'jwt', '--audience', 'me', '--svid', token], uid === undefined ? {} : { uid });
  // root's entry federates with b.example: accepted (once the agent holds the bundle)
  const ok = await waitFor('root to validate the b.example token', async () => {
    const r = await validate();
    return r.code === 0 && r;
  });
  expect(JSON.parse(ok.stdout).spiffe_id).toBe('spiffe://b.example/svc');
  // uid 65534 has an entry, but not one that federates with b.example; uid 4242 has none
  for (const uid of [65534, ATTACKER_UID]) {
    const r = await validate(uid);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/no jwt bundle for trust domain b\.example/);
  }
});

describe('finding 13: a stream outlives the process that opened it', () => {
  const client = path.join(ROOT, 'test', 'helpers', 'fork-stream-client.py');
  const python = realpathSync(execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim());

  /** Starts the Python client; with `fork` its connecting process exits after the first message and a child keeps reading. */
  async function streamClient(name: string, fork: boolean) {
    const out = path.join(agent.dir, `${name}.jsonl`);
    const p = spawn('python3', [client, agent.socket, out], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, NO_FORK: fork ? '' : '1' } });
    const lines = () => (existsSync(out) ? readFileSync(out, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { pid?: number; spiffe_ids?: string[] }) : []);
    await waitFor(`${name}: first message`, () => lines().some((l) => l.spiffe_ids));
    if (fork) await new Promise<void>((r) => (p.exitCode !== null ? r() : p.once('exit', () => r()))); // the connecting process has exited
    return {
      lines,
      ids: () => lines().flatMap((l) => l.spiffe_ids ?? []),
      stop: () => {
        for (const pid of new Set(lines().map((l) => l.pid).filter((x): x is number => !!x))) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone already
          }
        }
      },
    };
  }

  it('an entry created later for the exited process\'s path is not pushed down its stream (a live process does get it)', async () => {
    const live = await streamClient('live', false);
    const orphan = await streamClient('orphan', true);
    try {
      await entry('/python-path', ['unix:uid:0', `unix:path:${python}`]);
      await entry('/marker', ['unix:uid:0']); // reaches both: once it has arrived, the path entry would have too
      await waitFor('the marker on both streams', () => live.ids().includes(`spiffe://${td}/marker`) && orphan.ids().includes(`spiffe://${td}/marker`));
      expect(live.ids()).toContain(`spiffe://${td}/python-path`); // control: the entry does match a live python3
      expect(orphan.ids()).not.toContain(`spiffe://${td}/python-path`);
    } finally {
      live.stop();
      orphan.stop();
    }
  });
});
