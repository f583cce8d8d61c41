import { JWTSVIDCache, jwtCacheKey } from './jwt-cache';

const v = (token: string, receivedAt = 0, expiresAt = 300) => ({ spiffeId: 'spiffe://td/a', token, receivedAt, expiresAt });

describe('JWTSVIDCache', () => {
  test('the key ignores audience order and duplicates, not the SPIFFE ID', () => {
    expect(jwtCacheKey('spiffe://td/a', ['x', 'y'])).toBe(jwtCacheKey('spiffe://td/a', ['y', 'x', 'y']));
    expect(jwtCacheKey('spiffe://td/a', ['x'])).not.toBe(jwtCacheKey('spiffe://td/b', ['x']));
    expect(jwtCacheKey('spiffe://td/a', ['x,y'])).not.toBe(jwtCacheKey('spiffe://td/a', ['x', 'y']));
  });

  test('fresh until half-life, unexpired until exp', () => {
    const c = new JWTSVIDCache();
    c.set('k', v('t', 0, 300));
    expect(c.fresh('k', 149_999)?.token).toBe('t');
    expect(c.fresh('k', 150_000)).toBeUndefined();
    expect(c.unexpired('k', 299_999)?.token).toBe('t');
    expect(c.unexpired('k', 300_000)).toBeUndefined();
  });

  test('evicts the least recently used', () => {
    const c = new JWTSVIDCache(2);
    c.set('a', v('a'));
    c.set('b', v('b'));
    c.fresh('a', 0); // a is now more recent than b
    c.set('c', v('c'));
    expect(c.size).toBe(2);
    expect(c.unexpired('b', 0)).toBeUndefined();
    expect(c.unexpired('a', 0)?.token).toBe('a');
    expect(c.unexpired('c', 0)?.token).toBe('c');
  });
});
