import express, { type Request, type Router } from 'express';
import { audit } from '../../../common/log';
import { invalidArgument, notFound } from '../../../common/errors';
import { parseTrustDomain } from '../../../common/spiffeid/spiffe-id';
import { bundleToPem, decodeBundle, encodeBundle } from '../../../common/bundle/bundle';
import { body } from '../http';
import type { AdminApiDeps } from './deps';

/** The own bundle (JSON or PEM) and federated bundles: list, show, set, delete. */
export function bundlesRouter(d: AdminApiDeps): Router {
  const r = express.Router();
  const log = d.log;
  r.get('/v1/bundle', (req, res) => {
    const format = String(req.query.format ?? 'spiffe');
    const b = d.ca.bundle();
    if (format === 'pem') res.type('application/x-pem-file').send(bundleToPem(b));
    else if (format === 'spiffe') res.type('application/json').send(encodeBundle(b));
    else throw invalidArgument('format must be pem or spiffe');
  });

  r.get('/v1/federated-bundles', async (_req, res) => {
    const all = (await d.store.listBundles()).filter((b) => b.trustDomain !== d.trustDomain);
    res.json({ bundles: all.map((b) => ({ trust_domain: b.trustDomain, sequence: b.sequence, updated_at: b.updatedAt, bundle: JSON.parse(b.document) })) });
  });

  const federatedTd = (req: Request) => {
    const td = parseTrustDomain(String(req.params.td));
    if (td === d.trustDomain) throw invalidArgument(`${td} is this server's own trust domain; its bundle is managed by the CA`);
    return td;
  };

  r.get('/v1/federated-bundles/:td', async (req, res) => {
    const td = federatedTd(req);
    const b = await d.store.fetchBundle(td);
    if (!b) throw notFound(`no federated bundle for ${td}`);
    res.type('application/json').send(b.document);
  });

  r.put('/v1/federated-bundles/:td', async (req, res) => {
    const td = federatedTd(req);
    const doc = decodeBundle(td, body(req));
    const prev = await d.store.fetchBundle(td);
    const sequence = doc.sequence ?? (prev ? prev.sequence + 1 : 1);
    const saved = await d.store.setBundle({ trustDomain: td, document: encodeBundle({ ...doc, sequence }), sequence });
    audit(log, 'federated_bundle_set', { trust_domain: td, sequence, x509_authorities: doc.x509Authorities.length, jwt_authorities: doc.jwtAuthorities.length });
    d.changes.notify();
    res.json({ trust_domain: td, sequence: saved.sequence });
  });

  r.delete('/v1/federated-bundles/:td', async (req, res) => {
    const td = federatedTd(req);
    if (!(await d.store.fetchBundle(td))) throw notFound(`no federated bundle for ${td}`);
    await d.store.deleteBundle(td);
    audit(log, 'federated_bundle_deleted', { trust_domain: td });
    d.changes.notify();
    res.json({ deleted: td });
  });
  return r;
}
