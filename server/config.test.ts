import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadServerConfig } from './config';

let dir: string;
beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'cfg-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const file = (o: unknown) => {
  const p = path.join(dir, 'c.json');
  writeFileSync(p, typeof o === 'string' ? o : JSON.stringify(o));
  return p;
};

it('merges file < env < flags and applies defaults', () => {
  const c = loadServerConfig(
    { config: file({ trust_domain: 'file.org', bind: '127.0.0.1:9000', ca: { key_type: 'ec-p384' } }), bind: '127.0.0.1:9100' },
    { TESSERA_TRUST_DOMAIN: 'env.org', TESSERA_DATA_DIR: dir },
  );
  expect(c.trustDomain).toBe('env.org');
  expect(c.bind).toEqual({ host: '127.0.0.1', port: 9100 });
  // one signing worker per core, none on a single core (a worker would only add a message hop)
  const cores = os.availableParallelism();
  expect(c.ca).toEqual({ keyType: 'ec-p384', ttl: 86400, organization: 'Tessera', rotationInterval: 10, signingWorkers: cores >= 2 ? cores : 0 });
  expect(c.postgres).toBeUndefined();
  expect(c.dataDir).toBe(dir);
  expect(c.datastorePath).toBe(path.join(dir, 'datastore.sqlite3'));
  expect(c.rateLimits).toEqual({ attestationPerSecond: 1, signingPerSecond: 500 });
  expect(Object.isFrozen(c)).toBe(true);
});

it.each([
  [{}, /trust_domain/],
  [{ trust_domain: 'Bad.Org' }, /trust_domain/],
  [{ trust_domain: 'ok.org', ca: { key_type: 'dsa' } }, /ca\.key_type/],
  [{ trust_domain: 'ok.org', bind: 'nohost' }, /bind: must be HOST:PORT/],
  [{ trust_domain: 'ok.org', unknown_key: 1 }, /unknown_key/],
  [{ trust_domain: 'ok.org', default_x509_svid_ttl: 90000 }, /default_x509_svid_ttl: must not exceed ca\.ttl/],
])('names the key in errors: %j', (raw, msg) => {
  expect(() => loadServerConfig({ config: file(raw) }, {})).toThrow(msg);
});

it('reports a malformed file and warns about SVID TTLs above ca.ttl / 6', () => {
  expect(() => loadServerConfig({ config: file('{nope') }, {})).toThrow(/not valid JSON/);
  expect(loadServerConfig({ trustDomain: 'ok.org' }, {}).warnings).toEqual([]);
  const c = loadServerConfig({ config: file({ trust_domain: 'ok.org', ca: { ttl: 7200 } }) }, {});
  expect(c.warnings).toEqual([expect.stringMatching(/exceeds ca\.ttl \/ 6/)]);
});

it('checks for key rotation every ca.ttl / 60 seconds (at most 10 s) unless ca.rotation_interval says otherwise', () => {
  expect(loadServerConfig({ config: file({ trust_domain: 'ok.org', ca: { ttl: 60 }, default_x509_svid_ttl: 10 }) }, {}).ca.rotationInterval).toBe(1);
  expect(loadServerConfig({ config: file({ trust_domain: 'ok.org', ca: { ttl: 3600, rotation_interval: 0.5 } }) }, {}).ca.rotationInterval).toBe(0.5);
  expect(() => loadServerConfig({ config: file({ trust_domain: 'ok.org', ca: { rotation_interval: 0 } }) }, {})).toThrow(/ca\.rotation_interval/);
});

it('takes PostgreSQL from TESSERA_DATASTORE_URL, with the default pool size and timeouts; refuses another scheme', () => {
  const c = loadServerConfig({ trustDomain: 'example.org', dataDir: dir }, { TESSERA_DATASTORE_URL: 'postgresql://u:p@db:5432/t' });
  expect(c.postgres).toEqual({ url: 'postgresql://u:p@db:5432/t', poolSize: 10, statementTimeoutMs: 5000, connectTimeoutMs: 5000, schema: undefined });
  expect(() => loadServerConfig({ trustDomain: 'example.org', dataDir: dir }, { TESSERA_DATASTORE_URL: 'mysql://db/t' })).toThrow(/datastore.url: must be a postgresql:\/\/ url/);
});
