import { startServerProcess, startAgentProcess, removeDir, type ServerProcess } from '../test/helpers/processes';
import { AdminClient } from '../cli/admin-client';
import { WorkloadAPIClient, type X509Context } from '../sdk/workloadapi/client';

/**
 * Entry propagation through the real processes: the time from an admin API call
 * (create or delete an entry) to the workload's already-open FetchX509SVID stream
 * showing the change. SPIRE users wait 5–60 s (SPIRE #2760, #2593); the target
 * here is p99 < 1 s. Also the latency of a one-shot X.509 fetch.
 *
 * With `on`, runs against that already running server (bench:scale: one whose
 * store holds N other entries) and leaves it running.
 */
export async function benchPropagation(
  rounds: number,
  on?: { server: ServerProcess; trustDomain: string },
): Promise<{ createMs: number[]; deleteMs: number[]; fetchMs: number[] }> {
  const td = on?.trustDomain ?? 'prop.example.org';
  const alias = `spiffe://${td}/node/bench`;
  const server = on?.server ?? (await startServerProcess({ trustDomain: td, config: { log_level: 'info' } }));
  const admin = new AdminClient(server.adminSocket);
  const uid = process.getuid?.() ?? 0;
  await admin.request('POST', '/v1/entries', { entries: [{ spiffe_id: `spiffe://${td}/base`, parent_id: alias, selectors: [`unix:uid:${uid}`] }] });
  const agent = await startAgentProcess(server, { alias, config: { log_level: 'info' } });
  const client = new WorkloadAPIClient(agent.socket);
  const createMs: number[] = [];
  const deleteMs: number[] = [];
  const fetchMs: number[] = [];
  try {
    let waiter: { pred: (ids: Set<string>) => boolean; resolve: () => void } | undefined;
    const stop = client.watchX509SVIDs(
      (ctx: X509Context) => {
        const ids = new Set(ctx.svids.map((s) => s.spiffeId));
        if (waiter?.pred(ids)) {
          waiter.resolve();
          waiter = undefined;
        }
      },
      () => undefined,
    );
    const until = (pred: (ids: Set<string>) => boolean) =>
      new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no stream update within 10 s')), 10_000);
        waiter = { pred, resolve: () => (clearTimeout(t), resolve()) };
      });
    await new Promise((r) => setTimeout(r, 500));
    for (let i = 0; i < rounds; i++) {
      const id = `spiffe://${td}/svc-${i}`;
      const seen = until((ids) => ids.has(id));
      let t0 = performance.now();
      const r = await admin.request<{ entries: Array<{ id: string }> }>('POST', '/v1/entries', {
        entries: [{ spiffe_id: id, parent_id: alias, selectors: [`unix:uid:${uid}`] }],
      });
      await seen;
      createMs.push(performance.now() - t0);
      const gone = until((ids) => !ids.has(id));
      t0 = performance.now();
      await admin.request('POST', '/v1/entries/delete', { ids: [r.entries[0]!.id] });
      await gone;
      deleteMs.push(performance.now() - t0);
    }
    stop();
    for (let i = 0; i < rounds; i++) {
      const c = new WorkloadAPIClient(agent.socket);
      const t0 = performance.now();
      await c.fetchX509SVIDs();
      fetchMs.push(performance.now() - t0);
      c.close();
    }
  } finally {
    client.close();
    await agent.stop();
    removeDir(agent.dir);
    if (!on) {
      await server.stop();
      removeDir(server.dir);
    }
  }
  return { createMs, deleteMs, fetchMs };
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}
