import path from 'node:path';
import { z } from 'zod';
import { invalidArgument } from '../common/errors';
import { boolish, hostPort, logLevel, overlayEnv, overlayFlags, parseConfig, readConfigFile, trustDomainField } from '../common/config/load';

import { defaultAgentSocket } from '../common/fs/runtime-paths';
import { anomalyConfig, type AnomalyConfig } from '../common/anomaly/identity-anomalies';

/** The agent's default socket for the uid it runs as: /run/tessera/... as root, else /tmp/tessera-<uid>/... */
export const DEFAULT_AGENT_SOCKET = defaultAgentSocket();

const schema = z
  .object({
    // One HOST:PORT, or several (a list in the file, comma-separated in env/flags): servers
    // of one trust domain on a shared database; the agent fails over between them.
    server_address: z.preprocess(
      (v) => (typeof v === 'string' && v.includes(',') ? v.split(',').map((s) => s.trim()).filter(Boolean) : v),
      z.union([hostPort.transform((a) => [a]), z.array(hostPort).min(1).max(16)]),
    ),
    trust_domain: trustDomainField,
    trust_bundle_path: z.string().min(1).optional(),
    trust_bundle_sha256: z
      .string()
      .transform((s) => s.toLowerCase().replace(/:/g, ''))
      .pipe(z.string().regex(/^[0-9a-f]{64}$/, 'must be the SHA-256 of a root certificate, 64 hex digits'))
      .optional(),
    join_token: z.string().min(1).optional(),
    x509pop: z.object({ cert_file: z.string().min(1), key_file: z.string().min(1) }).strict().optional(),
    data_dir: z.string().min(1).default('./.tessera/agent'),
    socket_path: z.string().min(1).max(100).default(DEFAULT_AGENT_SOCKET),
    health_bind: hostPort.default({ host: '127.0.0.1', port: 8083 }),
    log_level: logLevel,
    reattest_on_eviction: boolish.default(false),
    sync_wait: z.coerce.number().int().min(1).max(300).default(30),
    anomaly: anomalyConfig,
    workload_api: z
      .object({
        max_connections: z.coerce.number().int().min(1).max(1_000_000).default(1024),
        max_connections_per_uid: z.coerce.number().int().min(1).max(1_000_000).default(128),
        /** seconds a new connection may wait before its first call */
        first_request_timeout: z.coerce.number().positive().max(3600).default(10),
      })
      .strict()
      .default({ max_connections: 1024, max_connections_per_uid: 128, first_request_timeout: 10 }),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.trust_bundle_path && c.trust_bundle_sha256) {
      ctx.addIssue({ code: 'custom', path: ['trust_bundle_sha256'], message: 'give trust_bundle_path or trust_bundle_sha256, not both' });
    }
    if (c.workload_api.max_connections_per_uid > c.workload_api.max_connections) {
      ctx.addIssue({ code: 'custom', path: ['workload_api', 'max_connections_per_uid'], message: 'must not exceed workload_api.max_connections' });
    }
    if (c.join_token && c.x509pop) {
      ctx.addIssue({ code: 'custom', path: ['join_token'], message: 'give join_token or x509pop, not both' });
    }
  });

export interface AgentConfig {
  /** the first server address (where the agent starts) */
  serverAddress: string;
  /** every server address, in the order given; the agent moves to the next when one cannot be reached */
  serverAddresses: string[];
  trustDomain: string;
  trustBundlePath?: string;
  trustBundleSha256?: string;
  joinToken?: string;
  x509pop?: { certFile: string; keyFile: string };
  dataDir: string;
  socketPath: string;
  healthBind: { host: string; port: number };
  logLevel: string;
  reattestOnEviction: boolean;
  syncWait: number;
  workloadApi: { maxConnections: number; maxConnectionsPerUid: number; firstRequestTimeoutMs: number };
  anomaly: AnomalyConfig;
}

export const AGENT_ENV: Record<string, string> = {
  TESSERA_SERVER_ADDRESS: 'server_address',
  TESSERA_TRUST_DOMAIN: 'trust_domain',
  TESSERA_TRUST_BUNDLE: 'trust_bundle_path',
  TESSERA_TRUST_BUNDLE_SHA256: 'trust_bundle_sha256',
  // Prefer the environment (or the file) for the token: flags show up in `ps`.
  TESSERA_JOIN_TOKEN: 'join_token',
  TESSERA_AGENT_DATA_DIR: 'data_dir',
  TESSERA_AGENT_SOCKET: 'socket_path',
  TESSERA_AGENT_HEALTH_BIND: 'health_bind',
  TESSERA_LOG_LEVEL: 'log_level',
};

export interface AgentFlags {
  config?: string;
  server?: string;
  trustDomain?: string;
  trustBundle?: string;
  trustBundleSha256?: string;
  joinToken?: string;
  dataDir?: string;
  socket?: string;
  healthBind?: string;
  logLevel?: string;
}

/** file < env < flags, validated and frozen; errors name the key. */
export function loadAgentConfig(flags: AgentFlags, env: NodeJS.ProcessEnv): AgentConfig {
  const raw = readConfigFile(flags.config ?? env.TESSERA_AGENT_CONFIG);
  overlayEnv(raw, env, AGENT_ENV);
  overlayFlags(raw, {
    server_address: flags.server,
    trust_domain: flags.trustDomain,
    trust_bundle_path: flags.trustBundle,
    trust_bundle_sha256: flags.trustBundleSha256,
    join_token: flags.joinToken,
    data_dir: flags.dataDir,
    socket_path: flags.socket,
    health_bind: flags.healthBind,
    log_level: flags.logLevel,
  });
  const c = parseConfig(schema, raw, 'agent');
  const addresses = c.server_address.map((a) => `${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`);
  if (!path.isAbsolute(c.socket_path) && !c.socket_path.startsWith('.')) throw invalidArgument('socket_path must be a file path');
  return Object.freeze({
    serverAddress: addresses[0]!,
    serverAddresses: addresses,
    trustDomain: c.trust_domain,
    trustBundlePath: c.trust_bundle_path && path.resolve(c.trust_bundle_path),
    trustBundleSha256: c.trust_bundle_sha256,
    joinToken: c.join_token,
    x509pop: c.x509pop && { certFile: path.resolve(c.x509pop.cert_file), keyFile: path.resolve(c.x509pop.key_file) },
    dataDir: path.resolve(c.data_dir),
    socketPath: path.resolve(c.socket_path),
    healthBind: c.health_bind,
    logLevel: c.log_level,
    reattestOnEviction: c.reattest_on_eviction,
    syncWait: c.sync_wait,
    anomaly: c.anomaly,
    workloadApi: {
      maxConnections: c.workload_api.max_connections,
      maxConnectionsPerUid: c.workload_api.max_connections_per_uid,
      firstRequestTimeoutMs: c.workload_api.first_request_timeout * 1000,
    },
  });
}
