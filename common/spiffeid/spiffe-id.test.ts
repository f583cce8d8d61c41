import fc from 'fast-check';
import { TesseraError } from '../errors';
import { SpiffeId, isSpiffeId, parseSpiffeId, parseTrustDomain, parseWorkloadSpiffeId, trustDomainId } from './spiffe-id';

const TD_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789.-_';
const PATH_CHARS = `${TD_CHARS}ABCDEFGHIJKLMNOPQRSTUVWXYZ`;

/** A test title for an input, cut short and JSON-quoted so control characters show. */
const label = (s: string) => JSON.stringify(s.length > 50 ? `${s.slice(0, 30)}… (${s.length} chars)` : s);

/** Runs `fn`, expecting an INVALID_ARGUMENT TesseraError, and returns its message. */
function rejectMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(TesseraError);
    expect((e as TesseraError).code).toBe('INVALID_ARGUMENT');
    return (e as Error).message;
  }
  throw new Error('expected a rejection');
}

describe('parseSpiffeId vectors', () => {
  const accept: Array<[string, string, string]> = [
    ['spiffe://td', 'td', ''],
    ['spiffe://td.example_1-a/A.b-c_d/9', 'td.example_1-a', '/A.b-c_d/9'],
    ['spiffe://example.org/ns/prod/sa/web', 'example.org', '/ns/prod/sa/web'],
    ['spiffe://192.168.1.1/x', '192.168.1.1', '/x'], // IPv4-looking names are ordinary names
    ['spiffe://td/...', 'td', '/...'], // three dots is not a dot segment
    ['spiffe://td/.x/..y/x.', 'td', '/.x/..y/x.'],
    ['spiffe://-/_', '-', '/_'],
    ['spiffe://td/CaSe', 'td', '/CaSe'],
    [`spiffe://${'a'.repeat(255)}`, 'a'.repeat(255), ''],
    [`spiffe://td/${'x'.repeat(2048 - 12)}`, 'td', `/${'x'.repeat(2048 - 12)}`], // exactly 2048 bytes
  ];
  it.each(accept.map(([s, td, path]) => [label(s), s, td, path]))('accepts %s', (_, s, td, path) => {
    const id = parseSpiffeId(s);
    expect(id.trustDomain).toBe(td);
    expect(id.path).toBe(path);
    expect(id.toString()).toBe(s);
    expect(isSpiffeId(s)).toBe(true);
  });

  // [input, words the error message must contain]
  const reject: Array<[string, string]> = [
    ['', 'empty'],
    ['spiffe://', 'empty trust domain'],
    ['spiffe:///x', 'empty trust domain'],
    ['spiffe://Example.org/x', 'uppercase "E"'],
    ['SPIFFE://td/x', 'uppercase scheme'],
    ['Spiffe://td/x', 'uppercase scheme'],
    ['https://td/x', 'does not start with "spiffe://"'],
    ['spiffe:/td/x', 'does not start with "spiffe://"'],
    ['td/x', 'does not start with "spiffe://"'],
    [' spiffe://td/x', 'does not start with "spiffe://"'],
    ['spiffe://td:8080/x', 'port'],
    ['spiffe://td:/x', 'port'],
    ['spiffe://u@td/x', 'userinfo'],
    ['spiffe://u:p@td/x', 'port'],
    ['spiffe://td/x/', 'trailing slash'],
    ['spiffe://td/', 'trailing slash'],
    ['spiffe://td//x', 'empty path segment'],
    ['spiffe://td/x//y', 'empty path segment'],
    ['spiffe://td/./x', 'dot segment ("/.")'],
    ['spiffe://td/../x', 'dot segment ("/..")'],
    ['spiffe://td/x/.', 'dot segment'],
    ['spiffe://td/x/..', 'dot segment'],
    ['spiffe://td/%41', 'percent-encoding'],
    ['spiffe://t%41d/x', 'percent-encoding'],
    ['spiffe://td/x?y', 'query'],
    ['spiffe://td?y', 'query'],
    ['spiffe://td/x#y', 'fragment'],
    ['spiffe://td#y', 'fragment'],
    ['spiffe://td/x y', 'invalid character " "'],
    ['spiffe://t d/x', 'invalid character " "'],
    ['spiffe://td/x:y', 'invalid character ":"'],
    ['spiffe://td/x@y', 'invalid character "@"'],
    ['spiffe://td/x\\y', 'invalid character'],
    ['spiffe://td/x\u0000', 'invalid character "\\u0000"'],
    ['spiffe://td/x\n', 'invalid character "\\n"'],
    ['spiffe://td/caf\u00e9', 'non-ascii character "é"'],
    ['spiffe://t\u00e9/x', 'non-ascii character'],
    ['spiffe://td/\u{1F600}', 'non-ascii character "\u{1F600}"'],
    ['spiffe://td/\ud800', 'non-ascii character'],
    ['spiffe://[::1]/x', 'invalid character "["'],
    [`spiffe://${'a'.repeat(256)}`, 'trust domain of 256 bytes; the limit is 255'],
    [`spiffe://td/${'x'.repeat(2048 - 11)}`, '2049 bytes; the limit is 2048'],
    [`spiffe://td/${'é'.repeat(1100)}`, 'the limit is 2048'], // counted in UTF-8 bytes, not characters
  ];
  it.each(reject.map(([s, words]) => [label(s), s, words]))('rejects %s', (_, s, words) => {
    const msg = rejectMessage(() => parseSpiffeId(s));
    expect(msg).toContain(words);
    expect(msg).toMatch(/^[a-z]/); // lower-case, per the error style
    expect(msg).not.toMatch(/\.$/);
    expect(isSpiffeId(s)).toBe(false);
  });

  it('names the whole id in the message', () => {
    expect(rejectMessage(() => parseSpiffeId('spiffe://td/x/'))).toBe('spiffe id "spiffe://td/x/" has a trailing slash');
  });

  it('cuts very long ids short in messages', () => {
    const msg = rejectMessage(() => parseSpiffeId(`spiffe://td/${'x'.repeat(5000)}`));
    expect(msg.length).toBeLessThan(200);
  });

  it('rejects non-strings without a TypeError', () => {
    rejectMessage(() => parseSpiffeId(undefined as unknown as string));
    expect(isSpiffeId(42 as unknown as string)).toBe(false);
  });
});

describe('SpiffeId', () => {
  it('exposes its trust domain id and membership', () => {
    const id = parseSpiffeId('spiffe://example.org/web');
    expect(id.trustDomainId).toBe('spiffe://example.org');
    expect(id.isMemberOf('example.org')).toBe(true);
    expect(id.isMemberOf('spiffe://example.org')).toBe(true);
    expect(id.isMemberOf('example.com')).toBe(false);
    expect(id.isMemberOf('example')).toBe(false);
    expect(JSON.stringify({ id })).toBe('{"id":"spiffe://example.org/web"}');
    expect(id.equals(parseSpiffeId('spiffe://example.org/web'))).toBe(true);
    expect(id.equals(parseSpiffeId('spiffe://example.org/Web'))).toBe(false);
  });

  it('is frozen', () => {
    const id = parseSpiffeId('spiffe://example.org/web');
    expect(() => {
      (id as { path: string }).path = '/admin';
    }).toThrow(TypeError);
    expect(id.path).toBe('/web');
  });

  it('validates parts given to the constructor', () => {
    expect(new SpiffeId('td', '/a').toString()).toBe('spiffe://td/a');
    expect(new SpiffeId('td').toString()).toBe('spiffe://td');
    expect(rejectMessage(() => new SpiffeId('td', 'a'))).toContain('does not start with "/"');
    expect(rejectMessage(() => new SpiffeId('TD', '/a'))).toContain('uppercase');
    expect(rejectMessage(() => new SpiffeId('td/a', ''))).toContain('invalid character "/"');
  });
});

describe('parseWorkloadSpiffeId', () => {
  it('requires a path', () => {
    expect(parseWorkloadSpiffeId('spiffe://td/w').path).toBe('/w');
    expect(rejectMessage(() => parseWorkloadSpiffeId('spiffe://td'))).toContain('has no path');
    expect(rejectMessage(() => parseWorkloadSpiffeId('spiffe://td/'))).toContain('trailing slash');
  });
});

describe('parseTrustDomain and trustDomainId', () => {
  it.each([
    ['example.org', 'example.org'],
    ['spiffe://example.org', 'example.org'],
    ['a', 'a'],
    ['1.2.3.4', '1.2.3.4'],
  ])('accepts %s', (s, td) => {
    expect(parseTrustDomain(s)).toBe(td);
    expect(trustDomainId(s)).toBe(`spiffe://${td}`);
  });

  const rejectTd: Array<[string, string]> = [
    ['', 'trust domain is empty'],
    ['Example.org', 'trust domain "Example.org" contains uppercase "E"; trust domains are lowercase'],
    ['spiffe://example.org/x', 'has a path; give only "spiffe://example.org"'],
    ['spiffe://', 'empty trust domain'],
    ['https://example.org', 'scheme other than "spiffe://"'],
    ['example.org:443', 'port'],
    ['user@example.org', 'userinfo'],
    ['example.org/x', 'invalid character "/"'],
    ['exa mple', 'invalid character " "'],
    ['a'.repeat(256), 'is 256 bytes; the limit is 255'],
  ];
  it.each(rejectTd.map(([s, words]) => [label(s), s, words]))('rejects %s', (_, s, words) => {
    expect(rejectMessage(() => parseTrustDomain(s))).toContain(words);
    rejectMessage(() => trustDomainId(s));
  });
});

// Generators over the valid alphabets, sized so IDs stay under 2048 bytes.
const tdArb = fc.string({ unit: fc.constantFrom(...TD_CHARS), minLength: 1, maxLength: 60 });
const segArb = fc
  .string({ unit: fc.constantFrom(...PATH_CHARS), minLength: 1, maxLength: 30 })
  .filter((s) => s !== '.' && s !== '..');
const pathArb = fc.array(segArb, { maxLength: 12 }).map((segs) => segs.map((s) => `/${s}`).join(''));
const idArb = fc.tuple(tdArb, pathArb).map(([td, path]) => `spiffe://${td}${path}`);

/** Any single character (including lone surrogates) outside `allowed` and other than "/". */
const badCharArb = (allowed: string) =>
  fc
    .oneof(
      fc.constantFrom('%', '?', '#', '@', ':', ' ', '\u0000', '\n', '\\', '[', 'é', '\u{1F600}', 'A', 'Z'),
      fc.integer({ min: 0, max: 0x10ffff }).map((c) => String.fromCodePoint(c)),
    )
    .filter((c) => c !== '/' && !allowed.includes(c));

/** The independent oracle: the grammar as one regular expression plus the length and dot rules. */
function oracle(s: string): boolean {
  const m = /^spiffe:\/\/([a-z0-9._-]{1,255})((?:\/[A-Za-z0-9._-]+)*)$/.exec(s);
  if (!m || s.length > 2048) return false;
  return m[2].split('/').every((seg) => seg !== '.' && seg !== '..');
}

describe('parseSpiffeId properties', () => {
  it('accepts every id built from the valid alphabets and round-trips it', () => {
    fc.assert(
      fc.property(tdArb, pathArb, (td, path) => {
        const id = parseSpiffeId(`spiffe://${td}${path}`);
        expect(id.trustDomain).toBe(td);
        expect(id.path).toBe(path);
        expect(id.toString()).toBe(`spiffe://${td}${path}`);
      }),
    );
  });

  it('rejects an invalid character anywhere in the trust domain', () => {
    fc.assert(
      fc.property(tdArb, pathArb, badCharArb(TD_CHARS), fc.nat(), (td, path, bad, at) => {
        const i = at % (td.length + 1);
        const s = `spiffe://${td.slice(0, i)}${bad}${td.slice(i)}${path}`;
        expect(() => parseSpiffeId(s)).toThrow(TesseraError);
      }),
    );
  });

  it('rejects an invalid character anywhere in a path segment', () => {
    fc.assert(
      fc.property(tdArb, fc.array(segArb, { minLength: 1, maxLength: 8 }), badCharArb(PATH_CHARS), fc.nat(), fc.nat(), (td, segs, bad, si, at) => {
        const k = si % segs.length;
        const i = at % (segs[k].length + 1);
        segs[k] = segs[k].slice(0, i) + bad + segs[k].slice(i);
        expect(() => parseSpiffeId(`spiffe://${td}/${segs.join('/')}`)).toThrow(TesseraError);
      }),
    );
  });

  it('agrees with a regular-expression oracle on near-valid strings, and parse(toString(x)) is stable', () => {
    const unit = fc.constantFrom(...'az09.-_/AZ%?#@: é'.split(''), '/', '/', '.', 'spiffe://');
    const candidate = fc.oneof(
      idArb,
      fc.string({ unit, maxLength: 40 }).map((s) => `spiffe://${s}`),
      fc.tuple(idArb, fc.string({ unit, maxLength: 4 })).map(([a, b]) => a + b),
    );
    fc.assert(
      fc.property(candidate, (s) => {
        expect(isSpiffeId(s)).toBe(oracle(s));
        if (!oracle(s)) return expect(() => parseSpiffeId(s)).toThrow(TesseraError);
        const once = parseSpiffeId(s);
        const twice = parseSpiffeId(once.toString());
        expect(twice.toString()).toBe(once.toString());
        expect(twice.equals(once)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('throws only TesseraError INVALID_ARGUMENT on arbitrary input', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }).map((s) => `spiffe://${s}`)), (s) => {
        try {
          parseSpiffeId(s);
        } catch (e) {
          expect(e).toBeInstanceOf(TesseraError);
          expect((e as TesseraError).code).toBe('INVALID_ARGUMENT');
        }
      }),
    );
  });
});
