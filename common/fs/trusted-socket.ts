import path from 'node:path';
import { assertTrustedDir } from './trusted-dir';

/**
 * A client's check of a socket it found by default (no flag, no env): the
 * directory holding it, and every parent, must be root's or this user's and not
 * writable by others (see trusted-dir.ts). Otherwise another local user could
 * have created it first and be serving a fake API there (a fake Workload API
 * receives the JWTs sent to ValidateJWTSVID; a fake admin API shows an attacker's
 * CA as `tessera bundle show`). An explicitly configured path is the operator's
 * choice and is not checked here.
 * @throws TesseraError FAILED_PRECONDITION naming the directory and the fix
 */
export function assertTrustedSocketDir(socketPath: string, what: string): void {
  assertTrustedDir(path.dirname(socketPath), `${what} directory (found by default; give the socket path explicitly to use another)`);
}
