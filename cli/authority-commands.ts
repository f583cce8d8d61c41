import type { Command } from 'commander';
import type { AdminClient } from './admin-client';
import { json, kv, ts, type Out } from './output';

/** An authority slot as the admin API returns it. */
interface AuthorityJSON {
  id: string;
  kind: 'x509' | 'jwt';
  state: string;
  tainted: boolean;
  key_id: string;
  not_before: number;
  not_after: number;
  prepare_at: number | null;
  activate_at: number | null;
  upstream: boolean;
  svids: number;
}

const formatAuthority = (a: AuthorityJSON) =>
  kv([
    ['Authority ID', a.id],
    [a.kind === 'x509' ? 'Subject key ID' : 'Key ID (kid)', a.key_id],
    ['State', a.state],
    ['Tainted', String(a.tainted)],
    ['Not before', ts(a.not_before)],
    ['Not after', ts(a.not_after)],
    ['Next prepared at', a.prepare_at === null ? undefined : ts(a.prepare_at)],
    ['Next activated at', a.activate_at === null ? undefined : ts(a.activate_at)],
    ['Intermediate of upstream', a.upstream ? 'true' : undefined],
    ['SVIDs in use', a.svids],
  ]);

/**
 * `tessera authority x509|jwt show|prepare|activate|taint|revoke` (SPIRE's
 * `spire-server localauthority`): the signing keys' slots and the manual steps of
 * a rotation, e.g. after a suspected key compromise:
 * prepare → activate → taint the old key → (agents re-issue) → revoke it.
 */
export function registerAuthorityCommands(program: Command, client: () => AdminClient, out: () => Out): void {
  const authority = program.command('authority').description('X.509 CA and JWT signing keys: show, rotate by hand, taint, revoke');
  for (const kind of ['x509', 'jwt'] as const) {
    const what = kind === 'x509' ? 'X.509 CA' : 'JWT signing key';
    const k = authority.command(kind).description(`the ${what} slots`);
    const base = `/v1/authorities/${kind}`;
    const one = (verb: string, r: { authority: AuthorityJSON }) => {
      if (out().format === 'json') return json(out(), r);
      out().write(`${what} ${verb}:\n${formatAuthority(r.authority)}\n`);
    };

    k.command('show')
      .description(`show every ${what} slot: id, key id, not-after, state, tainted`)
      .action(async () => {
        const r = await client().request<{ authorities: AuthorityJSON[] }>('GET', base);
        if (out().format === 'json') return json(out(), r);
        out().write(`Found ${r.authorities.length} ${what}${r.authorities.length === 1 ? '' : 's'}\n\n`);
        for (const a of r.authorities) out().write(formatAuthority(a) + '\n\n');
      });

    k.command('prepare')
      .description(`generate the next ${what} and publish it in the bundle (not yet signing); replaces a prepared one`)
      .action(async () => one('prepared', await client().request('POST', `${base}/prepare`)));

    k.command('activate')
      .description(`sign with the prepared ${what} from now on; the active one is retired (kept in the bundle until it expires)`)
      .option('--authority-id <ID>', 'the prepared authority (guards against activating another one than you looked at)')
      .action(async (o: { authorityId?: string }) => one('activated', await client().request('POST', `${base}/activate`, { authority_id: o.authorityId })));

    k.command('taint')
      .description(`mark a retired ${what} as tainted: agents re-issue, with jitter, everything it signed`)
      .requiredOption('--authority-id <ID>', 'the retired authority')
      .action(async (o: { authorityId: string }) => one('tainted', await client().request('POST', `${base}/taint`, { authority_id: o.authorityId })));

    k.command('revoke')
      .description(`remove a tainted ${what} from the bundle; refused while SVIDs it signed are still in use, unless --force`)
      .requiredOption('--authority-id <ID>', 'the tainted authority')
      .option('--force', 'revoke even though SVIDs it signed are still in use (their holders fail validation)')
      .action(async (o: { authorityId: string; force?: boolean }) => {
        const r = await client().request<{ authority: AuthorityJSON; dependents: number }>('POST', `${base}/revoke`, {
          authority_id: o.authorityId,
          force: o.force === true,
        });
        if (out().format === 'json') return json(out(), r);
        one('revoked', r);
        if (r.dependents > 0) out().write(`Warning: ${r.dependents} SVID${r.dependents === 1 ? '' : 's'} signed by it had not been re-issued\n`);
      });
  }
}
