import 'reflect-metadata';
import { benchX509 } from './x509';
import { benchJWT } from './jwt';
import { benchAgentApi } from './agent-api';
import { benchPropagation, percentile } from './propagation';
import { benchAgent } from './agent';
import { benchCacheVerify } from './cache-verify';
import { benchSigningPool } from './signing-pool';
import { benchScale } from './scale';
import { benchAgents, benchLoad } from './agents';
import { benchJWTValidation, benchMTLS, benchPolicy } from './sdk';

/**
 * `npm run bench`: every figure is measured in this one run and printed as
 * `bench <name> <value>`, one per line. Ratios compare against the raw
 * `crypto.sign` ECDSA P-256 rate measured in the same run, because this machine
 * is shared and noisy and only ratios are stable.
 */
const line = (name: string, v: number, digits = 2) => process.stdout.write(`bench ${name} ${v.toFixed(digits)}\n`);

/** The workload side (sdk/): policy decisions, local JWT-SVID validation, SPIFFE mTLS. */
async function sdkBenches(): Promise<void> {
  for (const rules of [10, 100, 1000]) {
    const p = benchPolicy(rules);
    line(`policy_decision_${rules}_rules_p50_us`, p.p50, 2);
    line(`policy_decision_${rules}_rules_p99_us`, p.p99, 2);
    line(`policy_decision_${rules}_rules_per_sec`, p.perSec, 0);
    line(`policy_decision_${rules}_rules_uncached_p50_us`, p.uncachedP50, 2);
    line(`policy_decision_${rules}_rules_uncached_p99_us`, p.uncachedP99, 2);
    line(`policy_decision_${rules}_rules_full_set_p50_us`, p.fullSetP50, 1);
  }
  const j = await benchJWTValidation(Number(process.env.BENCH_SECONDS ?? 3));
  line('jwt_local_validation_per_sec', j.validatePerSec, 0);
  line('jwt_raw_verify_per_sec', j.verifyPerSec, 0);
  line('jwt_local_validation_vs_verify_ratio', j.ratio, 3);
  const m = await benchMTLS();
  line('mtls_sdk_server_keepalive_requests_per_sec', m.keepAlivePerSec, 0);
  line('mtls_sdk_server_keepalive_ratio', m.serverKeepAliveRatio, 3);
  line('mtls_sdk_server_handshakes_per_sec', m.handshakesPerSec, 0);
  line('mtls_sdk_server_handshake_ratio', m.serverHandshakeRatio, 3);
  line('mtls_sdk_client_keepalive_ratio', m.clientKeepAliveRatio, 3);
  line('mtls_sdk_client_handshake_ratio', m.clientHandshakeRatio, 3);
}

/** Signing on every core: the pool with 2 workers against 1 worker, and inline, in the same run. */
async function signingBenches(seconds: number): Promise<void> {
  const sp = await benchSigningPool(seconds);
  line('signing_inline_per_sec', sp.inlinePerSec, 0);
  line('signing_pool_1_worker_per_sec', sp.oneWorkerPerSec, 0);
  line('signing_pool_2_workers_per_sec', sp.twoWorkersPerSec, 0);
  line('signing_pool_2_vs_1_worker_ratio', sp.ratio, 3);
}

/** bench:scale's figures; `npm run bench` ends with them at 10,000 entries only (BENCH_SCALE_SIZES overrides both). */
async function scaleBenches(defaultSizes: string): Promise<void> {
  const sizes = (process.env.BENCH_SCALE_SIZES ?? defaultSizes).split(',').map(Number);
  const pg = process.env.BENCH_POSTGRES_URL ?? process.env.TESSERA_TEST_POSTGRES_URL;
  if (!pg) process.stderr.write('bench:scale: no BENCH_POSTGRES_URL / TESSERA_TEST_POSTGRES_URL, SQLite only\n');
  // BENCH_AGENTS=0 skips the simulated agents; BENCH_SCALE_STORES=postgres (or sqlite) measures one store
  const agents = Number(process.env.BENCH_AGENTS ?? 1000);
  for (const servers of agents === 0 ? [] : pg ? ([1, 2] as const) : ([1] as const)) {
    const a = await benchAgents({ agents, servers, postgresUrl: pg });
    const k = `agents_${agents}_${servers}_server${servers > 1 ? 's' : ''}`;
    line(`${k}_svids_per_sec`, a.svidsPerSec, 0);
    line(`${k}_long_poll_wake_p50_ms`, a.wakeP50Ms, 1);
    line(`${k}_long_poll_wake_p99_ms`, a.wakeP99Ms, 1);
    line(`${k}_server_rss_mb`, Math.max(...a.serverRssMb), 1);
  }
  // several load generator processes against one server and against two (PostgreSQL only)
  if (pg && process.env.BENCH_LOAD !== '0') {
    const processes = Number(process.env.BENCH_LOAD_PROCESSES ?? 2);
    for (const servers of [1, 2] as const) {
      const f = await benchLoad({ servers, processes, agentsPerProcess: 20, batch: 50, seconds: Number(process.env.BENCH_LOAD_SECONDS ?? 10), postgresUrl: pg });
      const k = `load_${processes}_generators_${servers}_server${servers > 1 ? 's' : ''}`;
      line(`${k}_svids_per_sec`, f.svidsPerSec, 0);
      line(`${k}_server_cpu_cores`, f.serverCpuCores, 2);
      line(`${k}_generator_cpu_cores`, f.loadCpuCores, 2);
      line(`${k}_failed_svids`, f.failed, 0);
    }
  }
  const stores = (process.env.BENCH_SCALE_STORES ?? 'sqlite,postgres').split(',').filter((k) => k === 'sqlite' || (k === 'postgres' && pg)) as Array<'sqlite' | 'postgres'>;
  for (const f of await benchScale(sizes, pg, stores)) {
    const k = `scale_${f.store}_${f.entries}`;
    line(`${k}_fill_seconds`, f.fillSeconds, 1);
    line(`${k}_cold_start_ms`, f.coldStartMs, 0);
    line(`${k}_server_rss_mb`, f.serverRssMb, 1);
    line(`${k}_authorized_entries_p50_us`, f.authorizedP50Us, 0);
    line(`${k}_entry_create_to_stream_p50_ms`, f.changeToStreamP50Ms, 1);
    line(`${k}_entry_create_to_stream_p99_ms`, f.changeToStreamP99Ms, 1);
  }
}

async function main(): Promise<void> {
  // BENCH_ONLY=sdk runs just the workload-side figures; BENCH_ONLY=signing the signing pool's.
  if (process.env.BENCH_ONLY === 'sdk') return sdkBenches();
  // BENCH_ONLY=scale (npm run bench:scale): the store sizes of BENCH_SCALE_SIZES (default 10000,100000)
  if (process.env.BENCH_ONLY === 'scale') return scaleBenches('10000,100000');
  if (process.env.BENCH_ONLY === 'agent') return agentBenches();
  if (process.env.BENCH_ONLY === 'signing') {
    return signingBenches(Number(process.env.BENCH_SECONDS ?? 6));
  }
  const secs = Number(process.env.BENCH_SECONDS ?? 3);
  const x = await benchX509(secs);
  line('raw_p256_sign_per_sec', x.rawSignPerSec, 0);
  line('x509_mint_per_sec', x.mintPerSec, 0);
  line('x509_mint_ratio', x.ratio);
  // Signing on every core: the pool with 2 workers against 1 worker, in the same run.
  await signingBenches(Math.max(secs, 6));
  const j = await benchJWT(secs);
  line('jwt_raw_sign_per_sec', j.rawSignPerSec, 0);
  line('jwt_mint_per_sec', j.mintPerSec, 0);
  line('jwt_mint_ratio', j.ratio);
  // The server on one core, with a raw-sign baseline on that core before every
  // round; the client (this process) elsewhere with two requests in flight, so
  // the figure is the server's capacity. Then everything on one core, one
  // request at a time.
  const a = await benchAgentApi({
    rounds: 12, batchesPerRound: 3, inFlight: 2, batchSize: 500, warmupBatches: 6, rawSliceSeconds: 0.2, placement: 'server-on-one-core',
  });
  line('agent_api_pinned', a.pinned ? 1 : 0, 0);
  line('agent_api_raw_sign_per_sec', a.rawSignPerSec, 0);
  line('agent_api_batch_sign_per_sec', a.svidsPerSec, 0);
  line('agent_api_batch_sign_ratio', percentile(a.ratios, 50), 3);
  line('agent_api_batch_sign_ratio_p25', percentile(a.ratios, 25), 3);
  line('agent_api_batch_sign_ratio_p75', percentile(a.ratios, 75), 3);
  const b = await benchAgentApi({
    rounds: 20, batchesPerRound: 1, inFlight: 1, batchSize: 500, warmupBatches: 6, rawSliceSeconds: 0.2, placement: 'all-on-one-core',
  });
  line('agent_api_all_on_one_core_batch_sign_ratio', percentile(b.ratios, 50), 3);
  const p = await benchPropagation(Number(process.env.BENCH_ROUNDS ?? 100));
  line('entry_create_to_stream_p50_ms', percentile(p.createMs, 50), 1);
  line('entry_create_to_stream_p99_ms', percentile(p.createMs, 99), 1);
  line('entry_delete_to_stream_p99_ms', percentile(p.deleteMs, 99), 1);
  line('workload_fetch_x509_p50_ms', percentile(p.fetchMs, 50), 1);
  line('workload_fetch_x509_p99_ms', percentile(p.fetchMs, 99), 1);
  await agentBenches();
  // An agent restart verifies every stored SVID before serving it.
  const v = await benchCacheVerify(10_000);
  line('agent_cache_verify_10000_svids_ms', v.verifyMs, 0);
  line('agent_cache_verify_vs_raw_verify_ratio', v.verifyMs / v.rawVerifyMs);
  await sdkBenches();
  // the scale figures in summary: 10,000 entries (bench:scale adds 100,000, or BENCH_SCALE_SIZES)
  await scaleBenches('10000');
}

/** The agent's own figures: Workload API latency against bare grpc-js, RSS, a fresh 10,000-entry sync. */
async function agentBenches(): Promise<void> {
  const g = await benchAgent({ rounds: Number(process.env.BENCH_AGENT_ROUNDS ?? 1500), rssEntries: 1000, syncEntries: 10_000, syncRuns: Number(process.env.BENCH_SYNC_RUNS ?? 5) });
  const g50 = percentile(g.agentMs, 50);
  const g99 = percentile(g.agentMs, 99);
  const e50 = percentile(g.echoMs, 50);
  const e99 = percentile(g.echoMs, 99);
  line('fetch_x509_first_message_p50_ms', g50, 2);
  line('fetch_x509_first_message_p99_ms', g99, 2);
  line('grpc_echo_first_message_p50_ms', e50, 2);
  line('grpc_echo_first_message_p99_ms', e99, 2);
  line('fetch_x509_vs_echo_p50_ratio', g50 / e50);
  line('fetch_x509_vs_echo_p99_ratio', g99 / e99);
  line('agent_rss_mb_1000_entries', g.rss.steadyMb, 1);
  line('agent_rss_mb_1000_entries_after_sync', g.rss.afterSyncMb, 1);
  line('agent_rss_mb_10000_entries', g.rssSync.steadyMb, 1);
  line('agent_rss_mb_10000_entries_after_sync', g.rssSync.afterSyncMb, 1);
  line('agent_sync_10000_entries_seconds', g.sync.median.seconds, 2);
  line('agent_sync_10000_entries_min_seconds', g.sync.min, 2);
  line('agent_sync_10000_entries_max_seconds', g.sync.max, 2);
  line('agent_sync_10000_entries_runs', g.sync.runs, 0);
  line('agent_sync_10000_entries_after_ready_seconds', g.sync.median.afterReady, 2);
  line('agent_sync_10000_entries_agent_cpu_seconds', g.sync.median.cpu.agent, 2);
  line('agent_sync_10000_entries_server_cpu_seconds', g.sync.median.cpu.server, 2);
  line('agent_sync_10000_entries_raw_p256_sign_per_sec', g.sync.median.rawSignPerSec, 0);
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${(e as Error).stack}\n`);
  process.exit(1);
});
