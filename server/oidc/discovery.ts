import { TLS_OPTIONS } from '../../common/tls';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { jwtBundleJwks, type SpiffeBundle } from '../../common/bundle/bundle';
import type { Logger } from '../../common/log';

export interface OIDCDiscoveryOptions {
  bind: { host: string; port: number };
  /** the `iss` of every JWT-SVID; documents are served under its path */
  issuer: string;
  /** PEM; without it the listener is plain HTTP (tests, or behind a TLS-terminating proxy) */
  tls?: { cert: string; key: string };
  /** the trust domain's current bundle; its JWT authorities are the JWKS */
  bundle: () => SpiffeBundle;
  log: Logger;
}

export interface OIDCDiscovery {
  address: AddressInfo;
  close(): Promise<void>;
}

/** JWS alg for a public JWK, so validators that want `alg` on each key get it. */
function algOf(k: { kty?: string; crv?: string }): string | undefined {
  if (k.kty === 'RSA') return 'RS256';
  if (k.kty === 'EC') return ({ 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' } as Record<string, string>)[k.crv ?? ''];
  return undefined;
}

/**
 * The discovery document, as SPIRE's oidc-discovery-provider answers it: relying
 * parties (AWS IAM, GCP workload identity, Vault, jose) read `issuer` and
 * `jwks_uri`; the other members are required by OpenID Connect Discovery and only
 * describe what JWT-SVIDs are. There is no authorization endpoint (no interactive
 * login exists), so, like SPIRE, `authorization_endpoint` is present and empty.
 */
export function discoveryDocument(issuer: string) {
  return {
    issuer,
    jwks_uri: `${issuer.replace(/\/$/, '')}/keys`,
    authorization_endpoint: '',
    response_types_supported: ['id_token'],
    // SPIRE sends []; the spec requires a non-empty list, and "public" is what a SPIFFE ID is.
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['RS256', 'ES256', 'ES384'],
  };
}

/** The JWT authorities as a JWKS with `kid`, `use: "sig"` and `alg` on each key. */
export function discoveryJwks(b: SpiffeBundle): string {
  const { keys } = JSON.parse(jwtBundleJwks(b)) as { keys: Array<Record<string, string>> };
  return JSON.stringify({ keys: keys.map((k) => ({ ...k, use: 'sig', ...(algOf(k) ? { alg: algOf(k) } : {}) })) });
}

/**
 * Serves OIDC discovery from the server process, on its own listener:
 * `<issuer path>/.well-known/openid-configuration` and `<issuer path>/keys`. In the
 * server rather than a separate `tessera oidc` process because the server holds the
 * JWT keys and the bundle: no Workload API client, no extra process to deploy, and
 * a rotated key is published the moment the CA publishes it. The listener is
 * separate from the agent API so it can be exposed publicly on its own.
 */
export async function startOIDCDiscovery(o: OIDCDiscoveryOptions): Promise<OIDCDiscovery> {
  const prefix = new URL(o.issuer).pathname.replace(/\/$/, '');
  const wellKnown = `${prefix}/.well-known/openid-configuration`;
  const keysPath = `${prefix}/keys`;
  const doc = JSON.stringify(discoveryDocument(o.issuer));
  const handler: http.RequestListener = (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, body: string, cache: string) => {
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': cache });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return send(405, JSON.stringify({ error: 'method not allowed' }), 'no-store');
    }
    if (path === wellKnown) return send(200, doc, 'public, max-age=3600');
    if (path === keysPath) {
      try {
        // Not cached: a relying party that sees an unknown kid refetches and must get the new key.
        return send(200, discoveryJwks(o.bundle()), 'no-cache, no-store, must-revalidate');
      } catch (err) {
        o.log.error({ err }, 'oidc discovery has no bundle to serve');
        return send(503, JSON.stringify({ error: 'keys not available yet' }), 'no-store');
      }
    }
    send(404, JSON.stringify({ error: 'not found' }), 'no-store');
  };
  const server = o.tls ? https.createServer({ cert: o.tls.cert, key: o.tls.key, ...TLS_OPTIONS }, handler) : http.createServer(handler);
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((res, rej) => server.once('error', rej).listen(o.bind.port, o.bind.host, () => res()));
  const address = server.address() as AddressInfo;
  o.log.info({ address: `${address.address}:${address.port}`, issuer: o.issuer, tls: !!o.tls }, 'oidc discovery listening');
  return {
    address,
    close: () =>
      new Promise((res) => {
        server.close(() => res());
        server.closeAllConnections();
      }),
  };
}
