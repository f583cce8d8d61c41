import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { anomalyConfig, type AnomalyConfig } from '../common/anomaly/identity-anomalies';
import { boolish, hostPort, logLevel, overlayEnv, overlayFlags, parseConfig, readConfigFile, trustDomainField, seconds } from '../common/config/load';
import { defaultRotationInterval } from './ca/rotation';
import { defaultAdminSocket } from '../common/fs/runtime-paths';

/**
 * Server configuration. The file is JSON with snake_case keys (the names below);
 * env variables and flags override it. See README "Server configuration".
 */
const keyType = z.enum(['ec-p256', 'ec-p384', 'rsa-2048']);
const profile = z.enum(['https_web', 'https_spiffe']);

const schema = z
  .object({
    trust_domain: trustDomainField,
    data_dir: z.string().min(1).default('./.tessera/server'),
    bind: hostPort.default({ host: '0.0.0.0', port: 8081 }),
    admin_socket: z.string().min(1).max(100).default(() => defaultAdminSocket()),
    health_bind: hostPort.default({ host: '127.0.0.1', port: 8082 }),
    log_level: logLevel,
    key_manager: z.enum(['disk', 'memory']).default('disk'),
    datastore: z
      .object({
        /** SQLite file (the default store), relative to data_dir */
        path: z.string().min(1).optional(),
        /** postgresql://... : use PostgreSQL instead of SQLite (also TESSERA_DATASTORE_URL) */
        url: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgresql:// url').optional(),
        pool_size: z.coerce.number().int().min(1).max(200).default(10),
        /** seconds; PostgreSQL's statement_timeout for every statement */
        statement_timeout: z.coerce.number().positive().max(600).default(5),
        /** seconds to get or open a connection */
        connect_timeout: z.coerce.number().positive().max(600).default(5),
        /** the PostgreSQL schema (search_path) of Tessera's tables; default the database's own */
        schema: z.string().regex(/^[a-z_][a-z0-9_]*$/).optional(),
      })
      .default({ pool_size: 10, statement_timeout: 5, connect_timeout: 5 }),
    ca: z
      .object({
        key_type: keyType.default('ec-p256'),
        ttl: seconds(24 * 3600),
        organization: z.string().min(1).max(64).default('Tessera'),
        /** seconds between key rotation checks (fractions allowed); default min(ttl / 60, 10) */
        rotation_interval: z.coerce.number().positive().max(3600).optional(),
        /** worker threads that verify CSRs and sign agent batches; 0 = on the main thread; default one per core */
        signing_workers: z.coerce.number().int().min(0).max(64).optional(),
      })
      .default({ key_type: 'ec-p256', ttl: 24 * 3600, organization: 'Tessera' }),
    jwt: z
      .object({
        key_type: keyType.default('ec-p256'),
        issuer: z.string().url().optional(),
        /** new entries (and updates) must carry jwt_audiences */
        require_audience_allowlist: boolish.default(false),
      })
      .default({ key_type: 'ec-p256', require_audience_allowlist: false }),
    default_x509_svid_ttl: seconds(3600),
    default_jwt_svid_ttl: seconds(300),
    agent_svid_ttl: seconds(3600),
    join_token_ttl: seconds(600),
    bundle_refresh_hint: seconds(300),
    upstream_authority: z
      .object({
        type: z.literal('disk'),
        cert_file: z.string().min(1),
        key_file: z.string().min(1),
        /** roots of the upstream PKI; defaults to cert_file when that is self-signed */
        bundle_file: z.string().min(1).optional(),
      })
      .optional(),
    node_attestors: z
      .object({
        join_token: boolish.default(true),
        x509pop: z.object({ ca_bundle_file: z.string().min(1) }).optional(),
      })
      .default({ join_token: true }),
    anomaly: anomalyConfig,
    rate_limits: z
      .object({
        attestation_per_second: z.coerce.number().positive().default(1),
        signing_per_second: z.coerce.number().positive().default(500),
      })
      .default({ attestation_per_second: 1, signing_per_second: 500 }),
    agent_sync_max_wait: seconds(30),
    /** limits of the agent API listener, which anyone who can reach `bind` may connect to */
    agent_api: z
      .object({
        max_connections: z.coerce.number().int().min(1).max(1_000_000).default(4096),
        max_connections_per_ip: z.coerce.number().int().min(1).max(1_000_000).default(256),
        /** seconds a new connection has for its TLS handshake and first request */
        first_request_timeout: z.coerce.number().positive().max(3600).default(10),
      })
      .strict()
      .default({ max_connections: 4096, max_connections_per_ip: 256, first_request_timeout: 10 }),
    // --- federation and OIDC discovery (issue #4) ---
    federation: z
      .object({
        bundle_endpoint: z
          .object({
            bind: hostPort,
            profile: profile.default('https_spiffe'),
            /** https_web only: the serving certificate chain and key (PEM) */
            cert_file: z.string().min(1).optional(),
            key_file: z.string().min(1).optional(),
          })
          .strict()
          .optional(),
        /** extra roots (PEM) trusted for https_web endpoints besides Node's default CAs */
        web_ca_file: z.string().min(1).optional(),
        /** floor of the polling interval whatever a foreign bundle's refresh hint says */
        min_refresh_hint: seconds(30),
        /** longest a whole bundle fetch may take, seconds */
        fetch_timeout: z.coerce.number().positive().max(600).default(30),
        /** relationships created (or brought up to date) at start, keyed by foreign trust domain */
        federates_with: z
          .record(
            z.string(),
            z
              .object({
                bundle_endpoint_url: z.string().min(1),
                profile,
                endpoint_spiffe_id: z.string().min(1).optional(),
                /** bootstrap bundle (SPIFFE JSON), stored only when none is stored yet */
                bundle_file: z.string().min(1).optional(),
              })
              .strict(),
          )
          .default({}),
      })
      .strict()
      .optional(),
    oidc: z
      .object({
        bind: hostPort,
        issuer: z.string().url(),
        /** serve HTTPS with these (PEM); without them HTTP, for tests or behind a TLS proxy */
        cert_file: z.string().min(1).optional(),
        key_file: z.string().min(1).optional(),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    const be = c.federation?.bundle_endpoint;
    if (be && (be.profile === 'https_web') !== !!(be.cert_file && be.key_file)) {
      const message = be.profile === 'https_web' ? 'https_web needs cert_file and key_file' : 'https_spiffe serves the server SVID; remove cert_file and key_file';
      ctx.addIssue({ code: 'custom', path: ['federation', 'bundle_endpoint'], message });
    }
    if (c.oidc && !!c.oidc.cert_file !== !!c.oidc.key_file) {
      ctx.addIssue({ code: 'custom', path: ['oidc'], message: 'give both cert_file and key_file, or neither' });
    }
    // The discovery document's issuer must be the `iss` of every JWT-SVID, or relying parties reject them.
    if (c.oidc && c.jwt.issuer !== undefined && c.jwt.issuer !== c.oidc.issuer) {
      ctx.addIssue({ code: 'custom', path: ['jwt', 'issuer'], message: `must equal oidc.issuer (${c.oidc.issuer}) or be left out` });
    }
    // SPIRE's hasCompatibleTTL: SVIDs longer than CA TTL / 6 get cut short near rotation.
    if (c.agent_api.max_connections_per_ip > c.agent_api.max_connections) {
      ctx.addIssue({ code: 'custom', path: ['agent_api', 'max_connections_per_ip'], message: 'must not exceed agent_api.max_connections' });
    }
    if (c.default_x509_svid_ttl > c.ca.ttl) {
      ctx.addIssue({ code: 'custom', path: ['default_x509_svid_ttl'], message: `must not exceed ca.ttl (${c.ca.ttl}s)` });
    }
  });

export type ServerFileConfig = z.output<typeof schema>;

export interface ServerConfig {
  trustDomain: string;
  dataDir: string;
  bind: { host: string; port: number };
  adminSocket: string;
  healthBind: { host: string; port: number };
  logLevel: string;
  keyManager: 'disk' | 'memory';
  /** SQLite file (always set: the default) */
  datastorePath: string;
  /** set when the datastore is PostgreSQL (datastore.url or TESSERA_DATASTORE_URL) */
  postgres?: { url: string; poolSize: number; statementTimeoutMs: number; connectTimeoutMs: number; schema?: string };
  /** rotationInterval: seconds between key rotation checks */
  ca: { keyType: 'ec-p256' | 'ec-p384' | 'rsa-2048'; ttl: number; organization: string; rotationInterval: number; signingWorkers: number };
  jwt: { keyType: 'ec-p256' | 'ec-p384' | 'rsa-2048'; issuer?: string; requireAudienceAllowlist: boolean };
  defaultX509SvidTtl: number;
  defaultJwtSvidTtl: number;
  agentSvidTtl: number;
  joinTokenTtl: number;
  bundleRefreshHint: number;
  upstreamAuthority?: { type: 'disk'; certFile: string; keyFile: string; bundleFile?: string };
  nodeAttestors: { joinToken: boolean; x509pop?: { caBundleFile: string } };
  rateLimits: { attestationPerSecond: number; signingPerSecond: number };
  anomaly: AnomalyConfig;
  agentSyncMaxWait: number;
  agentApi: { maxConnections: number; maxConnectionsPerIp: number; firstRequestTimeoutMs: number };
  /** issue #4; absent when the file has no `federation` section */
  federation?: {
    bundleEndpoint?: { bind: { host: string; port: number }; profile: 'https_web' | 'https_spiffe'; certFile?: string; keyFile?: string };
    webCaFile?: string;
    minRefreshHint: number;
    /** overall deadline of one bundle fetch, ms */
    fetchTimeoutMs: number;
    relationships: Array<{ trustDomain: string; bundleEndpointUrl: string; profile: 'https_web' | 'https_spiffe'; endpointSpiffeId?: string; bundleFile?: string }>;
  };
  /** issue #4: OIDC discovery listener; jwt.issuer is set to oidc.issuer */
  oidc?: { bind: { host: string; port: number }; issuer: string; certFile?: string; keyFile?: string };
  /** non-fatal findings (e.g. TTLs that will be truncated), logged at start */
  warnings: string[];
}

/** Environment variables the server reads (nothing else reads process.env). */
export const SERVER_ENV: Record<string, string> = {
  TESSERA_TRUST_DOMAIN: 'trust_domain',
  TESSERA_DATA_DIR: 'data_dir',
  TESSERA_BIND: 'bind',
  TESSERA_ADMIN_SOCKET: 'admin_socket',
  TESSERA_HEALTH_BIND: 'health_bind',
  TESSERA_LOG_LEVEL: 'log_level',
  TESSERA_KEY_MANAGER: 'key_manager',
  TESSERA_DATASTORE_URL: 'datastore.url',
};

export interface ServerFlags {
  config?: string;
  trustDomain?: string;
  dataDir?: string;
  bind?: string;
  adminSocket?: string;
  healthBind?: string;
  logLevel?: string;
}

/** file < env < flags, validated, frozen. Throws INVALID_ARGUMENT naming the key. */
export function loadServerConfig(flags: ServerFlags, env: NodeJS.ProcessEnv): ServerConfig {
  const raw = readConfigFile(flags.config ?? env.TESSERA_CONFIG);
  overlayEnv(raw, env, SERVER_ENV);
  overlayFlags(raw, {
    trust_domain: flags.trustDomain,
    data_dir: flags.dataDir,
    bind: flags.bind,
    admin_socket: flags.adminSocket,
    health_bind: flags.healthBind,
    log_level: flags.logLevel,
  });
  if (raw.trust_domain === undefined) raw.trust_domain = undefined; // reported as "trust_domain: ..." below
  const c = parseConfig(schema, raw, 'server');
  const dataDir = path.resolve(c.data_dir);
  const warnings: string[] = [];
  const maxUntruncated = Math.floor(c.ca.ttl / 6);
  if (c.default_x509_svid_ttl > maxUntruncated) {
    warnings.push(
      `default_x509_svid_ttl (${c.default_x509_svid_ttl}s) exceeds ca.ttl / 6 (${maxUntruncated}s): SVIDs minted late in a CA's life will be cut short at its expiry`,
    );
  }
  if (c.oidc?.issuer.startsWith('http:')) {
    warnings.push(`oidc.issuer ${c.oidc.issuer} is http: cloud providers and most relying parties require an https issuer`);
  }
  return Object.freeze({
    trustDomain: c.trust_domain,
    dataDir,
    bind: c.bind,
    adminSocket: path.resolve(c.admin_socket),
    healthBind: c.health_bind,
    logLevel: c.log_level,
    keyManager: c.key_manager,
    datastorePath: path.resolve(dataDir, c.datastore.path ?? 'datastore.sqlite3'),
    postgres: c.datastore.url
      ? {
          url: c.datastore.url,
          poolSize: c.datastore.pool_size,
          statementTimeoutMs: Math.round(c.datastore.statement_timeout * 1000),
          connectTimeoutMs: Math.round(c.datastore.connect_timeout * 1000),
          schema: c.datastore.schema,
        }
      : undefined,
    ca: {
      keyType: c.ca.key_type,
      ttl: c.ca.ttl,
      organization: c.ca.organization,
      rotationInterval: c.ca.rotation_interval ?? defaultRotationInterval(c.ca.ttl),
      // one worker per core; on a single core the main thread signs (a worker would only add a message hop)
      signingWorkers: c.ca.signing_workers ?? (os.availableParallelism() >= 2 ? os.availableParallelism() : 0),
    },
    jwt: { keyType: c.jwt.key_type, issuer: c.jwt.issuer ?? c.oidc?.issuer, requireAudienceAllowlist: c.jwt.require_audience_allowlist },
    defaultX509SvidTtl: c.default_x509_svid_ttl,
    defaultJwtSvidTtl: c.default_jwt_svid_ttl,
    agentSvidTtl: c.agent_svid_ttl,
    joinTokenTtl: c.join_token_ttl,
    bundleRefreshHint: c.bundle_refresh_hint,
    upstreamAuthority: c.upstream_authority && {
      type: 'disk' as const,
      certFile: path.resolve(c.upstream_authority.cert_file),
      keyFile: path.resolve(c.upstream_authority.key_file),
      bundleFile: c.upstream_authority.bundle_file && path.resolve(c.upstream_authority.bundle_file),
    },
    nodeAttestors: {
      joinToken: c.node_attestors.join_token,
      x509pop: c.node_attestors.x509pop && { caBundleFile: path.resolve(c.node_attestors.x509pop.ca_bundle_file) },
    },
    anomaly: c.anomaly,
    rateLimits: {
      attestationPerSecond: c.rate_limits.attestation_per_second,
      signingPerSecond: c.rate_limits.signing_per_second,
    },
    agentSyncMaxWait: c.agent_sync_max_wait,
    agentApi: {
      maxConnections: c.agent_api.max_connections,
      maxConnectionsPerIp: c.agent_api.max_connections_per_ip,
      firstRequestTimeoutMs: c.agent_api.first_request_timeout * 1000,
    },
    federation: c.federation && federationConfig(c.federation),
    oidc: c.oidc && {
      bind: c.oidc.bind,
      issuer: c.oidc.issuer,
      certFile: c.oidc.cert_file && path.resolve(c.oidc.cert_file),
      keyFile: c.oidc.key_file && path.resolve(c.oidc.key_file),
    },
    warnings,
  });
}

function federationConfig(f: NonNullable<ServerFileConfig['federation']>): NonNullable<ServerConfig['federation']> {
  const be = f.bundle_endpoint;
  return {
    bundleEndpoint: be && {
      bind: be.bind,
      profile: be.profile,
      certFile: be.cert_file && path.resolve(be.cert_file),
      keyFile: be.key_file && path.resolve(be.key_file),
    },
    webCaFile: f.web_ca_file && path.resolve(f.web_ca_file),
    minRefreshHint: f.min_refresh_hint,
    fetchTimeoutMs: f.fetch_timeout * 1000,
    // Trust domains and URLs are checked at start by the same code as the admin API's.
    relationships: Object.entries(f.federates_with).map(([trustDomain, r]) => ({
      trustDomain,
      bundleEndpointUrl: r.bundle_endpoint_url,
      profile: r.profile,
      endpointSpiffeId: r.endpoint_spiffe_id,
      bundleFile: r.bundle_file && path.resolve(r.bundle_file),
    })),
  };
}
