import { readFileSync } from 'node:fs';
import type { KeyObject } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { encodeBundle, type SpiffeBundle } from '../../common/bundle/bundle';
import { invalidArgument, TesseraError } from '../../common/errors';
import type { Logger } from '../../common/log';
import { audit, subsystem } from '../../common/log';
import type { ServerConfig } from '../config';
import type { DataStore } from '../datastore/datastore';
import { startBundleEndpoint, type BundleEndpoint } from './bundle-endpoint';
import { BundleFetcher } from './fetcher';
import { parseBootstrapBundle, parseRelationship, storeBootstrapBundle } from './relationship-input';

export interface FederationDeps {
  config: ServerConfig;
  store: DataStore;
  /** the own trust domain's bundle (the CA's) */
  bundle: () => SpiffeBundle;
  /** the server's current X.509-SVID, served by an https_spiffe bundle endpoint */
  serverSvid: () => { key: KeyObject | string; cert: string };
  /** wakes agents: a federated bundle changed */
  notify: () => void;
  log: Logger;
  /** Unix seconds (the server's clock) */
  now?: () => number;
}

export interface Federation {
  fetcher: BundleFetcher;
  bundleEndpoint?: AddressInfo;
  /** the server SVID rotated: serve the new one */
  serverSvidRotated(): void;
  close(): Promise<void>;
}

/**
 * Starts federation: applies the config file's relationships, starts polling every
 * stored relationship (the fetcher always runs, so relationships made later with
 * the CLI work without a config section) and, when `federation.bundle_endpoint` is
 * configured, serves this trust domain's bundle.
 */
export async function startFederation(d: FederationDeps): Promise<Federation> {
  const log = subsystem(d.log, 'federation');
  const f = d.config.federation;
  await applyConfiguredRelationships(d, log);
  const fetcher = new BundleFetcher({
    store: d.store,
    ownTrustDomain: d.config.trustDomain,
    log,
    onChange: d.notify,
    now: d.now,
    minRefreshHint: f?.minRefreshHint ?? 30,
    deadlineMs: f?.fetchTimeoutMs,
    webCaPem: f?.webCaFile ? [readFileSync(f.webCaFile, 'utf8')] : [],
  });
  await fetcher.start();

  let endpoint: BundleEndpoint | undefined;
  let reload: NodeJS.Timeout | undefined;
  const be = f?.bundleEndpoint;
  if (be) {
    const web = () => ({ cert: readFileSync(be.certFile!, 'utf8'), key: readFileSync(be.keyFile!, 'utf8') });
    endpoint = await startBundleEndpoint({
      bind: be.bind,
      profile: be.profile,
      tls: be.profile === 'https_web' ? web : d.serverSvid,
      bundle: () => encodeBundle(d.bundle()),
      log: subsystem(d.log, 'bundle_endpoint'),
    });
    // A web certificate is renewed on disk (e.g. by certbot): pick it up within the hour.
    if (be.profile === 'https_web') (reload = setInterval(() => endpoint!.refresh(), 3_600_000)).unref();
  }
  return {
    fetcher,
    bundleEndpoint: endpoint?.address,
    serverSvidRotated: () => {
      if (be?.profile === 'https_spiffe') endpoint?.refresh();
    },
    async close() {
      clearInterval(reload);
      fetcher.close();
      await endpoint?.close();
    },
  };
}

/**
 * Creates or updates the relationships of `federation.federates_with`. A bootstrap
 * `bundle_file` is stored only when no bundle of that trust domain is stored yet: a
 * restart must not replace a newer fetched bundle with the old bootstrap one.
 * Relationships made through the API and absent from the file are left alone.
 */
async function applyConfiguredRelationships(d: FederationDeps, log: Logger): Promise<void> {
  for (const c of d.config.federation?.relationships ?? []) {
    const key = `federation.federates_with.${c.trustDomain}`;
    try {
      const rel = parseRelationship(
        { trust_domain: c.trustDomain, bundle_endpoint_url: c.bundleEndpointUrl, profile: c.profile, endpoint_spiffe_id: c.endpointSpiffeId },
        d.config.trustDomain,
      );
      if (!(await d.store.fetchBundle(rel.trustDomain))) {
        if (c.bundleFile) {
          const b = parseBootstrapBundle(rel.trustDomain, readFileSync(c.bundleFile, 'utf8'), rel.profile);
          audit(log, 'federated_bundle_set', { trust_domain: rel.trustDomain, sequence: await storeBootstrapBundle(d.store, b), source: 'config' });
        } else if (rel.profile === 'https_spiffe') {
          throw invalidArgument('https_spiffe needs bundle_file (the bootstrap bundle of the foreign trust domain)');
        }
      }
      const old = await d.store.fetchFederationRelationship(rel.trustDomain);
      if (!old) {
        await d.store.createFederationRelationship(rel);
        audit(log, 'federation_relationship_created', { trust_domain: rel.trustDomain, url: rel.bundleEndpointUrl, profile: rel.profile, source: 'config' });
      } else if (old.bundleEndpointUrl !== rel.bundleEndpointUrl || old.profile !== rel.profile || old.endpointSpiffeId !== rel.endpointSpiffeId) {
        const { trustDomain: _td, ...fields } = rel;
        await d.store.updateFederationRelationship(rel.trustDomain, fields);
        audit(log, 'federation_relationship_updated', { trust_domain: rel.trustDomain, source: 'config' });
      }
    } catch (e) {
      const msg = `${key}: ${(e as Error).message}`;
      throw e instanceof TesseraError ? new TesseraError(e.code, msg, { cause: e }) : invalidArgument(msg, e);
    }
  }
}
