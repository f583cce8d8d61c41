import { X509Certificate } from 'node:crypto';
import { AdminClient } from '../../../cli/admin-client';
import { attestedAgent, newCSR, clientFor } from '../../helpers/agent-identity';
import { adminQuery, describePostgres, freshSchema } from '../../helpers/postgres';
import { startAgentProcess, startServerProcess, type AgentProcess, type ServerProcess } from '../../helpers/processes';
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

  it('server A is SIGKILLed amid writes through both: the agent keeps its SVIDs, moves to B, gets what B creates next; no acknowledged write is lost', async () => {
    const before = view.current.get(`spiffe://${td}/w0`)!;
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
    await waitFor('writes through both servers', () => acked.length >= 40);
    await a.stop('SIGKILL');
    const ackedAtKill = acked.length;
    await waitFor('writes through B after the kill', () => acked.length >= ackedAtKill + 20);
    writing = false;
    await Promise.all(writers);
    const stored = new Set((await adminQuery<{ spiffe_id: string }>(url, `SELECT spiffe_id FROM ${schemaName}.registration_entries`)).map((r) => r.spiffe_id));
    expect(acked.filter((id) => !stored.has(id))).toEqual([]);
    expect(refusedOnA).toBeGreaterThan(0);
    // still served from the agent's cache
    const fetched = await view.fetchJWTs(['spiffe://example.org/after-kill']).catch(() => []);
    expect(view.current.get(`spiffe://${td}/w0`)?.serial).toBe(before.serial);
    const t0 = Date.now();
    const id = `spiffe://${td}/after-failover`;
    await admin(b).request('POST', '/v1/entries', { entries: [{ spiffe_id: id, parent_id: agent.agentId, selectors: ['unix:uid:0'] }] });
    const seen = await waitFor(`${id} through server B after A died`, () => view.x509.find((s) => s.spiffeId === id), 60_000, 50);
    process.stdout.write(`two servers: after SIGKILL of A, an entry made on B reached the workload in ${seen.at - t0} ms (JWT-SVIDs fetched meanwhile: ${fetched.length}); ${acked.length} writes acknowledged through A and B, 0 lost\n`);
    const leaf = new X509Certificate(seen.chain[0]!);
    expect(leaf.subjectAltName).toBe(`URI:${id}`);
    expect(view.validateX509(seen.chain)).toBeUndefined();
    expect(view.streamErrors).toEqual([]);
  });
});
