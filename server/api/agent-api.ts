import express, { type Request, type Response, type NextFunction, type Router } from 'express';
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../../common/log';
import { F, audit } from '../../common/log';
import { TesseraError, invalidArgument, permissionDenied, HTTP_STATUS } from '../../common/errors';
import { parseSpiffeId } from '../../common/spiffeid/spiffe-id';
import { encodeBundle, decodeBundle, type SpiffeBundle } from '../../common/bundle/bundle';
import type { AttestedNode, DataStore, RegistrationEntry } from '../datastore/datastore';
import type { X509Issuance } from '../issuance/x509-issuance';
import type { CAManager, MintedX509 } from '../ca/ca-manager';
import { normSerial, type NodeService } from '../agents/node-service';
import type { EntryAuthorizer } from '../registration/authorizer';
import type { ChangeFeed } from '../registration/change-feed';
import { entryToJSON } from '../registration/entry-input';
import { AGENT_PATH_PREFIX } from '../attestor/node/node-attestor';
import type { ServerMetrics } from '../telemetry';
import { SVIDLedger } from '../ca/svid-ledger';
import { RateLimiter } from './rate-limit';
import { body, derField, errorHandler, intParam } from './http';
import { checkAudience } from '../../common/jwtsvid/audience';
import { disallowedAudiences } from '../../common/jwtsvid/audience-allowlist';
import type { IdentityAnomalies } from '../../common/anomaly/identity-anomalies';

export const MAX_BATCH = 1000;

export interface AgentApiDeps {
  trustDomain: string;
  store: DataStore;
  ca: CAManager;
  nodes: NodeService;
  authorizer: EntryAuthorizer;
  changes: ChangeFeed;
  log: Logger;
  metrics: ServerMetrics;
  defaultX509SvidTtl: number;
  defaultJwtSvidTtl: number;
  attestationPerSecond: number;
  signingPerSecond: number;
  maxWaitSeconds: number;
  /** records which authority signed each SVID, to count what still depends on a tainted key */
  ledger?: Pick<SVIDLedger, 'record'>;
  /** verify CSR → mint → ledger for X.509-SVID batches (on the signing pool when there is one) */
  issuance: X509Issuance;
  /** identity-use anomalies per agent (requests by route, JWT-SVIDs per audience set, denials) */
  anomalies?: Pick<IdentityAnomalies, 'record'>;
  /** milliseconds on a clock that never steps (long-poll deadlines); default performance.now */
  monotonicMs?: () => number;
}

type AgentRequest = Request & { node?: AttestedNode };


const chainJSON = (s: MintedX509) => ({ x509_svid: s.chain.map((c) => c.toString('base64')), expires_at: s.expiresAt });

/**
 * The agent API (HTTPS; mutual TLS for everything but attestation). Routes:
 *   POST /agent/v1/attest                  {type, payload, csr}      → svid or challenge
 *   POST /agent/v1/attest/response         {challenge_id, response}  → svid
 *   POST /agent/v1/renew                   {csr}                     → svid
 *   GET  /agent/v1/entries?since=R&wait=S                            → {revision, full, entries, removed, bundle_sequence, tainted_authorities}
 *   POST /agent/v1/x509-svids              {requests:[{entry_id, csr}]} → {results:[...]}
 *   POST /agent/v1/jwt-svids               {entry_id, audience:[...], ttl?} → {spiffe_id, token, expires_at}
 *   GET  /agent/v1/bundle                                            → {bundle, federated_bundles}
 */
export function agentApi(d: AgentApiDeps): Router {
  const r = express.Router();
  const attestLimit = new RateLimiter(d.attestationPerSecond, 'attestation');
  const signLimit = new RateLimiter(d.signingPerSecond, 'signing');
  const log = d.log;
  r.use(express.json({ limit: '8mb' }));
  // Each authenticated agent request, once answered, feeds anomaly detection (the agent is known by then).
  if (d.anomalies) {
    const anomalies = d.anomalies;
    r.use((req: AgentRequest, res, next) => {
      res.on('finish', () => {
        if (!req.node) return;
        const aud = req.path === '/agent/v1/jwt-svids' && Array.isArray(req.body?.audience) ? ` ${[...(req.body.audience as unknown[])].map(String).sort().join(',').slice(0, 256)}` : '';
        anomalies.record(req.node.spiffeId, `${req.method} ${req.path}${aud}`, res.statusCode === 403, { [F.agentId]: req.node.spiffeId });
      });
      next();
    });
  }

  const remoteOf = (req: Request) => req.socket.remoteAddress ?? 'unknown';

  const svidResponse = (agentId: string, svid: MintedX509) => ({
    agent_id: agentId,
    ...chainJSON(svid),
    bundle: JSON.parse(encodeBundle(d.ca.bundle())),
  });

  r.post('/agent/v1/attest', async (req, res) => {
    attestLimit.take(remoteOf(req));
    const b = body(req);
    const out = await d.nodes.attest(b.type, b.payload, derField(b.csr, 'csr'), remoteOf(req));
    if ('done' in out) res.json(svidResponse(out.done.agentId, out.done.svid));
    else res.json({ challenge_id: out.challengeId, challenge: out.challenge.toString('base64') });
  });

  // Not rate-limited: it continues an attestation already counted, and needs a live challenge id.
  r.post('/agent/v1/attest/response', async (req, res) => {
    const b = body(req);
    const out = await d.nodes.answer(b.challenge_id, derField(b.response, 'response'), remoteOf(req));
    res.json(svidResponse(out.agentId, out.svid));
  });

  // Public: the bundle is public information. An agent bootstrapping with a pinned
  // root fingerprint fetches it here and accepts it only if the pin matches.
  r.get('/agent/v1/bootstrap-bundle', (_req, res) => {
    res.type('application/json').send(encodeBundle(d.ca.bundle()));
  });

  // Everything below requires the agent's SVID as TLS client certificate.
  const requireAgent = async (req: AgentRequest, _res: Response, next: NextFunction) => {
    const sock = req.socket as TLSSocket & { tesseraPeer?: { agentId: string; serial: string } };
    if (!sock.tesseraPeer) {
      const raw = sock.authorized ? sock.getPeerCertificate()?.raw : undefined;
      if (!raw) throw new TesseraError('UNAUTHENTICATED', 'this endpoint needs the agent SVID as TLS client certificate; attest first');
      const cert = new X509Certificate(raw);
      const uris = (cert.subjectAltName ?? '').split(', ').filter((s) => s.startsWith('URI:'));
      const id = uris.length === 1 ? parseSpiffeId(uris[0]!.slice(4)) : undefined;
      if (!id || id.trustDomain !== d.trustDomain || !id.path.startsWith(AGENT_PATH_PREFIX)) {
        throw permissionDenied('client certificate is not an agent SVID of this trust domain');
      }
      sock.tesseraPeer = { agentId: id.toString(), serial: normSerial(cert.serialNumber) };
    }
    const node = await d.nodes.authenticate(sock.tesseraPeer.agentId, sock.tesseraPeer.serial).catch((e: unknown) => {
      if (e instanceof TesseraError && e.code === 'PERMISSION_DENIED') {
        audit(log, 'agent_request_denied', { [F.agentId]: sock.tesseraPeer!.agentId, [F.reason]: e.message, path: req.path });
      }
      throw e;
    });
    req.node = node;
    next();
  };

  r.post('/agent/v1/renew', requireAgent, async (req: AgentRequest, res) => {
    signLimit.take(req.node!.spiffeId);
    const svid = await d.nodes.renew(req.node!, derField(body(req).csr, 'csr'));
    res.json(svidResponse(req.node!.spiffeId, svid));
  });

  r.get('/agent/v1/entries', requireAgent, async (req: AgentRequest, res) => {
    const since = intParam(req.query.since, 'since');
    const wait = intParam(req.query.wait, 'wait', { min: 0, max: d.maxWaitSeconds }) ?? 0;
    const agent = { spiffeId: req.node!.spiffeId, selectors: req.node!.selectors };
    // One version for the own bundle and the federated bundles this agent's entries
    // use, so a federated bundle update also wakes the agent (equality is all it needs).
    const bundleSeq = async (): Promise<number> => {
      const own = d.ca.bundle().sequence ?? 0;
      const set = await d.authorizer.authorized(agent);
      const tds = [...new Set(set.entries.flatMap((e) => e.federatesWith))].sort();
      if (tds.length === 0) return own;
      let h = 0x811c9dc5;
      for (const td of tds) {
        const seq = (await d.store.fetchBundle(td))?.sequence ?? -1;
        for (const ch of `${td}:${seq};`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
      }
      return own * 2 ** 21 + (h % 2 ** 21);
    };
    const seenBundle = intParam(req.query.bundle_sequence, 'bundle_sequence');
    // read before the store is checked: a change committed during the check then ends the wait at once
    let seen = d.changes.version;
    let sync = await d.authorizer.sync(agent, since);
    if (wait > 0 && !sync.full && sync.entries.length === 0 && sync.removed.length === 0 && (seenBundle === undefined || seenBundle === (await bundleSeq()))) {
      // Long poll: hold the request until something changes or `wait` passes.
      const ac = new AbortController();
      res.on('close', () => ac.abort()); // client went away
      const mono = d.monotonicMs ?? (() => performance.now());
      const deadline = mono() + wait * 1000;
      while (mono() < deadline && !ac.signal.aborted) {
        await d.changes.wait(deadline - mono(), ac.signal, seen);
        seen = d.changes.version;
        if (ac.signal.aborted) break;
        // An eviction or ban also wakes long polls: re-check, so the agent learns at once (403).
        const peer = (req.socket as TLSSocket & { tesseraPeer?: { agentId: string; serial: string } }).tesseraPeer!;
        await d.nodes.authenticate(peer.agentId, peer.serial);
        sync = await d.authorizer.sync(agent, since);
        if (sync.full || sync.entries.length || sync.removed.length || (seenBundle !== undefined && seenBundle !== (await bundleSeq()))) break;
      }
      if (ac.signal.aborted) return;
    }
    res.json({
      revision: sync.revision,
      full: sync.full,
      entries: sync.entries.map(entryToJSON),
      removed: sync.removed,
      bundle_sequence: await bundleSeq(),
      // Keys being phased out after a suspected compromise: agents re-issue what they signed.
      // A taint bumps the bundle sequence, so long polls return with this at once.
      tainted_authorities: d.ca.taintedAuthorities(),
    });
  });

  r.post('/agent/v1/x509-svids', requireAgent, async (req: AgentRequest, res) => {
    const reqs = body(req).requests;
    if (!Array.isArray(reqs) || reqs.length === 0 || reqs.length > MAX_BATCH) {
      throw invalidArgument(`requests must be an array of 1..${MAX_BATCH} {entry_id, csr} objects`);
    }
    const agentId = req.node!.spiffeId;
    signLimit.take(agentId, reqs.length);
    const set = await d.authorizer.authorized({ spiffeId: agentId, selectors: req.node!.selectors });
    const issued: Array<{ entry_id: string; spiffe_id: string; serial: string }> = [];
    const denied: string[] = [];
    // Authorize and check the fields of every item here; verify, sign and record in the issuance service.
    const results: Array<Record<string, unknown>> = new Array(reqs.length);
    const toIssue: Array<{ i: number; entry: RegistrationEntry; csr: Buffer }> = [];
    reqs.forEach((item: unknown, i: number) => {
      const entryId = (item as { entry_id?: unknown } | null)?.entry_id;
      try {
        if (typeof entryId !== 'string') throw invalidArgument(`requests.${i}.entry_id must be a string`);
        const entry = set.byId.get(entryId);
        if (!entry) {
          denied.push(entryId);
          throw permissionDenied(`agent is not authorized for entry ${entryId}`);
        }
        toIssue.push({ i, entry, csr: derField((item as { csr?: unknown }).csr, `requests.${i}.csr`) });
      } catch (e) {
        if (!(e instanceof TesseraError)) throw e;
        results[i] = { entry_id: typeof entryId === 'string' ? entryId : null, error: { code: e.code, message: e.message } };
      }
    });
    const minted = await d.issuance.issue(agentId, toIssue);
    minted.forEach((svid, k) => {
      const { i, entry } = toIssue[k]!;
      if (svid instanceof TesseraError) {
        results[i] = { entry_id: entry.id, error: { code: svid.code, message: svid.message } };
        return;
      }
      issued.push({ entry_id: entry.id, spiffe_id: entry.spiffeId, serial: svid.serialHex });
      results[i] = { entry_id: entry.id, spiffe_id: entry.spiffeId, ...chainJSON(svid) };
    });
    if (issued.length) {
      d.metrics.svidsIssued.inc({ type: 'x509', api: 'agent' }, issued.length);
      audit(log, 'x509_svids_issued', { [F.agentId]: agentId, count: issued.length, svids: issued });
    }
    if (denied.length) {
      d.metrics.errors.inc({ api: 'agent', code: 'PERMISSION_DENIED' }, denied.length);
      audit(log, 'svid_denied', { [F.agentId]: agentId, entry_ids: denied, [F.reason]: 'entry not authorized for agent' });
    }
    // Per-item results; when nothing succeeded, the HTTP status is that of the first error.
    const firstErr = results.find((x) => 'error' in x) as { error: { code: keyof typeof HTTP_STATUS } } | undefined;
    res.status(issued.length === 0 && firstErr ? HTTP_STATUS[firstErr.error.code] : 200).json({ results });
  });

  r.post('/agent/v1/jwt-svids', requireAgent, async (req: AgentRequest, res) => {
    const b = body(req);
    const agentId = req.node!.spiffeId;
    signLimit.take(agentId);
    if (typeof b.entry_id !== 'string') throw invalidArgument('entry_id must be a string');
    const aud = checkAudience(b.audience);
    const set = await d.authorizer.authorized({ spiffeId: agentId, selectors: req.node!.selectors });
    const entry = set.byId.get(b.entry_id);
    if (!entry) {
      audit(log, 'svid_denied', { [F.agentId]: agentId, entry_ids: [b.entry_id], [F.reason]: 'entry not authorized for agent', type: 'jwt' });
      throw permissionDenied(`agent is not authorized for entry ${b.entry_id}`);
    }
    const refused = disallowedAudiences(entry.jwtAudiences, aud);
    if (refused.length > 0) {
      audit(log, 'svid_denied', { [F.agentId]: agentId, [F.entryId]: entry.id, [F.spiffeId]: entry.spiffeId, audience: aud, [F.reason]: 'audience not in the entry allowlist', type: 'jwt' });
      throw permissionDenied(`entry ${entry.id} (${entry.spiffeId}) may not have jwt-svids for ${refused.map((a) => JSON.stringify(a)).join(', ')}: not in its jwt_audiences`);
    }
    // The entry (or the server default) decides the lifetime; an agent may only ask for less.
    const entryTtl = entry.jwtSvidTtl || d.defaultJwtSvidTtl;
    const requested = intParam(b.ttl, 'ttl', { min: 1, max: 86400 });
    const ttl = requested === undefined ? entryTtl : Math.min(requested, entryTtl);
    const out = d.ca.mintJWTSVID({ spiffeId: entry.spiffeId, audience: aud, ttl, jti: entry.jwtJti });
    await d.ledger?.record([{ holder: SVIDLedger.jwtHolder(agentId, entry.id, aud), authorityId: out.authorityId, expiresAt: out.expiresAt }]);
    d.metrics.svidsIssued.inc({ type: 'jwt', api: 'agent' });
    audit(log, 'jwt_svid_issued', { [F.agentId]: agentId, [F.entryId]: entry.id, [F.spiffeId]: entry.spiffeId, audience: aud, [F.expiresAt]: out.expiresAt });
    res.json({ spiffe_id: entry.spiffeId, token: out.token, expires_at: out.expiresAt });
  });

  // Bundles encoded once per trust domain and stored sequence: every agent asks after each change,
  // and decoding plus re-encoding a large federated bundle per request stalled the server.
  const encoded = new Map<string, { sequence: number; json: string }>();
  const bundleJSON = (td: string, sequence: number, decode: () => SpiffeBundle): string => {
    const hit = encoded.get(td);
    if (hit?.sequence === sequence) return hit.json;
    const json = encodeBundle(decode());
    encoded.set(td, { sequence, json });
    return json;
  };
  r.get('/agent/v1/bundle', requireAgent, async (req: AgentRequest, res) => {
    const set = await d.authorizer.authorized({ spiffeId: req.node!.spiffeId, selectors: req.node!.selectors });
    const tds = [...new Set(set.entries.flatMap((e) => e.federatesWith))].sort();
    const federated: string[] = [];
    for (const td of tds) {
      const b = await d.store.fetchBundle(td);
      if (b) federated.push(`${JSON.stringify(td)}:${bundleJSON(td, b.sequence, () => decodeBundle(td, b.document))}`);
    }
    const own = d.ca.bundle();
    const ownJSON = bundleJSON(d.trustDomain, own.sequence ?? 0, () => own);
    res
      .type('application/json')
      .send(`{"trust_domain":${JSON.stringify(d.trustDomain)},"bundle":${ownJSON},"federated_bundles":{${federated.join(',')}}}`);
  });

  r.use(errorHandler(log, 'agent', (code) => d.metrics.errors.inc({ api: 'agent', code })));
  return r;
}
