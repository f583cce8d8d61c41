// The socket side of the Workload API: its path and modes, stale sockets,
// the grpc-js getPeer() behaviour the design rests on, pidfd ownership, and close().
import * as grpc from '@grpc/grpc-js';
import { spawnSync } from 'child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'fs';
import net from 'net';
import { tmpdir } from 'os';
import { join } from 'path';
import * as peercred from '../../native/peercred';
import { UnixWorkloadAttestor } from '../attestor/workload/unix';
import { ConnectionRegistry, type Connection } from './connections';
import { workloadService } from '../../common/workloadapi/proto';
import { startWorkloadAPI, type WorkloadAPIOptions } from './server';
import { FakeIdentitySource, svid, trustDomain } from './test-fixtures';
import { captureLog, openStream, rawClient, unaryCall, until } from './test-helpers';

let dir: string;
let source: FakeIdentitySource;
const logs = captureLog();

beforeAll(async () => {
  const td = await trustDomain('example.org');
  source = new FakeIdentitySource(td.bundle, td.jwt.signer);
  source.svids = [await svid(td, '/web', { selectors: ['unix:uid:0'] })];
  dir = mkdtempSync(join(tmpdir(), 'wl-life-'));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const start = (socketPath: string, extra: Partial<WorkloadAPIOptions> = {}) =>
  startWorkloadAPI({ socketPath, source, attestor: new UnixWorkloadAttestor(), trustDomain: 'spiffe://example.org', log: logs.log, ...extra });

const mode = (p: string) => statSync(p).mode & 0o777;

describe('socket path', () => {
  it('creates the directory 0755 and a world-connectable socket', async () => {
    const sock = join(dir, 'a', 'b', 'api.sock');
    const api = await start(sock);
    try {
      expect(mode(join(dir, 'a', 'b'))).toBe(0o755);
      expect(statSync(sock).isSocket()).toBe(true);
      expect(mode(sock)).toBe(0o777);
    } finally {
      await api.close();
    }
    expect(existsSync(sock)).toBe(false);
  });

  it('replaces a stale socket left by a killed process', async () => {
    const sock = join(dir, 'stale.sock');
    // A listener killed with SIGKILL never unlinks its socket file.
    const r = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    expect(r.signal).toBe('SIGKILL');
    expect(statSync(sock).isSocket()).toBe(true);
    const api = await start(sock);
    const c = rawClient(sock);
    try {
      expect((await unaryCall(c, 'FetchJWTSVID', { audience: ['db'] })).res.svids).toHaveLength(1);
    } finally {
      c.close();
      await api.close();
    }
  });

  it('refuses to take over a socket another server still answers on', async () => {
    const sock = join(dir, 'busy.sock');
    const first = await start(sock);
    const c = rawClient(sock);
    try {
      await expect(start(sock)).rejects.toMatchObject({ code: 'FAILED_PRECONDITION', message: expect.stringContaining('served by another process') });
      expect((await unaryCall(c, 'FetchJWTSVID', { audience: ['db'] })).res.svids).toHaveLength(1);
    } finally {
      c.close();
      await first.close();
    }
  });

  it('refuses to replace anything that is not a socket', async () => {
    const file = join(dir, 'not-a-socket');
    writeFileSync(file, 'keep me');
    await expect(start(file)).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    expect(readFileSync(file, 'utf8')).toBe('keep me');
  });
});

describe('connections', () => {
  // The design rests on this grpc-js (~1.14) behaviour, which is observed, not documented:
  // if it changes, every call would fail to find its caller. This test says so first.
  it('grpc-js getPeer() returns the connection id given to the socket as remoteAddress', async () => {
    const server = new grpc.Server();
    const peers: string[] = [];
    server.addService(workloadService(), {
      FetchJWTSVID: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        peers.push(call.getPeer());
        cb(null, { svids: [] });
      },
    });
    const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    const registry = new ConnectionRegistry(peercred, logs.log);
    const accepted: Connection[] = [];
    const listener = net.createServer((socket) => {
      const conn = registry.accept(socket);
      if (conn) accepted.push(conn);
      injector.injectConnection(socket);
    });
    const sock = join(dir, 'peer.sock');
    await new Promise<void>((resolve) => listener.listen(sock, resolve));
    const c = rawClient(sock);
    try {
      await unaryCall(c, 'FetchJWTSVID', { audience: ['x'] });
      await unaryCall(c, 'FetchJWTSVID', { audience: ['x'] });
      expect(accepted).toHaveLength(1);
      expect(peers).toEqual([accepted[0].id, accepted[0].id]);
      expect(peers[0]).toMatch(/^workload-conn-\d+$/);
      expect(registry.get(peers[0])?.caller).toMatchObject({ pid: process.pid, uid: process.getuid!() });
    } finally {
      c.close();
      server.forceShutdown();
      await new Promise((resolve) => listener.close(resolve));
    }
  });

  it('closes the pidfd taken at accept once the connection closes', async () => {
    const opened: number[] = [];
    const closed: number[] = [];
    const ops = {
      ...peercred,
      getPeerPidfd: (fd: number) => {
        const pidfd = peercred.getPeerPidfd(fd);
        opened.push(pidfd);
        return pidfd;
      },
      closeFd: (fd: number) => {
        closed.push(fd);
        peercred.closeFd(fd);
      },
    };
    const sock = join(dir, 'pidfd.sock');
    const api = await start(sock, { peercred: ops });
    const c = rawClient(sock);
    expect((await unaryCall(c, 'FetchJWTSVID', { audience: ['db'] })).res).toBeDefined();
    expect(api.connections()).toBe(1);
    c.close();
    await until(() => api.connections() === 0, 5000, 'connection close');
    expect(closed).toEqual(opened.filter((fd) => fd >= 0));
    await api.close();
  });

  it('refuses a connection whose peer credentials cannot be read', async () => {
    const ops = { ...peercred, getPeerCred: () => { throw Object.assign(new Error('getsockopt(SO_PEERCRED): bad'), { code: 'EINVAL' }); } };
    const sock = join(dir, 'nocred.sock');
    const api = await start(sock, { peercred: ops });
    const c = rawClient(sock);
    try {
      expect((await unaryCall(c, 'FetchJWTSVID', { audience: ['db'] })).err?.code).toBe(grpc.status.UNAVAILABLE);
      expect(logs.entries()).toContainEqual(expect.objectContaining({ msg: 'cannot read peer credentials; connection refused' }));
    } finally {
      c.close();
      await api.close();
    }
  });
});

describe('close()', () => {
  it('ends every open stream with status OK, stops listening and lets go of the source', async () => {
    const sock = join(dir, 'close', 'api.sock');
    const api = await start(sock);
    const c = rawClient(sock);
    const streams = ['FetchX509SVID', 'FetchX509Bundles', 'FetchJWTBundles'].map((rpc) => openStream(c, rpc));
    await until(() => streams.every((s) => s.messages.length === 1), 5000, 'first messages');
    expect(api.streams()).toBe(3);
    expect(source.subscribers).toBe(3);

    await Promise.all([api.close(), api.close()]);
    for (const s of streams) expect(await s.status).toMatchObject({ code: grpc.status.OK });
    expect(api.streams()).toBe(0);
    expect(source.subscribers).toBe(0);
    expect(existsSync(sock)).toBe(false);
    const refused = await new Promise<NodeJS.ErrnoException>((resolve) => net.connect(sock).on('error', resolve));
    expect(refused.code).toBe('ENOENT');
    c.close();
  });
});

describe('connection limits', () => {
  it('closes a connection that makes no call before the first-request deadline, and keeps one with an open stream', async () => {
    const sock = join(dir, 'deadline.sock');
    const refused: string[] = [];
    const api = await start(sock, { limits: { firstRequestTimeoutMs: 150 }, onRefused: (r) => refused.push(r) });
    const idle = net.connect(sock);
    idle.on('error', () => undefined);
    idle.resume(); // read, so that the server's shutdown reaches us as EOF
    const idleClosed = new Promise<void>((r) => idle.once('close', () => r()));
    const c = rawClient(sock);
    const stream = openStream(c, 'FetchX509SVID');
    await until(() => stream.messages.length === 1, 5000, 'first message');
    await idleClosed; // the idle one: shut down under grpc-js, which owns its fd
    expect(refused).toEqual(['first_request_deadline']);
    // A second idle connection, made after the stream's: once it is closed, the stream's deadline would have passed too.
    const later = net.connect(sock).on('error', () => undefined);
    later.resume();
    await new Promise<void>((r) => later.once('close', () => r()));
    expect(refused).toEqual(['first_request_deadline', 'first_request_deadline']);
    expect(api.streams()).toBe(1);
    stream.call.cancel();
    c.close();
    await api.close();
  });

  it('refuses connections of one uid beyond its cap, at accept', async () => {
    const sock = join(dir, 'cap.sock');
    const refused: string[] = [];
    const api = await start(sock, { limits: { maxConnections: 8, maxConnectionsPerUid: 2 }, onRefused: (r) => refused.push(r) });
    const socks = [0, 1, 2].map(() => net.connect(sock).on('error', () => undefined));
    await new Promise<void>((r) => socks[2]!.once('close', () => r()));
    expect(refused).toEqual(['peer_cap']);
    expect(api.connections()).toBe(2);
    for (const s of socks) s.destroy();
    await api.close();
  });
});
