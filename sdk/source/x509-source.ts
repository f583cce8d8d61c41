import { EventEmitter } from 'node:events';
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { notFound, unavailable } from '../../common/errors';
import { parseSpiffeId, parseTrustDomain } from '../../common/spiffeid/spiffe-id';
import { WorkloadAPIClient, type X509Context, type X509SVID } from '../workloadapi/client';
import { resolveWorkloadEndpoint } from './endpoint';
import { StreamWatcher } from './watcher';
import { certificateValidity } from '../../common/x509svid/certificate-validity';

/** An X.509-SVID ready for TLS: the chain and a KeyObject (imported once per SVID). */
export interface X509SVIDWithKey extends X509SVID {
  /** the trust domain of `spiffeId` (bare name) */
  trustDomain: string;
  key: KeyObject;
  /** the leaf's notAfter, unix ms */
  notAfter: number;
}

export interface SourceOptions {
  /** Workload API address (`unix:///path`, `tcp://IP:PORT` or a socket path); default SPIFFE_ENDPOINT_SOCKET, then Tessera's default */
  address?: string;
  /** the environment to read SPIFFE_ENDPOINT_SOCKET from; default process.env */
  env?: NodeJS.ProcessEnv;
  /** an existing client to use (the source then does not close it) */
  client?: WorkloadAPIClient;
}

/** Chooses the SVID a source answers with: the default (first), or one by SPIFFE ID or hint. */
export type SVIDPicker = (svids: readonly X509SVIDWithKey[]) => X509SVIDWithKey | undefined;

/** The SVID with this SPIFFE ID. */
export const bySpiffeId = (id: string): SVIDPicker => {
  const want = parseSpiffeId(id).toString();
  return (svids) => svids.find((s) => s.spiffeId === want);
};
/** The SVID with this hint (the entry's `--hint`). */
export const byHint = (hint: string): SVIDPicker => (svids) => svids.find((s) => s.hint === hint);

/** Things a client makes once and the sources share. */
export function clientFor(o: SourceOptions): { client: WorkloadAPIClient; owned: boolean } {
  return o.client ? { client: o.client, owned: false } : { client: new WorkloadAPIClient(resolveWorkloadEndpoint(o.address, o.env)), owned: true };
}

/**
 * The workload's X.509-SVIDs and the X.509 bundles that come with them (its own
 * trust domain's and those its entries federate with), kept current from a
 * FetchX509SVID stream, as go-spiffe's `workloadapi.X509Source`. Reconnects with
 * backoff and jitter when the agent restarts, keeping the last SVIDs meanwhile
 * (an SVID past its expiry is never returned).
 *
 * Events: `update` after each new message, `error` when the stream ends (retried).
 *
 * @example
 * const source = new X509Source();
 * await source.ready(5000);
 * const { spiffeId, chain, key } = source.svid();
 * ...
 * source.close();
 */
export class X509Source extends EventEmitter {
  private svids: X509SVIDWithKey[] = [];
  private bundles = new Map<string, Buffer[]>();
  private readonly watcher: StreamWatcher<X509Context>;
  private readonly client: WorkloadAPIClient;
  private readonly ownsClient: boolean;
  private readonly pick: SVIDPicker;

  constructor(opts: SourceOptions & { picker?: SVIDPicker } = {}) {
    super();
    ({ client: this.client, owned: this.ownsClient } = clientFor(opts));
    this.pick = opts.picker ?? ((s) => s[0]);
    this.watcher = new StreamWatcher((u, e) => this.client.watchX509SVIDs(u, e), (ctx) => this.applyContext(ctx), 'x509 source');
    this.watcher.on('update', () => this.emit('update'));
    this.watcher.on('error', (e) => this.listenerCount('error') > 0 && this.emit('error', e));
  }

  /** Resolves once the first SVIDs arrived; rejects after `timeoutMs` with the reason. */
  ready(timeoutMs?: number): Promise<void> {
    return this.watcher.ready(timeoutMs);
  }

  /**
   * The SVID the picker chooses (default: the workload's default identity).
   * @throws TesseraError UNAVAILABLE before the first update or once every SVID expired; NOT_FOUND when the picker matches none
   */
  svid(picker: SVIDPicker = this.pick): X509SVIDWithKey {
    const now = Date.now();
    const live = this.svids.filter((s) => s.notAfter > now);
    if (live.length === 0) throw unavailable('x509 source has no valid svid yet (is the agent running, and is there an entry for this workload?)');
    const s = picker(live);
    if (!s) throw notFound(`no x509-svid of this workload matches (it has ${live.map((x) => x.spiffeId).join(', ')})`);
    return s;
  }

  /** Every current SVID, default first. */
  allSVIDs(): readonly X509SVIDWithKey[] {
    return this.svids;
  }

  /** The X.509 CA certificates of `trustDomain` (bare name or spiffe://), if this workload holds them. */
  bundleFor(trustDomain: string): Buffer[] | undefined {
    return this.bundles.get(parseTrustDomain(trustDomain));
  }

  /** Every X.509 bundle held, by bare trust domain name. */
  allBundles(): ReadonlyMap<string, Buffer[]> {
    return this.bundles;
  }

  close(): void {
    this.watcher.close();
    if (this.ownsClient) this.client.close();
  }

  private applyContext(ctx: X509Context): void {
    const previous = new Map(this.svids.map((s) => [s.chain[0]!.toString('base64'), s]));
    this.svids = ctx.svids.map((s) => {
      const again = previous.get(s.chain[0]!.toString('base64'));
      if (again) return again; // the same certificate: keep its KeyObject
      const td = parseSpiffeId(s.spiffeId).trustDomain;
      const notAfter = certificateValidity(s.chain[0]!).notAfter * 1000;
      return { ...s, trustDomain: td, notAfter, key: createPrivateKey({ key: s.privateKey, format: 'der', type: 'pkcs8' }) };
    });
    const bundles = new Map(ctx.federatedBundles);
    for (const s of this.svids) bundles.set(s.trustDomain, s.bundle); // the own trust domain's, with each SVID
    this.bundles = bundles;
  }
}
