import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { invalidArgument } from '../common/errors';
import { boolish, hostPort, logLevel, overlayEnv, overlayFlags, parseConfig, readConfigFile } from '../common/config/load';
import { parseSpiffeId } from '../common/spiffeid/spiffe-id';

/**
 * `tessera helper` configuration. Key names follow spiffe-helper's where the
 * meaning is the same (agent_address, cert_dir, svid_file_name, svid_key_file_name,
 * svid_bundle_file_name, jwt_svids[].jwt_audience / jwt_svid_file_name,
 * jwt_bundle_file_name, include_federated_domains, cmd, cmd_args, renew_signal,
 * pid_file_name, cert_file_mode, key_file_mode), so a SPIRE user's file mostly
 * carries over; what spiffe-helper lacks has its own keys (svid_hint, spiffe_id,
 * svid_combined_file_name, pkcs12, on_change_cmd, exit_with_cmd, once_timeout).
 * A file name may be empty to write nothing of that kind. Passwords never come
 * from the command line: `pkcs12.password_file` or `pkcs12.password_env`.
 */
const fileName = z
  .string()
  .refine((s) => s === '' || (!s.includes('/') && s !== '.' && s !== '..' && !s.startsWith('.')), 'must be a plain file name in cert_dir (no /, not hidden)');
const mode = z
  .union([z.number().int(), z.string().regex(/^0?[0-7]{3}$/, 'must be an octal mode such as 0644').transform((s) => parseInt(s, 8))])
  .refine((m) => m >= 0 && m <= 0o777 && (m & 0o002) === 0, 'must be a file mode no one else may write (e.g. 0644 or 0600)');
const signal = z.string().regex(/^SIG[A-Z0-9]+$/, 'must be a signal name such as SIGHUP');

const schema = z
  .object({
    agent_address: z.string().min(1).optional(),
    cert_dir: z.string().min(1),
    svid_hint: z.string().min(1).optional(),
    spiffe_id: z.string().min(1).optional(),
    svid_file_name: fileName.default('svid.pem'),
    svid_key_file_name: fileName.default('svid_key.pem'),
    svid_bundle_file_name: fileName.default('bundle.pem'),
    /** key (PKCS#8) then leaf and intermediates in one file, as some proxies want */
    svid_combined_file_name: fileName.default(''),
    include_federated_domains: boolish.default(false),
    jwt_svids: z
      .array(z.object({ jwt_audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]), jwt_svid_file_name: fileName.refine((s) => s !== '', 'required') }).strict())
      .default([]),
    jwt_bundle_file_name: fileName.default(''),
    /** workload identity federation: an access token per file, from a JWT-SVID exchanged at a token endpoint */
    token_exchanges: z
      .array(
        z
          .object({
            token_endpoint: z.string().url(),
            grant: z.enum(['token-exchange', 'jwt-bearer']),
            jwt_audience: z.string().min(1),
            params: z.record(z.string(), z.string()).default({}),
            access_token_file_name: fileName.refine((s) => s !== '', 'required'),
          })
          .strict(),
      )
      .default([]),
    pkcs12: z
      .object({
        keystore_file_name: fileName.default('keystore.p12'),
        truststore_file_name: fileName.default('truststore.p12'),
        password_file: z.string().min(1).optional(),
        password_env: z.string().min(1).optional(),
        alias: z.string().min(1).default('svid'),
      })
      .strict()
      .optional(),
    cert_file_mode: mode.default(0o644),
    key_file_mode: mode.default(0o600),
    /** the supervised process: started after the first complete write, signalled on each change, restarted if it exits */
    cmd: z.string().min(1).optional(),
    cmd_args: z.union([z.string(), z.array(z.string())]).optional(),
    renew_signal: signal.optional(),
    /** the helper exits when the supervised process does, with its exit code */
    exit_with_cmd: boolish.default(false),
    /** a process to signal on each change, named by a pid file read again each time */
    pid_file_name: z.string().min(1).optional(),
    /** a command run after each change (e.g. ["nginx", "-s", "reload"]) */
    on_change_cmd: z.array(z.string().min(1)).min(1).optional(),
    health_bind: hostPort.optional(),
    /** seconds `--once` waits for everything before it fails naming what is missing */
    once_timeout: z.coerce.number().positive().max(3600).default(30),
    log_level: logLevel,
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.svid_hint && c.spiffe_id) ctx.addIssue({ code: 'custom', path: ['spiffe_id'], message: 'give svid_hint or spiffe_id, not both' });
    if (c.spiffe_id) {
      try {
        parseSpiffeId(c.spiffe_id);
      } catch (e) {
        ctx.addIssue({ code: 'custom', path: ['spiffe_id'], message: (e as Error).message });
      }
    }
    if (c.pkcs12 && !c.pkcs12.password_file && !c.pkcs12.password_env) {
      ctx.addIssue({ code: 'custom', path: ['pkcs12'], message: 'needs password_file or password_env (never a password on the command line)' });
    }
    if (c.pkcs12?.password_file && c.pkcs12.password_env) ctx.addIssue({ code: 'custom', path: ['pkcs12'], message: 'give password_file or password_env, not both' });
    if (c.renew_signal && !c.cmd && !c.pid_file_name) ctx.addIssue({ code: 'custom', path: ['renew_signal'], message: 'needs cmd or pid_file_name: the process to signal' });
    if (c.pid_file_name && !c.renew_signal) ctx.addIssue({ code: 'custom', path: ['pid_file_name'], message: 'needs renew_signal' });
    if (c.exit_with_cmd && !c.cmd) ctx.addIssue({ code: 'custom', path: ['exit_with_cmd'], message: 'needs cmd' });
    const names = [c.svid_file_name, c.svid_key_file_name, c.svid_bundle_file_name, c.svid_combined_file_name, c.jwt_bundle_file_name, ...c.jwt_svids.map((j) => j.jwt_svid_file_name), ...c.token_exchanges.map((t) => t.access_token_file_name), ...(c.pkcs12 ? [c.pkcs12.keystore_file_name, c.pkcs12.truststore_file_name] : [])].filter(Boolean);
    const twice = names.find((n, i) => names.indexOf(n) !== i);
    if (twice) ctx.addIssue({ code: 'custom', path: ['cert_dir'], message: `two outputs are both named ${twice}` });
  });

export interface HelperConfig {
  agentAddress?: string;
  certDir: string;
  picker: { hint?: string; spiffeId?: string };
  x509: { certFile: string; keyFile: string; bundleFile: string; combinedFile: string; includeFederated: boolean };
  jwtSvids: Array<{ audience: string[]; file: string }>;
  jwtBundleFile: string;
  tokenExchanges: Array<{ tokenEndpoint: string; grant: 'token-exchange' | 'jwt-bearer'; audience: string; params: Record<string, string>; file: string }>;
  pkcs12?: { keystoreFile: string; truststoreFile: string; passwordFile?: string; passwordEnv?: string; alias: string };
  certFileMode: number;
  keyFileMode: number;
  cmd?: { command: string; args: string[]; exitWithCmd: boolean };
  renewSignal?: NodeJS.Signals;
  pidFile?: string;
  onChangeCmd?: string[];
  healthBind?: { host: string; port: number };
  onceTimeoutMs: number;
  logLevel: string;
}

export const HELPER_ENV: Record<string, string> = {
  SPIFFE_ENDPOINT_SOCKET: 'agent_address',
  TESSERA_HELPER_CERT_DIR: 'cert_dir',
  TESSERA_HELPER_HEALTH_BIND: 'health_bind',
  TESSERA_LOG_LEVEL: 'log_level',
};

export interface HelperFlags {
  config?: string;
  agentAddress?: string;
  certDir?: string;
  svidHint?: string;
  spiffeId?: string;
  healthBind?: string;
  logLevel?: string;
}

/** file < env < flags, validated and frozen; errors name the key. */
export function loadHelperConfig(flags: HelperFlags, env: NodeJS.ProcessEnv): HelperConfig {
  const raw = readConfigFile(flags.config ?? env.TESSERA_HELPER_CONFIG);
  overlayEnv(raw, env, HELPER_ENV);
  overlayFlags(raw, {
    agent_address: flags.agentAddress,
    cert_dir: flags.certDir,
    svid_hint: flags.svidHint,
    spiffe_id: flags.spiffeId,
    health_bind: flags.healthBind,
    log_level: flags.logLevel,
  });
  const c = parseConfig(schema, raw, 'helper');
  if (c.renew_signal && !(c.renew_signal in osConstants.signals)) {
    throw invalidArgument(`invalid helper configuration: renew_signal: ${c.renew_signal} is not a signal on this system`);
  }
  const args = c.cmd_args === undefined ? [] : Array.isArray(c.cmd_args) ? c.cmd_args : c.cmd_args.split(/\s+/).filter(Boolean);
  return Object.freeze({
    agentAddress: c.agent_address,
    certDir: path.resolve(c.cert_dir),
    picker: { hint: c.svid_hint, spiffeId: c.spiffe_id },
    x509: { certFile: c.svid_file_name, keyFile: c.svid_key_file_name, bundleFile: c.svid_bundle_file_name, combinedFile: c.svid_combined_file_name, includeFederated: c.include_federated_domains },
    jwtSvids: c.jwt_svids.map((j) => ({ audience: typeof j.jwt_audience === 'string' ? [j.jwt_audience] : [...j.jwt_audience], file: j.jwt_svid_file_name })),
    jwtBundleFile: c.jwt_bundle_file_name,
    tokenExchanges: c.token_exchanges.map((t) => ({ tokenEndpoint: t.token_endpoint, grant: t.grant, audience: t.jwt_audience, params: { ...t.params }, file: t.access_token_file_name })),
    pkcs12: c.pkcs12 && {
      keystoreFile: c.pkcs12.keystore_file_name,
      truststoreFile: c.pkcs12.truststore_file_name,
      passwordFile: c.pkcs12.password_file && path.resolve(c.pkcs12.password_file),
      passwordEnv: c.pkcs12.password_env,
      alias: c.pkcs12.alias,
    },
    certFileMode: c.cert_file_mode,
    keyFileMode: c.key_file_mode,
    cmd: c.cmd ? { command: c.cmd, args, exitWithCmd: c.exit_with_cmd } : undefined,
    renewSignal: c.renew_signal as NodeJS.Signals | undefined,
    pidFile: c.pid_file_name && path.resolve(c.pid_file_name),
    onChangeCmd: c.on_change_cmd && [...c.on_change_cmd],
    healthBind: c.health_bind,
    onceTimeoutMs: c.once_timeout * 1000,
    logLevel: c.log_level,
  });
}
