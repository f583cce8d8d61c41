import type { Command } from 'commander';
import type { AdminClient } from './admin-client';
import { json, kv, ts, type Out } from './output';
import type { EntryJSON } from '../server/registration/entry-input';

const collect = (v: string, prev: string[] = []) => [...prev, v];
const int = (v: string) => {
  if (!/^\d+$/.test(v)) throw new Error(`"${v}" is not a non-negative integer`);
  return Number(v);
};

export function formatEntry(e: EntryJSON): string {
  const rows: Array<[string, string | number | null | undefined]> = [
    ['Entry ID', e.id],
    ['SPIFFE ID', e.spiffe_id],
    ['Parent ID', e.parent_id],
    ['Revision', e.revision],
    ['X509-SVID TTL', e.x509_svid_ttl || 'default'],
    ['JWT-SVID TTL', e.jwt_svid_ttl || 'default'],
    ['Expiration time', e.expires_at ? ts(e.expires_at) : undefined],
    ...e.selectors.map((s): [string, string] => ['Selector', `${s.type}:${s.value}`]),
    ...e.dns_names.map((d): [string, string] => ['DNS name', d]),
    ...e.federates_with.map((f): [string, string] => ['FederatesWith', f]),
    ['Hint', e.hint || undefined],
    ...(e.jwt_audiences ?? []).map((a): [string, string] => ['JWT audience', a]),
    ['JWT jti', e.jwt_jti ? 'unique per token' : undefined],
  ];
  return kv(rows);
}

function printEntries(out: Out, entries: EntryJSON[], verb = 'Found'): void {
  if (out.format === 'json') return json(out, { entries });
  out.write(`${verb} ${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}\n`);
  for (const e of entries) out.write(formatEntry(e) + '\n\n');
}

/** Fields shared by create and update; absent flags stay absent. */
function entryFields(o: Record<string, unknown>): Record<string, unknown> {
  const f: Record<string, unknown> = {};
  if (o.spiffeId !== undefined) f.spiffe_id = o.spiffeId;
  if (o.parentId !== undefined) f.parent_id = o.parentId;
  if (o.selector !== undefined) f.selectors = o.selector;
  if (o.x509SvidTtl !== undefined) f.x509_svid_ttl = o.x509SvidTtl;
  if (o.jwtSvidTtl !== undefined) f.jwt_svid_ttl = o.jwtSvidTtl;
  if (o.dns !== undefined) f.dns_names = o.dns;
  if (o.federatesWith !== undefined) f.federates_with = o.federatesWith;
  if (o.hint !== undefined) f.hint = o.hint;
  if (o.jwtAudience !== undefined) f.jwt_audiences = o.jwtAudience;
  if (o.jwtJti !== undefined) f.jwt_jti = o.jwtJti;
  if (o.entryExpiry !== undefined) f.expires_at = o.entryExpiry;
  return f;
}

function entryFlags(c: Command): Command {
  return c
    .option('--spiffe-id <ID>', 'the SPIFFE ID the workload gets')
    .option('--parent-id <ID>', 'the agent (or node alias) the workload runs under')
    .option('--selector <TYPE:VALUE>', 'a selector (repeat for more); all must match', collect)
    .option('--x509-svid-ttl <S>', 'X.509-SVID lifetime in seconds (0 = server default)', int)
    .option('--jwt-svid-ttl <S>', 'JWT-SVID lifetime in seconds (0 = server default)', int)
    .option('--dns <NAME>', 'a DNS SAN for the X.509-SVID (repeat for more)', collect)
    .option('--federates-with <TD>', 'a trust domain whose bundle the workload receives (repeat for more)', collect)
    .option('--hint <H>', 'a hint for workloads choosing between several SVIDs')
    .option('--jwt-audience <A>', 'an audience its workloads may get JWT-SVIDs for (repeat for more; a trailing * allows a prefix); default any', collect)
    .option('--jwt-jti', 'its JWT-SVIDs carry a unique jti (single-use; for relying parties that refuse replays)')
    .option('--entry-expiry <UNIX>', 'unix time after which the entry is removed', int);
}

export function registerEntryCommands(program: Command, client: () => AdminClient, out: () => Out): void {
  const entry = program.command('entry').description('manage registration entries');

  entryFlags(entry.command('create').description('create a registration entry'))
    .option('--entry-id <ID>', 'a custom entry ID')
    .action(async (o) => {
      if (!o.spiffeId || !o.parentId || !o.selector) throw new Error('entry create needs --spiffe-id, --parent-id and at least one --selector');
      const body = { ...entryFields(o), ...(o.entryId ? { id: o.entryId } : {}) };
      const r = await client().request<{ entries: EntryJSON[] }>('POST', '/v1/entries', { entries: [body] });
      if (out().format === 'json') return json(out(), r.entries[0]);
      out().write(formatEntry(r.entries[0]!) + '\n');
    });

  entryFlags(entry.command('update').description('update fields of an entry'))
    .requiredOption('--entry-id <ID>', 'the entry to update')
    .action(async (o) => {
      const r = await client().request<{ entries: EntryJSON[] }>('PATCH', '/v1/entries', { entries: [{ id: o.entryId, ...entryFields(o) }] });
      if (out().format === 'json') return json(out(), r.entries[0]);
      out().write(formatEntry(r.entries[0]!) + '\n');
    });

  entry
    .command('delete')
    .description('delete entries')
    .requiredOption('--entry-id <ID>', 'an entry to delete (repeat for more)', collect)
    .action(async (o) => {
      const r = await client().request<{ deleted: string[] }>('POST', '/v1/entries/delete', { ids: o.entryId });
      if (out().format === 'json') return json(out(), r);
      for (const id of r.deleted) out().write(`Deleted entry with ID: ${id}\n`);
    });

  entry
    .command('show')
    .description('show one entry, or list entries matching filters')
    .option('--entry-id <ID>', 'show this entry')
    .option('--spiffe-id <ID>', 'filter by SPIFFE ID')
    .option('--parent-id <ID>', 'filter by parent ID')
    .option('--selector <TYPE:VALUE>', 'filter by selector (repeat for more)', collect)
    .option('--match <MODE>', 'selector match: exact, subset, superset, any', 'superset')
    .option('--federates-with <TD>', 'filter by federated trust domain')
    .option('--hint <H>', 'filter by hint')
    .action(async (o) => {
      if (o.entryId) {
        const r = await client().request<{ entry: EntryJSON }>('GET', `/v1/entries/${encodeURIComponent(o.entryId)}`);
        return printEntries(out(), [r.entry]);
      }
      const q = new URLSearchParams();
      if (o.spiffeId) q.set('spiffe_id', o.spiffeId);
      if (o.parentId) q.set('parent_id', o.parentId);
      for (const s of o.selector ?? []) q.append('selector', s);
      if (o.selector) q.set('match', o.match);
      if (o.federatesWith) q.set('federates_with', o.federatesWith);
      if (o.hint !== undefined) q.set('hint', o.hint);
      q.set('page_size', '1000');
      const all: EntryJSON[] = [];
      for (let token: string | null = ''; token !== null; ) {
        if (token) q.set('page_token', token);
        const r: { entries: EntryJSON[]; next_page_token: string | null } = await client().request('GET', `/v1/entries?${q}`);
        all.push(...r.entries);
        token = r.next_page_token;
      }
      printEntries(out(), all);
    });

  entry
    .command('count')
    .description('count registration entries')
    .action(async () => {
      const r = await client().request<{ count: number }>('GET', '/v1/entries/count');
      if (out().format === 'json') return json(out(), r);
      out().write(`${r.count} registration entr${r.count === 1 ? 'y' : 'ies'}\n`);
    });
}
