import { TLS_OPTIONS } from '../../common/tls';
import https from 'node:https';
import type { KeyObject } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../common/log';
import type { FederationProfile } from '../datastore/datastore';

/** The serving certificate of a bundle endpoint (PEM chain, leaf first, and its key). */
export interface BundleEndpointTLS {
  key: string | KeyObject;
  cert: string;
}

export interface BundleEndpointOptions {
  bind: { host: string; port: number };
  /** only logged: how `tls` was chosen is the caller's business */
  profile: FederationProfile;
  /** https_spiffe: the server's own X.509-SVID; https_web: the configured certificate */
  tls: () => BundleEndpointTLS;
  /** the trust domain's current bundle as SPIFFE JSON */
  bundle: () => string;
  log: Logger;
}

export interface BundleEndpoint {
  address: AddressInfo;
  /** Re-reads `tls()` for new connections (after the server SVID rotated, or new files). */
  refresh(): void;
  close(): Promise<void>;
}

/**
 * The SPIFFE bundle endpoint (SPIFFE Federation section 4): `GET /` answers the
 * current bundle as `application/json`, to anyone — there is no client
 * authentication of any kind, since a bundle is public and its consumers
 * authenticate the server instead. HEAD is answered too; any other method gets
 * 405 and any other path 404.
 *
 * @example
 * const ep = await startBundleEndpoint({ bind, profile: 'https_spiffe', tls: () => svid, bundle: () => encodeBundle(ca.bundle()), log });
 * ca.onBundleChange(() => ep.refresh());
 */
export async function startBundleEndpoint(o: BundleEndpointOptions): Promise<BundleEndpoint> {
  const secure = () => {
    const t = o.tls();
    const key = typeof t.key === 'string' ? t.key : (t.key.export({ format: 'pem', type: 'pkcs8' }) as string);
    return { key, cert: t.cert, ...TLS_OPTIONS };
  };
  const server = https.createServer(secure(), (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, body: string, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (path !== '/') return send(404, JSON.stringify({ error: { code: 'NOT_FOUND', message: 'the bundle is served at /' } }));
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return send(405, JSON.stringify({ error: { code: 'INVALID_ARGUMENT', message: 'use GET' } }), { allow: 'GET, HEAD' });
    }
    let doc: string;
    try {
      doc = o.bundle();
    } catch (err) {
      o.log.error({ err }, 'bundle endpoint has no bundle to serve');
      return send(503, JSON.stringify({ error: { code: 'UNAVAILABLE', message: 'bundle not available yet' } }));
    }
    // Consumers poll at the refresh hint themselves; a cache in between would only delay rotations.
    send(200, doc, { 'cache-control': 'no-cache' });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((res, rej) => server.once('error', rej).listen(o.bind.port, o.bind.host, () => res()));
  const address = server.address() as AddressInfo;
  o.log.info({ address: `${address.address}:${address.port}`, profile: o.profile }, 'bundle endpoint listening');
  return {
    address,
    refresh() {
      try {
        server.setSecureContext(secure());
      } catch (err) {
        // keep serving with the previous certificate rather than not at all
        o.log.error({ err }, 'bundle endpoint certificate reload failed');
      }
    },
    close: () =>
      new Promise((res) => {
        server.close(() => res());
        server.closeAllConnections();
      }),
  };
}
