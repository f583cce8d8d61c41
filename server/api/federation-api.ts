import express, { type Router, type Request } from 'express';
import type { Logger } from '../../common/log';
import { audit } from '../../common/log';
import { alreadyExists, invalidArgument, notFound } from '../../common/errors';
import { decodeBundle } from '../../common/bundle/bundle';
import { parseTrustDomain } from '../../common/spiffeid/spiffe-id';
import type { DataStore, FederationRelationship } from '../datastore/datastore';
import type { RefreshResult } from '../federation/fetcher';
import { parseBootstrapBundle, parseRelationship, relationshipToJSON, storeBootstrapBundle } from '../federation/relationship-input';
import { body } from './http';

/** The part of the bundle fetcher this API drives. */
export interface FederationRefresher {
  relationshipChanged(td: string): void;
  refresh(td: string): Promise<RefreshResult>;
}

export interface FederationApiDeps {
  trustDomain: string;
  store: DataStore;
  fetcher: FederationRefresher;
  /** wakes agents after a bootstrap bundle was stored */
  notify: () => void;
  log: Logger;
}

const UPDATABLE = new Set(['bundle_endpoint_url', 'profile', 'endpoint_spiffe_id', 'bundle']);

/**
 * Federation relationships on the admin API. Mounted inside `adminApi` (which
 * parses JSON and maps thrown TesseraErrors to statuses):
 *   POST   /v1/federation               {trust_domain, bundle_endpoint_url, profile, endpoint_spiffe_id?, bundle?}
 *   GET    /v1/federation               → {federation_relationships: [...]}
 *   GET    /v1/federation/:td
 *   PATCH  /v1/federation/:td           {bundle_endpoint_url?, profile?, endpoint_spiffe_id?, bundle?}
 *   DELETE /v1/federation/:td           (the stored bundle is kept; delete it with /v1/federated-bundles)
 *   POST   /v1/federation/:td/refresh   fetch now → {relationship, changed, sequence, next_refresh_in}
 * `bundle` is a bootstrap SPIFFE bundle; https_spiffe needs one unless a bundle of
 * that trust domain is stored already.
 */
export function federationApi(d: FederationApiDeps): Router {
  const r = express.Router();
  const json = async (rel: FederationRelationship) => relationshipToJSON(rel, (await d.store.fetchBundle(rel.trustDomain))?.sequence ?? null);
  const tdParam = (req: Request) => parseTrustDomain(String(req.params.td));
  const existing = async (td: string) => {
    const rel = await d.store.fetchFederationRelationship(td);
    if (!rel) throw notFound(`no federation relationship with ${td}`);
    return rel;
  };

  /** Decodes the bootstrap bundle, or checks that https_spiffe has a usable stored one. */
  const bootstrap = async (rel: Pick<FederationRelationship, 'trustDomain' | 'profile'>, doc: unknown) => {
    if (doc !== undefined) return parseBootstrapBundle(rel.trustDomain, doc, rel.profile);
    if (rel.profile !== 'https_spiffe') return undefined;
    const stored = await d.store.fetchBundle(rel.trustDomain);
    if (!stored || decodeBundle(rel.trustDomain, stored.document).x509Authorities.length === 0) {
      throw invalidArgument(
        `https_spiffe needs a bootstrap bundle of ${rel.trustDomain} to authenticate its endpoint: pass bundle (tessera federation create --bundle-path FILE) or store one with tessera bundle set`,
      );
    }
    return undefined;
  };

  const saveBootstrap = async (b: Awaited<ReturnType<typeof bootstrap>>) => {
    if (!b) return;
    const sequence = await storeBootstrapBundle(d.store, b);
    audit(d.log, 'federated_bundle_set', { trust_domain: b.trustDomain, sequence, source: 'bootstrap' });
    d.notify();
  };

  r.post('/v1/federation', async (req, res) => {
    const b = body(req);
    const rel = parseRelationship(b, d.trustDomain);
    if (await d.store.fetchFederationRelationship(rel.trustDomain)) {
      throw alreadyExists(`a federation relationship with ${rel.trustDomain} already exists; change it with update`);
    }
    const boot = await bootstrap(rel, b.bundle);
    const created = await d.store.createFederationRelationship(rel);
    await saveBootstrap(boot);
    audit(d.log, 'federation_relationship_created', { trust_domain: rel.trustDomain, url: rel.bundleEndpointUrl, profile: rel.profile, endpoint_spiffe_id: rel.endpointSpiffeId });
    d.fetcher.relationshipChanged(rel.trustDomain);
    res.status(201).json({ relationship: await json(created) });
  });

  r.get('/v1/federation', async (_req, res) => {
    const all = await d.store.listFederationRelationships();
    res.json({ federation_relationships: await Promise.all(all.map(json)) });
  });

  r.get('/v1/federation/:td', async (req, res) => {
    res.json({ relationship: await json(await existing(tdParam(req))) });
  });

  r.patch('/v1/federation/:td', async (req, res) => {
    const td = tdParam(req);
    const old = await existing(td);
    const b = body(req);
    for (const k of Object.keys(b)) if (!UPDATABLE.has(k)) throw invalidArgument(`${k} cannot be updated (updatable: ${[...UPDATABLE].join(', ')})`);
    const profile = b.profile ?? old.profile;
    // Switching to https_web drops the endpoint ID, which only https_spiffe uses.
    const endpointId = 'endpoint_spiffe_id' in b ? b.endpoint_spiffe_id : profile === 'https_web' ? undefined : old.endpointSpiffeId;
    const rel = parseRelationship(
      { trust_domain: td, bundle_endpoint_url: b.bundle_endpoint_url ?? old.bundleEndpointUrl, profile, endpoint_spiffe_id: endpointId },
      d.trustDomain,
    );
    const boot = await bootstrap(rel, b.bundle);
    const updated = await d.store.updateFederationRelationship(td, {
      bundleEndpointUrl: rel.bundleEndpointUrl,
      profile: rel.profile,
      endpointSpiffeId: rel.endpointSpiffeId,
    });
    await saveBootstrap(boot);
    audit(d.log, 'federation_relationship_updated', { trust_domain: td, fields: Object.keys(b) });
    d.fetcher.relationshipChanged(td);
    res.json({ relationship: await json(updated) });
  });

  r.delete('/v1/federation/:td', async (req, res) => {
    const td = tdParam(req);
    const rel = await d.store.deleteFederationRelationship(td).catch(async (e) => {
      await existing(td); // NOT_FOUND with the API's wording
      throw e;
    });
    audit(d.log, 'federation_relationship_deleted', { trust_domain: td });
    d.fetcher.relationshipChanged(td);
    res.json({ deleted: rel.trustDomain, bundle_kept: (await d.store.fetchBundle(td)) !== undefined });
  });

  r.post('/v1/federation/:td/refresh', async (req, res) => {
    const td = tdParam(req);
    await existing(td);
    const out = await d.fetcher.refresh(td);
    res.json({ relationship: await json(await existing(td)), changed: out.changed, sequence: out.sequence, next_refresh_in: out.nextRefreshIn });
  });

  return r;
}
