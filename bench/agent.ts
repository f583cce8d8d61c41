import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { spawn, type ChildProcess } from 'node:child_process';
import { startServerProcess, startAgentProcess, removeDir, type AgentProcess } from '../test/helpers/processes';
import { AdminClient } from '../cli/admin-client';
import { workloadClientConstructor } from '../common/workloadapi/proto';
import { percentile } from './propagation';
import { rawSignRate } from './agent-api';

/** Streams per client before reconnecting: nghttp2 kills a session after ~1,000 rapid cancels. */
const PER_CLIENT = 250;

/** First-message latency of a server stream: open, await one message, cancel (ms per round), on one new client. */
async function firstMessageLatencies(newClient: () => grpc.Client, open: (c: grpc.Client) => grpc.ClientReadableStream<unknown>, rounds: number): Promise<number[]> {
  const out: number[] = [];
  let c = newClient();
  for (let i = 0; i < rounds; i++) {
    if (i > 0 && i % PER_CLIENT === 0) {
      c.close();
      c = newClient();
    }
    const t0 = performance.now();
    await new Promise<void>((resolve, reject) => {
      const s = open(c);
      s.once('data', () => {
        out.push(performance.now() - t0);
        s.cancel();
        resolve();
      });
      s.once('error', (e: grpc.ServiceError) => (e.code === grpc.status.CANCELLED ? undefined : reject(e)));
    });
  }
  c.close();
  return out.slice(Math.min(5, rounds >> 2)); // drop the connection's warm-up rounds
}

/**
 * Latencies of `a` and `b` measured in alternating chunks of `chunk` rounds, so
 * that drift in this shared machine's speed hits both alike.
 */
async function alternating(
  a: () => Promise<(rounds: number) => Promise<number[]>>,
  b: () => Promise<(rounds: number) => Promise<number[]>>,
  rounds: number,
  chunk: number,
): Promise<{ a: number[]; b: number[] }> {
  const out = { a: [] as number[], b: [] as number[] };
  const [runA, runB] = [await a(), await b()];
  for (let done = 0; done < rounds; done += chunk) {
    out.a.push(...(await runA(Math.min(chunk, rounds - done))));
    out.b.push(...(await runB(Math.min(chunk, rounds - done))));
  }
  return out;
}

/**
 * A bare grpc-js service on a Unix socket that answers one server-stream message
 * of `size` bytes, in its own process like the agent (an in-process server would
 * save the cross-process wake-ups the agent pays, and flatter the baseline).
 */
async function startEcho(socket: string, size: number): Promise<ChildProcess> {
  const grpcPath = require.resolve('@grpc/grpc-js');
  const script = `
    const grpc = require(${JSON.stringify(grpcPath)});
    const payload = Buffer.alloc(${size}, 7);
    const id = (b) => b;
    const server = new grpc.Server();
    server.addService({ Echo: { path: '/bench.Echo/Echo', requestStream: false, responseStream: true,
      requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id } },
      { Echo: (call) => void call.write(payload) });
    server.bindAsync('unix://${socket}', grpc.ServerCredentials.createInsecure(), (e) => { if (e) throw e; process.stdout.write('ready\\n'); });`;
  const p = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    p.stdout!.once('data', () => resolve());
    p.once('exit', (code) => reject(new Error(`echo server exited ${code}`)));
  });
  return p;
}

/** CPU seconds (user + system, all threads) a process has used so far, from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number {
  // fields after the parenthesised command name: state is field 3, utime 14, stime 15 (clock ticks)
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS;
}
/** CPU seconds per thread (tid, name): what BENCH_THREAD_CPU=1 prints after the sync. */
function threadCpu(pid: number): string {
  return readdirSync(`/proc/${pid}/task`)
    .map((tid) => {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      return { tid, name, s: (Number(f[11]) + Number(f[12])) / CLOCK_TICKS };
    })
    .filter((t) => t.s > 0)
    .map((t) => `${t.name}/${t.tid} ${t.s.toFixed(2)}`)
    .join(', ');
}
/** USER_HZ: 100 on Linux x86-64 and arm64 (sysconf(_SC_CLK_TCK)); Node has no binding for it. */
const CLOCK_TICKS = 100;

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

function cachedSvids(agent: AgentProcess): Promise<number> {
  return new Promise((resolve) => {
    http
      .get(`http://${agent.health}/metrics`, (res) => {
        let t = '';
        res.on('data', (c) => (t += c));
        res.on('end', () => resolve(Number(/^tessera_agent_cached_svids (\d+)/m.exec(t)?.[1] ?? 0)));
      })
      .on('error', () => resolve(0));
  });
}

async function waitCached(agent: AgentProcess, n: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await cachedSvids(agent)) < n) {
    if (Date.now() > deadline) throw new Error(`agent did not cache ${n} SVIDs within ${timeoutMs} ms (has ${await cachedSvids(agent)})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const STEADY_MS = Number(process.env.BENCH_AGENT_STEADY_MS ?? 30_000);

/** RSS (MB) right after a sync, and after STEADY_MS without traffic. */
async function rssAfterSync(agent: AgentProcess): Promise<{ afterSyncMb: number; steadyMb: number }> {
  const afterSyncMb = rssKb(agent.proc.pid!) / 1024;
  await new Promise((r) => setTimeout(r, STEADY_MS));
  return { afterSyncMb, steadyMb: rssKb(agent.proc.pid!) / 1024 };
}

async function createEntries(admin: AdminClient, td: string, parent: string, n: number, prefix: string): Promise<void> {
  for (let i = 0; i < n; i += 1000) {
    const entries = [];
    for (let j = i; j < Math.min(n, i + 1000); j++) entries.push({ spiffe_id: `spiffe://${td}/${prefix}-${j}`, parent_id: parent, selectors: [`unix:uid:${100000 + j}`] });
    await admin.request('POST', '/v1/entries', { entries });
  }
}

/**
 * The agent figures of issue #3, all from real processes in one run: FetchX509SVID
 * first-message latency from a warm cache versus a bare grpc-js service on the same
 * kind of socket, agent RSS with 1,000 entries cached, and the time a fresh agent
 * takes to sync (and get SVIDs for) 10,000 entries.
 */
export async function benchAgent(opts: { rounds: number; rssEntries: number; syncEntries: number; syncRuns: number }) {
  const td = 'agentbench.example.org';
  const alias = `spiffe://${td}/node/bench`;
  const server = await startServerProcess({
    trustDomain: td,
    config: { log_level: 'warn', rate_limits: { attestation_per_second: 100, signing_per_second: 1_000_000 } },
  });
  const admin = new AdminClient(server.adminSocket);
  const uid = process.getuid?.() ?? 0;
  await admin.request('POST', '/v1/entries', { entries: [{ spiffe_id: `spiffe://${td}/me`, parent_id: alias, selectors: [`unix:uid:${uid}`] }] });
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'bench-'));
  const agents: AgentProcess[] = [];
  try {
    const agent = await startAgentProcess(server, { alias, config: { log_level: 'warn' } });
    agents.push(agent);
    await waitCached(agent, 1, 30_000);

    // 1. latency: the agent (attestation per call included) vs a bare grpc-js stream with the same payload size
    const Client = workloadClientConstructor();
    const md = new grpc.Metadata();
    md.set('workload.spiffe.io', 'true');
    let size = 0;
    const agentRun = (rounds: number) =>
      firstMessageLatencies(
        () => new Client(`unix://${agent.socket}`, grpc.credentials.createInsecure()),
        (c) => {
          const s = (c as unknown as { FetchX509SVID: (r: object, m: grpc.Metadata) => grpc.ClientReadableStream<unknown> }).FetchX509SVID({}, md);
          s.once('data', (m: { svids: Array<{ x509_svid: Buffer; x509_svid_key: Buffer; bundle: Buffer }> }) => {
            size = m.svids.reduce((a, x) => a + x.x509_svid.length + x.x509_svid_key.length + x.bundle.length + 80, 0);
          });
          return s;
        },
        rounds,
      );
    const echoSocket = path.join(tmp, 'echo.sock');
    let echo: ChildProcess | undefined;
    const { a: agentMs, b: echoMs } = await alternating(
      async () => {
        await agentRun(10); // learn the response size for the echo service
        return agentRun;
      },
      async () => {
        echo = await startEcho(echoSocket, size);
        return (rounds) =>
          firstMessageLatencies(
            () => new grpc.Client(`unix://${echoSocket}`, grpc.credentials.createInsecure()),
            (c) => c.makeServerStreamRequest('/bench.Echo/Echo', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0)),
            rounds,
          );
      },
      opts.rounds,
      50,
    ).finally(() => echo?.kill());

    // 2. RSS of a fresh agent holding N entries' SVIDs: right after its sync, and
    // steady (after STEADY_MS idle, once V8's memory reducer has shrunk the young
    // generation the sync's garbage grew; the latency agent above is not used:
    // its heap carries 3,000 finished streams' garbage).
    await createEntries(admin, td, alias, opts.rssEntries, 'rss');
    await agent.stop();
    const small = await startAgentProcess(server, { alias, config: { log_level: 'warn' } });
    agents.push(small);
    await waitCached(small, opts.rssEntries + 1, 120_000);
    const rss = await rssAfterSync(small);
    await small.stop();

    // 3. a fresh agent syncing M entries (creation of the entries is not timed)
    await createEntries(admin, td, alias, opts.syncEntries - opts.rssEntries, 'sync');
    // From the agent's spawn (the operator's join token and bundle are made before it, not timed).
    const syncOnce = async () => {
      // The machine's speed right before this run (its drift is the sync's), as a raw ECDSA sign rate.
      const rawSignPerSec = await rawSignRate(0.3);
      const serverCpu0 = cpuSeconds(server.proc.pid!);
      const fresh = await startAgentProcess(server, { alias, config: { log_level: process.env.BENCH_SYNC_LOG ? 'debug' : 'warn' }, waitReady: false });
      agents.push(fresh);
      const readyAt = performance.now();
      await waitCached(fresh, opts.syncEntries + 1, 300_000);
      const done = performance.now();
      // The CPU both processes spent on the sync: on this 2-core machine the sync cannot take less than half their sum.
      const cpu = { agent: cpuSeconds(fresh.proc.pid!), server: cpuSeconds(server.proc.pid!) - serverCpu0 };
      if (process.env.BENCH_THREAD_CPU === '1') {
        process.stderr.write(`sync cpu by thread: agent ${threadCpu(fresh.proc.pid!)}\nserver (since start) ${threadCpu(server.proc.pid!)}\n`);
      }
      return { agent: fresh, seconds: (done - fresh.spawnedAt) / 1000, afterReady: (done - readyAt) / 1000, cpu, rawSignPerSec };
    };
    // The first fresh agent also gives the RSS with 10,000 entries; then more fresh
    // agents sync the same entries (each with its own join token and agent ID), and
    // the figures are the median run's: this machine's speed drifts by a third
    // within minutes, and one run is one draw of that.
    const runs = [await syncOnce()];
    const rssSync = await rssAfterSync(runs[0]!.agent);
    // BENCH_SYNC_LOG=<file>: the syncing agent's debug log, for a timeline of its batches
    if (process.env.BENCH_SYNC_LOG) writeFileSync(process.env.BENCH_SYNC_LOG, runs[0]!.agent.logs());
    await runs[0]!.agent.stop();
    for (let i = 1; i < opts.syncRuns; i++) {
      const r = await syncOnce();
      await r.agent.stop();
      runs.push(r);
    }
    const bySeconds = [...runs].sort((a, b) => a.seconds - b.seconds);
    const median = bySeconds[(bySeconds.length - 1) >> 1]!;
    const sync = { median, min: bySeconds[0]!.seconds, max: bySeconds[bySeconds.length - 1]!.seconds, runs: runs.length };
    return { agentMs, echoMs, rss, rssSync, sync };
  } finally {
    for (const a of agents) {
      await a.stop();
      removeDir(a.dir);
    }
    await server.stop();
    removeDir(server.dir);
    rmSync(tmp, { recursive: true, force: true });
  }
}

export { percentile };
