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

  private constructor(private readonly deps: CAManagerDeps) {
    this.clock = deps.clock ?? systemClock;
    this.log = deps.log;
    const c = deps.config;
    this.publisher = new BundlePublisher({ trustDomain: c.trustDomain, refreshHint: c.refreshHint, store: deps.store, log: deps.log, upstream: deps.upstream, now: () => this.nowS() });
    const common = { store: deps.store, keyManager: deps.keyManager, log: deps.log, publish: (o?: { force?: boolean }) => this.publishBundle(o) };
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
    await m.x509.load();
    await m.jwt.load();
    // No publish before the step: a first start would publish an empty bundle, and a
    // prepared key found after a crash is published by the step before it is activated.
    await m.rotate();
    return m;
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
      const now = this.nowS();
      await this.x509.step(now);
      await this.jwt.step(now);
      // Expiry alone changes the bundle (an expired key leaves it) even when no slot changed.
      await this.publishBundle();
    });
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
    const ca = this.requireX509();
    const now = this.nowS();
    const notAfter = Math.min(now + req.ttl, ca.notAfter);
    if (notAfter <= now) throw unavailable('the x509 ca has expired and its successor is not active yet; retry shortly');
    const { der, serialHex } = ca.template.mint({
      spiffeId: req.spiffeId,
      dnsNames: req.dnsNames,
      publicKeySpki: req.publicKeySpki,
      notBefore: new Date((now - NOT_BEFORE_BACKDATE_SECONDS) * 1000),
      notAfter: new Date(notAfter * 1000),
    });
    return { chain: [der, ...ca.chainTail], serialHex, expiresAt: notAfter, authorityId: ca.slot.id };
  }

  /** Mints a JWT-SVID with the active key; `exp` is capped at the key's expiry. */
  mintJWTSVID(req: { spiffeId: string; audience: string[]; ttl: number }): { token: string; expiresAt: number; authorityId: string } {
    const k = this.requireJWT();
    const now = this.nowS();
    const r = k.signer.mint({ sub: req.spiffeId, aud: req.audience, ttlSeconds: req.ttl, iss: this.deps.config.jwtIssuer, now });
    if (r.expiresAt <= now) throw unavailable('the jwt signing key has expired and its successor is not active yet; retry shortly');
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
