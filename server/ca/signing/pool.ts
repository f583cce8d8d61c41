import fs from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { failedPrecondition } from '../../../common/errors';
import type { ManagedKey } from '../../keymanager/keymanager';
import type { AuthorityInstall, SignItem, SignJob, SignReply, SignResult } from './protocol';

/** Batches smaller than this are not split: a message round trip costs about one signature. */
const MIN_ITEMS_PER_WORKER = 8;

/** The authority and validity a batch is minted with (from CAManager.planX509Mint). */
export interface SignPlan {
  authorityId: string;
  caCertDer: Buffer;
  key: ManagedKey;
  notBefore: Date;
  notAfter: Date;
}

interface Slot {
  worker: Worker;
  installed: Set<string>;
  pending: Map<number, { resolve: (r: SignResult[]) => void; count: number }>;
  /** items in flight, to pick the least busy worker */
  load: number;
}

/**
 * Verifies CSRs and signs X.509-SVIDs on worker threads, so one server uses every
 * core (the agent API's batches; a single SVID is signed on the main thread). The
 * CA key goes to this process's own workers only, as a KeyObject (cloned within
 * the process, never serialized). A worker that dies fails only the items it was
 * signing (UNAVAILABLE: the agent retries them) and is replaced.
 */
export class SigningPool {
  private readonly slots: Slot[] = [];
  private nextJob = 1;
  private closed = false;

  private constructor(
    private readonly script: string,
    private readonly log?: Logger,
  ) {}

  /** `size` workers (at least 1). Throws FAILED_PRECONDITION when the compiled worker is missing. */
  static start(opts: { size: number; log?: Logger }): SigningPool {
    const pool = new SigningPool(workerScript(), opts.log);
    for (let i = 0; i < Math.max(1, Math.floor(opts.size)); i++) pool.slots.push(pool.spawn());
    return pool;
  }

  get size(): number {
    return this.slots.length;
  }

  /** True when this key can be handed to workers (a key manager may keep its keys to itself). */
  static canSignWith(key: ManagedKey): boolean {
    return typeof key.keyForWorkers === 'function';
  }

  /** Verifies and signs `items`, split across workers; one result per item, in order. */
  async sign(plan: SignPlan, items: SignItem[]): Promise<SignResult[]> {
    if (this.closed) throw failedPrecondition('the signing pool is closed');
    if (items.length === 0) return [];
    const parts = Math.max(1, Math.min(this.slots.length, Math.floor(items.length / MIN_ITEMS_PER_WORKER)));
    const per = Math.ceil(items.length / parts);
    const chunks: Promise<SignResult[]>[] = [];
    const order = [...this.slots].sort((a, b) => a.load - b.load);
    for (let i = 0; i < parts; i++) chunks.push(this.send(order[i]!, plan, items.slice(i * per, (i + 1) * per)));
    return (await Promise.all(chunks)).flat();
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  /** The workers, for tests that make one die mid-batch. */
  workersForTests(): Worker[] {
    return this.slots.map((s) => s.worker);
  }

  private send(slot: Slot, plan: SignPlan, items: SignItem[]): Promise<SignResult[]> {
    const id = this.nextJob++;
    let install: AuthorityInstall | undefined;
    if (!slot.installed.has(plan.authorityId)) {
      install = { id: plan.authorityId, caCertDer: plan.caCertDer, keyId: plan.key.id, keyType: plan.key.type, key: plan.key.keyForWorkers!() };
      slot.installed.add(plan.authorityId);
    }
    const job: SignJob = { id, install, authorityId: plan.authorityId, notBefore: plan.notBefore.getTime(), notAfter: plan.notAfter.getTime(), items };
    return new Promise((resolve) => {
      slot.pending.set(id, { resolve, count: items.length });
      slot.load += items.length;
      slot.worker.postMessage(job);
    });
  }

  private spawn(): Slot {
    const worker = new Worker(this.script);
    worker.unref(); // an idle pool never keeps the process alive
    const slot: Slot = { worker, installed: new Set(), pending: new Map(), load: 0 };
    worker.on('message', (reply: SignReply) => {
      const p = slot.pending.get(reply.id);
      if (!p) return;
      slot.pending.delete(reply.id);
      slot.load -= p.count;
      p.resolve(reply.results);
    });
    const died = (why: string) => {
      if (!this.slots.includes(slot)) return; // already replaced
      const failed = [...slot.pending.values()];
      slot.pending.clear();
      const error = { code: 'UNAVAILABLE' as const, message: 'the signing worker handling this item stopped; retry' };
      for (const p of failed) p.resolve(Array.from({ length: p.count }, () => ({ error })));
      if (this.closed) return;
      this.log?.error({ event: 'signing_worker_died', reason: why, failed_items: failed.reduce((n, p) => n + p.count, 0) }, 'signing worker died; starting another');
      this.slots[this.slots.indexOf(slot)] = this.spawn();
    };
    worker.on('error', (err) => died(err.message));
    worker.on('exit', (code) => died(`exit code ${code}`));
    return slot;
  }
}

/**
 * The compiled worker: next to this file in dist/, or, when this file runs from
 * the TypeScript sources (jest), the build's copy (npm test builds first).
 */
function workerScript(): string {
  const candidates = [path.join(__dirname, 'worker.js')];
  for (let d = __dirname; path.dirname(d) !== d; d = path.dirname(d)) {
    if (fs.existsSync(path.join(d, 'package.json'))) {
      candidates.push(path.join(d, 'dist', 'server', 'ca', 'signing', 'worker.js'));
      break;
    }
  }
  const found = candidates.find((c) => fs.existsSync(c));
  if (!found) throw failedPrecondition(`the signing worker is not built (looked for ${candidates.join(', ')}); run npm run build`);
  return found;
}
