import { EventEmitter } from 'node:events';
import type { SpiffeBundle } from '../../common/bundle/bundle';
import { parseTrustDomain } from '../../common/spiffeid/spiffe-id';
import type { WorkloadAPIClient } from '../workloadapi/client';
import { clientFor, type SourceOptions } from './x509-source';
import { StreamWatcher } from './watcher';

/**
 * X.509 and JWT bundles only (go-spiffe's `workloadapi.BundleSource`): for a
 * workload that verifies peers but presents no SVID of its own. Both streams
 * (FetchX509Bundles, FetchJWTBundles) are kept open and reconnect on their own.
 */
export class BundleSource extends EventEmitter {
  private x509 = new Map<string, Buffer[]>();
  private jwt = new Map<string, SpiffeBundle>();
  private readonly watchers: [StreamWatcher<Map<string, Buffer[]>>, StreamWatcher<Map<string, SpiffeBundle>>];
  private readonly client: WorkloadAPIClient;
  private readonly ownsClient: boolean;

  constructor(opts: SourceOptions = {}) {
    super();
    ({ client: this.client, owned: this.ownsClient } = clientFor(opts));
    this.watchers = [
      new StreamWatcher((u, e) => this.client.watchX509Bundles(u, e), (b) => (this.x509 = b), 'x509 bundle source'),
      new StreamWatcher((u, e) => this.client.watchJWTBundles(u, e), (b) => (this.jwt = b), 'jwt bundle source'),
    ];
    for (const w of this.watchers) {
      w.on('update', () => this.emit('update'));
      w.on('error', (e) => this.listenerCount('error') > 0 && this.emit('error', e));
    }
  }

  /** Resolves once both kinds of bundle arrived. */
  async ready(timeoutMs?: number): Promise<void> {
    await Promise.all(this.watchers.map((w) => w.ready(timeoutMs)));
  }

  /** X.509 CA certificates of `trustDomain`, if held. */
  bundleFor(trustDomain: string): Buffer[] | undefined {
    return this.x509.get(parseTrustDomain(trustDomain));
  }

  allBundles(): ReadonlyMap<string, Buffer[]> {
    return this.x509;
  }

  /** The JWT bundle of `trustDomain`, if held. */
  jwtBundleFor(trustDomain: string): SpiffeBundle | undefined {
    return this.jwt.get(parseTrustDomain(trustDomain));
  }

  close(): void {
    for (const w of this.watchers) w.close();
    if (this.ownsClient) this.client.close();
  }
}
