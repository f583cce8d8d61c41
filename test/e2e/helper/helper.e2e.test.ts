import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, readlinkSync, statSync, symlinkSync, watch, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { TESSERA_BIN, run, removeDir, shortTempDir, startAgentProcess, startServerProcess, stopAndRemove, type AgentProcess, type ServerProcess } from '../../helpers/processes';
import { waitFor } from '../../helpers/security';
import { X509Source, attachMTLSServer, authorizeID, mtlsServerOptions, peerIdentity } from '../../../sdk/index';
import { scanLog, tried } from '../../helpers/figures';

/**
 * `tessera helper` as a real process against a real agent: the files it writes
 * are what openssl, curl and Java's keytool take; they change together (a reader
 * that opens both never sees a new certificate with the old key) and before the
 * SVID expires (10-s SVIDs); the supervised command starts after the first
 * complete write, gets renew_signal on each rotation and is restarted when it
 * dies; `--once` succeeds, or fails naming what is missing.
 */
jest.setTimeout(180_000);

const td = 'helper.example.org';
const alias = `spiffe://${td}/node/helper`;
const WEB = `spiffe://${td}/web`;
const API = `spiffe://${td}/api`;
let server: ServerProcess;
let agent: AgentProcess;
let work: string;

beforeAll(async () => {
  server = await startServerProcess({ trustDomain: td });
  await server.cli(['entry', 'create', '--spiffe-id', WEB, '--parent-id', alias, '--selector', 'unix:uid:0', '--dns', 'localhost', '--x509-svid-ttl', '10', '--hint', 'web']);
  agent = await startAgentProcess(server, { alias });
  work = shortTempDir('hlp-');
});
afterAll(async () => {
  await stopAndRemove(agent, server);
  removeDir(work);
});

interface Helper {
  proc: ChildProcess;
  lines: Array<Record<string, any>>;
  stderr: () => string;
  exited: Promise<number | null>;
}

function startHelperProcess(config: object, extra: string[] = []): Helper {
  const file = path.join(work, `helper-${Date.now()}-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify({ agent_address: `unix://${agent.socket}`, ...config }));
  const proc = spawn(process.execPath, [TESSERA_BIN, 'helper', '--config', file, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Array<Record<string, any>> = [];
  readline.createInterface({ input: proc.stdout! }).on('line', (l) => {
    try {
      lines.push(JSON.parse(l));
    } catch {
      // the supervised command's own output
    }
  });
  let err = '';
  let out = '';
  proc.stderr!.on('data', (c) => (err += c));
  proc.stdout!.on('data', (c) => (out += c));
  proc.once('close', () => scanLog('helper', out + err)); // the secrets scan of the adversarial figures
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return { proc, lines, stderr: () => err, exited };
}

async function stopHelper(h: Helper): Promise<void> {
  if (h.proc.exitCode === null) h.proc.kill('SIGTERM');
  await h.exited;
}

/** Reads cert and key as a user opening both would, retrying when a new version landed in between. */
function readPair(dir: string): { cert: string; key: string; bundle: string; version: string } {
  for (;;) {
    const before = readlinkSync(path.join(dir, '..data'));
    const cert = readFileSync(path.join(dir, 'svid.pem'), 'utf8');
    const key = readFileSync(path.join(dir, 'svid_key.pem'), 'utf8');
    const bundle = readFileSync(path.join(dir, 'bundle.pem'), 'utf8');
    if (readlinkSync(path.join(dir, '..data')) === before) return { cert, key, bundle, version: before };
  }
}

const matches = (certPem: string, keyPem: string) =>
  createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' }).equals(new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' }));

it('writes SVID, key, bundle, JWT-SVID, JWT bundle and PKCS#12; every version is a matching pair that openssl verifies, written before expiry, through three rotations; curl uses them against an SDK server', async () => {
  const out = path.join(work, 'daemon');
  writeFileSync(path.join(work, 'p12pass'), 'changeit-not\n', { mode: 0o600 });
  const h = startHelperProcess({
    cert_dir: out,
    svid_hint: 'web',
    jwt_svids: [{ jwt_audience: API, jwt_svid_file_name: 'api.token' }],
    jwt_bundle_file_name: 'jwt_bundle.json',
    svid_combined_file_name: 'svid_combined.pem',
    pkcs12: { password_file: path.join(work, 'p12pass') },
    health_bind: '127.0.0.1:0',
  });
  try {
    await waitFor('the first complete write', () => h.lines.some((l) => l.event === 'helper_files_written') || h.proc.exitCode !== null, 30_000);
    expect(h.proc.exitCode).toBeNull();
    const first = h.lines.find((l) => l.event === 'helper_files_written')!;
    expect(first.files.sort()).toEqual(['api.token', 'bundle.pem', 'jwt_bundle.json', 'keystore.p12', 'svid.pem', 'svid_combined.pem', 'svid_key.pem', 'truststore.p12']);
    const mode = (f: string) => statSync(path.join(out, f)).mode & 0o777;
    expect([mode('svid.pem'), mode('bundle.pem'), mode('svid_key.pem'), mode('api.token'), mode('svid_combined.pem'), mode('keystore.p12')]).toEqual([0o644, 0o644, 0o600, 0o600, 0o600, 0o600]);

    // every version, as it lands: a matching pair, verified by openssl against the bundle written with it, not expired
    const versions = new Map<string, { serial: string; notAfter: number; seenAt: number }>();
    const problems: string[] = [];
    const check = async () => {
      const p = readPair(out);
      if (versions.has(p.version)) return;
      const leaf = new X509Certificate(p.cert);
      versions.set(p.version, { serial: leaf.serialNumber, notAfter: Date.parse(leaf.validTo), seenAt: Date.now() });
      if (!matches(p.cert, p.key)) problems.push(`${p.version}: key does not match the certificate`);
      if (Date.parse(leaf.validTo) <= Date.now()) problems.push(`${p.version}: expired certificate`);
      const snap = path.join(out, p.version);
      const v = await run('openssl', ['verify', '-CAfile', path.join(snap, 'bundle.pem'), path.join(snap, 'svid.pem')]);
      if (v.code !== 0 && existsSync(snap)) problems.push(`${p.version}: openssl verify: ${v.stdout}${v.stderr}`);
    };
    const watcher = watch(out, () => void check());
    await check();
    try {
      await waitFor('three rotations of the SVID files', () => new Set([...versions.values()].map((v) => v.serial)).size >= 4, 90_000, 100);
    } finally {
      watcher.close();
    }
    expect(problems).toEqual([]);
    // each new certificate was in place before the one it replaced expired
    const bySeen = [...versions.values()].sort((a, b) => a.seenAt - b.seenAt);
    for (let i = 1; i < bySeen.length; i++) if (bySeen[i]!.serial !== bySeen[i - 1]!.serial) expect(bySeen[i]!.seenAt).toBeLessThan(bySeen[i - 1]!.notAfter);

    // the JWT-SVID is valid for its audience; the JWT bundle names the trust domain
    const token = readFileSync(path.join(out, 'api.token'), 'utf8');
    expect((await agent.cli(['validate', 'jwt', '--audience', API, '--svid', token])).code).toBe(0);
    expect(Object.keys(JSON.parse(readFileSync(path.join(out, 'jwt_bundle.json'), 'utf8')))).toEqual([td]);
    // the combined file is key then chain
    const combined = readFileSync(path.join(out, 'svid_combined.pem'), 'utf8');
    expect(combined.indexOf('PRIVATE KEY')).toBeLessThan(combined.indexOf('CERTIFICATE'));
    // PKCS#12: openssl and keytool open it with the password from the file
    expect((await run('openssl', ['pkcs12', '-in', path.join(out, 'keystore.p12'), '-passin', 'pass:changeit-not', '-nokeys'])).code).toBe(0);
    const kl = await run('keytool', ['-list', '-v', '-keystore', path.join(out, 'keystore.p12'), '-storetype', 'PKCS12', '-storepass', 'changeit-not']);
    expect(kl.stdout).toContain(`URIName: ${WEB}`);
    const tl = await run('keytool', ['-list', '-keystore', path.join(out, 'truststore.p12'), '-storetype', 'PKCS12', '-storepass', 'changeit-not']);
    expect(tl.stdout).toMatch(/trustedCertEntry/);

    // curl with the helper's files against an SDK mTLS server that only lets WEB in
    const source = new X509Source({ address: agent.socket });
    await source.ready(20_000);
    const cfg = { source, authorizer: authorizeID(WEB) };
    const srv = https.createServer(mtlsServerOptions(cfg), (req, res) => void res.end(`hello ${peerIdentity(req.socket)?.id.toString()}`));
    attachMTLSServer(srv, cfg);
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const port = (srv.address() as AddressInfo).port;
      const c = await run('curl', ['-sS', '--cert', path.join(out, 'svid.pem'), '--key', path.join(out, 'svid_key.pem'), '--cacert', path.join(out, 'bundle.pem'), `https://localhost:${port}/`]);
      expect(c.stdout).toBe(`hello ${WEB}`);
    } finally {
      srv.close();
      source.close();
    }

    // metrics and readiness
    const ready = h.lines.find((l) => l.event === 'helper_ready')!;
    const metrics = await fetch(`http://${ready.health}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/tessera_helper_writes_total \d+/);
    expect((await fetch(`http://${ready.health}/ready`)).status).toBe(200);
    // no token or key in the helper's log
    const log = JSON.stringify(h.lines);
    expect(log).not.toContain(token);
    expect(log).not.toContain('PRIVATE KEY');
  } finally {
    await stopHelper(h);
  }
  // the last good files stay after the helper stops
  expect(matches(readPair(out).cert, readPair(out).key)).toBe(true);
});

it('starts the supervised command only after the first complete write, signals it on each rotation, restarts it when it dies', async () => {
  const out = path.join(work, 'supervised');
  const events = path.join(work, 'child-events.log');
  const script = `
    const fs = require('fs');
    const [log, dir] = process.argv.slice(1);
    fs.appendFileSync(log, 'start ' + process.pid + ' ' + fs.existsSync(dir + '/svid.pem') + '\\n');
    process.on('SIGHUP', () => fs.appendFileSync(log, 'hup ' + process.pid + '\\n'));
    setInterval(() => {}, 1000);`;
  const h = startHelperProcess({ cert_dir: out, svid_hint: 'web', cmd: process.execPath, cmd_args: ['-e', script, events, out], renew_signal: 'SIGHUP' });
  const lines = () => (existsSync(events) ? readFileSync(events, 'utf8').trim().split('\n') : []);
  try {
    await waitFor('the child to start', () => lines().some((l) => l.startsWith('start ')), 30_000);
    expect(lines()[0]).toMatch(/^start \d+ true$/); // the certificate was there before it started
    const pid = Number(lines()[0]!.split(' ')[1]);
    await waitFor('two renew signals', () => lines().filter((l) => l === `hup ${pid}`).length >= 2, 60_000);
    process.kill(pid, 'SIGKILL');
    await waitFor('a restart', () => lines().filter((l) => l.startsWith('start ')).length >= 2, 30_000);
    const again = lines().filter((l) => l.startsWith('start '))[1]!;
    expect(Number(again.split(' ')[1])).not.toBe(pid);
    expect(h.lines.some((l) => l.event === 'helper_cmd_exited' && l.restart_in_ms !== undefined)).toBe(true);
  } finally {
    await stopHelper(h);
  }
});

it('signals the process named by a pid file (read again each time) and runs on_change_cmd after each write; exit_with_cmd ends the helper with the command', async () => {
  const out = path.join(work, 'pidfile');
  const events = path.join(work, 'pidfile-events.log');
  const pidFile = path.join(work, 'other.pid');
  const script = `
    const fs = require('fs');
    fs.writeFileSync(process.argv[2], String(process.pid));
    process.on('SIGUSR1', () => fs.appendFileSync(process.argv[1], 'usr1 ' + process.pid + '\\n'));
    setInterval(() => {}, 1000);`;
  const startOther = () => spawn(process.execPath, ['-e', script, events, pidFile], { stdio: 'ignore' });
  let other = startOther();
  const h = startHelperProcess({ cert_dir: out, svid_hint: 'web', pid_file_name: pidFile, renew_signal: 'SIGUSR1', on_change_cmd: ['sh', '-c', `echo changed >> ${events}`] });
  const lines = () => (existsSync(events) ? readFileSync(events, 'utf8').trim().split('\n') : []);
  try {
    await waitFor('a signal and an on_change_cmd run', () => lines().some((l) => l.startsWith('usr1 ')) && lines().includes('changed'), 30_000);
    // the process restarts with another pid: the next signal goes to the new one
    const firstPid = other.pid;
    other.kill('SIGKILL');
    other = startOther();
    await waitFor('the new pid in the pid file', () => readFileSync(pidFile, 'utf8') === String(other.pid), 10_000);
    // The signal and on_change_cmd follow the same write, but the signalled process and the
    // command's shell append independently: wait for both (CI once saw the signal line first).
    await waitFor(
      'a signal to the new process and a second on_change_cmd run',
      () => lines().includes(`usr1 ${other.pid}`) && lines().filter((l) => l === 'changed').length >= 2,
      30_000,
    );
    expect(other.pid).not.toBe(firstPid);
  } finally {
    other.kill('SIGKILL');
    await stopHelper(h);
  }

  const exits = startHelperProcess({ cert_dir: path.join(work, 'exits'), svid_hint: 'web', cmd: process.execPath, cmd_args: ['-e', 'process.exit(7)'], exit_with_cmd: true });
  expect(await exits.exited).toBe(7);
  expect(existsSync(path.join(work, 'exits', 'svid.pem'))).toBe(true); // it ran after the first write
});

it('with the agent gone the last good files stay; measured: from a new agent\'s start (attestation, sync, signing) to all helper files written, helper and agent started together', async () => {
  const out = path.join(work, 'startup');
  const old = agent;
  // first: a daemon helper whose agent goes away keeps its last good files and keeps running
  const survives = path.join(work, 'survives');
  const d = startHelperProcess({ cert_dir: survives, svid_hint: 'web' });
  await waitFor('its first write', () => d.lines.some((l) => l.event === 'helper_files_written'), 30_000);
  await old.stop();
  await waitFor('the helper to notice the agent is gone', () => d.lines.some((l) => l.event === 'helper_agent_unavailable'), 30_000);
  expect(d.proc.exitCode).toBeNull();
  const kept = readPair(survives);
  expect(matches(kept.cert, kept.key)).toBe(true);
  expect(Date.parse(new X509Certificate(kept.cert).validTo)).toBeGreaterThan(Date.now());
  await stopHelper(d);

  const dir = shortTempDir('tag-');
  const h = startHelperProcess({ agent_address: `unix://${path.join(dir, 'public', 'api.sock')}`, cert_dir: out, svid_hint: 'web', jwt_svids: [{ jwt_audience: API, jwt_svid_file_name: 'api.token' }], once_timeout: 60 }, ['--once']);
  try {
    // started together, as an init container and its node agent would be (the helper retries with backoff until the socket is there)
    const t0 = Date.now();
    agent = await startAgentProcess(server, { dir, alias, waitReady: false });
    const agentUp = Date.now() - t0;
    expect(await h.exited).toBe(0);
    process.stdout.write(`helper: new agent start to all files written (attest, sync, x509-svid and jwt-svid): ${Date.now() - t0} ms (agent process up and listening after ${agentUp} ms)\n`);
  } finally {
    await stopHelper(h);
    removeDir(old.dir);
  }
  expect(matches(readPair(out).cert, readPair(out).key)).toBe(true);
});

it('--once writes everything and exits 0; with an SVID that never comes it exits 1 naming what is missing', async () => {
  const out = path.join(work, 'once');
  mkdirSync(out, { mode: 0o700 });
  const ok = startHelperProcess({ cert_dir: out, svid_hint: 'web', jwt_svids: [{ jwt_audience: API, jwt_svid_file_name: 'api.token' }] }, ['--once']);
  expect(await ok.exited).toBe(0);
  expect(matches(readPair(out).cert, readPair(out).key)).toBe(true);
  expect(readFileSync(path.join(out, 'api.token'), 'utf8')).toMatch(/^eyJ/);

  const missing = startHelperProcess({ cert_dir: path.join(work, 'never'), svid_hint: 'no-such-hint', once_timeout: 2 }, ['--once']);
  expect(await missing.exited).toBe(1);
  expect(missing.stderr()).toMatch(/still missing: x509-svid/);
  expect(existsSync(path.join(work, 'never', 'svid.pem'))).toBe(false);
});

it('refuses a cert_dir another user owns or may write, and a config with a password on the command line', async () => {
  const open = path.join(work, 'open');
  mkdirSync(open);
  chmodSync(open, 0o777);
  const theirs = path.join(work, 'theirs');
  mkdirSync(theirs, { mode: 0o755 });
  chownSync(theirs, 1001, 1001);
  // a symlink to the other user's directory, as a planted cert_dir would be
  const linked = path.join(work, 'linked');
  symlinkSync(theirs, linked);
  for (const dir of [open, theirs, linked]) {
    const refused = tried(dir === linked ? 'helper_output_directory_symlinked' : 'helper_output_directory_pre_created');
    const h = startHelperProcess({ cert_dir: dir, svid_hint: 'web' }, ['--once']);
    expect(await h.exited).not.toBe(0);
    expect(h.stderr()).toMatch(/helper cert_dir/);
    expect(existsSync(path.join(dir, 'svid_key.pem'))).toBe(false);
    refused();
  }
  const bad = startHelperProcess({ cert_dir: path.join(work, 'x'), pkcs12: { password: 'inline' } }, ['--once']);
  expect(await bad.exited).not.toBe(0);
  expect(bad.stderr()).toMatch(/pkcs12/);
});
