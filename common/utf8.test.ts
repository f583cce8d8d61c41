import fc from 'fast-check';
import { utf8Length } from './utf8';

describe('utf8Length', () => {
  it('agrees with Buffer.byteLength on any string, lone surrogates included', () => {
    for (const s of ['', 'a', 'é', '€', '😀', '\ud800', '\udc00x', 'a\ud83d']) expect(utf8Length(s)).toBe(Buffer.byteLength(s, 'utf8'));
    fc.assert(fc.property(fc.string({ unit: 'binary' }), (s) => utf8Length(s) === Buffer.byteLength(s, 'utf8')), { numRuns: 2000 });
  });
});
