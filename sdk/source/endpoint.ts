import { defaultClientSocket } from '../../common/fs/runtime-paths';
import { assertTrustedSocketDir } from '../../common/fs/trusted-socket';

/**
 * Where a workload finds the Workload API, as go-spiffe does: an explicit
 * address, else `SPIFFE_ENDPOINT_SOCKET` (`unix:///path` or `tcp://IP:PORT`),
 * else Tessera's default socket (root's agent under /run/tessera when it exists,
 * else this user's own under /tmp/tessera-<uid>), which is used only when its
 * directory is root's or this user's and not writable by others: another user
 * could otherwise serve a fake Workload API there.
 * @throws TesseraError FAILED_PRECONDITION for a default socket in an untrusted directory
 */
export function resolveWorkloadEndpoint(address?: string, env: NodeJS.ProcessEnv = process.env): string {
  const explicit = address ?? (env.SPIFFE_ENDPOINT_SOCKET || undefined);
  if (explicit) return explicit;
  const socket = defaultClientSocket('agent');
  assertTrustedSocketDir(socket, 'workload api socket');
  return socket;
}
