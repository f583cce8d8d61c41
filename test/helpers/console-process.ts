import { spawn, type ChildProcess } from 'node:child_process';
import { TESSERA_BIN } from './processes';

export interface ConsoleProcess {
  proc: ChildProcess;
  /** every login URL printed so far (each works once; a new one is printed after each use) */
  urls: string[];
  /** http://host:port */
  base: string;
  stdout(): string;
  stderr(): string;
  stop(): Promise<void>;
}

/**
 * Starts the real `tessera console` against a server's admin socket on port 0
 * and resolves once it printed its first login URL (to stderr, as a person reads it).
 */
export async function startConsoleProcess(adminSocket: string, extra: string[] = []): Promise<ConsoleProcess> {
  const proc = spawn(process.execPath, [TESSERA_BIN, '--admin-socket', adminSocket, 'console', '--bind', '127.0.0.1:0', '--health-bind', '127.0.0.1:0', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const urls: string[] = [];
  proc.stdout!.on('data', (c) => (out += c));
  await new Promise<void>((resolve, reject) => {
    proc.stderr!.on('data', (c) => {
      err += c;
      for (const m of err.matchAll(/open (http:\/\/\S+)/g)) if (!urls.includes(m[1]!)) urls.push(m[1]!);
      if (urls.length) resolve();
    });
    proc.once('exit', (code) => reject(new Error(`console exited ${code}: ${err}`)));
  });
  const first = urls[0]!;
  return {
    proc,
    urls,
    base: first.slice(0, first.indexOf('/login')),
    stdout: () => out,
    stderr: () => err,
    stop: () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      }),
  };
}
