import type { KeyObject } from 'node:crypto';
import type { ServerClient } from '../client/server-client';

/**
 * Tracks changes to the client's TLS identity and roots. ServerClient drops its
 * connections on either change, which fails requests in flight; callers compare
 * `generation` before and after a request to tell that (retry at once) from a
 * real failure (back off).
 */
export class Connection {
  private gen = 0;
  private roots?: string;

  constructor(readonly client: ServerClient) {}

  get generation(): number {
    return this.gen;
  }

  setIdentity(chain: Buffer[], key: KeyObject): void {
    this.gen++;
    this.client.setIdentity(chain, key);
  }

  /** Trusts exactly these roots for the server; a no-op when they are unchanged (or empty). */
  setRoots(roots: Buffer[]): void {
    if (roots.length === 0) return;
    const id = roots.map((r) => r.toString('base64')).sort().join(',');
    if (id === this.roots) return;
    this.gen++;
    this.roots = id;
    this.client.setRoots(roots);
  }
}
