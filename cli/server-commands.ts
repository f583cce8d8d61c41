import type { Command } from 'commander';
// Loaded when the verb runs, not at CLI start: each process kind loads only its own code
// (an agent that also loaded the server's modules started ~0.3 s slower and held more memory).
import { createLogger } from '../common/log';
import { runUntilSignal } from './run-until-signal';

export function registerServerCommands(program: Command, env: NodeJS.ProcessEnv): void {
  const server = program.command('server').description('the issuer');
  server
    .command('run')
    .description('run the server (agent API, admin API, health and metrics)')
    .option('--config <FILE>', 'JSON config file (env TESSERA_CONFIG)')
    .option('--trust-domain <TD>', 'trust domain (env TESSERA_TRUST_DOMAIN)')
    .option('--data-dir <DIR>', 'data directory (env TESSERA_DATA_DIR)')
    .option('--bind <HOST:PORT>', 'agent API address (env TESSERA_BIND)')
    .option('--admin-socket <PATH>', 'admin API Unix socket (env TESSERA_ADMIN_SOCKET)')
    .option('--health-bind <HOST:PORT>', 'health and metrics address (env TESSERA_HEALTH_BIND)')
    .option('--log-level <LEVEL>', 'trace, debug, info, warn, error')
    .action(async (o, cmd: Command) => {
      // --admin-socket may be given before `server run` too.
      const adminSocket = o.adminSocket ?? cmd.parent?.parent?.opts().adminSocket;
      const { loadServerConfig } = await import('../server/config');
      const { startServer } = await import('../server/server');
      const config = loadServerConfig({ ...o, adminSocket }, env);
      const log = createLogger({ name: 'tessera-server', level: config.logLevel });
      await runUntilSignal(log, 'server', () => startServer(config, log));
    });
}
