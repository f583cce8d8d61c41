import { X509Certificate } from 'node:crypto';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import http from 'node:http';
import path from 'node:path';
import { startAgentProcess, startServerProcess, removeDir, run, shortTempDir, TESSERA_BIN, type AgentProcess, type ServerProcess } from '../../helpers/processes';
import { makeTestCA, makeTestLeaf } from '../../helpers/test-pki';
import { ATTACKER_UID, dirOwnedBy, startExpectingRefusal, waitFor } from '../../helpers/security';
import { x509AuthoritiesFromPem } from '../../../common/bundle/bundle';
import { opensslVerify } from '../../helpers/agent-identity';
import { tried } from '../../helpers/figures';

/**
 * Findings 2, 3 and 4: directories another local user created first, planted or
 * tampered state, sockets in someone else's directory, and `--write` into files
 * and directories the caller does not own. Every attack runs against the real
 * processes; the "other user" is uid 4242 (setpriv, or files chowned to it).
 */
jest.setTimeout(120_000);

const td = 'files.example.org';
const asUid = (uid: number) => ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups'];
let server: ServerProcess;
let base: string;

beforeAll(async () => {
  server = await startServerProcess({ trustDomain: td });
  await server.cli(['entry', 'create', '--spiffe-id', `spiffe://${td}/root-svc`, '--parent-id', `spiffe://${td}/node/files`, '--selector', 'unix:uid:0']);
  base = shortTempDir('sec-');
  chmodSync(base, 0o755); // other users must reach what they "create first" in here
});
afterAll(async () => {
  await server?.stop();
  removeDir(server?.dir);
  removeDir(base);
});

function serverConfig(dir: string, over: Record<string, unknown> = {}): string {
  const file = path.join(base, `server-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      trust_domain: td,
      data_dir: path.join(dir, 'data'),
      bind: '127.0.0.1:0',
      health_bind: '127.0.0.1:0',
      admin_socket: path.join(dir, 'admin', 'api.sock'),
      ...over,
    }),
  );
  chmodSync(file, 0o644);
  return file;
}

function agentConfig(dir: string, over: Record<string, unknown> = {}): string {
  const file = path.join(base, `agent-${Math.random().toString(36).slice(2)}.json`);
  const bundle = path.join(base, 'bundle.pem');
  writeFileSync(
    file,
    JSON.stringify({
      server_address: server.agentApi,
      trust_domain: td,
      trust_bundle_path: bundle,
      data_dir: path.join(dir, 'data'),
      socket_path: path.join(dir, 'public', 'api.sock'),
      health_bind: '127.0.0.1:0',
      ...over,
    }),
  );
  return file;
}

describe('finding 2: data directories and stored state', () => {
  it("a server data directory another user created (holding that user's CA key) is refused; before, its CA became the trust domain's", async () => {
    const refused = tried('planted_data_directory');
    // The other user runs a server of their own on a data directory in the shared place...
    const theirs = dirOwnedBy(path.join(base, 'theirs'), ATTACKER_UID, 0o755);
    const cfg = serverConfig(theirs);
    const attacker = await startServerProcess({ dir: theirs, trustDomain: td, wrap: asUid(ATTACKER_UID), config: JSON.parse(readFileSync(cfg, 'utf8')) });
    const attackerRoot = x509AuthoritiesFromPem(await attacker.cli(['bundle', 'show', '--format', 'pem']))[0]!;
    await attacker.stop();
    expect(statSync(path.join(theirs, 'data')).uid).toBe(ATTACKER_UID);
    // ...and root's server is pointed at that data directory (a default under /tmp, a typo, an old path).
    const r = await startExpectingRefusal(['server', 'run', '--config', serverConfig(path.join(base, 'root-run'), { data_dir: path.join(theirs, 'data') })], {
      readyEvent: 'server_ready',
    });
    expect(r.ready).toBe(false);
    expect(r.code).not.toBe(0);
    expect(r.output).toMatch(new RegExp(`server data directory: .*theirs(/data)? is owned by uid ${ATTACKER_UID}, not by this process`));
    expect(attackerRoot.length).toBeGreaterThan(0);
    refused();
  });

  it('an agent data directory another user created first (with a planted cache) is refused', async () => {
    const refused = tried('planted_data_directory');
    const dir = path.join(base, 'agent-planted');
    mkdirSync(dir, { mode: 0o755 });
    const data = dirOwnedBy(path.join(dir, 'data'), ATTACKER_UID, 0o755);
    writeFileSync(path.join(data, 'cache.json'), '{"version":1}');
    chownSync(path.join(data, 'cache.json'), ATTACKER_UID, ATTACKER_UID);
    writeFileSync(path.join(base, 'bundle.pem'), await server.cli(['bundle', 'show', '--format', 'pem']));
    const r = await startExpectingRefusal(['agent', 'run', '--config', agentConfig(dir)], { readyEvent: 'agent_ready' });
    expect(r.ready).toBe(false);
    expect(r.code).not.toBe(0);
    expect(r.output).toMatch(new RegExp(`agent data directory: .*agent-planted/data is owned by uid ${ATTACKER_UID}`));
    refused();
  });

  it('a stored SVID the server never issued (another CA, same SPIFFE ID, matching key) is not served after a restart, and the agent resyncs', async () => {
    const refused = tried('tampered_agent_cache');
    // Its own server: this test stops and restarts it.
    let own = await startServerProcess({ trustDomain: td });
    await own.cli(['entry', 'create', '--spiffe-id', `spiffe://${td}/root-svc`, '--parent-id', `spiffe://${td}/node/files`, '--selector', 'unix:uid:0']);
    const agent = await startAgentProcess(own, { alias: `spiffe://${td}/node/files` });
    const before = JSON.parse((await agent.cli(['fetch', 'x509'])).stdout) as { svids: Array<{ spiffe_id: string; serial: string }> };
    expect(before.svids.map((s) => s.spiffe_id)).toEqual([`spiffe://${td}/root-svc`]);
    await agent.stop();

    // Swap root's cached SVID for one signed by another CA (with its own key, so the pair matches).
    const evilCA = await makeTestCA(base, 'cache-evil-ca', { spiffeTrustDomain: td });
    const evil = await makeTestLeaf(base, 'cache-evil', evilCA, { uri: `spiffe://${td}/root-svc` });
    const cacheFile = path.join(agent.dir, 'data', 'cache.json');
    const cache = JSON.parse(readFileSync(cacheFile, 'utf8')) as { svids: Array<{ spiffe_id: string; chain: string[]; key: string; not_after: number }> };
    const keyDer = require('node:crypto').createPrivateKey(evil.keyPem).export({ type: 'pkcs8', format: 'der' }) as Buffer;
    const i = cache.svids.findIndex((v) => v.spiffe_id === `spiffe://${td}/root-svc`);
    expect(i).toBeGreaterThanOrEqual(0);
    cache.svids[i] = { ...cache.svids[i]!, chain: [evil.der.toString('base64')], key: keyDer.toString('base64'), not_after: cache.svids[i]!.not_after + 86400 };
    writeFileSync(cacheFile, JSON.stringify(cache), { mode: 0o600 });

    // Restarted while the server is down, it must not hand that certificate to root's workload.
    const port = Number(own.agentApi.split(':').pop());
    const serverDir = own.dir;
    await own.stop();
    let restarted: AgentProcess | undefined;
    try {
      restarted = await startAgentProcess({ agentApi: own.agentApi, trustDomain: td }, { dir: agent.dir, join: false, waitReady: false });
      await waitFor('the verification log line', () => /stored svids failed verification and were dropped/.test(restarted!.logs()));
      const during = await restarted.cli(['fetch', 'x509']);
      expect(during.stdout).not.toContain(new X509Certificate(evil.der).serialNumber.toLowerCase());
      expect(during.code).not.toBe(0);
      refused(); // the planted SVID was not served

      // The server comes back: the agent signs a real SVID again.
      own = await startServerProcess({ trustDomain: td, dir: serverDir, config: { bind: `127.0.0.1:${port}` } });
      const roots = x509AuthoritiesFromPem(await own.cli(['bundle', 'show', '--format', 'pem']));
      const after = await waitFor('a fresh svid', async () => {
        const r = await restarted!.cli(['fetch', 'x509']);
        return r.code === 0 && (JSON.parse(r.stdout) as { svids: Array<{ x509_svid: string[] }> }).svids[0];
      });
      const chain = after.x509_svid.map((c) => Buffer.from(c, 'base64'));
      expect((await opensslVerify(base, chain, roots, 'resync')).code).toBe(0);
    } finally {
      await restarted?.stop();
      await own.stop();
      removeDir(agent.dir);
      removeDir(own.dir);
    }
  });
});

describe('finding 3: socket directories', () => {
  it("the agent refuses a Workload API socket directory another user created; the server refuses such an admin socket directory, and a path that is not a socket", async () => {
    writeFileSync(path.join(base, 'bundle.pem'), await server.cli(['bundle', 'show', '--format', 'pem']));
    const adir = path.join(base, 'agent-sock');
    mkdirSync(adir, { mode: 0o755 });
    dirOwnedBy(path.join(adir, 'public'), ATTACKER_UID, 0o777);
    const token = /^Token: (\S+)$/m.exec(await server.cli(['token', 'generate']))![1]!;
    const a = await startExpectingRefusal(['agent', 'run', '--config', agentConfig(adir)], { readyEvent: 'agent_ready', env: { TESSERA_JOIN_TOKEN: token } });
    expect(a.ready).toBe(false);
    expect(a.output).toMatch(new RegExp(`workload api socket directory: .*agent-sock/public is owned by uid ${ATTACKER_UID}`));
    tried('planted_socket_directory')();

    const sdir = path.join(base, 'server-sock');
    mkdirSync(sdir, { mode: 0o755 });
    dirOwnedBy(path.join(sdir, 'admin'), ATTACKER_UID, 0o777);
    const s = await startExpectingRefusal(['server', 'run', '--config', serverConfig(sdir)], { readyEvent: 'server_ready' });
    expect(s.ready).toBe(false);
    expect(s.output).toMatch(new RegExp(`admin socket directory: .*server-sock/admin is owned by uid ${ATTACKER_UID}`));
    tried('planted_socket_directory')();

    const fdir = path.join(base, 'server-file');
    mkdirSync(path.join(fdir, 'admin'), { recursive: true, mode: 0o750 });
    writeFileSync(path.join(fdir, 'admin', 'api.sock'), 'not a socket: keep me');
    const f = await startExpectingRefusal(['server', 'run', '--config', serverConfig(fdir)], { readyEvent: 'server_ready' });
    expect(f.ready).toBe(false);
    expect(f.output).toMatch(/admin socket path .* exists and is not a socket/);
    expect(readFileSync(path.join(fdir, 'admin', 'api.sock'), 'utf8')).toBe('not a socket: keep me');
    tried('planted_socket_directory')();
  });

  it('the default sockets are not in a directory anyone can create: a fake Workload API and a fake admin API at the old /tmp defaults get nothing', async () => {
    const refused = tried('planted_socket_directory');
    // The other user serves fakes at SPIRE-style /tmp defaults (Tessera's defaults before the fix).
    const fakeDirs = ['/tmp/tessera-agent', '/tmp/tessera-server'];
    for (const d of fakeDirs) if (existsSync(d)) rmSync(d, { recursive: true, force: true });
    dirOwnedBy('/tmp/tessera-agent', ATTACKER_UID, 0o755);
    dirOwnedBy('/tmp/tessera-agent/public', ATTACKER_UID, 0o777);
    dirOwnedBy('/tmp/tessera-server', ATTACKER_UID, 0o755);
    dirOwnedBy('/tmp/tessera-server/private', ATTACKER_UID, 0o777);
    let stolen = '';
    const fakeWorkload = net.createServer((c) => c.on('data', (d) => (stolen += d.toString('latin1'))));
    const fakeAdmin = http.createServer((_req, res) => res.end('-----BEGIN CERTIFICATE-----\nATTACKER\n-----END CERTIFICATE-----\n'));
    await new Promise<void>((r) => fakeWorkload.listen('/tmp/tessera-agent/public/api.sock', r));
    await new Promise<void>((r) => fakeAdmin.listen('/tmp/tessera-server/private/api.sock', r));
    try {
      const env = { ...process.env };
      delete env.SPIFFE_ENDPOINT_SOCKET;
      delete env.TESSERA_ADMIN_SOCKET;
      const token = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzcGlmZmU6Ly9maWxlcy5leGFtcGxlLm9yZy9zZWNyZXQifQ.c2ln';
      const v = await runWithEnv(process.execPath, [TESSERA_BIN, 'agent', 'api', 'validate', 'jwt', '--audience', 'x', '--svid', token, '--timeout', '2'], env);
      expect(v.code).not.toBe(0);
      expect(stolen).not.toContain(token.split('.')[1]);
      const b = await runWithEnv(process.execPath, [TESSERA_BIN, 'bundle', 'show'], env);
      expect(b.stdout).not.toContain('ATTACKER');
      expect(b.code).not.toBe(0);
      refused();
    } finally {
      fakeWorkload.close();
      fakeAdmin.close();
      for (const d of fakeDirs) rmSync(d, { recursive: true, force: true });
    }
  });

  it("a client refuses a default socket in a directory another user created (the per-uid default of a non-root user)", async () => {
    const refused = tried('planted_socket_directory');
    const victim = 4243;
    const dir = `/tmp/tessera-${victim}`;
    rmSync(dir, { recursive: true, force: true });
    dirOwnedBy(dir, ATTACKER_UID, 0o755);
    dirOwnedBy(`${dir}/agent`, ATTACKER_UID, 0o755);
    dirOwnedBy(`${dir}/agent/public`, ATTACKER_UID, 0o777);
    try {
      const env = { ...process.env };
      delete env.SPIFFE_ENDPOINT_SOCKET;
      const r = await runWithEnv('setpriv', [...asUid(victim).slice(1), process.execPath, TESSERA_BIN, 'agent', 'api', 'fetch', 'x509', '--timeout', '2'], env);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(new RegExp(`workload api socket directory .*is owned by uid ${ATTACKER_UID}`));
      refused();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('finding 4: --write', () => {
  const mint = (dir: string, pre: string[] = []) =>
    run('sh', ['-c', `${pre.join(' ')} exec "$0" "$@"`, process.execPath, TESSERA_BIN, '--admin-socket', server.adminSocket, 'x509', 'mint', '--spiffe-id', `spiffe://${td}/minted`, '--write', dir]);

  it("refuses a directory another user owns; before, the key went into that user's pre-made 0666 file", async () => {
    const refused = tried('planted_output_directory');
    const dir = dirOwnedBy(path.join(base, 'their-out'), ATTACKER_UID, 0o777);
    writeFileSync(path.join(dir, 'key.pem'), '', { mode: 0o666 });
    chownSync(path.join(dir, 'key.pem'), ATTACKER_UID, ATTACKER_UID);
    chmodSync(path.join(dir, 'key.pem'), 0o666);
    const r = await mint(dir);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--write directory: .* is (owned by uid 4242|writable by group or others)/);
    expect(readFileSync(path.join(dir, 'key.pem'), 'utf8')).toBe('');
    refused();
  });

  it('agent api fetch x509 --write: the same rules (another user\'s directory refused, a planted symlink replaced)', async () => {
    const done = tried('planted_output_directory');
    const agent = await startAgentProcess(server, { alias: `spiffe://${td}/node/files` });
    try {
      const theirs = dirOwnedBy(path.join(base, 'their-fetch'), ATTACKER_UID, 0o777);
      const refused = await agent.cli(['fetch', 'x509', '--write', theirs]);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/--write directory/);
      const mine = path.join(base, 'my-fetch');
      mkdirSync(mine, { mode: 0o700 });
      const victimFile = path.join(base, 'fetch-victim.txt');
      writeFileSync(victimFile, 'untouched', { mode: 0o644 });
      symlinkSync(victimFile, path.join(mine, 'svid.0.key'));
      expect((await agent.cli(['fetch', 'x509', '--write', mine])).code).toBe(0);
      expect(readFileSync(victimFile, 'utf8')).toBe('untouched');
      done();
      expect(lstatSync(path.join(mine, 'svid.0.key')).isFile()).toBe(true);
      expect(statSync(path.join(mine, 'svid.0.key')).mode & 0o777).toBe(0o600);
    } finally {
      await agent.stop();
      removeDir(agent.dir);
    }
  });

  it('replaces a planted symlink instead of writing the key through it, and makes 0700 directories and 0600 keys under umask 000', async () => {
    const refused = tried('planted_output_directory');
    const dir = path.join(base, 'my-out');
    mkdirSync(dir, { mode: 0o700 });
    const victimFile = path.join(base, 'world-readable.txt');
    writeFileSync(victimFile, 'untouched', { mode: 0o644 });
    symlinkSync(victimFile, path.join(dir, 'key.pem'));
    expect((await mint(dir)).code).toBe(0);
    expect(readFileSync(victimFile, 'utf8')).toBe('untouched');
    refused();
    expect(lstatSync(path.join(dir, 'key.pem')).isFile()).toBe(true);
    expect(statSync(path.join(dir, 'key.pem')).mode & 0o777).toBe(0o600);
    expect(readFileSync(path.join(dir, 'key.pem'), 'utf8')).toMatch(/BEGIN PRIVATE KEY/);

    const fresh = path.join(base, 'umask', 'out');
    expect((await mint(fresh, ['umask 000;'])).code).toBe(0);
    expect(statSync(fresh).mode & 0o777).toBe(0o700);
    expect(statSync(path.join(fresh, 'key.pem')).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(fresh, 'svid.pem')).mode & 0o777).toBe(0o644);
  });
});

function runWithEnv(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = require('node:child_process').spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c));
    p.stderr.on('data', (c: Buffer) => (stderr += c));
    p.on('close', (code: number) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
