import https from 'node:https';
import tls, { type ConnectionOptions, type PeerCertificate, type SecureContext, type TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { TLS_OPTIONS } from '../../common/tls';
import { derToPem } from '../../common/pem';
import type { X509Source, SVIDPicker } from '../source/x509-source';
import type { Authorizer } from './authorizers';
import { peerChain, reasonOf, rememberPeer, verifyPeer, type BundleProvider, type PeerIdentity } from './peer';

export interface MTLSClientConfig {
  /** the workload's SVID (and, unless `bundles` is given, the bundles servers are verified with) */
  source: X509Source;
  /** which servers are acceptable; see authorizers.ts */
  authorizer: Authorizer;
  bundles?: BundleProvider;
  picker?: SVIDPicker;
  /** false: verify the server's SVID but present none (go-spiffe's TLSClientConfig); default true */
  presentSVID?: boolean;
}

/**
 * `tls.connect` options for the current moment: the workload's SVID as client
 * certificate, every CA held for OpenSSL's chain check, and a
 * `checkServerIdentity` that applies the SPIFFE rules (the chain must verify to
 * the bundle of the server's own trust domain, then the authorizer) instead of
 * host names. `checkServerIdentity` is skipped on a resumed TLS session, so
 * session reuse is off (`session: undefined`, no ticket cache): every
 * connection is a full handshake whose server identity is checked.
 * Call it per connection so a rotated SVID is used at once; `onVerified` hears
 * the server's verified identity.
 * @throws TesseraError UNAVAILABLE before the source has an SVID
 */
export function mtlsClientOptions(c: MTLSClientConfig, onVerified?: (peer: PeerIdentity) => void): ConnectionOptions {
  const bundles = c.bundles ?? c.source;
  return {
    ...TLS_OPTIONS,
    secureContext: secureContextFor(c),
    rejectUnauthorized: true,
    checkServerIdentity: (_host: string, cert: PeerCertificate) => {
      try {
        const peer = verifyPeer(peerChain(cert), bundles, c.authorizer);
        onVerified?.(peer);
        return undefined;
      } catch (e) {
        return new Error(`server is not an acceptable spiffe peer: ${reasonOf(e)}`);
      }
    },
  };
}

/**
 * The TLS context for the source's current SVID and bundles, made once per
 * update of the source (parsing the key, the chain and every CA for each
 * connection would cost more than the rest of the handshake's own work).
 */
const contexts = new WeakMap<object, WeakMap<object, { presentSVID: boolean; ctx: SecureContext }[]>>();
function secureContextFor(c: MTLSClientConfig): SecureContext {
  const present = c.presentSVID !== false;
  const svid = present ? c.source.svid(c.picker) : undefined;
  const bundles = c.source.allBundles();
  const byBundles = contexts.get(bundles) ?? new WeakMap();
  contexts.set(bundles, byBundles);
  const k = (svid ?? bundles) as object;
  const list = byBundles.get(k) ?? [];
  const hit = list.find((e) => e.presentSVID === present);
  if (hit) return hit.ctx;
  const ctx = tls.createSecureContext({
    ...TLS_OPTIONS,
    ca: [...bundles.values()].flat().map((d) => derToPem(d)),
    ...(svid ? { cert: svid.chain.map((d) => derToPem(d)).join(''), key: derToPem(svid.privateKey, 'PRIVATE KEY') } : {}),
  });
  list.push({ presentSVID: present, ctx });
  byBundles.set(k, list);
  return ctx;
}

/**
 * Connects with {@link mtlsClientOptions} and records the server's verified identity
 * (`peerIdentity(socket)`). Resolves once the handshake and the checks passed.
 */
export function connectMTLS(c: MTLSClientConfig, target: { host: string; port: number; servername?: string }): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    let peer: PeerIdentity | undefined;
    const socket = tls.connect({ ...mtlsClientOptions(c, (p) => (peer = p)), host: target.host, port: target.port, servername: target.servername });
    socket.once('secureConnect', () => {
      if (peer) rememberPeer(socket, peer);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/**
 * An `https.Agent` for SPIFFE mTLS: each new connection is made with the SVID
 * current at that moment (keep-alive connections made before a rotation stay
 * open and valid), the server is verified by the SPIFFE rules, and TLS sessions
 * are never resumed (see {@link mtlsClientOptions}).
 *
 * @example
 * const agent = new SpiffeHttpsAgent({ source, authorizer: authorizeID('spiffe://example.org/inference') });
 * https.get('https://inference.internal:8443/v1/models', { agent }, ...);
 */
export class SpiffeHttpsAgent extends https.Agent {
  constructor(
    private readonly config: MTLSClientConfig,
    agentOptions: https.AgentOptions = {},
  ) {
    super({ keepAlive: true, ...agentOptions, maxCachedSessions: 0 });
  }

  // Returns the socket synchronously, as https.Agent's own does (Node then calls its callback itself).
  override createConnection(options: https.RequestOptions): Duplex {
    let peer: PeerIdentity | undefined;
    const socket = tls.connect({
      ...(options as ConnectionOptions),
      ...mtlsClientOptions(this.config, (p) => (peer = p)),
      session: undefined,
      servername: (options as ConnectionOptions).servername ?? (isIp(options.host ?? '') ? undefined : (options.host ?? undefined)),
    });
    socket.once('secureConnect', () => peer && rememberPeer(socket, peer));
    return socket;
  }
}

const isIp = (h: string) => /^[\d.]+$/.test(h) || h.includes(':');
