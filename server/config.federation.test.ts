import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadServerConfig } from './config';

/** The `federation` and `oidc` sections (issue #4). */
let dir: string;
beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'cfgf-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const load = (o: Record<string, unknown>) => {
  const p = path.join(dir, 'c.json');
  writeFileSync(p, JSON.stringify({ trust_domain: 'a.example.org', ...o }));
  return loadServerConfig({ config: p }, {});
};

it('leaves both sections out by default', () => {
  const c = load({});
  expect(c.federation).toBeUndefined();
  expect(c.oidc).toBeUndefined();
  expect(c.jwt.issuer).toBeUndefined();
});

it('reads the bundle endpoint, extra web CA, minimum refresh and relationships with resolved paths', () => {
  const c = load({
    federation: {
      bundle_endpoint: { bind: '0.0.0.0:8443', profile: 'https_web', cert_file: 'web.crt', key_file: 'web.key' },
      web_ca_file: 'ca.pem',
      min_refresh_hint: 1,
      federates_with: {
        'b.example.org': { bundle_endpoint_url: 'https://b.example.org:8443', profile: 'https_spiffe', endpoint_spiffe_id: 'spiffe://b.example.org/tessera/server', bundle_file: 'b.json' },
      },
    },
  });
  expect(c.federation).toEqual({
    bundleEndpoint: { bind: { host: '0.0.0.0', port: 8443 }, profile: 'https_web', certFile: path.resolve('web.crt'), keyFile: path.resolve('web.key') },
    webCaFile: path.resolve('ca.pem'),
    minRefreshHint: 1,
    fetchTimeoutMs: 30000,
    relationships: [
      { trustDomain: 'b.example.org', bundleEndpointUrl: 'https://b.example.org:8443', profile: 'https_spiffe', endpointSpiffeId: 'spiffe://b.example.org/tessera/server', bundleFile: path.resolve('b.json') },
    ],
  });
  expect(load({ federation: { bundle_endpoint: { bind: '127.0.0.1:0' } } }).federation).toMatchObject({ bundleEndpoint: { profile: 'https_spiffe' }, minRefreshHint: 30, relationships: [] });
});

it('uses oidc.issuer as the JWT-SVID iss when jwt.issuer is not set, and warns about an http issuer', () => {
  const c = load({ oidc: { bind: '127.0.0.1:8090', issuer: 'http://127.0.0.1:8090' } });
  expect(c.oidc).toEqual({ bind: { host: '127.0.0.1', port: 8090 }, issuer: 'http://127.0.0.1:8090', certFile: undefined, keyFile: undefined });
  expect(c.jwt.issuer).toBe('http://127.0.0.1:8090');
  expect(c.warnings.join('\n')).toMatch(/oidc\.issuer .* is http/);
  expect(load({ oidc: { bind: '127.0.0.1:8090', issuer: 'https://oidc.example.org' }, jwt: { issuer: 'https://oidc.example.org' } }).jwt.issuer).toBe('https://oidc.example.org');
});

it.each([
  [{ federation: { bundle_endpoint: { bind: '127.0.0.1:0', profile: 'https_web' } } }, /federation\.bundle_endpoint: https_web needs cert_file and key_file/],
  [{ federation: { bundle_endpoint: { bind: '127.0.0.1:0', cert_file: 'x', key_file: 'y' } } }, /https_spiffe serves the server SVID/],
  [{ federation: { federates_with: { 'b.example.org': { bundle_endpoint_url: 'https://b', profile: 'web' } } } }, /federation\.federates_with\.b\.example\.org\.profile/],
  [{ oidc: { bind: '127.0.0.1:0', issuer: 'https://x', cert_file: 'c' } }, /oidc: give both cert_file and key_file/],
  [{ oidc: { bind: '127.0.0.1:0', issuer: 'https://x' }, jwt: { issuer: 'https://y' } }, /jwt\.issuer: must equal oidc\.issuer/],
  [{ oidc: { bind: '127.0.0.1:0' } }, /oidc\.issuer/],
])('names the key in errors: %j', (raw, msg) => {
  expect(() => load(raw)).toThrow(msg);
});
