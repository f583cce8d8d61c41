import { X509Certificate } from 'node:crypto';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { x509AuthoritiesFromPem } from '../../common/bundle/bundle';
import { ServerClient } from '../client/server-client';
import { newCSR, opensslVerify, uriSan } from '../../test/helpers/agent-identity';
import { shortTempDir, startServerProcess, type ServerProcess } from '../../test/helpers/processes';
import { AdminClient } from '../../cli/admin-client';
import { CACHE_FILE, IDENTITY_FILE } from '../storage/agent-store';
import { AgentManager, type AgentManagerOptions } from './manager';

/**
 * The manager against a real server process, in numbered steps sharing one
 * server and data dir (as SPIRE's integration suites): attest and sync, entry
 * propagation, rotation with 10-s SVIDs, the server going away, a restart on the
 * cached state while it is away, the server coming back, and eviction.
 */
jest.setTimeout(30_000);

const TD = 'example.org';
const ALIAS = `spiffe://${TD}/node/test`;
const uid = (n: number) => ({ type: 'unix', value: `uid:${n}` });

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor<T>(what: string, fn: () => T | undefined | false, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

const serial = (der: Buffer) => new X509Certificate(der).serialNumber;
const logLines: string[] = [];
const log = pino({ level: 'debug' }, new Writable({ write: (c, _e, cb) => (logLines.push(String(c)), cb()) }));

let server: ServerProcess;
let serverConfig: Record<string, unknown>;
let roots: Buffer[];
let dir: string;
const managers: AgentManager[] = [];

async function entryCreate(spiffePath: string, selector: string, ttl: number, extra: string[] = []): Promise<string> {
  const out = await server.cli(['--output', 'json', 'entry', 'create', '--spiffe-id', `spiffe://${TD}${spiffePath}`, '--parent-id', ALIAS, '--selector', selector, '--x509-svid-ttl', String(ttl), ...extra]);
  return (JSON.parse(out) as { id: string }).id;
}

/** An attest function as the agent wires it: each call spends a fresh join token (aliased, so entries follow). */
const joinTokenAttest = (client: ServerClient) => async () => {
  const token = /^Token: (\S+)$/m.exec(await server.cli(['token', 'generate', '--spiffe-id', ALIAS]))![1]!;
  const { csr, privateKey } = await newCSR();
  const r = await client.attestJoinToken(token, csr);
  return { chain: r.chain, key: privateKey, agentId: r.agentId, bundle: r.bundle };
};

async function startManager(o: Partial<AgentManagerOptions> & { dataDir: string }): Promise<AgentManager> {
  const client = o.client ?? new ServerClient(server.agentApi, TD, roots);
  const m = await AgentManager.start({
    client,
    trustDomain: TD,
    attest: joinTokenAttest(client),
    reattestOnEviction: false,
    log,
    backoff: { baseMs: 100, capMs: 1000 },
    persistDelayMs: 50,
    ...o,
  });
  managers.push(m);
  return m;
}

beforeAll(async () => {
  dir = shortTempDir('tmg-');
  serverConfig = { default_x509_svid_ttl: 10, agent_svid_ttl: 20, bind: `127.0.0.1:${await freePort()}` };
  server = await startServerProcess({ config: serverConfig });
  roots = x509AuthoritiesFromPem(await server.cli(['bundle', 'show', '--format', 'pem']));
});

afterAll(async () => {
  for (const m of managers) await m.stop();
  await server?.stop();
  if (server) rmSync(server.dir, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
});

let m1: AgentManager;
let jwt: { token: string; spiffeId: string };
let entryA: string;
let agentSerial: string;
const dataDir = () => path.join(dir, 'agent1');

test('01 attests, syncs and holds verified SVIDs for its entries', async () => {
  entryA = await entryCreate('/wl/a', 'unix:uid:1000', 10);
  await entryCreate('/wl/c', 'unix:uid:1002', 120);
  m1 = await startManager({ dataDir: dataDir(), syncWaitSeconds: 30 });
  expect(m1.agentId()).toMatch(new RegExp(`^spiffe://${TD}/tessera/agent/join_token/`));
  await waitFor('ready with svids', () => m1.ready() && m1.x509SVIDsFor([uid(1000)]).length === 1, 5000);
  const [a] = m1.x509SVIDsFor([uid(1000)]);
  expect(uriSan(a!.chain[0]!)).toEqual([`spiffe://${TD}/wl/a`]);
  expect((await opensslVerify(dir, a!.chain, m1.bundle().x509Authorities)).code).toBe(0);
  // A caller matching both entries gets both (the selector set is what counts, not how it was attested).
  expect(m1.x509SVIDsFor([uid(1000), uid(1002)]).map((s) => s.spiffeId).sort()).toEqual([`spiffe://${TD}/wl/a`, `spiffe://${TD}/wl/c`]);
  expect(m1.x509SVIDsFor([uid(1001)])).toEqual([]);
  expect(m1.stats()).toMatchObject({ cachedSVIDs: 3 /* a, c and the node alias entry (it has a selector too) */ });
  expect(m1.stats().lastSyncOk).not.toBeNull();
  await waitFor('persisted cache', () => statSync(path.join(dataDir(), CACHE_FILE), { throwIfNoEntry: false }), 2000);
  expect(statSync(dataDir()).mode & 0o777).toBe(0o700);
  for (const f of [CACHE_FILE, IDENTITY_FILE]) expect(statSync(path.join(dataDir(), f)).mode & 0o777).toBe(0o600);

  // JWT-SVIDs: minted once per (SPIFFE ID, audience set), then served from the cache
  jwt = await m1.fetchJWTSVID(entryA, ['svc-b', 'svc-a']);
  const claims = JSON.parse(Buffer.from(jwt.token.split('.')[1]!, 'base64url').toString());
  expect(claims).toMatchObject({ sub: `spiffe://${TD}/wl/a` });
  expect([claims.aud].flat().sort()).toEqual(['svc-a', 'svc-b']);
  expect(jwt.spiffeId).toBe(`spiffe://${TD}/wl/a`);
  expect((await m1.fetchJWTSVID(entryA, ['svc-a', 'svc-b', 'svc-a'])).token).toBe(jwt.token);
  expect((await m1.fetchJWTSVID(entryA, ['other'])).token).not.toBe(jwt.token);
  await expect(m1.fetchJWTSVID('no-such-entry', ['x'])).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
  await expect(m1.fetchJWTSVID(entryA, [])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  agentSerial = serial(Buffer.from(JSON.parse(readFileSync(path.join(dataDir(), IDENTITY_FILE), 'utf8')).chain[0], 'base64'));
});

test('02 a new entry reaches subscribers within 1 s; a deleted one disappears as fast', async () => {
  let seenAt = 0;
  let goneAt = 0;
  const unsubscribe = m1.subscribe(() => {
    const n = m1.x509SVIDsFor([uid(1001)]).length;
    if (n === 1 && !seenAt) seenAt = Date.now();
    if (n === 0 && seenAt && !goneAt) goneAt = Date.now();
  });
  const id = await entryCreate('/wl/b', 'unix:uid:1001', 10);
  const created = Date.now();
  await waitFor('new entry', () => seenAt, 3000);
  expect(seenAt - created).toBeLessThan(1000);

  await server.cli(['entry', 'delete', '--entry-id', id]);
  const deleted = Date.now();
  await waitFor('deleted entry gone', () => goneAt, 3000);
  expect(goneAt - deleted).toBeLessThan(1000);
  expect(m1.x509SVIDsFor([uid(1001)])).toEqual([]);
  unsubscribe();
});

test('03 an entry federating with another trust domain brings that bundle along', async () => {
  // any valid bundle document will do as the foreign one: reuse ours under another name
  const file = path.join(dir, 'other.json');
  writeFileSync(file, await server.cli(['bundle', 'show', '--format', 'spiffe']));
  await server.cli(['bundle', 'set', '--id', 'other.org', '--path', file]);
  await entryCreate('/wl/e', 'unix:uid:1004', 60, ['--federates-with', 'other.org']);
  await waitFor('federated bundle', () => m1.federatedBundles(['spiffe://other.org']).length === 1, 3000);
  expect(m1.federatedBundles(['other.org', 'unknown.org']).map((b) => b.trustDomain)).toEqual(['other.org']);
  const [e] = await waitFor('svid for e', () => m1.x509SVIDsFor([uid(1004)]).length === 1 && m1.x509SVIDsFor([uid(1004)]), 3000);
  expect(e!.federatesWith).toEqual(['other.org']);
});

test('04 SVIDs rotate before they expire, and the agent renews its own SVID', async () => {
  for (let round = 0; round < 2; round++) {
    const old = m1.x509SVIDsFor([uid(1000)])[0]!;
    const fresh = await waitFor('rotation', () => {
      const s = m1.x509SVIDsFor([uid(1000)])[0];
      return s && serial(s.chain[0]!) !== serial(old.chain[0]!) ? s : undefined;
    }, 12_000);
    const now = Date.now() / 1000;
    expect(old.expiresAt).toBeGreaterThan(now); // replaced while still valid
    expect(fresh.expiresAt).toBeGreaterThan(old.expiresAt);
    expect(fresh.privateKeyPkcs8.equals(old.privateKeyPkcs8)).toBe(false); // a new key each time
    expect((await opensslVerify(dir, fresh.chain, m1.bundle().x509Authorities, `r${round}`)).code).toBe(0);
  }
  expect(m1.stats().rotations).toBeGreaterThanOrEqual(2);
  await waitFor('agent svid renewed', () => {
    const doc = JSON.parse(readFileSync(path.join(dataDir(), IDENTITY_FILE), 'utf8'));
    return serial(Buffer.from(doc.chain[0], 'base64')) !== agentSerial;
  }, 12_000);
});

let cSerial: string;
test('05 the server stops: the manager keeps serving its cache', async () => {
  cSerial = serial(m1.x509SVIDsFor([uid(1002)])[0]!.chain[0]!);
  const lastOk = m1.stats().lastSyncOk;
  await server.stop();
  await sleep(1500);
  expect(m1.ready()).toBe(true);
  expect(m1.x509SVIDsFor([uid(1002)]).map((s) => serial(s.chain[0]!))).toEqual([cSerial]);
  expect(m1.stats().lastSyncOk).toBe(lastOk);
  // a cached JWT-SVID is still served; a new one cannot be minted
  expect((await m1.fetchJWTSVID(entryA, ['svc-a', 'svc-b'])).token).toBe(jwt.token);
  await expect(m1.fetchJWTSVID(entryA, ['never-minted'])).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  expect(logLines.join('')).toContain('sync with the server failed');
});

let m2: AgentManager;
test('06 a manager restarted while the server is down serves the cached SVIDs at once', async () => {
  await m1.stop();
  const t0 = Date.now();
  // a client that could not attest anyway: the server is down and nothing must be needed from it
  m2 = await startManager({ dataDir: dataDir(), syncWaitSeconds: 2, client: new ServerClient(server.agentApi, TD, roots) });
  expect(Date.now() - t0).toBeLessThan(1000);
  expect(m2.ready()).toBe(true);
  expect(m2.agentId()).toBe(m1.agentId());
  expect(m2.x509SVIDsFor([uid(1002)]).map((s) => serial(s.chain[0]!))).toEqual([cSerial]);
  expect(m2.bundle().x509Authorities.length).toBeGreaterThan(0);
});

test('07 the server comes back on the same data: sync resumes', async () => {
  server = await startServerProcess({ dir: server.dir, config: serverConfig });
  await entryCreate('/wl/d', 'unix:uid:1003', 10);
  await waitFor('entry made while the agent was cut off', () => m2.x509SVIDsFor([uid(1003)]).length === 1, 10_000);
  await waitFor('fresh svid for a', () => m2.x509SVIDsFor([uid(1000)]).length === 1, 10_000);
  expect(m2.stats().lastSyncOk! * 1000).toBeGreaterThan(Date.now() - 5000);
});

test('08 evicted: without reattest_on_eviction it says so and keeps serving; with it, it re-attests', async () => {
  const id2 = m2.agentId();
  await server.cli(['agent', 'evict', '--spiffe-id', id2]);
  await waitFor('eviction logged', () => logLines.some((l) => l.includes('"level":50') && l.includes('no longer accepts this agent') && l.includes(id2)), 8000);
  expect(m2.ready()).toBe(true);
  expect(m2.x509SVIDsFor([uid(1002)]).length).toBe(1);
  expect(m2.agentId()).toBe(id2);

  const m3 = await startManager({ dataDir: path.join(dir, 'agent3'), syncWaitSeconds: 1, reattestOnEviction: true });
  await waitFor('m3 ready', () => m3.ready() && m3.x509SVIDsFor([uid(1002)]).length === 1, 5000);
  const id3 = m3.agentId();
  await server.cli(['agent', 'evict', '--spiffe-id', id3]);
  await waitFor('re-attested', () => m3.agentId() !== id3, 8000);
  await waitFor('serving after re-attestation', () => m3.x509SVIDsFor([uid(1002)]).length === 1, 5000);
});

test('09 no key material in the logs', () => {
  const text = logLines.join('');
  for (const m of managers) {
    for (const s of m.x509SVIDsFor([uid(1000), uid(1002), uid(1003)])) expect(text).not.toContain(s.privateKeyPkcs8.toString('base64'));
  }
  expect(text).not.toMatch(/PRIVATE KEY/);
});

test('10 a bulk sync saves the cache once, when its signing round has ended, with every SVID', async () => {
  // A node of its own, so that only this manager signs these entries.
  const alias = `spiffe://${TD}/node/bulk`;
  const n = 1100; // three signing batches
  const admin = new AdminClient(server.adminSocket);
  for (let i = 0; i < n; i += 1000) {
    const entries = Array.from({ length: Math.min(1000, n - i) }, (_, j) => ({ spiffe_id: `spiffe://${TD}/bulk/${i + j}`, parent_id: alias, selectors: [`unix:uid:${20000 + i + j}`], x509_svid_ttl: 3600 }));
    await admin.request('POST', '/v1/entries', { entries });
  }
  const lines: string[] = [];
  // After the first batch, the server pauses for a second, mid-round: long enough for
  // the 50-ms save delay here to fire, were the save not waiting for the round to end.
  let paused = false;
  const pauseServer = (line: string) => {
    if (paused || !line.includes('"x509-svids obtained"')) return;
    paused = true;
    process.kill(server.proc.pid!, 'SIGSTOP');
    setTimeout(() => process.kill(server.proc.pid!, 'SIGCONT'), 1000);
  };
  const bulkLog = pino({ level: 'debug' }, new Writable({ write: (c, _e, cb) => (lines.push(String(c)), pauseServer(String(c)), cb()) }));
  const client = new ServerClient(server.agentApi, TD, roots);
  const attest = async () => {
    const token = /^Token: (\S+)$/m.exec(await server.cli(['token', 'generate', '--spiffe-id', alias]))![1]!;
    const { csr, privateKey } = await newCSR();
    const r = await client.attestJoinToken(token, csr);
    return { chain: r.chain, key: privateKey, agentId: r.agentId, bundle: r.bundle };
  };
  const bulkDir = path.join(dir, 'bulk');
  // A cap far above the round's length, so the assertion does not depend on this machine's speed.
  const m = await startManager({ dataDir: bulkDir, client, attest, log: bulkLog, maxPersistDelayMs: 120_000 });
  const all = n + 1; // and the node alias entry's
  await waitFor('all bulk svids', () => m.stats().cachedSVIDs === all, 60_000);
  const saves = () => lines.filter((l) => l.includes('"agent cache saved"')).map((l) => (JSON.parse(l) as { svids: number }).svids);
  await waitFor('the save after the round', () => saves().includes(all), 10_000);
  // Without waiting for the round, a save would follow the first batch (persistDelayMs is 50 ms here).
  expect(saves().filter((count) => count > 0 && count < all)).toEqual([]);
  const onDisk = JSON.parse(readFileSync(path.join(bulkDir, CACHE_FILE), 'utf8')) as { svids: unknown[] };
  expect(onDisk.svids).toHaveLength(all);
});
