import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import * as jose from 'jose';

/**
 * A stand-in for a model provider (OpenAI's and Anthropic's services cannot be
 * reached from the test machine, and the example must run offline), behaving as
 * their public documentation says for workload identity federation. The token
 * endpoint (`POST /v1/oauth/token`):
 *   - it finds the keys through OIDC discovery of the registered issuer
 *     (`<issuer>/.well-known/openid-configuration` → `jwks_uri`), as "discovery" mode;
 *   - it validates the JWT-SVID: `kid` header and signature by that key, `iss`
 *     equal to the registered issuer, `aud` containing the registered audience
 *     exactly, `iat` and `exp` present and `exp` in the future, and (when asked)
 *     a `jti` never seen before;
 *   - RFC 8693 token exchange (`subject_token`, `subject_token_type` jwt) and
 *     RFC 7523 jwt-bearer (`assertion`) grants; other required form parameters
 *     (OpenAI's `identity_provider_id`, `service_account_id`) are checked when configured;
 *   - answers `{access_token, expires_in, token_type: "Bearer"}`, or 400
 *     `{error: "invalid_grant" | "invalid_request" | "unsupported_grant_type", error_description}`.
 * Its JWKS cache behaves like jose's remote key set (and so like a typical
 * relying party): keys are fetched again on an unknown `kid` at most once per
 * `cooldownMs`, and after `maxAgeMs` anyway. The API (`POST /v1/messages`)
 * answers a canned completion to a request with a valid, unexpired access token
 * (`Authorization: Bearer ...`) and 401 otherwise.
 */
export interface TokenEndpointOptions {
  issuer: string;
  audience: string;
  grant: 'token-exchange' | 'jwt-bearer';
  requireJti?: boolean;
  requiredParams?: Record<string, string>;
  expiresIn: number;
  cooldownMs?: number;
  maxAgeMs?: number;
}

export interface TokenEndpoint {
  url: string;
  /** the API the access tokens are for: `POST /v1/messages` (the token endpoint is `url`) */
  apiUrl: string;
  issued: Array<{ accessToken: string; sub: string; kid: string; jti?: string; at: number; expiresAt: number }>;
  refused: Array<{ error: string; description: string }>;
  /** API calls answered, by the SPIFFE ID the access token was issued to */
  apiCalls: string[];
  close(): Promise<void>;
}

const GRANTS = {
  'token-exchange': 'urn:ietf:params:oauth:grant-type:token-exchange',
  'jwt-bearer': 'urn:ietf:params:oauth:grant-type:jwt-bearer',
};

export async function startTokenEndpoint(o: TokenEndpointOptions): Promise<TokenEndpoint> {
  const discovery = (await (await fetch(`${o.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`)).json()) as { issuer: string; jwks_uri: string };
  if (discovery.issuer !== o.issuer) throw new Error(`discovery issuer ${discovery.issuer} is not the registered ${o.issuer}`);
  const jwks = jose.createRemoteJWKSet(new URL(discovery.jwks_uri), { cooldownDuration: o.cooldownMs ?? 30_000, cacheMaxAge: o.maxAgeMs ?? 600_000 });
  const seenJti = new Set<string>();
  const issued: TokenEndpoint['issued'] = [];
  const refused: TokenEndpoint['refused'] = [];

  const apiCalls: string[] = [];
  const server = http.createServer((req, res) => {
    if (req.url === '/v1/messages') {
      req.resume();
      const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
      const t = m && issued.find((i) => i.accessToken === m[1] && i.expiresAt > Date.now());
      if (!t) return void res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'invalid or expired access token' }));
      apiCalls.push(t.sub);
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ content: [{ type: 'text', text: `a completion from the model-provider stand-in for ${t.sub}` }] }));
    }
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', () => {
      const fail = (status: number, error: string, description: string) => {
        refused.push({ error, description });
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error, error_description: description }));
      };
      void (async () => {
        if (req.method !== 'POST' || req.headers['content-type'] !== 'application/x-www-form-urlencoded') return fail(400, 'invalid_request', 'POST a form');
        const form = new URLSearchParams(raw);
        if (form.get('grant_type') !== GRANTS[o.grant]) return fail(400, 'unsupported_grant_type', `expected ${GRANTS[o.grant]}`);
        let jwt: string | null;
        if (o.grant === 'token-exchange') {
          if (form.get('subject_token_type') !== 'urn:ietf:params:oauth:token-type:jwt') return fail(400, 'invalid_request', 'subject_token_type must be jwt');
          jwt = form.get('subject_token');
        } else jwt = form.get('assertion');
        if (!jwt) return fail(400, 'invalid_request', 'no token');
        for (const [k, v] of Object.entries(o.requiredParams ?? {})) if (form.get(k) !== v) return fail(400, 'invalid_request', `${k} is wrong or missing`);
        let payload: jose.JWTPayload;
        let kid: string;
        try {
          const header = jose.decodeProtectedHeader(jwt);
          if (!header.kid) return fail(400, 'invalid_grant', 'kid header required');
          kid = header.kid;
          ({ payload } = await jose.jwtVerify(jwt, jwks, { issuer: o.issuer, audience: o.audience, requiredClaims: ['iat', 'exp', 'sub'] }));
        } catch (e) {
          return fail(400, 'invalid_grant', (e as Error).message);
        }
        if (o.requireJti) {
          if (typeof payload.jti !== 'string') return fail(400, 'invalid_grant', 'jti required');
          if (seenJti.has(payload.jti)) return fail(400, 'invalid_grant', 'jti already used');
          seenJti.add(payload.jti);
        }
        const accessToken = `at-${randomBytes(16).toString('hex')}`;
        issued.push({ accessToken, sub: String(payload.sub), kid, jti: typeof payload.jti === 'string' ? payload.jti : undefined, at: Date.now(), expiresAt: Date.now() + o.expiresIn * 1000 });
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: accessToken, expires_in: o.expiresIn, token_type: 'Bearer' }));
      })();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: `${base}/v1/oauth/token`,
    apiUrl: `${base}/v1/messages`,
    issued,
    refused,
    apiCalls,
    close: () => new Promise((r) => server.close(() => r())),
  };
}
