import type { Logger } from '../../common/log';
import type { Clock } from '../../common/clock';
import { TesseraError } from '../../common/errors';
import { Backoff, DEFAULT_BACKOFF, fullJitterDelay, type BackoffOptions } from '../../common/backoff';
import type { Connection } from './connection';
import { isIdentityRejected, type AgentSVID } from './agent-svid';
import { SIGN_BATCH, SIGN_LANES, prepareBatch, sendBatch, type SignOutcome } from './svid-signer';
import type { ManagerEvent } from './types';
import type { WorkloadCache } from './workload-cache';
import type { EntryJSON } from '../client/server-client';

export interface X509RotatorDeps {
  conn: Connection;
  cache: WorkloadCache;
  agent: AgentSVID;
  log: Logger;
  clock: Clock;
  random: () => number;
  backoff?: BackoffOptions;
  stopped(): boolean;
  /** SVIDs were added or replaced */
  onChanged(): void;
  /** a signing round finished (whatever its result) */
  onRoundDone(): void;
  onEvent(e: ManagerEvent): void;
}

/**
 * The wait a RESOURCE_EXHAUSTED answer asks for ("retry in 0.8s" from the
 * server's rate limiter), else 1 s: that is pacing, not an outage, so it does not
 * grow the backoff.
 */
export function rateLimitDelayMs(e: unknown): number | undefined {
  if (!(e instanceof TesseraError) || e.code !== 'RESOURCE_EXHAUSTED') return undefined;
  const m = /retry in ([\d.]+)\s*s/.exec(e.message);
  return m ? Math.ceil(Number(m[1]) * 1000) : 1000;
}

/**
 * Obtains and renews workload X.509-SVIDs. A round signs every entry without an
 * SVID, with an outdated one, or due for renewal (pulling in renewals due within
 * the coalescing window), in batches of {@link SIGN_BATCH}, up to
 * {@link SIGN_LANES} requests at a time. One round runs
 * at a time; a kick during a round queues one more. A failed request backs off
 * for everyone (the server is likely down); an entry the server refuses backs off
 * on its own.
 */
export class X509Rotator {
  rotations = 0;
  private running?: Promise<void>;
  private again = false;
  private retryAt = 0;
  private failures = 0;
  private readonly backoff: Backoff;
  /** entries the server refused, by id: retried at `at`, or at once when the entry changes */
  private readonly itemRetry = new Map<string, { attempt: number; at: number; revision: number }>();

  constructor(private readonly d: X509RotatorDeps) {
    this.backoff = new Backoff(d.backoff, d.random);
  }

  /** Starts a round, or queues one after the current round. */
  kick(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.loop().finally(() => {
      this.running = undefined;
      this.d.onRoundDone();
    });
  }

  /** Whether a round is running (or queued behind the current one). */
  busy(): boolean {
    return this.running !== undefined;
  }

  /** Resolves when no round is running. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** The server answered again: retry failed batches at once. */
  serverReachable(): void {
    this.retryAt = 0;
    this.backoff.reset();
  }

  /** When a round next has work (ms), or undefined when none can run (or one is running). */
  nextDeadline(): number | undefined {
    const now = this.d.clock.now().getTime();
    if (this.running || !this.d.agent.hasValidSVID(now) || this.d.agent.rejected) return undefined;
    let t: number | undefined;
    for (const e of this.d.cache.entries.values()) {
      const due = this.d.cache.signingTime(e, now);
      if (due === undefined) continue;
      const at = Math.max(due, this.retryAfter(e), this.retryAt);
      if (t === undefined || at < t) t = at;
    }
    return t;
  }

  /** When a refused entry may be tried again (0: now); a changed entry may be tried at once. */
  private retryAfter(e: EntryJSON): number {
    const r = this.itemRetry.get(e.id);
    return r && r.revision === e.revision ? r.at : 0;
  }

  private async loop(): Promise<void> {
    do {
      this.again = false;
      await this.round();
    } while (this.again && !this.d.stopped());
  }

  private async round(): Promise<void> {
    const now = this.d.clock.now().getTime();
    if (!this.d.agent.hasValidSVID(now) || this.d.agent.rejected || now < this.retryAt) return;
    for (const id of this.itemRetry.keys()) if (!this.d.cache.entries.has(id)) this.itemRetry.delete(id);
    const due = this.d.cache.dueForSigning(now, (e) => this.retryAfter(e) > now);
    const chunks: typeof due[] = [];
    for (let i = 0; i < due.length; i += SIGN_BATCH) chunks.push(due.slice(i, i + SIGN_BATCH));
    // SIGN_LANES lanes take the chunks in turn, each making its batch's keys and
    // CSRs and then sending it: while one batch is at the server, the next is
    // being prepared or is already there too, so the server's signing workers
    // verify and sign one batch while its main thread answers the other.
    let taken = 0;
    let applied = 0;
    let failure: { e: unknown; gen: number } | undefined;
    const lane = async (): Promise<void> => {
      while (taken < chunks.length && !failure && !this.d.stopped()) {
        const chunk = chunks[taken++]!;
        const batch = await prepareBatch(chunk);
        if (failure || this.d.stopped()) return;
        const gen = this.d.conn.generation;
        let outcomes: SignOutcome[];
        try {
          outcomes = await sendBatch(this.d.conn.client, batch, () => this.d.clock.now().getTime(), this.d.random);
        } catch (e) {
          failure ??= { e, gen };
          return;
        }
        if (this.failures > 0) this.d.log.info({ failures: this.failures }, 'x509-svid signing works again');
        this.failures = 0;
        this.backoff.reset();
        this.apply(outcomes);
        applied += chunk.length;
      }
    };
    await Promise.all(Array.from({ length: Math.min(SIGN_LANES, chunks.length) }, lane));
    if (failure) this.failed(failure.e, failure.gen, due.length - applied);
  }

  private failed(e: unknown, gen: number, pending: number): void {
    if (this.d.stopped()) return;
    // The client dropped its connections for a new SVID or new roots: not a server failure.
    if (this.d.conn.generation !== gen) return void (this.again = true);
    if (isIdentityRejected(e)) this.d.agent.reject(e);
    const paced = rateLimitDelayMs(e);
    const delay = paced ?? this.backoff.next();
    this.retryAt = this.d.clock.now().getTime() + delay;
    if (paced !== undefined) return void this.d.log.debug({ pending, retry_ms: delay }, 'signing rate limited by the server; pacing');
    this.failures++;
    const fields = { error: (e as Error).message, pending, failures: this.failures, retry_ms: delay };
    if (this.failures === 1) this.d.log.warn(fields, 'cannot obtain x509-svids; will retry');
    else this.d.log.debug(fields, 'cannot obtain x509-svids again');
  }

  private retryLater(entry: EntryJSON, now: number): void {
    const attempt = (this.itemRetry.get(entry.id)?.attempt ?? -1) + 1;
    const { baseMs, capMs } = { ...DEFAULT_BACKOFF, ...this.d.backoff };
    // Never sooner than a second, even when full jitter draws 0.
    const delay = Math.max(1000, fullJitterDelay(attempt, baseMs, capMs, this.d.random));
    this.itemRetry.set(entry.id, { attempt, at: now + delay, revision: entry.revision });
  }

  private apply(outcomes: SignOutcome[]): void {
    let signed = 0;
    let rotated = 0;
    const failed: Array<{ entry_id: string; code: string; message: string }> = [];
    const now = this.d.clock.now().getTime();
    for (const o of outcomes) {
      const entry = this.d.cache.entries.get(o.entry.id);
      if (!entry) continue; // removed while we were signing
      if ('error' in o) {
        this.retryLater(entry, now);
        failed.push({ entry_id: entry.id, code: o.error.code, message: o.error.message });
        continue;
      }
      if (entry !== o.entry) this.again = true; // our entry changed while signing: sign it again as it is now
      if (o.svid.spiffeId !== entry.spiffe_id) {
        // The server signed for another SPIFFE ID than we hold: our copy of the entry is behind (the
        // sync will bring it) or theirs is. Either way, not servable; wait rather than loop.
        if (entry === o.entry) this.retryLater(entry, now);
        continue;
      }
      if (this.d.cache.svids.has(entry.id)) rotated++;
      this.d.cache.svids.set(entry.id, o.svid);
      this.itemRetry.delete(entry.id);
      signed++;
    }
    if (signed > 0) {
      this.rotations += rotated;
      this.d.log.debug({ signed, rotated }, 'x509-svids obtained');
      this.d.onEvent({ type: 'x509_svids_signed', count: signed, rotations: rotated });
      this.d.onChanged();
    }
    if (failed.length > 0) {
      this.d.log.warn({ count: failed.length, failures: failed.slice(0, 10) }, 'the server refused to sign some x509-svids; will retry');
      this.d.onEvent({ type: 'x509_sign_errors', count: failed.length });
    }
  }
}
