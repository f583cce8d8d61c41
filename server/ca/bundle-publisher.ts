import { createPublicKey, type KeyObject } from 'node:crypto';
import type { Logger } from '../../common/log';
import { audit } from '../../common/log';
import { unavailable } from '../../common/errors';
import { bundlesEqual, decodeBundle, encodeBundle, type SpiffeBundle } from '../../common/bundle/bundle';
import type { DataStore } from '../datastore/datastore';
import { isPublished } from './rotation';
import type { UpstreamAuthority } from './upstream-disk';

/**
 * The own trust domain's bundle, computed from the CA journal: the keys of
 * prepared, active, retired and tainted slots until they are pruned (never
 * revoked ones), or the upstream roots instead of our CA certificates when there
 * is an upstream authority. Stored with a sequence number that grows on every
 * change; listeners hear of every new sequence.
 */
export class BundlePublisher {
  private current?: SpiffeBundle;
  private readonly listeners = new Set<(b: SpiffeBundle) => void>();

  constructor(
    private readonly d: { trustDomain: string; refreshHint: number; store: DataStore; log: Logger; upstream?: UpstreamAuthority },
  ) {}

  /**
   * Recomputes the bundle and stores it with sequence+1 if it changed, or if
   * `force` (a taint: the keys are the same, but agents must hear of it).
   */
  async publish(opts: { force?: boolean } = {}): Promise<SpiffeBundle> {
    const { trustDomain: td, store } = this.d;
    const live = (await store.listCAJournal()).filter(isPublished);
    const x509Authorities = this.d.upstream
      ? this.d.upstream.roots()
      : live.filter((s) => s.kind === 'x509' && s.certificateDer).map((s) => s.certificateDer!);
    const jwtAuthorities = live
      .filter((s) => s.kind === 'jwt' && s.publicJwk)
      .map((s) => ({ kid: s.kid, publicKey: createPublicKey({ key: JSON.parse(s.publicJwk!), format: 'jwk' }) as KeyObject }));
    const stored = await store.fetchBundle(td);
    const prev = stored ? decodeBundle(td, stored.document) : undefined;
    const next: SpiffeBundle = { trustDomain: td, x509Authorities, jwtAuthorities, refreshHint: this.d.refreshHint, sequence: prev?.sequence ?? 0 };
    if (prev && !opts.force && bundlesEqual({ ...prev, sequence: 0 }, { ...next, sequence: 0 })) {
      // Unchanged here, but maybe new to this process: another server on the same database
      // published it. Listeners hear of every sequence this process had not seen.
      const seen = this.current?.sequence;
      this.current = prev;
      if (seen !== undefined && seen !== prev.sequence) for (const l of this.listeners) l(prev);
      return prev;
    }
    next.sequence = (prev?.sequence ?? 0) + 1;
    await store.setBundle({ trustDomain: td, document: encodeBundle(next), sequence: next.sequence });
    audit(this.d.log, 'bundle_updated', { trust_domain: td, sequence: next.sequence, x509_authorities: x509Authorities.length, jwt_authorities: jwtAuthorities.length });
    this.current = next;
    for (const l of this.listeners) l(next);
    return next;
  }

  /** The bundle as last published. @throws UNAVAILABLE before the first publish */
  bundle(): SpiffeBundle {
    if (!this.current) throw unavailable('ca is not ready');
    return this.current;
  }

  onChange(fn: (b: SpiffeBundle) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
}
