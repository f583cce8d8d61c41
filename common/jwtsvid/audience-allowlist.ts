import { invalidArgument } from '../errors';
import { MAX_AUDIENCE_LENGTH } from './audience';

/**
 * An entry's JWT audience allowlist (`jwt_audiences`): which audiences its
 * workloads may ask JWT-SVIDs for. Without one any audience is allowed (as in
 * SPIRE, spire#2752), so a compromised workload can present itself to every
 * model provider and tool; with one, the server refuses to mint for any other
 * audience and the agent refuses before asking.
 *
 * Each item is an exact audience (`https://api.openai.com/v1`), or a prefix
 * ending in `*` (`spiffe://example.org/tools/*` allows every audience that
 * starts with `spiffe://example.org/tools/`). A `*` anywhere else is literal; a
 * lone `*` is refused (it would mean "no allowlist").
 */
export const MAX_ALLOWLIST_ITEMS = 32;

export function checkAudienceAllowlist(items: unknown, field = 'jwt_audiences'): string[] {
  if (!Array.isArray(items) || !items.every((a) => typeof a === 'string')) throw invalidArgument(`${field} must be an array of strings`);
  if (items.length > MAX_ALLOWLIST_ITEMS) throw invalidArgument(`${field} has ${items.length} items; at most ${MAX_ALLOWLIST_ITEMS} are allowed`);
  for (const a of items as string[]) {
    if (a === '' || a === '*') throw invalidArgument(`${field}: ${JSON.stringify(a)} is not an audience (leave the field out to allow any)`);
    if (a.length > MAX_AUDIENCE_LENGTH) throw invalidArgument(`${field}: an item of ${a.length} characters; at most ${MAX_AUDIENCE_LENGTH}`);
  }
  return [...new Set(items as string[])].sort();
}

/** Whether `audience` is allowed by `allowlist` (an empty allowlist allows everything). */
export function audienceAllowed(allowlist: readonly string[], audience: string): boolean {
  if (allowlist.length === 0) return true;
  return allowlist.some((a) => (a.endsWith('*') ? audience.startsWith(a.slice(0, -1)) : audience === a));
}

/** The audiences of a request the allowlist does not allow. */
export function disallowedAudiences(allowlist: readonly string[], audiences: readonly string[]): string[] {
  return audiences.filter((a) => !audienceAllowed(allowlist, a));
}
