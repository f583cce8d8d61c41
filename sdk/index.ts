/**
 * Tessera's SDK for Node workloads (`tessera/sdk`, or the `@tessera/sdk` package):
 * SVIDs and bundles from the SPIFFE Workload API kept current (X509Source,
 * JWTSource, BundleSource), SPIFFE mTLS for `tls`, `https`, `http2` and `fetch`
 * with go-spiffe's authorizers, JWT-SVID validation, and Cedar policies over
 * SPIFFE IDs. The Express middleware and the MCP guard are separate entry
 * points (`tessera/sdk/express`, `tessera/sdk/mcp`) so that neither express nor
 * the MCP SDK is loaded by a workload that needs neither.
 */
export { WorkloadAPIClient, fromGrpcError, parseEndpoint, type JWTSVID, type X509Context, type X509SVID, type WorkloadAPIClientOptions, type WorkloadEndpoint } from './workloadapi/client';
export { X509Source, bySpiffeId, byHint, type SVIDPicker, type SourceOptions, type X509SVIDWithKey } from './source/x509-source';
export { JWTSource, type FetchedJWTSVID, type JWTSourceOptions } from './source/jwt-source';
export { BundleSource } from './source/bundle-source';
export { TokenSource, type AccessToken, type TokenExchangeOptions, type TokenGrant } from './source/token-source';
export { resolveWorkloadEndpoint } from './source/endpoint';
export { authorizeAny, authorizeID, authorizeIf, authorizeMemberOf, authorizeOneOf, type Authorizer } from './tls/authorizers';
export { peerIdentity, verifyPeer, peerChain, socketPeerChain, type BundleProvider, type PeerIdentity } from './tls/peer';
export { attachMTLSServer, mtlsServerOptions, type MTLSServerConfig } from './tls/server';
export { SpiffeHttpsAgent, connectMTLS, mtlsClientOptions, type MTLSClientConfig } from './tls/client';
export { spiffeDispatcher, spiffeFetch } from './tls/fetch';
export { PolicyEngine, PolicyError, type PolicyDecision, type PolicyRequest } from './policy/engine';
export { PolicyFile, type PolicyFileOptions } from './policy/policy-file';
export { PolicyAuthorizer, type DecisionInput, type AuditedDecision, type PolicySource } from './policy/authorizer';
export { TESSERA_SCHEMA, type AuthnMethod } from './policy/schema';
export { validateJWTSVID, JWTSVIDError, type ValidatedJWTSVID, type JWTSVIDRejectReason } from '../common/jwtsvid/validate';
export { X509SVIDError, validateX509SVIDChain } from '../common/x509svid/validate';
export { parseSpiffeId, parseTrustDomain, SpiffeId } from '../common/spiffeid/spiffe-id';
export { TesseraError, type ErrorCode } from '../common/errors';
export type { Logger } from './log';
