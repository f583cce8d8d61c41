import { parseSpiffeId, parseTrustDomain, type SpiffeId } from '../../common/spiffeid/spiffe-id';

/**
 * Decides whether a peer whose X.509-SVID verified may talk to us, as
 * go-spiffe's `tlsconfig.Authorizer`: undefined to allow, or the reason to refuse
 * (it ends up in the error the TLS layer reports and in logs).
 */
export type Authorizer = (peer: SpiffeId) => string | undefined;

/** Any peer with a valid SVID (of a trust domain whose bundle we hold). */
export const authorizeAny = (): Authorizer => () => undefined;

/** Exactly this SPIFFE ID. */
export function authorizeID(id: string): Authorizer {
  const want = parseSpiffeId(id).toString();
  return (peer) => (peer.toString() === want ? undefined : `peer ${peer} is not ${want}`);
}

/** One of these SPIFFE IDs. */
export function authorizeOneOf(...ids: string[]): Authorizer {
  const want = new Set(ids.map((i) => parseSpiffeId(i).toString()));
  return (peer) => (want.has(peer.toString()) ? undefined : `peer ${peer} is not one of the allowed ids`);
}

/** Any workload of this trust domain. */
export function authorizeMemberOf(trustDomain: string): Authorizer {
  const td = parseTrustDomain(trustDomain);
  return (peer) => (peer.trustDomain === td ? undefined : `peer ${peer} is not a member of ${td}`);
}

/** A predicate over the peer's ID; `reason` names what was required. */
export function authorizeIf(pred: (peer: SpiffeId) => boolean, reason = 'the authorizer refused it'): Authorizer {
  return (peer) => (pred(peer) ? undefined : `peer ${peer}: ${reason}`);
}
