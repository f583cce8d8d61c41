import { createPrivateKey, createPublicKey, createHmac, sign as cryptoSign, webcrypto, type KeyObject } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { startAgentProcess, startServerProcess, stopAndRemove, run, TESSERA_BIN, type AgentProcess, type ServerProcess } from '../helpers/processes';
import { attestedAgent, clientFor, generateKeyPair, newCSR, uriSan } from '../helpers/agent-identity';
import { ATTACKER_UID } from '../helpers/security';
import { attempt } from '../helpers/figures';
import { JWTSVIDSigner } from '../../common/jwtsvid/sign';
import { CURVE_ORDER, lowSP1363 } from '../../common/x509svid/ecdsa-signature';

/**
 * Impersonation, against one real server and agent: every attempt to act as
 * someone else must be refused, and each is counted as `<category>_tried` /
 * `<category>_refused` in the adversarial figures (test/helpers/figures.ts).
 * The other categories live where their set-up lives: test/e2e/security (man in
 * the middle at bootstrap, planted directories, a tampered cache, the x509pop
 * re-encoding trick), test/e2e/sdk/authz (the express middleware and the MCP
 * guard) and test/e2e/helper (the helper's output directory, token exchanges).
 */
jest.setTimeout(120_000);

const td = 'imp.example.org';
const alias = `spiffe://${td}/node/imp`;
let server: ServerProcess;
let agent: AgentProcess;
/** The trust domain's real JWT signing key, read from the server's key directory (as root, like a harness). */
let jwtKey: { key: KeyObject; kid: string };

const entry = async (id: string, parent: string, selectors: string[], extra: string[] = []) =>
  (JSON.parse(
    await server.cli(['--output', 'json', 'entry', 'create', '--spiffe-id', `spiffe://${td}${id}`, '--parent-id', parent, ...selectors.flatMap((s) => ['--selector', s]), ...extra]),
  ) as { id: string; spiffe_id: string });

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const validate = (token: string, audience = 'svc') => agent.cli(['validate', 'jwt', '--audience', audience, '--svid', token]);
/** An attempt that was not refused the expected way: shows what came back, and counts as not refused. */
const explain = (r: { code: number; stdout: string; stderr: string }): false => {
  process.stderr.write(`not refused as expected: exit ${r.code}\n${r.stdout}\n${r.stderr}\n`);
  return false;
};
/** A refusal by ValidateJWTSVID: the CLI exits non-zero with the agent's reason. */
const refusedJWT = async (token: string, reason: RegExp, audience = 'svc') => {
  const r = await validate(token, audience);
  return r.code !== 0 && reason.test(r.stderr) ? true : explain(r);
};
const realToken = async (audience = 'svc'): Promise<string> =>
  (JSON.parse((await agent.cli(['fetch', 'jwt', '--audience', audience])).stdout) as { svids: Array<{ token: string }> }).svids[0]!.token;

beforeAll(async () => {
  server = await startServerProcess({ trustDomain: td });
  await entry('/root-svc', alias, ['unix:uid:0']);
  await entry('/nobody-svc', alias, ['unix:uid:65534']);
  agent = await startAgentProcess(server, { alias });

  const jwks = JSON.parse(await server.cli(['bundle', 'show', '--format', 'spiffe'])) as { keys: Array<{ use: string; kid: string; x: string }> };
  const active = jwks.keys.filter((k) => k.use === 'jwt-svid');
  const keysDir = path.join(server.dir, 'data', 'keys');
  for (const f of readdirSync(keysDir).filter((n) => n.endsWith('.key'))) {
    const key = createPrivateKey({ key: readFileSync(path.join(keysDir, f)), format: 'der', type: 'pkcs8' });
    const x = (key.export({ format: 'jwk' }) as { x?: string }).x;
    const match = active.find((k) => k.x === x);
    if (match) jwtKey = { key, kid: match.kid };
  }
  if (!jwtKey) throw new Error('no JWT key of the bundle found in the server key directory');
});
afterAll(() => stopAndRemove(agent, server));

/** Signs a JWT-SVID with the trust domain's real key: claims and header exactly as given. */
function signReal(claims: Record<string, unknown>, header: Record<string, unknown> = {}): string {
  const input = `${b64({ alg: 'ES256', typ: 'JWT', kid: jwtKey.kid, ...header })}.${b64(claims)}`;
  // low-S, as the server issues them: only the claim under test differs from a real token
  return `${input}.${lowSP1363(cryptoSign('sha256', Buffer.from(input), { key: jwtKey.key, dsaEncoding: 'ieee-p1363' }), 'P-256').toString('base64url')}`;
}
const now = () => Math.floor(Date.now() / 1000);

describe('workloads on the agent', () => {
  it('a workload under another uid gets only its own SVID, never the other uid\'s', async () => {
    expect(
      await attempt('workload_other_uid', async () => {
        const r = await agent.cli(['fetch', 'x509'], { uid: 65534 });
        return r.code === 0 && !r.stdout.includes(`spiffe://${td}/root-svc`) && r.stdout.includes(`spiffe://${td}/nobody-svc`);
      }),
    ).toBe(true);
  });

  it('a caller with no entry gets PermissionDenied for X.509 and JWT', async () => {
    for (const args of [['fetch', 'x509'], ['fetch', 'jwt', '--audience', 'svc']]) {
      expect(
        await attempt('caller_without_entry', async () => {
          const r = await agent.cli(args, { uid: ATTACKER_UID });
          return r.code !== 0 && /no registration entry|permission/i.test(r.stderr) ? true : explain(r);
        }),
      ).toBe(true);
    }
  });

  it('the admin socket refuses a non-admin uid', async () => {
    expect(
      await attempt('admin_socket_non_admin_uid', async () => {
        const r = await run('setpriv', [`--reuid=${ATTACKER_UID}`, `--regid=${ATTACKER_UID}`, '--clear-groups', process.execPath, TESSERA_BIN, '--admin-socket', server.adminSocket, 'entry', 'count']);
        return r.code !== 0 && /EACCES|permission denied/i.test(r.stderr) ? true : explain(r);
      }),
    ).toBe(true);
  });
});

describe('agents at the server', () => {
  it("an agent asking for another agent's entries is refused, for X.509 and JWT", async () => {
    const a = await attestedAgent(server);
    const b = await attestedAgent(server);
    const ofB = await entry('/of-b', b.svid.agentId, ['unix:uid:7']);
    expect(
      await attempt('agent_other_agents_entries', async () => {
        const { csr } = await newCSR();
        const r = await a.client.signX509SVIDs([{ entryId: ofB.id, csr }]);
        return 'error' in r.results[0]! && r.results[0].error.code === 'PERMISSION_DENIED';
      }),
    ).toBe(true);
    expect(
      await attempt('agent_other_agents_entries', () =>
        a.client.mintJWTSVID(ofB.id, ['svc']).then(
          () => false,
          (e: { code?: string }) => e.code === 'PERMISSION_DENIED',
        ),
      ),
    ).toBe(true);
    expect(
      await attempt('agent_other_agents_entries', async () => !(await a.client.entries()).entries.some((e) => e.id === ofB.id)),
    ).toBe(true);

    // A CSR naming another identity: the SVID carries the entry's ID, never the CSR's.
    const ofA = await entry('/of-a', a.svid.agentId, ['unix:uid:8']);
    expect(
      await attempt('forged_csr_identity', async () => {
        const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
        const req = await x509.Pkcs10CertificateRequestGenerator.create(
          {
            name: 'CN=tessera-server',
            keys,
            signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
            extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${td}/of-b` }, { type: 'url', value: `spiffe://${td}/tessera/server` }])],
          },
          webcrypto as never,
        );
        const csr = Buffer.from(req.rawData);
        const r = await a.client.signX509SVIDs([{ entryId: ofA.id, csr }]);
        const res = r.results[0]!;
        if ('error' in res) return true;
        return JSON.stringify(uriSan(Buffer.from(res.x509_svid[0]!, 'base64'))) === JSON.stringify([ofA.spiffe_id]);
      }),
    ).toBe(true);

    // Banned, then evicted: each refused at its next call.
    await server.cli(['agent', 'ban', '--spiffe-id', a.svid.agentId]);
    expect(await attempt('banned_agent', () => a.client.entries().then(() => false, (e: { code?: string }) => e.code === 'PERMISSION_DENIED'))).toBe(true);
    await server.cli(['agent', 'evict', '--spiffe-id', b.svid.agentId]);
    expect(await attempt('evicted_agent', () => b.client.entries().then(() => false, (e: { code?: string }) => e.code === 'PERMISSION_DENIED'))).toBe(true);
    a.client.close();
    b.client.close();
  });

  it('join tokens: replayed, expired and never issued are refused', async () => {
    const attestWith = async (token: string) => {
      const c = await clientFor(server);
      const { csr } = await newCSR();
      try {
        await c.attestJoinToken(token, csr);
        return false;
      } catch (e) {
        return (e as { code?: string }).code === 'PERMISSION_DENIED';
      } finally {
        c.close();
      }
    };
    const used = await attestedAgent(server);
    used.client.close();
    expect(await attempt('join_token_replayed', () => attestWith(used.token))).toBe(true);
    const short = /^Token: (\S+)$/m.exec(await server.cli(['token', 'generate', '--ttl', '1']))![1]!;
    // The token's own 1-s life (whole seconds at the server) plus a margin: a wait for time itself, not for an event.
    await new Promise((r) => setTimeout(r, 2100));
    expect(await attempt('join_token_expired', () => attestWith(short))).toBe(true);
    expect(await attempt('join_token_never_issued', () => attestWith('x'.repeat(43)))).toBe(true);
  });
});

describe('JWT-SVIDs at ValidateJWTSVID', () => {
  it('a real token for this audience validates (the baseline the attacks are measured against)', async () => {
    expect((await validate(await realToken())).code).toBe(0);
    expect((await validate(signReal({ sub: `spiffe://${td}/root-svc`, aud: ['svc'], exp: now() + 300 }))).code).toBe(0);
  });

  it('forged and altered tokens are refused', async () => {
    const claims = { sub: `spiffe://${td}/root-svc`, aud: ['svc'], exp: now() + 300 };
    // HS256 keyed with the public key, as the classic key-confusion attack does.
    const spkiPem = createPublicKey(jwtKey.key).export({ format: 'pem', type: 'spki' }) as string;

    const none = `${b64({ alg: 'none', typ: 'JWT', kid: jwtKey.kid })}.${b64(claims)}.`;
    expect(await attempt('jwt_alg_none', () => refusedJWT(none, /alg|algorithm|signature|malformed/i))).toBe(true);

    const hsInput = `${b64({ alg: 'HS256', typ: 'JWT', kid: jwtKey.kid })}.${b64(claims)}`;
    const hs = `${hsInput}.${createHmac('sha256', spkiPem).update(hsInput).digest('base64url')}`;
    expect(await attempt('jwt_hs256_public_key', () => refusedJWT(hs, /alg|algorithm/i))).toBe(true);

    // kid undefined: JSON.stringify leaves it out of the header
    expect(await attempt('jwt_no_kid', () => refusedJWT(signReal(claims, { kid: undefined }), /kid/i))).toBe(true);

    expect(await attempt('jwt_unknown_kid', () => refusedJWT(signReal(claims, { kid: 'not-a-key-of-this-domain' }), /kid|key/i))).toBe(true);

    const { privateKey: foreign } = await generateKeyPair();
    const signer = new JWTSVIDSigner({ kid: 'f-key', alg: 'ES256', sign: (d) => cryptoSign('sha256', d, { key: foreign, dsaEncoding: 'ieee-p1363' }), notAfter: now() + 3600 });
    const foreignToken = signer.mint({ sub: 'spiffe://not-federated.example/svc', aud: ['svc'], ttlSeconds: 300 }).token;
    expect(await attempt('jwt_foreign_trust_domain', () => refusedJWT(foreignToken, /no jwt bundle for trust domain not-federated\.example/))).toBe(true);

    // Expired beyond the one-minute leeway, signed with the real key.
    expect(await attempt('jwt_expired', () => refusedJWT(signReal({ ...claims, exp: now() - 120 }), /expired/i))).toBe(true);

    expect(await attempt('jwt_wrong_audience', async () => refusedJWT(await realToken('other-aud'), /audience/i))).toBe(true);

    // The same signature bytes in a non-canonical encoding: the last character's unused bits set.
    const real = await realToken();
    const [h, p, s] = real.split('.') as [string, string, string];
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = alphabet.indexOf(s.at(-1)!);
    const twinSig = s.slice(0, -1) + alphabet[last | 0b11]!; // 64 bytes: the last character carries 4 data bits and 2 unused ones
    expect(Buffer.from(twinSig, 'base64url').equals(Buffer.from(s, 'base64url'))).toBe(true);
    expect(twinSig).not.toBe(s);
    expect(await attempt('jwt_non_canonical_base64url', () => refusedJWT(`${h}.${p}.${twinSig}`, /canonical/i))).toBe(true);
    expect(await attempt('jwt_non_canonical_base64url', () => refusedJWT(`${h}.${p}.${s}==`, /canonical|base64url/i))).toBe(true);

    const sig = Buffer.from(s, 'base64url');
    const highS = CURVE_ORDER['P-256']! - BigInt('0x' + sig.subarray(32).toString('hex'));
    const twin = Buffer.concat([sig.subarray(0, 32), Buffer.from(highS.toString(16).padStart(64, '0'), 'hex')]).toString('base64url');
    expect(await attempt('jwt_high_s', () => refusedJWT(`${h}.${p}.${twin}`, /low-s/i))).toBe(true);
  });
});

