import { existsSync } from 'node:fs';
import path from 'node:path';
import { effectiveUid } from './trusted-dir';

/**
 * Default locations of the Unix sockets. SPIRE's defaults live under `/tmp`
 * (`/tmp/spire-agent/public/api.sock`), where any local user can create the
 * directory first and serve a fake socket in it. Tessera's defaults are safe for
 * the user that runs the process:
 * - as root: under `/run/tessera`, which only root can create (`/run` is root's, 0755);
 * - as any other user: under `/tmp/tessera-<uid>`. Another user can still create
 *   that directory first, but then the server or agent refuses to start (it is not
 *   theirs), and clients refuse to talk to a socket in it, rather than trusting it.
 * An explicit path (flag, env, config) is always used as given, after the same
 * ownership checks on the side that creates it.
 */
export function defaultRuntimeDir(uid: number | undefined = effectiveUid()): string {
  return uid === undefined || uid === 0 ? '/run/tessera' : `/tmp/tessera-${uid}`;
}

/** The agent's default Workload API socket for a process of this uid. */
export const defaultAgentSocket = (uid?: number) => path.join(defaultRuntimeDir(uid), 'agent', 'public', 'api.sock');

/** The server's default admin socket for a process of this uid. */
export const defaultAdminSocket = (uid?: number) => path.join(defaultRuntimeDir(uid), 'server', 'private', 'api.sock');

/**
 * The socket a client uses when none is configured: root's (under /run/tessera)
 * when it exists, else the one of the client's own uid. A workload usually runs
 * under another uid than a root agent, so it looks for root's socket first.
 */
export function defaultClientSocket(kind: 'agent' | 'admin'): string {
  const rootSocket = kind === 'agent' ? defaultAgentSocket(0) : defaultAdminSocket(0);
  return existsSync(rootSocket) ? rootSocket : kind === 'agent' ? defaultAgentSocket() : defaultAdminSocket();
}
