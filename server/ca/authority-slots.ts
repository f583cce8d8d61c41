import { randomBytes } from 'node:crypto';
import type { Logger } from '../../common/log';
import { F, audit } from '../../common/log';
import { TesseraError, failedPrecondition, notFound } from '../../common/errors';
import type { SpiffeBundle } from '../../common/bundle/bundle';
import type { CAJournalEntry, CAJournalInput, DataStore } from '../datastore/datastore';
import type { KeyManager, KeyType, ManagedKey } from '../keymanager/keymanager';
import { nextRotationAction, type RotationAction, type SlotView } from './rotation';

/** The journal fields a new slot's material fills in. */
export type NewSlot = Pick<CAJournalEntry, 'certificateDer' | 'upstreamChainDer' | 'publicJwk' | 'kid' | 'notBefore' | 'notAfter'>;

/** What differs between X.509 CA slots and JWT key slots. */
export interface SlotMaterial<S> {
  kind: 'x509' | 'jwt';
  keyType: KeyType;
  /** certificate or JWK for a freshly generated key */
  create(key: ManagedKey, now: number): Promise<NewSlot>;
  /** a signer over an active slot */
  signer(slot: CAJournalEntry, key: ManagedKey): S;
  /** the id relying parties see: X.509 subject key identifier (hex) or JWT kid */
  keyId(slot: CAJournalEntry): string;
  /** the earliest time the slot's signatures are valid (a CA certificate's notBefore); none for JWT keys */
  validFrom?(slot: CAJournalEntry): number;
  /** the latest notAfter a new key can get (an upstream certificate's expiry), read at every step */
  maxNotAfter?(): number | undefined;
}

export interface AuthoritySlotsDeps<S> {
  material: SlotMaterial<S>;
  store: DataStore;
  keyManager: KeyManager;
  log: Logger;
  /**
   * This server instance's id (CAJournalEntry.owner): with several servers on one
   * database each rotates only its own slots; the bundle holds every server's. Default ''.
   */
  owner?: string;
  /** publishes the bundle recomputed from the journal; `force` bumps its sequence even if the keys are unchanged */
  publish(opts?: { force?: boolean }): Promise<SpiffeBundle>;
  /** whether the slot's key is part of `bundle` (an upstream-signed intermediate always is, through its root) */
  inBundle(slot: CAJournalEntry, bundle: SpiffeBundle): boolean;
  /** milliseconds on a clock that never steps; with pruneGraceMs, what prune waits on */
  monotonic?: () => number;
  /**
   * How long (monotonic ms) a retired slot must have been seen expired before it
   * is pruned. A forward step of the wall clock makes a key look expired that
   * relying parties (with correct clocks) still need; the grace keeps it in the
   * journal and the bundle until the clock is trusted again. Default 0.
   */
  pruneGraceMs?: number;
  /**
   * How long (wall-clock seconds past its notAfter, and at least pruneGraceMs seen
   * expired) another server's slot stays in the journal before this server deletes
   * it. Default 3600. See pruneForeign.
   */
  foreignPruneAfterSeconds?: number;
}

/** Upper bound of actions per step: a step after a long downtime may retire, drop, prepare and activate. */
const MAX_ACTIONS_PER_STEP = 16;

/**
 * One kind of signing authority (the X.509 CA or the JWT key) as journal slots:
 * prepared → active → retired (→ tainted → revoked) → pruned. The journal is the
 * truth: every change is written (synchronous=FULL) before it takes effect, and
 * a slot is made active only once the bundle published from the journal holds
 * its key, so a server killed at any point restarts into a state where nothing
 * was ever signed by an unpublished key. Not reentrant: the CA manager runs one
 * operation at a time.
 */
export class AuthoritySlots<S> {
  private slots: CAJournalEntry[] = [];
  private readonly keys = new Map<string, ManagedKey>();
  private activeSigner?: { id: string; signer: S };
  /** monotonic ms at which each expired slot was first seen expired */
  private readonly expiredSeen = new Map<string, number>();
  /** the same for other servers' slots (pruneForeign) */
  private readonly foreignExpiredSeen = new Map<string, number>();
  private upstreamWarnedFor?: string;

  constructor(private readonly d: AuthoritySlotsDeps<S>) {}

  get kind(): 'x509' | 'jwt' {
    return this.d.material.kind;
  }

  /** The signer of the active slot, if there is one. */
  get active(): S | undefined {
    return this.activeSigner?.signer;
  }

  /** Journal rows of this kind, oldest first. */
  list(): readonly CAJournalEntry[] {
    return this.slots;
  }

  keyId(slot: CAJournalEntry): string {
    return this.d.material.keyId(slot);
  }

  /** Re-reads the journal and the keys of the slots that may sign; rebuilds the active signer. */
  async load(): Promise<void> {
    const owner = this.d.owner ?? '';
    this.slots = (await this.d.store.listCAJournal(this.kind)).filter((s) => s.owner === owner);
    for (const s of this.slots) {
      if ((s.state === 'active' || s.state === 'prepared') && !this.keys.has(s.id)) {
        const key = await this.d.keyManager.getKey(s.keyId);
        if (key) this.keys.set(s.id, key);
      }
    }
    for (const id of this.keys.keys()) if (!this.slots.some((s) => s.id === id)) this.keys.delete(id);
    const actives = this.slots.filter((s) => s.state === 'active' && this.keys.has(s.id));
    // Two active rows only after a crash mid-activation; the newer wins until the next step retires the other.
    const a = actives.reduce<CAJournalEntry | undefined>((x, y) => (!x || y.notAfter >= x.notAfter ? y : x), undefined);
    if (!a) this.activeSigner = undefined;
    else if (this.activeSigner?.id !== a.id) this.activeSigner = { id: a.id, signer: this.d.material.signer(a, this.keys.get(a.id)!) };
  }

  /** Applies every rotation action due at `now`, then prunes other servers' long-expired slots; returns how many changes were made. */
  async step(now: number): Promise<number> {
    return (await this.stepOwn(now)) + (await this.pruneForeign(now));
  }

  private async stepOwn(now: number): Promise<number> {
    const maxNotAfter = this.d.material.maxNotAfter?.();
    for (let n = 0; n < MAX_ACTIONS_PER_STEP; n++) {
      const action = nextRotationAction(this.views(now), now, { maxNotAfter });
      if (!action) {
        this.warnIfCapped(now, maxNotAfter);
        return n;
      }
      await this.apply(action, now);
    }
    throw new TesseraError('INTERNAL', `${this.kind} authority rotation did not settle after ${MAX_ACTIONS_PER_STEP} actions`);
  }

  /** The wall clock jumped: every expired slot waits a full grace again before it is pruned. */
  restartPruneGrace(): void {
    this.expiredSeen.clear();
    this.foreignExpiredSeen.clear();
  }

  /**
   * Deletes the journal rows of other servers on the same database once they have long
   * expired. Each server prunes only its own slots, so a server removed for good would
   * leave its keys in the journal, and so in the trust bundle, for ever. Every SVID a
   * key signed has expired once the key has (SVIDs are capped at their signer's
   * notAfter), so any server may drop the row; it waits an hour past notAfter (and the
   * prune grace on the monotonic clock, against a forward step of the wall clock) so
   * that a live owner prunes its own slot first, deleting its private key with it.
   * The key of a server that is gone stays in that server's key manager, out of reach
   * here. Rows without an owner (from before owners) are left to the server that claims them.
   */
  private async pruneForeign(now: number): Promise<number> {
    const me = this.d.owner ?? '';
    const after = this.d.foreignPruneAfterSeconds ?? 3600;
    const mono = this.d.monotonic?.() ?? 0;
    const grace = this.d.pruneGraceMs ?? 0;
    const foreign = (await this.d.store.listCAJournal(this.kind)).filter((s) => s.owner !== me && s.owner !== '');
    for (const id of this.foreignExpiredSeen.keys()) if (!foreign.some((s) => s.id === id && s.notAfter <= now)) this.foreignExpiredSeen.delete(id);
    let pruned = 0;
    for (const s of foreign) {
      if (s.notAfter > now) continue;
      if (!this.foreignExpiredSeen.has(s.id)) this.foreignExpiredSeen.set(s.id, mono);
      if (now < s.notAfter + after || mono - this.foreignExpiredSeen.get(s.id)! < grace) continue;
      try {
        await this.d.store.deleteCAJournalEntry(s.id);
      } catch (err) {
        if (err instanceof TesseraError && err.code === 'NOT_FOUND') continue; // another server (or the owner) was first
        throw err;
      }
      this.foreignExpiredSeen.delete(s.id);
      pruned++;
      audit(this.d.log, `${this.kind}_authority_pruned`, {
        authority_id: s.id,
        [F.kid]: this.keyId(s),
        state: s.state,
        owner: s.owner,
        [F.reason]: `expired ${now - s.notAfter} s ago; held by server instance ${s.owner}, which did not prune it (removed?)`,
      });
    }
    if (pruned > 0) await this.d.publish();
    return pruned;
  }

  private views(now: number): SlotView[] {
    const mono = this.d.monotonic?.() ?? 0;
    const grace = this.d.pruneGraceMs ?? 0;
    for (const id of this.expiredSeen.keys()) if (!this.slots.some((s) => s.id === id && s.notAfter <= now)) this.expiredSeen.delete(id);
    return this.slots.map((s) => {
      let prunable = true;
      if (s.notAfter <= now && grace > 0) {
        if (!this.expiredSeen.has(s.id)) this.expiredSeen.set(s.id, mono);
        prunable = mono - this.expiredSeen.get(s.id)! >= grace;
      }
      return {
        id: s.id,
        state: s.state,
        notBefore: s.notBefore,
        notAfter: s.notAfter,
        usable: this.keys.has(s.id),
        validFrom: this.d.material.validFrom?.(s),
        prunable,
      };
    });
  }

  /** Logs once per active key when the upstream's expiry keeps a successor from being prepared. */
  private warnIfCapped(now: number, maxNotAfter: number | undefined): void {
    const a = this.slots.find((s) => s.state === 'active');
    if (!a && maxNotAfter !== undefined && maxNotAfter <= now && this.upstreamWarnedFor !== 'expired') {
      this.upstreamWarnedFor = 'expired';
      this.d.log.error(
        { upstream_not_after: maxNotAfter },
        `${this.kind} authority cannot be made: the upstream authority certificate has expired; the server cannot sign (not ready) until upstream_authority.cert_file is renewed`,
      );
      return;
    }
    if (!a || maxNotAfter === undefined || maxNotAfter > a.notAfter || this.upstreamWarnedFor === a.id) return;
    if (now < a.notAfter - (a.notAfter - a.notBefore) / 2) return; // not yet due for a successor anyway
    this.upstreamWarnedFor = a.id;
    this.d.log.error(
      { authority_id: a.id, not_after: a.notAfter, upstream_not_after: maxNotAfter },
      `${this.kind} authority cannot rotate: the upstream authority certificate expires before a new key could outlive the active one; renew upstream_authority.cert_file (it is re-read at every rotation check)`,
    );
  }

  private async apply(a: RotationAction, now: number): Promise<void> {
    if (a.type === 'prepare') await this.prepareNew(now, a.reason);
    else if (a.type === 'activate') await this.activateSlot(this.find(a.id), a.reason);
    else if (a.type === 'retire') await this.setState(this.find(a.id), 'retired', a.reason);
    else await this.remove(this.find(a.id), a.type === 'drop' ? a.reason : 'expired');
  }

  /** Generates and publishes a new key, not yet signing. A prepared key that already exists is replaced (it signed nothing). */
  async prepare(now: number): Promise<CAJournalEntry> {
    for (const p of this.slots.filter((s) => s.state === 'prepared')) await this.remove(p, 'replaced by an operator prepare');
    return this.prepareNew(now, 'operator request');
  }

  /** Makes the prepared slot (which must be `id` when given) the signer. */
  async activate(id?: string): Promise<CAJournalEntry> {
    const refused = this.activateRefusal(id);
    if (refused) throw refused;
    return this.activateSlot(this.slots.find((s) => s.state === 'prepared')!, 'operator request');
  }

  /** Why {@link activate} would be refused now, or undefined (the console's preview runs the same checks). */
  activateRefusal(id?: string): TesseraError | undefined {
    const p = this.slots.find((s) => s.state === 'prepared');
    if (!p) return failedPrecondition(`there is no prepared ${this.kind} authority; run \`tessera authority ${this.kind} prepare\` first`);
    if (id !== undefined && id !== p.id) return failedPrecondition(`${id} is not the prepared ${this.kind} authority (${p.id} is)`);
    if (!this.keys.has(p.id)) return failedPrecondition(`the key of prepared ${this.kind} authority ${p.id} is missing from the key manager; prepare a new one`);
    return undefined;
  }

  /**
   * Marks a retired authority as tainted: agents re-issue what it signed and
   * relying parties should stop trusting it soon. The bundle sequence is bumped
   * so that agents hear of it on their open long polls.
   */
  async taint(id: string): Promise<CAJournalEntry> {
    const s = this.find(id);
    if (s.state === 'tainted' || s.state === 'revoked') return s;
    const refused = this.taintRefusal(id);
    if (refused) throw refused;
    const out = await this.write({ ...s, state: 'tainted' });
    await this.d.publish({ force: true });
    audit(this.d.log, `${this.kind}_authority_tainted`, { authority_id: id, [F.kid]: this.keyId(s) });
    return out;
  }

  /**
   * Removes a tainted authority from the bundle. Unless `force`, refused while
   * `dependents` (unexpired SVIDs it signed that were not re-issued) is above 0.
   */
  async revoke(id: string, opts: { force: boolean; dependents: (id: string) => Promise<number> }): Promise<{ slot: CAJournalEntry; dependents: number }> {
    const s = this.find(id);
    if (s.state === 'revoked') return { slot: s, dependents: await opts.dependents(id) };
    const n = s.state === 'tainted' ? await opts.dependents(id) : 0;
    const refused = this.revokeRefusal(id, n, opts.force);
    if (refused) throw refused;
    const out = await this.write({ ...s, state: 'revoked' });
    await this.d.publish();
    audit(this.d.log, `${this.kind}_authority_revoked`, { authority_id: id, [F.kid]: this.keyId(s), forced: opts.force, dependents: n });
    return { slot: out, dependents: n };
  }

  /** Why {@link taint} would be refused now, or undefined. */
  taintRefusal(id: string): TesseraError | undefined {
    const s = this.find(id);
    if (s.state === 'active') return failedPrecondition(`${this.kind} authority ${id} is active; prepare and activate a new one before tainting it`);
    if (s.state === 'prepared') return failedPrecondition(`${this.kind} authority ${id} is prepared and has signed nothing; prepare a new one to replace it`);
    return undefined;
  }

  /** Why {@link revoke} would be refused now with `dependents` SVIDs still depending on the key, or undefined. */
  revokeRefusal(id: string, dependents: number, force: boolean): TesseraError | undefined {
    const s = this.find(id);
    if (s.state === 'revoked') return undefined;
    if (s.state !== 'tainted') return failedPrecondition(`${this.kind} authority ${id} is ${s.state}; only a tainted authority can be revoked (taint it first)`);
    const n = dependents;
    if (n > 0 && !force) {
      return failedPrecondition(
        `${n} unexpired svid${n === 1 ? '' : 's'} signed by ${this.kind} authority ${id} ${n === 1 ? 'has' : 'have'} not been re-issued yet; ` +
          'wait for the taint to propagate to the agents, or revoke with --force (their holders will fail validation)',
      );
    }
    return undefined;
  }

  /** Key ids of tainted (or revoked) authorities that have not expired: what agents must replace. */
  taintedKeyIds(now: number): string[] {
    return this.slots.filter((s) => (s.state === 'tainted' || s.state === 'revoked') && s.notAfter > now).map((s) => this.keyId(s));
  }

  private find(id: string): CAJournalEntry {
    const s = this.slots.find((x) => x.id === id);
    if (!s) throw notFound(`${this.kind} authority ${id} not found`);
    return s;
  }

  private async prepareNew(now: number, reason: string): Promise<CAJournalEntry> {
    const id = `${this.kind}-${now}-${randomBytes(4).toString('hex')}`;
    const key = await this.d.keyManager.generateKey(id, this.d.material.keyType);
    // An unreachable upstream fails here on every step until it is back: leave no key behind each time.
    const fields = await this.d.material.create(key, now).catch(async (e: unknown) => {
      await this.d.keyManager.deleteKey(id).catch(() => undefined);
      throw e;
    });
    this.keys.set(id, key);
    const slot = await this.write({ id, kind: this.kind, keyId: key.id, state: 'prepared', ...fields });
    // Published now, used at the earliest on a later step: relying parties get the key before any SVID it signs.
    await this.d.publish();
    audit(this.d.log, `${this.kind}_authority_prepared`, { authority_id: id, [F.kid]: this.keyId(slot), not_after: slot.notAfter, [F.reason]: reason });
    return slot;
  }

  private async activateSlot(slot: CAJournalEntry, reason: string): Promise<CAJournalEntry> {
    // Publish first, then activate: after a crash between prepare's journal write and its
    // publish, this is where the key reaches the bundle — never after its first signature.
    const bundle = await this.d.publish();
    if (!this.d.inBundle(slot, bundle)) {
      throw new TesseraError('INTERNAL', `refusing to activate ${this.kind} authority ${slot.id}: its key is not in the published bundle`);
    }
    const previous = this.slots.filter((s) => s.state === 'active' && s.id !== slot.id);
    // New active first, old retired second: a crash in between leaves two active slots, both published; load() picks the newer.
    const out = await this.write({ ...slot, state: 'active' });
    for (const p of previous) await this.write({ ...p, state: 'retired' });
    audit(this.d.log, `${this.kind}_authority_activated`, {
      authority_id: slot.id,
      [F.kid]: this.keyId(slot),
      not_after: slot.notAfter,
      retired: previous.map((p) => p.id),
      [F.reason]: reason,
    });
    return out;
  }

  private async setState(slot: CAJournalEntry, state: CAJournalEntry['state'], reason: string): Promise<void> {
    await this.write({ ...slot, state });
    this.d.log.warn({ authority_id: slot.id, kind: this.kind, state, [F.reason]: reason }, `${this.kind} authority ${state}`);
  }

  /** Deletes a slot that no longer signs and whose SVIDs have all expired (or that never signed). */
  private async remove(slot: CAJournalEntry, reason: string): Promise<void> {
    // NOT_FOUND: another server pruned it as a long-expired foreign slot (pruneForeign); the key is still ours to delete
    await this.d.store.deleteCAJournalEntry(slot.id).catch((err: unknown) => {
      if (!(err instanceof TesseraError && err.code === 'NOT_FOUND')) throw err;
    });
    await this.d.keyManager.deleteKey(slot.keyId);
    this.keys.delete(slot.id);
    await this.load();
    await this.d.publish();
    audit(this.d.log, `${this.kind}_authority_pruned`, { authority_id: slot.id, [F.kid]: this.keyId(slot), state: slot.state, [F.reason]: reason });
  }

  private async write(e: CAJournalInput): Promise<CAJournalEntry> {
    const { createdAt: _c, updatedAt: _u, ...fields } = e as CAJournalEntry;
    const out = await this.d.store.putCAJournalEntry({ ...fields, owner: this.d.owner ?? '' });
    await this.load();
    return out;
  }
}
