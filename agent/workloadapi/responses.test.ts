import { workloadService } from '../../common/workloadapi/proto';
import { federatedTrustDomains, jwtBundlesResponse, uniqueHints, x509BundlesResponse } from './responses';
import { fromStruct, toStruct } from '../../common/workloadapi/struct';
import type { CachedX509SVID } from '../manager/identity-source';

const svid = (hint: string, federatesWith: string[] = []) => ({ hint, federatesWith }) as unknown as CachedX509SVID;

describe('uniqueHints', () => {
  it('keeps the first SVID of each non-empty hint and every SVID without one', () => {
    const [a, b, c, d, e] = [svid('x'), svid(''), svid('x'), svid(''), svid('y')];
    expect(uniqueHints([a, b, c, d, e])).toEqual({ kept: [a, b, d, e], dropped: [c] });
  });
});

describe('federatedTrustDomains', () => {
  it('is the sorted union of federatesWith, bare names, without the own trust domain or junk', () => {
    const svids = [svid('', ['spiffe://b.org', 'a.org']), svid('', ['b.org', 'spiffe://own.org', 'not a td'])];
    expect(federatedTrustDomains(svids, 'own.org')).toEqual(['a.org', 'b.org']);
  });
});

describe('bundle maps', () => {
  const own = { trustDomain: 'own.org', x509Authorities: [Buffer.from([0x30, 0])], jwtAuthorities: [] };
  const fed = { trustDomain: 'a.org', x509Authorities: [Buffer.from([0x30, 1]), Buffer.from([0x30, 2])], jwtAuthorities: [] };

  it('are keyed by trust domain SPIFFE ID in sorted order, so equal content encodes equally', () => {
    const r = x509BundlesResponse(own, [fed]);
    expect(Object.keys(r.bundles)).toEqual(['spiffe://a.org', 'spiffe://own.org']);
    expect(r.bundles['spiffe://a.org']).toEqual(Buffer.from([0x30, 1, 0x30, 2]));
    const encode = (m: object) => workloadService().FetchX509Bundles.responseSerialize(m);
    expect(encode(x509BundlesResponse(own, [fed]))).toEqual(encode(r));
    expect(Object.keys(jwtBundlesResponse(own, []).bundles)).toEqual(['spiffe://own.org']);
    expect(JSON.parse(jwtBundlesResponse(own, []).bundles['spiffe://own.org'].toString())).toEqual({ keys: [] });
  });
});

describe('toStruct / fromStruct', () => {
  const claims = { sub: 'spiffe://td/x', aud: ['a', 'b'], exp: 1.5e9, ok: true, none: null, nested: { n: [1, { k: 'v' }] } };

  it('round-trips JSON claims through the protobuf encoding of google.protobuf.Struct', () => {
    const m = workloadService().ValidateJWTSVID;
    const decoded = m.responseDeserialize(m.responseSerialize({ spiffe_id: 'x', claims: toStruct(claims) }));
    expect(fromStruct(decoded.claims)).toEqual(claims);
  });

  it('builds the message form grpc-js needs', () => {
    expect(toStruct({ aud: ['a'], none: null })).toEqual({
      fields: { aud: { listValue: { values: [{ stringValue: 'a' }] } }, none: { nullValue: 'NULL_VALUE' } },
    });
  });

  it('refuses values JSON cannot hold', () => {
    expect(() => toStruct({ n: Infinity })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => toStruct({ b: BigInt(1) })).toThrow(/bigint/);
  });
});
