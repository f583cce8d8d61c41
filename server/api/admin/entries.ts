import express, { type Router } from 'express';
import { F, audit } from '../../../common/log';
import { invalidArgument, notFound } from '../../../common/errors';
import { parseSpiffeId, parseTrustDomain } from '../../../common/spiffeid/spiffe-id';
import { entryToJSON, parseEntryUpdate, parseNewEntry, parseSelectors } from '../../registration/entry-input';
import { body, intParam } from '../http';
import { MATCHES, queryList, arrayField, requireAllowlist } from './shared';
import type { SelectorMatch } from '../../datastore/datastore';
import type { AdminApiDeps } from './deps';

/** Registration entries: create (batches, atomic; `?dry_run=true` only validates), list and count with filters and paging, show, update, delete. */
export function entriesRouter(d: AdminApiDeps): Router {
  const r = express.Router();
  const log = d.log;
  r.post('/v1/entries', async (req, res) => {
    const items = arrayField(body(req), 'entries');
    const parsed = items.map((e, i) => parseNewEntry(e, d.trustDomain, `entries.${i}.`));
    if (d.requireAudienceAllowlist) parsed.forEach((e, i) => requireAllowlist(e.jwtAudiences, `entries.${i}.`));
    // ?dry_run=true: the same validation, nothing stored (the console's form checks with it)
    if (req.query.dry_run === 'true') {
      res.json({ dry_run: true, valid: parsed.length });
      return;
    }
    const created = await d.store.createRegistrationEntries(parsed);
    for (const e of created) audit(log, 'entry_created', { [F.entryId]: e.id, [F.spiffeId]: e.spiffeId, parent_id: e.parentId, revision: e.revision });
    d.changes.notify();
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
    d.changes.notify();
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
    d.changes.notify();
    res.json({ deleted: out });
  });
  return r;
}
