import { invalidArgument } from '../errors';
import { utf8Length } from '../utf8';

/**
 * SPIFFE IDs and trust domain names, parsed byte by byte as the SPIFFE ID
 * standard asks. A generic URL parser is never used: it would lower-case,
 * percent-decode and resolve dot segments, so two parsers could disagree on
 * which identity a string names.
 */

const SCHEME = 'spiffe://';
const MAX_ID_BYTES = 2048;
const MAX_TRUST_DOMAIN_BYTES = 255;

const isLowerOrDigit = (c: number) => (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39);
const isPunct = (c: number) => c === 0x2e || c === 0x2d || c === 0x5f; // . - _
const isTrustDomainChar = (c: number) => isLowerOrDigit(c) || isPunct(c);
const isPathChar = (c: number) => isTrustDomainChar(c) || (c >= 0x41 && c <= 0x5a);

/** JSON-quotes a value for an error message, cut short so huge inputs stay readable. */
const quote = (s: string) => JSON.stringify(s.length > 100 ? `${s.slice(0, 100)}…` : s);

/**
 * Says what is wrong with the character at `i` of a trust domain (`inTrustDomain`)
 * or a path, phrased to follow `spiffe id "..." ` or `trust domain "..." `.
 */
function badChar(s: string, i: number, inTrustDomain: boolean): string {
  const ch = String.fromCodePoint(s.codePointAt(i)!);
  const c = s.charCodeAt(i);
  const where = inTrustDomain ? 'in its trust domain' : 'in its path';
  switch (ch) {
    case '%': return `contains percent-encoding ("%") ${where}; percent-encoding is not allowed`;
    case '?': return `contains a query ("?") ${where}; queries are not allowed`;
    case '#': return `contains a fragment ("#") ${where}; fragments are not allowed`;
  }
  if (inTrustDomain) {
    if (ch === '@') return 'contains userinfo ("@") in its trust domain; userinfo is not allowed';
    if (ch === ':') return 'contains a port (":") in its trust domain; ports are not allowed';
    if (c >= 0x41 && c <= 0x5a) return `contains uppercase ${JSON.stringify(ch)} in its trust domain; trust domains are lowercase`;
  }
  const allowed = inTrustDomain ? 'a-z 0-9 . - _' : 'A-Z a-z 0-9 . - _';
  const kind = c > 0x7f ? 'non-ascii character' : 'invalid character';
  return `contains ${kind} ${JSON.stringify(ch)} ${where}; allowed: ${allowed}`;
}

/** Problem with a trust domain name, phrased to follow a subject, or undefined if it is valid. */
function trustDomainProblem(td: string): string | undefined {
  if (td.length === 0) return 'has an empty trust domain';
  for (let i = 0; i < td.length; i++) {
    if (!isTrustDomainChar(td.charCodeAt(i))) return badChar(td, i, true);
  }
  // Only ASCII got this far, so characters are bytes.
  if (td.length > MAX_TRUST_DOMAIN_BYTES) {
    return `has a trust domain of ${td.length} bytes; the limit is ${MAX_TRUST_DOMAIN_BYTES}`;
  }
  return undefined;
}

/** Problem with a (possibly empty) path, or undefined if it is valid. */
function pathProblem(path: string): string | undefined {
  if (path === '') return undefined;
  if (path[0] !== '/') return 'has a path that does not start with "/"';
  let segStart = 1;
  for (let i = 1; i <= path.length; i++) {
    if (i === path.length || path[i] === '/') {
      const seg = path.slice(segStart, i);
      if (seg === '') return i === path.length ? 'has a trailing slash' : 'has an empty path segment ("//")';
      if (seg === '.' || seg === '..') return `has a dot segment ("/${seg}") in its path; dot segments are not allowed`;
      segStart = i + 1;
    } else if (!isPathChar(path.charCodeAt(i))) {
      return badChar(path, i, false);
    }
  }
  return undefined;
}

/** A parsed, valid SPIFFE ID. Instances can only hold valid IDs: the constructor checks its parts. */
export class SpiffeId {
  /**
   * @param trustDomain bare trust domain name, e.g. `example.org`
   * @param path `""` for the trust domain itself, else `/seg[/seg...]`
   * @throws TesseraError INVALID_ARGUMENT if either part breaks a SPIFFE ID rule
   */
  constructor(readonly trustDomain: string, readonly path: string = '') {
    const id = SCHEME + trustDomain + path;
    const problem = trustDomainProblem(trustDomain) ?? pathProblem(path);
    if (problem) throw invalidArgument(`spiffe id ${quote(id)} ${problem}`);
    if (id.length > MAX_ID_BYTES) throw invalidArgument(`spiffe id ${quote(id)} is ${id.length} bytes; the limit is ${MAX_ID_BYTES}`);
    // readonly is only a compile-time promise; an identity must not change after it was checked.
    Object.freeze(this);
  }

  /** The canonical form, `spiffe://<trust domain><path>`. */
  toString(): string {
    return SCHEME + this.trustDomain + this.path;
  }

  toJSON(): string {
    return this.toString();
  }

  /** The ID of the trust domain itself, `spiffe://<trust domain>`. */
  get trustDomainId(): string {
    return SCHEME + this.trustDomain;
  }

  /** True if this ID lies in trust domain `td` (a bare name or `spiffe://name`). */
  isMemberOf(td: string): boolean {
    return td === this.trustDomain || td === this.trustDomainId;
  }

  equals(other: SpiffeId): boolean {
    return this.trustDomain === other.trustDomain && this.path === other.path;
  }
}

/**
 * Parses a SPIFFE ID, with or without a path.
 * @throws TesseraError INVALID_ARGUMENT naming the rule the string breaks
 * @example parseSpiffeId('spiffe://example.org/ns/web').path // '/ns/web'
 */
export function parseSpiffeId(s: string): SpiffeId {
  if (typeof s !== 'string') throw invalidArgument(`spiffe id must be a string, got ${typeof s}`);
  if (s === '') throw invalidArgument('spiffe id is empty');
  // Check the size first so a huge input is not scanned; byteLength counts UTF-8 bytes.
  const bytes = utf8Length(s);
  if (bytes > MAX_ID_BYTES) throw invalidArgument(`spiffe id ${quote(s)} is ${bytes} bytes; the limit is ${MAX_ID_BYTES}`);
  if (!s.startsWith(SCHEME)) {
    if (s.slice(0, SCHEME.length).toLowerCase() === SCHEME) {
      throw invalidArgument(`spiffe id ${quote(s)} has an uppercase scheme; write "spiffe://"`);
    }
    throw invalidArgument(`spiffe id ${quote(s)} does not start with "spiffe://"`);
  }
  const rest = s.slice(SCHEME.length);
  const slash = rest.indexOf('/');
  const td = slash < 0 ? rest : rest.slice(0, slash);
  return new SpiffeId(td, slash < 0 ? '' : rest.slice(slash));
}

/**
 * Parses the SPIFFE ID of a workload (leaf SVID), which must have a non-empty path.
 * @throws TesseraError INVALID_ARGUMENT if the ID is invalid or names only a trust domain
 */
export function parseWorkloadSpiffeId(s: string): SpiffeId {
  const id = parseSpiffeId(s);
  if (id.path === '') throw invalidArgument(`spiffe id ${quote(s)} has no path; a workload id needs one, e.g. "${s}/service"`);
  return id;
}

/** True if `s` is a valid SPIFFE ID (with or without a path). Never throws. */
export function isSpiffeId(s: string): boolean {
  try {
    parseSpiffeId(s);
    return true;
  } catch {
    return false;
  }
}

/**
 * Parses a trust domain given as `example.org` or `spiffe://example.org` (no path)
 * and returns the bare name.
 * @throws TesseraError INVALID_ARGUMENT if the name is invalid or has a path
 */
export function parseTrustDomain(s: string): string {
  if (typeof s !== 'string') throw invalidArgument(`trust domain must be a string, got ${typeof s}`);
  if (s.startsWith(SCHEME)) {
    const id = parseSpiffeId(s);
    if (id.path !== '') throw invalidArgument(`trust domain ${quote(s)} has a path; give only "${id.trustDomainId}"`);
    return id.trustDomain;
  }
  if (s === '') throw invalidArgument('trust domain is empty');
  if (s.includes('://')) throw invalidArgument(`trust domain ${quote(s)} has a scheme other than "spiffe://"`);
  // Checking the name as the trust domain of an ID reuses one rule set and its messages.
  const problem = trustDomainProblem(s);
  if (problem) {
    const phrased = problem.replace(' in its trust domain', '').replace('has a trust domain of', 'is');
    throw invalidArgument(`trust domain ${quote(s)} ${phrased}`);
  }
  return s;
}

/**
 * The SPIFFE ID naming trust domain `td` (given as in {@link parseTrustDomain}).
 * @throws TesseraError INVALID_ARGUMENT if `td` is not a valid trust domain
 * @example trustDomainId('example.org') // 'spiffe://example.org'
 */
export function trustDomainId(td: string): string {
  return SCHEME + parseTrustDomain(td);
}
