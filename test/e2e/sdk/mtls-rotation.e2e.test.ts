import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { ROOT, startAgentProcess, startServerProcess, stopAndRemove, type AgentProcess, type ServerProcess } from '../../helpers/processes';
import { waitFor } from '../../helpers/security';

/**
 * Two workloads under different uids (setpriv) talk SPIFFE mTLS through the SDK,
 * both ways, over the real agent's Workload API, while their SVIDs rotate
 * (x509_svid_ttl 20 s: a new SVID about every 10 s). Each one calls the other
 * every 50 ms through a keep-alive https.Agent, fresh connections and undici fetch.
 */
jest.setTimeout(150_000);

const td = 'sdk.example.org';
const alias = `spiffe://${td}/node/sdk`;
const PEER = path.join(ROOT, 'dist', 'test', 'helpers', 'sdk-peer.js');
let server: ServerProcess;
let agent: AgentProcess;

interface Peer {
  proc: ChildProcess;
  lines: Array<Record<string, any>>;
  send(o: object): void;
}

function startPeer(uid: number, authorize: string): Peer {
  const proc = spawn('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', process.execPath, PEER, agent.socket, authorize], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: Array<Record<string, any>> = [];
  readline.createInterface({ input: proc.stdout! }).on('line', (l) => lines.push(JSON.parse(l)));
  return { proc, lines, send: (o) => proc.stdin!.write(JSON.stringify(o) + '\n') };
}

beforeAll(async () => {
  server = await startServerProcess({ trustDomain: td });
  for (const [name, uid] of [['a', 1001], ['b', 1002]] as const) {
    await server.cli(['entry', 'create', '--spiffe-id', `spiffe://${td}/${name}`, '--parent-id', alias, '--selector', `unix:uid:${uid}`, '--x509-svid-ttl', '20']);
  }
  agent = await startAgentProcess(server, { alias });
});
afterAll(() => stopAndRemove(agent, server));

it('0 failed requests both ways over at least three rotations of both SVIDs, without restarting either listener', async () => {
  const a = startPeer(1001, `spiffe://${td}/b`);
  const b = startPeer(1002, `spiffe://${td}/a`);
  try {
    const ready = (p: Peer) => waitFor('peer ready', () => p.lines.find((l) => l.type === 'ready'));
    const [ra, rb] = [await ready(a), await ready(b)];
    expect(ra.spiffe_id).toBe(`spiffe://${td}/a`);
    expect(rb.spiffe_id).toBe(`spiffe://${td}/b`);
    a.send({ cmd: 'call', port: rb.port });
    b.send({ cmd: 'call', port: ra.port });
    const seen = (p: Peer) => new Set(p.lines.filter((l) => l.type === 'result' && l.server_serial).map((l) => l.server_serial)).size;
    const rotated = (p: Peer) => p.lines.filter((l) => l.type === 'rotated').length;
    await waitFor('three rotations of each SVID, each seen by the other side', () => rotated(a) >= 3 && rotated(b) >= 3 && seen(a) >= 4 && seen(b) >= 4, 120_000, 200);
    for (const p of [a, b]) p.send({ cmd: 'stop' });
    const summaries = await Promise.all([a, b].map((p) => waitFor('summary', () => p.lines.find((l) => l.type === 'summary'))));
    // only now may a listener go: before, the other peer's last calls could meet a closed server
    for (const p of [a, b]) p.send({ cmd: 'exit' });
    process.stdout.write(`sdk mtls diagnostics: ${JSON.stringify(summaries.map((x) => ({ errors: x.errors, server_socket_errors: x.server_socket_errors, openssl_would_refuse: x.openssl_would_refuse })))}\n`);
    for (const s of summaries) {
      // a failed call on one side is explained by the other side's refusals or TLS errors
      expect(summaries.map((x) => ({ failed: x.failed, errors: x.errors, refusals: x.refusals, tls_errors: x.tls_errors }))).toEqual(
        summaries.map(() => ({ failed: 0, errors: [], refusals: [], tls_errors: [] })),
      );
      expect(s.ok).toBeGreaterThan(300);
      expect(s.listening).toBe(1); // the same listener throughout
      expect(s.refusals).toEqual([]);
    }
    process.stdout.write(`sdk mtls under rotation: ${summaries.map((s) => `${s.ok} ok, ${s.failed} failed, ${s.rotations} rotations`).join('; ')}\n`);
  } finally {
    for (const p of [a, b]) p.proc.kill('SIGKILL');
  }
});
