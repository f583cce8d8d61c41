import { X509Certificate } from 'node:crypto';
import { startAgentProcess, startServerProcess, stopAndRemove, type AgentProcess, type ServerProcess } from '../helpers/processes';
import { firstMessage, securityHeader, thirdPartyClient } from '../helpers/third-party-client';
import { verifyChain } from '../helpers/workload-view';
import { waitFor } from '../helpers/security';
import { splitConcatenatedDer } from '../../common/bundle/bundle';
import { figure } from '../helpers/figures';

/**
 * Outage: the real server stopped for longer than the agent's sync interval and
 * longer than half the SVID TTL (when the agent would rotate). A workload fetching
 * from the real agent the whole time must get a valid SVID on every call
 * (outage_failed_fetches = 0), and once the server is back everything recovers
 * without restarting anything: the agent rotates the SVID and a new entry reaches it.
 */
jest.setTimeout(180_000);

const td = 'outage.example.org';
const alias = `spiffe://${td}/node/outage`;
const TTL = 30; // the workload SVID's TTL (s); the agent rotates at half of it
const SYNC = 2; // the agent's sync interval (long-poll wait, s)
const DOWN_MS = 17_000; // > TTL / 2 and > SYNC
let server: ServerProcess;
let agent: AgentProcess;

interface X509Msg {
  svids: Array<{ spiffe_id: string; x509_svid: Buffer; bundle: Buffer }>;
}

beforeAll(async () => {
  server = await startServerProcess({ trustDomain: td });
  await server.cli(['entry', 'create', '--spiffe-id', `spiffe://${td}/svc`, '--parent-id', alias, '--selector', 'unix:uid:0', '--x509-svid-ttl', String(TTL)]);
  agent = await startAgentProcess(server, { alias, config: { sync_wait: SYNC } });
});
afterAll(() => stopAndRemove(agent, server));

it('the server down past the sync interval and half the SVID TTL: no failed fetch, and recovery without a restart', async () => {
  const client = thirdPartyClient(agent.socket);
  const fetchOnce = async (): Promise<{ serial: string; error?: string }> => {
    try {
      const m = await firstMessage<X509Msg>(client.FetchX509SVID({}, securityHeader()), 5_000);
      const s = m.svids.find((x) => x.spiffe_id === `spiffe://${td}/svc`);
      if (!s) return { serial: '', error: 'no SVID for the entry' };
      const chain = splitConcatenatedDer(s.x509_svid);
      const error = verifyChain(chain, splitConcatenatedDer(s.bundle), Date.now());
      return { serial: new X509Certificate(chain[0]!).serialNumber, error };
    } catch (e) {
      return { serial: '', error: String(e) };
    }
  };

  // Start the outage just after a rotation, so the SVID held has its whole life ahead.
  const first = await fetchOnce();
  expect(first.error).toBeUndefined();
  const fresh = await waitFor('a rotation', async () => {
    const r = await fetchOnce();
    return r.serial !== first.serial && !r.error && r;
  }, (TTL / 2 + 15) * 1000, 250);
  const port = Number(server.agentApi.split(':').pop());
  const dir = server.dir;
  expect(await server.stop()).toBe(0);

  // The workload keeps fetching through the outage.
  let fetches = 0;
  const failures: string[] = [];
  const downUntil = Date.now() + DOWN_MS;
  while (Date.now() < downUntil) {
    const r = await fetchOnce();
    fetches++;
    if (r.error) failures.push(r.error);
    await new Promise((res) => setTimeout(res, 200));
  }

  server = await startServerProcess({ trustDomain: td, dir, config: { bind: `127.0.0.1:${port}` } });
  const recoveryStart = Date.now();
  // Recovery: the agent rotates again (it could not while the server was down) ...
  const rotated = await waitFor('a rotation after the outage', async () => {
    const r = await fetchOnce();
    fetches++;
    if (r.error) failures.push(r.error);
    return r.serial !== fresh.serial && !r.error && r;
  }, 60_000, 250);
  const recoveryMs = Date.now() - recoveryStart;
  // ... and a new entry reaches the running agent.
  await server.cli(['entry', 'create', '--spiffe-id', `spiffe://${td}/after`, '--parent-id', alias, '--selector', 'unix:uid:0']);
  await waitFor('the new entry at the agent', async () => {
    const m = await firstMessage<X509Msg>(client.FetchX509SVID({}, securityHeader()), 5_000).catch(() => undefined);
    return m?.svids.some((s) => s.spiffe_id === `spiffe://${td}/after`);
  }, 60_000, 250);
  client.close();

  figure('outage_server_down_ms', DOWN_MS);
  figure('outage_fetches', fetches);
  figure('outage_failed_fetches', failures.length);
  figure('outage_recovery_rotation_ms', recoveryMs, 'max');
  expect(rotated.error).toBeUndefined();
  expect(failures).toEqual([]);
  expect(fetches).toBeGreaterThan(DOWN_MS / 1000);
});
