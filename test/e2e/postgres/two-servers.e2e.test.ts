import { X509Certificate } from 'node:crypto';
import { AdminClient } from '../../../cli/admin-client';
import { attestedAgent, newCSR, clientFor } from '../../helpers/agent-identity';
import { adminQuery, describePostgres, freshSchema } from '../../helpers/postgres';
import { startAgentProcess, startServerProcess, type AgentProcess, type ServerProcess } from '../../helpers/processes';
import { startLoad } from '../../helpers/load';
import { waitFor } from '../../helpers/security';
import { WorkloadView } from '../../helpers/workload-view';

jest.setTimeout(120_000);

const td = 'example.org';
const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil(xs.length * 0.99) - 1)]!;

/**
 * Two `tessera server` processes on one PostgreSQL database serve one trust domain
 * (SPIRE's HA model): each with its own data directory and CA key, the shared bundle
 * holding both; an agent given both addresses; the database's LISTEN/NOTIFY waking
 * the other server's long polls.
 */
describePostgres('two servers on one PostgreSQL database', (url) => {
  let a: ServerProcess;
  let b: ServerProcess;
  let agent: AgentProcess;
  let view: WorkloadView;
  let drop: () => Promise<void>;
  let schemaName: string;
  const x509Count = async (s: ServerProcess) => (JSON.parse(await s.cli(['bundle', 'show', '--format', 'spiffe'])) as { keys: Array<{ use: string }> }).keys.filter((k) => k.use === 'x509-svid').length;

  beforeAll(async () => {
    const fresh = await freshSchema(url);
    drop = fresh.drop;
    schemaName = fresh.schema;
    const datastore = { url, schema: fresh.schema };
    a = await startServerProcess({ trustDomain: td, config: { datastore } });
    b = await startServerProcess({ trustDomain: td, config: { datastore } });
    // B's CA reached the shared bundle, and A (which published first) re-read it on B's NOTIFY
    await waitFor('both CAs in the bundle of both servers', async () => (await x509Count(a)) === 2 && (await x509Count(b)) === 2, 20_000);
    agent = await startAgentProcess(a, { config: { server_address: [a.agentApi, b.agentApi] } });
    await admin(a).request('POST', '/v1/entries', { entries: [{ spiffe_id: `spiffe://${td}/w0`, parent_id: agent.agentId, selectors: ['unix:uid:0'] }] });
    view = new WorkloadView(agent.socket, td);
    await view.start();
  });
  afterAll(async () => {
    view?.close();
    await agent?.stop();
    await Promise.all([a?.stop(), b?.stop()]);
    await drop?.();
  });

  const admin = (s: ServerProcess) => new AdminClient(s.adminSocket);

  it('each server signs with its own CA; both CAs are in the one bundle, and SVIDs of either verify against it', async () => {
    const bundle = JSON.parse(await a.cli(['bundle', 'show', '--format', 'spiffe'])) as { keys: Array<{ use: string; x5c: string[] }> };
    const cas = bundle.keys.filter((k) => k.use === 'x509-svid').map((k) => new X509Certificate(Buffer.from(k.x5c[0]!, 'base64')));
    const issuerOf = async (s: ServerProcess) => {
      const got = await attestedAgent(s);
      const leaf = new X509Certificate(got.svid.chain[0]!);
      got.client.close();
      return cas.findIndex((ca) => leaf.verify(ca.publicKey));
    };
    const [ia, ib] = [await issuerOf(a), await issuerOf(b)];
    expect(ia).toBeGreaterThanOrEqual(0);
    expect(ib).toBeGreaterThanOrEqual(0);
    expect(ia).not.toBe(ib);
  });

  it('an entry created through one server reaches a workload whose agent is connected to the other, p99 < 1 s', async () => {
    const latencies: number[] = [];
    for (let i = 1; i <= 8; i++) {
      const id = `spiffe://${td}/cross${i}`;
      const t0 = Date.now();
      await admin(b).request('POST', '/v1/entries', { entries: [{ spiffe_id: id, parent_id: agent.agentId, selectors: ['unix:uid:0'] }] });
      const seen = await waitFor(`${id} on the workload stream`, () => view.x509.find((s) => s.spiffeId === id), 10_000, 10);
      latencies.push(seen.at - t0);
    }
    process.stdout.write(`two servers: entry via server B → workload of an agent on server A: p99 ${p99(latencies)} ms (${latencies.join(', ')})\n`);
    expect(p99(latencies)).toBeLessThan(1000);
  });

  it('a join token is one-time across servers: made on A, used on B, refused on A', async () => {
    const token = /^Token: (\S+)$/m.exec(await a.cli(['token', 'generate']))![1]!;
    const onB = await clientFor(b);
    const { csr } = await newCSR();
    const svid = await onB.attestJoinToken(token, csr);
    expect(svid.agentId).toMatch(/^spiffe:\/\/example\.org\/tessera\/agent\/join_token\//);
    onB.close();
    const onA = await clientFor(a);
    const again = await onA.attestJoinToken(token, (await newCSR()).csr).catch((e: Error & { code?: string }) => e);
    onA.close();
    expect(again).toMatchObject({ code: 'PERMISSION_DENIED' });
  });

  it('an agent banned through one server is refused by the other at once', async () => {
    const victim = await attestedAgent(a);
    await victim.client.entries(); // served by A
    await admin(b).request('POST', `/v1/agents/${encodeURIComponent(victim.svid.agentId)}/ban`);
    const refused = await victim.client.entries().catch((e: Error & { code?: string }) => e);
    victim.client.close();
    expect(refused).toMatchObject({ code: 'PERMISSION_DENIED', message: expect.stringMatching(/banned/) });
  });

  it('server A is SIGKILLed under load (entry writes through both, simulated agents signing, three real agents on A): no agent loses its SVIDs, all move to B, no acknowledged write is lost', async () => {
    // two more real agents, on A first like the first one, each with a workload entry
    const more = await Promise.all([1, 2].map(() => startAgentProcess(a, { config: { server_address: [a.agentApi, b.agentApi] } })));
    const views: WorkloadView[] = [];
    try {
      for (const [k, ag] of more.entries()) {
        await admin(a).request('POST', '/v1/entries', { entries: [{ spiffe_id: `spiffe://${td}/w${k + 1}`, parent_id: ag.agentId, selectors: ['unix:uid:0'] }] });
        const v = new WorkloadView(ag.socket, td);
        await v.start();
        views.push(v);
      }
      const everyone = [{ agent, view, workload: `spiffe://${td}/w0` }, ...more.map((ag, k) => ({ agent: ag, view: views[k]!, workload: `spiffe://${td}/w${k + 1}` }))];
      for (const e of everyone) await waitFor(`${e.workload} served`, () => e.view.current.get(e.workload));
      const before = everyone.map((e) => e.view.current.get(e.workload)!.serial);
      // every real agent is on A: none has moved yet
      for (const e of everyone) expect(e.agent.logs()).not.toMatch(/"event":"server_failover"/);

      // load: 16 simulated agents in a process of their own asking for 10 SVIDs a request, A first
      const load = await startLoad({ addresses: [a.agentApi, b.agentApi], trustDomain: td, adminSocket: a.adminSocket, agents: 16, batch: 10 });
      // writers on both servers' admin sockets until after the kill
      const acked: string[] = [];
      let refusedOnA = 0;
      let writing = true;
      let n = 0;
      const writer = (s: ServerProcess) => async () => {
        while (writing) {
          const id = `spiffe://${td}/load/${n++}`;
          try {
            await admin(s).request('POST', '/v1/entries', { entries: [{ spiffe_id: id, parent_id: `spiffe://${td}/elsewhere`, selectors: [`unix:uid:${n}`] }] });
            acked.push(id);
          } catch {
            if (s === a) refusedOnA++;
            await new Promise((r) => setTimeout(r, 20));
          }
        }
      };
      const writers = [writer(a)(), writer(b)()];
      try {
        await waitFor('writes through both servers and SVIDs signed under load', () => acked.length >= 40 && load.totals().signed >= 300, 60_000);
        await a.stop('SIGKILL');
        const ackedAtKill = acked.length;
        const signedAtKill = load.totals().signed;
        await waitFor('writes through B after the kill', () => acked.length >= ackedAtKill + 20, 60_000);
        await waitFor('the load signed by B after the kill', () => load.totals().signed >= signedAtKill + 300, 60_000);
      } finally {
        writing = false;
        await Promise.all(writers);
      }
      const totals = await load.stop();
      const stored = new Set((await adminQuery<{ spiffe_id: string }>(url, `SELECT spiffe_id FROM ${schemaName}.registration_entries`)).map((r) => r.spiffe_id));
      expect(acked.filter((id) => !stored.has(id))).toEqual([]);
      expect(refusedOnA).toBeGreaterThan(0);
      // what the load saw fail is the kill itself (requests cut on A), nothing refused or wrong
      expect(Object.keys(totals.errors).filter((c) => c !== 'UNAVAILABLE')).toEqual([]);

      // every agent still serves its SVID from its cache, and gets from B what B creates next
      const timings: number[] = [];
      for (const [k, e] of everyone.entries()) {
        const moved = await waitFor(`agent ${k} moved to B`, () => /^.*"event":"server_failover".*$/m.exec(e.agent.logs())?.[0], 60_000, 100);
        expect(JSON.parse(moved)).toMatchObject({ from: a.agentApi, to: b.agentApi });
        expect(e.view.current.get(e.workload)?.serial).toBe(before[k]);
        const id = `spiffe://${td}/after-failover/${k}`;
        const t0 = Date.now();
        await admin(b).request('POST', '/v1/entries', { entries: [{ spiffe_id: id, parent_id: e.agent.agentId, selectors: ['unix:uid:0'] }] });
        const seen = await waitFor(`${id} through server B after A died`, () => e.view.x509.find((s) => s.spiffeId === id), 60_000, 50);
        timings.push(seen.at - t0);
        expect(new X509Certificate(seen.chain[0]!).subjectAltName).toBe(`URI:${id}`);
        expect(e.view.validateX509(seen.chain)).toBeUndefined();
        expect(e.view.streamErrors).toEqual([]);
      }
      process.stdout.write(
        `two servers: SIGKILL of A under load: ${acked.length} writes acknowledged through A and B, 0 lost; ` +
          `simulated agents: ${totals.signed} SVIDs signed, ${totals.failed} requests' SVIDs failed (${JSON.stringify(totals.errors)}); ` +
          `entries made on B reached the 3 real agents' workloads in ${timings.join(', ')} ms\n`,
      );
    } finally {
      views.forEach((v) => v.close());
      await Promise.all(more.map((m) => m.stop()));
    }
  });
});
