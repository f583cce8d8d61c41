import { newWorkloadKeys, type WorkloadKeyWithCSR } from './workload-key';

/** Keys made per step: small, so a stop is honoured within a few milliseconds. */
const CHUNK = 250;

/**
 * Workload keys (with their CSRs) made ahead of need by a fresh agent, while it
 * waits for its first sync: until the server answers, the agent knows no entries
 * and one core sits idle, since the server is busy working out this agent's
 * entries. A key and its CSR do not depend on the entry (the CSR names no
 * identity), so the first signing round takes these before making new ones.
 *
 * It runs one pool job at a time (one core), in steps of {@link CHUNK}, and makes
 * no more than `max`. The amount follows the wait: a small agent's sync returns
 * after one step; a 10,000-entry sync that takes a quarter of a second on the
 * server finds a few thousand ready. What the round does not use is zeroed and
 * dropped ({@link discard}), so no unused private key stays in memory.
 */
export class KeyPrefetch {
  private keys: WorkloadKeyWithCSR[] = [];
  private stopped = false;
  private running?: Promise<void>;

  /** Starts making keys, up to `max`; stop() ends it. */
  start(max: number): void {
    if (this.running || this.stopped) return;
    this.running = this.loop(max).catch(() => undefined); // a failure only means fewer keys ready
  }

  /** Stops making keys (after the step under way); resolves when it has. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
  }

  /** Up to `n` of the keys made so far, each handed out once. */
  take(n: number): WorkloadKeyWithCSR[] {
    return this.keys.splice(0, n);
  }

  /** How many keys are ready. */
  get size(): number {
    return this.keys.length;
  }

  /** Stops, and zeroes and drops the keys nobody took. */
  async discard(): Promise<void> {
    await this.stop();
    for (const k of this.keys) k.pkcs8.fill(0);
    this.keys = [];
  }

  private async loop(max: number): Promise<void> {
    while (!this.stopped && this.keys.length < max) {
      // Kept even when stopped meanwhile: the round that stopped it takes them.
      this.keys.push(...(await newWorkloadKeys(Math.min(CHUNK, max - this.keys.length), { jobs: 1 })));
    }
  }
}
