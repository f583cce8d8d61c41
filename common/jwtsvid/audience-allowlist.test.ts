import { audienceAllowed, checkAudienceAllowlist, disallowedAudiences } from './audience-allowlist';

describe('JWT audience allowlists', () => {
  it('allows anything when empty, exact items exactly, and a trailing * as a prefix', () => {
    expect(audienceAllowed([], 'https://anything')).toBe(true);
    const list = ['https://api.openai.com/v1', 'spiffe://example.org/tools/*'];
    expect(audienceAllowed(list, 'https://api.openai.com/v1')).toBe(true);
    expect(audienceAllowed(list, 'https://api.openai.com/v1/')).toBe(false);
    expect(audienceAllowed(list, 'https://api.openai.com')).toBe(false);
    expect(audienceAllowed(list, 'spiffe://example.org/tools/search')).toBe(true);
    expect(audienceAllowed(list, 'spiffe://example.org/tools/')).toBe(true);
    expect(audienceAllowed(list, 'spiffe://example.org/toolsx')).toBe(false);
    expect(audienceAllowed(['a*b'], 'a*b')).toBe(true); // a * inside is literal
    expect(audienceAllowed(['a*b'], 'axb')).toBe(false);
    expect(disallowedAudiences(list, ['https://api.openai.com/v1', 'https://evil'])).toEqual(['https://evil']);
  });

  it('refuses a lone *, empty items, non-strings and too many items; sorts and dedupes', () => {
    expect(() => checkAudienceAllowlist(['*'])).toThrow(/is not an audience/);
    expect(() => checkAudienceAllowlist([''])).toThrow(/is not an audience/);
    expect(() => checkAudienceAllowlist([1])).toThrow(/array of strings/);
    expect(() => checkAudienceAllowlist(Array.from({ length: 33 }, (_, i) => `a${i}`))).toThrow(/at most 32/);
    expect(checkAudienceAllowlist(['b', 'a', 'b'])).toEqual(['a', 'b']);
  });
});
