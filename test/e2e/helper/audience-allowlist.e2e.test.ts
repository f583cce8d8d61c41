import path from 'node:path';
import { startAgentProcess, startServerProcess, stopAndRemove, type AgentProcess, type ServerProcess } from '../../helpers/processes';
import { WorkloadAPIClient } from '../../../sdk/workloadapi/client';
import { agentApiRequest, agentIdentityPem, logLines, waitFor } from '../../helpers/security';

/**
 * Entries' JWT audience allowlists, against the real server and agent: a workload
 * gets JWT-SVIDs for the audiences its entry lists (exactly, or by a `*` prefix)
 * and is refused any other by the agent before the server is asked; an agent that
 * asks the server anyway is refused with an audit line; a server with
 * jwt.require_audience_allowlist refuses entries without one.
 */
jest.setTimeout(120_000);

const td = 'aud.example.org';
const alias = `spiffe://${td}/node/aud`;
const ID = `spiffe://${td}/inference`;
let server: ServerProcess;
let agent: AgentProcess;

beforeAll(async () => {
  server = await startServerProcess({ trustDomain: td });
  await server.cli(['entry', 'create', '--spiffe-id', ID, '--parent-id', alias, '--selector', 'unix:uid:0', '--jwt-audience', 'https://api.openai.com/v1', '--jwt-audience', 'https://tools.example.com/*']);
  agent = await startAgentProcess(server, { alias });
});
afterAll(() => stopAndRemove(agent, server));

const fetchJwt = (audience: string) => agent.cli(['fetch', 'jwt', '--audience', audience]);

it('a workload gets JWT-SVIDs only for the audiences its entry allows; the agent refuses the rest without asking the server', async () => {
  await waitFor('the entry at the agent', async () => (await fetchJwt('https://api.openai.com/v1')).code === 0, 30_000, 200);
  expect((await fetchJwt('https://tools.example.com/search')).code).toBe(0); // prefix
  const refused = await fetchJwt('https://api.anthropic.com');
  expect(refused.code).not.toBe(0);
  expect(refused.stderr).toMatch(/"https:\/\/api.anthropic.com": not in its entry's jwt_audiences/);
  const client = new WorkloadAPIClient(agent.socket);
  try {
    await expect(client.fetchJWTSVIDs(['https://api.anthropic.com'])).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
  } finally {
    client.close();
  }
  expect((await fetchJwt('https://tools.example.com')).code).not.toBe(0); // the prefix includes the slash
  // refused locally: the server never saw a request for it
  expect(logLines(server.logs()).some((l) => JSON.stringify(l).includes('api.anthropic.com'))).toBe(false);
  const shown = JSON.parse(await server.cli(['--output', 'json', 'entry', 'show', '--spiffe-id', ID])) as { entries: Array<{ jwt_audiences: string[] }> };
  expect(shown.entries[0]!.jwt_audiences).toEqual(['https://api.openai.com/v1', 'https://tools.example.com/*']);
});

it('an agent that asks the server for another audience is refused with PermissionDenied and an audit line', async () => {
  const id = agentIdentityPem(path.join(agent.dir, 'data'));
  const ca = await server.cli(['bundle', 'show', '--format', 'pem']);
  const [e] = (JSON.parse(await server.cli(['--output', 'json', 'entry', 'show', '--spiffe-id', ID])) as { entries: Array<{ id: string }> }).entries;
  const ask = (audience: string[]) => agentApiRequest(server.agentApi, { method: 'POST', path: '/agent/v1/jwt-svids', body: { entry_id: e!.id, audience }, ...id, ca });
  expect((await ask(['https://api.openai.com/v1'])).status).toBe(200);
  const r = await ask(['https://api.openai.com/v1', 'https://evil.example.com']);
  expect(r.status).toBe(403);
  expect(r.json.error.message).toMatch(/"https:\/\/evil.example.com": not in its jwt_audiences/);
  await waitFor('the audit line', () => logLines(server.logs()).find((l) => l.event === 'svid_denied' && l.reason === 'audience not in the entry allowlist'));
});

it('with jwt.require_audience_allowlist, entries without jwt_audiences are refused, with them accepted', async () => {
  const strict = await startServerProcess({ trustDomain: 'strict.example.org', config: { jwt: { require_audience_allowlist: true } } });
  try {
    const base = ['entry', 'create', '--spiffe-id', 'spiffe://strict.example.org/w', '--parent-id', 'spiffe://strict.example.org/node/n', '--selector', 'unix:uid:0'];
    await expect(strict.cli(base)).rejects.toThrow(/jwt_audiences: this server requires every entry to list the JWT audiences/);
    expect(await strict.cli([...base, '--jwt-audience', 'spiffe://strict.example.org/db'])).toContain('JWT audience');
  } finally {
    await stopAndRemove(strict);
  }
});
