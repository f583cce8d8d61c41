import type { Logger } from '../common/log';

/**
 * Starts a long-running process part (server or agent), logs a start failure as
 * fatal, then keeps it running until SIGTERM or SIGINT and closes it cleanly.
 * A failed start has already closed what it opened (see common/closers.ts), so
 * the process exits non-zero on its own; should anything still hold the event
 * loop, it is ended after a second anyway, so a supervisor always sees the failure.
 */
export async function runUntilSignal(log: Logger, what: string, start: () => Promise<{ close(): Promise<void> }>): Promise<void> {
  let running: { close(): Promise<void> };
  try {
    running = await start();
  } catch (err) {
    log.fatal({ err }, `${what} failed to start`);
    process.exitCode = 1;
    setTimeout(() => process.exit(1), 1000).unref();
    throw err;
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'shutting down');
      void running.close().then(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
