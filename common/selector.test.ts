import fc from 'fast-check';
import { TesseraError } from './errors';
import { formatSelector, parseSelector, selectorsSubsetOf, sortSelectors, validateSelector, type Selector } from './selector';

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

/** A test title: JSON-quoted (control characters show) and cut short. */
const label = (s: string) =>
  JSON.stringify(s.length > 50 ? `${s.slice(0, 30)}… (${s.length} chars)` : s).replace(
    /\p{Cc}/gu,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );

const sel = (type: string, value: string): Selector => ({ type, value });

describe('parseSelector', () => {
  const accept: Array<[string, Selector]> = [
    ['unix:uid:1000', sel('unix', 'uid:1000')],
    ['k8s:ns:default', sel('k8s', 'ns:default')],
    ['docker:label:a=b c', sel('docker', 'label:a=b c')],
    ['join_token:abc', sel('join_token', 'abc')],
    ['x-y-9:v', sel('x-y-9', 'v')],
    ['t::', sel('t', ':')],
    ['t:caf\u00e9', sel('t', 'caf\u00e9')],
    [`t:${'v'.repeat(1022)}`, sel('t', 'v'.repeat(1022))], // exactly 1024 bytes
  ];
  it.each(accept.map(([s, want]) => [label(s), s, want] as const))('accepts %s', (_, s, want) => {
    expect(parseSelector(s)).toEqual(want);
    expect(formatSelector(parseSelector(s))).toBe(s);
  });

  it.each([
    ['unix', 'selector "unix" has no ":"; write it as type:value'],
    ['', 'has no ":"'],
    [':1000', 'selector ":1000" has an empty type'],
    ['unix:', 'selector "unix:" has an empty value'],
    ['Unix:uid:0', 'has type "Unix"; types use only a-z 0-9 _ -'],
    ['un ix:uid:0', 'has type "un ix"'],
    ['un.ix:uid:0', 'has type "un.ix"'],
    ['unix:uid\n0', 'contains a control character'],
    ['unix:uid\u00000', 'contains a control character'],
    ['unix:uid\u007f', 'contains a control character'],
    ['unix:uid\u0085', 'contains a control character'],
    [`t:${'v'.repeat(1023)}`, 'is 1025 bytes; the limit is 1024'],
    [`t:${'\u00e9'.repeat(600)}`, 'is 1202 bytes; the limit is 1024'],
  ].map(([s, words]) => [label(s), s, words]))('rejects %s', (_, s, words) => {
    expect(rejectMessage(() => parseSelector(s))).toContain(words);
  });

  it('rejects non-strings and malformed objects', () => {
    rejectMessage(() => parseSelector(7 as unknown as string));
    rejectMessage(() => validateSelector({ type: 'unix' } as Selector));
    rejectMessage(() => validateSelector(null as unknown as Selector));
    expect(rejectMessage(() => validateSelector(sel('a:b', 'c')))).toContain('has type "a:b"');
  });

  it('round-trips valid selectors', () => {
    const typeArb = fc.string({ unit: fc.constantFrom(...'abcxyz019_-'), minLength: 1, maxLength: 20 });
    const valueArb = fc.string({ minLength: 1, maxLength: 100 }).filter((v) => !/\p{Cc}/u.test(v));
    fc.assert(
      fc.property(typeArb, valueArb, (type, value) => {
        expect(parseSelector(formatSelector({ type, value }))).toEqual({ type, value });
      }),
    );
  });
});

describe('sortSelectors', () => {
  it('sorts by type then value and removes duplicates, without touching the input', () => {
    const input = [sel('unix', 'uid:1'), sel('k8s', 'ns:b'), sel('unix', 'gid:0'), sel('k8s', 'ns:b'), sel('k8s', 'ns:a')];
    const copy = JSON.parse(JSON.stringify(input));
    expect(sortSelectors(input)).toEqual([sel('k8s', 'ns:a'), sel('k8s', 'ns:b'), sel('unix', 'gid:0'), sel('unix', 'uid:1')]);
    expect(input).toEqual(copy);
    expect(sortSelectors([])).toEqual([]);
  });

  it('orders by code point (UTF-8 byte order), not UTF-16 unit', () => {
    // U+FF21 is one UTF-16 unit above the surrogates; U+1F600 is a surrogate pair.
    const sorted = sortSelectors([sel('t', '\u{1F600}'), sel('t', '\uFF21'), sel('t', 'a')]).map((s) => s.value);
    expect(sorted).toEqual(['a', '\uFF21', '\u{1F600}']);
    const bytes = sorted.map((v) => Buffer.from(v));
    expect([...bytes].sort(Buffer.compare)).toEqual(bytes);
  });

  it('is idempotent and agrees with UTF-8 byte order', () => {
    const arb = fc.array(fc.record({ type: fc.constantFrom('a', 'b', 'unix'), value: fc.string({ unit: 'binary', maxLength: 4 }) }));
    fc.assert(
      fc.property(arb, (list) => {
        const once = sortSelectors(list);
        expect(sortSelectors(once)).toEqual(once);
        expect(new Set(once.map((s) => JSON.stringify(s))).size).toBe(once.length);
        for (let i = 1; i < once.length; i++) {
          const [p, q] = [once[i - 1], once[i]];
          const c = Buffer.compare(Buffer.from(p.type), Buffer.from(q.type)) || Buffer.compare(Buffer.from(p.value), Buffer.from(q.value));
          expect(c).toBeLessThan(0);
        }
      }),
    );
  });
});

describe('selectorsSubsetOf', () => {
  const b = [sel('unix', 'uid:0'), sel('unix', 'gid:0'), sel('k8s', 'ns:x')];
  it.each<[string, Selector[], boolean]>([
    ['empty set', [], true],
    ['one member', [sel('unix', 'uid:0')], true],
    ['all members, any order', [sel('k8s', 'ns:x'), sel('unix', 'uid:0'), sel('unix', 'gid:0')], true],
    ['a repeated member', [sel('unix', 'uid:0'), sel('unix', 'uid:0')], true],
    ['a missing value', [sel('unix', 'uid:1')], false],
    ['same text split differently', [sel('unix:uid', '0')], false],
    ['a member and a stranger', [sel('unix', 'uid:0'), sel('k8s', 'ns:y')], false],
  ])('%s', (_, a, want) => {
    expect(selectorsSubsetOf(a, b)).toBe(want);
  });

  it('is false for any non-empty set against nothing', () => {
    expect(selectorsSubsetOf([sel('a', 'b')], [])).toBe(false);
  });
});
