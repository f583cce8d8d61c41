import type { EntryJSON } from '../client/server-client';
import type { StoredSVID } from '../storage/agent-store';
import { WorkloadCache, svidOutdated } from './workload-cache';

const uid = (n: number) => ({ type: 'unix', value: `uid:${n}` });
const entry = (id: string, o: Partial<EntryJSON> = {}): EntryJSON => ({
  id,
  spiffe_id: `spiffe://td/${id}`,
  parent_id: 'spiffe://td/node',
  selectors: [uid(1000)],
  x509_svid_ttl: 0,
  jwt_svid_ttl: 0,
  dns_names: [],
  federates_with: [],
  hint: '',
  expires_at: null,
  created_at: 100,
  revision: 1,
  ...o,
});
const svid = (e: EntryJSON, o: Partial<StoredSVID> = {}): StoredSVID => ({
  entryId: e.id,
  spiffeId: e.spiffe_id,
  chain: [Buffer.from(e.id)],
  keyPkcs8: Buffer.from('k'),
  notBefore: 0,
  notAfter: 100,
  receivedAt: 0,
  rotateAt: 50_000,
  dnsNames: e.dns_names,
  ttl: e.x509_svid_ttl,
  ...o,
});
const sync = (o: { full?: boolean; entries?: EntryJSON[]; removed?: string[]; revision?: number }) => ({
  revision: o.revision ?? 1,
  full: o.full ?? false,
  entries: o.entries ?? [],
  removed: o.removed ?? [],
  bundle_sequence: 0,
});

describe('WorkloadCache', () => {
  test('full replaces, deltas upsert and remove; SVIDs of removed entries go', () => {
    const c = new WorkloadCache('td');
    const [a, b, d] = [entry('a'), entry('b'), entry('d')];
    expect(c.applySync(sync({ full: true, entries: [a, b], revision: 5 }))).toBe(true);
    c.svids.set('a', svid(a));
    c.svids.set('b', svid(b));
    expect(c.revision).toBe(5);
    expect(c.applySync(sync({ revision: 5 }))).toBe(false);
    expect(c.applySync(sync({ entries: [d], removed: ['a'], revision: 6 }))).toBe(true);
    expect([...c.entries.keys()].sort()).toEqual(['b', 'd']);
    expect(c.svids.has('a')).toBe(false);
    expect(c.applySync(sync({ full: true, entries: [d], revision: 7 }))).toBe(true);
    expect([...c.entries.keys()]).toEqual(['d']);
    expect(c.svids.size).toBe(0);
    expect(c.applySync(sync({ entries: [entry('d', { hint: 'h' })], revision: 8 }))).toBe(true);
  });

  test('x509SVIDsFor: subset match, non-empty selectors, unexpired, oldest entry first', () => {
    const c = new WorkloadCache('td');
    const es = [
      entry('z-old', { created_at: 1 }),
      entry('b-new', { created_at: 5 }),
      entry('a-new', { created_at: 5 }),
      entry('two', { created_at: 0, selectors: [uid(1000), { type: 'unix', value: 'gid:5' }] }),
      entry('empty', { created_at: 0, selectors: [] }),
      entry('expired', { created_at: 0 }),
      entry('nosvid', { created_at: 0 }),
    ];
    c.applySync(sync({ full: true, entries: es }));
    for (const e of es) if (e.id !== 'nosvid') c.svids.set(e.id, svid(e, e.id === 'expired' ? { notAfter: 10 } : {}));
    expect(c.x509SVIDsFor([uid(1000)], 20_000).map((s) => s.entryId)).toEqual(['z-old', 'a-new', 'b-new']);
    expect(c.x509SVIDsFor([uid(1000), { type: 'unix', value: 'gid:5' }], 20_000).map((s) => s.entryId)).toEqual(['two', 'z-old', 'a-new', 'b-new']);
    expect(c.x509SVIDsFor([uid(1001)], 20_000)).toEqual([]);
    expect(c.x509SVIDsFor([uid(1000)], 100_000)).toEqual([]); // everything expired at t=100 s
    const first = c.x509SVIDsFor([uid(1000)], 20_000)[0]!;
    expect(first).toMatchObject({ spiffeId: 'spiffe://td/z-old', expiresAt: 100, issuedAt: 0, entryCreatedAt: 1 });
  });

  test('entitlementsFor: every live matching entry, SVID held, expired or not signed yet', () => {
    const c = new WorkloadCache('td');
    const es = [
      entry('held', { federates_with: ['spiffe://other.org'] }),
      entry('expired'),
      entry('nosvid'),
      entry('empty', { selectors: [] }),
      entry('entry-expired', { expires_at: 10 }),
      entry('other', { selectors: [uid(1001)] }),
    ];
    c.applySync(sync({ full: true, entries: es }));
    c.svids.set('held', svid(es[0]!, { notAfter: 1000 }));
    c.svids.set('expired', svid(es[1]!, { notAfter: 10 }));
    const ids = (now: number) => c.entitlementsFor([uid(1000)], now).map((x) => x.entryId).sort();
    expect(c.x509SVIDsFor([uid(1000)], 20_000).map((x) => x.entryId)).toEqual(['held']);
    expect(ids(20_000)).toEqual(['expired', 'held', 'nosvid']); // an entry past its own expiry, or with no selectors, is no entitlement
    expect(ids(5_000)).toEqual(['entry-expired', 'expired', 'held', 'nosvid']);
    expect(c.entitlementsFor([uid(1000)], 20_000).find((x) => x.entryId === 'held')).toEqual({ entryId: 'held', spiffeId: 'spiffe://td/held', federatesWith: ['spiffe://other.org'] });
    expect(c.entitlementsFor([uid(1002)], 20_000)).toEqual([]);
  });

  test('an SVID is withheld once its entry names another SPIFFE ID', () => {
    const c = new WorkloadCache('td');
    const a = entry('a');
    c.applySync(sync({ full: true, entries: [a] }));
    c.svids.set('a', svid(a));
    c.applySync(sync({ entries: [entry('a', { spiffe_id: 'spiffe://td/renamed', revision: 2 })] }));
    expect(c.x509SVIDsFor([uid(1000)], 0)).toEqual([]);
  });

  test('dueForSigning: missing, outdated, due within the window; skip honoured', () => {
    const c = new WorkloadCache('td');
    const es = [entry('missing'), entry('fresh'), entry('due'), entry('soon'), entry('dns', { dns_names: ['x'] }), entry('skipped')];
    c.applySync(sync({ full: true, entries: es }));
    c.svids.set('fresh', svid(es[1]!));
    c.svids.set('due', svid(es[2]!, { rotateAt: 40_000 }));
    c.svids.set('soon', svid(es[3]!, { rotateAt: 40_900 })); // within 1 s of now
    c.svids.set('dns', svid({ ...es[4]!, dns_names: [] }));
    const due = c.dueForSigning(40_000, (e) => e.id === 'skipped').map((e) => e.id);
    expect(due.sort()).toEqual(['dns', 'due', 'missing', 'soon']);
    expect(c.signingTime(es[1]!, 40_000)).toBe(50_000);
    expect(c.signingTime(es[0]!, 40_000)).toBe(40_000);
  });

  test('entries without selectors or past their own expiry are neither signed nor served', () => {
    const c = new WorkloadCache('td');
    const es = [entry('none', { selectors: [] }), entry('old', { expires_at: 30 }), entry('ok', { expires_at: 60 })];
    c.applySync(sync({ full: true, entries: es }));
    for (const e of es) c.svids.set(e.id, svid(e));
    expect(c.dueForSigning(40_000, () => false).map((e) => e.id)).toEqual([]);
    expect(c.signingTime(es[0]!, 40_000)).toBeUndefined();
    expect(c.x509SVIDsFor([uid(1000)], 40_000).map((s) => s.entryId)).toEqual(['ok']);
  });

  test('svidOutdated: SPIFFE ID, TTL or DNS names (order-insensitive)', () => {
    const e = entry('a', { dns_names: ['x', 'y'], x509_svid_ttl: 10 });
    expect(svidOutdated(svid(e, { dnsNames: ['y', 'x'] }), e)).toBe(false);
    expect(svidOutdated(svid(e, { ttl: 20 }), e)).toBe(true);
    expect(svidOutdated(svid(e, { dnsNames: ['x'] }), e)).toBe(true);
    expect(svidOutdated(svid(e, { spiffeId: 'spiffe://td/b' }), e)).toBe(true);
  });

  test('round-trips through the stored form; orphan SVIDs are not restored', () => {
    const c = new WorkloadCache('td');
    const a = entry('a');
    c.applySync(sync({ full: true, entries: [a], revision: 9 }));
    c.svids.set('a', svid(a));
    const stored = c.toStored();
    stored.svids.push(svid(entry('gone')));
    const back = WorkloadCache.fromStored(stored);
    expect(back.revision).toBe(9);
    expect([...back.svids.keys()]).toEqual(['a']);
    expect(back.nextExpiry()).toBe(100_000);
  });
});

test('the selector index follows entry updates, removals and full syncs', () => {
  const c = new WorkloadCache('td');
  const a = entry('a', { selectors: [uid(1), { type: 'unix', value: 'gid:1' }] });
  c.applySync(sync({ full: true, entries: [a] }));
  c.svids.set('a', svid(a));
  const caller = [{ type: 'unix', value: 'gid:1' }, uid(1), uid(1)];
  expect(c.x509SVIDsFor(caller, 0).map((s) => s.entryId)).toEqual(['a']);
  // selectors changed: the old first selector no longer finds it
  c.applySync(sync({ entries: [entry('a', { selectors: [uid(2)], revision: 2 })] }));
  expect(c.x509SVIDsFor(caller, 0)).toEqual([]);
  expect(c.x509SVIDsFor([uid(2)], 0).map((s) => s.entryId)).toEqual(['a']);
  c.applySync(sync({ full: true, entries: [] }));
  expect(c.x509SVIDsFor([uid(2)], 0)).toEqual([]);
  c.applySync(sync({ entries: [entry('a', { selectors: [uid(2)], revision: 3 })] }));
  c.svids.set('a', svid(a));
  expect(c.x509SVIDsFor([uid(2)], 0).map((s) => s.entryId)).toEqual(['a']);
  c.applySync(sync({ removed: ['a'] }));
  expect(c.x509SVIDsFor([uid(2)], 0)).toEqual([]);
});
