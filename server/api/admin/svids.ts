import express, { type Router } from 'express';
import { F, audit } from '../../../common/log';
import { invalidArgument } from '../../../common/errors';
import { parseSpiffeId } from '../../../common/spiffeid/spiffe-id';
import { bundleToPem } from '../../../common/bundle/bundle';
import { parseNewEntry, RESERVED_PATH_PREFIX } from '../../registration/entry-input';
import { checkAudience } from '../../../common/jwtsvid/audience';
import { body, derField, intParam } from '../http';
import type { AdminApiDeps } from './deps';

/** SVIDs minted for operators (x509 from a CSR, JWT), outside any registration entry. */
export function svidsRouter(d: AdminApiDeps): Router {
  const r = express.Router();
  const log = d.log;
  const mintId = (v: unknown) => {
    if (typeof v !== 'string') throw invalidArgument('spiffe_id must be a string');
    const id = parseSpiffeId(v);
    if (id.trustDomain !== d.trustDomain) throw invalidArgument(`spiffe_id must be in trust domain ${d.trustDomain}`);
    if (!id.path) throw invalidArgument('spiffe_id needs a path');
    if ((id.path + '/').startsWith(RESERVED_PATH_PREFIX)) throw invalidArgument(`spiffe_id is under the reserved path ${RESERVED_PATH_PREFIX}`);
    return id.toString();
  };

  r.post('/v1/svids/x509', async (req, res) => {
    const b = body(req);
    const spiffeId = mintId(b.spiffe_id);
    const ttl = intParam(b.ttl, 'ttl', { min: 1, max: 365 * 86400 }) ?? d.defaultX509SvidTtl;
    const dns = b.dns_names === undefined ? [] : parseNewEntry({ spiffe_id: spiffeId, parent_id: spiffeId, selectors: ['a:b'], dns_names: b.dns_names }, d.trustDomain).dnsNames;
    const svid = d.issuance.mintOne({ spiffeId, csr: derField(b.csr, 'csr'), dnsNames: dns, ttl });
    d.metrics.svidsIssued.inc({ type: 'x509', api: 'admin' });
    audit(log, 'x509_svid_minted', { [F.spiffeId]: spiffeId, [F.serial]: svid.serialHex, [F.expiresAt]: svid.expiresAt });
    res.json({ spiffe_id: spiffeId, x509_svid: svid.chain.map((c) => c.toString('base64')), expires_at: svid.expiresAt, bundle_pem: bundleToPem(d.ca.bundle()) });
  });

  r.post('/v1/svids/jwt', async (req, res) => {
    const b = body(req);
    const spiffeId = mintId(b.spiffe_id);
    const aud = checkAudience(b.audience);
    const ttl = intParam(b.ttl, 'ttl', { min: 1, max: 86400 }) ?? d.defaultJwtSvidTtl;
    const out = d.ca.mintJWTSVID({ spiffeId, audience: aud, ttl });
    d.metrics.svidsIssued.inc({ type: 'jwt', api: 'admin' });
    audit(log, 'jwt_svid_minted', { [F.spiffeId]: spiffeId, audience: aud, [F.expiresAt]: out.expiresAt });
    res.json({ spiffe_id: spiffeId, token: out.token, expires_at: out.expiresAt });
  });
  return r;
}
