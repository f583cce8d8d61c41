import { spawn, type ChildProcess } from 'child_process';
import { createHash } from 'crypto';
import { chmodSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'fs';
import net from 'net';
import { tmpdir } from 'os';
import { join } from 'path';
import { formatSelector } from '../../../common/selector';
// Relative, so the test runs before the root package depends on it.
import * as peercred from '../../../native/peercred';
import { parseGroups, parseIdFile, readCallerInfo, UnixWorkloadAttestor, type CallerInfo, type UnixWorkloadAttestorOptions } from './unix';

const CLIENT = `const c = require('net').connect(process.argv[1]);
c.on('error', (e) => { console.error(e); process.exit(2); });
setInterval(() => {}, 1e6);`;

const asRoot = process.getuid?.() === 0;
const nodePath = realpathSync(process.execPath);
const nodeSha256 = createHash('sha256').update(readFileSync(nodePath)).digest('hex');

let dir: string;
let sock: string;
let server: net.Server;
let waiting: Array<(c: CallerInfo) => void> = [];
const children: ChildProcess[] = [];
const pidfds: number[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'unix-attestor-'));
  chmodSync(dir, 0o755); // let uid 65534 reach the socket
  sock = join(dir, 'a.sock');
  server = net.createServer((socket) => {
    const caller = readCallerInfo((socket as unknown as { _handle: { fd: number } })._handle.fd, peercred);
    if (caller.pidfd >= 0) pidfds.push(caller.pidfd);
    waiting.shift()?.(caller);
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

/** Starts a `node -e` client (optionally as uid/gid 65534) and resolves with the CallerInfo taken at accept. */
function connectChild(asNobody = false, groups = '--clear-groups'): Promise<{ child: ChildProcess; caller: CallerInfo }> {
  const args = [process.execPath, '-e', CLIENT, sock];
  const cmd = asNobody ? ['setpriv', '--reuid=65534', '--regid=65534', groups, ...args] : args;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd[0], cmd.slice(1), { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
    children.push(child);
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`client exited with ${code} before connecting`)));
    waiting.push((caller) => resolve({ child, caller }));
  });
}

// The default, require('@tessera/peercred'), needs the root package's dependency.
const attestorWith = (opts: UnixWorkloadAttestorOptions = {}) => new UnixWorkloadAttestor({ pidfd: peercred, ...opts });
const exited = (c: ChildProcess) => new Promise((resolve) => (c.exitCode !== null || c.signalCode ? resolve(null) : c.once('exit', resolve)));
const texts = (r: { selectors: { type: string; value: string }[] }) => r.selectors.map(formatSelector);
const kernelOnly = (uid: number, gid: number, user: string, group: string) =>
  [`unix:gid:${gid}`, `unix:group:${group}`, `unix:uid:${uid}`, `unix:user:${user}`];

describe('UnixWorkloadAttestor', () => {
  (asRoot ? it : it.skip)('gives a live process its uid, gid, names, path and sha256', async () => {
    const { child, caller } = await connectChild();
    expect(caller).toEqual({ pid: child.pid, uid: 0, gid: 0, pidfd: expect.any(Number) });
    expect(caller.pidfd).toBeGreaterThanOrEqual(0);
    const r = await attestorWith().attest(caller);
    const groups = parseGroups(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
    expect(texts(r)).toEqual(
      [
        ...kernelOnly(0, 0, 'root', 'root'),
        `unix:path:${nodePath}`,
        `unix:sha256:${nodeSha256}`,
        ...groups.map((g) => `unix:supplementary_gid:${g}`),
        ...groups.map((g) => `unix:supplementary_group:${parseIdFile(readFileSync('/etc/group', 'utf8')).get(g)}`),
      ].sort(),
    );
    expect(r.warnings).toEqual([]);
  });

  (asRoot ? it : it.skip)('takes uid and gid from the kernel: a setpriv client is uid 65534, user nobody', async () => {
    const { caller } = await connectChild(true);
    expect(caller).toMatchObject({ uid: 65534, gid: 65534 });
    const r = await attestorWith().attest(caller);
    expect(texts(r)).toEqual([...kernelOnly(65534, 65534, 'nobody', 'nogroup'), `unix:path:${nodePath}`, `unix:sha256:${nodeSha256}`].sort());
    expect(r.warnings).toEqual([]);
  });

  (asRoot ? it : it.skip)('lists supplementary groups by gid and name', async () => {
    const { caller } = await connectChild(true, '--groups=4,100');
    const r = await attestorWith().attest(caller);
    const names = parseIdFile(readFileSync('/etc/group', 'utf8'));
    expect(texts(r)).toEqual(
      expect.arrayContaining([4, 100].flatMap((g) => [`unix:supplementary_gid:${g}`, `unix:supplementary_group:${names.get(g)}`])),
    );
    expect(texts(r)).toContain('unix:uid:65534');
  });

  it('hashes a binary once, also for concurrent calls and other processes running it', async () => {
    const a = await connectChild();
    const b = await connectChild();
    const attestor = attestorWith();
    const [r1, r2] = await Promise.all([attestor.attest(a.caller), attestor.attest(a.caller)]);
    expect(attestor.stats).toEqual({ hashed: 1, cacheHits: 1, reused: 0 });
    const r3 = await attestor.attest(b.caller);
    expect(attestor.stats).toEqual({ hashed: 1, cacheHits: 2, reused: 0 });
    for (const r of [r1, r2, r3]) expect(texts(r)).toContain(`unix:sha256:${nodeSha256}`);
  });

  it('bounds the hash cache (LRU)', async () => {
    const a = await connectChild();
    const sleeper = spawn('sleep', ['100']);
    children.push(sleeper);
    await new Promise((resolve) => sleeper.once('spawn', resolve));
    const fd = peercred.pidfdOpen(sleeper.pid!);
    pidfds.push(fd);
    const b: CallerInfo = { pid: sleeper.pid!, uid: 0, gid: 0, pidfd: fd };
    // Copies of a's CallerInfo stand for new connections, so each call attests afresh.
    const small = attestorWith({ hashCacheSize: 1 });
    for (const c of [a.caller, b, { ...a.caller }]) await small.attest(c);
    expect(small.stats).toEqual({ hashed: 3, cacheHits: 0, reused: 0 });
    const roomy = attestorWith({ hashCacheSize: 2 });
    for (const c of [a.caller, b, { ...a.caller }]) await roomy.attest(c);
    expect(roomy.stats).toEqual({ hashed: 2, cacheHits: 1, reused: 0 });
    expect(texts(await roomy.attest(b))).toContain(`unix:path:${realpathSync('/proc/' + sleeper.pid + '/exe')}`);
  });

  it("repeats a caller's last attestation while it runs the same binary, and attests afresh after it exec's another", async () => {
    // A python client that connects, then execs sleep when told to (same pid, same pidfd, another binary).
    const script = 'import os, socket, sys\ns = socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\nsys.stdin.readline()\nos.execv("/bin/sleep", ["sleep", "100"])';
    const child = spawn('python3', ['-c', script, sock], { stdio: ['pipe', 'ignore', 'inherit'] });
    children.push(child);
    const caller = await new Promise<CallerInfo>((resolve) => waiting.push(resolve));
    const attestor = attestorWith();
    const first = await attestor.attest(caller);
    const python = realpathSync(`/proc/${child.pid}/exe`);
    expect(texts(first)).toContain(`unix:path:${python}`);
    const again = await attestor.attest(caller);
    expect(again).toEqual(first);
    expect(attestor.stats).toMatchObject({ hashed: 1, reused: 1 });

    child.stdin!.write('exec\n');
    const sleepPath = realpathSync('/bin/sleep');
    for (let i = 0; i < 100 && realpathSync(`/proc/${child.pid}/exe`) !== sleepPath; i++) await new Promise((r) => setTimeout(r, 20));
    const after = await attestor.attest(caller);
    expect(texts(after)).toContain(`unix:path:${sleepPath}`);
    expect(texts(after)).not.toContain(`unix:path:${python}`);
    expect(attestor.stats).toMatchObject({ hashed: 2, reused: 1 });

    // Once the process is gone, nothing is repeated: only the kernel's selectors remain.
    child.kill('SIGKILL');
    await exited(child);
    const gone = await attestor.attest(caller);
    expect(texts(gone)).toEqual(kernelOnly(0, 0, 'root', 'root'));
    expect(gone.warnings).toHaveLength(1);
    expect(attestor.stats.reused).toBe(1);
  });

  it('attests afresh when /etc/passwd changes, even for the same binary', async () => {
    const passwdFile = join(dir, 'passwd-reuse');
    writeFileSync(passwdFile, 'root:x:0:0::/root:/bin/sh\n');
    const { caller } = await connectChild();
    const attestor = attestorWith({ passwdFile });
    expect(texts(await attestor.attest(caller))).toContain('unix:user:root');
    expect(texts(await attestor.attest(caller))).toContain('unix:user:root');
    expect(attestor.stats.reused).toBe(1);
    writeFileSync(passwdFile, 'admin:x:0:0::/root:/bin/sh\n');
    await new Promise((r) => setTimeout(r, 550)); // the files are checked at most every 500 ms
    expect(texts(await attestor.attest(caller))).toContain('unix:user:admin');
    expect(attestor.stats.reused).toBe(1);
  });

  it('drops path, sha256 and groups of a caller that exited before attestation', async () => {
    const { child, caller } = await connectChild();
    child.kill('SIGKILL');
    await exited(child);
    const r = await attestorWith().attest(caller);
    expect(texts(r)).toEqual(kernelOnly(0, 0, 'root', 'root'));
    expect(r.warnings).toHaveLength(1);
  });

  it('drops them too when the pidfd says the pid changed hands after /proc was read', async () => {
    const { caller } = await connectChild();
    // Fakes the kernel's answer for the race we cannot stage: /proc read fine, then the pid was reused.
    const reused = { pidfdIsAlive: () => true, pidfdGetPid: () => -1 };
    const r = await new UnixWorkloadAttestor({ pidfd: reused }).attest(caller);
    expect(texts(r)).toEqual(kernelOnly(0, 0, 'root', 'root'));
    expect(r.warnings).toEqual([`pid ${caller.pid} exited or was reused during attestation; path, sha256 and supplementary groups skipped`]);
  });

  it('gives only the kernel selectors without a pidfd, or for pid 0', async () => {
    const { caller } = await connectChild();
    const attestor = attestorWith();
    for (const c of [{ ...caller, pidfd: -1 }, { ...caller, pid: 0 }]) {
      const r = await attestor.attest(c);
      expect(texts(r)).toEqual(kernelOnly(0, 0, 'root', 'root'));
      expect(r.warnings).toHaveLength(1);
    }
  });

  it('re-reads /etc/passwd and /etc/group when they change', async () => {
    const passwdFile = join(dir, 'passwd');
    const groupFile = join(dir, 'group');
    writeFileSync(passwdFile, '# comment\nalice:x:1000:1000::/home/alice:/bin/sh\n');
    writeFileSync(groupFile, 'staff:x:1000:alice\n');
    const attestor = attestorWith({ passwdFile, groupFile });
    const caller = { pid: 0, uid: 1000, gid: 1000, pidfd: -1 };
    expect(texts(await attestor.attest(caller))).toEqual(kernelOnly(1000, 1000, 'alice', 'staff'));
    writeFileSync(passwdFile, 'bobby:x:1000:1000::/home/bob:/bin/sh\n');
    await new Promise((r) => setTimeout(r, 550)); // the files are checked at most every 500 ms
    expect(texts(await attestor.attest(caller))).toContain('unix:user:bobby');
    rmSync(groupFile);
    await new Promise((r) => setTimeout(r, 550));
    const r = await attestor.attest({ ...caller, gid: 7 });
    expect(texts(r)).toEqual(['unix:gid:7', 'unix:uid:1000', 'unix:user:bobby']);
    expect(r.warnings).toEqual(expect.arrayContaining([expect.stringMatching(/^cannot read .*group \(ENOENT\)/)]));
  });

  // Last: changing the euid leaves this worker non-dumpable, which is harmless for root.
  (asRoot ? it : it.skip)('skips path and sha256 with a warning when the agent cannot read /proc/<pid>/exe', async () => {
    const { caller } = await connectChild();
    const attestor = attestorWith();
    process.seteuid!(65534);
    try {
      const r = await attestor.attest(caller);
      expect(texts(r)).toEqual(kernelOnly(0, 0, 'root', 'root'));
      expect(r.warnings).toEqual([`cannot read /proc/${caller.pid} (EACCES); path, sha256 and supplementary groups skipped`]);
    } finally {
      process.seteuid!(0);
    }
  });
});

describe('options', () => {
  it('rejects a hash cache size below 1', () => {
    expect(() => attestorWith({ hashCacheSize: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});

describe('parsers', () => {
  it('parseIdFile keeps the first name for an id and skips junk', () => {
    const m = parseIdFile('root:x:0:0::/root:/bin/sh\ntoor:x:0:0::/:/bin/sh\n\n# x:x:5:5\n+nis::::::\nbad:x:notanumber:1\n');
    expect([...m]).toEqual([[0, 'root']]);
  });

  it('parseGroups reads the Groups: line of /proc/<pid>/status', () => {
    expect(parseGroups('Name:\tx\nGroups:\t4 24 27 \nNStgid:\t1\n')).toEqual([4, 24, 27]);
    expect(parseGroups('Groups:\t \n')).toEqual([]);
    expect(parseGroups('Name:\tx\n')).toEqual([]);
  });
});
