import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as jose from 'jose';
import { startServerProcess, startAgentProcess, removeDir, shortTempDir, type ServerProcess, type AgentProcess } from '../helpers/processes';
import { opensslVerify } from '../helpers/agent-identity';
import { thirdPartyClient, securityHeader, firstMessage, unary } from '../helpers/third-party-client';
import { freePort } from '../helpers/free-port';
import { makeTestCA, makeTestLeaf } from '../helpers/test-pki';
import { splitConcatenatedDer, x509AuthoritiesFromPem } from '../../common/bundle/bundle';
import { validateX509SVIDChain } from '../../common/x509svid/validate';

/**
 * Three real servers: A (a.example.org) and B (b.example.org) federated both ways,
 * one relationship per profile — A fetches B's bundle from B's https_web endpoint
 * (a certificate from a test CA A trusts through `federation.web_ca_file`), B
 * fetches A's from A's https_spiffe endpoint (A's server SVID, bootstrapped with
 * A's bundle) — and C (c.example.org), federated with nobody. A workload under a
 * real agent of A validates B's SVIDs and rejects C's. A also serves OIDC discovery.
 */
jest.setTimeout(120_000);

const A = 'a.example.org';
const B = 'b.example.org';
const C = 'c.example.org';
const alias = `spiffe://${A}/node/fed`;
const uid = process.getuid!();
let pki: string;
let a: ServerProcess, b: ServerProcess, c: ServerProcess;
let agent: AgentProcess;
let issuer: string;

/** An address from a server's `server_ready` line. */
function readyField(s: ServerProcess, field: 'bundle_endpoint' | 'oidc'): string {
  const line = s.logs().split('\n').find((l) => l.includes('"server_ready"'))!;
  return (JSON.parse(line) as Record<string, string>)[field]!;
}

const json = async <T = any>(s: ServerProcess, args: string[]): Promise<T> => JSON.parse(await s.cli(['--output', 'json', ...args])) as T;

async function eventually<T>(what: string, fn: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

beforeAll(async () => {
  pki = shortTempDir('fpki-');
  const webCA = await makeTestCA(pki, 'web-ca');
  const bWeb = await makeTestLeaf(pki, 'b-web', webCA, { dns: ['localhost'], ip: ['127.0.0.1'] });
  const oidcPort = await freePort();
  issuer = `http://127.0.0.1:${oidcPort}`;
  const fast = { bundle_refresh_hint: 2, default_jwt_svid_ttl: 120 };
  [a, b, c] = await Promise.all([
    startServerProcess({
      trustDomain: A,
      config: {
        ...fast,
        federation: { bundle_endpoint: { bind: '127.0.0.1:0', profile: 'https_spiffe' }, web_ca_file: webCA.certFile, min_refresh_hint: 1 },
        oidc: { bind: `127.0.0.1:${oidcPort}`, issuer },
      },
    }),
    startServerProcess({
      trustDomain: B,
      config: { ...fast, federation: { bundle_endpoint: { bind: '127.0.0.1:0', profile: 'https_web', cert_file: bWeb.certFile, key_file: bWeb.keyFile }, min_refresh_hint: 1 } },
    }),
    startServerProcess({ trustDomain: C }),
  ]);
});

afterAll(async () => {
  await agent?.stop();
  await Promise.all([a?.stop(), b?.stop(), c?.stop()]);
  for (const d of [agent?.dir, a?.dir, b?.dir, c?.dir, pki]) if (d) removeDir(d);
});

describe('federation relationships through the CLI, one per profile', () => {
  it('A fetches B over https_web and B fetches A over https_spiffe', async () => {
    const bEndpoint = `https://${readyField(b, 'bundle_endpoint')}`;
    const aEndpoint = `https://${readyField(a, 'bundle_endpoint')}`;
    expect(readyField(a, 'oidc')).toBe(issuer.replace('http://', ''));

    const created = await a.cli(['federation', 'create', '--trust-domain', B, '--bundle-endpoint-url', bEndpoint, '--profile', 'https_web']);
    expect(created).toMatch(/Federation relationship created/);
    expect(created).toMatch(/Profile\s+: https_web/);

    const bootstrap = path.join(b.dir, 'a-bundle.json');
    writeFileSync(bootstrap, await a.cli(['bundle', 'show', '--format', 'spiffe']));
    await b.cli([
      'federation', 'create', '--trust-domain', A, '--bundle-endpoint-url', aEndpoint, '--profile', 'https_spiffe',
      '--endpoint-spiffe-id', `spiffe://${A}/tessera/server`, '--bundle-path', bootstrap,
    ]);

    // A forced fetch answers at once; B's relationship fetched on creation.
    expect(await a.cli(['federation', 'refresh', '--trust-domain', B])).toMatch(new RegExp(`Bundle of ${B} (updated|unchanged) \\(sequence \\d+\\); next refresh in 2 s`));
    const onA = await json(a, ['federation', 'show', '--trust-domain', B]);
    expect(onA).toMatchObject({ trust_domain: B, profile: 'https_web', last_error: null });
    expect(onA.bundle_sequence).toBeGreaterThan(0);
    const onB = await eventually('B to fetch A', async () => {
      const r = await json(b, ['federation', 'show', '--trust-domain', A]);
      return r.last_refresh_at && r.last_error === null ? r : undefined;
    });
    expect(onB).toMatchObject({ profile: 'https_spiffe', endpoint_spiffe_id: `spiffe://${A}/tessera/server` });
    // and keeps polling at A's refresh hint (2 s) without being asked
    await eventually('B to poll A again', async () => {
      const r = await json(b, ['federation', 'show', '--trust-domain', A]);
      return r.last_refresh_at > onB.last_refresh_at && r.last_error === null ? r : undefined;
    });

    // stored per trust domain, never merged: B's bundle on A is exactly what B publishes
    const bOnA = JSON.parse(await a.cli(['--output', 'json', 'bundle', 'list'])) as { bundles: Array<{ trust_domain: string }> };
    expect(bOnA.bundles.map((x) => x.trust_domain)).toEqual([B]);
    const published = x509AuthoritiesFromPem(await b.cli(['bundle', 'show', '--format', 'pem']));
    const held = JSON.parse((await a.cliResult(['--output', 'json', 'bundle', 'list'])).stdout).bundles[0].bundle;
    expect(held.keys.filter((k: { use: string }) => k.use === 'x509-svid').map((k: { x5c: string[] }) => Buffer.from(k.x5c[0]!, 'base64'))).toEqual(published);

    const list = await a.cli(['federation', 'list']);
    expect(list).toMatch(/Found 1 federation relationship\n/);
  });

  it('refuses bad relationships with clear messages', async () => {
    const http = await a.cliResult(['federation', 'create', '--trust-domain', C, '--bundle-endpoint-url', 'http://127.0.0.1:1', '--profile', 'https_web']);
    expect(http.code).toBe(1);
    expect(http.stderr).toMatch(/bundle_endpoint_url must use https/);
    const noBundle = await a.cliResult([
      'federation', 'create', '--trust-domain', C, '--bundle-endpoint-url', 'https://127.0.0.1:1', '--profile', 'https_spiffe',
      '--endpoint-spiffe-id', `spiffe://${C}/tessera/server`,
    ]);
    expect(noBundle.stderr).toMatch(/https_spiffe needs a bootstrap bundle of c\.example\.org/);
    expect((await a.cliResult(['federation', 'show', '--trust-domain', C])).stderr).toMatch(/no federation relationship with c\.example\.org/);
  });
});

describe('a workload of A, through the real agent', () => {
  beforeAll(async () => {
    await a.cli(['entry', 'create', '--spiffe-id', `spiffe://${A}/workload`, '--parent-id', alias, '--selector', `unix:uid:${uid}`, '--federates-with', B]);
    agent = await startAgentProcess(a, { alias });
  });

  interface X509Msg {
    svids: Array<{ spiffe_id: string; bundle: Buffer }>;
    federated_bundles: Record<string, Buffer>;
  }

  it("validates an X.509-SVID of B with B's federated bundle, and rejects one of C", async () => {
    const client = thirdPartyClient(agent.socket);
    const msg = await eventually('the federated bundle at the workload', async () => {
      const m = await firstMessage<X509Msg>(client.FetchX509SVID({}, securityHeader()));
      return m.federated_bundles[`spiffe://${B}`] ? m : undefined;
    });
    expect(Object.keys(msg.federated_bundles)).toEqual([`spiffe://${B}`]);
    const bRoots = splitConcatenatedDer(msg.federated_bundles[`spiffe://${B}`]!);
    const bundles = await firstMessage<{ bundles: Record<string, Buffer> }>(client.FetchX509Bundles({}, securityHeader()));
    expect(Object.keys(bundles.bundles).sort()).toEqual([`spiffe://${A}`, `spiffe://${B}`]);
    expect(splitConcatenatedDer(bundles.bundles[`spiffe://${B}`]!)).toEqual(bRoots);
    client.close();

    const mint = async (s: ServerProcess, td: string) => {
      const dir = path.join(s.dir, 'minted');
      await s.cli(['x509', 'mint', '--spiffe-id', `spiffe://${td}/svc`, '--write', dir]);
      return x509AuthoritiesFromPem(readFileSync(path.join(dir, 'svid.pem'), 'utf8'));
    };
    // what the workload holds, by trust domain: its own bundle and the federated ones, never merged
    const held = (td: string) => (bundles.bundles[`spiffe://${td}`] ? splitConcatenatedDer(bundles.bundles[`spiffe://${td}`]!) : undefined);
    const bChain = await mint(b, B);
    expect(validateX509SVIDChain(bChain, held).spiffeId).toBe(`spiffe://${B}/svc`);
    expect((await opensslVerify(agent.dir, bChain, bRoots, 'fed-b')).code).toBe(0);

    const cChain = await mint(c, C);
    expect(() => validateX509SVIDChain(cChain, held)).toThrow(expect.objectContaining({ reason: 'no-bundle' }));
    expect((await opensslVerify(agent.dir, cChain, bRoots, 'fed-c')).code).not.toBe(0);
  });

  it('validates a JWT-SVID of B through ValidateJWTSVID, and rejects one of C', async () => {
    const client = thirdPartyClient(agent.socket);
    const jb = await firstMessage<{ bundles: Record<string, Buffer> }>(client.FetchJWTBundles({}, securityHeader()));
    expect(Object.keys(jb.bundles).sort()).toEqual([`spiffe://${A}`, `spiffe://${B}`]);

    const bToken = (await b.cli(['jwt', 'mint', '--spiffe-id', `spiffe://${B}/svc`, '--audience', 'a-workload'])).trim();
    const ok = await unary<object, { spiffe_id: string }>(client, 'ValidateJWTSVID', { audience: 'a-workload', svid: bToken });
    expect(ok.spiffe_id).toBe(`spiffe://${B}/svc`);
    const wrongAud = await unary(client, 'ValidateJWTSVID', { audience: 'other', svid: bToken }).catch((e: grpc.ServiceError) => e);
    expect((wrongAud as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);

    const cToken = (await c.cli(['jwt', 'mint', '--spiffe-id', `spiffe://${C}/svc`, '--audience', 'a-workload'])).trim();
    const rejected = await unary(client, 'ValidateJWTSVID', { audience: 'a-workload', svid: cToken }).catch((e: grpc.ServiceError) => e);
    expect((rejected as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
    client.close();
  });
});

describe('OIDC discovery', () => {
  it("validates A's JWT-SVID with jose's createRemoteJWKSet from nothing but the discovery URL", async () => {
    const client = thirdPartyClient(agent.socket);
    const res = await unary<object, { svids: Array<{ svid: string }> }>(client, 'FetchJWTSVID', { audience: ['sts.example.com'] });
    client.close();
    const token = res.svids[0]!.svid;

    const doc = (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as { issuer: string; jwks_uri: string };
    expect(doc.issuer).toBe(issuer);
    const jwks = jose.createRemoteJWKSet(new URL(doc.jwks_uri));
    const { payload, protectedHeader } = await jose.jwtVerify(token, jwks, { issuer: doc.issuer, audience: 'sts.example.com' });
    expect(payload.sub).toBe(`spiffe://${A}/workload`);
    expect(payload.iss).toBe(issuer);
    expect(protectedHeader.kid).toBeTruthy();

    // B's token carries no issuer and is signed by keys A's discovery does not publish
    const bToken = (await b.cli(['jwt', 'mint', '--spiffe-id', `spiffe://${B}/svc`, '--audience', 'sts.example.com'])).trim();
    await expect(jose.jwtVerify(bToken, jwks, { issuer: doc.issuer, audience: 'sts.example.com' })).rejects.toThrow();

    // `tessera oidc jwks` prints the keys discovery serves, for relying parties that take an uploaded JWKS
    const served = (await (await fetch(doc.jwks_uri)).json()) as { keys: Array<{ kid: string }> };
    const printed = JSON.parse(await a.cli(['oidc', 'jwks'])) as { keys: Array<{ kid: string }> };
    expect(printed.keys.map((k) => k.kid).sort()).toEqual(served.keys.map((k) => k.kid).sort());
    const { payload: again } = await jose.jwtVerify(token, jose.createLocalJWKSet(printed as never), { issuer: doc.issuer, audience: 'sts.example.com' });
    expect(again.sub).toBe(`spiffe://${A}/workload`);
  });
});

describe('relationship lifecycle', () => {
  it('updates and deletes through the CLI, keeping the bundle', async () => {
    const bEndpoint = `https://localhost:${readyField(b, 'bundle_endpoint').split(':')[1]}`;
    const updated = await json(a, ['federation', 'update', '--trust-domain', B, '--bundle-endpoint-url', bEndpoint]);
    expect(updated.bundle_endpoint_url).toBe(`${bEndpoint}/`);
    await eventually('a fetch from the new url', async () => {
      const r = await json(a, ['federation', 'refresh', '--trust-domain', B]);
      return r.relationship.last_error === null ? r : undefined;
    });
    expect(await a.cli(['federation', 'delete', '--trust-domain', B])).toMatch(/deleted; its bundle is kept/);
    expect((await json(a, ['federation', 'list'])).federation_relationships).toEqual([]);
    expect((await json(a, ['bundle', 'list'])).bundles.map((x: { trust_domain: string }) => x.trust_domain)).toEqual([B]);
  });
});
