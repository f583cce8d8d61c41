import express, { type Router, type Request } from 'express';
import type { Logger } from '../../common/log';
import { F, audit } from '../../common/log';
import { invalidArgument, notFound } from '../../common/errors';
import { parseSpiffeId, parseTrustDomain } from '../../common/spiffeid/spiffe-id';
import { bundleToPem, decodeBundle, encodeBundle } from '../../common/bundle/bundle';
import { parseAndVerifyCSR } from '../../common/x509svid/csr';
import type { AttestedNode, DataStore, SelectorMatch } from '../datastore/datastore';
import type { CAManager } from '../ca/ca-manager';
import type { ChangeFeed } from '../registration/change-feed';
import { entryToJSON, parseEntryUpdate, parseNewEntry, parseSelectors, RESERVED_PATH_PREFIX } from '../registration/entry-input';
import { hashJoinToken, newJoinToken } from '../attestor/node/join-token';
import { agentIdFor } from '../attestor/node/node-attestor';
import type { ServerMetrics } from '../telemetry';
import { checkAudience } from '../../common/jwtsvid/audience';
import { body, derField, errorHandler, intParam } from './http';

export interface AdminApiDeps {
  trustDomain: string;
  store: DataStore;
  ca: CAManager;
  changes: ChangeFeed;
  log: Logger;
  metrics: ServerMetrics;
  joinTokenTtl: number;
  defaultX509SvidTtl: number;
  defaultJwtSvidTtl: number;
  now: () => number;
  ready: () => boolean;
  /** `jwt.require_audience_allowlist`: entries must name their JWT audiences */
  requireAudienceAllowlist?: boolean;
  /** more admin routes (federation, issue #4), mounted before the 404 handler so errors map the same way */
  extraRouters?: Router[];
}

const MAX_BATCH = 1000;

function requireAllowlist(a: readonly string[] | undefined, where: string): void {
  if (!a || a.length === 0) {
    throw invalidArgument(`${where}jwt_audiences: this server requires every entry to list the JWT audiences its workloads may ask for (jwt.require_audience_allowlist)`);
  }
}
const MATCHES: SelectorMatch[] = ['exact', 'subset', 'superset', 'any'];

export const nodeToJSON = (n: AttestedNode) => ({
  spiffe_id: n.spiffeId,
  attestation_type: n.attestationType,
  serial_number: n.serialNumber,
  expires_at: n.expiresAt,
  selectors: n.selectors,
  banned: n.banned,
  created_at: n.createdAt,
  updated_at: n.updatedAt,
});

function arrayField(b: Record<string, unknown>, key: string): unknown[] {
  const v = b[key];
  if (!Array.isArray(v) || v.length === 0 || v.length > MAX_BATCH) throw invalidArgument(`${key} must be an array of 1..${MAX_BATCH} items`);
  return v;
}

const queryList = (v: unknown): string[] => (v === undefined ? [] : Array.isArray(v) ? v.map(String) : [String(v)]);

/**
 * The admin API, served only on the local admin Unix socket (directory mode 0770):
 * whoever can reach it is an operator. Batches are atomic: if any item is invalid
 * the request fails with 400 naming it, and nothing is stored.
 */
export function adminApi(d: AdminApiDeps): Router {
  const r = express.Router();
  const log = d.log;
  r.use(express.json({ limit: '16mb' }));
  const changed = async () => {
    d.changes.notify();
    d.metrics.entries.set(await d.store.countRegistrationEntries());
  };

  r.get('/v1/health', (_req, res) => {
    const ready = d.ready();
    res.status(ready ? 200 : 503).json({ live: true, ready, trust_domain: d.trustDomain });
  });

  // --- entries ---
  r.post('/v1/entries', async (req, res) => {
    const items = arrayField(body(req), 'entries');
    const parsed = items.map((e, i) => parseNewEntry(e, d.trustDomain, `entries.${i}.`));
    if (d.requireAudienceAllowlist) parsed.forEach((e, i) => requireAllowlist(e.jwtAudiences, `entries.${i}.`));
    const created = await d.store.createRegistrationEntries(parsed);
    for (const e of created) audit(log, 'entry_created', { [F.entryId]: e.id, [F.spiffeId]: e.spiffeId, parent_id: e.parentId, revision: e.revision });
    await changed();
    res.status(201).json({ entries: created.map(entryToJSON) });
  });

  r.get('/v1/entries', async (req, res) => {
    const q = req.query;
    const selectors = queryList(q.selector);
    const match = (q.match ?? 'exact') as SelectorMatch;
    if (!MATCHES.includes(match)) throw invalidArgument(`match must be one of ${MATCHES.join(', ')}`);
    const page = await d.store.listRegistrationEntries({
      spiffeId: q.spiffe_id ? parseSpiffeId(String(q.spiffe_id)).toString() : undefined,
      parentId: q.parent_id ? parseSpiffeId(String(q.parent_id)).toString() : undefined,
      selectors: selectors.length ? { selectors: parseSelectors(selectors), match } : undefined,
      federatesWith: q.federates_with ? parseTrustDomain(String(q.federates_with)) : undefined,
      hint: q.hint !== undefined ? String(q.hint) : undefined,
      pageSize: intParam(q.page_size, 'page_size', { min: 1, max: 1000 }),
      pageToken: q.page_token !== undefined ? String(q.page_token) : undefined,
    });
    res.json({ entries: page.items.map(entryToJSON), next_page_token: page.nextPageToken ?? null });
  });

  r.get('/v1/entries/count', async (_req, res) => {
    res.json({ count: await d.store.countRegistrationEntries() });
  });

  r.get('/v1/entries/:id', async (req, res) => {
    const e = await d.store.fetchRegistrationEntry(req.params.id as string);
    if (!e) throw notFound(`entry ${req.params.id} not found`);
    res.json({ entry: entryToJSON(e) });
  });

  r.patch('/v1/entries', async (req, res) => {
    const items = arrayField(body(req), 'entries');
    const updates = items.map((e, i) => {
      const id = (e as { id?: unknown } | null)?.id;
      if (typeof id !== 'string') throw invalidArgument(`entries.${i}.id must be a string`);
      const { id: _drop, ...rest } = e as Record<string, unknown>;
      const update = parseEntryUpdate(rest, d.trustDomain, `entries.${i}.`);
      if (d.requireAudienceAllowlist && update.jwtAudiences !== undefined) requireAllowlist(update.jwtAudiences, `entries.${i}.`);
      return { id, update };
    });
    for (const u of updates) if (!(await d.store.fetchRegistrationEntry(u.id))) throw notFound(`entry ${u.id} not found`);
    const out = [];
    for (const u of updates) {
      const e = await d.store.updateRegistrationEntry(u.id, u.update);
      audit(log, 'entry_updated', { [F.entryId]: e.id, [F.spiffeId]: e.spiffeId, fields: Object.keys(u.update), revision: e.revision });
      out.push(entryToJSON(e));
    }
    await changed();
    res.json({ entries: out });
  });

  r.post('/v1/entries/delete', async (req, res) => {
    const ids = arrayField(body(req), 'ids');
    ids.forEach((id, i) => {
      if (typeof id !== 'string') throw invalidArgument(`ids.${i} must be a string`);
    });
    for (const id of ids as string[]) if (!(await d.store.fetchRegistrationEntry(id))) throw notFound(`entry ${id} not found`);
    const out = [];
    for (const id of ids as string[]) {
      const e = await d.store.deleteRegistrationEntry(id);
      audit(log, 'entry_deleted', { [F.entryId]: e.id, [F.spiffeId]: e.spiffeId, revision: e.revision });
      out.push(e.id);
    }
    await changed();
    res.json({ deleted: out });
  });

  // --- agents ---
  r.get('/v1/agents', async (req, res) => {
    const page = await d.store.listAttestedNodes({
      banned: req.query.banned === undefined ? undefined : req.query.banned === 'true',
      attestationType: req.query.attestation_type ? String(req.query.attestation_type) : undefined,
      pageSize: intParam(req.query.page_size, 'page_size', { min: 1, max: 1000 }),
      pageToken: req.query.page_token !== undefined ? String(req.query.page_token) : undefined,
    });
    res.json({ agents: page.items.map(nodeToJSON), next_page_token: page.nextPageToken ?? null });
  });

  const agentParam = (req: Request) => parseSpiffeId(String(req.params.id)).toString();

  r.get('/v1/agents/:id', async (req, res) => {
    const id = agentParam(req);
    const n = await d.store.fetchAttestedNode(id);
    if (!n) throw notFound(`agent ${id} not found`);
    res.json({ agent: nodeToJSON(n) });
  });

  r.post('/v1/agents/:id/evict', async (req, res) => {
    const n = await d.store.deleteAttestedNode(agentParam(req));
    audit(log, 'agent_evicted', { [F.agentId]: n.spiffeId });
    d.changes.notify(); // wake its long poll so it learns at once
    res.json({ agent: nodeToJSON(n) });
  });

  r.post('/v1/agents/:id/ban', async (req, res) => {
    const n = await d.store.updateAttestedNode(agentParam(req), { banned: true, newSerialNumber: '', newExpiresAt: 0 });
    audit(log, 'agent_banned', { [F.agentId]: n.spiffeId });
    d.changes.notify();
    res.json({ agent: nodeToJSON(n) });
  });

  // --- join tokens ---
  r.post('/v1/join-tokens', async (req, res) => {
    const b = (req.body ?? {}) as Record<string, unknown>;
    const ttl = intParam(b.ttl, 'ttl', { min: 1, max: 30 * 24 * 3600 }) ?? d.joinTokenTtl;
    const { token, tokenId } = newJoinToken();
    const agentId = agentIdFor(d.trustDomain, 'join_token', tokenId);
    let alias: string | undefined;
    if (b.spiffe_id !== undefined) {
      // As SPIRE: the alias is an entry parented to the agent's ID, so workload
      // entries can name the alias as their parent.
      const aliasEntry = parseNewEntry(
        { spiffe_id: b.spiffe_id, parent_id: agentId, selectors: [`tessera:join_token:${tokenId}`] },
        d.trustDomain,
        '',
      );
      alias = aliasEntry.spiffeId;
      const [e] = await d.store.createRegistrationEntries([aliasEntry]);
      audit(log, 'entry_created', { [F.entryId]: e!.id, [F.spiffeId]: e!.spiffeId, parent_id: agentId, node_alias: true });
      await changed();
    }
    const expiresAt = d.now() + ttl;
    await d.store.createJoinToken({ tokenHash: hashJoinToken(token), tokenId, expiresAt });
    audit(log, 'join_token_created', { token_id: tokenId, [F.agentId]: agentId, [F.expiresAt]: expiresAt, alias });
    res.status(201).json({ token, token_id: tokenId, agent_id: agentId, spiffe_id: alias ?? null, expires_at: expiresAt });
  });

  // --- bundles ---
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

  // --- minting for operators ---
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
    const { publicKeySpki } = parseAndVerifyCSR(derField(b.csr, 'csr'));
    const svid = d.ca.mintX509SVID({ spiffeId, publicKeySpki, dnsNames: dns, ttl });
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

  for (const extra of d.extraRouters ?? []) r.use(extra);
  r.use((_req, _res) => {
    throw notFound('no such admin API route');
  });
  r.use(errorHandler(log, 'admin', (code) => d.metrics.errors.inc({ api: 'admin', code })));
  return r;
}
