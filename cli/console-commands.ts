import type { Command } from 'commander';
import { createLogger } from '../common/log';
import { hostPort } from '../common/config/load';
import { adminSocketPath } from './admin-client';
import { runUntilSignal } from './run-until-signal';

/** `tessera console`: the operators' web console (console/console.ts) on the admin socket. */
export function registerConsoleCommands(program: Command, env: NodeJS.ProcessEnv): void {
  program
    .command('console')
    .description('serve the web console on loopback; prints a one-time login URL')
    .option('--bind <HOST:PORT>', 'address of the console (env TESSERA_CONSOLE_BIND)', env.TESSERA_CONSOLE_BIND || '127.0.0.1:8090')
    .option('--allow-remote', 'allow a non-loopback --bind (plain HTTP: put TLS in front)', false)
    .option('--health-bind <HOST:PORT>', 'health and metrics address (env TESSERA_CONSOLE_HEALTH_BIND)', env.TESSERA_CONSOLE_HEALTH_BIND || '127.0.0.1:8091')
    .option('--log-level <LEVEL>', 'trace, debug, info, warn, error', 'info')
    .action(async (o: { bind: string; allowRemote: boolean; healthBind: string; logLevel: string }) => {
      const parse = (v: string, flag: string) => {
        const r = hostPort.safeParse(v);
        if (!r.success) throw new Error(`${flag} ${v}: ${r.error.issues[0]?.message}`);
        return r.data;
      };
      const bind = parse(o.bind, '--bind');
      const health = parse(o.healthBind, '--health-bind');
      const where = adminSocketPath(program.opts<{ adminSocket?: string }>().adminSocket, env);
      const log = createLogger({ name: 'tessera-console', level: o.logLevel });
      const { startConsole } = await import('../console/console');
      await runUntilSignal(log, 'console', () =>
        startConsole({
          adminSocket: where.path,
          bind,
          allowRemote: o.allowRemote,
          health,
          log,
          // The login URL is a credential: to the terminal (stderr), never into the JSON log.
          onLoginUrl: (url) => process.stderr.write(`Tessera console: open ${url}\n  (this link works once; a new one is printed after each use)\n`),
        }),
      );
    });
}
