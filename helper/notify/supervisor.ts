import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { Backoff } from '../../common/backoff';

/** A child that ran this long before exiting counts as healthy: the backoff starts over. */
const HEALTHY_MS = 10_000;

/**
 * The supervised process (`cmd` + `cmd_args`), spiffe-helper's `cmd` with what it
 * lacks: it is started only after the first complete write (so it never starts
 * without its certificates), it gets `renew_signal` after every later write, and
 * when it exits it is started again after a backoff with full jitter (200 ms
 * doubling to 30 s, reset after it ran 10 s); with `exitWithCmd` the helper ends
 * instead, with the child's exit code (for containers). Its stdio is the helper's.
 * Emits `exit` (code, signal) for each exit and `spawn` (pid) for each start.
 */
export class Supervisor extends EventEmitter {
  private child?: ChildProcess;
  private startedAt = 0;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private readonly backoff = new Backoff({ baseMs: 200, capMs: 30_000 });

  constructor(
    private readonly o: { command: string; args: string[]; exitWithCmd: boolean; log: Logger; onRestart: () => void; now?: () => number },
  ) {
    super();
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(): void {
    if (this.child || this.stopped || this.timer) return;
    const now = this.o.now ?? Date.now;
    const child = spawn(this.o.command, this.o.args, { stdio: 'inherit' });
    this.child = child;
    this.startedAt = now();
    child.once('spawn', () => {
      this.o.log.info({ event: 'helper_cmd_started', pid: child.pid, command: this.o.command }, 'supervised command started');
      this.emit('spawn', child.pid);
    });
    child.once('error', (e) => this.o.log.error({ event: 'helper_cmd_error', command: this.o.command, reason: e.message }, 'supervised command could not start'));
    child.once('close', (code, signal) => {
      this.child = undefined;
      this.emit('exit', code, signal);
      if (this.stopped) return;
      if (this.o.exitWithCmd) {
        this.o.log.info({ event: 'helper_cmd_exited', code, signal }, 'supervised command exited; the helper exits with it');
        return;
      }
      if (now() - this.startedAt >= HEALTHY_MS) this.backoff.reset();
      const delay = this.backoff.next();
      this.o.log.warn({ event: 'helper_cmd_exited', code, signal, restart_in_ms: Math.round(delay) }, 'supervised command exited; restarting');
      this.o.onRestart();
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.start();
      }, delay);
    });
  }

  /** Sends the renew signal to the child, if it runs. */
  signal(sig: NodeJS.Signals): void {
    if (!this.child?.pid) return;
    try {
      this.child.kill(sig);
      this.o.log.info({ event: 'helper_signalled', pid: this.child.pid, signal: sig }, 'signalled the supervised command');
    } catch (e) {
      this.o.log.warn({ event: 'helper_signal_failed', reason: (e as Error).message }, 'could not signal the supervised command');
    }
  }

  /** Stops restarting and ends the child (SIGTERM), resolving when it is gone. */
  stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    const c = this.child;
    if (!c || c.exitCode !== null) return Promise.resolve();
    return new Promise((r) => {
      c.once('close', () => r());
      c.kill('SIGTERM');
    });
  }
}
