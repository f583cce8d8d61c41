/**
 * When to prepare, activate, retire and prune X.509 CA and JWT signing keys, as
 * pure functions of `now` (SPIRE's `rotationutil` and CA manager rules). Every
 * time is in unix seconds. The CA manager asks {@link nextRotationAction} what to
 * do, does it, and asks again until the answer is "nothing".
 */
import type { CAJournalEntry } from '../datastore/datastore';

/** The next key is prepared once the active one has at most this much life left (or half its lifetime). */
export const PREPARE_CAP_SECONDS = 30 * 86400;
/** The prepared key is activated once the active one has at most this much life left (or a sixth of its lifetime). */
export const ACTIVATE_CAP_SECONDS = 7 * 86400;
/** Upper bound of the default rotation check interval. */
export const MAX_ROTATION_INTERVAL_SECONDS = 10;

export type SlotState = CAJournalEntry['state'];

/** What the rules need to know of a slot. `usable`: its private key is in the key manager. */
export interface SlotView {
  id: string;
  state: SlotState;
  /** when the slot was made (rotation times count from here) */
  notBefore: number;
  notAfter: number;
  usable: boolean;
  /**
   * The earliest time its signatures are valid (an X.509 CA certificate's
   * notBefore, backdated); absent for JWT keys, which have no such time. A slot
   * the clock is behind (stepped back) can sign nothing valid.
   */
  validFrom?: number;
  /** false while an expired slot is within its prune grace (see AuthoritySlots); default true */
  prunable?: boolean;
}

/** Limits of what a new key can get, from outside the slots. */
export interface RotationContext {
  /**
   * The latest notAfter a new key can have (an upstream certificate's expiry). A
   * new key that could not outlive the active one is not prepared: with an upstream
   * that expires sooner than the CA TTL, every new intermediate would be capped
   * shorter than the last, and rotating would never end.
   */
  maxNotAfter?: number;
}

export type RotationAction =
  /** generate the next key and publish it (not yet signing) */
  | { type: 'prepare'; reason: string }
  /** make the prepared slot `id` the signer; the current active slot (if any) is retired */
  | { type: 'activate'; id: string; reason: string }
  /** stop signing with `id` (it stays published until it expires) */
  | { type: 'retire'; id: string; reason: string }
  /** delete a prepared slot that can never sign (it signed nothing, so it may leave the bundle) */
  | { type: 'drop'; id: string; reason: string }
  /** delete an expired slot: every SVID it signed has expired (SVIDs are capped at the signer's notAfter) */
  | { type: 'prune'; id: string };

const lifetime = (s: { notBefore: number; notAfter: number }) => Math.max(0, s.notAfter - s.notBefore);

/**
 * Remaining life of the active key at which the next one is prepared:
 * min(lifetime / 2, 30 days).
 * @example prepareThreshold({ notBefore: 0, notAfter: 60 }) // 30
 */
export function prepareThreshold(active: { notBefore: number; notAfter: number }): number {
  return Math.min(lifetime(active) / 2, PREPARE_CAP_SECONDS);
}

/**
 * Remaining life of the active key at which the prepared one takes over:
 * min(lifetime / 6, 7 days).
 * @example activateThreshold({ notBefore: 0, notAfter: 60 }) // 10
 */
export function activateThreshold(active: { notBefore: number; notAfter: number }): number {
  return Math.min(lifetime(active) / 6, ACTIVATE_CAP_SECONDS);
}

/** When the next key is due to be prepared (unix s). @example prepareAt({ notBefore: 0, notAfter: 60 }) // 30 */
export function prepareAt(active: { notBefore: number; notAfter: number }): number {
  return active.notAfter - prepareThreshold(active);
}

/** When the prepared key is due to be activated (unix s). @example activateAt({ notBefore: 0, notAfter: 60 }) // 50 */
export function activateAt(active: { notBefore: number; notAfter: number }): number {
  return active.notAfter - activateThreshold(active);
}

/**
 * True when a slot's key belongs in the published bundle: prepared, active,
 * retired or tainted; revoked keys never are. An expired key stays until its slot
 * is pruned: after a forward clock step, relying parties whose clocks are right
 * still need it for the SVIDs it signed (pruning waits for a grace of monotonic
 * time, see AuthoritySlots).
 */
export function isPublished(s: { state: SlotState }): boolean {
  return s.state !== 'revoked';
}

/**
 * Default interval between rotation checks: a sixtieth of the CA lifetime (so a
 * step is never late by more than ~2 % of it), at most 10 s.
 * @example defaultRotationInterval(60) // 1
 */
export function defaultRotationInterval(caTtl: number): number {
  return Math.max(0.05, Math.min(caTtl / 60, MAX_ROTATION_INTERVAL_SECONDS));
}

/**
 * The next thing to do with one kind's slots at `now`, or undefined. In order:
 * repair what a crash or a lost key left behind (unusable or expired prepared
 * slots are dropped; unusable, expired or surplus active slots are retired: a
 * crash between "activate new" and "retire old" leaves two, and the newer wins),
 * then make sure one key is active, then prepare at half-life, activate at
 * five-sixths, and prune expired non-signing slots.
 * @example
 * nextRotationAction([{ id: 'a', state: 'active', notBefore: 0, notAfter: 60, usable: true }], 30)
 * // { type: 'prepare', reason: 'half-life' }
 */
export function nextRotationAction(slots: readonly SlotView[], now: number, ctx: RotationContext = {}): RotationAction | undefined {
  const prepared = slots.filter((s) => s.state === 'prepared');
  for (const p of prepared) {
    if (!p.usable) return { type: 'drop', id: p.id, reason: 'key missing from the key manager' };
    if (p.notAfter <= now) return { type: 'drop', id: p.id, reason: 'expired before activation' };
    if (p.validFrom !== undefined && p.validFrom > now) return { type: 'drop', id: p.id, reason: 'not valid yet: the clock is behind it (stepped back?)' };
  }
  // Two prepared slots only come from a crash mid-prepare: keep the newest.
  if (prepared.length > 1) return { type: 'drop', id: oldest(prepared).id, reason: 'superseded by a newer prepared key' };
  const actives = slots.filter((s) => s.state === 'active');
  for (const a of actives) {
    if (!a.usable) return { type: 'retire', id: a.id, reason: 'key missing from the key manager' };
    if (a.notAfter <= now) return { type: 'retire', id: a.id, reason: 'expired' };
    // Never sign outside the key's validity: rotate to a key valid now instead.
    if (a.validFrom !== undefined && a.validFrom > now) return { type: 'retire', id: a.id, reason: 'not valid yet: the clock is behind it (stepped back?)' };
  }
  if (actives.length > 1) return { type: 'retire', id: oldest(actives).id, reason: 'superseded by a newer active key' };
  const active = actives[0];
  const next = prepared[0];
  if (!active) {
    if (next) return { type: 'activate', id: next.id, reason: 'no active key' };
    // An upstream that has expired cannot sign a new key: nothing to do until it is renewed.
    if (ctx.maxNotAfter !== undefined && ctx.maxNotAfter <= now) return undefined;
    return { type: 'prepare', reason: 'no active key' };
  }
  const outlives = ctx.maxNotAfter === undefined || ctx.maxNotAfter > active.notAfter;
  if (!next && now >= prepareAt(active) && outlives) return { type: 'prepare', reason: 'half-life' };
  if (next && now >= activateAt(active)) return { type: 'activate', id: next.id, reason: 'five-sixths of the active key lifetime' };
  const expired = slots.find((s) => (s.state === 'retired' || s.state === 'tainted' || s.state === 'revoked') && s.notAfter <= now && s.prunable !== false);
  if (expired) return { type: 'prune', id: expired.id };
  return undefined;
}

/** The slot that expires first (ties: the first listed, i.e. the older journal row). */
function oldest(slots: SlotView[]): SlotView {
  return slots.reduce((a, b) => (b.notAfter < a.notAfter ? b : a));
}
