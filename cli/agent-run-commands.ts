import type { Command } from 'commander';
// Loaded when the verb runs, not at CLI start: each process kind loads only its own code
// (an agent that also loaded the server's modules started ~0.3 s slower and held more memory).
import http from 'node:http';
import { createLogger } from '../common/log';
import { runUntilSignal } from './run-until-signal';
import { json, type Out } from './output';

/** `tessera agent run` and `tessera agent healthcheck`, added to the `agent` command. */
export function registerAgentRunCommands(agent: Command, env: NodeJS.ProcessEnv, out: () => Out): void {
  agent
    .command('run')
    .description('run the node agent (Workload API on a Unix socket)')
    .option('--config <FILE>', 'JSON config file (env TESSERA_AGENT_CONFIG)')
    .option('--server <HOST:PORT>', 'server agent API address (env TESSERA_SERVER_ADDRESS)')
    .option('--trust-domain <TD>', 'trust domain (env TESSERA_TRUST_DOMAIN)')
    .option('--trust-bundle <FILE>', 'PEM bundle to bootstrap trust in the server (env TESSERA_TRUST_BUNDLE)')
    .option('--trust-bundle-sha256 <HEX>', 'or: SHA-256 of a root to pin when fetching the bundle from the server')
    .option('--join-token <T>', 'join token (prefer env TESSERA_JOIN_TOKEN: flags show in ps)')
    .option('--data-dir <DIR>', 'data directory (env TESSERA_AGENT_DATA_DIR)')
    .option('--socket <PATH>', 'Workload API socket (env TESSERA_AGENT_SOCKET)')
    .option('--health-bind <HOST:PORT>', 'health and metrics address (env TESSERA_AGENT_HEALTH_BIND)')
    .option('--log-level <LEVEL>', 'trace, debug, info, warn, error')
    .action(async (o) => {
      const { loadAgentConfig } = await import('../agent/config');
      const { startAgent } = await import('../agent/agent');
      const config = loadAgentConfig(o, env);
      const log = createLogger({ name: 'tessera-agent', level: config.logLevel });
      await runUntilSignal(log, 'agent', () => startAgent(config, log));
    });

  agent
    .command('healthcheck')
    .description('check that the agent is up and has synced (exit 0) or not (exit 1)')
    .option('--health-addr <HOST:PORT>', 'the agent health address', env.TESSERA_AGENT_HEALTH_BIND ?? '127.0.0.1:8083')
    .option('--shallow', 'only check that the agent answers')
    .action(async (o) => {
      const status = await new Promise<number>((resolve) => {
        http
          .get(`http://${o.healthAddr}${o.shallow ? '/live' : '/ready'}`, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          })
          .on('error', () => resolve(0));
      });
      const ok = status === 200;
      if (out().format === 'json') json(out(), { healthy: ok });
      else out().write(ok ? 'Agent is healthy.\n' : `Agent is unhealthy (${status || 'unreachable'}).\n`);
      if (!ok) process.exitCode = 1;
    });
}
