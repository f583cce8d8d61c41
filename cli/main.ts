import 'reflect-metadata';
import { Command, CommanderError } from 'commander';
import { AdminClient, adminSocketPath } from './admin-client';
import { stdoutOut, type OutputFormat } from './output';
import { registerEntryCommands } from './entry-commands';
import { registerAdminCommands } from './admin-commands';
import { registerAuthorityCommands } from './authority-commands';
import { registerServerCommands } from './server-commands';
import { registerAgentRunCommands } from './agent-run-commands';
import { registerAgentApiCommands } from './agent-api-commands';
import { registerFederationCommands } from './federation-commands';
import { registerHelperCommands } from './helper-commands';
import { registerOidcCommands } from './oidc-commands';
import { registerConsoleCommands } from './console-commands';

/**
 * `tessera`: one binary with the verbs SPIRE operators know (`server run`,
 * `entry create`, `token generate`, `agent list`, `bundle show`, `x509 mint`, ...).
 * Every verb but `server run` talks to the admin socket given by --admin-socket or
 * TESSERA_ADMIN_SOCKET. Returns the process exit code.
 */
export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const program = buildProgram(env);
  try {
    await program.parseAsync(argv);
    return (process.exitCode as number | undefined) ?? 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    process.stderr.write(`error: ${(e as Error).message}\n`);
    return 1;
  }
}

/** Every verb of `tessera`, registered on one commander program (also read by the README test). */
export function buildProgram(env: NodeJS.ProcessEnv = process.env): Command {
  const program = new Command('tessera')
    .description('Tessera: SPIFFE workload identity (issuer, agent and admin CLI)')
    .option('--admin-socket <PATH>', 'server admin API socket (env TESSERA_ADMIN_SOCKET)')
    .option('--output <FORMAT>', 'pretty or json', 'pretty')
    .exitOverride()
    .showHelpAfterError(false);
  const opts = () => program.opts<{ adminSocket?: string; output: string }>();
  const out = () => {
    const f = opts().output;
    if (f !== 'pretty' && f !== 'json') throw new Error(`--output must be pretty or json, not "${f}"`);
    return stdoutOut(f as OutputFormat);
  };
  const client = () => {
    const where = adminSocketPath(opts().adminSocket, env);
    return new AdminClient(where.path, { checkDir: where.isDefault });
  };

  registerServerCommands(program, env);
  registerEntryCommands(program, client, out);
  const agent = registerAdminCommands(program, client, out);
  registerAuthorityCommands(program, client, out);
  registerAgentRunCommands(agent, env, out);
  registerAgentApiCommands(agent, env, out);
  registerFederationCommands(program, client, out);
  registerHelperCommands(program, env);
  registerOidcCommands(program, client, out);
  registerConsoleCommands(program, env);
  return program;
}
