import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import type { AdminClient } from './admin-client';
import { json, kv, ts, type Out } from './output';

/** A relationship as the admin API returns it (server/federation/relationship-input.ts). */
interface RelationshipJSON {
  trust_domain: string;
  bundle_endpoint_url: string;
  profile: string;
  endpoint_spiffe_id: string | null;
  last_refresh_at: number | null;
  last_error: string | null;
  bundle_sequence: number | null;
}

function formatRelationship(r: RelationshipJSON): string {
  return kv([
    ['Trust domain', r.trust_domain],
    ['Bundle endpoint URL', r.bundle_endpoint_url],
    ['Profile', r.profile],
    ['Endpoint SPIFFE ID', r.endpoint_spiffe_id ?? undefined],
    ['Bundle sequence', r.bundle_sequence ?? 'none stored'],
    ['Last refresh', r.last_refresh_at ? ts(r.last_refresh_at) : 'never'],
    ['Last error', r.last_error ?? undefined],
  ]);
}

/** Relationship fields from flags; absent flags stay absent (update changes only what is given). */
function fields(o: Record<string, string | undefined>): Record<string, unknown> {
  const f: Record<string, unknown> = {};
  if (o.bundleEndpointUrl !== undefined) f.bundle_endpoint_url = o.bundleEndpointUrl;
  if (o.profile !== undefined) f.profile = o.profile;
  if (o.endpointSpiffeId !== undefined) f.endpoint_spiffe_id = o.endpointSpiffeId;
  if (o.bundlePath !== undefined) {
    try {
      f.bundle = JSON.parse(readFileSync(o.bundlePath, 'utf8')) as unknown;
    } catch (e) {
      throw new Error(`cannot read the bundle file ${o.bundlePath}: ${(e as Error).message}`);
    }
  }
  return f;
}

function relationshipFlags(c: Command, create: boolean): Command {
  const flag = (f: string, d: string) => (create ? c.requiredOption(f, d) : c.option(f, d));
  flag('--bundle-endpoint-url <URL>', 'https URL of the foreign bundle endpoint');
  flag('--profile <P>', 'https_web (Web PKI certificate) or https_spiffe (the endpoint presents an X.509-SVID)');
  return c
    .option('--endpoint-spiffe-id <ID>', 'https_spiffe: the SPIFFE ID the endpoint must present (in the foreign trust domain)')
    .option('--bundle-path <FILE>', 'bootstrap SPIFFE bundle (JSON) of the foreign trust domain; required for https_spiffe unless one is stored');
}

/**
 * `tessera federation create|list|show|update|delete|refresh`: federation
 * relationships on the admin API (as `spire-server federation ...`).
 */
export function registerFederationCommands(program: Command, client: () => AdminClient, out: () => Out): void {
  const fed = program.command('federation').description('federation relationships with other trust domains');
  const path = (td: string) => `/v1/federation/${encodeURIComponent(td)}`;
  const show = (r: RelationshipJSON, verb?: string) => {
    if (out().format === 'json') return json(out(), r);
    if (verb) out().write(`${verb}\n`);
    out().write(formatRelationship(r) + '\n');
  };

  relationshipFlags(fed.command('create').description('federate with a trust domain: poll its bundle endpoint'), true)
    .requiredOption('--trust-domain <TD>', 'the foreign trust domain')
    .action(async (o) => {
      const r = await client().request<{ relationship: RelationshipJSON }>('POST', '/v1/federation', { trust_domain: o.trustDomain, ...fields(o) });
      show(r.relationship, 'Federation relationship created');
    });

  fed
    .command('list')
    .description('list federation relationships')
    .action(async () => {
      const r = await client().request<{ federation_relationships: RelationshipJSON[] }>('GET', '/v1/federation');
      if (out().format === 'json') return json(out(), r);
      const n = r.federation_relationships.length;
      out().write(`Found ${n} federation relationship${n === 1 ? '' : 's'}\n\n`);
      for (const x of r.federation_relationships) out().write(formatRelationship(x) + '\n\n');
    });

  fed
    .command('show')
    .description('show one federation relationship and its refresh status')
    .requiredOption('--trust-domain <TD>', 'the foreign trust domain')
    .action(async (o) => show((await client().request<{ relationship: RelationshipJSON }>('GET', path(o.trustDomain))).relationship));

  relationshipFlags(fed.command('update').description('change a relationship (only the flags given)'), false)
    .requiredOption('--trust-domain <TD>', 'the foreign trust domain')
    .action(async (o) => {
      const f = fields(o);
      if (Object.keys(f).length === 0) throw new Error('nothing to update: give --bundle-endpoint-url, --profile, --endpoint-spiffe-id or --bundle-path');
      const r = await client().request<{ relationship: RelationshipJSON }>('PATCH', path(o.trustDomain), f);
      show(r.relationship, 'Federation relationship updated');
    });

  fed
    .command('delete')
    .description('stop federating (the stored bundle is kept: `tessera bundle delete --id TD` removes it)')
    .requiredOption('--trust-domain <TD>', 'the foreign trust domain')
    .action(async (o) => {
      const r = await client().request<{ deleted: string; bundle_kept: boolean }>('DELETE', path(o.trustDomain));
      if (out().format === 'json') return json(out(), r);
      out().write(`Federation relationship with ${r.deleted} deleted${r.bundle_kept ? '; its bundle is kept (tessera bundle delete --id ' + r.deleted + ' removes it)' : ''}\n`);
    });

  fed
    .command('refresh')
    .description("fetch the trust domain's bundle now")
    .requiredOption('--trust-domain <TD>', 'the foreign trust domain')
    .action(async (o) => {
      const r = await client().request<{ relationship: RelationshipJSON; changed: boolean; sequence: number; next_refresh_in: number }>('POST', `${path(o.trustDomain)}/refresh`);
      if (out().format === 'json') return json(out(), r);
      out().write(`Bundle of ${o.trustDomain} ${r.changed ? 'updated' : 'unchanged'} (sequence ${r.sequence}); next refresh in ${r.next_refresh_in} s\n`);
    });
}
