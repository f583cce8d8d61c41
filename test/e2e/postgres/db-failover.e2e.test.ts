import { AdminClient } from '../../../cli/admin-client';
import { describePostgres, freshSchema } from '../../helpers/postgres';
import { startAgentProcess, startServerProcess, type AgentProcess, type ServerProcess } from '../../helpers/processes';
import { httpGet, waitFor } from '../../helpers/security';
import { startTcpProxy, type TcpProxy } from '../../helpers/tcp-proxy';
import { WorkloadView } from '../../helpers/workload-view';

jest.setTimeout(120_000);
const td = 'example.org';

/**
 * Two servers on one database; server A reaches it through a TCP proxy the test
 * cuts, so A loses its database while B (and the database) stay up. A must answer
 * 503 (not hang, not crash), end its agents' held long polls so they move to B at
 * once, and come back by itself when the network does.
 */
describePostgres('a server that loses its database: its agents move to another server', (url) => {
  let proxy: TcpProxy;
  let a: ServerProcess;
  let b: ServerProcess;
  let agent: AgentProcess;
  let view: WorkloadView;
  let drop: () => Promise<void>;

  beforeAll(async () => {
    const fresh = await freshSchema(url);
    drop = fresh.drop;
    const target = new URL(url);
    proxy = await startTcpProxy(Number(target.port), target.hostname);
    const viaProxy = new URL(url);
    viaProxy.port = String(proxy.port);
    const tight = { statement_timeout: 2, connect_timeout: 1 };
    // long polls of up to 5 minutes: without the early wake the agent would sit in its poll on A that long
    a = await startServerProcess({ trustDomain: td, config: { agent_sync_max_wait: 300, datastore: { url: viaProxy.toString(), schema: fresh.schema, ...tight } } });
    b = await startServerProcess({ trustDomain: td, config: { agent_sync_max_wait: 300, datastore: { url, schema: fresh.schema, ...tight } } });
    const x509Count = async (s: ServerProcess) => (JSON.parse(await s.cli(['bundle', 'show', '--format', 'spiffe'])) as { keys: Array<{ use: string }> }).keys.filter((k) => k.use === 'x509-svid').length;
    await waitFor('both CAs in the bundle of both servers', async () => (await x509Count(a)) === 2 && (await x509Count(b)) === 2, 20_000);
    agent = await startAgentProcess(a, { config: { server_address: [a.agentApi, b.agentApi], sync_wait: 300 } });
    await new AdminClient(a.adminSocket).request('POST', '/v1/entries', { entries: [{ spiffe_id: `spiffe://${td}/w0`, parent_id: agent.agentId, selectors: ['unix:uid:0'] }] });
    view = new WorkloadView(agent.socket, td);
    await view.start();
    await waitFor('the workload SVID', () => view.current.get(`spiffe://${td}/w0`));
  });
  afterAll(async () => {
    view?.close();
    await agent?.stop();
    await Promise.all([a?.stop(), b?.stop()]);
    await proxy?.close();
    await drop?.();
  });

  it('A answers 503 and is not ready, the agent moves to B at once and gets what B creates, A recovers by itself', async () => {
    const before = view.current.get(`spiffe://${td}/w0`)!.serial;
    expect(agent.logs()).not.toMatch(/"event":"server_failover"/);
    const t0 = Date.now();
    proxy.cut();

    await waitFor('A not ready', async () => (await httpGet(a.health, '/ready')).status === 503, 15_000, 100);
    // the agent's held long poll on A ended with 503 and the agent went to B
    const line = await waitFor('the agent moved to B', () => /^.*"event":"server_failover".*$/m.exec(agent.logs())?.[0], 15_000, 100);
    const moved = JSON.parse(line) as { from: string; to: string; reason: string };
    expect(moved).toMatchObject({ from: a.agentApi, to: b.agentApi, reason: 'HTTP 503' });
    const movedAfterMs = Date.now() - t0;

    // A's admin API answers UNAVAILABLE, not a hang
    const refused = await new AdminClient(a.adminSocket)
      .request('POST', '/v1/entries', { entries: [{ spiffe_id: `spiffe://${td}/via-a`, parent_id: agent.agentId, selectors: ['unix:uid:0'] }] })
      .catch((e: { code?: string }) => e);
    expect(refused).toMatchObject({ code: 'UNAVAILABLE' });

    // what B creates reaches the workload; the SVID it had is still served
    const id = `spiffe://${td}/via-b`;
    const t1 = Date.now();
    await new AdminClient(b.adminSocket).request('POST', '/v1/entries', { entries: [{ spiffe_id: id, parent_id: agent.agentId, selectors: ['unix:uid:0'] }] });
    const seen = await waitFor(`${id} on the workload stream`, () => view.x509.find((s) => s.spiffeId === id), 10_000, 20);
    expect(view.current.get(`spiffe://${td}/w0`)?.serial).toBe(before);
    expect(view.validateX509(seen.chain)).toBeUndefined();
    expect(view.streamErrors).toEqual([]);

    proxy.restore();
    await waitFor('A ready again', async () => (await httpGet(a.health, '/ready')).status === 200, 30_000, 100);
    expect(a.proc.exitCode).toBeNull();
    expect(a.logs()).toMatch(/"event":"datastore_reconnected"/);
    // it stops at once on SIGTERM, though it holds a 5-minute poll on B: the cut request is not sent again to A
    const t2 = Date.now();
    expect(await agent.stop()).toBe(0);
    const stopMs = Date.now() - t2;
    expect(stopMs).toBeLessThan(20_000);
    process.stdout.write(`db failover: the agent left server A ${movedAfterMs} ms after A lost its database; an entry made on B reached the workload in ${seen.at - t1} ms; the agent stopped in ${stopMs} ms\n`);
  });
});
