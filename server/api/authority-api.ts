import express, { type Request, type Router } from 'express';
import { invalidArgument } from '../../common/errors';
import type { AuthorityInfo, AuthorityKind, CAManager } from '../ca/ca-manager';
import type { SVIDLedger } from '../ca/svid-ledger';
import type { DataStore } from '../datastore/datastore';
import { notFound } from '../../common/errors';

export interface AuthorityApiDeps {
  ca: Pick<CAManager, 'authorities' | 'prepare' | 'activate' | 'taint' | 'revoke' | 'preview'>;
  ledger: Pick<SVIDLedger, 'dependents' | 'listDependents'>;
  /** names the entries of listed dependents */
  store: Pick<DataStore, 'fetchRegistrationEntry'>;
}

/** How many dependent SVIDs an authority's detail lists. */
const DEPENDENTS_LISTED = 100;

/** The JSON form of a slot, with how many unexpired SVIDs it signed still are in use. */
export const authorityToJSON = (a: AuthorityInfo, svids: number) => ({
  id: a.id,
  kind: a.kind,
  state: a.state,
  tainted: a.tainted,
  key_id: a.keyId,
  not_before: a.notBefore,
  not_after: a.notAfter,
  prepare_at: a.prepareAt ?? null,
  activate_at: a.activateAt ?? null,
  upstream: a.upstream ?? false,
  svids,
});

const kindParam = (req: Request): AuthorityKind => {
  const k = String(req.params.kind);
  if (k !== 'x509' && k !== 'jwt') throw invalidArgument('authority kind must be x509 or jwt');
  return k;
};

const idField = (req: Request, required: boolean): string | undefined => {
  const v = (req.body as { authority_id?: unknown } | undefined)?.authority_id;
  if (v === undefined && !required) return undefined;
  if (typeof v !== 'string' || v === '') throw invalidArgument('authority_id must be a non-empty string (see `tessera authority <kind> show`)');
  return v;
};

/**
 * Operator control of the signing authorities (SPIRE's localauthority API),
 * mounted in the admin router:
 *   GET  /v1/authorities/:kind                                   → {authorities: [...]}
 *   GET  /v1/authorities/:kind/:id                               → {authority, dependent_svids, preview}
 *   POST /v1/authorities/:kind/prepare                           → {authority}
 *   POST /v1/authorities/:kind/activate {authority_id?}          → {authority}
 *   POST /v1/authorities/:kind/taint    {authority_id}           → {authority}
 *   POST /v1/authorities/:kind/revoke   {authority_id, force?}   → {authority, dependents}
 * `:kind` is `x509` or `jwt`. Revoke answers FAILED_PRECONDITION (412), naming
 * the number of SVIDs that still depend on the key, until the taint has propagated.
 * An authority's detail lists up to 100 of the SVIDs that depend on it (soonest
 * expiry first: kind, holding agent, entry and its SPIFFE ID) and, for activate,
 * taint, revoke and revoke with force, the message it would be refused with now
 * (null: it would go ahead); the operations run the same checks.
 */
export function authorityApi(d: AuthorityApiDeps): Router {
  const r = express.Router();
  const withCount = async (a: AuthorityInfo) => authorityToJSON(a, await d.ledger.dependents(a.id));

  r.get('/v1/authorities/:kind', async (req, res) => {
    const all = d.ca.authorities(kindParam(req));
    res.json({ authorities: await Promise.all(all.map(withCount)) });
  });

  r.get('/v1/authorities/:kind/:id', async (req, res) => {
    const kind = kindParam(req);
    const id = String(req.params.id);
    const a = d.ca.authorities(kind).find((x) => x.id === id);
    if (!a) throw notFound(`${kind} authority ${id} not found (see \`tessera authority ${kind} show\`)`);
    const n = await d.ledger.dependents(id);
    const listed = await d.ledger.listDependents(id, DEPENDENTS_LISTED);
    const spiffeIds = new Map<string, string | null>();
    for (const l of listed) {
      if (l.entryId && !spiffeIds.has(l.entryId)) spiffeIds.set(l.entryId, (await d.store.fetchRegistrationEntry(l.entryId))?.spiffeId ?? null);
    }
    res.json({
      authority: authorityToJSON(a, n),
      dependent_svids: listed.map((l) => ({
        kind: l.kind,
        agent_id: l.agentId,
        entry_id: l.entryId,
        spiffe_id: l.kind === 'agent' ? l.agentId : l.entryId ? spiffeIds.get(l.entryId) ?? null : null,
        expires_at: l.expiresAt,
      })),
      preview: d.ca.preview(kind, id, n),
    });
  });

  r.post('/v1/authorities/:kind/prepare', async (req, res) => {
    res.json({ authority: await withCount(await d.ca.prepare(kindParam(req))) });
  });

  r.post('/v1/authorities/:kind/activate', async (req, res) => {
    res.json({ authority: await withCount(await d.ca.activate(kindParam(req), idField(req, false))) });
  });

  r.post('/v1/authorities/:kind/taint', async (req, res) => {
    res.json({ authority: await withCount(await d.ca.taint(kindParam(req), idField(req, true)!)) });
  });

  r.post('/v1/authorities/:kind/revoke', async (req, res) => {
    const force = (req.body as { force?: unknown } | undefined)?.force;
    if (force !== undefined && typeof force !== 'boolean') throw invalidArgument('force must be true or false');
    const out = await d.ca.revoke(kindParam(req), idField(req, true)!, { force: force === true, dependents: (id) => d.ledger.dependents(id) });
    res.json({ authority: authorityToJSON(out.authority, out.dependents), dependents: out.dependents });
  });

  return r;
}
