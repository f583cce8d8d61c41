import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { TLSSocket } from 'node:tls';
import { randomUUID } from 'node:crypto';
import { TesseraError } from '../../common/errors';
import { parseSpiffeId, type SpiffeId } from '../../common/spiffeid/spiffe-id';
import { defaultLogger, type Logger } from '../log';
import { PolicyAuthorizer, type PolicySource } from '../policy/authorizer';
import type { AuthnMethod } from '../policy/schema';
import type { JWTSource } from '../source/jwt-source';
import { peerIdentity } from '../tls/peer';

/** The caller's identity, as the middleware sets it on `req.spiffe`. */
export interface SpiffeCaller {
  id: SpiffeId;
  trustDomain: string;
  /** how it was proved: the verified mTLS peer, or a JWT-SVID bearer token */
  via: AuthnMethod;
  /** the JWT-SVID's claims (via `jwt`) */
  claims?: Record<string, unknown>;
  correlationId: string;
}

export interface SpiffeAuthOptions {
  /** accept the TLS peer verified by attachMTLSServer as the caller; default true */
  mtls?: boolean;
  /** accept `Authorization: Bearer <JWT-SVID>` for this audience */
  jwt?: {
    audience: string;
    /** validates locally with this source's JWT bundles (default when given) */
    source?: JWTSource;
    /** or any validator, e.g. `(t, a) => jwtSource.validateWithAgent(t, a)` */
    validate?: (token: string, audience: string) => Promise<{ spiffeId: string; claims: Record<string, unknown> }>;
  };
  /** decide `http` on `Route::"<METHOD> <path>"` for every request (default: authenticate only) */
  policy?: PolicySource | PolicyAuthorizer;
  /** the Route id of a request; default `${req.method} ${req.baseUrl}${req.path}` (the full path, also under app.use mounts) */
  route?: (req: Request) => string;
  log?: Logger;
  /** realm in WWW-Authenticate; default "tessera" */
  realm?: string;
}

declare module 'express-serve-static-core' {
  interface Request {
    /** set by spiffeAuth: who is calling */
    spiffe?: SpiffeCaller;
  }
}

const CORRELATION = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Express middleware that authenticates the caller by SPIFFE ID and, with a
 * policy, authorizes the request. The identity comes from the mTLS peer the
 * server verified (attachMTLSServer), else from a JWT-SVID bearer token for the
 * configured audience. It sets `req.spiffe`, and `req.auth` in the shape the MCP
 * SDK's Streamable HTTP transport hands to tool handlers (`extra.authInfo`).
 *
 * Answers: 401 with `WWW-Authenticate: Bearer realm=...` when there is no valid
 * identity (`error="invalid_token"` and the failed check for a bad token), 403
 * when the policy denies; bodies are `{"error": {"code", "message", "correlation_id"}}`.
 * Neither the token nor anything about keys is logged or echoed.
 */
export function spiffeAuth(o: SpiffeAuthOptions = {}): RequestHandler {
  const log = o.log ?? defaultLogger();
  const realm = o.realm ?? 'tessera';
  const authorizer = o.policy === undefined ? undefined : o.policy instanceof PolicyAuthorizer ? o.policy : new PolicyAuthorizer(o.policy, log);
  const validate = o.jwt?.validate ?? (o.jwt?.source ? (t: string, a: string) => o.jwt!.source!.validate(t, a) : undefined);
  const routeOf = o.route ?? ((req: Request) => `${req.method} ${req.baseUrl}${req.path}`);

  const fail = (res: Response, status: 401 | 403, code: string, message: string, correlationId: string, tokenError?: boolean) => {
    if (status === 401) {
      const params = [`realm="${realm}"`];
      if (tokenError) params.push('error="invalid_token"', `error_description="${message.replace(/["\\]/g, "'")}"`);
      res.setHeader('WWW-Authenticate', `Bearer ${params.join(', ')}`);
    }
    res.status(status).json({ error: { code, message, correlation_id: correlationId } });
  };

  return (req: Request, res: Response, next: NextFunction) => {
    const header = req.headers['x-correlation-id'];
    const correlationId = typeof header === 'string' && CORRELATION.test(header) ? header : randomUUID();
    res.setHeader('x-correlation-id', correlationId);
    void (async () => {
      let caller: SpiffeCaller | undefined;
      let token: string | undefined;
      const peer = o.mtls === false ? undefined : peerIdentity(req.socket as TLSSocket);
      if (peer) caller = { id: peer.id, trustDomain: peer.id.trustDomain, via: 'mtls', correlationId };
      else {
        const auth = req.headers.authorization;
        const m = typeof auth === 'string' ? /^Bearer ([A-Za-z0-9._~+/=-]+)$/i.exec(auth) : null;
        if (m && validate && o.jwt) {
          token = m[1]!;
          try {
            const v = await validate(token, o.jwt.audience);
            const id = parseSpiffeId(v.spiffeId);
            caller = { id, trustDomain: id.trustDomain, via: 'jwt', claims: v.claims, correlationId };
          } catch (e) {
            const why = e instanceof TesseraError ? e.message : 'the token could not be validated';
            log.warn({ event: 'authn_failed', via: 'jwt', reason: why, correlation_id: correlationId, path: req.path }, 'authentication failed');
            return fail(res, 401, 'UNAUTHENTICATED', why, correlationId, true);
          }
        }
      }
      if (!caller) {
        const how = [o.mtls === false ? '' : 'an mtls client certificate (x509-svid)', o.jwt ? `a jwt-svid bearer token for audience ${o.jwt.audience}` : '']
          .filter(Boolean)
          .join(' or ');
        return fail(res, 401, 'UNAUTHENTICATED', `this endpoint needs ${how || 'a spiffe identity'}`, correlationId);
      }
      req.spiffe = caller;
      (req as Request & { auth?: unknown }).auth = { token: token ?? '', clientId: caller.id.toString(), scopes: [], extra: { spiffe: caller } };
      if (authorizer) {
        const route = routeOf(req);
        const d = authorizer.decide({ principal: caller.id, authn: caller.via, action: 'http', resource: { type: 'Route', id: route }, claims: caller.claims, correlationId });
        if (!d.allowed) return fail(res, 403, 'PERMISSION_DENIED', `${caller.id} may not ${route}`, correlationId);
      }
      next();
    })().catch(next);
  };
}

/** The caller set by {@link spiffeAuth}; throws if the middleware did not run. */
export function callerOf(req: Request): SpiffeCaller {
  if (!req.spiffe) throw new TesseraError('UNAUTHENTICATED', 'spiffeAuth did not run for this request');
  return req.spiffe;
}
