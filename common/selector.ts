import { invalidArgument } from './errors';
import { utf8Length } from './utf8';

/**
 * Selectors: `type:value` facts about a node or workload (e.g. `unix:uid:1000`).
 * An entry matches when its selectors are a subset of the attested ones.
 */

/** A selector; server/datastore re-exports this type (common imports neither side). */
export interface Selector {
  type: string;
  value: string;
}

const MAX_SELECTOR_BYTES = 1024;
const TYPE_RE = /^[a-z0-9_-]+$/;
// C0, DEL and C1 controls: they corrupt logs and terminals and no attestor emits them.
const CONTROL_RE = /\p{Cc}/u;

const quote = (s: string) => JSON.stringify(s.length > 100 ? `${s.slice(0, 100)}…` : s);

/**
 * Parses `type:value`. The type is non-empty `[a-z0-9_-]+`; the value is
 * everything after the first `:`, non-empty and may itself contain `:`.
 * The whole text is at most 1024 UTF-8 bytes with no control characters.
 * @throws TesseraError INVALID_ARGUMENT naming the selector and the problem
 * @example parseSelector('unix:uid:1000') // { type: 'unix', value: 'uid:1000' }
 */
export function parseSelector(s: string): Selector {
  if (typeof s !== 'string') throw invalidArgument(`selector must be a string, got ${typeof s}`);
  const colon = s.indexOf(':');
  if (colon < 0) throw invalidArgument(`selector ${quote(s)} has no ":"; write it as type:value`);
  return validateSelector({ type: s.slice(0, colon), value: s.slice(colon + 1) });
}

/**
 * Checks a selector given as an object (as an API may receive it) by the rules of
 * {@link parseSelector}; returns a fresh copy.
 * @throws TesseraError INVALID_ARGUMENT naming the selector and the problem
 */
export function validateSelector(sel: Selector): Selector {
  const { type, value } = sel ?? ({} as Selector);
  if (typeof type !== 'string' || typeof value !== 'string') {
    throw invalidArgument('selector must have a string type and a string value');
  }
  const text = quote(`${type}:${value}`);
  if (type === '') throw invalidArgument(`selector ${text} has an empty type`);
  if (!TYPE_RE.test(type)) throw invalidArgument(`selector ${text} has type ${quote(type)}; types use only a-z 0-9 _ -`);
  if (value === '') throw invalidArgument(`selector ${text} has an empty value`);
  const bytes = utf8Length(type) + 1 + utf8Length(value);
  if (bytes > MAX_SELECTOR_BYTES) throw invalidArgument(`selector ${text} is ${bytes} bytes; the limit is ${MAX_SELECTOR_BYTES}`);
  if (CONTROL_RE.test(value)) throw invalidArgument(`selector ${text} contains a control character`);
  return { type, value };
}

/** `type:value`, the inverse of {@link parseSelector}. */
export function formatSelector(s: Selector): string {
  return `${s.type}:${s.value}`;
}

/**
 * Compares by Unicode code point, which is the order of the UTF-8 bytes, so a sort
 * here agrees with SQLite's default BINARY collation. Plain `<` on JS strings
 * compares UTF-16 units and puts astral characters before U+E000–U+FFFF.
 */
function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    // Lift surrogates above the rest of the BMP; two surrogates keep their order.
    if (x >= 0xd800 && x <= 0xdfff) x += 0x10000;
    if (y >= 0xd800 && y <= 0xdfff) y += 0x10000;
    return x - y;
  }
  return a.length - b.length;
}

/** A new array sorted by type, then value (code point order), without duplicates. */
export function sortSelectors(list: readonly Selector[]): Selector[] {
  const sorted = list
    .map((s) => ({ type: s.type, value: s.value }))
    .sort((a, b) => compareCodePoints(a.type, b.type) || compareCodePoints(a.value, b.value));
  return sorted.filter((s, i) => i === 0 || s.type !== sorted[i - 1].type || s.value !== sorted[i - 1].value);
}

// JSON of the pair cannot collide, whatever the strings hold.
const key = (s: Selector) => JSON.stringify([s.type, s.value]);

/** True if every selector of `a` is also in `b` (an empty `a` is a subset of anything). */
export function selectorsSubsetOf(a: readonly Selector[], b: readonly Selector[]): boolean {
  const have = new Set(b.map(key));
  return a.every((s) => have.has(key(s)));
}
