import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { sign as cryptoSign, generateKeyPair as gen, type KeyObject } from 'node:crypto';
import os from 'node:os';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { startServerProcess, removeDir } from '../test/helpers/processes';
import { attestedAgent } from '../test/helpers/agent-identity';
import { createCSR } from '../common/x509svid/csr';

/**
 * Where the processes run (util-linux `taskset`):
 * - `server-on-one-core`: the server on the last CPU, and the raw-sign baseline
 *   in a process of its own on that same CPU; this process (the client: CSRs,
 *   JSON, TLS) on another CPU, as a load generator would be;
 * - `all-on-one-core`: everything on the last CPU, client work included.
 */
export type Placement = 'server-on-one-core' | 'all-on-one-core';

const taskset = (cpus: number | string, pid: number) => execFileSync('taskset', ['-a', '-p', '-c', String(cpus), String(pid)], { stdio: 'ignore' });

/** True if taskset works here (and there are CPUs to choose from). */
function canPin(): boolean {
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
    return os.cpus().length >= 2;
  } catch {
    return false;
  }
}

/** A process measuring the raw crypto.sign rate on request (one line in: seconds; one line out: ops/s). */
function startBaseline(): { rate(seconds: number): Promise<number>; proc: ChildProcess } {
  const script = `
    const { generateKeyPairSync, sign } = require('node:crypto');
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' }); // only sign() is used: no JWK export
    const data = Buffer.alloc(400, 7);
    require('node:readline').createInterface({ input: process.stdin }).on('line', (line) => {
      const end = performance.now() + Number(line) * 1000;
      let n = 0;
      const t0 = performance.now();
      while (performance.now() < end) { for (let i = 0; i < 100; i++) sign('sha256', data, privateKey); n += 100; }
      process.stdout.write(String(n / ((performance.now() - t0) / 1000)) + '\\n');
    });`;
  const proc = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
  return {
    proc,
    async rate(seconds) {
      proc.stdin!.write(`${seconds}\n`);
      const { value, done } = await lines.next();
      if (done) throw new Error('baseline process exited');
      return Number(value);
    },
  };
}

/**
 * Batch signing through the real agent API: a real `tessera server run` process,
 * an attested agent over mutual TLS, batches of CSRs for one entry. Returns
 * SVIDs/s. Each CSR's signature is verified by the server (one ECDSA verify).
 */
export async function benchAgentApi(opts: {
  /** measured rounds: a raw-sign slice, then `batchesPerRound` batches */
  rounds: number;
  batchesPerRound: number;
  /**
   * requests in flight: 2 keeps the server busy while the client (on another
   * CPU) encodes the next request and decodes the last answer, as with several
   * agents; 1 measures one client's round trips back to back
   */
  inFlight: 1 | 2;
  batchSize: number;
  warmupBatches: number;
  /** seconds of raw crypto.sign measured right before each batch, so each batch has its own baseline */
  rawSliceSeconds: number;
  placement: Placement;
}): Promise<{ svidsPerSec: number; total: number; ratios: number[]; rawSignPerSec: number; pinned: boolean }> {
  const pinned = canPin();
  if (!pinned) process.stderr.write('bench: taskset not available or one CPU only; agent API measured without pinning\n');
  const last = os.cpus().length - 1;
  if (pinned) taskset(opts.placement === 'all-on-one-core' ? last : 0, process.pid); // children inherit it
  const server = await startServerProcess({
    trustDomain: 'bench.example.org',
    config: { log_level: 'info', rate_limits: { attestation_per_second: 100, signing_per_second: 1_000_000 } },
  });
  let baseline: ReturnType<typeof startBaseline> | undefined;
  try {
    let rawRate = (seconds: number) => rawSignRate(seconds);
    if (pinned && opts.placement === 'server-on-one-core') {
      taskset(last, server.proc.pid!);
      baseline = startBaseline();
      taskset(last, baseline.proc.pid!);
      rawRate = baseline.rate;
    }
    const a = await attestedAgent(server);
    const out = await server.cli([
      '--output', 'json', 'entry', 'create', '--spiffe-id', 'spiffe://bench.example.org/w', '--parent-id', a.svid.agentId, '--selector', 'unix:uid:1',
    ]);
    const entryId = (JSON.parse(out) as { id: string }).id;
    // Fresh keys and CSRs for every request, as agents send them (no CSR is signed twice).
    const batches: Array<Array<{ entryId: string; csr: Buffer }>> = [];
    for (let b = 0; b < opts.rounds * opts.batchesPerRound + opts.warmupBatches; b++) {
      const batch = [];
      for (let i = 0; i < opts.batchSize; i++) {
        const { privateKey, publicKey } = (await promisify(gen)('ec', { namedCurve: 'P-256' })) as { privateKey: KeyObject; publicKey: KeyObject };
        batch.push({ entryId, csr: await createCSR(privateKey, publicKey) });
      }
      batches.push(batch);
    }
    /** Signs `list` with `inFlight` requests at a time; resolves with the number of SVIDs issued. */
    const run = async (list: Array<Array<{ entryId: string; csr: Buffer }>>): Promise<number> => {
      let next = 0;
      let issued = 0;
      const worker = async () => {
        while (next < list.length) {
          const batch = list[next++]!;
          const r = await a.client.signX509SVIDs(batch);
          const n = r.results.filter((x) => 'x509_svid' in x).length;
          if (n !== batch.length) throw new Error(`batch signing failed for ${batch.length - n} of ${batch.length} CSRs`);
          issued += n;
        }
      };
      await Promise.all(Array.from({ length: opts.inFlight }, worker));
      return issued;
    };
    // Warm up the connections and both processes' JIT (the server's hot path is
    // only optimized after a few thousand CSRs), then measure.
    await run(batches.splice(0, opts.warmupBatches));
    // This machine is shared and its speed drifts by 1.5x within seconds, so each
    // round is paired with a raw-sign measurement taken just before it, and the
    // ratio reported is the median of the per-round ratios.
    let ok = 0;
    let secs = 0;
    let rawSum = 0;
    const ratios: number[] = [];
    for (let r = 0; r < opts.rounds; r++) {
      const raw = await rawRate(opts.rawSliceSeconds);
      const t0 = performance.now();
      const n = await run(batches.splice(0, opts.batchesPerRound));
      const dt = (performance.now() - t0) / 1000;
      ok += n;
      secs += dt;
      rawSum += raw;
      ratios.push(n / dt / raw);
    }
    a.client.close();
    return { svidsPerSec: ok / secs, total: ok, ratios, rawSignPerSec: rawSum / opts.rounds, pinned };
  } finally {
    baseline?.proc.kill();
    if (pinned) taskset(`0-${last}`, process.pid);
    await server.stop();
    removeDir(server.dir);
  }
}

/** Raw ECDSA P-256 `crypto.sign` rate with a KeyObject, over ~`seconds`. */
export async function rawSignRate(seconds: number): Promise<number> {
  const { privateKey } = (await promisify(gen)('ec', { namedCurve: 'P-256' })) as { privateKey: KeyObject };
  const data = Buffer.alloc(400, 7);
  let n = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  while (performance.now() < end) {
    for (let i = 0; i < 200; i++) cryptoSign('sha256', data, privateKey);
    n += 200;
  }
  return n / ((performance.now() - t0) / 1000);
}
