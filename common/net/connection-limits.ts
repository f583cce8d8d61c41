import { readFileSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import type { Logger } from '../log';

/** Why a connection was refused or closed early; the label of the refusal metric. */
export type RefusalReason = 'total_cap' | 'peer_cap' | 'first_request_deadline' | 'fd_exhausted';

export interface ConnectionLimitsOptions {
  /** the listener's name in logs and metrics (`agent_api`, `workload_api`) */
  listener: string;
  /** open connections at most, over all peers */
  maxConnections: number;
  /** open connections at most per peer (an IP address, a uid); never more than a quarter of maxConnections */
  maxPerPeer: number;
  /** a connection that has not started a request within this long is closed (ms) */
  firstRequestTimeoutMs: number;
  /** what a peer is in messages: "ip", "uid" */
  peerKind: string;
  /** file descriptors each connection costs (a Workload API connection also holds a pidfd) */
  fdsPerConnection?: number;
  log: Logger;
  onRefused?(reason: RefusalReason): void;
}

/** Spacing of repeated log lines about one peer and reason: a flood must not flood the log too. */
const LOG_EVERY_MS = 10_000;
/** Descriptors kept free for the process's own files, the datastore and outgoing connections. */
const FD_RESERVE = 64;

/**
 * The soft limit on open files (RLIMIT_NOFILE) from /proc/self/limits, or
 * undefined where it cannot be read. Node raises the soft limit to the hard one
 * at start; this is what is left for connections.
 */
export function openFileLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m && m[1] !== 'unlimited' ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Connection admission for a listener that anyone who can reach it may connect to
 * (the agent API before attestation, the Workload API before attestation): a cap
 * on open connections, a lower cap per peer so one peer cannot take them all, a
 * deadline for the first request, and a log line plus a metric whenever one of
 * these, or running out of file descriptors, refuses someone. The total cap is
 * also kept below what the process's file-descriptor limit can hold.
 *
 * Connections that have started a request are never closed by these limits: an
 * attested workload's open streams survive another peer's flood.
 */
export class ConnectionLimits {
  readonly maxConnections: number;
  readonly maxPerPeer: number;
  private total = 0;
  private readonly perPeer = new Map<string, number>();
  private readonly logged = new Map<string, { at: number; suppressed: number }>();

  constructor(private readonly o: ConnectionLimitsOptions) {
    const fds = openFileLimit();
    const byFds = fds === undefined ? Infinity : Math.max(1, Math.floor((fds - FD_RESERVE) / (o.fdsPerConnection ?? 1)));
    this.maxConnections = Math.min(o.maxConnections, byFds);
    // A peer may hold a quarter of the connections at most, so one peer can never fill the listener.
    this.maxPerPeer = Math.min(o.maxPerPeer, Math.max(1, Math.floor(this.maxConnections / 4)));
    if (this.maxConnections < o.maxConnections) {
      o.log.warn(
        { listener: o.listener, max_connections: this.maxConnections, max_per_peer: this.maxPerPeer, configured: o.maxConnections, open_file_limit: fds },
        'connection cap lowered to what the open-file limit allows; raise the limit (ulimit -n, LimitNOFILE=) to allow more',
      );
    }
  }

  get open(): number {
    return this.total;
  }

  /**
   * Counts `socket` for `peer`, or destroys it when a cap is reached (returns false).
   * A counted socket is uncounted when it closes.
   */
  admit(socket: Socket, peer: string): boolean {
    const n = this.perPeer.get(peer) ?? 0;
    const reason: RefusalReason | undefined = this.total >= this.maxConnections ? 'total_cap' : n >= this.maxPerPeer ? 'peer_cap' : undefined;
    if (reason) {
      socket.destroy();
      this.refused(reason, peer);
      return false;
    }
    this.total++;
    this.perPeer.set(peer, n + 1);
    socket.once('close', () => {
      this.total--;
      const left = (this.perPeer.get(peer) ?? 1) - 1;
      if (left <= 0) this.perPeer.delete(peer);
      else this.perPeer.set(peer, left);
    });
    return true;
  }

  /**
   * Closes `socket` unless a request starts before the deadline.
   * @param close how to close it (default `socket.destroy()`; a socket handed to an
   *   HTTP/2 session needs its fd shut down instead, see native/peercred)
   * @returns a function to call when the first request starts (it clears the timer)
   */
  firstRequestDeadline(socket: Socket, peer: string, close: () => void = () => socket.destroy()): () => void {
    let closed = false;
    socket.once('close', () => (closed = true));
    const timer = setTimeout(() => {
      if (closed) return;
      close();
      this.refused('first_request_deadline', peer);
    }, this.o.firstRequestTimeoutMs);
    timer.unref();
    const clear = () => clearTimeout(timer);
    socket.once('close', clear);
    return clear;
  }

  /**
   * Keeps a listener alive through accept errors: running out of file descriptors
   * (EMFILE, ENFILE) is logged and counted, never a crash. Other errors are logged.
   */
  watch(server: Server): void {
    server.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EMFILE' || err.code === 'ENFILE') return this.refused('fd_exhausted', 'any');
      this.o.log.error({ listener: this.o.listener, err }, 'listener error');
    });
  }

  private refused(reason: RefusalReason, peer: string): void {
    this.o.onRefused?.(reason);
    const key = `${reason} ${peer}`;
    const now = Date.now();
    const last = this.logged.get(key);
    if (last && now - last.at < LOG_EVERY_MS) {
      last.suppressed++;
      return;
    }
    if (this.logged.size > 10_000) this.logged.clear(); // many peers: forget who was logged, not what happens
    this.logged.set(key, { at: now, suppressed: 0 });
    const fields = {
      listener: this.o.listener,
      reason,
      [this.o.peerKind]: peer,
      open_connections: this.total,
      max_connections: this.maxConnections,
      max_per_peer: this.maxPerPeer,
      suppressed_since_last: last?.suppressed ?? 0,
    };
    const what: Record<RefusalReason, string> = {
      total_cap: 'connection refused: the listener is at its connection cap',
      peer_cap: `connection refused: this ${this.o.peerKind} is at its connection cap`,
      first_request_deadline: 'connection closed: no request within the first-request deadline',
      fd_exhausted: 'cannot accept connections: the process is out of file descriptors (EMFILE); raise the open-file limit',
    };
    this.o.log.warn(fields, what[reason]);
  }
}
