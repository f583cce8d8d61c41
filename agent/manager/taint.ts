import { authorityKeyId } from '../../common/x509svid/key-id';

/**
 * Reacting to tainted authorities: the server lists, in every sync answer, the
 * X.509 CAs (by subject key identifier) and JWT keys (by kid) an operator
 * tainted. Everything they signed is replaced soon, spread with jitter so that
 * thousands of agents do not all call the server in the same second.
 */

/** The longest spread of re-issues after a taint. */
export const MAX_TAINT_SPREAD_MS = 10_000;

/** What the server sends (`tainted_authorities` of the sync answer). */
export interface TaintedAuthorities {
  x509: string[];
  jwt: string[];
}

/**
 * The window over which an SVID of that lifetime is re-issued after a taint:
 * min(10 s, a tenth of its lifetime), so a short-lived SVID is replaced well
 * before it would have been renewed anyway.
 * @example taintSpread(0, 60_000) // 6000
 */
export function taintSpread(notBeforeMs: number, notAfterMs: number): number {
  return Math.min(MAX_TAINT_SPREAD_MS, Math.max(0, notAfterMs - notBeforeMs) / 10);
}

/**
 * The renewal time of an SVID signed by a tainted authority: uniform in
 * [now, now + spread). An SVID already due within the spread keeps its time:
 * that also makes a second look (the next sync) leave an expedited SVID alone,
 * rather than drawing again and skewing the spread towards its start.
 * @example taintedRotateAt(50_000, 0, 60_000, 1000, () => 0.5) // 4000
 */
export function taintedRotateAt(rotateAt: number, notBeforeMs: number, notAfterMs: number, now: number, random: () => number): number {
  const spread = taintSpread(notBeforeMs, notAfterMs);
  if (rotateAt <= now + spread) return rotateAt;
  return now + Math.floor(random() * spread);
}

/** The `kid` of a JWT's protected header, or undefined if unreadable. */
export function jwtKid(token: string): string | undefined {
  try {
    const h = JSON.parse(Buffer.from(token.slice(0, token.indexOf('.')), 'base64url').toString('utf8')) as { kid?: unknown };
    return typeof h.kid === 'string' ? h.kid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The tainted sets as last heard from the server, and the tests against them.
 * An SVID's issuer is read once per certificate (the AKI of its leaf).
 */
export class TaintState {
  private x509 = new Set<string>();
  private jwt = new Set<string>();
  private readonly issuers = new WeakMap<Buffer, string | null>();

  /** Takes the server's lists; true when either set changed. */
  update(t: TaintedAuthorities | undefined): boolean {
    const x509 = new Set(t?.x509 ?? []);
    const jwt = new Set(t?.jwt ?? []);
    const changed = !sameSet(x509, this.x509) || !sameSet(jwt, this.jwt);
    this.x509 = x509;
    this.jwt = jwt;
    return changed;
  }

  get empty(): boolean {
    return this.x509.size === 0 && this.jwt.size === 0;
  }

  /** The certificate (a leaf) was signed by a tainted X.509 authority. */
  taintedLeaf(leaf: Buffer): boolean {
    if (this.x509.size === 0) return false;
    let aki = this.issuers.get(leaf);
    if (aki === undefined) this.issuers.set(leaf, (aki = authorityKeyId(leaf) ?? null));
    return aki !== null && this.x509.has(aki);
  }

  /** The JWT-SVID was signed by a tainted JWT key. */
  taintedJWT(token: string): boolean {
    if (this.jwt.size === 0) return false;
    const kid = jwtKid(token);
    return kid !== undefined && this.jwt.has(kid);
  }

  /**
   * Moves the renewal of every SVID signed by a tainted CA to a jittered time
   * within its spread; returns how many moved (an SVID already due that soon is left alone).
   */
  expedite(svids: Iterable<{ chain: Buffer[]; notBefore: number; notAfter: number; rotateAt: number }>, now: number, random: () => number): number {
    let n = 0;
    for (const s of svids) {
      if (!this.taintedLeaf(s.chain[0]!)) continue;
      const at = taintedRotateAt(s.rotateAt, s.notBefore * 1000, s.notAfter * 1000, now, random);
      if (at < s.rotateAt) {
        s.rotateAt = at;
        n++;
      }
    }
    return n;
  }
}

function sameSet(a: Set<string>, b: Set<string>): boolean {
  return a.size === b.size && [...a].every((x) => b.has(x));
}
