/**
 * When to renew an X.509-SVID, as pure functions of time (SPIRE's rotationutil).
 * All times are unix milliseconds.
 */

/** Renewal happens at half the lifetime, moved by up to ±10 % of it per SVID so mass renewals spread out. */
export const ROTATION_JITTER = 0.1;

/** Renewals due within this long of each other are sent in one batch. */
export const COALESCE_WINDOW_MS = 1000;

/**
 * A jitter for {@link rotationTime}, uniform in [-0.1, 0.1). Drawn once per SVID
 * (and kept with it) so the renewal time does not move on every check.
 */
export function drawJitter(random: () => number = Math.random): number {
  return (random() * 2 - 1) * ROTATION_JITTER;
}

/**
 * The start of an SVID's usable lifetime: its notBefore, or the time the agent
 * received it if later. The server backdates notBefore (by 10 s) for clock skew;
 * with a 10-s TTL, half of notAfter − notBefore would fall on the moment of
 * issuance and the agent would renew in a loop.
 */
export function lifetimeStart(notBefore: number, notAfter: number, receivedAt: number): number {
  return Math.min(notAfter, Math.max(notBefore, receivedAt));
}

/**
 * When an SVID valid from `notBefore` to `notAfter` should be renewed: once its
 * remaining lifetime drops below half, ± `jitter` (a fraction of the lifetime).
 * @example rotationTime(0, 10_000, 0) // 5000
 */
export function rotationTime(notBefore: number, notAfter: number, jitter: number): number {
  const life = Math.max(0, notAfter - notBefore);
  return notBefore + life * (0.5 + jitter);
}

/** True once `now` has reached the rotation time (always true for an expired SVID). */
export function shouldRotate(notBefore: number, notAfter: number, now: number, jitter: number): boolean {
  return now >= notAfter || now >= rotationTime(notBefore, notAfter, jitter);
}

/**
 * How early a renewal may be pulled forward to join a batch: {@link COALESCE_WINDOW_MS},
 * but never more than 5 % of the lifetime, so very short SVIDs are not renewed
 * much earlier than their jitter allows.
 */
export function coalesceWindow(notBefore: number, notAfter: number): number {
  return Math.min(COALESCE_WINDOW_MS, Math.max(0, notAfter - notBefore) * 0.05);
}

/** A JWT-SVID minted at `receivedAt` is refreshed once past half its lifetime. */
export function jwtNeedsRefresh(receivedAt: number, expiresAt: number, now: number): boolean {
  return now >= receivedAt + (expiresAt - receivedAt) / 2;
}
