/**
 * JSON from the outside world (JWT claims, MCP tool arguments) as Cedar values.
 * Cedar's JSON format gives a meaning to objects shaped `{"__entity": ...}` and
 * `{"__extn": ...}`: passed through, a caller could make an argument look like
 * an entity reference (`context.arguments.owner == principal`) or an extension
 * value. So members whose name starts with "__" are dropped, and so is anything
 * Cedar cannot hold: null, non-integer or unsafe numbers (Cedar has 64-bit
 * integers; `decimal` needs a policy to ask for it), and nesting deeper than 16.
 */
export type CedarJSON = boolean | number | string | CedarJSON[] | { [key: string]: CedarJSON };

const MAX_DEPTH = 16;

export function toCedarValue(v: unknown, depth = 0): CedarJSON | undefined {
  if (depth > MAX_DEPTH) return undefined;
  if (typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') return Number.isSafeInteger(v) ? v : undefined;
  if (Array.isArray(v)) {
    const out: CedarJSON[] = [];
    for (const x of v) {
      const c = toCedarValue(x, depth + 1);
      if (c !== undefined) out.push(c);
    }
    return out;
  }
  if (typeof v === 'object' && v !== null) {
    const out: { [key: string]: CedarJSON } = {};
    for (const [k, x] of Object.entries(v)) {
      if (k.startsWith('__')) continue;
      const c = toCedarValue(x, depth + 1);
      if (c !== undefined) out[k] = c;
    }
    return out;
  }
  return undefined;
}

/** JWT claims as the schema's `JWTClaims` record: `aud` always a set. */
export function claimsRecord(claims: Record<string, unknown>): { [key: string]: CedarJSON } {
  const out = toCedarValue(claims) as { [key: string]: CedarJSON };
  if (typeof out.aud === 'string') out.aud = [out.aud];
  return out;
}
