import 'reflect-metadata';
import { generateKeyPair } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { ServerClient } from '../agent/client/server-client';
import { AdminClient } from '../cli/admin-client';
import { x509AuthoritiesFromPem } from '../common/bundle/bundle';
import { createCSR } from '../common/x509svid/csr';
import { freshSchema } from '../test/helpers/postgres';
import { startServerProcess, type ServerProcess } from '../test/helpers/processes';

const TD = 'agents.bench';
const gen = promisify(generateKeyPair);
const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.max(0, Math.ceil((xs.length * p) / 100) - 1))]!;

export interface AgentsFigures {
  servers: number;
  agents: number;
  /** every agent asks for the SVID of its one entry, all at once, over its own mTLS connection; SVIDs/s */
  svidsPerSec: number;
  /** entry created through the first server → the long poll of the agent it is for returns (p50, p99, ms) */
  wakeP50Ms: number;
  wakeP99Ms: number;
  /** resident memory of each server after the run, MB */
  serverRssMb: number[];
}

/**
 * N simulated agents in this one process (each a real ServerClient: its own join
 * token attestation, agent SVID and mTLS connection) against one server or two on
 * one PostgreSQL database; with two, agents alternate which server they start on.
 */
export async function benchAgents(opts: { agents: number; servers: 1 | 2; postgresUrl?: string; rounds?: number }): Promise<AgentsFigures> {
  const schema = opts.postgresUrl ? await freshSchema(opts.postgresUrl) : undefined;
  if (opts.servers === 2 && !schema) throw new Error('two servers need a PostgreSQL URL');
  const config = {
    ...(schema && { datastore: { url: opts.postgresUrl, schema: schema.schema, pool_size: 20 } }),
    log_level: 'warn',
    rate_limits: { attestation_per_second: 1_000_000, signing_per_second: 1_000_000 },
    agent_api: { max_connections: 16_000, max_connections_per_ip: 4_000 },
    agent_sync_max_wait: 60,
  };
  const servers: ServerProcess[] = [];
  const clients: ServerClient[] = [];
  try {
    for (let i = 0; i < opts.servers; i++) servers.push(await startServerProcess({ trustDomain: TD, config }));
    const admin = new AdminClient(servers[0]!.adminSocket);
    // with two servers, wait until the bundle holds both CAs (each agent may meet either)
    let roots: Buffer[] = [];
    for (let t = 0; t < 200; t++) {
      roots = x509AuthoritiesFromPem(await servers[0]!.cli(['bundle', 'show', '--format', 'pem']));
      if (roots.length >= opts.servers) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const addrs = servers.map((s) => s.agentApi);
    const keys = await Promise.all(Array.from({ length: opts.agents }, () => gen('ec', { namedCurve: 'P-256' })));
    const csrs = await Promise.all(keys.map((k) => createCSR(k.privateKey, k.publicKey)));
    // attest every agent
    const agentIds: string[] = [];
    for (let i = 0; i < opts.agents; i++) {
      const t = await admin.request<{ token: string }>('POST', '/v1/join-tokens', {});
      const order = opts.servers === 2 && i % 2 === 1 ? [...addrs].reverse() : addrs;
      const c = new ServerClient(order, TD, roots);
      const svid = await c.attestJoinToken(t.token, csrs[i]!);
      c.setIdentity(svid.chain, keys[i]!.privateKey);
      clients.push(c);
      agentIds.push(svid.agentId);
    }
    const entries = agentIds.map((id, i) => ({ spiffe_id: `spiffe://${TD}/w/${i}`, parent_id: id, selectors: [`unix:uid:${i}`] }));
    const created: Array<{ id: string }> = [];
    for (let i = 0; i < entries.length; i += 1000) created.push(...(await admin.request<{ entries: Array<{ id: string }> }>('POST', '/v1/entries', { entries: entries.slice(i, i + 1000) })).entries);

    // SVIDs/s: every agent signs its entry's SVID, all at once, `rounds` times
    const rounds = opts.rounds ?? 3;
    let signed = 0;
    const t0 = performance.now();
    for (let r = 0; r < rounds; r++) {
      const res = await Promise.all(clients.map((c, i) => c.signX509SVIDs([{ entryId: created[i]!.id, csr: csrs[i]! }])));
      signed += res.filter((x) => x.results[0] && !('error' in x.results[0])).length;
    }
    const svidsPerSec = (signed / (performance.now() - t0)) * 1000;

    // long-poll wake-up: every agent holds a long poll; an entry for agent k is created through server 0
    const revisions = await Promise.all(clients.map((c) => c.entries().then((e) => e.revision)));
    const wakes: number[] = [];
    for (let k = 0; k < 20; k++) {
      const target = (k * 37) % opts.agents;
      const poll = clients[target]!.entries({ since: revisions[target], waitSeconds: 30 });
      await new Promise((r) => setTimeout(r, 50)); // the poll is held by the server
      const start = performance.now();
      await admin.request('POST', '/v1/entries', { entries: [{ spiffe_id: `spiffe://${TD}/late/${k}`, parent_id: agentIds[target], selectors: ['unix:uid:0'] }] });
      const got = await poll;
      wakes.push(performance.now() - start);
      revisions[target] = got.revision;
    }
    return {
      servers: opts.servers,
      agents: opts.agents,
      svidsPerSec,
      wakeP50Ms: pct(wakes, 50),
      wakeP99Ms: pct(wakes, 99),
      serverRssMb: servers.map((s) => rssMb(s.proc.pid!)),
    };
  } finally {
    for (const c of clients) c.close();
    await Promise.all(servers.map((s) => s.stop()));
    await schema?.drop();
  }
}

export interface LoadFigures {
  servers: number;
  processes: number;
  agentsPerProcess: number;
  batch: number;
  svidsPerSec: number;
  /** CPU the servers used over the measured window, in cores (CPU seconds / wall second), summed */
  serverCpuCores: number;
  /** the same for the load generator processes */
  loadCpuCores: number;
  failed: number;
}

/** utime + stime of a process, in seconds (/proc/PID/stat fields 14 and 15, in clock ticks of 1/100 s) */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * Several load generator processes (test/load/svid-load.ts: simulated agents, each a
 * real agent client, asking for `batch` SVIDs a request without pause) against one
 * server or two on one PostgreSQL database, for `seconds`. The servers' and the
 * generators' CPU shows where the machine's cores went: on a 2-core machine the
 * generators compete with the servers they load.
 */
export async function benchLoad(opts: { servers: 1 | 2; processes: number; agentsPerProcess: number; batch: number; seconds: number; postgresUrl: string }): Promise<LoadFigures> {
  const { startLoad } = await import('../test/helpers/load');
  const schema = await freshSchema(opts.postgresUrl);
  const config = {
    datastore: { url: opts.postgresUrl, schema: schema.schema, pool_size: 20 },
    log_level: 'warn',
    rate_limits: { attestation_per_second: 1_000_000, signing_per_second: 1_000_000 },
    agent_api: { max_connections: 16_000, max_connections_per_ip: 4_000 },
  };
  const servers: ServerProcess[] = [];
  const loads: Array<Awaited<ReturnType<typeof startLoad>>> = [];
  try {
    for (let i = 0; i < opts.servers; i++) servers.push(await startServerProcess({ trustDomain: TD, config }));
    for (let t = 0; t < 200; t++) {
      if (x509AuthoritiesFromPem(await servers[0]!.cli(['bundle', 'show', '--format', 'pem'])).length >= opts.servers) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const addrs = servers.map((s) => s.agentApi);
    for (let p = 0; p < opts.processes; p++) {
      const order = p % 2 === 1 ? [...addrs].reverse() : addrs; // with two servers, half the generators start on each
      loads.push(await startLoad({ addresses: order, trustDomain: TD, adminSocket: servers[0]!.adminSocket, agents: opts.agentsPerProcess, batch: opts.batch }, 120_000));
    }
    await new Promise((r) => setTimeout(r, 1000)); // past the first requests' TLS handshakes
    const signed = () => loads.reduce((n, l) => n + l.totals().signed, 0);
    const cpu = (ps: Array<{ proc: { pid?: number } }>) => ps.reduce((s, p) => s + cpuSeconds(p.proc.pid!), 0);
    const s0 = signed();
    const [sc0, lc0] = [cpu(servers), cpu(loads)];
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, opts.seconds * 1000));
    const wall = (performance.now() - t0) / 1000;
    const s1 = signed();
    const [sc1, lc1] = [cpu(servers), cpu(loads)];
    const totals = await Promise.all(loads.map((l) => l.stop()));
    return {
      servers: opts.servers,
      processes: opts.processes,
      agentsPerProcess: opts.agentsPerProcess,
      batch: opts.batch,
      svidsPerSec: (s1 - s0) / wall,
      serverCpuCores: (sc1 - sc0) / wall,
      loadCpuCores: (lc1 - lc0) / wall,
      failed: totals.reduce((n, t) => n + t.failed, 0),
    };
  } finally {
    await Promise.all(loads.map((l) => l.stop().catch(() => undefined)));
    await Promise.all(servers.map((s) => s.stop()));
    await schema.drop();
  }
}
