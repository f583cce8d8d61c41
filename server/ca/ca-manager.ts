import { randomBytes } from 'node:crypto';
import type { Logger } from '../../common/log';
import type { Clock } from '../../common/clock';
import { systemClock } from '../../common/clock';
import { failedPrecondition, unavailable } from '../../common/errors';
import type { SpiffeBundle } from '../../common/bundle/bundle';
import type { CAJournalEntry, DataStore } from '../datastore/datastore';
import type { KeyManager, KeyType } from '../keymanager/keymanager';
import { toAuthorityInfo, type AuthorityInfo, type AuthorityKind } from './authority-info';
import { AuthoritySlots } from './authority-slots';
import { BundlePublisher } from './bundle-publisher';
import { jwtMaterial, type JWTSigner } from './jwt-authority';
import type { UpstreamAuthority } from './upstream-disk';
import { NOT_BEFORE_BACKDATE_SECONDS, x509Material, type X509Signer } from './x509-authority';
import { ClockJumpDetector } from './clock-jump';

export { NOT_BEFORE_BACKDATE_SECONDS } from './x509-authority';
export type { AuthorityInfo, AuthorityKind } from './authority-info';

export interface CAManagerConfig {
  trustDomain: string;
  caKeyType: KeyType;
  caTtl: number;
  organization: string;
  jwtKeyType: KeyType;
  jwtIssuer?: string;
  refreshHint: number;
}

export interface CAManagerDeps {
  config: CAManagerConfig;
  keyManager: KeyManager;
  store: DataStore;
  log: Logger;
  clock?: Clock;
  upstream?: UpstreamAuthority;
  /**
   * How long (seconds of monotonic time) an expired retired key stays in the
   * journal and the bundle before it is pruned; see AuthoritySlots. The server
   * uses {@link defaultPruneGrace}; default 0 (tests with a fake clock).
   */
  pruneGraceSeconds?: number;
  /** other servers' expired slots are deleted this long past their notAfter (default 3600; see AuthoritySlots.pruneForeign) */
  foreignPruneAfterSeconds?: number;
  /** called when the wall clock jumped by `seconds` (for the metric) */
  onClockJump?: (seconds: number) => void;
  /**
   * This server instance's id: its slots carry it, and it rotates only those (several
   * servers on one PostgreSQL database, each with its own keys). Default ''.
   */
  instanceId?: string;
}

/**
 * The prune grace the server uses: a sixth of the CA lifetime, at most an hour. A
 * forward clock step shorter than that never costs relying parties a key they need.
 */
export const defaultPruneGrace = (caTtl: number): number => Math.min(3600, Math.floor(caTtl / 6));

/** Why the CA can or cannot sign right now (readiness). */
export interface SigningStatus {
  x509: 'ok' | 'no active key' | 'not valid yet' | 'expired';
  jwt: 'ok' | 'no active key' | 'expired';
}

export interface MintedX509 {
  /** leaf first, then intermediates (never the root) */
  chain: Buffer[];
  serialHex: string;
  expiresAt: number;
  /** journal slot id of the CA that signed it */
  authorityId: string;
}

/**
 * Owns the trust domain's signing material: X.509 CA and JWT key slots
 * (prepared → active → retired, tainted, revoked; see {@link AuthoritySlots}),
 * rotated on a timer as SPIRE does (prepare at half the active key's life,
 * activate at five-sixths, prune once expired), and the trust bundle published
 * from them, with a sequence number that grows on every change. Mints SVIDs on
 * the fast paths with the active slots. Operations run one at a time.
 */
export class CAManager {
  private readonly x509: AuthoritySlots<X509Signer>;
  private readonly jwt: AuthoritySlots<JWTSigner>;
  private readonly publisher: BundlePublisher;
  private readonly clock: Clock;
  private readonly log: Logger;
  private queue: Promise<unknown> = Promise.resolve();
  private timer?: NodeJS.Timeout;
  private readonly jumps: ClockJumpDetector;
  private rotationKicked = false;

  private constructor(private readonly deps: CAManagerDeps) {
    this.clock = deps.clock ?? systemClock;
    this.log = deps.log;
    this.jumps = new ClockJumpDetector(this.clock);
    const c = deps.config;
    this.publisher = new BundlePublisher({ trustDomain: c.trustDomain, refreshHint: c.refreshHint, store: deps.store, log: deps.log, upstream: deps.upstream });
    const common = {
      store: deps.store,
      keyManager: deps.keyManager,
      log: deps.log,
      publish: (o?: { force?: boolean }) => this.publishBundle(o),
      monotonic: () => this.clock.monotonic?.() ?? this.clock.now().getTime(),
      pruneGraceMs: (deps.pruneGraceSeconds ?? 0) * 1000,
      foreignPruneAfterSeconds: deps.foreignPruneAfterSeconds,
      owner: deps.instanceId ?? '',
    };
    this.x509 = new AuthoritySlots<X509Signer>({
      ...common,
      material: x509Material({ trustDomain: c.trustDomain, caKeyType: c.caKeyType, caTtl: c.caTtl, organization: c.organization, upstream: deps.upstream }),
      // With an upstream the bundle holds its roots, which every intermediate chains to.
      inBundle: (s, b) => !!deps.upstream || b.x509Authorities.some((der) => s.certificateDer?.equals(der)),
    });
    this.jwt = new AuthoritySlots<JWTSigner>({
      ...common,
      material: jwtMaterial({ jwtKeyType: c.jwtKeyType, ttl: c.caTtl }),
      inBundle: (s, b) => b.jwtAuthorities.some((a) => a.kid === s.kid),
    });
  }

  /**
   * Loads the slots from the journal, publishes the bundle, and runs one rotation
   * step (which creates the first keys, or catches up with what fell due while the
   * server was down). Call {@link startRotation} to keep rotating.
   */
  static async start(deps: CAManagerDeps): Promise<CAManager> {
    const m = new CAManager(deps);
    await m.claimUnownedSlots();
    await m.x509.load();
    await m.jwt.load();
    // No publish before the step: a first start would publish an empty bundle, and a
    // prepared key found after a crash is published by the step before it is activated.
    await m.rotate();
    return m;
  }

  /**
   * Slots from before journal rows had an owner ('') whose key is in this server's
   * key manager are this server's: it takes them over, so an upgraded single server
   * keeps rotating its CA. A slot whose key it lacks stays as it is.
   */
  private async claimUnownedSlots(): Promise<void> {
    const me = this.deps.instanceId ?? '';
    if (me === '') return;
    for (const s of await this.deps.store.listCAJournal()) {
      if (s.owner !== '' || !(await this.deps.keyManager.getKey(s.keyId))) continue;
      const { createdAt: _c, updatedAt: _u, ...fields } = s;
      await this.deps.store.putCAJournalEntry({ ...fields, owner: me });
      this.log.info({ authority_id: s.id, owner: me }, 'authority slot claimed by this server instance');
    }
  }

  private nowS(): number {
    return Math.floor(this.clock.now().getTime() / 1000);
  }

  /** Runs `fn` after every operation queued before it (rotation steps and operator requests never interleave). */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** One rotation step for both kinds at the clock's now. */
  rotate(): Promise<void> {
    return this.serial(async () => {
      this.checkClock();
      const now = this.nowS();
      await this.x509.step(now);
      await this.jwt.step(now);
      // Expiry alone changes the bundle (an expired key leaves it) even when no slot changed.
      await this.publishBundle();
    });
  }

  /**
   * A wall-clock step is logged, counted, and restarts the prune grace: keys that
   * look expired only because the clock leapt forward are not pruned, and keys
   * the clock is now behind are replaced by the rotation step that follows.
   */
  private checkClock(): void {
    const jump = this.jumps.check();
    if (jump === 0) return;
    const seconds = Math.round(jump / 1000);
    this.log.warn(
      { event: 'clock_jump', seconds, wall_clock: this.clock.now().toISOString() },
      `the wall clock jumped ${seconds > 0 ? 'forward' : 'back'} by ${Math.abs(seconds)} s (a clock step, or the machine was suspended); keys will not be pruned until it has been stable for the prune grace`,
    );
    this.deps.onClockJump?.(seconds);
    this.x509.restartPruneGrace();
    this.jwt.restartPruneGrace();
  }

  /** Runs a rotation step soon (at most one queued): a mint found the active CA unusable at this clock. */
  private kickRotation(): void {
    if (this.rotationKicked) return;
    this.rotationKicked = true;
    void this.rotate()
      .catch((err: unknown) => this.log.error({ err }, 'ca rotation step failed'))
      .finally(() => (this.rotationKicked = false));
  }

  /** Runs {@link rotate} every `intervalSeconds` on an unref'd timer until {@link stop}. */
  startRotation(intervalSeconds: number): void {
    if (this.timer) clearInterval(this.timer);
    let running = false;
    this.timer = setInterval(() => {
      if (running) return; // a slow step (an upstream authority) must not pile up behind itself
      running = true;
      this.rotate()
        .catch((err: unknown) => this.log.error({ err }, 'ca rotation step failed; retrying at the next interval'))
        .finally(() => (running = false));
    }, Math.max(50, Math.round(intervalSeconds * 1000)));
    this.timer.unref();
  }

  /** Stops the rotation timer and waits for a running operation. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.queue;
  }

  /**
   * Recomputes the own bundle from the journal and stores it with sequence+1 if it
   * changed, or if `force`; notifies listeners on every new sequence (see {@link BundlePublisher}).
   */
  publishBundle(opts: { force?: boolean } = {}): Promise<SpiffeBundle> {
    return this.publisher.publish(opts);
  }

  /** The own trust domain's bundle as last published. */
  bundle(): SpiffeBundle {
    return this.publisher.bundle();
  }

  onBundleChange(fn: (b: SpiffeBundle) => void): () => void {
    return this.publisher.onChange(fn);
  }

  /** Unix seconds at which the active X.509 CA expires (metrics). */
  x509NotAfter(): number {
    return this.requireX509().notAfter;
  }

  jwtNotAfter(): number {
    return this.requireJWT().slot.notAfter;
  }

  /** Whether both an X.509 CA and a JWT key can sign at the clock's now. */
  canSign(): boolean {
    const st = this.signingStatus();
    return st.x509 === 'ok' && st.jwt === 'ok';
  }

  signingStatus(): SigningStatus {
    const now = this.nowS();
    const x = this.x509.active;
    const j = this.jwt.active;
    return {
      x509: !x ? 'no active key' : now >= x.notAfter ? 'expired' : now < x.validFrom ? 'not valid yet' : 'ok',
      jwt: !j ? 'no active key' : now >= j.slot.notAfter ? 'expired' : 'ok',
    };
  }

  private requireX509(): X509Signer {
    const a = this.x509.active;
    if (!a) throw unavailable('x509 ca is not ready');
    return a;
  }

  private requireJWT(): JWTSigner {
    const a = this.jwt.active;
    if (!a) throw unavailable('jwt signing key is not ready');
    return a;
  }

  /**
   * Mints an X.509-SVID for `spiffeId` over `publicKeySpki` (already verified by the
   * caller, e.g. from a CSR) with the active CA. notBefore = now − 10 s; notAfter =
   * now + ttl, capped at the CA's notAfter (never silently longer: `expiresAt` tells
   * the caller what it got).
   */
  mintX509SVID(req: { spiffeId: string; publicKeySpki: Buffer; dnsNames?: string[]; ttl: number }): MintedX509 {
    const plan = this.planX509Mint(req.ttl);
    const { der, serialHex } = plan.signer.template.mint({
      spiffeId: req.spiffeId,
      dnsNames: req.dnsNames,
      publicKeySpki: req.publicKeySpki,
      notBefore: plan.notBefore,
      notAfter: plan.notAfter,
    });
    return { chain: [der, ...plan.signer.chainTail], serialHex, expiresAt: plan.expiresAt, authorityId: plan.signer.slot.id };
  }

  /**
   * Everything {@link mintX509SVID} decides before it signs, for signing elsewhere
   * (the signing pool's workers, server/ca/signing/): the active CA, and the
   * validity of a leaf with this TTL. Throws UNAVAILABLE as mintX509SVID does.
   */
  planX509Mint(ttl: number): { signer: X509Signer; notBefore: Date; notAfter: Date; expiresAt: number } {
    const ca = this.requireX509();
    const now = this.nowS();
    const notAfter = Math.min(now + ttl, ca.notAfter);
    // Never sign outside the CA's validity: rotate instead (the next step replaces it).
    if (notAfter <= now) {
      this.kickRotation();
      throw unavailable('the x509 ca has expired and its successor is not active yet; retry shortly');
    }
    if (now < ca.validFrom) {
      this.kickRotation();
      throw unavailable('the x509 ca is not valid yet at the server clock (was the clock stepped back?); a new ca is being made, retry shortly');
    }
    return { signer: ca, notBefore: new Date((now - NOT_BEFORE_BACKDATE_SECONDS) * 1000), notAfter: new Date(notAfter * 1000), expiresAt: notAfter };
  }

  /** Mints a JWT-SVID with the active key; `exp` is capped at the key's expiry. */
  mintJWTSVID(req: { spiffeId: string; audience: string[]; ttl: number; jti?: boolean }): { token: string; expiresAt: number; authorityId: string } {
    const k = this.requireJWT();
    const now = this.nowS();
    const jti = req.jti ? randomBytes(16).toString('base64url') : undefined;
    const r = k.signer.mint({ sub: req.spiffeId, aud: req.audience, ttlSeconds: req.ttl, iss: this.deps.config.jwtIssuer, jti, now });
    if (r.expiresAt <= now) {
      this.kickRotation();
      throw unavailable('the jwt signing key has expired and its successor is not active yet; retry shortly');
    }
    return { ...r, authorityId: k.slot.id };
  }

  // --- operator control (tessera authority ...) ---

  /** Every slot of one kind, oldest first. */
  authorities(kind: AuthorityKind): AuthorityInfo[] {
    const slots = this.slots(kind);
    return slots.list().map((s) => toAuthorityInfo(s, slots.keyId(s), kind === 'x509' && !!this.deps.upstream));
  }

  /** Prepares (and publishes) a new key now, replacing a prepared one. */
  prepare(kind: AuthorityKind): Promise<AuthorityInfo> {
    return this.serial(async () => this.info(kind, await this.slots(kind).prepare(this.nowS())));
  }

  /** Activates the prepared key now (it must be `id` when given); the active one is retired. */
  activate(kind: AuthorityKind, id?: string): Promise<AuthorityInfo> {
    return this.serial(async () => this.info(kind, await this.slots(kind).activate(id)));
  }

  /** Taints a retired key. @throws NOT_FOUND, or FAILED_PRECONDITION for an active or prepared one */
  taint(kind: AuthorityKind, id: string): Promise<AuthorityInfo> {
    return this.serial(async () => this.info(kind, await this.slots(kind).taint(id)));
  }

  /**
   * Revokes a tainted key: it leaves the bundle. Refused with FAILED_PRECONDITION
   * while `dependents(id)` > 0, unless `force`.
   */
  revoke(kind: AuthorityKind, id: string, opts: { force: boolean; dependents: (id: string) => Promise<number> }): Promise<{ authority: AuthorityInfo; dependents: number }> {
    return this.serial(async () => {
      const r = await this.slots(kind).revoke(id, opts);
      return { authority: this.info(kind, r.slot), dependents: r.dependents };
    });
  }

  /**
   * What the operator operations on `id` would do now, without doing them: for
   * each, the FAILED_PRECONDITION message it would be refused with, or null when
   * it would go ahead. The operations run the same checks (AuthoritySlots).
   */
  preview(kind: AuthorityKind, id: string, dependents: number): { activate: string | null; taint: string | null; revoke: string | null; revoke_force: string | null } {
    const s = this.slots(kind);
    const msg = (e: { message: string } | undefined) => e?.message ?? null;
    return {
      activate: msg(s.activateRefusal(id)),
      taint: msg(s.taintRefusal(id)),
      revoke: msg(s.revokeRefusal(id, dependents, false)),
      revoke_force: msg(s.revokeRefusal(id, dependents, true)),
    };
  }

  /** Key ids agents must stop using: X.509 subject key identifiers (hex) and JWT kids of tainted or revoked keys. */
  taintedAuthorities(): { x509: string[]; jwt: string[] } {
    const now = this.nowS();
    return { x509: this.x509.taintedKeyIds(now), jwt: this.jwt.taintedKeyIds(now) };
  }

  private slots(kind: AuthorityKind): AuthoritySlots<X509Signer> | AuthoritySlots<JWTSigner> {
    if (kind === 'x509') return this.x509;
    if (kind === 'jwt') return this.jwt;
    throw failedPrecondition(`unknown authority kind ${String(kind)}`);
  }

  private info(kind: AuthorityKind, s: CAJournalEntry): AuthorityInfo {
    const current = this.slots(kind).list().find((x) => x.id === s.id) ?? s;
    return toAuthorityInfo(current, this.slots(kind).keyId(current), kind === 'x509' && !!this.deps.upstream);
  }
}
