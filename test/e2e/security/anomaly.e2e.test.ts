import path from 'node:path';
import { startAgentProcess, startServerProcess, stopAndRemove, type AgentProcess, type ServerProcess } from '../../helpers/processes';
import { agentApiRequest, agentIdentityPem, logLines, metric, waitFor } from '../../helpers/security';
import { WorkloadAPIClient } from '../../../sdk/workloadapi/client';

/**
 * Identity-use anomalies against the real processes, with thresholds scaled down
 * (a 2-s window, warm-up 3 s) so that the test takes seconds: a workload's 100×
 * burst of JWT-SVID requests is reported by the agent within seconds, its steady
 * traffic before is not; an agent's burst of mints is reported by the server.
 */
jest.setTimeout(120_000);

const td = 'anomaly.example.org';
const alias = `spiffe://${td}/node/a`;
const anomaly = { window_seconds: 2, warmup_seconds: 3, min_events: 20, min_denials: 10, factor: 10 };
let server: ServerProcess;
let agent: AgentProcess;

beforeAll(async () => {
  server = await startServerProcess({ trustDomain: td, config: { anomaly, rate_limits: { signing_per_second: 100_000 } } });
  await server.cli(['entry', 'create', '--spiffe-id', `spiffe://${td}/w`, '--parent-id', alias, '--selector', 'unix:uid:0']);
  agent = await startAgentProcess(server, { alias, config: { anomaly } });
});
afterAll(() => stopAndRemove(agent, server));

const anomalies = (text: string) => logLines(text).filter((l) => l.event === 'identity_anomaly');

it('the agent reports a 100x burst of one uid\'s JWT-SVID requests within seconds, and not its steady traffic', async () => {
  const client = new WorkloadAPIClient(agent.socket);
  try {
    await waitFor('the entry at the agent', async () => (await client.fetchJWTSVIDs(['svc']).catch(() => [])).length > 0, 30_000, 200);
    // steady: 2 requests a second for 8 s (past the warm-up and several windows)
    for (let i = 0; i < 16; i++) {
      await client.fetchJWTSVIDs(['svc']);
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(anomalies(agent.logs())).toEqual([]);
    const t0 = Date.now();
    // a burst: 200 requests a second (100x) for up to 2 s
    const burst = (async () => {
      for (let i = 0; i < 400 && anomalies(agent.logs()).length === 0; i++) {
        await client.fetchJWTSVIDs(['svc']);
        if (i % 20 === 19) await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const a = await waitFor('the identity_anomaly audit line', () => anomalies(agent.logs())[0], 20_000, 50);
    await burst;
    expect(a).toMatchObject({ audit: true, caller: 'uid:0', anomaly: 'requests', request: 'FetchJWTSVID svc', uid: 0, rpc: 'FetchJWTSVID', window_ms: 2000 });
    expect(a.rate_per_s as number).toBeGreaterThan(10 * (a.baseline_per_s as number));
    process.stdout.write(`identity anomaly reported ${Date.now() - t0} ms into a burst: ${a.rate_per_s}/s against a baseline of ${a.baseline_per_s}/s\n`);
    expect(await metric(agent.health, 'tessera_identity_anomalies_total', { kind: 'requests' })).toBe(1);
  } finally {
    client.close();
  }
});

it('the server reports an agent whose JWT-SVID mints burst far above its baseline', async () => {
  const id = agentIdentityPem(path.join(agent.dir, 'data'));
  const ca = await server.cli(['bundle', 'show', '--format', 'pem']);
  const [e] = (JSON.parse(await server.cli(['--output', 'json', 'entry', 'show', '--spiffe-id', `spiffe://${td}/w`])) as { entries: Array<{ id: string }> }).entries;
  const mint = () => agentApiRequest(server.agentApi, { method: 'POST', path: '/agent/v1/jwt-svids', body: { entry_id: e!.id, audience: ['tool'] }, ...id, ca });
  for (let i = 0; i < 8; i++) {
    expect((await mint()).status).toBe(200);
    await new Promise((r) => setTimeout(r, 500));
  }
  expect(anomalies(server.logs())).toEqual([]);
  for (let i = 0; i < 300 && anomalies(server.logs()).length === 0; i++) await mint();
  const a = await waitFor('the server identity_anomaly line', () => anomalies(server.logs())[0], 20_000, 50);
  expect(a).toMatchObject({ caller: id.agentId, anomaly: 'requests', request: 'POST /agent/v1/jwt-svids tool', agent_id: id.agentId });
});
