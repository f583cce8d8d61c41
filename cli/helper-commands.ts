import type { Command } from 'commander';
// Loaded when the verb runs, not at CLI start: each process kind loads only its own code
// (an agent that also loaded the server's modules started ~0.3 s slower and held more memory).
import { createLogger } from '../common/log';
import type { HelperFlags } from '../helper/config';

/**
 * `tessera helper`: spiffe-helper's job (SVIDs, bundles and JWT-SVIDs as files
 * that stay fresh, a process told when they change), for services that never
 * link an SDK: nginx, a Java service, a batch job.
 */
export function registerHelperCommands(program: Command, env: NodeJS.ProcessEnv): void {
  program
    .command('helper')
    .description('keep SVID, bundle, JWT-SVID and PKCS#12 files current in cert_dir from the Workload API')
    .option('--config <FILE>', 'JSON config file (env TESSERA_HELPER_CONFIG)')
    .option('--agent-address <ADDR>', 'Workload API address, unix:///path (env SPIFFE_ENDPOINT_SOCKET)')
    .option('--cert-dir <DIR>', 'where the files go (env TESSERA_HELPER_CERT_DIR)')
    .option('--svid-hint <HINT>', 'the SVID whose entry has this hint')
    .option('--spiffe-id <ID>', 'or: the SVID with this SPIFFE ID')
    .option('--health-bind <HOST:PORT>', '/live, /ready and /metrics (env TESSERA_HELPER_HEALTH_BIND; none by default)')
    .option('--once', 'write everything once and exit 0, or exit 1 after once_timeout naming what is missing')
    .option('--log-level <LEVEL>', 'trace, debug, info, warn, error')
    .action(async (o: HelperFlags & { once?: boolean }) => {
      const { loadHelperConfig } = await import('../helper/config');
      const { startHelper } = await import('../helper/helper');
      const config = loadHelperConfig(o, env);
      const log = createLogger({ name: 'tessera-helper', level: config.logLevel });
      let helper;
      try {
        helper = await startHelper(config, { once: Boolean(o.once), log });
      } catch (err) {
        log.fatal({ err }, 'helper failed to start');
        throw err;
      }
      const h = helper;
      const onSignal = (signal: string) => {
        log.info({ signal }, 'shutting down');
        void h.stop();
      };
      process.once('SIGTERM', onSignal);
      process.once('SIGINT', onSignal);
      process.exitCode = await h.done;
    });
}
