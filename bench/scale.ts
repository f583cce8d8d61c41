import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { freshSchema } from '../test/helpers/postgres';
import { removeDir, shortTempDir, startServerProcess } from '../test/helpers/processes';
import type { DataStore, NewRegistrationEntry } from '../server/datastore/datastore';
import { PostgresDataStore } from '../server/datastore/postgres/store';
import { SqliteDataStore } from '../server/datastore/sqlite/store';
import { EntryAuthorizer } from '../server/registration/authorizer';
import { benchPropagation, percentile } from './propagation';

const TD = 'bench.example';
const SERVER_ID = `spiffe://${TD}/tessera/server`;
const OTHER_AGENTS = 1000;
const OWN_ENTRIES = 10;

export interface ScaleFigures {
  store: 'sqlite' | 'postgres';
  entries: number;
  /** creating them through the DataStore in batches of 1,000 (not a target, the set-up) */
  fillSeconds: number;
  /** `tessera server run` spawned → `server_ready` logged, with the entries in the store */
  coldStartMs: number;
  serverRssMb: number;
  /** one agent's authorized entries computed from scratch (no cache): p50 of 200 calls, µs */
  authorizedP50Us: number;
  /** admin create of an entry → the workload's open FetchX509SVID stream shows it, with N entries stored: p50 / p99 of PROPAGATION_ROUNDS, ms */
  changeToStreamP50Ms: number;
  changeToStreamP99Ms: number;
}

const PROPAGATION_ROUNDS = Number(process.env.BENCH_SCALE_PROPAGATION_ROUNDS ?? 50);

const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

/** N entries: OWN_ENTRIES under the measured agent, the rest spread over OTHER_AGENTS other agents. */
async function fill(store: DataStore, n: number): Promise<void> {
  const entry = (i: number, parent: string): NewRegistrationEntry => ({
    spiffeId: `spiffe://${TD}/w/${i}`, parentId: parent, selectors: [{ type: 'unix', value: `uid:${i}` }],
    x509SvidTtl: 0, jwtSvidTtl: 0, dnsNames: [], federatesWith: [], hint: '', expiresAt: null,
  });
  for (let start = 0; start < n; start += 1000) {
    const batch: NewRegistrationEntry[] = [];
    for (let i = start; i < Math.min(n, start + 1000); i++) {
      batch.push(entry(i, i < OWN_ENTRIES ? `spiffe://${TD}/agent/me` : `spiffe://${TD}/agent/${i % OTHER_AGENTS}`));
    }
    await store.createRegistrationEntries(batch);
  }
}

async function authorizedCost(store: DataStore): Promise<number> {
  const me = { spiffeId: `spiffe://${TD}/agent/me`, selectors: [{ type: 'join_token', value: 'me' }] };
  const times: number[] = [];
  for (let i = 0; i < 220; i++) {
    const a = new EntryAuthorizer(store, SERVER_ID, () => Math.floor(Date.now() / 1000)); // a fresh cache each time
    const t0 = performance.now();
    const set = await a.authorized(me);
    if (i >= 20) times.push((performance.now() - t0) * 1000);
    if (set.entries.length !== OWN_ENTRIES) throw new Error(`expected ${OWN_ENTRIES} authorized entries, got ${set.entries.length}`);
  }
  times.sort((x, y) => x - y);
  return times[Math.floor(times.length / 2)]!;
}

/**
 * `npm run bench:scale`: for each store (SQLite; PostgreSQL when BENCH_POSTGRES_URL or
 * TESSERA_TEST_POSTGRES_URL is set) and each size, fills a store, measures one
 * agent's authorized-entries computation, then starts the real server on it
 * and times entry changes reaching a workload through a real agent.
 */
export async function benchScale(sizes: number[], postgresUrl?: string, stores: Array<'sqlite' | 'postgres'> = ['sqlite', 'postgres']): Promise<ScaleFigures[]> {
  const out: ScaleFigures[] = [];
  for (const kind of stores.filter((k) => k === 'sqlite' || postgresUrl)) {
    for (const n of sizes) {
      const dir = shortTempDir('tsc-');
      const schema = kind === 'postgres' ? await freshSchema(postgresUrl!) : undefined;
      const store: DataStore =
        kind === 'sqlite'
          ? SqliteDataStore.open(path.join(dir, 'data', 'datastore.sqlite3'))
          : await PostgresDataStore.open({ url: postgresUrl!, schema: schema!.schema });
      try {
        const t0 = performance.now();
        await fill(store, n);
        const fillSeconds = (performance.now() - t0) / 1000;
        const authorizedP50Us = await authorizedCost(store);
        await store.close();
        const config = kind === 'postgres' ? { datastore: { url: postgresUrl, schema: schema!.schema } } : {};
        const t1 = performance.now();
        const server = await startServerProcess({ trustDomain: TD, dir, config: { ...config, log_level: 'info' } });
        const coldStartMs = performance.now() - t1;
        const serverRssMb = rssMb(server.proc.pid!);
        let prop: Awaited<ReturnType<typeof benchPropagation>>;
        try {
          prop = await benchPropagation(PROPAGATION_ROUNDS, { server, trustDomain: TD });
        } finally {
          await server.stop();
        }
        out.push({
          store: kind, entries: n, fillSeconds, coldStartMs, serverRssMb, authorizedP50Us,
          changeToStreamP50Ms: percentile(prop.createMs, 50), changeToStreamP99Ms: percentile(prop.createMs, 99),
        });
      } finally {
        await store.close().catch(() => undefined);
        await schema?.drop();
        removeDir(dir);
      }
    }
  }
  return out;
}
