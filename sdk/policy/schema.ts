import type { SpiffeId } from '../../common/spiffeid/spiffe-id';

/**
 * The Cedar schema of Tessera's authorization requests (Cedar schema syntax).
 * Policies are validated against it when they are loaded, so a misspelt
 * attribute or entity type is an error at load, not a silent deny at run time.
 *
 * - principal `Workload::"spiffe://td/path"`, member of `TrustDomain::"td"`,
 *   with attributes `trust_domain` and `path`;
 * - `Action::"http"` on `Route::"POST /v1/chat"` (method, space, path);
 * - `Action::"call_tool"` on `Tool::"<name>"` (an MCP tool);
 * - context: `authn` ("mtls" or "jwt"), `correlation_id`, the JWT-SVID's
 *   `claims` when it authenticated with one, and for tools the call's `arguments`.
 *
 * Tool arguments are whatever the tools take, so their type is `ToolArguments`,
 * empty here: to write conditions on arguments, pass your own schema with that
 * type filled in (`PolicyEngine.fromText(text, { schema })`), e.g.
 * `type ToolArguments = { model?: String, max_tokens?: Long };`.
 */
export const TESSERA_SCHEMA = `
entity TrustDomain;
entity Workload in [TrustDomain] { trust_domain: String, path: String };
entity Route { method: String, path: String };
entity Tool { name: String };

type JWTClaims = { sub?: String, iss?: String, aud?: Set<String>, exp?: Long, iat?: Long, nbf?: Long, jti?: String };
type ToolArguments = {};

action "http" appliesTo {
  principal: [Workload],
  resource: [Route],
  context: { authn: String, correlation_id: String, claims?: JWTClaims }
};

action "call_tool" appliesTo {
  principal: [Workload],
  resource: [Tool],
  context: { authn: String, correlation_id: String, claims?: JWTClaims, arguments?: ToolArguments }
};
`;

/** How the caller proved its identity. */
export type AuthnMethod = 'mtls' | 'jwt';

export const WORKLOAD = 'Workload';
export const TRUST_DOMAIN = 'TrustDomain';

/** The principal entity (with its trust domain as parent) for a caller. */
export function workloadEntity(id: SpiffeId) {
  return {
    uid: { type: WORKLOAD, id: id.toString() },
    attrs: { trust_domain: id.trustDomain, path: id.path },
    parents: [{ type: TRUST_DOMAIN, id: id.trustDomain }],
  };
}

/** A Route or Tool resource entity. */
export function resourceEntity(type: string, id: string) {
  if (type === 'Route') {
    const i = id.indexOf(' ');
    return { uid: { type, id }, attrs: { method: i < 0 ? id : id.slice(0, i), path: i < 0 ? '' : id.slice(i + 1) }, parents: [] };
  }
  if (type === 'Tool') return { uid: { type, id }, attrs: { name: id }, parents: [] };
  return { uid: { type, id }, attrs: {}, parents: [] };
}
