import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { encodeBundle } from '../../common/bundle/bundle';
import { unavailable } from '../../common/errors';
import { createLogger } from '../../common/log';
import { SqliteDataStore } from '../datastore/sqlite/store';
import { makeTestCA, type TestCert } from '../../test/helpers/test-pki';
import { removeDir, shortTempDir } from '../../test/helpers/processes';
import type { RefreshResult } from '../federation/fetcher';
import { federationApi } from './federation-api';
import { errorHandler } from './http';

/** The federation admin routes over real HTTP, a real store and a fake fetcher. */
const OWN = 'a.example.org';
const TD = 'b.example.org';
const silent = createLogger({ name: 'test', level: 'silent' });

let dir: string;
let ca: TestCert;
let bootstrap: object;
let store: SqliteDataStore;
let server: http.Server;
let base: string;
let changed: string[];
let notified: number;
let refreshOutcome: () => Promise<RefreshResult>;

beforeAll(async () => {
  dir = shortTempDir('fapi-');
  ca = await makeTestCA(dir, 'b-ca', { spiffeTrustDomain: TD });
  bootstrap = JSON.parse(encodeBundle({ trustDomain: TD, x509Authorities: [ca.der], jwtAuthorities: [], sequence: 4 }));
});
afterAll(() => removeDir(dir));

beforeEach(async () => {
  store = SqliteDataStore.open(':memory:');
  changed = [];
  notified = 0;
  refreshOutcome = async () => ({ trustDomain: TD, changed: true, sequence: 5, nextRefreshIn: 300 });
  const app = express();
  app.use(express.json());
  app.use(
    federationApi({
      trustDomain: OWN,
      store,
      fetcher: { relationshipChanged: (td) => changed.push(td), refresh: () => refreshOutcome() },
      notify: () => notified++,
      log: silent,
    }),
  );
  app.use(errorHandler(silent, 'admin'));
  server = http.createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterEach(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  await store.close();
});

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const r = await fetch(base + path, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
}
const web = { trust_domain: TD, bundle_endpoint_url: 'https://b.example.org/bundle', profile: 'https_web' };
const spiffe = { trust_domain: TD, bundle_endpoint_url: 'https://b.example.org:8443', profile: 'https_spiffe', endpoint_spiffe_id: `spiffe://${TD}/tessera/server` };

describe('POST /v1/federation validation', () => {
  it.each<[string, Record<string, unknown>, RegExp]>([
    ['an http url', { ...web, bundle_endpoint_url: 'http://b.example.org' }, /bundle_endpoint_url must use https .*not http$/],
    ['userinfo', { ...web, bundle_endpoint_url: 'https://u:p@b.example.org' }, /must not contain userinfo/],
    ['a fragment', { ...web, bundle_endpoint_url: 'https://b.example.org/#x' }, /must not have a #fragment/],
    ['a non-url', { ...web, bundle_endpoint_url: 'not a url' }, /is not a valid url/],
    ['an unknown profile', { ...web, profile: 'http' }, /profile must be one of https_web, https_spiffe/],
    ['the own trust domain', { ...web, trust_domain: OWN }, /is this server's own trust domain/],
    ['a trust domain with a path', { ...web, trust_domain: `spiffe://${TD}/x` }, /has a path/],
    ['https_spiffe without an endpoint id', { ...spiffe, endpoint_spiffe_id: undefined }, /endpoint_spiffe_id is required for https_spiffe/],
    ['an endpoint id in another trust domain', { ...spiffe, endpoint_spiffe_id: 'spiffe://c.example.org/server' }, /is not in trust domain b\.example\.org/],
    ['an endpoint id for https_web', { ...web, endpoint_spiffe_id: `spiffe://${TD}/x` }, /applies only to https_spiffe/],
    ['https_spiffe without any bundle', spiffe, /https_spiffe needs a bootstrap bundle of b\.example\.org/],
    ['a bootstrap bundle without x509 authorities', { ...spiffe, bundle: { keys: [] } }, /has no x509 authorities/],
    ['a bootstrap bundle that is not one', { ...spiffe, bundle: { nokeys: 1 } }, /has no "keys" array/],
  ])('refuses %s with a 400 naming the problem', async (_what, req, msg) => {
    const r = await call('POST', '/v1/federation', req);
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('INVALID_ARGUMENT');
    expect(r.body.error.message).toMatch(msg);
    expect(await store.listFederationRelationships()).toEqual([]);
    expect(await store.listBundles()).toEqual([]);
    expect(changed).toEqual([]);
  });
});

describe('relationship lifecycle', () => {
  it('creates https_spiffe with a bootstrap bundle, stores the bundle and starts fetching', async () => {
    const r = await call('POST', '/v1/federation', { ...spiffe, trust_domain: `spiffe://${TD}`, bundle: bootstrap });
    expect(r.status).toBe(201);
    expect(r.body.relationship).toMatchObject({ trust_domain: TD, profile: 'https_spiffe', endpoint_spiffe_id: spiffe.endpoint_spiffe_id, bundle_sequence: 4, last_error: null });
    expect(r.body.relationship.bundle_endpoint_url).toBe('https://b.example.org:8443/');
    expect(changed).toEqual([TD]);
    expect(notified).toBe(1);
    expect((await call('POST', '/v1/federation', { ...spiffe, bundle: bootstrap })).status).toBe(409);
  });

  it('accepts https_spiffe without a bundle when one is stored already', async () => {
    await store.setBundle({ trustDomain: TD, document: JSON.stringify(bootstrap), sequence: 4 });
    expect((await call('POST', '/v1/federation', spiffe)).status).toBe(201);
    expect(notified).toBe(0);
  });

  it('lists, shows, updates (switching profile drops the endpoint id), refreshes and deletes', async () => {
    await call('POST', '/v1/federation', web);
    expect((await call('GET', '/v1/federation')).body.federation_relationships.map((x: { trust_domain: string }) => x.trust_domain)).toEqual([TD]);
    expect((await call('GET', `/v1/federation/${TD}`)).body.relationship.bundle_sequence).toBeNull();
    expect((await call('GET', '/v1/federation/c.example.org')).status).toBe(404);

    const toSpiffe = await call('PATCH', `/v1/federation/${TD}`, { profile: 'https_spiffe', endpoint_spiffe_id: spiffe.endpoint_spiffe_id, bundle: bootstrap });
    expect(toSpiffe.status).toBe(200);
    expect(toSpiffe.body.relationship).toMatchObject({ profile: 'https_spiffe', bundle_sequence: 4 });
    const toWeb = await call('PATCH', `/v1/federation/${TD}`, { profile: 'https_web' });
    expect(toWeb.body.relationship).toMatchObject({ profile: 'https_web', endpoint_spiffe_id: null });
    expect((await call('PATCH', `/v1/federation/${TD}`, { trust_domain: 'c.example.org' })).body.error.message).toMatch(/trust_domain cannot be updated/);
    expect((await call('PATCH', `/v1/federation/${TD}`, { bundle_endpoint_url: 'ftp://x' })).status).toBe(400);

    expect((await call('POST', `/v1/federation/${TD}/refresh`)).body).toMatchObject({ changed: true, sequence: 5, next_refresh_in: 300 });
    refreshOutcome = async () => {
      throw unavailable('fetching https://b.example.org/bundle: answered HTTP 500');
    };
    const failed = await call('POST', `/v1/federation/${TD}/refresh`);
    expect(failed.status).toBe(503);
    expect(failed.body.error.message).toContain('answered HTTP 500');

    expect((await call('DELETE', `/v1/federation/${TD}`)).body).toEqual({ deleted: TD, bundle_kept: true });
    expect((await call('DELETE', `/v1/federation/${TD}`)).status).toBe(404);
    expect((await call('POST', `/v1/federation/${TD}/refresh`)).status).toBe(404);
    expect(changed).toEqual([TD, TD, TD, TD]);
  });
});
