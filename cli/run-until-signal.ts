import type { Logger } from '../common/log';

/**
 * Starts a long-running process part (server or agent), logs a start failure as
 * fatal, then keeps it running until SIGTERM or SIGINT and closes it cleanly.
 */
export async function runUntilSignal(log: Logger, what: string, start: () => Promise<{ close(): Promise<void> }>): Promise<void> {
  let running: { close(): Promise<void> };
  try {
    running = await start();
  } catch (err) {
    log.fatal({ err }, `${what} failed to start`);
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
