import 'reflect-metadata';
import { IdentityAnomalies } from '../common/anomaly/identity-anomalies';
import { chmodSync, lstatSync, unlinkSync, readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import path from 'node:path';
import https from 'node:https';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type { Logger } from '../common/log';
import { subsystem, F, withAuditSink } from '../common/log';
import { AuditHub } from './audit/audit-hub';
import { auditRouter } from './api/admin/audit';
import { overviewRouter } from './api/admin/overview';
import { x509AuthoritiesFromPem } from '../common/bundle/bundle';
import type { ServerConfig } from './config';
import { systemClock, unixNow, type Clock } from '../common/clock';
import { openDataStore } from './datastore/open';
import { ServerSVID } from './ca/server-svid';
import { startPruner } from './housekeeping/pruner';
import { startHealthServer } from '../common/health/health-server';
import { loadInstanceId } from './instance/instance-id';
import { SigningPool } from './ca/signing/pool';
import { X509Issuance } from './issuance/x509-issuance';
import { DatastoreHealth } from './datastore/health';
import type { DataStore } from './datastore/datastore';
import type { KeyManager } from './keymanager/keymanager';
import { MemoryKeyManager } from './keymanager/memory';
import { DiskKeyManager } from './keymanager/disk';
import { CAManager, defaultPruneGrace } from './ca/ca-manager';
import { SVIDLedger } from './ca/svid-ledger'; // issue #4: key rotation
import { authorityApi } from './api/authority-api';
import { DiskUpstreamAuthority } from './ca/upstream-disk';
import { JoinTokenAttestor } from './attestor/node/join-token';
import { X509PopAttestor } from './attestor/node/x509pop';
import type { NodeAttestor } from './attestor/node/node-attestor';
import { NodeService } from './agents/node-service';
import { EntryAuthorizer } from './registration/authorizer';
import { ChangeFeed } from './registration/change-feed';
import { agentApi } from './api/agent-api';
import { adminApi } from './api/admin';
import { createServerMetrics } from './telemetry';
// issue #4: federation and OIDC discovery
import { startFederation, type Federation } from './federation/federation';
import { federationApi } from './api/federation-api';
import { startOIDCDiscovery } from './oidc/discovery';
import { Closers } from '../common/closers';
import { ensureTrustedDir } from '../common/fs/trusted-dir';
import { ConnectionLimits } from '../common/net/connection-limits';
import { TLS_OPTIONS } from '../common/tls';
import { failedPrecondition } from '../common/errors';
import type { TLSSocket } from 'node:tls';

export const SERVER_PATH = '/tessera/server';

export interface RunningServer {
  agentApi: AddressInfo;
  health: AddressInfo;
  adminSocket: string;
  /** issue #4: set when federation.bundle_endpoint / oidc are configured */
  bundleEndpoint?: AddressInfo;
  oidc?: AddressInfo;
  store: DataStore;
  ca: CAManager;
  close(): Promise<void>;
}

/**
 * Wires the issuer (SPIRE's server.go): datastore, key manager, CA, attestors and
 * the three listeners — the agent API (HTTPS, mTLS, on `bind`), the admin API (HTTP
 * on a Unix socket in a 0750 directory) and health/metrics (HTTP on `health_bind`).
 * A failed start closes whatever it had opened, so the process exits.
 */
export async function startServer(config: ServerConfig, rootLog: Logger, clock: Clock = systemClock): Promise<RunningServer> {
  const opened = new Closers();
  try {
    return await start(config, rootLog, opened, clock);
  } catch (e) {
    await opened.closeAll();
    throw e;
  }
}

async function start(config: ServerConfig, callerLog: Logger, opened: Closers, clock: Clock): Promise<RunningServer> {
  // Every audit line of this server also goes to its audit tail (admin API /v1/audit/...).
  const auditHub = new AuditHub({ nowMs: () => clock.now().getTime() });
  const rootLog = withAuditSink(callerLog, auditHub.record);
  const log = subsystem(rootLog, 'server');
  // The one clock of the process: Unix seconds for stored times, ms for anomalies, monotonic ms for deadlines.
  const now = () => unixNow(clock);
  const monotonicMs = clock.monotonic ? () => clock.monotonic!() : () => performance.now();
  for (const w of config.warnings) log.warn(w);
  // Before anything is read from it: a directory someone else made could hold their CA key as ours.
  ensureTrustedDir(config.dataDir, { mode: 0o700, what: 'server data directory' });

  const datastore = await openDataStore(config, subsystem(rootLog, 'datastore'), now);
  const instanceId = await loadInstanceId(config.dataDir);
  const store = opened.add(datastore.store, (s) => s.close());
  const storeHealth = opened.add(new DatastoreHealth(datastore.ping, subsystem(rootLog, 'datastore')).start(), (h) => h.stop());
  const keyManager: KeyManager =
    config.keyManager === 'disk' ? await DiskKeyManager.open(path.join(config.dataDir, 'keys')) : new MemoryKeyManager();
  const upstream = config.upstreamAuthority ? new DiskUpstreamAuthority(config.upstreamAuthority, now) : undefined;
  const metrics = createServerMetrics({ countEntries: () => store.countRegistrationEntries() });
  const ca = await CAManager.start({
    config: {
      trustDomain: config.trustDomain,
      caKeyType: config.ca.keyType,
      caTtl: config.ca.ttl,
      organization: config.ca.organization,
      jwtKeyType: config.jwt.keyType,
      jwtIssuer: config.jwt.issuer,
      refreshHint: config.bundleRefreshHint,
    },
    keyManager,
    store,
    log: subsystem(rootLog, 'ca'),
    upstream,
    pruneGraceSeconds: defaultPruneGrace(config.ca.ttl),
    onClockJump: () => metrics.clockJumps.inc(),
    clock,
    instanceId,
  });
  opened.add(ca, (c) => c.stop());
  // issue #4: rotate keys on a timer; record each SVID's signer (what a tainted key's revoke waits for)
  ca.startRotation(config.ca.rotationInterval);
  const ledger = new SVIDLedger({ store, now });
  // Agent batches are verified and signed on worker threads, one per core by default (ca.signing_workers).
  const pool = config.ca.signingWorkers > 0 ? opened.add(SigningPool.start({ size: config.ca.signingWorkers, log: subsystem(rootLog, 'ca') }), (p) => p.close()) : undefined;
  const issuance = new X509Issuance({ ca, defaultTtl: config.defaultX509SvidTtl, pool, ledger });
  const caGauges = () => {
    metrics.caExpiry.set({ kind: 'x509' }, ca.x509NotAfter());
    metrics.caExpiry.set({ kind: 'jwt' }, ca.jwtNotAfter());
  };
  caGauges();

  const attestors = new Map<string, NodeAttestor>();
  if (config.nodeAttestors.joinToken) attestors.set('join_token', new JoinTokenAttestor(store, config.trustDomain, now));
  if (config.nodeAttestors.x509pop) {
    const roots = x509AuthoritiesFromPem(readFileSync(config.nodeAttestors.x509pop.caBundleFile, 'utf8')).map((d) => new X509Certificate(d));
    attestors.set('x509pop', new X509PopAttestor(roots, config.trustDomain, () => clock.now()));
  }
  const changes = new ChangeFeed();
  ca.onBundleChange(() => changes.notify());
  // The database went away: wake every held long poll. Each then fails its next store read
  // and answers 503, so an agent given several servers moves to another one now, not when
  // its poll would have ended (agent_sync_max_wait), while this one cannot see changes.
  storeHealth.onChange((reachable) => {
    if (!reachable) changes.notify();
  });
  // Several servers on one database: what another server wrote wakes this server's long
  // polls (entries, bans) and re-reads the shared bundle (another server's new key).
  const unsubscribe = store.subscribe?.((what) => {
    if (what !== 'bundle') changes.notify();
    if (what === 'bundle' || what === 'all') void ca.publishBundle().catch((err) => log.warn({ err: { message: (err as Error).message } }, 'bundle refresh after a datastore change failed'));
  });
  const serverId = `spiffe://${config.trustDomain}${SERVER_PATH}`;
  const authorizer = new EntryAuthorizer(store, serverId, now);
  const nodes = new NodeService({ store, ca, attestors, agentSvidTtl: config.agentSvidTtl, log: subsystem(rootLog, 'node_attestation'), metrics, now, monotonicMs, ledger });

  // --- agent API: HTTPS with our own SVID; client certs verified against the bundle ---
  let federation: Federation | undefined; // started below
  const serverSvid = opened.add(
    await ServerSVID.start({
      ca,
      spiffeId: serverId,
      ttl: config.defaultX509SvidTtl,
      now,
      log,
      onRotate: (t) => {
        agentServer.setSecureContext({ key: t.key.export({ format: 'pem', type: 'pkcs8' }), cert: t.cert, ca: t.ca, ...TLS_OPTIONS } as never);
        federation?.serverSvidRotated(); // an https_spiffe bundle endpoint serves the server SVID
      },
    }),
    (s) => s.stop(),
  );
  const tls = serverSvid.current();
  const agentApp = express();
  agentApp.disable('x-powered-by');
  // Agent API answers are never cached or revalidated; an ETag would hash every
  // response body (SHA-1 over ~0.5 MB for a batch of 500 SVIDs) for nothing.
  agentApp.disable('etag');
  agentApp.use(
    agentApi({
      trustDomain: config.trustDomain,
      store,
      ca,
      nodes,
      authorizer,
      changes,
      log: subsystem(rootLog, 'agent_api'),
      metrics,
      defaultX509SvidTtl: config.defaultX509SvidTtl,
      defaultJwtSvidTtl: config.defaultJwtSvidTtl,
      attestationPerSecond: config.rateLimits.attestationPerSecond,
      signingPerSecond: config.rateLimits.signingPerSecond,
      maxWaitSeconds: config.agentSyncMaxWait,
      monotonicMs,
      issuance,
      ledger,
      anomalies: new IdentityAnomalies(config.anomaly, {
        log: subsystem(rootLog, 'anomaly'),
        onAnomaly: (kind) => metrics.anomalies.inc({ kind }),
        now: () => clock.now().getTime(),
      }),
    }),
  );
  const agentServer = https.createServer(
    {
      key: tls.key.export({ format: 'pem', type: 'pkcs8' }),
      cert: tls.cert,
      ca: tls.ca,
      requestCert: true,
      // Attestation happens before the agent has a certificate; every other route
      // checks `socket.authorized` and the attested-node record itself.
      rejectUnauthorized: false,
      ...TLS_OPTIONS,
      // Node's default is 120 s: long enough for a flood of half-open handshakes to pile up. The
      // first-request deadline (limitAgentApi, counted and logged) covers the handshake; this is a backstop.
      handshakeTimeout: config.agentApi.firstRequestTimeoutMs + 1000,
    },
    agentApp,
  );
  agentServer.keepAliveTimeout = 65_000;
  agentServer.headersTimeout = 70_000;
  limitAgentApi(agentServer, config, log, metrics);
  await listen(agentServer, config.bind.port, config.bind.host);
  opened.add(agentServer, closeServer);

  // --- admin API on a Unix socket in a 0750 directory (group members may connect, not replace the socket) ---
  ensureTrustedDir(path.dirname(config.adminSocket), { mode: 0o750, what: 'admin socket directory' });
  await removeStaleSocket(config.adminSocket);
  let isReady = false;

  // --- issue #4: federation (fetcher always; bundle endpoint when configured) and OIDC discovery ---
  federation = await startFederation({
    config,
    store,
    bundle: () => ca.bundle(),
    serverSvid: () => ({ key: serverSvid.current().key, cert: serverSvid.current().cert }),
    notify: () => changes.notify(),
    log: rootLog,
    now,
  });
  opened.add(federation, (f) => f.close());
  const oidc = config.oidc
    ? await startOIDCDiscovery({
        bind: config.oidc.bind,
        issuer: config.oidc.issuer,
        tls: config.oidc.certFile ? { cert: readFileSync(config.oidc.certFile, 'utf8'), key: readFileSync(config.oidc.keyFile!, 'utf8') } : undefined,
        bundle: () => ca.bundle(),
        log: subsystem(rootLog, 'oidc'),
      })
    : undefined;
  if (oidc) opened.add(oidc, (o) => o.close());

  const adminApp = express();
  adminApp.disable('x-powered-by');
  adminApp.use(
    adminApi({
      trustDomain: config.trustDomain,
      store,
      ca,
      issuance,
      changes,
      log: subsystem(rootLog, 'admin_api'),
      metrics,
      joinTokenTtl: config.joinTokenTtl,
      defaultX509SvidTtl: config.defaultX509SvidTtl,
      defaultJwtSvidTtl: config.defaultJwtSvidTtl,
      now,
      ready: () => isReady && ca.canSign() && storeHealth.reachable(),
      requireAudienceAllowlist: config.jwt.requireAudienceAllowlist,
      extraRouters: [
        authorityApi({ ca, ledger, store }), // issue #4: tessera authority ...
        federationApi({ trustDomain: config.trustDomain, store, fetcher: federation.fetcher, notify: () => changes.notify(), log: subsystem(rootLog, 'admin_api') }),
        auditRouter({ audit: auditHub }), // the console's audit tail
        overviewRouter({ trustDomain: config.trustDomain, store, ca, ledger, audit: auditHub, now }),
      ],
    }),
  );
  const adminServer = http.createServer(adminApp);
  await new Promise<void>((res, rej) => adminServer.once('error', rej).listen(config.adminSocket, () => res()));
  opened.add(adminServer, closeServer);
  adminServer.on('error', (err) => log.error({ err }, 'admin listener error'));
  chmodSync(config.adminSocket, 0o660);

  // --- health and metrics (common/health, as the agent and the helper) ---
  // Ready means able to sign: an expired CA (an upstream that ran out, a clock far off) is not ready,
  // nor is a server whose database does not answer.
  const health = await startHealthServer({
    host: config.healthBind.host,
    port: config.healthBind.port,
    registry: metrics.registry,
    log,
    beforeMetrics: caGauges,
    ready: () => ({
      ready: isReady && ca.canSign() && storeHealth.reachable(),
      ca: ca.signingStatus(),
      datastore: { engine: datastore.engine, ...storeHealth.status() },
    }),
  });
  opened.add(health, (h) => h.close());

  // --- housekeeping: pruning of expired entries, tokens and SVID records ---
  const pruner = opened.add(startPruner({ store, ledger, now, log, onEntriesPruned: () => changes.notify() }), (p) => p.stop());

  isReady = true;
  const agentAddr = agentServer.address() as AddressInfo;
  const healthAddr = health.address;
  // Always logged, whatever the level: scripts and tests wait for this line.
  log.child({}, { level: 'info' }).info(
    {
      event: 'server_ready',
      trust_domain: config.trustDomain,
      agent_api: `${agentAddr.address}:${agentAddr.port}`,
      health: `${healthAddr.address}:${healthAddr.port}`,
      admin_socket: config.adminSocket,
      bundle_endpoint: federation.bundleEndpoint && `${federation.bundleEndpoint.address}:${federation.bundleEndpoint.port}`,
      oidc: oidc && `${oidc.address.address}:${oidc.address.port}`,
      data_dir: config.dataDir,
      datastore: datastore.description,
      bundle_sequence: ca.bundle().sequence,
    },
    'server ready',
  );

  let closed = false;
  return {
    agentApi: agentAddr,
    health: healthAddr,
    adminSocket: config.adminSocket,
    bundleEndpoint: federation.bundleEndpoint,
    oidc: oidc?.address,
    store,
    ca,
    async close() {
      if (closed) return;
      closed = true;
      isReady = false;
      pruner.stop();
      serverSvid.stop();
      await ca.stop();
      changes.notify();
      await Promise.all([federation?.close(), oidc?.close()]); // issue #4
      await Promise.all([agentServer, adminServer].map(closeServer));
      await health.close();
      unsubscribe?.();
      await pool?.close();
      storeHealth.stop();
      await store.close();
      log.info('server stopped');
    },
  };
}

function listen(s: net.Server, port: number, host: string): Promise<void> {
  return new Promise((res, rej) => s.once('error', rej).listen(port, host, () => res()));
}

function closeServer(s: http.Server | https.Server): Promise<void> {
  return new Promise((res) => {
    s.close(() => res());
    s.closeAllConnections?.();
    // A connection still in its TLS handshake is not an HTTP connection yet, so closeAllConnections
    // misses it; its first request (an agent's long poll, just after it renewed its SVID) would
    // then hold close() open for up to agent_sync_max_wait. Drop such late arrivals.
    s.on('secureConnection', (sock: net.Socket) => sock.destroy());
    s.on('request', (req: http.IncomingMessage) => req.socket.destroy());
  });
}

/**
 * The agent API's connection limits: a cap on open connections with a lower cap
 * per client IP (attestation needs no certificate, so anyone who reaches `bind`
 * can connect), and a deadline for the TLS handshake and the first request; a
 * refusal, or running out of file descriptors, is logged and counted.
 */
function limitAgentApi(server: https.Server, config: ServerConfig, log: Logger, metrics: ReturnType<typeof createServerMetrics>): void {
  const limits = new ConnectionLimits({
    listener: 'agent_api',
    maxConnections: config.agentApi.maxConnections,
    maxPerPeer: config.agentApi.maxConnectionsPerIp,
    firstRequestTimeoutMs: config.agentApi.firstRequestTimeoutMs,
    peerKind: 'ip',
    log,
    onRefused: (reason) => metrics.refused.inc({ listener: 'agent_api', reason }),
  });
  limits.watch(server);
  const started = new WeakMap<object, () => void>();
  server.on('connection', (socket: net.Socket) => {
    const ip = socket.remoteAddress ?? 'unknown';
    if (limits.admit(socket, ip)) started.set(socket, limits.firstRequestDeadline(socket, ip));
  });
  // The request's socket is the TLS socket; its underlying TCP socket is the one counted.
  server.on('request', (req: http.IncomingMessage) => {
    const tcp = (req.socket as TLSSocket & { _parent?: net.Socket })._parent ?? req.socket;
    started.get(tcp)?.();
  });
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
    log.debug({ [F.remoteAddr]: socket.remoteAddress, error: err.code ?? err.message }, 'agent api tls handshake failed');
  });
}

/** A socket file left by a crashed server is removed; one in use is an error; anything else at the path is refused. */
async function removeStaleSocket(p: string): Promise<void> {
  let st;
  try {
    st = lstatSync(p);
  } catch {
    return;
  }
  if (!st.isSocket()) throw failedPrecondition(`admin socket path ${p} exists and is not a socket; remove it or choose another --admin-socket`);
  const inUse = await new Promise<boolean>((res) => {
    const c = net.connect(p, () => {
      c.destroy();
      res(true);
    });
    c.on('error', () => res(false));
  });
  if (inUse) throw new Error(`admin socket ${p} is in use by another server; stop it or choose another --admin-socket`);
  unlinkSync(p);
}

