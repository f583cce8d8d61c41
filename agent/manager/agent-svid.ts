import type { Logger } from '../../common/log';
import type { Clock } from '../../common/clock';
import { TesseraError, failedPrecondition, invalidArgument } from '../../common/errors';
import type { SpiffeBundle } from '../../common/bundle/bundle';
import { createCSR } from '../../common/x509svid/csr';
import type { AgentStore, StoredIdentity } from '../storage/agent-store';
import { Backoff, type BackoffOptions } from '../../common/backoff';
import type { Connection } from './connection';
import { drawJitter, lifetimeStart, rotationTime } from './rotation';
import { taintedRotateAt } from './taint';
import { certificateValidity } from '../../common/x509svid/certificate-validity';
import { newKeyPair } from './workload-key';
import type { AttestFn, AttestedIdentity, ManagerEvent } from './types';

/**
 * True for an error meaning the server no longer accepts this agent's SVID
 * (evicted, banned, superseded, or no usable client certificate). Only valid for
 * requests without per-entry authorization (entries, renew, bundle, a whole
 * signing batch): a JWT mint is also PERMISSION_DENIED for an unauthorized entry.
 */
export function isIdentityRejected(e: unknown): boolean {
  return e instanceof TesseraError && (e.code === 'PERMISSION_DENIED' || e.code === 'UNAUTHENTICATED');
}

export interface AgentSVIDDeps {
  conn: Connection;
  store: AgentStore;
  trustDomain: string;
  attest: AttestFn;
  reattestOnEviction: boolean;
  log: Logger;
  clock: Clock;
  random: () => number;
  backoff?: BackoffOptions;
  onAttested(a: { agentIdChanged: boolean; bundle: SpiffeBundle; reattestation: boolean }): void;
  onEvent(e: ManagerEvent): void;
}

type Current = StoredIdentity & { rotateAt: number };

/**
 * The agent's own X.509-SVID: restored from disk, attested, renewed at half-life
 * (± jitter), and the eviction policy. Renewal persists the new SVID before using
 * it: the server makes a renewed SVID current on its first use and refuses the
 * old one from then on, so an agent that crashed in between must find the new one.
 */
export class AgentSVID {
  private current?: Current;
  private rejectedFor?: string;
  private rejections = 0;
  private renewing?: Promise<void>;
  private retryAt = 0;
  private readonly backoff: Backoff;

  constructor(private readonly d: AgentSVIDDeps) {
    this.backoff = new Backoff(d.backoff, d.random);
  }

  get agentId(): string | undefined {
    return this.current?.agentId;
  }

  /** Takes the stored SVID if it verifies (its chain with `roots`, the cached bundle, when given), is unexpired and of this trust domain. */
  async load(roots?: Buffer[]): Promise<boolean> {
    const id = await this.d.store.loadIdentity(this.d.trustDomain, roots);
    if (!id) return false;
    if (!id.agentId.startsWith(`spiffe://${this.d.trustDomain}/`)) {
      this.d.log.warn({ agent_id: id.agentId }, 'stored agent svid is for another trust domain; ignoring it');
      return false;
    }
    this.use(id);
    return true;
  }

  /** An unexpired SVID is held (whether or not the server still accepts it). */
  hasValidSVID(now: number): boolean {
    return !!this.current && this.current.notAfter * 1000 > now;
  }

  /** The server refused this agent; cleared by a later success or a new attestation. */
  get rejected(): boolean {
    return this.rejectedFor !== undefined;
  }

  /** Attestation may be tried now: a method exists, and after a refusal only if configured. */
  mayAttest(): boolean {
    return !!this.d.attest && (!this.rejected || this.d.reattestOnEviction);
  }

  /** Runs the attestation method and switches to the new SVID. @throws its error, or FAILED_PRECONDITION without a method */
  async attest(): Promise<void> {
    const pending = this.d.attest?.();
    if (!pending) throw failedPrecondition('no attestation method is configured (give the agent a join token or an x509pop key)');
    const a: AttestedIdentity = await pending;
    if (!a.agentId.startsWith(`spiffe://${this.d.trustDomain}/`)) throw invalidArgument(`attestation returned agent id ${a.agentId} outside ${this.d.trustDomain}`);
    const reattestation = this.current !== undefined;
    const agentIdChanged = this.current?.agentId !== a.agentId;
    const id = this.identityFrom(a.agentId, a.chain, a.key);
    // The attestation is done (a join token is spent): keep the SVID even if it cannot be saved.
    await this.d.store.saveIdentity(id).catch((e: Error) => this.d.log.error({ error: e.message }, 'cannot save the agent svid; a restart will need a new attestation'));
    this.use(id);
    this.rejectedFor = undefined;
    this.backoff.reset();
    this.retryAt = 0;
    this.d.log.info({ agent_id: a.agentId, expires_at: id.notAfter, reattestation }, 'agent attested');
    this.d.onEvent({ type: 'attested', reattestation });
    this.d.onAttested({ agentIdChanged, bundle: a.bundle, reattestation });
  }

  /** Records that the server refused the agent; logs it once, with what an operator should do. */
  reject(e: unknown): void {
    if (this.rejected) return;
    const reason = (e as Error).message;
    this.rejectedFor = reason;
    this.rejections++;
    const banned = /\bbanned\b/.test(reason);
    const action = banned
      ? 'an operator must evict it (`tessera agent evict`) and give it a new join token'
      : this.mayAttest()
        ? 're-attesting now'
        : 'give it a new join token and restart it, or set reattest_on_eviction with an attestation method that can repeat (x509pop)';
    this.d.log.error({ agent_id: this.agentId, reason }, `the server no longer accepts this agent (${banned ? 'banned' : 'evicted'}): ${action}; cached svids are served until they expire`);
  }

  /** Pass to {@link accepted}: taken when a request starts. */
  get epoch(): number {
    return this.rejections;
  }

  /**
   * A request started at `epoch` succeeded. One started before the refusal (a long
   * poll authenticated before an eviction) proves nothing and is ignored.
   */
  accepted(epoch: number): void {
    if (!this.rejected || epoch !== this.rejections) return;
    this.rejectedFor = undefined;
    this.d.log.info({ agent_id: this.agentId }, 'the server accepts this agent again');
  }

  /** Renews when due (half-life ± jitter, or a retry time); never throws. */
  async maybeRenew(): Promise<void> {
    const now = this.d.clock.now().getTime();
    if (!this.hasValidSVID(now) || this.renewing || this.rejected || now < this.current!.rotateAt || now < this.retryAt) return;
    this.renewing = this.renew().finally(() => (this.renewing = undefined));
    return this.renewing;
  }

  /**
   * Moves the renewal to a jittered time within the taint spread when `tainted`
   * says the CA that signed the current SVID was tainted. @returns whether it moved
   */
  expedite(tainted: (leaf: Buffer) => boolean, now: number): boolean {
    const c = this.current;
    if (!c || !tainted(c.chain[0]!)) return false;
    const at = taintedRotateAt(c.rotateAt, c.notBefore * 1000, c.notAfter * 1000, now, this.d.random);
    if (at >= c.rotateAt) return false;
    c.rotateAt = at;
    return true;
  }

  /** Resolves when no renewal is in flight. */
  async idle(): Promise<void> {
    await this.renewing;
  }

  /** When {@link maybeRenew} next has work (ms), if ever. */
  nextDeadline(): number | undefined {
    // An expired SVID cannot be renewed, only replaced by attesting (the sync loop does that).
    if (!this.hasValidSVID(this.d.clock.now().getTime()) || this.rejected || this.renewing) return undefined;
    return Math.max(this.current!.rotateAt, this.retryAt);
  }

  private async renew(): Promise<void> {
    const agentId = this.current!.agentId;
    try {
      const { privateKey, publicKey } = await newKeyPair();
      const r = await this.d.conn.client.renew(await createCSR(privateKey, publicKey));
      const id = this.identityFrom(agentId, r.chain, privateKey);
      await this.d.store.saveIdentity(id);
      this.use(id);
      this.backoff.reset();
      this.retryAt = 0;
      this.d.log.info({ agent_id: agentId, expires_at: id.notAfter }, 'agent svid renewed');
      this.d.onEvent({ type: 'agent_svid_renewed' });
    } catch (e) {
      if (isIdentityRejected(e)) return this.reject(e);
      const delay = this.backoff.next();
      this.retryAt = this.d.clock.now().getTime() + delay;
      const fields = { agent_id: agentId, error: (e as Error).message, retry_ms: delay, failures: this.backoff.failures };
      if (this.backoff.failures === 1) this.d.log.warn(fields, 'cannot renew the agent svid; will retry');
      else this.d.log.debug(fields, 'cannot renew the agent svid again');
    }
  }

  private identityFrom(agentId: string, chain: Buffer[], key: StoredIdentity['key']): StoredIdentity {
    const { notBefore, notAfter } = certificateValidity(chain[0]!);
    return { agentId, chain, key, notBefore, notAfter, receivedAt: this.d.clock.now().getTime() };
  }

  private use(id: StoredIdentity): void {
    const start = lifetimeStart(id.notBefore * 1000, id.notAfter * 1000, id.receivedAt);
    this.current = { ...id, rotateAt: rotationTime(start, id.notAfter * 1000, drawJitter(this.d.random)) };
    this.d.conn.setIdentity(id.chain, id.key);
  }
}
