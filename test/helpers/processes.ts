import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, createWriteStream, rmSync, readFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
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
 * Starts the real `tessera server run` on port 0, a temp data dir, SQLite file
 * and admin socket, and resolves once it logs `server_ready`.
 */
export async function startServerProcess(opts: { trustDomain?: string; config?: Record<string, unknown>; dir?: string } = {}): Promise<ServerProcess> {
  const dir = opts.dir ?? shortTempDir();
  const trustDomain = opts.trustDomain ?? 'example.org';
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
      ...opts.config,
    }),
  );
  const logFile = path.join(dir, `server-${Date.now()}.log`);
  const logStream = createWriteStream(logFile, { flags: 'a' });
  // TESSERA_TEST_NODE_ARGS: extra node flags for the server (e.g. --cpu-prof when profiling a bench)
  const nodeArgs = (process.env.TESSERA_TEST_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const proc = spawn(process.execPath, [...nodeArgs, TESSERA_BIN, 'server', 'run', '--config', configFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TESSERA_ADMIN_SOCKET: '' },
  });
  proc.stdout!.pipe(logStream, { end: false });
  proc.stderr!.pipe(logStream, { end: false });
  const ready = await new Promise<{ agent_api: string; health: string }>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`server did not become ready in 30 s; log: ${logFile}\n${buf}`)), 30_000);
    proc.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      for (const line of buf.split('\n')) {
        if (!line.includes('"server_ready"')) continue;
        clearTimeout(timer);
        resolve(JSON.parse(line) as { agent_api: string; health: string });
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before ready:\n${buf}\n${readFileSync(logFile, 'utf8')}`));
    });
  });
  const cliResult = (args: string[], env?: NodeJS.ProcessEnv) =>
    execFileP(process.execPath, [TESSERA_BIN, '--admin-socket', adminSocket, ...args], { env: { ...process.env, ...env } }).then(
      (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
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
    logs: () => readFileSync(logFile, 'utf8'),
    stop(signal = 'SIGTERM') {
      return new Promise((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve(proc.exitCode);
        proc.once('exit', (code) => {
          logStream.end();
          resolve(code);
        });
        proc.kill(signal);
      });
    },
  };
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export async function run(cmd: string, args: string[], opts: { input?: string; cwd?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c) => (stdout += c));
    p.stderr.on('data', (c) => (stderr += c));
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    p.stdin.end(opts.input ?? '');
  });
}
