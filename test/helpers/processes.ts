import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, createWriteStream, rmSync, readFileSync, existsSync, chmodSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { knownSecret, scanLog } from './figures';
import { adminQuery } from './postgres';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
/** The repository root, from the ts sources (jest) or from dist/ (bench). */
export const ROOT = (() => {
  let d = __dirname;
  while (!existsSync(path.join(d, 'bin', 'tessera.js'))) d = path.dirname(d);
  return d;
})();
export const TESSERA_BIN = path.join(ROOT, 'bin', 'tessera.js');

/** A temp dir with a short path (Unix socket paths must stay under ~100 bytes). */
export function shortTempDir(prefix = 'tsr-'): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface ServerProcess {
  proc: ChildProcess;
  dir: string;
  adminSocket: string;
  agentApi: string;
  health: string;
  trustDomain: string;
  logFile: string;
  /** runs the CLI against this server; resolves with stdout, rejects with stderr on non-zero exit */
  cli(args: string[], opts?: { env?: NodeJS.ProcessEnv }): Promise<string>;
  cliResult(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  logs(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * With TESSERA_TEST_DATASTORE=postgres (set by the PostgreSQL runs of the e2e
 * suites), a server gets PostgreSQL instead of SQLite: the test server of
 * TESSERA_TEST_POSTGRES_URL and a schema named after its data directory, so a
 * restart on the same directory finds the same data.
 */
async function testDatastoreConfig(dir: string): Promise<Record<string, unknown> | undefined> {
  if (process.env.TESSERA_TEST_DATASTORE !== 'postgres') return undefined;
  const url = process.env.TESSERA_TEST_POSTGRES_URL;
  if (!url) throw new Error('TESSERA_TEST_DATASTORE=postgres needs TESSERA_TEST_POSTGRES_URL');
  const schema = `e2e_${createHash('sha256').update(path.resolve(dir)).digest('hex').slice(0, 16)}`;
  await adminQuery(url, `CREATE SCHEMA IF NOT EXISTS ${schema}`);
  return { url, schema };
}

/**
 * Starts the real `tessera server run` on port 0, a temp data dir, SQLite file
 * and admin socket, and resolves once it logs `server_ready`.
 */
export async function startServerProcess(
  opts: { trustDomain?: string; config?: Record<string, unknown>; dir?: string; env?: NodeJS.ProcessEnv; wrap?: string[] } = {},
): Promise<ServerProcess> {
  const dir = opts.dir ?? shortTempDir();
  const trustDomain = opts.trustDomain ?? 'example.org';
  const datastore = await testDatastoreConfig(dir);
  const adminSocket = path.join(dir, 'admin', 'api.sock');
  const configFile = path.join(dir, 'server.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      trust_domain: trustDomain,
      data_dir: path.join(dir, 'data'),
      bind: '127.0.0.1:0',
      health_bind: '127.0.0.1:0',
      admin_socket: adminSocket,
      log_level: 'debug',
      rate_limits: { attestation_per_second: 100, signing_per_second: 10000 },
      ...(datastore && { datastore }),
      ...opts.config,
    }),
  );
  const logFile = path.join(dir, `server-${Date.now()}.log`);
  // TESSERA_TEST_NODE_ARGS: extra node flags for the server (e.g. --cpu-prof when profiling a bench)
  const nodeArgs = (process.env.TESSERA_TEST_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const { proc, logStream, ready, logs } = await spawnUntilReady<{ agent_api: string; health: string }>(
    ['server', 'run', '--config', configFile],
    { ...process.env, TESSERA_ADMIN_SOCKET: '', ...opts.env },
    logFile,
    'server_ready',
    nodeArgs,
    opts.wrap,
  );
  const cliResult = (args: string[], env?: NodeJS.ProcessEnv) =>
    execFileP(process.execPath, [TESSERA_BIN, '--admin-socket', adminSocket, ...args], { env: { ...process.env, ...env } }).then(
      (r) => {
        // Join tokens handed out: the secrets scan looks for each one in every log.
        for (const m of r.stdout.matchAll(/(?:^Token: |"token":\s*")([A-Za-z0-9_-]{32,})/gm)) knownSecret(m[1]!);
        return { code: 0, stdout: r.stdout, stderr: r.stderr };
      },
      (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }),
    );
  return {
    proc,
    dir,
    adminSocket,
    agentApi: ready.agent_api,
    health: ready.health,
    trustDomain,
    logFile,
    async cli(args, o) {
      const r = await cliResult(args, o?.env);
      if (r.code !== 0) throw new Error(`tessera ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
      return r.stdout;
    },
    cliResult: (args) => cliResult(args),
    logs,
    stop: (signal = 'SIGTERM') => stopProcess(proc, logStream, signal),
  };
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Stops the processes in order (agents before their server) and removes their directories; skips what never started. */
export async function stopAndRemove(...procs: Array<{ stop(): Promise<unknown>; dir: string } | undefined>): Promise<void> {
  for (const p of procs) await p?.stop();
  for (const p of procs) if (p) removeDir(p.dir);
}

export async function run(cmd: string, args: string[], opts: { input?: string; cwd?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c) => (stdout += c));
    p.stderr.on('data', (c) => (stderr += c));
    p.on('error', (e) => resolve({ code: -1, stdout, stderr: stderr + String(e) }));
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    // A command that exits without reading stdin (openssl often does) makes the write fail with EPIPE.
    p.stdin.on('error', () => undefined);
    p.stdin.end(opts.input ?? '');
  });
}

export interface AgentProcess {
  proc: ChildProcess;
  dir: string;
  socket: string;
  health: string;
  agentId: string;
  logFile: string;
  /** `performance.now()` when the process was spawned (after the join token and bundle were fetched) */
  spawnedAt: number;
  logs(): string;
  /** runs `tessera --output json agent api ARGS --socket <this agent's socket>`, optionally as another uid */
  cli(args: string[], opts?: { uid?: number }): Promise<{ code: number; stdout: string; stderr: string }>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts the real `tessera agent run` against `server`: a join token from the CLI
 * (with `alias` as node alias when given), the bundle from `bundle show`, a temp
 * data dir and a short socket path. Resolves once it logs `agent_ready`.
 * Pass `dir` (and no token) to restart an agent on its existing data.
 */
export async function startAgentProcess(
  server: { agentApi: string; trustDomain: string; cli(args: string[]): Promise<string> } | { agentApi: string; trustDomain: string; cli?: undefined },
  opts: { dir?: string; alias?: string; config?: Record<string, unknown>; waitReady?: boolean; join?: boolean; wrap?: string[] } = {},
): Promise<AgentProcess> {
  const dir = opts.dir ?? shortTempDir('tag-');
  // Workloads under other uids must reach the socket: mkdtemp makes 0700 dirs.
  chmodSync(dir, 0o755);
  const socket = path.join(dir, 'public', 'api.sock');
  const bundleFile = path.join(dir, 'bootstrap.pem');
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.SPIFFE_ENDPOINT_SOCKET;
  if (server.cli && opts.join !== false) {
    writeFileSync(bundleFile, await server.cli(['bundle', 'show', '--format', 'pem']));
    const out = await server.cli(['token', 'generate', ...(opts.alias ? ['--spiffe-id', opts.alias] : [])]);
    env.TESSERA_JOIN_TOKEN = /^Token: (\S+)$/m.exec(out)![1]!;
  }
  const configFile = path.join(dir, `agent-${Date.now()}.json`);
  writeFileSync(
    configFile,
    JSON.stringify({
      server_address: server.agentApi,
      trust_domain: server.trustDomain,
      trust_bundle_path: bundleFile,
      data_dir: path.join(dir, 'data'),
      socket_path: socket,
      health_bind: '127.0.0.1:0',
      log_level: 'debug',
      ...opts.config,
    }),
  );
  const logFile = path.join(dir, `agent-${Date.now()}.log`);
  const agentNodeArgs = (process.env.TESSERA_TEST_AGENT_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const { proc, logStream, ready, logs, spawnedAt } = await spawnUntilReady<{ health: string; agent_id: string }>(
    ['agent', 'run', '--config', configFile],
    env,
    logFile,
    'agent_ready',
    agentNodeArgs,
    opts.wrap,
  );
  if (opts.waitReady !== false) await waitHttp200(`http://${ready.health}/ready`, 30_000);
  return {
    proc,
    dir,
    socket,
    health: ready.health,
    agentId: ready.agent_id,
    logFile,
    spawnedAt,
    logs,
    async cli(args, o = {}) {
      const cmd = o.uid !== undefined ? 'setpriv' : process.execPath;
      const pre = o.uid !== undefined ? [`--reuid=${o.uid}`, `--regid=${o.uid}`, '--clear-groups', process.execPath] : [];
      return run(cmd, [...pre, TESSERA_BIN, '--output', 'json', 'agent', 'api', ...args, '--socket', socket]);
    },
    stop: (signal = 'SIGTERM') => stopProcess(proc, logStream, signal),
  };
}

/** Polls a URL until it answers 200 (or throws after `timeoutMs`). */
export async function waitHttp200(url: string, timeoutMs: number): Promise<void> {
  const http = await import('node:http');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await new Promise<number>((resolve) => {
      http.get(url, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on('error', () => resolve(0));
    });
    if (status === 200) return;
    if (Date.now() > deadline) throw new Error(`${url} did not answer 200 within ${timeoutMs} ms (last: ${status})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Spawns `tessera ARGS`, copies its stdout/stderr to `logFile`, and resolves with
 * the parsed JSON log line carrying `"event":"<event>"`. The process is killed if
 * that line does not come within 30 s.
 */
async function spawnUntilReady<T>(args: string[], env: NodeJS.ProcessEnv, logFile: string, event: string, nodeArgs: string[], wrap: string[] = []) {
  const logStream = createWriteStream(logFile, { flags: 'a' });
  // `wrap` runs the process under another command (prlimit, setpriv, a libfaketime env).
  const [cmd, ...pre] = [...wrap, process.execPath];
  const spawnedAt = performance.now();
  const proc = spawn(cmd!, [...pre, ...nodeArgs, TESSERA_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  proc.stdout!.pipe(logStream, { end: false });
  proc.stderr!.pipe(logStream, { end: false });
  // logs() answers from memory: the file stream writes asynchronously, so a line
  // the test has already seen on stdout (server_ready) may not be in the file yet.
  const seen: Buffer[] = [];
  proc.stdout!.on('data', (c: Buffer) => seen.push(c));
  proc.stderr!.on('data', (c: Buffer) => seen.push(c));
  const logs = (): string => Buffer.concat(seen).toString('utf8');
  proc.once('close', () => scanLog(args.slice(0, 2).join('-'), logs()));
  const ready = await new Promise<T>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`${args[0]} did not become ready in 30 s; log: ${logFile}\n${buf}`));
    }, 30_000);
    const onData = (c: Buffer) => {
      buf += c.toString();
      const line = buf.split('\n').find((l) => l.includes(`"${event}"`));
      if (!line) return;
      clearTimeout(timer);
      proc.stdout!.off('data', onData); // later output only goes to the log file
      resolve(JSON.parse(line) as T);
    };
    proc.stdout!.on('data', onData);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${args[0]} exited with ${code} before ready:\n${buf}\n${readFileSync(logFile, 'utf8')}`));
    });
  });
  return { proc, logStream, ready, logs, spawnedAt };
}

/** Sends `signal` and resolves with the exit code once the process has exited. */
function stopProcess(proc: ChildProcess, logStream: NodeJS.WritableStream, signal: NodeJS.Signals): Promise<number | null> {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resolve(proc.exitCode);
    proc.once('exit', (code) => {
      logStream.end();
      resolve(code);
    });
    proc.kill(signal);
  });
}
