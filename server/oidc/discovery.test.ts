import { generateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';
import type { SpiffeBundle } from '../../common/bundle/bundle';
import { createLogger } from '../../common/log';
import { freePort } from '../../test/helpers/free-port';
import { discoveryDocument, discoveryJwks, startOIDCDiscovery, type OIDCDiscovery } from './discovery';

const gen = promisify(generateKeyPair);
const silent = createLogger({ name: 'test', level: 'silent' });

async function bundle(): Promise<SpiffeBundle> {
  const ec256 = await gen('ec', { namedCurve: 'P-256' });
  const ec384 = await gen('ec', { namedCurve: 'P-384' });
  const rsa = await gen('rsa', { modulusLength: 2048 });
  return {
    trustDomain: 'a.example.org',
    x509Authorities: [],
    jwtAuthorities: [
      { kid: 'k256', publicKey: ec256.publicKey },
      { kid: 'k384', publicKey: ec384.publicKey },
      { kid: 'krsa', publicKey: rsa.publicKey },
    ],
  };
}

describe('documents', () => {
  it('mirrors SPIRE oidc-discovery-provider, with jwks_uri under the issuer', () => {
    expect(discoveryDocument('https://oidc.example.org/td-a')).toEqual({
      issuer: 'https://oidc.example.org/td-a',
      jwks_uri: 'https://oidc.example.org/td-a/keys',
      authorization_endpoint: '',
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256', 'ES256', 'ES384'],
    });
  });

  it('gives every JWT authority kid, use "sig" and its alg, and no X.509 authority', async () => {
    const keys = JSON.parse(discoveryJwks(await bundle())).keys;
    expect(keys.map((k: Record<string, string>) => [k.kid, k.use, k.alg])).toEqual([
      ['k256', 'sig', 'ES256'],
      ['k384', 'sig', 'ES384'],
      ['krsa', 'sig', 'RS256'],
    ]);
    expect(keys.every((k: Record<string, unknown>) => k.d === undefined && k.x5c === undefined)).toBe(true);
  });
});

describe('listener', () => {
  let oidc: OIDCDiscovery;
  let base: string;
  beforeAll(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    const b = await bundle();
    oidc = await startOIDCDiscovery({ bind: { host: '127.0.0.1', port }, issuer: `${base}/oidc`, bundle: () => b, log: silent });
  });
  afterAll(() => oidc.close());

  it('serves both documents under the issuer path only', async () => {
    const wk = await fetch(`${base}/oidc/.well-known/openid-configuration`);
    expect(wk.headers.get('content-type')).toBe('application/json');
    const doc = (await wk.json()) as { jwks_uri: string; issuer: string };
    expect(doc.issuer).toBe(`${base}/oidc`);
    const keys = await fetch(doc.jwks_uri);
    expect(keys.status).toBe(200);
    expect(keys.headers.get('cache-control')).toContain('no-store');
    expect(((await keys.json()) as { keys: unknown[] }).keys).toHaveLength(3);
    expect((await fetch(`${base}/.well-known/openid-configuration`)).status).toBe(404);
    expect((await fetch(`${base}/oidc/keys`, { method: 'POST' })).status).toBe(405);
  });
});
