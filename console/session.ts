import { randomBytes, timingSafeEqual } from 'node:crypto';

/** A browser session of the console: its cookie value and its CSRF token. */
export interface Session {
  id: string;
  csrf: string;
  /** ms on the console's clock */
  expiresAtMs: number;
}

const random = () => randomBytes(32).toString('base64url');

/** Constant-time comparison of two strings (lengths may differ). */
export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Login tokens and sessions of the console, in memory (a restart logs everyone
 * out). Jupyter's scheme: the process prints a login URL carrying a random token;
 * here each token works **once**, and using it mints the next one, which the
 * console prints again, so a URL copied from a terminal scroll-back is worthless
 * once it was used. A session lives `ttlMs` (12 h by default) and carries its own
 * CSRF token, which every state-changing request must echo in `X-CSRF-Token`.
 */
export class ConsoleSessions {
  private loginToken = random();
  private readonly sessions = new Map<string, Session>();

  constructor(
    private readonly d: {
      nowMs: () => number;
      ttlMs?: number;
      /** told the new login token whenever the previous one was used */
      onNewLoginToken?: (token: string) => void;
    },
  ) {}

  /** The login token that works now. */
  get currentLoginToken(): string {
    return this.loginToken;
  }

  /** Exchanges the login token for a session; undefined when it is wrong or was used. */
  login(token: string): Session | undefined {
    if (!sameSecret(token, this.loginToken)) return undefined;
    this.loginToken = random();
    this.d.onNewLoginToken?.(this.loginToken);
    this.prune();
    const s: Session = { id: random(), csrf: random(), expiresAtMs: this.d.nowMs() + (this.d.ttlMs ?? 12 * 3600_000) };
    this.sessions.set(s.id, s);
    return s;
  }

  /** The live session of a cookie value. */
  get(id: string | undefined): Session | undefined {
    if (!id) return undefined;
    const s = this.sessions.get(id);
    if (!s) return undefined;
    if (s.expiresAtMs <= this.d.nowMs()) {
      this.sessions.delete(id);
      return undefined;
    }
    return s;
  }

  logout(id: string): void {
    this.sessions.delete(id);
  }

  private prune(): void {
    const now = this.d.nowMs();
    for (const [id, s] of this.sessions) if (s.expiresAtMs <= now) this.sessions.delete(id);
  }
}
