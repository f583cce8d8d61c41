import type { PeerCertificate, TLSSocket } from 'node:tls';
import { permissionDenied, TesseraError } from '../../common/errors';
import { parseSpiffeId, type SpiffeId } from '../../common/spiffeid/spiffe-id';
import { validateX509SVIDChain } from '../../common/x509svid/validate';
import { certificateValidity } from '../../common/x509svid/certificate-validity';
import { createHash, type X509Certificate } from 'node:crypto';
import type { Authorizer } from './authorizers';

/** Where a peer's trust domain bundle comes from: an X509Source, a BundleSource, or a function. */
export interface BundleProvider {
  bundleFor(trustDomain: string): Buffer[] | undefined;
}

/** The verified identity of a TLS peer. */
export interface PeerIdentity {
  id: SpiffeId;
  /** DER, leaf first */
  chain: Buffer[];
}

const MAX_CHAIN = 16;
/**
 * Verified identities by connection object: the TLSSocket, and for http2 also its
 * session and the session's `socket` (a Proxy of the TLSSocket, not the same
 * object; see attachMTLSServer). A WeakMap rather than a property on the socket:
 * adding a property to Node's socket objects slows every later access to them
 * (measured: keep-alive requests/s fell ~5 %).
 */
const identities = new WeakMap<object, PeerIdentity>();

/**
 * Verifies a peer's chain by the X.509-SVID rules (common/x509svid/validate.ts):
 * exactly one `spiffe://` URI SAN on a leaf that is not a CA and has neither
 * keyCertSign nor cRLSign, and a chain that validates up to the bundle **of the
 * leaf's own trust domain** only: a CA of one trust domain never vouches for an
 * ID in another, even when both bundles are held. Then the authorizer decides.
 * @throws TesseraError: INVALID_ARGUMENT from validation (named check), PERMISSION_DENIED from the authorizer
 */
export function verifyPeer(chain: Buffer[], bundles: BundleProvider, authorize: Authorizer, now = new Date()): PeerIdentity {
  const id = verifiedId(chain, bundles, now);
  const refused = authorize(id);
  if (refused !== undefined) throw permissionDenied(refused);
  return { id, chain };
}

/**
 * Chains already validated, by the hash of their certificates: a workload's peers
 * reconnect with the same SVID for minutes, and full path validation (two
 * certificate parsers, a signature per link) would otherwise run on every
 * handshake. An entry is reused only while the bundle it was checked against is
 * the very one the provider hands out now (a source replaces its bundles on every
 * update) and until the chain's first notAfter.
 */
const verified = new Map<string, { id: SpiffeId; trustDomain: string; roots: Buffer[]; until: number }>();
const MAX_VERIFIED = 10_000;

function verifiedId(chain: Buffer[], bundles: BundleProvider, now: Date): SpiffeId {
  const k = createHash('sha256').update(Buffer.concat(chain)).digest('base64');
  const hit = verified.get(k);
  if (hit && now.getTime() < hit.until && bundles.bundleFor(hit.trustDomain) === hit.roots) return hit.id;
  const { spiffeId } = validateX509SVIDChain(chain, (td) => bundles.bundleFor(td), now);
  const id = parseSpiffeId(spiffeId);
  const roots = bundles.bundleFor(id.trustDomain);
  if (roots) {
    if (verified.size >= MAX_VERIFIED) verified.clear();
    const until = Math.min(...chain.map((c) => certificateValidity(c).notAfter * 1000));
    verified.set(k, { id, trustDomain: id.trustDomain, roots, until });
  }
  return id;
}

/** The peer chain Node saw, leaf first (from `getPeerCertificate(true)`'s issuer links). */
export function peerChain(cert: PeerCertificate | undefined): Buffer[] {
  const chain: Buffer[] = [];
  type Linked = PeerCertificate & { issuerCertificate?: Linked };
  for (let c = cert as Linked | undefined; c && c.raw && chain.length < MAX_CHAIN; ) {
    chain.push(c.raw);
    const up = c.issuerCertificate;
    if (!up || up === c || up.fingerprint256 === c.fingerprint256) break; // a self-issued root ends it
    c = up;
  }
  return chain;
}

/**
 * The chain a TLS peer sent, leaf first, from `getPeerX509Certificate()` and its
 * `issuerCertificate` links. On a server this is the path to take:
 * `getPeerCertificate(true)` decodes every certificate into a JS object with
 * three fingerprints (about 190 µs for a two-certificate chain here, a quarter of
 * a whole P-256 handshake), where the X509Certificate objects are lazy (≈ 3 µs).
 */
export function socketPeerChain(socket: TLSSocket): Buffer[] {
  const chain: Buffer[] = [];
  for (let c: X509Certificate | undefined = socket.getPeerX509Certificate(); c && chain.length < MAX_CHAIN; ) {
    chain.push(c.raw);
    const up: X509Certificate | undefined = c.issuerCertificate;
    if (!up || up === c || up.raw.equals(c.raw)) break; // a self-issued root ends it
    c = up;
  }
  return chain;
}

/** Records the verified identity of a connection (for the middleware and handlers to read). */
export function rememberPeer(socket: object, peer: PeerIdentity): void {
  identities.set(socket, peer);
}

/**
 * The verified SPIFFE identity of a TLS connection made through the SDK, if any:
 * pass the TLSSocket (`req.socket` for https), an http2 session's `socket`, or
 * the `Http2Session` itself.
 */
export function peerIdentity(socket: TLSSocket | object | undefined | null): PeerIdentity | undefined {
  return socket ? identities.get(socket) : undefined;
}

/** A short reason for logs: the TesseraError's message, or a generic one. */
export const reasonOf = (e: unknown): string => (e instanceof TesseraError ? e.message : 'peer verification failed');
