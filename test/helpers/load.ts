import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { ROOT } from './processes';
import type { LoadOptions } from '../load/svid-load';

export interface LoadTotals {
  signed: number;
  failed: number;
  errors: Record<string, number>;
}

export interface LoadProcess {
  proc: ChildProcess;
  /** the latest totals the process reported */
  totals(): LoadTotals;
  /** SIGTERM; resolves with its final totals */
  stop(): Promise<LoadTotals>;
}

/** Starts a load generator process (test/load/svid-load.ts, run from dist/) and resolves once its agents are attested. */
export async function startLoad(opts: LoadOptions, timeoutMs = 60_000): Promise<LoadProcess> {
  const proc = spawn(process.execPath, [path.join(ROOT, 'dist', 'test', 'load', 'svid-load.js'), JSON.stringify(opts)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let latest: LoadTotals = { signed: 0, failed: 0, errors: {} };
  let stderr = '';
  let buf = '';
  let ready!: () => void;
  const readyP = new Promise<void>((r) => (ready = r));
  proc.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  proc.stdout!.on('data', (c: Buffer) => {
    buf += c.toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = JSON.parse(buf.slice(0, i)) as LoadTotals & { ready?: boolean };
      buf = buf.slice(i + 1);
      if (line.ready) ready();
      else latest = line;
    }
  });
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const failedEarly = exited.then((code) => {
    throw new Error(`load generator exited (${code}) before it was ready: ${stderr.slice(-2000)}`);
  });
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`load generator not ready within ${timeoutMs} ms: ${stderr}`)), timeoutMs)));
  try {
    await Promise.race([readyP, failedEarly, timedOut]);
  } catch (err) {
    proc.kill('SIGKILL');
    throw err;
  } finally {
    clearTimeout(timer);
  }
  failedEarly.catch(() => undefined);
  return {
    proc,
    totals: () => latest,
    stop: async () => {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      await exited;
      return latest;
    },
  };
}
