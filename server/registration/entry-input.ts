import { z } from 'zod';
import { invalidArgument } from '../../common/errors';
import { parseSpiffeId, parseTrustDomain } from '../../common/spiffeid/spiffe-id';
import { parseSelector, sortSelectors, validateSelector } from '../../common/selector';
import { checkAudienceAllowlist } from '../../common/jwtsvid/audience-allowlist';
import type { NewRegistrationEntry, RegistrationEntry, RegistrationEntryUpdate, Selector } from '../datastore/datastore';

/** Paths under /tessera/ name agents and the server itself; no workload may claim one. */
export const RESERVED_PATH_PREFIX = '/tessera/';
export const MAX_TTL_SECONDS = 365 * 24 * 3600;
const MAX_HINT_BYTES = 1024;
const DNS_NAME = /^(?=.{1,253}$)(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

const selectorIn = z.union([z.string(), z.object({ type: z.string(), value: z.string() }).strict()]);
const ttl = z.number().int().min(0).max(MAX_TTL_SECONDS);

const createShape = z
  .object({
    id: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be 1-64 characters of A-Z a-z 0-9 . _ -').optional(),
    spiffe_id: z.string(),
    parent_id: z.string(),
    selectors: z.array(selectorIn).min(1, 'at least one selector is required').max(64),
    x509_svid_ttl: ttl.default(0),
    jwt_svid_ttl: ttl.default(0),
    dns_names: z.array(z.string()).max(32).default([]),
    federates_with: z.array(z.string()).max(64).default([]),
    // SPIRE's admin and downstream flags have no meaning in Tessera (the admin API is
    // served on the admin socket only, and no nested servers exist); `false`, as SPIRE
    // JSON exports write it, is accepted so such files import, `true` is refused.
    admin: z.literal(false, { error: 'admin entries are not supported: the admin API is only on the admin socket (leave the field out)' }).optional(),
    downstream: z.literal(false, { error: 'downstream entries are not supported: Tessera has no nested servers (leave the field out)' }).optional(),
    hint: z.string().default(''),
    jwt_audiences: z.array(z.string()).optional(),
    jwt_jti: z.boolean().optional(),
    expires_at: z.number().int().positive().nullable().default(null),
  })
  .strict();

const updateShape = createShape.partial().omit({ id: true }).strict();

function zodMessage(e: z.ZodError, prefix: string): string {
  return e.issues
    .slice(0, 3)
    .map((i) => `${prefix}${i.path.join('.')}: ${i.message}`)
    .join('; ');
}

/**
 * Validates one entry as given to the admin API (snake_case JSON) and returns the
 * datastore shape. Errors are INVALID_ARGUMENT naming the field; nothing is stored.
 */
export function parseNewEntry(body: unknown, trustDomain: string, where = ''): NewRegistrationEntry {
  const r = createShape.safeParse(body);
  if (!r.success) throw invalidArgument(zodMessage(r.error, where));
  const v = r.data;
  const entry: NewRegistrationEntry = {
    id: v.id,
    spiffeId: checkSpiffeId(v.spiffe_id, trustDomain, `${where}spiffe_id`),
    parentId: checkParentId(v.parent_id, trustDomain, `${where}parent_id`),
    selectors: parseSelectors(v.selectors, where),
    x509SvidTtl: v.x509_svid_ttl,
    jwtSvidTtl: v.jwt_svid_ttl,
    dnsNames: checkDnsNames(v.dns_names, where),
    federatesWith: checkFederatesWith(v.federates_with, trustDomain, where),
    hint: checkHint(v.hint, where),
    jwtAudiences: checkAudienceAllowlist(v.jwt_audiences ?? [], `${where}jwt_audiences`),
    jwtJti: v.jwt_jti ?? false,
    expiresAt: v.expires_at,
  };
  return entry;
}

/** Validates a partial update (absent fields stay as they are). */
export function parseEntryUpdate(body: unknown, trustDomain: string, where = ''): RegistrationEntryUpdate {
  const r = updateShape.safeParse(body);
  if (!r.success) throw invalidArgument(zodMessage(r.error, where));
  const v = r.data;
  const u: RegistrationEntryUpdate = {};
  if (v.spiffe_id !== undefined) u.spiffeId = checkSpiffeId(v.spiffe_id, trustDomain, `${where}spiffe_id`);
  if (v.parent_id !== undefined) u.parentId = checkParentId(v.parent_id, trustDomain, `${where}parent_id`);
  if (v.selectors !== undefined) u.selectors = parseSelectors(v.selectors, where);
  if (v.x509_svid_ttl !== undefined) u.x509SvidTtl = v.x509_svid_ttl;
  if (v.jwt_svid_ttl !== undefined) u.jwtSvidTtl = v.jwt_svid_ttl;
  if (v.dns_names !== undefined) u.dnsNames = checkDnsNames(v.dns_names, where);
  if (v.federates_with !== undefined) u.federatesWith = checkFederatesWith(v.federates_with, trustDomain, where);
  if (v.hint !== undefined) u.hint = checkHint(v.hint, where);
  if (v.jwt_jti !== undefined) u.jwtJti = v.jwt_jti;
  if (v.jwt_audiences !== undefined) u.jwtAudiences = checkAudienceAllowlist(v.jwt_audiences, `${where}jwt_audiences`);
  if (v.expires_at !== undefined) u.expiresAt = v.expires_at;
  return u;
}

function checkSpiffeId(s: string, td: string, field: string): string {
  const id = parseOr(s, field);
  if (!id.path) throw invalidArgument(`${field}: "${s}" names the trust domain itself; a workload needs a path`);
  if (id.trustDomain !== td) throw invalidArgument(`${field}: "${s}" is not in this server's trust domain "${td}"`);
  if ((id.path + '/').startsWith(RESERVED_PATH_PREFIX)) {
    throw invalidArgument(`${field}: "${s}" is under the reserved path ${RESERVED_PATH_PREFIX} (agents and the server live there)`);
  }
  return id.toString();
}

function checkParentId(s: string, td: string, field: string): string {
  const id = parseOr(s, field);
  if (!id.path) throw invalidArgument(`${field}: "${s}" names the trust domain itself; use an agent, node alias or spiffe://${td}/tessera/server`);
  if (id.trustDomain !== td) throw invalidArgument(`${field}: "${s}" is not in this server's trust domain "${td}"`);
  return id.toString();
}

function parseOr(s: string, field: string) {
  try {
    return parseSpiffeId(s);
  } catch (e) {
    throw invalidArgument(`${field}: ${(e as Error).message}`);
  }
}

export function parseSelectors(input: Array<string | { type: string; value: string }>, where = ''): Selector[] {
  const out = input.map((s, i) => {
    try {
      return typeof s === 'string' ? parseSelector(s) : validateSelector(s);
    } catch (e) {
      throw invalidArgument(`${where}selectors.${i}: ${(e as Error).message}`);
    }
  });
  return sortSelectors(out);
}

function checkDnsNames(names: string[], where: string): string[] {
  names.forEach((n, i) => {
    if (!DNS_NAME.test(n)) throw invalidArgument(`${where}dns_names.${i}: "${n}" is not a valid DNS name`);
  });
  return [...new Set(names.map((n) => n.toLowerCase()))];
}

function checkFederatesWith(tds: string[], own: string, where: string): string[] {
  return [
    ...new Set(
      tds.map((t, i) => {
        let td: string;
        try {
          td = parseTrustDomain(t);
        } catch (e) {
          throw invalidArgument(`${where}federates_with.${i}: ${(e as Error).message}`);
        }
        if (td === own) throw invalidArgument(`${where}federates_with.${i}: "${t}" is this server's own trust domain`);
        return td;
      }),
    ),
  ];
}

function checkHint(h: string, where: string): string {
  if (Buffer.byteLength(h) > MAX_HINT_BYTES) throw invalidArgument(`${where}hint: longer than ${MAX_HINT_BYTES} bytes`);
  return h;
}

/** The admin/agent API's JSON view of an entry (snake_case, as SPIRE's JSON output). */
export function entryToJSON(e: RegistrationEntry) {
  return {
    id: e.id,
    spiffe_id: e.spiffeId,
    parent_id: e.parentId,
    selectors: e.selectors.map((s) => ({ type: s.type, value: s.value })),
    x509_svid_ttl: e.x509SvidTtl,
    jwt_svid_ttl: e.jwtSvidTtl,
    dns_names: e.dnsNames,
    federates_with: e.federatesWith,
    hint: e.hint,
    jwt_audiences: e.jwtAudiences,
    jwt_jti: e.jwtJti,
    expires_at: e.expiresAt,
    created_at: e.createdAt,
    revision: e.revision,
  };
}
export type EntryJSON = ReturnType<typeof entryToJSON>;
