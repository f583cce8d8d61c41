import * as grpc from '@grpc/grpc-js';
import { promises as fsp } from 'fs';
import net from 'net';
import { dirname } from 'path';
import { failedPrecondition } from '../../common/errors';
import { subsystem, type Logger } from '../../common/log';
import { parseTrustDomain } from '../../common/spiffeid/spiffe-id';
import type { WorkloadIdentitySource } from '../manager/identity-source';
import type { CallDeps, WorkloadAttestor } from './calls';
import { ConnectionRegistry, type ConnectionPeerCredOps } from './connections';
import { workloadHandlers } from './handlers';
import { workloadServerService } from './server-service';
import { OpenStreams } from './stream';
import { ConnectionLimits, type RefusalReason } from '../../common/net/connection-limits';
import { ensureTrustedDir } from '../../common/fs/trusted-dir';

export type { WorkloadAttestor } from './calls';

export interface WorkloadAPIOptions {
  /** Unix socket path (keep it under ~100 bytes). Its directory is created if missing. */
  socketPath: string;
  source: WorkloadIdentitySource;
  attestor: WorkloadAttestor;
  /** The agent's trust domain, `example.org` or `spiffe://example.org`. */
  trustDomain: string;
  log: Logger;
  /** Called once per finished call, with the RPC name and the status code name (`OK`, `PERMISSION_DENIED`, ...). */
  onCall?: CallDeps['onCall'];
  /** Peer credential and pidfd calls; default `require('@tessera/peercred')`. */
  peercred?: ConnectionPeerCredOps;
  /** How long close() lets connections drain before cutting them; default 5000 ms. */
  shutdownGraceMs?: number;
  /** Connection caps and the first-request deadline (defaults: {@link DEFAULT_WORKLOAD_API_LIMITS}). */
  limits?: Partial<WorkloadAPILimits>;
  /** Called when a connection is refused or closed by a limit (for the metric). */
  onRefused?: (reason: RefusalReason) => void;
}

/** Caps of the Workload API listener. */
export interface WorkloadAPILimits {
  maxConnections: number;
  maxConnectionsPerUid: number;
  firstRequestTimeoutMs: number;
}

/**
 * A workload process normally keeps one connection (go-spiffe's and our sources do);
 * 128 per uid leaves room for worker pools, and several uids can never take all 1,024.
 */
export const DEFAULT_WORKLOAD_API_LIMITS: WorkloadAPILimits = { maxConnections: 1024, maxConnectionsPerUid: 128, firstRequestTimeoutMs: 10_000 };

export interface WorkloadAPIServer {
  /** Stops accepting, ends every open stream with status OK, then closes the connections. Idempotent. */
  close(): Promise<void>;
  /** Server streams currently open (FetchX509SVID, FetchX509Bundles, FetchJWTBundles). */
  streams(): number;
  /** Connections currently open. */
  connections(): number;
}

/** Requests are tiny; the largest is a JWT-SVID to validate (the validator stops at 16 KiB). */
const MAX_REQUEST_BYTES = 64 * 1024;

/**
 * Serves the SPIFFE Workload API on a Unix socket. The server owns the
 * `net.Server`: at accept it reads the caller's kernel credentials and pidfd,
 * tags the socket with a connection id, and only then injects it into grpc-js
 * (untouched, so the HTTP/2 preface is not lost). Each call finds its caller
 * through `call.getPeer()` and attests it. The socket is made 0777: attestation,
 * not file modes, decides what a caller gets.
 *
 * @throws TesseraError FAILED_PRECONDITION if the socket path holds something other than a socket, or a socket another process serves
 * @example
 * const api = await startWorkloadAPI({ socketPath, source, attestor: new UnixWorkloadAttestor(), trustDomain, log });
 * // ...
 * await api.close();
 */
export async function startWorkloadAPI(opts: WorkloadAPIOptions): Promise<WorkloadAPIServer> {
  const log = subsystem(opts.log, 'workload_api');
  const peercred = opts.peercred ?? (require('@tessera/peercred') as ConnectionPeerCredOps);
  const grace = opts.shutdownGraceMs ?? 5000;
  let closing = false;

  const l = { ...DEFAULT_WORKLOAD_API_LIMITS, ...opts.limits };
  const limits = new ConnectionLimits({
    listener: 'workload_api',
    maxConnections: l.maxConnections,
    maxPerPeer: l.maxConnectionsPerUid,
    firstRequestTimeoutMs: l.firstRequestTimeoutMs,
    peerKind: 'uid',
    fdsPerConnection: 2, // the socket and the caller's pidfd
    log,
    onRefused: opts.onRefused,
  });
  const registry = new ConnectionRegistry(peercred, log, limits);
  const streams = new OpenStreams();
  const deps: CallDeps = {
    source: opts.source,
    attestor: opts.attestor,
    trustDomain: parseTrustDomain(opts.trustDomain),
    log,
    onCall: opts.onCall,
    connections: registry,
    closing: () => closing,
  };
  const grpcServer = new grpc.Server({ 'grpc.max_receive_message_length': MAX_REQUEST_BYTES });
  grpcServer.addService(workloadServerService(), workloadHandlers(deps, streams));
  const injector = grpcServer.createConnectionInjector(grpc.ServerCredentials.createInsecure());

  const netServer = net.createServer((socket) => {
    if (closing) return void socket.destroy();
    // accept() must come first: it reads SO_PEERCRED before the fd can be reused.
    if (registry.accept(socket)) injector.injectConnection(socket);
  });
  await prepareSocketPath(opts.socketPath);
  await new Promise<void>((resolve, reject) => {
    netServer.once('error', reject);
    netServer.listen(opts.socketPath, () => {
      netServer.off('error', reject);
      resolve();
    });
  });
  limits.watch(netServer); // EMFILE on accept is logged and counted, never a crash
  await fsp.chmod(opts.socketPath, 0o777);
  log.info({ socket: opts.socketPath, max_connections: limits.maxConnections, max_connections_per_uid: limits.maxPerPeer }, 'workload api listening');

  let closed: Promise<void> | undefined;
  return {
    streams: () => streams.size,
    connections: () => registry.size,
    close() {
      closed ??= (async () => {
        closing = true;
        const listenerClosed = new Promise<void>((resolve) => netServer.close(() => resolve()));
        streams.endAll();
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            grpcServer.forceShutdown();
            registry.destroyAll();
            resolve();
          }, grace);
          grpcServer.tryShutdown(() => {
            clearTimeout(timer);
            resolve();
          });
        });
        await listenerClosed;
        log.info({ socket: opts.socketPath }, 'workload api closed');
      })();
      return closed;
    },
  };
}

/**
 * Creates the socket's directory (0755, so any user can reach the socket; parents
 * 0755) and removes a stale socket left by a previous run. The directory must be
 * this uid's or root's and not writable by others, and so must every parent (see
 * ensureTrustedDir): another user who created it first could otherwise replace
 * the socket with their own and receive the JWTs workloads send to
 * ValidateJWTSVID. Anything else than a socket at the path is refused rather than
 * deleted (a misconfigured path must not cost a file), and so is a socket someone
 * still serves (a second agent must not steal the first one's callers).
 */
async function prepareSocketPath(path: string): Promise<void> {
  ensureTrustedDir(dirname(path), { mode: 0o755, what: 'workload api socket directory' });
  let isSocket: boolean;
  try {
    isSocket = (await fsp.lstat(path)).isSocket();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if (!isSocket) throw failedPrecondition(`workload api socket path ${path} exists and is not a socket`);
  if (await accepting(path)) throw failedPrecondition(`workload api socket ${path} is served by another process; stop it or choose another socket path`);
  await fsp.unlink(path);
}

/** True if something accepts connections on the socket (a stale one refuses them). */
function accepting(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}
