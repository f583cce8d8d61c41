import { generateKeyPair, randomBytes, sign, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { verify } from '@tessera/ecdsa-verify';

/**
 * The @tessera/ecdsa-verify addon against Node's own crypto.verify: for every
 * curve and hash, valid signatures, flipped bits in the signature, the data and
 * the key, and malformed input must get the same answer from both.
 */
const gen = promisify(generateKeyPair);
const CURVES = [
  { crv: 'P-256', coord: 32 },
  { crv: 'P-384', coord: 48 },
] as const;
const HASHES = ['sha256', 'sha384', 'sha512'] as const;

/** Errors from a native addon come from Node's realm, not jest's, so `toThrow(RangeError)` cannot match them by class. */
function expectThrows(fn: () => unknown, name: 'RangeError' | 'TypeError', message: RegExp): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect((err as Error | undefined)?.name).toBe(name);
  expect((err as Error).message).toMatch(message);
}

const rawPoint = (k: KeyObject) => {
  const jwk = k.export({ format: 'jwk' });
  return Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
};

describe.each(CURVES)('@tessera/ecdsa-verify on $crv', ({ crv, coord }) => {
  let keys: Array<{ publicKey: KeyObject; privateKey: KeyObject; point: Buffer }>;
  beforeAll(async () => {
    keys = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const k = (await gen('ec', { namedCurve: crv })) as { publicKey: KeyObject; privateKey: KeyObject };
        // Async-generated, so JWK export is safe (the Node 20 deadlock is with generateKeyPairSync keys).
        return { ...k, point: rawPoint(k.publicKey) };
      }),
    );
  });

  it.each(HASHES)('agrees with crypto.verify for valid and altered %s signatures', (hash) => {
    let valid = 0;
    for (let i = 0; i < 40; i++) {
      const k = keys[i % keys.length]!;
      const data = randomBytes(1 + (i * 37) % 300);
      const sig = sign(hash, data, { key: k.privateKey, dsaEncoding: 'der' });
      const cases: Array<[Buffer, Buffer, Buffer, KeyObject]> = [[k.point, data, sig, k.publicKey]];
      const flipped = Buffer.from(sig);
      flipped[i % sig.length]! ^= 1 << i % 8;
      cases.push([k.point, data, flipped, k.publicKey]);
      const otherData = Buffer.from(data);
      otherData[0]! ^= 0x80;
      cases.push([k.point, otherData, sig, k.publicKey]);
      const other = keys[(i + 1) % keys.length]!;
      cases.push([other.point, data, sig, other.publicKey]);
      for (const [point, d, s, key] of cases) {
        const expected = nodeVerify(hash, d, { key, dsaEncoding: 'der' }, s);
        expect(verify(crv, point, hash, d, s)).toBe(expected);
        if (expected) valid++;
      }
    }
    expect(valid).toBeGreaterThanOrEqual(40); // every unaltered signature verified
  });

  it('rejects non-DER signatures that a lenient parser might accept', () => {
    const k = keys[0]!;
    const data = Buffer.from('tessera');
    const sig = sign('sha256', data, { key: k.privateKey, dsaEncoding: 'der' });
    const ieee = sign('sha256', data, { key: k.privateKey, dsaEncoding: 'ieee-p1363' });
    const longForm = Buffer.concat([Buffer.from([0x30, 0x81, sig[1]!]), sig.subarray(2)]);
    for (const bad of [Buffer.concat([sig, Buffer.from([0])]), longForm, ieee, sig.subarray(0, 8), Buffer.alloc(0), Buffer.alloc(300, 0x30)]) {
      expect(verify(crv, k.point, 'sha256', data, bad)).toBe(false);
    }
  });

  it('throws RangeError for a point that is off the curve, compressed, or of the wrong size', () => {
    const k = keys[0]!;
    const data = Buffer.from('x');
    const sig = sign('sha256', data, { key: k.privateKey, dsaEncoding: 'der' });
    const off = Buffer.from(k.point);
    off[off.length - 1]! ^= 1;
    const compressed = Buffer.concat([Buffer.from([2 + (k.point[k.point.length - 1]! & 1)]), k.point.subarray(1, 1 + coord)]);
    expectThrows(() => verify(crv, off, 'sha256', data, sig), 'RangeError', /^point is not on the curve$/);
    for (const p of [compressed, k.point.subarray(0, k.point.length - 1), Buffer.alloc(1), Buffer.alloc(1 + 2 * coord)]) {
      expectThrows(() => verify(crv, p, 'sha256', data, sig), 'RangeError', /^point must be an uncompressed point/);
    }
    // The reused key object is not left in a bad state by a rejected point.
    expect(verify(crv, k.point, 'sha256', data, sig)).toBe(true);
  });
});

it('@tessera/ecdsa-verify refuses unknown curves, hashes and argument types', () => {
  const b = Buffer.alloc(65, 4);
  expectThrows(() => verify('P-521' as 'P-256', b, 'sha256', b, b), 'TypeError', /^curve must be P-256 or P-384$/);
  expectThrows(() => verify('P-256', b, 'md5' as 'sha256', b, b), 'TypeError', /^hash must be sha256, sha384 or sha512$/);
  expectThrows(() => verify('P-256', 'abc' as unknown as Buffer, 'sha256', b, b), 'TypeError', /^verify\(curve, point, hash, data, signature\)/);
  expectThrows(() => (verify as unknown as (...a: unknown[]) => boolean)('P-256', b), 'TypeError', /^verify\(curve, point, hash, data, signature\)/);
});
