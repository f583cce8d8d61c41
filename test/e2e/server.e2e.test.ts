import { readFileSync, statSync, existsSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import * as jose from 'jose';
import { startServerProcess, removeDir, type ServerProcess } from '../helpers/processes';
import { attestedAgent, clientFor, newCSR, opensslVerify, uriSan } from '../helpers/agent-identity';
import { decodeBundle, jwtBundleJwks, x509AuthoritiesFromPem } from '../../common/bundle/bundle';
import { AdminClient } from '../../cli/admin-client';
import { TesseraError } from '../../common/errors';
import type { EntryJSON } from '../../agent/client/server-client';

/**
 * End to end against the real `tessera server run` process: CLI → admin socket,
 * agent API over mTLS, a real SQLite file in a temp dir.
 */
jest.setTimeout(60_000);

let server: ServerProcess;
let td: string;
const secrets: string[] = [];

function httpGet(hostPort: string, p: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    http.get(`http://${hostPort}${p}`, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    }).on('error', reject);
  });
}

async function createEntry(spiffeId: string, parentId: string, selectors: string[], extra: string[] = []): Promise<EntryJSON> {
  const args = ['--output', 'json', 'entry', 'create', '--spiffe-id', spiffeId, '--parent-id', parentId];
  for (const s of selectors) args.push('--selector', s);
  return JSON.parse(await server.cli([...args, ...extra])) as EntryJSON;
}

beforeAll(async () => {
  server = await startServerProcess({ trustDomain: 'e2e.example.org' });
  td = server.trustDomain;
});

afterAll(async () => {
  await server?.stop();
  removeDir(server?.dir);
});

describe('join token attestation over mTLS', () => {
  it('attests with a CLI token, gets a verifiable agent SVID, and refuses a replayed token', async () => {
    const a = await attestedAgent(server);
    secrets.push(a.token);
    expect(a.svid.agentId).toMatch(new RegExp(`^spiffe://${td.replace(/\./g, '\\.')}/tessera/agent/join_token/[A-Za-z0-9]+$`));
    expect(uriSan(a.svid.chain[0]!)).toEqual([a.svid.agentId]);
    expect(a.svid.agentId).not.toContain(a.token);
    const v = await opensslVerify(server.dir, a.svid.chain, a.svid.bundle.x509Authorities, 'agent');
    expect(v.out).toContain('OK');
    expect(v.code).toBe(0);

    const replay = await clientFor(server);
    const { csr } = await newCSR();
    await expect(replay.attestJoinToken(a.token, csr)).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    replay.close();
    a.client.close();
  });

  it('a malformed CSR is refused with 400 and does not burn the token', async () => {
    const out = await server.cli(['token', 'generate']);
    const token = /^Token: (\S+)$/m.exec(out)![1]!;
    secrets.push(token);
    const c = await clientFor(server);
    await expect(c.attestJoinToken(token, Buffer.from('not a csr'))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/csr/) });
    const { csr } = await newCSR();
    const svid = await c.attestJoinToken(token, csr);
    expect(svid.agentId).toContain('/tessera/agent/join_token/');
    c.close();
  });

  it('malformed JSON to the agent API is a 400 with a message', async () => {
    const c = await clientFor(server);
    // An unknown attestation type and a bad body shape both name the problem.
    await expect(
      (c as unknown as { call: (m: string, p: string, b: unknown) => Promise<unknown> }).call('POST', '/agent/v1/attest', { type: 'tpm', payload: {}, csr: 'AAAA' }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    c.close();
  });
});

describe('entries, signing and JWTs for an attested agent', () => {
  let agentA: Awaited<ReturnType<typeof attestedAgent>>;
  let agentB: Awaited<ReturnType<typeof attestedAgent>>;
  let web: EntryJSON;
  let db: EntryJSON;
  let other: EntryJSON;

  beforeAll(async () => {
    agentA = await attestedAgent(server);
    agentB = await attestedAgent(server);
    web = await createEntry(`spiffe://${td}/web`, agentA.svid.agentId, ['unix:uid:1000'], ['--dns', 'web.internal', '--x509-svid-ttl', '600']);
    db = await createEntry(`spiffe://${td}/db`, agentA.svid.agentId, ['unix:uid:1001']);
    other = await createEntry(`spiffe://${td}/other`, agentB.svid.agentId, ['unix:uid:1000']);
  });
  afterAll(() => {
    agentA.client.close();
    agentB.client.close();
  });

  it('lists only the entries the agent is authorized for, and only changes with since', async () => {
    const all = await agentA.client.entries();
    expect(all.full).toBe(true);
    expect(all.entries.map((e) => e.id).sort()).toEqual([web.id, db.id].sort());
    const none = await agentA.client.entries({ since: all.revision });
    expect(none).toMatchObject({ full: false, entries: [], removed: [] });

    const cache = await createEntry(`spiffe://${td}/cache`, agentA.svid.agentId, ['unix:uid:1002']);
    const delta = await agentA.client.entries({ since: all.revision });
    expect(delta.full).toBe(false);
    expect(delta.entries.map((e) => e.id)).toEqual([cache.id]);

    await server.cli(['entry', 'delete', '--entry-id', cache.id]);
    const del = await agentA.client.entries({ since: delta.revision });
    expect(del.removed).toEqual([cache.id]);
    expect(del.entries).toEqual([]);
  });

  it('a long poll returns as soon as an entry is created', async () => {
    const { revision } = await agentA.client.entries();
    const started = Date.now();
    const poll = agentA.client.entries({ since: revision, waitSeconds: 20 });
    await new Promise((r) => setTimeout(r, 300));
    const e = await createEntry(`spiffe://${td}/late`, agentA.svid.agentId, ['unix:uid:1003']);
    const got = await poll;
    expect(got.entries.map((x) => x.id)).toEqual([e.id]);
    expect(Date.now() - started).toBeLessThan(10_000);
    await server.cli(['entry', 'delete', '--entry-id', e.id]);
  });

  it('batch-signs X.509-SVIDs whose identity comes from the entry, not the CSR', async () => {
    const reqs = await Promise.all([web, db, web].map(async (e) => ({ entryId: e.id, ...(await newCSR()) })));
    const { results } = await agentA.client.signX509SVIDs(reqs);
    expect(results).toHaveLength(3);
    for (const [i, r] of results.entries()) {
      if ('error' in r) throw new Error(r.error.message);
      const chain = r.x509_svid.map((c) => Buffer.from(c, 'base64'));
      expect(uriSan(chain[0]!)).toEqual([reqs[i]!.entryId === web.id ? web.spiffe_id : db.spiffe_id]);
      const leaf = new X509Certificate(chain[0]!);
      expect(leaf.checkPrivateKey(reqs[i]!.privateKey)).toBe(true);
      const v = await opensslVerify(server.dir, chain, agentA.svid.bundle.x509Authorities, `b${i}`);
      expect(v.code).toBe(0);
    }
    const webLeaf = new X509Certificate(Buffer.from((results[0] as { x509_svid: string[] }).x509_svid[0]!, 'base64'));
    expect(webLeaf.subjectAltName).toContain('DNS:web.internal');
    const life = (Date.parse(webLeaf.validTo) - Date.parse(webLeaf.validFrom)) / 1000;
    expect(life).toBe(610); // 600 s TTL + 10 s backdating
  });

  it('refuses an entry of another agent with 403 and writes an audit event', async () => {
    const { csr } = await newCSR();
    await expect(agentA.client.signX509SVIDs([{ entryId: other.id, csr }])).resolves.toMatchObject({
      results: [{ entry_id: other.id, error: { code: 'PERMISSION_DENIED' } }],
    });
    await expect(agentA.client.mintJWTSVID(other.id, ['svc'])).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    await new Promise((r) => setTimeout(r, 200));
    const audit = server
      .logs()
      .split('\n')
      .filter((l) => l.includes('"svid_denied"') && l.includes(other.id));
    expect(audit.length).toBeGreaterThanOrEqual(2);
    expect(JSON.parse(audit[0]!)).toMatchObject({ audit: true, agent_id: agentA.svid.agentId });
  });

  it('a malformed CSR in a batch is a 400 naming the item, and nothing is signed', async () => {
    const r = await agentA.client.signX509SVIDs([{ entryId: web.id, csr: Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00]) }]);
    expect(r.results[0]).toMatchObject({ error: { code: 'INVALID_ARGUMENT', message: expect.stringMatching(/csr/i) } });
  });

  it('mints JWT-SVIDs that jose verifies against the bundle JWKS', async () => {
    const r = await agentA.client.mintJWTSVID(web.id, ['https://api.example']);
    secrets.push(r.token);
    const { bundle } = await agentA.client.bundle();
    const jwks = jose.createLocalJWKSet(JSON.parse(jwtBundleJwks(bundle)));
    const { payload, protectedHeader } = await jose.jwtVerify(r.token, jwks, { audience: 'https://api.example' });
    expect(payload.sub).toBe(web.spiffe_id);
    expect(payload.aud).toEqual(['https://api.example']);
    expect(Object.keys(protectedHeader).sort()).toEqual(['alg', 'kid', 'typ']);
    expect(protectedHeader).toMatchObject({ alg: 'ES256', typ: 'JWT' });
    await expect(jose.jwtVerify(r.token, jwks, { audience: 'other' })).rejects.toThrow();
  });

  it('renews the agent SVID and keeps working with the new one', async () => {
    const { csr, privateKey } = await newCSR();
    const renewed = await agentA.client.renew(csr);
    expect(renewed.agentId).toBe(agentA.svid.agentId);
    agentA.client.setIdentity(renewed.chain, privateKey);
    const r = await agentA.client.entries();
    expect(r.entries.length).toBeGreaterThan(0);
  });

  it('a banned agent is refused, and an evicted agent is refused', async () => {
    const c = await attestedAgent(server);
    type Overview = { agents: { total: number; banned: number; earliest_svid_expiry: { agent_id: string; expires_at: number } | null } };
    const admin = new AdminClient(server.adminSocket);
    const before = (await admin.request<Overview>('GET', '/v1/overview')).agents;
    await server.cli(['agent', 'ban', '--spiffe-id', c.svid.agentId]);
    // The overview's counts (SQL aggregates in the store) agree with the agent list.
    const after = (await admin.request<Overview>('GET', '/v1/overview')).agents;
    expect(after).toMatchObject({ total: before.total, banned: before.banned + 1 });
    const all = JSON.parse(await server.cli(['--output', 'json', 'agent', 'list'])) as { agents: Array<{ spiffe_id: string; banned: boolean; expires_at: number }> };
    expect(after.total).toBe(all.agents.length);
    const unbanned = all.agents.filter((a) => !a.banned).sort((x, y) => x.expires_at - y.expires_at || (x.spiffe_id < y.spiffe_id ? -1 : 1));
    expect(after.earliest_svid_expiry).toEqual({ agent_id: unbanned[0]!.spiffe_id, expires_at: unbanned[0]!.expires_at });
    expect(after.earliest_svid_expiry!.agent_id).not.toBe(c.svid.agentId);
    await expect(c.client.entries()).rejects.toMatchObject({ code: 'PERMISSION_DENIED', message: expect.stringMatching(/banned/) });
    const listed = JSON.parse(await server.cli(['--output', 'json', 'agent', 'show', '--spiffe-id', c.svid.agentId]));
    expect(listed.banned).toBe(true);
    c.client.close();

    const d = await attestedAgent(server);
    await server.cli(['agent', 'evict', '--spiffe-id', d.svid.agentId]);
    await expect(d.client.entries()).rejects.toMatchObject({ code: 'PERMISSION_DENIED', message: expect.stringMatching(/not attested/) });
    d.client.close();
  });

  it('a node alias from `token generate --spiffe-id` authorizes entries parented to the alias', async () => {
    const alias = `spiffe://${td}/node/rack-7`;
    const n = await attestedAgent(server, ['--spiffe-id', alias]);
    const e = await createEntry(`spiffe://${td}/rack-service`, alias, ['unix:uid:2000']);
    const r = await n.client.entries();
    expect(r.entries.map((x) => x.spiffe_id)).toContain(e.spiffe_id);
    const { csr } = await newCSR();
    const s = await n.client.signX509SVIDs([{ entryId: e.id, csr }]);
    expect(s.results[0]).toHaveProperty('x509_svid');
    n.client.close();
  });
});

describe('admin API and CLI', () => {
  it('refuses bad SPIFFE IDs, reserved paths and bad selectors with 400, storing nothing', async () => {
    const before = JSON.parse(await server.cli(['--output', 'json', 'entry', 'count'])).count;
    const cases: Array<[string[], RegExp]> = [
      [['--spiffe-id', `spiffe://${td}/x/`, '--parent-id', `spiffe://${td}/a`, '--selector', 'unix:uid:1'], /trailing/i],
      [['--spiffe-id', `spiffe://${td}/tessera/agent/x`, '--parent-id', `spiffe://${td}/a`, '--selector', 'unix:uid:1'], /reserved/],
      [['--spiffe-id', `spiffe://other.org/x`, '--parent-id', `spiffe://${td}/a`, '--selector', 'unix:uid:1'], /trust domain/],
      [['--spiffe-id', `spiffe://${td}/x`, '--parent-id', `spiffe://${td}/a`, '--selector', 'nocolon'], /selector/],
    ];
    for (const [args, msg] of cases) {
      const r = await server.cliResult(['entry', 'create', ...args]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(msg);
    }
    const admin = new AdminClient(server.adminSocket);
    const raw = await admin.raw('POST', '/v1/entries', undefined);
    expect(raw.status).toBe(400);
    const bad = await new Promise<{ status: number; text: string }>((resolve) => {
      const req = http.request({ socketPath: server.adminSocket, method: 'POST', path: '/v1/entries', headers: { 'content-type': 'application/json' } }, (res) => {
        let t = '';
        res.on('data', (c) => (t += c));
        res.on('end', () => resolve({ status: res.statusCode!, text: t }));
      });
      req.end('{"entries": [');
    });
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.text)).toMatchObject({ error: { code: 'INVALID_ARGUMENT', message: expect.stringMatching(/JSON/) } });
    await expect(
      admin.request('POST', '/v1/entries', {
        entries: [
          { spiffe_id: `spiffe://${td}/ok`, parent_id: `spiffe://${td}/p`, selectors: ['a:b'] },
          { spiffe_id: `spiffe://${td}/bad`, parent_id: `spiffe://${td}/p`, selectors: ['a:b'], x509_svid_ttl: -1 },
        ],
      }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/entries\.1\.x509_svid_ttl/) });
    expect(JSON.parse(await server.cli(['--output', 'json', 'entry', 'count'])).count).toBe(before);
  });

  it('lists entries with selector match modes and paging', async () => {
    const parent = `spiffe://${td}/match-parent`;
    await createEntry(`spiffe://${td}/m1`, parent, ['k8s:ns:a']);
    await createEntry(`spiffe://${td}/m2`, parent, ['k8s:ns:a', 'k8s:sa:b']);
    const admin = new AdminClient(server.adminSocket);
    const q = async (match: string, sels: string[]) => {
      const p = new URLSearchParams({ parent_id: parent, match });
      sels.forEach((s) => p.append('selector', s));
      const r = await admin.request<{ entries: EntryJSON[] }>('GET', `/v1/entries?${p}`);
      return r.entries.map((e) => e.spiffe_id.split('/').pop()).sort();
    };
    expect(await q('exact', ['k8s:ns:a'])).toEqual(['m1']);
    expect(await q('subset', ['k8s:ns:a', 'k8s:sa:b'])).toEqual(['m1', 'm2']);
    expect(await q('superset', ['k8s:sa:b'])).toEqual(['m2']);
    expect(await q('any', ['k8s:sa:b', 'k8s:ns:zzz'])).toEqual(['m2']);
    const p1 = await admin.request<{ entries: EntryJSON[]; next_page_token: string }>('GET', `/v1/entries?parent_id=${encodeURIComponent(parent)}&page_size=1`);
    expect(p1.entries).toHaveLength(1);
    const p2 = await admin.request<{ entries: EntryJSON[]; next_page_token: string | null }>(
      'GET',
      `/v1/entries?parent_id=${encodeURIComponent(parent)}&page_size=1&page_token=${encodeURIComponent(p1.next_page_token)}`,
    );
    expect(p2.entries[0]!.id).not.toBe(p1.entries[0]!.id);
    const human = await server.cli(['entry', 'show', '--parent-id', parent]);
    expect(human).toMatch(/Found 2 entries/);
    expect(human).toMatch(/SPIFFE ID\s+: spiffe:\/\/e2e\.example\.org\/m1/);
  });

  it('x509 mint --write writes svid.pem, key.pem (0600) and bundle.pem that openssl verifies', async () => {
    const dir = path.join(server.dir, 'minted');
    await server.cli(['x509', 'mint', '--spiffe-id', `spiffe://${td}/minted`, '--ttl', '120', '--dns', 'm.example', '--write', dir]);
    for (const f of ['svid.pem', 'key.pem', 'bundle.pem']) expect(existsSync(path.join(dir, f))).toBe(true);
    expect(statSync(path.join(dir, 'key.pem')).mode & 0o777).toBe(0o600);
    secrets.push(readFileSync(path.join(dir, 'key.pem'), 'utf8').split('\n')[1]!);
    const chain = x509AuthoritiesFromPem(readFileSync(path.join(dir, 'svid.pem'), 'utf8'));
    const roots = x509AuthoritiesFromPem(readFileSync(path.join(dir, 'bundle.pem'), 'utf8'));
    expect((await opensslVerify(dir, chain, roots, 'mint')).code).toBe(0);
    expect(uriSan(chain[0]!)).toEqual([`spiffe://${td}/minted`]);
  });

  it('jwt mint prints a token that verifies against `bundle show --format spiffe`', async () => {
    const token = (await server.cli(['jwt', 'mint', '--spiffe-id', `spiffe://${td}/jwt`, '--audience', 'aud1'])).trim();
    secrets.push(token);
    const bundle = decodeBundle(td, await server.cli(['bundle', 'show', '--format', 'spiffe']));
    expect(bundle.sequence).toBeGreaterThanOrEqual(1);
    expect(bundle.refreshHint).toBe(300);
    const jwks = jose.createLocalJWKSet(JSON.parse(jwtBundleJwks(bundle)));
    const { payload } = await jose.jwtVerify(token, jwks, { audience: 'aud1' });
    expect(payload.sub).toBe(`spiffe://${td}/jwt`);
  });

  it('federated bundles can be set, listed and deleted', async () => {
    const own = await server.cli(['bundle', 'show', '--format', 'spiffe']);
    const file = path.join(server.dir, 'fed.json');
    require('node:fs').writeFileSync(file, own);
    await server.cli(['bundle', 'set', '--id', 'spiffe://partner.org', '--path', file]);
    const list = JSON.parse(await server.cli(['--output', 'json', 'bundle', 'list']));
    expect(list.bundles.map((b: { trust_domain: string }) => b.trust_domain)).toEqual(['partner.org']);
    await server.cli(['bundle', 'delete', '--id', 'partner.org']);
    expect(JSON.parse(await server.cli(['--output', 'json', 'bundle', 'list'])).bundles).toEqual([]);
  });

  it('healthcheck, /live, /ready and /metrics', async () => {
    expect(await server.cli(['healthcheck'])).toMatch(/healthy/);
    expect(statSync(path.dirname(server.adminSocket)).mode & 0o777).toBe(0o750);
    expect(statSync(path.join(server.dir, 'data', 'datastore.sqlite3')).mode & 0o777).toBe(0o600);
    expect((await httpGet(server.health, '/live')).status).toBe(200);
    expect((await httpGet(server.health, '/ready')).status).toBe(200);
    const m = (await httpGet(server.health, '/metrics')).text;
    expect(m).toMatch(/tessera_svids_issued_total\{type="x509",api="agent"\} \d+/);
    expect(m).toMatch(/tessera_node_attestations_total\{type="join_token",result="ok"\} \d+/);
    expect(m).toMatch(/tessera_ca_expiry_timestamp_seconds\{kind="x509"\} \d+/);
    // counted when scraped: the store's count now, not a figure cached at the last write
    const count = (JSON.parse(await server.cli(['--output', 'json', 'entry', 'count'])) as { count: number }).count;
    expect(count).toBeGreaterThan(0);
    expect(m).toMatch(new RegExp(`^tessera_registration_entries ${count}$`, 'm'));
    const bad = await server.cliResult(['--admin-socket', '/nonexistent/x.sock', 'healthcheck']);
    expect(bad.code).toBe(1);
  });
});

describe('restart', () => {
  let earlierLogs = '';
  it('keeps the CA, entries and attested agents across a restart', async () => {
    const a = await attestedAgent(server);
    const e = await createEntry(`spiffe://${td}/persist`, a.svid.agentId, ['unix:uid:5']);
    const bundleBefore = await server.cli(['bundle', 'show', '--format', 'spiffe']);
    expect(await server.stop()).toBe(0);
    const dir = server.dir;
    const logs = server.logs();
    server = await startServerProcess({ trustDomain: td, dir });
    expect(await server.cli(['bundle', 'show', '--format', 'spiffe'])).toBe(bundleBefore);
    const fresh = await clientFor(server);
    fresh.setIdentity(a.svid.chain, a.privateKey);
    const r = await fresh.entries();
    expect(r.entries.map((x) => x.id)).toEqual([e.id]);
    fresh.close();
    a.client.close();
    earlierLogs = logs; // the earlier run's log, for the scan below
  });

  it('no private key, join token or JWT appears in any log line', () => {
    const logs = earlierLogs + server.logs();
    expect(logs.length).toBeGreaterThan(1000);
    expect(secrets.length).toBeGreaterThanOrEqual(4);
    for (const s of secrets) expect(logs).not.toContain(s);
    expect(logs).not.toMatch(/PRIVATE KEY/);
    expect(logs).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.eyJ/); // no compact JWS at all
  });
});

void TesseraError;
