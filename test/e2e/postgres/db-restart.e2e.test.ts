import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { AdminClient } from '../../../cli/admin-client';
import { adminQuery, describePostgres } from '../../helpers/postgres';
import { ROOT, removeDir, shortTempDir, startAgentProcess, startServerProcess, type AgentProcess, type ServerProcess } from '../../helpers/processes';
import { httpGet, waitFor } from '../../helpers/security';
import { WorkloadView } from '../../helpers/workload-view';

jest.setTimeout(120_000);
const execFileP = promisify(execFile);
const pgctl = (cmd: string, dir: string) => execFileP(path.join(ROOT, 'scripts', 'pg-throwaway.sh'), [cmd, dir]);
const td = 'example.org';

/**
 * PostgreSQL crashes (pg_ctl -m immediate) and comes back while a server takes entry
 * writes: the server reports not-ready while the database is gone, answers writes
 * with 503 instead of hanging or crashing, reconnects by itself, and every write it
 * acknowledged is in the database afterwards. The cluster is this test's own
 * (scripts/pg-throwaway.sh), so crashing it disturbs no other test.
 */
describePostgres('PostgreSQL restarted under load', () => {
  let pgDir: string;
  let url: string;
  let server: ServerProcess;
  let agent: AgentProcess;
  let view: WorkloadView;

  beforeAll(async () => {
    pgDir = shortTempDir('tpg-');
    url = (await pgctl('start', pgDir)).stdout.trim();
    server = await startServerProcess({ trustDomain: td, config: { datastore: { url, statement_timeout: 2, connect_timeout: 1 } } });
    agent = await startAgentProcess(server);
    await server.cli(['entry', 'create', '--spiffe-id', `spiffe://${td}/w`, '--parent-id', agent.agentId, '--selector', 'unix:uid:0']);
    view = new WorkloadView(agent.socket, td);
    await view.start();
  });
  afterAll(async () => {
    view?.close();
    await agent?.stop();
    await server?.stop();
    await pgctl('stop', pgDir).catch(() => undefined);
    removeDir(pgDir);
  });

  it('not ready while the database is gone, 503 for writes, ready again by itself, nothing acknowledged lost, no crash', async () => {
    const admin = new AdminClient(server.adminSocket);
    const acked: string[] = [];
    const refused: string[] = [];
    let n = 0;
    let writing = true;
    const writer = async () => {
      while (writing) {
        const id = `spiffe://${td}/load/${n++}`;
        try {
          await admin.request('POST', '/v1/entries', { entries: [{ spiffe_id: id, parent_id: agent.agentId, selectors: [`unix:uid:${10_000 + n}`] }] });
          acked.push(id);
        } catch (e) {
          refused.push((e as { code?: string }).code ?? 'unknown');
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    };
    const writers = [writer(), writer()];
    await waitFor('writes acknowledged before the crash', () => acked.length >= 50);

    await pgctl('crash', pgDir);
    const notReady = await waitFor('server not ready', async () => {
      const r = await httpGet(server.health, '/ready');
      return r.status === 503 ? (JSON.parse(r.text) as { datastore: { reachable: boolean } }) : undefined;
    }, 15_000, 100).catch((e: Error) => {
      // the server's last lines say why (a crash would show its stack here)
      throw new Error(`${e.message}; server log tail:\n${server.logs().split('\n').slice(-15).join('\n')}`);
    });
    expect(notReady.datastore.reachable).toBe(false);
    await waitFor('writes refused while the database is down', () => refused.length >= 3, 15_000);
    // the workload is served from the agent's cache all along
    expect(view.current.has(`spiffe://${td}/w`)).toBe(true);

    await pgctl('resume', pgDir);
    await waitFor('server ready again', async () => (await httpGet(server.health, '/ready')).status === 200, 30_000, 100);
    const ackedAfter = acked.length;
    await waitFor('writes acknowledged after the restart', () => acked.length >= ackedAfter + 20, 30_000);
    writing = false;
    await Promise.all(writers);

    expect(server.proc.exitCode).toBeNull(); // the same process throughout
    expect(new Set(refused)).toEqual(new Set(['UNAVAILABLE']));
    const stored = new Set((await adminQuery<{ spiffe_id: string }>(url, 'SELECT spiffe_id FROM registration_entries')).map((r) => r.spiffe_id));
    const lost = acked.filter((id) => !stored.has(id));
    process.stdout.write(`postgres restart: ${acked.length} writes acknowledged, ${refused.length} refused with UNAVAILABLE while down, ${lost.length} lost\n`);
    expect(lost).toEqual([]);

    // the server's own writes wake its long polls directly; the LISTEN connection (other servers' writes) re-subscribed
    await waitFor('the change subscription restored', () => /"event":"datastore_listen_restored"/.test(server.logs()), 15_000, 100);
    // and a new entry reaches the workload promptly
    const id = `spiffe://${td}/after-restart`;
    const t0 = Date.now();
    await admin.request('POST', '/v1/entries', { entries: [{ spiffe_id: id, parent_id: agent.agentId, selectors: ['unix:uid:0'] }] });
    const seen = await waitFor(`${id} on the workload stream`, () => view.x509.find((s) => s.spiffeId === id), 10_000, 20);
    expect(seen.at - t0).toBeLessThan(5000);
    expect(server.logs()).toMatch(/"event":"datastore_unreachable"/);
    expect(server.logs()).toMatch(/"event":"datastore_reconnected"/);
  });
});
