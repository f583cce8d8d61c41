import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { decodeBundle, encodeBundle, type SpiffeBundle } from '../../common/bundle/bundle';
import { TesseraError } from '../../common/errors';
import { createLogger } from '../../common/log';
import { SqliteDataStore } from '../datastore/sqlite/store';
import { makeTestCA, makeTestLeaf, type TestCert } from '../../test/helpers/test-pki';
import { removeDir, shortTempDir } from '../../test/helpers/processes';
import { startBundleEndpoint, type BundleEndpoint, type BundleEndpointTLS } from './bundle-endpoint';
import { BundleFetcher } from './fetcher';

/**
 * The fetcher against real local HTTPS servers: our own bundle endpoint (both
 * profiles) and a scripted server for redirects and errors, with certificates
 * made by openssl.
 */
const TD = 'b.example.org';
const ENDPOINT_ID = `spiffe://${TD}/bundle-server`;
const silent = createLogger({ name: 'test', level: 'silent' });

let dir: string;
let webCA: TestCert, web: TestCert, webOtherHost: TestCert;
let ca1: TestCert, ca2: TestCert, rogueCA: TestCert;
let svid1: TestCert, svid2: TestCert, wrongId: TestCert, rogue: TestCert;

beforeAll(async () => {
  dir = shortTempDir('fed-');
  webCA = await makeTestCA(dir, 'webca');
  web = await makeTestLeaf(dir, 'web', webCA, { dns: ['localhost'], ip: ['127.0.0.1'] });
  webOtherHost = await makeTestLeaf(dir, 'web-other', webCA, { dns: ['other.test'] });
  ca1 = await makeTestCA(dir, 'b-ca1', { spiffeTrustDomain: TD });
  ca2 = await makeTestCA(dir, 'b-ca2', { spiffeTrustDomain: TD });
  rogueCA = await makeTestCA(dir, 'rogue-ca', { spiffeTrustDomain: TD });
  svid1 = await makeTestLeaf(dir, 'svid1', ca1, { uri: ENDPOINT_ID });
  svid2 = await makeTestLeaf(dir, 'svid2', ca2, { uri: ENDPOINT_ID });
  wrongId = await makeTestLeaf(dir, 'wrong-id', ca1, { uri: `spiffe://${TD}/something-else` });
  rogue = await makeTestLeaf(dir, 'rogue', rogueCA, { uri: ENDPOINT_ID });
}, 30_000);

afterAll(() => removeDir(dir));

const bundleOf = (cas: TestCert[], sequence: number, refreshHint = 300): SpiffeBundle => ({
  trustDomain: TD,
  x509Authorities: cas.map((c) => c.der),
  jwtAuthorities: [],
  sequence,
  refreshHint,
});
const tlsOf = (c: TestCert): BundleEndpointTLS => ({ key: c.keyPem, cert: c.certPem });

/** A foreign bundle endpoint whose certificate and bundle the test changes. */
async function foreignEndpoint(cert: TestCert, bundle: SpiffeBundle) {
  const state = { cert, bundle, served: 0 };
  const ep: BundleEndpoint = await startBundleEndpoint({
    bind: { host: '127.0.0.1', port: 0 },
    profile: 'https_spiffe',
    tls: () => tlsOf(state.cert),
    bundle: () => (state.served++, encodeBundle(state.bundle)),
    log: silent,
  });
  return { state, ep, url: `https://127.0.0.1:${ep.address.port}/` };
}

let store: SqliteDataStore;
let fetcher: BundleFetcher;
let changes: number;
const cleanups: Array<() => unknown> = [];

function newFetcher(opts: { webCa?: boolean; minRefreshHint?: number } = {}) {
  fetcher = new BundleFetcher({
    store,
    ownTrustDomain: 'a.example.org',
    log: silent,
    onChange: () => changes++,
    minRefreshHint: opts.minRefreshHint ?? 1,
    webCaPem: opts.webCa === false ? [] : [webCA.certPem],
    timeoutMs: 5000,
  });
  return fetcher;
}

beforeEach(() => {
  store = SqliteDataStore.open(':memory:');
  changes = 0;
  newFetcher();
});
afterEach(async () => {
  fetcher.close();
  for (const c of cleanups.splice(0)) await c();
  await store.close();
});

const web_ = (url: string) => store.createFederationRelationship({ trustDomain: TD, bundleEndpointUrl: url, profile: 'https_web', endpointSpiffeId: null });
const spiffe_ = async (url: string, bootstrap: TestCert[]) => {
  await store.setBundle({ trustDomain: TD, document: encodeBundle(bundleOf(bootstrap, 1)), sequence: 1 });
  return store.createFederationRelationship({ trustDomain: TD, bundleEndpointUrl: url, profile: 'https_spiffe', endpointSpiffeId: ENDPOINT_ID });
};
async function failure(p: Promise<unknown>): Promise<TesseraError> {
  const e = await p.then(() => undefined, (x: unknown) => x);
  expect(e).toBeInstanceOf(TesseraError);
  expect((e as TesseraError).code).toBe('UNAVAILABLE');
  return e as TesseraError;
}
const stored = async () => {
  const b = await store.fetchBundle(TD);
  return b && { row: b, bundle: decodeBundle(TD, b.document) };
};

describe('https_web', () => {
  it('fetches with Web PKI validation, stores under the foreign trust domain, and stores again only on change', async () => {
    const f = await foreignEndpoint(web, bundleOf([ca1], 5));
    cleanups.push(() => f.ep.close());
    await web_(f.url);
    expect(await fetcher.refresh(TD)).toEqual({ trustDomain: TD, changed: true, sequence: 5, nextRefreshIn: 300 });
    expect((await stored())!.bundle.x509Authorities).toEqual([ca1.der]);
    expect(await store.listBundles()).toHaveLength(1); // nothing else written, nothing merged
    expect(changes).toBe(1);
    const rel = await store.fetchFederationRelationship(TD);
    expect(rel!.lastError).toBeNull();
    expect(rel!.lastRefreshAt).toBeGreaterThan(0);

    const updatedAt = (await stored())!.row.updatedAt;
    expect(await fetcher.refresh(TD)).toMatchObject({ changed: false, sequence: 5 });
    expect(changes).toBe(1);
    expect((await stored())!.row.updatedAt).toBe(updatedAt);

    f.state.bundle = bundleOf([ca1, ca2], 6);
    expect(await fetcher.refresh(TD)).toMatchObject({ changed: true, sequence: 6 });
    expect(changes).toBe(2);
  });

  it('keeps the stored sequence growing when a publisher changes content without raising its own', async () => {
    const f = await foreignEndpoint(web, bundleOf([ca1], 9));
    cleanups.push(() => f.ep.close());
    await web_(f.url);
    await fetcher.refresh(TD);
    f.state.bundle = bundleOf([ca2], 3);
    expect(await fetcher.refresh(TD)).toMatchObject({ changed: true, sequence: 10 });
    expect((await stored())!.bundle.sequence).toBe(3); // the document stays the publisher's
  });

  it('refuses an unknown CA and a certificate for another host, recording the error', async () => {
    const f = await foreignEndpoint(web, bundleOf([ca1], 1));
    cleanups.push(() => f.ep.close());
    await web_(f.url);
    newFetcher({ webCa: false });
    expect((await failure(fetcher.refresh(TD))).message).toMatch(/self.signed|unable to (get|verify)/i);
    expect((await store.fetchFederationRelationship(TD))!.lastError).toMatch(/certificate/i);
    expect(await store.fetchBundle(TD)).toBeUndefined();

    newFetcher();
    f.state.cert = webOtherHost;
    f.ep.refresh();
    expect((await failure(fetcher.refresh(TD))).message).toMatch(/does not match|altnames/i);
    expect(changes).toBe(0);
  });
});

describe('https_spiffe', () => {
  it('accepts the endpoint SVID with the configured ID under the bootstrap bundle', async () => {
    const f = await foreignEndpoint(svid1, bundleOf([ca1], 2));
    cleanups.push(() => f.ep.close());
    await spiffe_(f.url, [ca1]);
    expect(await fetcher.refresh(TD)).toMatchObject({ changed: true, sequence: 2 });
  });

  it('refuses another SPIFFE ID, and an SVID from a CA outside the stored bundle', async () => {
    const f = await foreignEndpoint(wrongId, bundleOf([ca1], 2));
    cleanups.push(() => f.ep.close());
    await spiffe_(f.url, [ca1]);
    expect((await failure(fetcher.refresh(TD))).message).toContain(`presented spiffe://${TD}/something-else, expected ${ENDPOINT_ID}`);
    f.state.cert = rogue;
    f.ep.refresh();
    await failure(fetcher.refresh(TD));
    expect((await stored())!.row.sequence).toBe(1); // still the bootstrap
  });

  it('follows a foreign CA rotation: the next connection is checked against the latest fetched bundle', async () => {
    const f = await foreignEndpoint(svid1, bundleOf([ca1, ca2], 2));
    cleanups.push(() => f.ep.close());
    await spiffe_(f.url, [ca1]);
    await fetcher.refresh(TD); // learns ca2 while still served by a ca1 SVID
    f.state.cert = svid2;
    f.state.bundle = bundleOf([ca2], 3);
    f.ep.refresh();
    expect(await fetcher.refresh(TD)).toMatchObject({ changed: true, sequence: 3 });
    expect((await stored())!.bundle.x509Authorities).toEqual([ca2.der]);
    // with only the bootstrap bundle the same endpoint is refused
    await store.setBundle({ trustDomain: TD, document: encodeBundle(bundleOf([ca1], 1)), sequence: 4 });
    await failure(fetcher.refresh(TD));
  });
});

describe('scheduling', () => {
  it('polls at the bundle refresh hint (clamped to the configured minimum)', async () => {
    const f = await foreignEndpoint(svid1, bundleOf([ca1], 2, 0));
    cleanups.push(() => f.ep.close());
    await spiffe_(f.url, [ca1]);
    await fetcher.start();
    await new Promise((r) => setTimeout(r, 2600));
    // t=0, ~1 s, ~2 s: a hint of 0 is clamped to 1 s
    expect(f.state.served).toBeGreaterThanOrEqual(3);
    expect(f.state.served).toBeLessThanOrEqual(4);
  });

  it('retries a failed fetch at the next interval, and stops when the relationship is deleted', async () => {
    const s = await scripted();
    s.mode = 'error';
    await store.setBundle({ trustDomain: TD, document: encodeBundle(bundleOf([ca1], 1, 1)), sequence: 1 });
    await web_(s.url);
    await fetcher.start();
    await new Promise((r) => setTimeout(r, 300));
    expect((await store.fetchFederationRelationship(TD))!.lastError).toContain('HTTP 500');
    s.mode = 'ok';
    await new Promise((r) => setTimeout(r, 1200));
    expect((await store.fetchFederationRelationship(TD))!.lastError).toBeNull();
    expect(changes).toBe(1);
    await store.deleteFederationRelationship(TD);
    fetcher.relationshipChanged(TD);
    const hits = s.hits;
    await new Promise((r) => setTimeout(r, 1500));
    expect(s.hits).toBe(hits);
    await expect(fetcher.refresh(TD)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});

describe('redirects', () => {
  it('follows a temporary redirect without remembering it, and refuses a permanent one', async () => {
    const f = await foreignEndpoint(web, bundleOf([ca1], 7));
    cleanups.push(() => f.ep.close());
    const s = await scripted(f.url);
    await web_(s.url);
    s.mode = '302';
    expect(await fetcher.refresh(TD)).toMatchObject({ changed: true, sequence: 7 });
    expect((await store.fetchFederationRelationship(TD))!.bundleEndpointUrl).toBe(s.url);
    s.mode = '301';
    expect((await failure(fetcher.refresh(TD))).message).toMatch(/permanent redirect \(301\)/);
    s.mode = 'http';
    expect((await failure(fetcher.refresh(TD))).message).toMatch(/not an https url/);
  });
});

/** A web server (certificate for 127.0.0.1) that redirects, fails or serves a bundle as told. */
async function scripted(target = '') {
  const s = { mode: 'ok' as 'ok' | 'error' | '302' | '301' | 'http', hits: 0, url: '' };
  const server = https.createServer({ key: web.keyPem, cert: web.certPem }, (req, res) => {
    s.hits++;
    if (s.mode === 'error') return void res.writeHead(500).end();
    if (s.mode === '302' || s.mode === '301') return void res.writeHead(Number(s.mode), { location: target }).end();
    if (s.mode === 'http') return void res.writeHead(307, { location: target.replace('https:', 'http:') }).end();
    res.writeHead(200, { 'content-type': 'application/json' }).end(encodeBundle(bundleOf([ca1], 2, 1)));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  s.url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/bundle`;
  cleanups.push(() => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))));
  return s;
}
