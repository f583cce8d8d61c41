import { EventEmitter } from 'node:events';
import { fetch as undiciFetch } from 'undici';
import { Backoff } from '../../common/backoff';
import { invalidArgument, TesseraError, unavailable } from '../../common/errors';
import type { JWTSource } from './jwt-source';

/**
 * Keyless access to an API that takes a workload's JWT-SVID in exchange for a
 * short-lived access token (workload identity federation), with the two grants
 * model providers use:
 *   - `token-exchange` (RFC 8693, OpenAI): `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`,
 *     `subject_token=<JWT-SVID>`, `subject_token_type=urn:ietf:params:oauth:token-type:jwt`;
 *   - `jwt-bearer` (RFC 7523, Anthropic): `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`,
 *     `assertion=<JWT-SVID>`;
 * plus the provider's own form parameters (`params`: OpenAI wants
 * `identity_provider_id` and `service_account_id`). The answer is
 * `{access_token, expires_in, token_type}`.
 *
 * The token is refreshed ahead of expiry (a quarter of its lifetime, at most
 * 120 s, minus up to 10 % jitter so a fleet does not refresh at once), retried
 * with backoff and full jitter (1 s doubling to 60 s) when the exchange fails,
 * and the current token is served until it truly expires. Neither the JWT-SVID
 * nor the access token is ever logged or put in an error message.
 */
export type TokenGrant = 'token-exchange' | 'jwt-bearer';

export interface TokenExchangeOptions {
  /** the provider's token endpoint (https; http only to a loopback address, for tests) */
  tokenEndpoint: string;
  grant: TokenGrant;
  /** the JWT-SVID audience registered at the provider (matched exactly there) */
  audience: string;
  /** which identity's JWT-SVID (default: the workload's default) */
  spiffeId?: string;
  /** extra form parameters */
  params?: Record<string, string>;
  /** how long one exchange may take before it is abandoned (default 30 s) */
  timeoutMs?: number;
}

export interface AccessToken {
  accessToken: string;
  tokenType: string;
  /** unix ms */
  expiresAt: number;
}

const GRANT_TYPE: Record<TokenGrant, string> = {
  'token-exchange': 'urn:ietf:params:oauth:grant-type:token-exchange',
  'jwt-bearer': 'urn:ietf:params:oauth:grant-type:jwt-bearer',
};
const MAX_MARGIN_MS = 120_000;

export class TokenSource extends EventEmitter {
  private current?: AccessToken;
  private inflight?: Promise<AccessToken>;
  private timer?: NodeJS.Timeout;
  private closed = false;
  private readonly backoff: Backoff;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly doFetch: typeof undiciFetch;

  constructor(
    private readonly o: TokenExchangeOptions & { jwt: JWTSource; now?: () => number; random?: () => number; fetch?: typeof undiciFetch },
  ) {
    super();
    const url = new URL(o.tokenEndpoint);
    const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) throw invalidArgument(`token endpoint ${url.origin} must be https`);
    if (!GRANT_TYPE[o.grant]) throw invalidArgument(`grant must be token-exchange or jwt-bearer, not ${String(o.grant)}`);
    this.now = o.now ?? Date.now;
    this.random = o.random ?? Math.random;
    this.backoff = new Backoff({ baseMs: 1000, capMs: 60_000 }, this.random);
    this.doFetch = o.fetch ?? undiciFetch;
  }

  /** The current access token, exchanging first when there is none or it expired. */
  async token(): Promise<string> {
    if (this.current && this.now() < this.current.expiresAt) return this.current.accessToken;
    return (await this.exchange()).accessToken;
  }

  /** The token held now, if any (possibly expired). */
  held(): AccessToken | undefined {
    return this.current;
  }

  /** Keeps a token fresh in the background: `update` on each new one, `error` on each failed exchange. */
  start(): this {
    void this.refreshLoop();
    return this;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  private async refreshLoop(): Promise<void> {
    if (this.closed) return;
    let delay: number;
    try {
      const t = await this.exchange();
      const lifetime = Math.max(0, t.expiresAt - this.now());
      const margin = Math.min(MAX_MARGIN_MS, lifetime / 4) * (1 + 0.1 * this.random());
      delay = Math.max(500, lifetime - margin);
    } catch (e) {
      delay = this.backoff.next();
      // keep the current token until it expires; say when the next try is
      if (this.listenerCount('error') > 0) this.emit('error', e, delay);
    }
    if (this.closed) return;
    this.timer = setTimeout(() => void this.refreshLoop(), delay);
  }

  /** One exchange at a time; concurrent callers share it. */
  private exchange(): Promise<AccessToken> {
    this.inflight ??= this.doExchange().finally(() => (this.inflight = undefined));
    return this.inflight;
  }

  private async doExchange(): Promise<AccessToken> {
    const svid = await this.o.jwt.fetchJWTSVID(this.o.audience, this.o.spiffeId);
    const form = new URLSearchParams({ ...this.o.params, grant_type: GRANT_TYPE[this.o.grant] });
    if (this.o.grant === 'token-exchange') {
      form.set('subject_token', svid.token);
      form.set('subject_token_type', 'urn:ietf:params:oauth:token-type:jwt');
    } else form.set('assertion', svid.token);
    let res;
    try {
      res = await this.doFetch(this.o.tokenEndpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: form.toString(),
        signal: AbortSignal.timeout(this.o.timeoutMs ?? 30_000),
      });
    } catch (e) {
      throw unavailable(`token endpoint ${new URL(this.o.tokenEndpoint).origin} unreachable: ${(e as Error).message}`);
    }
    const text = await res.text();
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      // not JSON: reported below without echoing it (it could hold anything)
    }
    if (!res.ok) {
      const err = typeof body.error === 'string' ? body.error.slice(0, 100) : `http ${res.status}`;
      const desc = typeof body.error_description === 'string' ? `: ${body.error_description.slice(0, 200)}` : '';
      throw new TesseraError(res.status === 400 || res.status === 401 || res.status === 403 ? 'PERMISSION_DENIED' : 'UNAVAILABLE', `token endpoint refused the exchange (${res.status} ${err}${desc})`);
    }
    const accessToken = body.access_token;
    const expiresIn = body.expires_in;
    if (typeof accessToken !== 'string' || accessToken === '' || typeof expiresIn !== 'number' || !(expiresIn > 0)) {
      throw new TesseraError('UNAVAILABLE', 'token endpoint answered without a usable access_token and expires_in');
    }
    this.checkIssuedFor(body, accessToken, svid.spiffeId, svid.token);
    const t: AccessToken = { accessToken, tokenType: typeof body.token_type === 'string' ? body.token_type : 'Bearer', expiresAt: this.now() + expiresIn * 1000 };
    this.current = t;
    this.backoff.reset();
    this.emit('update', t);
    return t;
  }

  /**
   * Refuses an answer that is not an access token for this workload: the JWT-SVID
   * sent echoed back; for token-exchange an `issued_token_type` other than an
   * access token (RFC 8693 section 2.2.1 requires the field, but an answer without
   * it is taken as an access token, as RFC 6749 answers are); a `token_type` other
   * than Bearer (RFC 6749 section 7.1: a client must not use a token type it does
   * not understand); and an access token that is a JWT whose `sub` is a SPIFFE ID
   * other than the one exchanged (an endpoint that answered for another workload).
   * Opaque tokens cannot be checked further.
   */
  private checkIssuedFor(body: Record<string, unknown>, accessToken: string, spiffeId: string, sent: string): void {
    const refuse = (why: string) => new TesseraError('PERMISSION_DENIED', `token endpoint ${new URL(this.o.tokenEndpoint).origin} answered ${why}; not used`);
    if (accessToken === sent) throw refuse('with the JWT-SVID it was sent');
    if (this.o.grant === 'token-exchange' && body.issued_token_type !== undefined && body.issued_token_type !== 'urn:ietf:params:oauth:token-type:access_token') {
      throw refuse(`a token of type ${String(body.issued_token_type).slice(0, 100)}, not an access token`);
    }
    if (typeof body.token_type === 'string' && body.token_type.toLowerCase() !== 'bearer') throw refuse(`a ${body.token_type.slice(0, 40)} token, not a Bearer token`);
    const parts = accessToken.split('.');
    if (parts.length !== 3) return;
    let sub: unknown;
    try {
      sub = (JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { sub?: unknown }).sub;
    } catch {
      return; // not a JWT: opaque
    }
    if (typeof sub === 'string' && sub.startsWith('spiffe://') && sub !== spiffeId) throw refuse(`with a token for ${sub.slice(0, 200)}, not for ${spiffeId}`);
  }
}
