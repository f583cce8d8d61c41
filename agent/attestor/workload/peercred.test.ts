// Tests of the native @tessera/peercred addon (native/peercred) against real
// processes: a net.Server on a temp Unix socket and `node -e` clients, some run
// as uid 65534 through setpriv (the tests run as root).
import { spawn, type ChildProcess } from 'child_process';
import { chmodSync, mkdtempSync, openSync, closeSync, rmSync } from 'fs';
import net from 'net';
import { release, tmpdir } from 'os';
import { join } from 'path';
// Relative, so the test runs before the root package depends on it.
import * as peercred from '../../../native/peercred';

interface Accepted {
  cred: { pid: number; uid: number; gid: number };
  pidfd: number;
  socket: net.Socket;
}

const CLIENT = `const c = require('net').connect(process.argv[1]);
c.on('error', (e) => { console.error(e); process.exit(2); });
setInterval(() => {}, 1e6);`;

const asRoot = process.getuid?.() === 0;
const [major, minor] = release().split('.').map(Number);
const hasPeerPidfd = major > 6 || (major === 6 && minor >= 5);

let dir: string;
let sock: string;
let server: net.Server;
let waiting: Array<(a: Accepted) => void> = [];
const children: ChildProcess[] = [];
const pidfds: number[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'peercred-'));
  chmodSync(dir, 0o755); // let uid 65534 reach the socket
  sock = join(dir, 'a.sock');
  server = net.createServer((socket) => {
    // Read the credentials first thing: the fd number is reused once the socket closes.
    const fd = (socket as unknown as { _handle: { fd: number } })._handle.fd;
    const a = { cred: peercred.getPeerCred(fd), pidfd: peercred.getPeerPidfd(fd), socket };
    if (a.pidfd >= 0) pidfds.push(a.pidfd);
    waiting.shift()?.(a);
  });
  await new Promise<void>((resolve) => server.listen(sock, resolve));
  chmodSync(sock, 0o777);
});

afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const fd of pidfds.splice(0)) peercred.closeFd(fd);
  waiting = [];
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

/** Starts a client (optionally as uid/gid 65534) and resolves with its accepted connection. */
function connectChild(asNobody = false): Promise<{ child: ChildProcess; accepted: Accepted }> {
  const args = [process.execPath, '-e', CLIENT, sock];
  const cmd = asNobody ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', ...args] : args;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd[0], cmd.slice(1), { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
    children.push(child);
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`client exited with ${code} before connecting`)));
    waiting.push((accepted) => resolve({ child, accepted }));
  });
}

const exited = (c: ChildProcess) => new Promise((resolve) => (c.exitCode !== null || c.signalCode ? resolve(null) : c.once('exit', resolve)));

describe('getPeerCred', () => {
  it('reports the pid, uid and gid of the connecting process', async () => {
    const { child, accepted } = await connectChild();
    expect(accepted.cred).toEqual({ pid: child.pid, uid: process.getuid!(), gid: process.getgid!() });
  });

  (asRoot ? it : it.skip)('reports uid 65534 for a client run under setpriv', async () => {
    const { child, accepted } = await connectChild(true);
    expect(accepted.cred).toEqual({ pid: child.pid, uid: 65534, gid: 65534 });
  });

  it('throws an errno error for an fd that is not a socket', () => {
    const fd = openSync(process.execPath, 'r');
    try {
      expect(() => peercred.getPeerCred(fd)).toThrow(expect.objectContaining({ code: 'ENOTSOCK', syscall: 'getsockopt(SO_PEERCRED)' }));
      // Only "unsupported" maps to -1; other failures throw so callers do not fall back.
      expect(() => peercred.getPeerPidfd(fd)).toThrow(expect.objectContaining({ code: 'ENOTSOCK' }));
    } finally {
      closeSync(fd);
    }
  });

  it('rejects arguments that are not fd numbers', () => {
    // Matched by name: the addon's errors come from Node's realm, not jest's sandbox.
    expect(() => peercred.getPeerCred('3' as unknown as number)).toThrow(expect.objectContaining({ name: 'TypeError' }));
    expect(() => peercred.getPeerCred(-1)).toThrow(expect.objectContaining({ name: 'RangeError' }));
    expect(() => peercred.pidfdOpen(1.5)).toThrow(/non-negative integer/);
  });
});

describe('pidfds', () => {
  (hasPeerPidfd ? it : it.skip)('SO_PEERPIDFD follows the client and sees it exit', async () => {
    const { child, accepted } = await connectChild();
    expect(accepted.pidfd).toBeGreaterThanOrEqual(0);
    expect(peercred.pidfdGetPid(accepted.pidfd)).toBe(child.pid);
    expect(peercred.pidfdIsAlive(accepted.pidfd)).toBe(true);
    child.kill('SIGKILL');
    await exited(child);
    expect(peercred.pidfdIsAlive(accepted.pidfd)).toBe(false);
    expect(peercred.pidfdGetPid(accepted.pidfd)).toBe(-1); // reaped: the pid number is free again
  });

  it('pidfdOpen opens a pidfd by pid, and fails for a pid that does not exist', async () => {
    const { child } = await connectChild();
    const fd = peercred.pidfdOpen(child.pid!);
    try {
      expect(peercred.pidfdGetPid(fd)).toBe(child.pid);
      expect(peercred.pidfdIsAlive(fd)).toBe(true);
      child.kill('SIGKILL');
      await exited(child);
      expect(peercred.pidfdIsAlive(fd)).toBe(false);
      expect(() => peercred.pidfdOpen(child.pid!)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
    } finally {
      peercred.closeFd(fd);
    }
    expect(() => peercred.pidfdIsAlive(fd)).toThrow(expect.objectContaining({ code: 'EBADF' }));
    expect(() => peercred.closeFd(fd)).toThrow(expect.objectContaining({ code: 'EBADF' }));
  });

  it('pidfdGetPid refuses an fd that is not a pidfd', () => {
    const fd = openSync(process.execPath, 'r');
    try {
      expect(() => peercred.pidfdGetPid(fd)).toThrow(/not a pidfd/);
    } finally {
      closeSync(fd);
    }
  });
});
