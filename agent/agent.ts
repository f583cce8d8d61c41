import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { createPrivateKey, generateKeyPair as genCb, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { startHealthServer } from '../common/health/health-server';
import type { Logger } from '../common/log';
import { subsystem } from '../common/log';
import { invalidArgument } from '../common/errors';
import { x509AuthoritiesFromPem, type SpiffeBundle } from '../common/bundle/bundle';
import { createCSR } from '../common/x509svid/csr';
import { X509POP_CONTEXT } from '../common/x509pop';
import type { AgentConfig } from './config';
import { ServerClient } from './client/server-client';
import { AgentManager } from './manager/manager';
import { AgentStore } from './storage/agent-store';
import { UnixWorkloadAttestor } from './attestor/workload/unix';
import type { startWorkloadAPI as StartWorkloadAPI } from './workloadapi/server';
import { createAgentMetrics } from './telemetry';
import { ensureTrustedDir } from '../common/fs/trusted-dir';
import { Closers } from '../common/closers';
import { systemClock } from '../common/clock';
import { IdentityAnomalies } from '../common/anomaly/identity-anomalies';

const generateKeyPair = promisify(genCb);

export interface RunningAgent {
  agentId: string;
  health: AddressInfo;
  socketPath: string;
  close(): Promise<void>;
}

/**
 * Wires the node agent (SPIRE's agent.go): trust bootstrap, the manager (identity,
 * sync, cache, rotation), the Workload API on its Unix socket, and health/metrics.
 */
export async function startAgent(config: AgentConfig, rootLog: Logger): Promise<RunningAgent> {
  const log = subsystem(rootLog, 'agent');
  // Whatever opened before a failure is closed again: a half-started agent must exit, not linger.
  const opened = new Closers();
  try {
    return await start(config, rootLog, log, opened);
  } catch (e) {
    await opened.closeAll();
    throw e;
  }
}

async function start(config: AgentConfig, rootLog: Logger, log: Logger, opened: Closers): Promise<RunningAgent> {
  // Checked before anything is read from it: the cached bundle there authenticates the server.
  ensureTrustedDir(config.dataDir, { mode: 0o700, what: 'agent data directory' });
  const client = opened.add(await bootstrapClient(config, log), (c) => c.close());
  // several servers: say when requests move to another one (a server died, or answers 503 without its database)
  client.onServerChange = (c) => log.warn({ event: 'server_failover', from: c.from, to: c.to, reason: c.reason }, 'server unreachable; using the next server');

  const attest = attestFunction(config, client);
  const manager = opened.add(
    await AgentManager.start({
      client,
      trustDomain: config.trustDomain,
      dataDir: config.dataDir,
      attest,
      reattestOnEviction: config.reattestOnEviction,
      log: rootLog,
      syncWaitSeconds: config.syncWait,
    }),
    (m) => m.stop(),
  );

  // The Workload API server (grpc-js and the protobuf loader, ~70–90 ms to load) is loaded
  // now, not at start-up: by here a fresh agent has attested and asked for its first sync,
  // which for a large node keeps the server busy for longer than this load takes. The
  // setImmediate lets that request reach the socket first (it is written after a few
  // promise turns and a nextTick; the load would otherwise run before them and hold it).
  await new Promise((resolve) => setImmediate(resolve));
  const { startWorkloadAPI }: { startWorkloadAPI: typeof StartWorkloadAPI } = await import('./workloadapi/server');
  const metrics = createAgentMetrics(() => manager.stats());
  // Identity-use anomalies: each uid's Workload API calls (JWT-SVIDs per audience set) and denials.
  const anomalies = new IdentityAnomalies(config.anomaly, {
    log: subsystem(rootLog, 'anomaly'),
    onAnomaly: (kind) => metrics.anomalies.inc({ kind }),
    now: () => systemClock.now().getTime(),
  });
  const api = opened.add(
    await startWorkloadAPI({
      socketPath: config.socketPath,
      source: manager,
      attestor: new UnixWorkloadAttestor(),
      trustDomain: config.trustDomain,
      log: rootLog,
      onCall: (rpc, code, caller) => {
        metrics.calls.inc({ rpc, code });
        if (caller) anomalies.record(`uid:${caller.uid}`, caller.note ? `${rpc} ${caller.note}` : rpc, code === 'PERMISSION_DENIED', { uid: caller.uid, rpc });
      },
      limits: config.workloadApi,
      onRefused: (reason) => metrics.refused.inc({ listener: 'workload_api', reason }),
    }),
    (a) => a.close(),
  );

  const health = await startHealthServer({
    host: config.healthBind.host,
    port: config.healthBind.port,
    registry: metrics.registry,
    log,
    ready: () => ({ ready: manager.ready(), streams: api.streams() }),
  });
  const healthAddr = health.address;

  // Always logged, whatever the level: scripts and tests wait for this line.
  log.child({}, { level: 'info' }).info(
    {
      event: 'agent_ready',
      agent_id: manager.agentId(),
      socket: config.socketPath,
      health: `${healthAddr.address}:${healthAddr.port}`,
      server: config.serverAddress,
      synced: manager.ready(),
    },
    'agent ready',
  );
  let closed = false;
  return {
    agentId: manager.agentId(),
    health: healthAddr,
    socketPath: config.socketPath,
    async close() {
      if (closed) return;
      closed = true;
      await api.close();
      await manager.stop();
      await health.close();
      client.close();
      log.info('agent stopped');
    },
  };
}

/**
 * Roots to verify the server with: the bundle the agent already holds (it follows
 * rotations; as SPIRE, it wins over the bootstrap bundle, so the data directory
 * must be trusted: AgentStore checks it), else the configured bundle file, else
 * the one root of the server's bundle whose SHA-256 equals the pin (SPIRE #2136).
 */
async function bootstrapClient(config: AgentConfig, log: Logger): Promise<ServerClient> {
  const stored: SpiffeBundle | undefined = AgentStore.peekBundle(config.dataDir);
  if (stored && stored.x509Authorities.length > 0) {
    return new ServerClient(config.serverAddresses, config.trustDomain, stored.x509Authorities);
  }
  if (config.trustBundlePath) {
    let roots: Buffer[];
    try {
      roots = x509AuthoritiesFromPem(readFileSync(config.trustBundlePath, 'utf8'));
    } catch (e) {
      throw invalidArgument(`trust_bundle_path ${config.trustBundlePath}: ${(e as Error).message}`);
    }
    if (roots.length === 0) throw invalidArgument(`trust_bundle_path ${config.trustBundlePath} holds no PEM certificate`);
    return new ServerClient(config.serverAddresses, config.trustDomain, roots);
  }
  if (config.trustBundleSha256) {
    log.info({ sha256: config.trustBundleSha256 }, 'bootstrapping trust from the server, pinned to a root fingerprint');
    return ServerClient.bootstrapWithFingerprint(config.serverAddresses, config.trustDomain, config.trustBundleSha256);
  }
  throw invalidArgument('the agent has no trust bundle yet: set trust_bundle_path (--trust-bundle) or trust_bundle_sha256 (--trust-bundle-sha256)');
}

/** How this agent proves itself to the server, or undefined when no method is configured. */
function attestFunction(config: AgentConfig, client: ServerClient) {
  if (!config.joinToken && !config.x509pop) return undefined;
  return async () => {
    const { privateKey, publicKey } = (await generateKeyPair('ec', { namedCurve: 'P-256' })) as { privateKey: KeyObject; publicKey: KeyObject };
    const csr = await createCSR(privateKey, publicKey);
    let r;
    if (config.joinToken) {
      r = await client.attestJoinToken(config.joinToken, csr);
    } else {
      const certs = x509AuthoritiesFromPem(readFileSync(config.x509pop!.certFile, 'utf8'));
      const popKey = createPrivateKey(readFileSync(config.x509pop!.keyFile));
      r = await client.attestX509Pop(certs, (nonce) => cryptoSign('sha256', Buffer.concat([X509POP_CONTEXT, nonce]), popKey), csr);
    }
    return { chain: r.chain, key: privateKey, agentId: r.agentId, bundle: r.bundle };
  };
}
