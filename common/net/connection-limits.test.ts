import net from 'node:net';
import pino from 'pino';
import { Writable } from 'node:stream';
import { ConnectionLimits, openFileLimit, type RefusalReason } from './connection-limits';

function capture() {
  const lines: string[] = [];
  return { log: pino({ level: 'debug' }, new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) })), lines };
}

/** A pair of connected sockets over loopback; the server side is what the limiter sees. */
async function serverSide(server: net.Server, port: number): Promise<{ client: net.Socket; server: net.Socket }> {
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const client = net.connect(port, '127.0.0.1');
  client.on('error', () => undefined);
  return { client, server: await accepted };
}

describe('ConnectionLimits', () => {
  let srv: net.Server;
  let port: number;
  beforeEach(async () => {
    srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    port = (srv.address() as net.AddressInfo).port;
  });
  afterEach(() => srv.close());

  it('admits up to the per-peer cap (at most a quarter of the total), refuses beyond it with a log line and a count, and frees a slot on close', async () => {
    const { log, lines } = capture();
    const refused: RefusalReason[] = [];
    const limits = new ConnectionLimits({ listener: 't', maxConnections: 8, maxPerPeer: 100, firstRequestTimeoutMs: 60_000, peerKind: 'uid', log, onRefused: (r) => refused.push(r) });
    expect(limits.maxPerPeer).toBe(2);
    const pairs: Array<{ client: net.Socket; server: net.Socket }> = [];
    for (let i = 0; i < 3; i++) pairs.push(await serverSide(srv, port));
    expect(pairs.map((p) => limits.admit(p.server, '1000'))).toEqual([true, true, false]);
    expect(pairs[2]!.server.destroyed).toBe(true);
    expect(refused).toEqual(['peer_cap']);
    expect(lines.join('')).toContain('connection refused: this uid is at its connection cap');
    const other = await serverSide(srv, port);
    expect(limits.admit(other.server, '0')).toBe(true); // another uid still gets in
    pairs[0]!.server.destroy();
    await new Promise((r) => pairs[0]!.server.once('close', r));
    const again = await serverSide(srv, port);
    expect(limits.admit(again.server, '1000')).toBe(true);
    for (const p of [...pairs, other, again]) p.client.destroy();
  });

  it('closes a connection that starts no request before the deadline; one that did is left alone', async () => {
    const refused: RefusalReason[] = [];
    const limits = new ConnectionLimits({ listener: 't', maxConnections: 100, maxPerPeer: 10, firstRequestTimeoutMs: 50, peerKind: 'ip', log: pino({ level: 'silent' }), onRefused: (r) => refused.push(r) });
    const idle = await serverSide(srv, port);
    const busy = await serverSide(srv, port);
    limits.firstRequestDeadline(idle.server, 'a');
    limits.firstRequestDeadline(busy.server, 'a')(); // a request came
    await new Promise((r) => idle.server.once('close', r));
    expect(busy.server.destroyed).toBe(false);
    expect(refused).toEqual(['first_request_deadline']);
    idle.client.destroy();
    busy.client.destroy();
  });

  it('reads the open-file limit', () => {
    expect(openFileLimit()).toBeGreaterThan(0);
  });
});
