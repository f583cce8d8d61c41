import type { SecureContextOptions, Server as TLSServer, TLSSocket } from 'node:tls';
import { TLS_OPTIONS } from '../../common/tls';
import { permissionDenied } from '../../common/errors';
import { derToPem } from '../../common/pem';
import type { X509Source, SVIDPicker } from '../source/x509-source';
import type { Authorizer } from './authorizers';
import { socketPeerChain, reasonOf, rememberPeer, verifyPeer, type BundleProvider, type PeerIdentity } from './peer';

export interface MTLSServerConfig {
  /** the workload's SVID (and, unless `bundles` is given, the bundles peers are verified with) */
  source: X509Source;
  /** who may connect; see authorizers.ts */
  authorizer: Authorizer;
  /** where peers' bundles come from; default the source (own trust domain and federated ones) */
  bundles?: BundleProvider;
  /** which of the workload's SVIDs to present; default its default identity */
  picker?: SVIDPicker;
  /**
   * `require` (default): mTLS, a peer without a valid SVID is refused before any request is read;
   * `optional`: a peer may present an SVID (it is verified, and refused when
   * invalid) or none (it can then authenticate with a JWT-SVID, see spiffeAuth);
   * `none`: TLS with the server's SVID only (go-spiffe's TLSServerConfig).
   */
  clientCert?: 'require' | 'optional' | 'none';
  /** told about every refused peer (no key material in it) */
  onRefused?: (reason: string, socket: TLSSocket) => void;
}

/** The certificate, key and CAs to present now. */
function secureContext(c: MTLSServerConfig): SecureContextOptions {
  const svid = c.source.svid(c.picker);
  const cas = [...(c.source.allBundles().values())].flat();
  return {
    ...TLS_OPTIONS,
    cert: svid.chain.map((d) => derToPem(d)).join(''),
    key: derToPem(svid.privateKey, 'PRIVATE KEY'),
    // OpenSSL checks the chain against every CA we hold; which CA may vouch for which
    // trust domain is checked right after the handshake (verifyPeer).
    ca: cas.map((d) => derToPem(d)),
  };
}

/**
 * Options for `tls.createServer`, `https.createServer` or `http2.createSecureServer`
 * presenting the workload's current SVID and asking for the peer's. Pass the
 * server to {@link attachMTLSServer} to verify peers and follow rotations.
 * @throws TesseraError UNAVAILABLE before the source has an SVID (await `source.ready()`)
 */
export function mtlsServerOptions(c: MTLSServerConfig) {
  const mode = c.clientCert ?? 'require';
  // As go-spiffe does (RequireAnyClientCert + its own VerifyPeerCertificate): OpenSSL asks
  // for the certificate, and attachMTLSServer decides, by the SPIFFE rules, before any
  // request is read. With rejectUnauthorized, Node destroys a socket whose certificate
  // OpenSSL's own check refused without any event, so a refusal could not be seen or reported.
  return { ...secureContext(c), requestCert: mode !== 'none', rejectUnauthorized: false };
}

/**
 * Makes a TLS server a SPIFFE mTLS server: every connection's peer is verified
 * (chain to the bundle of its own trust domain, then the authorizer) as soon as
 * its handshake completes, before any request on it is read, and refused
 * connections are destroyed; the verified identity is kept for `peerIdentity(socket)`.
 * Each update of the source replaces the certificate, key and CAs with
 * `setSecureContext`: new connections get the new SVID, open connections and the
 * listener are untouched.
 * @returns a function that stops following the source
 */
export function attachMTLSServer(server: TLSServer, c: MTLSServerConfig): () => void {
  const bundles = c.bundles ?? c.source;
  const mode = c.clientCert ?? 'require';
  // Before the HTTP layer's own listener: no request is parsed from a refused peer.
  // An http2 server makes its session for a socket in its own 'secureConnection'
  // listener, synchronously right after this one, and hands handlers the session
  // and a Proxy of the socket: the identity is recorded for those too.
  let justVerified: PeerIdentity | undefined;
  server.prependListener('secureConnection', (socket: TLSSocket) => {
    justVerified = undefined;
    if (mode === 'none') return;
    const chain = socketPeerChain(socket);
    if (mode === 'optional' && chain.length === 0) return; // no certificate: the application decides (a JWT-SVID, or nothing)
    try {
      if (chain.length === 0) throw permissionDenied('the peer presented no certificate (an X509-SVID is required)');
      justVerified = verifyPeer(chain, bundles, c.authorizer);
      rememberPeer(socket, justVerified);
    } catch (e) {
      c.onRefused?.(reasonOf(e), socket);
      socket.destroy();
    }
  });
  server.on('secureConnection', () => (justVerified = undefined)); // after http2's own listener
  const onSession = (session: { socket: object }) => {
    if (!justVerified) return;
    rememberPeer(session, justVerified);
    rememberPeer(session.socket, justVerified);
  };
  server.on('session', onSession);
  const rotate = () => {
    try {
      server.setSecureContext(secureContext(c));
    } catch {
      // no valid SVID at the moment (all expired): keep serving the last context; the next update retries
    }
  };
  c.source.on('update', rotate);
  return () => {
    c.source.off('update', rotate);
    server.off('session', onSession);
  };
}
