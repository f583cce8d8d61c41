import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { invalidArgument } from '../errors';
import { parseTrustDomain } from '../spiffeid/spiffe-id';

/**
 * Shared config plumbing for the server and the agent (SPIRE's run.go, fastify's
 * initial-config-validation): a JSON file, then environment variables, then flags,
 * merged with precedence flags > env > file > defaults, validated by one zod
 * schema, and returned frozen. Errors name the key (`ca.key_type: ...`).
 */
export type Raw = Record<string, unknown>;

/** Reads a JSON config file; a missing or malformed file is an error naming the file. */
export function readConfigFile(path: string | undefined): Raw {
  if (!path) return {};
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw invalidArgument(`cannot read config file ${path}: ${(e as Error).message}`);
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('top level must be an object');
    return v as Raw;
  } catch (e) {
    throw invalidArgument(`config file ${path} is not valid JSON: ${(e as Error).message}`);
  }
}

/** Sets `obj[a][b]... = value` for a dotted key, creating objects on the way. */
export function setPath(obj: Raw, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let cur: Raw = obj;
  for (const p of parts.slice(0, -1)) {
    if (typeof cur[p] !== 'object' || cur[p] === null) cur[p] = {};
    cur = cur[p] as Raw;
  }
  cur[parts[parts.length - 1]!] = value;
}

/**
 * Overlays `env` variables onto `raw`: `mapping` maps a variable name to a dotted
 * config key. Values stay strings; the schema coerces numbers and booleans.
 */
export function overlayEnv(raw: Raw, env: NodeJS.ProcessEnv, mapping: Record<string, string>): void {
  for (const [name, key] of Object.entries(mapping)) {
    const v = env[name];
    if (v !== undefined && v !== '') setPath(raw, key, v);
  }
}

/** Overlays flag values (undefined = not given) keyed by dotted config key. */
export function overlayFlags(raw: Raw, flags: Record<string, unknown>): void {
  for (const [key, v] of Object.entries(flags)) if (v !== undefined) setPath(raw, key, v);
}

/** Parses with the schema; the first problems are reported with their key paths. */
export function parseConfig<T extends z.ZodType>(schema: T, raw: Raw, what: string): z.output<T> {
  const r = schema.safeParse(raw);
  if (!r.success) {
    const msgs = r.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`);
    throw invalidArgument(`invalid ${what} configuration: ${msgs.join('; ')}`);
  }
  return deepFreeze(r.data);
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o as Raw)) deepFreeze(v);
  }
  return o;
}

/** `host:port` → {host, port}; port 0 means "pick a free port". */
export const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'must be HOST:PORT, e.g. 127.0.0.1:8081')
  .transform((s) => {
    const i = s.lastIndexOf(':');
    const host = s.slice(0, i).replace(/^\[|\]$/g, '');
    const port = Number(s.slice(i + 1));
    return { host, port };
  })
  .refine((v) => v.port >= 0 && v.port <= 65535, 'port must be 0..65535');

/** Seconds: a positive integer, given as a number or a numeric string (env/flags). */
export const seconds = (def: number) => z.coerce.number().int().positive().default(def);

/** A trust domain name (`example.org` or `spiffe://example.org`), normalised to the bare name. */
export const trustDomainField = z.string().transform((s, ctx) => {
  try {
    return parseTrustDomain(s);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
    return z.NEVER;
  }
});

/** true/false, also as the strings "true"/"false" (env); z.coerce.boolean would read "false" as true. */
export const boolish = z.union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')]);

export const logLevel = z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info');
