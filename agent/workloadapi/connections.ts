import type { Socket } from 'net';
import type { Logger } from '../../common/log';
import { F } from '../../common/log';
import { readCallerInfo, type CallerInfo, type PeerCredOps } from '../attestor/workload/unix';
import { CONN_FIELD } from './calls';
import type { ConnectionLimits } from '../../common/net/connection-limits';

/** What the registry uses from `@tessera/peercred`. */
export type ConnectionPeerCredOps = PeerCredOps & { closeFd(fd: number): void; shutdownSocket(fd: number): void };

/** One accepted Workload API connection and the caller the kernel named at accept. */
export interface Connection {
  readonly id: string;
  readonly caller: CallerInfo;
  /**
   * Runs `fn` (an attestation) with the connection's pidfd kept open, even if
   * the connection closes meanwhile: a pidfd closed under a running attestation
   * could be reused as the fd number of another caller's pidfd, and the liveness
   * check would then ask about the wrong process.
   */
  withCaller<T>(fn: (caller: CallerInfo) => Promise<T>): Promise<T>;
  /** A call arrived on this connection: the first-request deadline no longer applies. */
  callStarted(): void;
}

/**
 * Accepted sockets by connection id. grpc-js builds `call.getPeer()` from the
 * socket's `remoteAddress`, which a Unix socket leaves empty; giving each
 * accepted socket its own `remoteAddress` (the connection id) lets every handler
 * find its caller with `registry.get(call.getPeer())`. This is observed
 * grpc-js ~1.14 behaviour, not a documented contract: server.test.ts pins it.
 */
export class ConnectionRegistry {
  private readonly conns = new Map<string, { conn: ConnectionImpl; socket: Socket; fd: number }>();
  private seq = 0;

  constructor(
    private readonly ops: ConnectionPeerCredOps,
    private readonly log: Logger,
    /** connection caps (total and per uid) and the first-request deadline */
    private readonly limits?: ConnectionLimits,
  ) {}

  /**
   * Reads the peer's credentials and pidfd, tags and registers the socket.
   * Call it first thing in the `connection` handler (fd numbers are reused after
   * close) and hand the socket to grpc right after, without reading from it.
   * A connection over the total or per-uid cap is closed at once (its pidfd too);
   * one that starts no call within the first-request deadline is closed then.
   * @returns undefined (and destroys the socket) if the credentials cannot be read or a cap is reached
   */
  accept(socket: Socket): Connection | undefined {
    let caller: CallerInfo;
    const fd = (socket as unknown as { _handle: { fd: number } })._handle.fd;
    try {
      caller = readCallerInfo(fd, this.ops);
    } catch (e) {
      // Without kernel credentials there is nobody to attest: refuse the connection.
      this.log.warn({ err: e }, 'cannot read peer credentials; connection refused');
      socket.destroy();
      return undefined;
    }
    if (this.limits && !this.limits.admit(socket, String(caller.uid))) {
      if (caller.pidfd >= 0) this.ops.closeFd(caller.pidfd);
      return undefined;
    }
    const id = `workload-conn-${++this.seq}`;
    Object.defineProperty(socket, 'remoteAddress', { value: id, configurable: true, enumerable: true });
    // Once grpc-js has the socket, its HTTP/2 session owns the fd and socket.destroy() no
    // longer closes it: shut the fd down instead (the deadline never fires after 'close').
    const started = this.limits?.firstRequestDeadline(socket, String(caller.uid), () => this.shutdown(fd)) ?? (() => undefined);
    const conn = new ConnectionImpl(id, caller, this.ops, this.log, started);
    this.conns.set(id, { conn, socket, fd });
    // Listening for 'error' and 'close' neither reads nor resumes the socket.
    socket.on('error', (err) => this.log.debug({ err, [CONN_FIELD]: id }, 'workload api connection error'));
    socket.once('close', () => {
      this.conns.delete(id);
      conn.close();
    });
    this.log.debug({ [CONN_FIELD]: id, [F.pid]: caller.pid, [F.uid]: caller.uid, [F.gid]: caller.gid }, 'workload api connection accepted');
    return conn;
  }

  /** The connection with this id (`call.getPeer()`), if it is still open. */
  get(id: string): Connection | undefined {
    return this.conns.get(id)?.conn;
  }

  /** Ends every open connection (the last step of a shutdown that did not drain in time). */
  destroyAll(): void {
    for (const { socket, fd } of this.conns.values()) {
      this.shutdown(fd); // first: after destroy() the number could already be someone else's
      socket.destroy();
    }
  }

  /** Shuts a still-open connection's fd down (its 'close' has not fired, so the number is still its own). */
  private shutdown(fd: number): void {
    try {
      this.ops.shutdownSocket(fd);
    } catch (err) {
      this.log.debug({ err }, 'cannot shut down a workload api connection');
    }
  }

  get size(): number {
    return this.conns.size;
  }
}

class ConnectionImpl implements Connection {
  private inflight = 0;
  private closed = false;

  constructor(
    readonly id: string,
    readonly caller: CallerInfo,
    private readonly ops: ConnectionPeerCredOps,
    private readonly log: Logger,
    readonly callStarted: () => void,
  ) {}

  async withCaller<T>(fn: (caller: CallerInfo) => Promise<T>): Promise<T> {
    this.inflight++;
    try {
      return await fn(this.caller);
    } finally {
      this.inflight--;
      this.releaseIfDone();
    }
  }

  close(): void {
    this.closed = true;
    this.releaseIfDone();
  }

  private releaseIfDone(): void {
    if (!this.closed || this.inflight > 0 || this.caller.pidfd < 0) return;
    try {
      this.ops.closeFd(this.caller.pidfd);
    } catch (err) {
      this.log.warn({ err, [CONN_FIELD]: this.id }, 'cannot close the pidfd of a workload api connection');
    }
    // Never close it twice: by then the number may belong to another caller's pidfd.
    this.caller.pidfd = -1;
  }
}
