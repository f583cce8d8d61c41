import type { Command } from 'commander';
import { decodeBundle, jwtBundleJwks } from '../common/bundle/bundle';
import type { AdminClient } from './admin-client';
import type { Out } from './output';

/**
 * `tessera oidc jwks`: the trust domain's JWT keys as a plain JWKS, for relying
 * parties registered in "inline JWKS" mode (a model provider's workload identity
 * federation without a public discovery URL). It holds every published key:
 * the active one, a prepared one, and retired ones still in the bundle, so a key
 * uploaded now keeps validating across the next activation (see Key rotation).
 */
export function registerOidcCommands(program: Command, client: () => AdminClient, out: () => Out): void {
  const oidc = program.command('oidc').description('OIDC and JWT key material for relying parties');
  oidc
    .command('jwks')
    .description('print the JWT keys (active, prepared, retired) as a JWKS to upload to a relying party')
    .action(async () => {
      const { trust_domain: td } = JSON.parse((await client().raw('GET', '/v1/health')).text) as { trust_domain: string };
      const decoded = decodeBundle(td, await client().request<object>('GET', '/v1/bundle?format=spiffe'));
      out().write(JSON.stringify(JSON.parse(jwtBundleJwks(decoded)), null, 2) + '\n');
    });
}
