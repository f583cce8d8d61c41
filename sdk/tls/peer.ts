import type { PeerCertificate, TLSSocket } from 'node:tls';
import { permissionDenied, TesseraError } from '../../common/errors';
import { parseSpiffeId, type SpiffeId } from '../../common/spiffeid/spiffe-id';
import { validateX509SVIDChain } from '../../common/x509svid/validate';
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
  const { spiffeId } = validateX509SVIDChain(chain, (td) => bundles.bundleFor(td), now);
  const id = parseSpiffeId(spiffeId);
  const refused = authorize(id);
  if (refused !== undefined) throw permissionDenied(refused);
  return { id, chain };
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

/** Records the verified identity of a connection (for the middleware and handlers to read). */
export function rememberPeer(socket: object, peer: PeerIdentity): void {
  identities.set(socket, peer);
}

/** The verified SPIFFE identity of a TLS connection made through the SDK, if any. */
export function peerIdentity(socket: TLSSocket | object | undefined | null): PeerIdentity | undefined {
  return socket ? identities.get(socket) : undefined;
}

/** A short reason for logs: the TesseraError's message, or a generic one. */
export const reasonOf = (e: unknown): string => (e instanceof TesseraError ? e.message : 'peer verification failed');
