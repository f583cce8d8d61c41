import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import type { Logger } from 'pino';

/**
 * What the helper does after each complete write besides signalling its own
 * supervised process: send `signal` to the process whose pid is in `pidFile`
 * (read again every time: the process may have restarted), and/or run a command
 * (e.g. `nginx -s reload`). Failures are logged and counted, never fatal: the
 * files are already in place.
 */
export async function notifyChange(o: { pidFile?: string; signal?: NodeJS.Signals; command?: string[]; log: Logger; onFailure: (what: string) => void }): Promise<void> {
  if (o.pidFile && o.signal) {
    try {
      const text = (await fsp.readFile(o.pidFile, 'utf8')).trim();
      if (!/^\d{1,10}$/.test(text) || Number(text) < 2) throw new Error(`${o.pidFile} does not hold a process id`);
      process.kill(Number(text), o.signal);
      o.log.info({ event: 'helper_signalled', pid: Number(text), signal: o.signal }, 'signalled the process named by the pid file');
    } catch (e) {
      o.onFailure('signal');
      o.log.warn({ event: 'helper_signal_failed', pid_file: o.pidFile, reason: (e as Error).message }, 'could not signal the process named by the pid file');
    }
  }
  if (o.command) {
    const [cmd, ...args] = o.command;
    await new Promise<void>((resolve) =>
      execFile(cmd!, args, { timeout: 60_000 }, (err, _stdout, stderr) => {
        if (err) {
          o.onFailure('command');
          o.log.warn({ event: 'helper_on_change_failed', command: o.command, reason: err.message, stderr: String(stderr).slice(0, 500) }, 'on_change_cmd failed');
        } else o.log.info({ event: 'helper_on_change_ran', command: o.command }, 'on_change_cmd ran');
        resolve();
      }),
    );
  }
}
