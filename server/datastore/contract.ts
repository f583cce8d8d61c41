import crypto from 'node:crypto';
import { TesseraError, type ErrorCode } from '../../common/errors';
import type { AttestedNode, CAJournalEntry, CAJournalInput, DataStore, NewRegistrationEntry, Page, RegistrationEntry, Selector } from './datastore';

/** What a contract run needs from an implementation, once per test. */
export interface ContractStore {
  /** an empty store */
  store: DataStore;
  /**
   * Opens the same data again; the suite closes `store` first. Without it the
   * restart test is skipped (an in-memory fake has nothing to reopen).
   */
  reopen?: () => Promise<DataStore>;
  /** closes whatever store is still open (reopened ones included) and removes the data */
  cleanup: () => Promise<void>;
}

const TD = 'spiffe://example.org';
const AGENT = `${TD}/tessera/agent/join_token/a1`;
const AGENT2 = `${TD}/tessera/agent/join_token/a2`;
const sel = (type: string, value: string): Selector => ({ type, value });
const UID = sel('unix', 'uid:1000');
const GID = sel('unix', 'gid:1000');
const PROD = sel('k8s', 'ns:prod');
const DEV = sel('k8s', 'ns:dev');

function newEntry(over: Partial<NewRegistrationEntry> = {}): NewRegistrationEntry {
  return {
    spiffeId: `${TD}/workload`,
    parentId: AGENT,
    selectors: [UID],
    x509SvidTtl: 0,
    jwtSvidTtl: 0,
    dnsNames: [],
    federatesWith: [],
    hint: '',
    expiresAt: null,
    ...over,
  };
}

function newNode(over: Partial<AttestedNode> = {}): Omit<AttestedNode, 'createdAt' | 'updatedAt'> {
  return {
    spiffeId: AGENT,
    attestationType: 'join_token',
    serialNumber: '01ab',
    expiresAt: 2_000_000_000,
    newSerialNumber: '',
    newExpiresAt: 0,
    selectors: [sel('join_token', 'a1')],
    banned: false,
    ...over,
  };
}

function journal(over: Partial<CAJournalEntry> = {}): CAJournalInput {
  return {
    id: 'x509-a',
    kind: 'x509',
    keyId: 'x509-ca-a',
    state: 'prepared',
    certificateDer: Buffer.from([0x30, 0x82, 0x01, 0x00, 0xff]),
    upstreamChainDer: null,
    publicJwk: null,
    kid: 'a1b2c3',
    notBefore: 1_700_000_000,
    notAfter: 1_700_086_400,
    ...over,
  };
}

const hash = (secret: string) => crypto.createHash('sha256').update(secret).digest('hex');
const bundleDoc = (n: number) => JSON.stringify({ keys: [], spiffe_sequence: n });
const sortedIds = (p: Page<RegistrationEntry>) => p.items.map((e) => e.id).sort();
const idsOf = (...es: RegistrationEntry[]) => es.map((e) => e.id).sort();

/** Asserts that `p` rejects with a TesseraError carrying `code`. */
async function expectCode(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TesseraError);
  expect((err as TesseraError).code).toBe(code);
}

/**
 * The DataStore conformance suite (SPIRE's sqltest suite, hono's shared router
 * cases): every implementation runs it through its own test file, e.g.
 * `runDataStoreContract('sqlite', async () => ({ store, reopen, cleanup }))`.
 * Each test gets a fresh, empty store from `makeStore`.
 */
export function runDataStoreContract(name: string, makeStore: () => Promise<ContractStore>): void {
  describe(`DataStore contract: ${name}`, () => {
    let ctx: ContractStore;
    let s: DataStore;

    beforeEach(async () => {
      ctx = await makeStore();
      s = ctx.store;
    });
    afterEach(async () => {
      await ctx.cleanup();
    });

    describe('registration entries', () => {
      it('creates and fetches an entry with every field', async () => {
        const input = newEntry({
          selectors: [GID, UID, GID], // unsorted, with a duplicate
          x509SvidTtl: 3600,
          jwtSvidTtl: 300,
          dnsNames: ['b.example.org', 'a.example.org'],
          federatesWith: ['other.org', 'another.org'],
          hint: 'web',
          jwtAudiences: ['spiffe://example.org/tools/*', 'https://api.openai.com/v1', 'https://api.openai.com/v1'],
          jwtJti: true,
          expiresAt: 2_000_000_000,
        });
        const e = await s.createRegistrationEntry(input);
        expect(e.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
        expect(e).toEqual({
          ...input,
          id: e.id,
          selectors: [GID, UID], // sorted by (type, value), deduplicated
          dnsNames: ['b.example.org', 'a.example.org'], // order kept
          federatesWith: ['other.org', 'another.org'],
          jwtAudiences: ['https://api.openai.com/v1', 'spiffe://example.org/tools/*'], // sorted, deduplicated
          createdAt: e.createdAt,
          revision: 1,
        });
        // without an allowlist: any audience ([]); an update sets and clears it
        const plain = await s.createRegistrationEntry(newEntry({ spiffeId: 'spiffe://example.org/plain' }));
        expect(plain.jwtAudiences).toEqual([]);
        expect(plain.jwtJti).toBe(false);
        expect((await s.updateRegistrationEntry(plain.id, { jwtJti: true })).jwtJti).toBe(true);
        expect((await s.updateRegistrationEntry(plain.id, { jwtAudiences: ['x'] })).jwtAudiences).toEqual(['x']);
        expect((await s.updateRegistrationEntry(plain.id, { jwtAudiences: [] })).jwtAudiences).toEqual([]);
        await expect(s.updateRegistrationEntry(plain.id, { jwtAudiences: ['*'] })).rejects.toThrow(/is not an audience/);
        await s.deleteRegistrationEntry(plain.id);
        expect(Number.isInteger(e.createdAt)).toBe(true);
        expect(await s.fetchRegistrationEntry(e.id)).toEqual(e);
        expect(await s.fetchRegistrationEntry('no-such-id')).toBeUndefined();
        expect(await s.countRegistrationEntries()).toBe(1);
      });

      it('uses a given id and refuses it twice', async () => {
        const e = await s.createRegistrationEntry(newEntry({ id: 'entry-1' }));
        expect(e.id).toBe('entry-1');
        await expectCode(s.createRegistrationEntry(newEntry({ id: 'entry-1', spiffeId: `${TD}/other` })), 'ALREADY_EXISTS');
      });

      it('refuses a second entry with the same spiffe id, parent id and selector set', async () => {
        await s.createRegistrationEntry(newEntry({ selectors: [UID, GID] }));
        await expectCode(s.createRegistrationEntry(newEntry({ selectors: [GID, UID] })), 'ALREADY_EXISTS');
        // any difference in the three makes it another entry
        await s.createRegistrationEntry(newEntry({ selectors: [UID] }));
        await s.createRegistrationEntry(newEntry({ selectors: [UID, GID], parentId: AGENT2 }));
        await s.createRegistrationEntry(newEntry({ selectors: [UID, GID], spiffeId: `${TD}/other` }));
        expect(await s.countRegistrationEntries()).toBe(4);
        expect(await s.getRevision()).toBe(4);
      });

      it('keeps "type:value" boundaries: a type cannot hold ":", a value can, and (a, b:c) differs from (a, b)', async () => {
        await expect(s.createRegistrationEntry(newEntry({ selectors: [sel('a:b', 'c')] }))).rejects.toMatchObject({
          code: 'INVALID_ARGUMENT',
          message: expect.stringMatching(/types use only a-z 0-9 _ -/),
        });
        const e1 = await s.createRegistrationEntry(newEntry({ selectors: [sel('a', 'b')] }));
        const e2 = await s.createRegistrationEntry(newEntry({ selectors: [sel('a', 'b:c')] }));
        const exact = await s.listRegistrationEntries({ selectors: { selectors: [sel('a', 'b:c')], match: 'exact' } });
        expect(sortedIds(exact)).toEqual([e2.id]);
        const any = await s.listRegistrationEntries({ selectors: { selectors: [sel('a', 'b')], match: 'any' } });
        expect(sortedIds(any)).toEqual([e1.id]);
        expect((await s.fetchRegistrationEntry(e2.id))?.selectors).toEqual([sel('a', 'b:c')]);
      });

      it('refuses selectors the admin API would refuse (control characters, over 1024 bytes)', async () => {
        for (const bad of [sel('unix', 'uid:1\n'), sel('unix', 'x'.repeat(1100))]) {
          await expect(s.createRegistrationEntry(newEntry({ selectors: [bad] }))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
        }
        expect(await s.countRegistrationEntries()).toBe(0);
      });

      it('orders a selector set by code point, as the byte order of UTF-8 (an astral character after U+FFFD)', async () => {
        const e = await s.createRegistrationEntry(newEntry({ selectors: [sel('k', '\u{1F600}'), sel('k', '\uFFFD')] }));
        expect(e.selectors).toEqual([sel('k', '\uFFFD'), sel('k', '\u{1F600}')]);
        const exact = await s.listRegistrationEntries({ selectors: { selectors: [sel('k', '\u{1F600}'), sel('k', '\uFFFD')], match: 'exact' } });
        expect(sortedIds(exact)).toEqual([e.id]);
      });

      it('stores quotes and SQL text verbatim', async () => {
        const nasty = `O'Brien"); DROP TABLE registration_entries; --`;
        const e = await s.createRegistrationEntry(newEntry({ hint: nasty, selectors: [sel('unix', nasty)] }));
        expect((await s.fetchRegistrationEntry(e.id))?.hint).toBe(nasty);
        expect(sortedIds(await s.listRegistrationEntries({ hint: nasty }))).toEqual([e.id]);
        expect(sortedIds(await s.listRegistrationEntries({ selectors: { selectors: [sel('unix', nasty)], match: 'exact' } }))).toEqual([e.id]);
        expect(await s.countRegistrationEntries()).toBe(1);
      });

      it.each<[string, Partial<NewRegistrationEntry>]>([
        ['no selectors', { selectors: [] }],
        ['an empty selector value', { selectors: [sel('unix', '')] }],
        ['a spiffe id without scheme', { spiffeId: 'example.org/x' }],
        ['an empty parent id', { parentId: '' }],
        ['a negative ttl', { x509SvidTtl: -1 }],
        ['a fractional ttl', { jwtSvidTtl: 1.5 }],
        ['a non-integer expiry', { expiresAt: 1.25 }],
        ['a federated trust domain with scheme', { federatesWith: ['spiffe://other.org'] }],
        ['a non-boolean hint', { hint: 7 as unknown as string }],
      ])('rejects %s with INVALID_ARGUMENT and stores nothing', async (_what, over) => {
        await expectCode(s.createRegistrationEntry(newEntry(over)), 'INVALID_ARGUMENT');
        expect(await s.countRegistrationEntries()).toBe(0);
        expect(await s.getRevision()).toBe(0);
      });

      it('updates only the given fields and stamps the new revision', async () => {
        const e = await s.createRegistrationEntry(newEntry({ hint: 'old', expiresAt: 2_000_000_000 }));
        const u = await s.updateRegistrationEntry(e.id, { hint: 'new', dnsNames: ['x.example.org'], expiresAt: null });
        expect(u).toEqual({ ...e, hint: 'new', dnsNames: ['x.example.org'], expiresAt: null, revision: 2 });
        expect(await s.fetchRegistrationEntry(e.id)).toEqual(u);
        expect(await s.getRevision()).toBe(2);
      });

      it('replaces the selectors on update, as seen by selector queries', async () => {
        const e = await s.createRegistrationEntry(newEntry({ selectors: [UID] }));
        await s.updateRegistrationEntry(e.id, { selectors: [PROD, GID] });
        expect((await s.fetchRegistrationEntry(e.id))?.selectors).toEqual([PROD, GID]);
        expect((await s.listRegistrationEntries({ selectors: { selectors: [UID], match: 'any' } })).items).toEqual([]);
        const found = await s.listRegistrationEntries({ selectors: { selectors: [GID, PROD], match: 'exact' } });
        expect(sortedIds(found)).toEqual([e.id]);
      });

      it('refuses updates of a missing entry, of fixed fields, with bad values or into a duplicate, changing nothing', async () => {
        const a = await s.createRegistrationEntry(newEntry({ selectors: [UID] }));
        const b = await s.createRegistrationEntry(newEntry({ selectors: [GID] }));
        await expectCode(s.updateRegistrationEntry('missing', { hint: 'x' }), 'NOT_FOUND');
        await expectCode(s.updateRegistrationEntry(a.id, { id: 'other' } as never), 'INVALID_ARGUMENT');
        await expectCode(s.updateRegistrationEntry(a.id, { x509SvidTtl: -5 }), 'INVALID_ARGUMENT');
        await expectCode(s.updateRegistrationEntry(a.id, { selectors: [] }), 'INVALID_ARGUMENT');
        await expectCode(s.updateRegistrationEntry(b.id, { selectors: [UID] }), 'ALREADY_EXISTS');
        expect(await s.fetchRegistrationEntry(a.id)).toEqual(a);
        expect(await s.fetchRegistrationEntry(b.id)).toEqual(b);
        expect(await s.getRevision()).toBe(2);
        expect(await s.listEntryEvents(2)).toEqual([]);
      });

      it('deletes an entry, returning it, and refuses a second delete', async () => {
        const a = await s.createRegistrationEntry(newEntry({ selectors: [UID] }));
        const b = await s.createRegistrationEntry(newEntry({ selectors: [GID] }));
        expect(await s.deleteRegistrationEntry(a.id)).toEqual(a);
        expect(await s.fetchRegistrationEntry(a.id)).toBeUndefined();
        expect(await s.countRegistrationEntries()).toBe(1);
        expect((await s.listRegistrationEntries({ selectors: { selectors: [UID], match: 'any' } })).items).toEqual([]);
        await expectCode(s.deleteRegistrationEntry(a.id), 'NOT_FOUND');
        expect(await s.fetchRegistrationEntry(b.id)).toEqual(b);
        // the freed identity can be registered again
        await s.createRegistrationEntry(newEntry({ selectors: [UID] }));
      });

      it('lists by spiffe id, parent id(s), federation, hint, and their combination', async () => {
        const a = await s.createRegistrationEntry(newEntry({ spiffeId: `${TD}/a`, hint: 'web', federatesWith: ['other.org'] }));
        const b = await s.createRegistrationEntry(newEntry({ spiffeId: `${TD}/b`, parentId: AGENT2, federatesWith: ['x.org', 'other.org'] }));
        const c = await s.createRegistrationEntry(newEntry({ spiffeId: `${TD}/a`, parentId: AGENT2, hint: 'web' }));
        const d = await s.createRegistrationEntry(newEntry({ spiffeId: `${TD}/d`, parentId: `${TD}/elsewhere` }));
        expect(sortedIds(await s.listRegistrationEntries({}))).toEqual(idsOf(a, b, c, d));
        expect(sortedIds(await s.listRegistrationEntries({ spiffeId: `${TD}/a` }))).toEqual(idsOf(a, c));
        expect(sortedIds(await s.listRegistrationEntries({ parentId: AGENT2 }))).toEqual(idsOf(b, c));
        expect(sortedIds(await s.listRegistrationEntries({ parentIds: [AGENT, `${TD}/elsewhere`] }))).toEqual(idsOf(a, d));
        expect((await s.listRegistrationEntries({ parentIds: [] })).items).toEqual([]);
        expect(sortedIds(await s.listRegistrationEntries({ federatesWith: 'other.org' }))).toEqual(idsOf(a, b));
        expect(sortedIds(await s.listRegistrationEntries({ hint: 'web' }))).toEqual(idsOf(a, c));
        expect(sortedIds(await s.listRegistrationEntries({ hint: 'web', parentId: AGENT2 }))).toEqual(idsOf(c));
        expect((await s.listRegistrationEntries({ spiffeId: `${TD}/none` })).items).toEqual([]);
      });

      it('prunes entries that expired before now, one revision and event each', async () => {
        const a = await s.createRegistrationEntry(newEntry({ selectors: [UID], expiresAt: 1000 }));
        const b = await s.createRegistrationEntry(newEntry({ selectors: [GID], expiresAt: 2000 }));
        const c = await s.createRegistrationEntry(newEntry({ selectors: [PROD], expiresAt: null }));
        expect(await s.pruneRegistrationEntries(2000)).toBe(1); // expiring exactly at now: kept
        expect(sortedIds(await s.listRegistrationEntries({}))).toEqual(idsOf(b, c));
        expect(await s.getRevision()).toBe(4);
        expect(await s.listEntryEvents(3)).toEqual([
          { revision: 4, entryId: a.id, op: 'delete', oldSpiffeId: a.spiffeId, oldParentId: a.parentId, newSpiffeId: null, newParentId: null },
        ]);
        expect(await s.pruneRegistrationEntries(1_000_000_000)).toBe(1);
        expect(await s.pruneRegistrationEntries(1_000_000_000)).toBe(0);
        expect(sortedIds(await s.listRegistrationEntries({}))).toEqual(idsOf(c));
        expect(await s.getRevision()).toBe(5);
      });
    });

    describe('revision and entry events', () => {
      it('starts at 0 and bumps by one per entry written; entries carry it', async () => {
        expect(await s.getRevision()).toBe(0);
        const a = await s.createRegistrationEntry(newEntry());
        expect(a.revision).toBe(1);
        const batch = await s.createRegistrationEntries([1, 2, 3].map((i) => newEntry({ spiffeId: `${TD}/w${i}` })));
        expect(batch.map((e) => e.revision)).toEqual([2, 3, 4]);
        expect(await s.getRevision()).toBe(4);
        const u = await s.updateRegistrationEntry(a.id, { hint: 'h' });
        expect(u.revision).toBe(5);
        expect((await s.fetchRegistrationEntry(a.id))?.revision).toBe(5);
        expect((await s.fetchRegistrationEntry(batch[0]!.id))?.revision).toBe(2);
        await s.deleteRegistrationEntry(batch[1]!.id);
        expect(await s.getRevision()).toBe(6);
      });

      it('is not bumped by node, token, bundle or journal writes', async () => {
        await s.createAttestedNode(newNode());
        await s.createJoinToken({ tokenHash: hash('t'), tokenId: 't', expiresAt: 2_000_000_000 });
        await s.setBundle({ trustDomain: 'example.org', document: bundleDoc(1), sequence: 1 });
        await s.putCAJournalEntry(journal());
        expect(await s.getRevision()).toBe(0);
        expect(await s.listEntryEvents(0)).toEqual([]);
      });

      it('lists exactly the changes after a revision, with old and new ids', async () => {
        const a = await s.createRegistrationEntry(newEntry({ spiffeId: `${TD}/a` }));
        await s.updateRegistrationEntry(a.id, { spiffeId: `${TD}/a2`, parentId: AGENT2 });
        const b = await s.createRegistrationEntry(newEntry({ spiffeId: `${TD}/b` }));
        await s.deleteRegistrationEntry(a.id);
        const all = [
          { revision: 1, entryId: a.id, op: 'create', oldSpiffeId: null, oldParentId: null, newSpiffeId: `${TD}/a`, newParentId: AGENT },
          { revision: 2, entryId: a.id, op: 'update', oldSpiffeId: `${TD}/a`, oldParentId: AGENT, newSpiffeId: `${TD}/a2`, newParentId: AGENT2 },
          { revision: 3, entryId: b.id, op: 'create', oldSpiffeId: null, oldParentId: null, newSpiffeId: `${TD}/b`, newParentId: AGENT },
          { revision: 4, entryId: a.id, op: 'delete', oldSpiffeId: `${TD}/a2`, oldParentId: AGENT2, newSpiffeId: null, newParentId: null },
        ];
        expect(await s.listEntryEvents(0)).toEqual(all);
        expect(await s.listEntryEvents(2)).toEqual(all.slice(2));
        expect(await s.listEntryEvents(4)).toEqual([]);
        expect(await s.listEntryEvents(99)).toEqual([]);
      });
    });

    describe('batch create', () => {
      it('creates all entries in one go', async () => {
        const es = await s.createRegistrationEntries([newEntry({ selectors: [UID] }), newEntry({ selectors: [GID] })]);
        expect(es).toHaveLength(2);
        expect(await s.countRegistrationEntries()).toBe(2);
        expect(await s.createRegistrationEntries([])).toEqual([]);
      });

      it('a large batch keeps every field and selector of every entry, in input order, with one create event each', async () => {
        const input = Array.from({ length: 1200 }, (_, i) =>
          newEntry({
            spiffeId: `${TD}/batch/${i}`,
            parentId: i % 2 ? AGENT : AGENT2,
            selectors: i % 3 ? [sel('unix', `uid:${i}`)] : [sel('unix', `uid:${i}`), PROD],
            x509SvidTtl: i,
            dnsNames: i % 5 ? [] : [`w${i}.example.org`],
            hint: i % 7 ? '' : `h${i}`,
            expiresAt: i % 11 ? null : 2_000_000_000 + i,
          }),
        );
        const out = await s.createRegistrationEntries(input);
        expect(out.map((e) => e.spiffeId)).toEqual(input.map((e) => e.spiffeId));
        expect(out.map((e) => e.revision)).toEqual(input.map((_, i) => i + 1));
        for (const i of [0, 5, 7, 11, 1199]) {
          const got = (await s.fetchRegistrationEntry(out[i]!.id))!;
          expect(got).toMatchObject({ ...input[i], selectors: [...input[i]!.selectors].sort((a, b) => (a.type + a.value < b.type + b.value ? -1 : 1)) });
        }
        const prod = await s.listRegistrationEntries({ selectors: { selectors: [PROD], match: 'any' } });
        expect(prod.items.map((e) => e.spiffeId).sort()).toEqual(input.filter((_, i) => i % 3 === 0).map((e) => e.spiffeId).sort());
        const events = await s.listEntryEvents(0);
        expect(events.map((e) => [e.revision, e.entryId, e.op, e.newSpiffeId, e.newParentId])).toEqual(
          out.map((e, i) => [i + 1, e.id, 'create', input[i]!.spiffeId, input[i]!.parentId]),
        );
        expect(await s.getRevision()).toBe(1200);
      });

      it('names the entry that clashes within a batch', async () => {
        await s.createRegistrationEntry(newEntry({ spiffeId: `${TD}/taken`, selectors: [PROD] }));
        const batch = [newEntry({ spiffeId: `${TD}/free` }), newEntry({ spiffeId: `${TD}/taken`, selectors: [PROD] })];
        await expect(s.createRegistrationEntries(batch)).rejects.toMatchObject({ code: 'ALREADY_EXISTS', message: expect.stringContaining(`${TD}/taken`) });
        expect(await s.countRegistrationEntries()).toBe(1);
      });

      it('stores nothing and keeps the revision when the second entry is invalid', async () => {
        await expectCode(s.createRegistrationEntries([newEntry({ selectors: [UID] }), newEntry({ selectors: [] })]), 'INVALID_ARGUMENT');
        expect(await s.countRegistrationEntries()).toBe(0);
        expect(await s.getRevision()).toBe(0);
        expect(await s.listEntryEvents(0)).toEqual([]);
      });

      it('stores nothing and keeps the revision when the second entry is a duplicate', async () => {
        const existing = await s.createRegistrationEntry(newEntry({ selectors: [PROD] }));
        await expectCode(s.createRegistrationEntries([newEntry({ selectors: [UID] }), newEntry({ selectors: [UID] })]), 'ALREADY_EXISTS');
        await expectCode(s.createRegistrationEntries([newEntry({ selectors: [GID] }), newEntry({ selectors: [PROD] })]), 'ALREADY_EXISTS');
        expect(sortedIds(await s.listRegistrationEntries({}))).toEqual([existing.id]);
        expect(await s.getRevision()).toBe(1);
        expect(await s.listEntryEvents(1)).toEqual([]);
        // the rolled-back revisions are handed out again, not skipped
        expect((await s.createRegistrationEntry(newEntry({ selectors: [UID] }))).revision).toBe(2);
      });
    });

    describe('selector matching', () => {
      // A {uid}   B {uid, gid}   C {gid, prod}   D {dev}
      let A: RegistrationEntry, B: RegistrationEntry, C: RegistrationEntry, D: RegistrationEntry;
      beforeEach(async () => {
        [A, B, C, D] = await s.createRegistrationEntries([
          newEntry({ spiffeId: `${TD}/A`, selectors: [UID] }),
          newEntry({ spiffeId: `${TD}/B`, selectors: [UID, GID] }),
          newEntry({ spiffeId: `${TD}/C`, selectors: [GID, PROD], parentId: AGENT2 }),
          newEntry({ spiffeId: `${TD}/D`, selectors: [DEV] }),
        ]) as [RegistrationEntry, RegistrationEntry, RegistrationEntry, RegistrationEntry];
      });
      const match = (selectors: Selector[], m: 'exact' | 'subset' | 'superset' | 'any') =>
        s.listRegistrationEntries({ selectors: { selectors, match: m } }).then(sortedIds);

      it('exact: the entry has exactly the given set (order and duplicates in the query do not matter)', async () => {
        expect(await match([UID, GID], 'exact')).toEqual(idsOf(B));
        expect(await match([GID, UID, GID], 'exact')).toEqual(idsOf(B));
        expect(await match([UID], 'exact')).toEqual(idsOf(A));
        expect(await match([GID], 'exact')).toEqual([]);
      });

      it('subset: every selector of the entry is among the given ones (what a caller holding them gets)', async () => {
        expect(await match([UID, GID], 'subset')).toEqual(idsOf(A, B));
        expect(await match([UID, GID, PROD], 'subset')).toEqual(idsOf(A, B, C));
        expect(await match([GID], 'subset')).toEqual([]);
        expect(await match([DEV, sel('unix', 'uid:0')], 'subset')).toEqual(idsOf(D));
      });

      it('superset: the entry has all the given selectors, maybe more', async () => {
        expect(await match([UID, GID], 'superset')).toEqual(idsOf(B));
        expect(await match([GID], 'superset')).toEqual(idsOf(B, C));
        expect(await match([UID], 'superset')).toEqual(idsOf(A, B));
        expect(await match([UID, PROD], 'superset')).toEqual([]);
      });

      it('any: the entry has at least one of the given selectors', async () => {
        expect(await match([UID, GID], 'any')).toEqual(idsOf(A, B, C));
        expect(await match([DEV, sel('x', 'y')], 'any')).toEqual(idsOf(D));
        expect(await match([sel('x', 'y')], 'any')).toEqual([]);
      });

      it('combines with other filters and paging', async () => {
        const q = { selectors: { selectors: [UID, GID, PROD], match: 'subset' as const } };
        expect(sortedIds(await s.listRegistrationEntries({ ...q, parentId: AGENT2 }))).toEqual(idsOf(C));
        const p1 = await s.listRegistrationEntries({ ...q, pageSize: 2 });
        const p2 = await s.listRegistrationEntries({ ...q, pageSize: 2, pageToken: p1.nextPageToken });
        expect(p1.items).toHaveLength(2);
        expect(p2.nextPageToken).toBeUndefined();
        expect([...sortedIds(p1), ...sortedIds(p2)].sort()).toEqual(idsOf(A, B, C));
      });

      it('rejects an empty selector list or an unknown mode', async () => {
        await expectCode(s.listRegistrationEntries({ selectors: { selectors: [], match: 'superset' } }), 'INVALID_ARGUMENT');
        await expectCode(s.listRegistrationEntries({ selectors: { selectors: [UID], match: 'most' as never } }), 'INVALID_ARGUMENT');
      });
    });

    describe('paging', () => {
      async function all(q: { parentId?: string }, pageSize: number): Promise<{ ids: string[]; pages: number }> {
        const ids: string[] = [];
        let pageToken: string | undefined;
        let pages = 0;
        do {
          const p = await s.listRegistrationEntries({ ...q, pageSize, pageToken });
          expect(p.items.length).toBeLessThanOrEqual(pageSize);
          ids.push(...p.items.map((e) => e.id));
          pageToken = p.nextPageToken;
          pages++;
        } while (pageToken);
        return { ids, pages };
      }

      it('walks more than two pages without duplicates or gaps', async () => {
        const created = await s.createRegistrationEntries(
          Array.from({ length: 25 }, (_, i) => newEntry({ spiffeId: `${TD}/w${i}`, parentId: i % 2 ? AGENT : AGENT2 })),
        );
        const { ids, pages } = await all({}, 10);
        expect(pages).toBe(3);
        expect(new Set(ids).size).toBe(25);
        expect([...ids].sort()).toEqual(created.map((e) => e.id).sort());
        const filtered = await all({ parentId: AGENT }, 5); // 12 of them
        expect(filtered.pages).toBe(3);
        expect([...filtered.ids].sort()).toEqual(created.filter((e) => e.parentId === AGENT).map((e) => e.id).sort());
        // an exactly full last page carries no token
        const one = await s.listRegistrationEntries({ pageSize: 25 });
        expect(one.items).toHaveLength(25);
        expect(one.nextPageToken).toBeUndefined();
      });

      it('neither skips nor repeats entries when entries are deleted between pages', async () => {
        await s.createRegistrationEntries(Array.from({ length: 9 }, (_, i) => newEntry({ spiffeId: `${TD}/w${i}` })));
        const p1 = await s.listRegistrationEntries({ pageSize: 3 });
        const fullP2 = await s.listRegistrationEntries({ pageSize: 3, pageToken: p1.nextPageToken });
        await s.deleteRegistrationEntry(p1.items[2]!.id); // the page's last key
        await s.deleteRegistrationEntry(fullP2.items[0]!.id);
        const p2 = await s.listRegistrationEntries({ pageSize: 3, pageToken: p1.nextPageToken });
        expect(p2.items.map((e) => e.id).slice(0, 2)).toEqual(fullP2.items.slice(1).map((e) => e.id));
      });

      it('pages attested nodes too', async () => {
        for (let i = 0; i < 7; i++) await s.createAttestedNode(newNode({ spiffeId: `${AGENT}-${i}` }));
        const seen: string[] = [];
        let pageToken: string | undefined;
        let pages = 0;
        do {
          const p = await s.listAttestedNodes({ pageSize: 3, pageToken });
          seen.push(...p.items.map((n) => n.spiffeId));
          pageToken = p.nextPageToken;
          pages++;
        } while (pageToken);
        expect(pages).toBe(3);
        expect(seen.sort()).toEqual(Array.from({ length: 7 }, (_, i) => `${AGENT}-${i}`).sort());
      });

      it.each([0, -1, 1001, 2.5])('rejects pageSize %p', async (pageSize) => {
        await expectCode(s.listRegistrationEntries({ pageSize }), 'INVALID_ARGUMENT');
        await expectCode(s.listAttestedNodes({ pageSize }), 'INVALID_ARGUMENT');
      });

      it('rejects a page token it did not make', async () => {
        await expectCode(s.listRegistrationEntries({ pageSize: 2, pageToken: 'not a token!' }), 'INVALID_ARGUMENT');
        await expectCode(s.listRegistrationEntries({ pageToken: Buffer.from('{"a":-1}').toString('base64url') }), 'INVALID_ARGUMENT');
        await expectCode(s.listAttestedNodes({ pageToken: 'bm9wZQ' }), 'INVALID_ARGUMENT');
      });
    });

    describe('attested nodes', () => {
      it('creates, fetches and refuses a duplicate', async () => {
        const n = await s.createAttestedNode(newNode({ selectors: [sel('b', '2'), sel('a', '1')] }));
        expect(n).toEqual({ ...newNode(), selectors: [sel('a', '1'), sel('b', '2')], createdAt: n.createdAt, updatedAt: n.createdAt });
        expect(Number.isInteger(n.createdAt)).toBe(true);
        expect(await s.fetchAttestedNode(AGENT)).toEqual(n);
        expect(await s.fetchAttestedNode(AGENT2)).toBeUndefined();
        await expectCode(s.createAttestedNode(newNode()), 'ALREADY_EXISTS');
        await expectCode(s.createAttestedNode(newNode({ spiffeId: 'not-a-spiffe-id' })), 'INVALID_ARGUMENT');
      });

      it('updates the given fields and replaces selectors', async () => {
        const n = await s.createAttestedNode(newNode());
        const u = await s.updateAttestedNode(AGENT, { newSerialNumber: '02cd', newExpiresAt: 2_100_000_000, selectors: [sel('x', 'y')] });
        expect(u).toEqual({ ...n, newSerialNumber: '02cd', newExpiresAt: 2_100_000_000, selectors: [sel('x', 'y')], updatedAt: u.updatedAt });
        expect(u.updatedAt).toBeGreaterThanOrEqual(n.updatedAt);
        const v = await s.updateAttestedNode(AGENT, { serialNumber: '02cd', expiresAt: 2_100_000_000, newSerialNumber: '', newExpiresAt: 0, banned: true });
        expect(v).toMatchObject({ serialNumber: '02cd', banned: true, selectors: [sel('x', 'y')], createdAt: n.createdAt });
        expect(await s.fetchAttestedNode(AGENT)).toEqual(v);
        await expectCode(s.updateAttestedNode(AGENT2, { banned: true }), 'NOT_FOUND');
        await expectCode(s.updateAttestedNode(AGENT, { attestationType: 'x' } as never), 'INVALID_ARGUMENT');
        await expectCode(s.updateAttestedNode(AGENT, { expiresAt: -1 }), 'INVALID_ARGUMENT');
        expect(await s.fetchAttestedNode(AGENT)).toEqual(v);
      });

      it('lists by attestation type and banned flag', async () => {
        await s.createAttestedNode(newNode({ spiffeId: `${AGENT}-1` }));
        await s.createAttestedNode(newNode({ spiffeId: `${AGENT}-2`, attestationType: 'x509pop', banned: true }));
        await s.createAttestedNode(newNode({ spiffeId: `${AGENT}-3`, attestationType: 'x509pop' }));
        const ids = (p: Page<AttestedNode>) => p.items.map((n) => n.spiffeId).sort();
        expect(ids(await s.listAttestedNodes({}))).toEqual([`${AGENT}-1`, `${AGENT}-2`, `${AGENT}-3`]);
        expect(ids(await s.listAttestedNodes({ attestationType: 'x509pop' }))).toEqual([`${AGENT}-2`, `${AGENT}-3`]);
        expect(ids(await s.listAttestedNodes({ banned: true }))).toEqual([`${AGENT}-2`]);
        expect(ids(await s.listAttestedNodes({ attestationType: 'x509pop', banned: false }))).toEqual([`${AGENT}-3`]);
      });

      it('summarizes: totals, banned, and the unbanned node whose SVID expires first', async () => {
        expect(await s.summarizeAttestedNodes()).toEqual({ total: 0, banned: 0, earliest: null });
        await s.createAttestedNode(newNode({ spiffeId: `${AGENT}-late`, expiresAt: 2_000_000_500 }));
        await s.createAttestedNode(newNode({ spiffeId: `${AGENT}-banned`, expiresAt: 1_900_000_000, banned: true }));
        await s.createAttestedNode(newNode({ spiffeId: `${AGENT}-b`, expiresAt: 2_000_000_100 }));
        await s.createAttestedNode(newNode({ spiffeId: `${AGENT}-a`, expiresAt: 2_000_000_100 }));
        await s.createAttestedNode(newNode({ spiffeId: `${AGENT}-none`, expiresAt: 0 }));
        expect(await s.summarizeAttestedNodes()).toEqual({ total: 5, banned: 1, earliest: { spiffeId: `${AGENT}-a`, expiresAt: 2_000_000_100 } });
        await s.updateAttestedNode(`${AGENT}-a`, { banned: true });
        await s.updateAttestedNode(`${AGENT}-b`, { banned: true });
        expect(await s.summarizeAttestedNodes()).toEqual({ total: 5, banned: 3, earliest: { spiffeId: `${AGENT}-late`, expiresAt: 2_000_000_500 } });
      });

      it('deletes a node, returning it, and refuses a second delete', async () => {
        const n = await s.createAttestedNode(newNode());
        expect(await s.deleteAttestedNode(AGENT)).toEqual(n);
        expect(await s.fetchAttestedNode(AGENT)).toBeUndefined();
        await expectCode(s.deleteAttestedNode(AGENT), 'NOT_FOUND');
        // re-attestation after delete starts clean (no stale selectors)
        expect((await s.createAttestedNode(newNode({ selectors: [] }))).selectors).toEqual([]);
      });
    });

    describe('join tokens', () => {
      const token = (secret: string, expiresAt = 2_000_000_000) => ({ tokenHash: hash(secret), tokenId: `id-${secret}`, expiresAt });

      it('is consumed exactly once', async () => {
        const t = await s.createJoinToken(token('s1'));
        expect(t).toEqual({ ...token('s1'), createdAt: t.createdAt });
        expect(await s.consumeJoinToken(hash('s1'))).toEqual(t);
        expect(await s.consumeJoinToken(hash('s1'))).toBeUndefined();
        expect(await s.consumeJoinToken(hash('never-made'))).toBeUndefined();
      });

      it('hands a token to only one of two concurrent consumers', async () => {
        await s.createJoinToken(token('s2'));
        const got = await Promise.all([s.consumeJoinToken(hash('s2')), s.consumeJoinToken(hash('s2'))]);
        expect(got.filter(Boolean)).toHaveLength(1);
      });

      it('returns (and deletes) an expired token so the caller can report expiry', async () => {
        await s.createJoinToken(token('old', 1000));
        expect((await s.consumeJoinToken(hash('old')))?.expiresAt).toBe(1000);
        expect(await s.consumeJoinToken(hash('old'))).toBeUndefined();
      });

      it('refuses duplicates and a hash that is not sha-256 hex', async () => {
        await s.createJoinToken(token('s3'));
        await expectCode(s.createJoinToken(token('s3')), 'ALREADY_EXISTS');
        await expectCode(s.createJoinToken({ ...token('s4'), tokenHash: 'the-raw-secret' }), 'INVALID_ARGUMENT');
      });

      it('prunes tokens that expired before now', async () => {
        await s.createJoinToken(token('a', 1000));
        await s.createJoinToken(token('b', 2000));
        await s.createJoinToken(token('c', 3000));
        expect(await s.pruneJoinTokens(2000)).toBe(1);
        expect(await s.consumeJoinToken(hash('a'))).toBeUndefined();
        expect(await s.pruneJoinTokens(2001)).toBe(1);
        expect(await s.consumeJoinToken(hash('c'))).toMatchObject({ tokenId: 'id-c' });
      });
    });

    describe('bundles', () => {
      it('sets, replaces, lists and deletes', async () => {
        const b = await s.setBundle({ trustDomain: 'example.org', document: bundleDoc(1), sequence: 1 });
        expect(b).toEqual({ trustDomain: 'example.org', document: bundleDoc(1), sequence: 1, updatedAt: b.updatedAt });
        expect(Number.isInteger(b.updatedAt)).toBe(true);
        expect(await s.fetchBundle('example.org')).toEqual(b);
        await s.setBundle({ trustDomain: 'other.org', document: bundleDoc(7), sequence: 7 });
        const r = await s.setBundle({ trustDomain: 'example.org', document: bundleDoc(2), sequence: 2 });
        expect(await s.fetchBundle('example.org')).toEqual(r);
        expect(r.sequence).toBe(2);
        const list = await s.listBundles();
        expect(list.map((x) => [x.trustDomain, x.sequence]).sort()).toEqual([['example.org', 2], ['other.org', 7]]);
        await s.deleteBundle('other.org');
        expect(await s.fetchBundle('other.org')).toBeUndefined();
        expect(await s.listBundles()).toEqual([r]);
        await expectCode(s.deleteBundle('other.org'), 'NOT_FOUND');
      });

      it('rejects a trust domain with scheme and a document that is not JSON', async () => {
        await expectCode(s.setBundle({ trustDomain: 'spiffe://example.org', document: bundleDoc(1), sequence: 1 }), 'INVALID_ARGUMENT');
        await expectCode(s.setBundle({ trustDomain: 'example.org', document: 'not json', sequence: 1 }), 'INVALID_ARGUMENT');
        expect(await s.listBundles()).toEqual([]);
      });
    });

    describe('CA journal', () => {
      it('puts (upserting), lists by kind and deletes', async () => {
        const x = await s.putCAJournalEntry(journal());
        expect(x).toEqual({ ...journal(), owner: '', createdAt: x.createdAt, updatedAt: x.createdAt });
        expect(Buffer.isBuffer(x.certificateDer)).toBe(true);
        const jwk = JSON.stringify({ kty: 'EC', crv: 'P-256', x: 'AA', y: 'BB' });
        const j = await s.putCAJournalEntry(journal({ id: 'jwt-a', kind: 'jwt', keyId: 'jwt-a', certificateDer: null, publicJwk: jwk, kid: 'k1' }));
        const chain = Buffer.from([1, 2, 3]);
        const x2 = await s.putCAJournalEntry(journal({ state: 'active', upstreamChainDer: chain }));
        expect(x2).toEqual({ ...x, state: 'active', upstreamChainDer: chain, updatedAt: x2.updatedAt });
        expect(x2.createdAt).toBe(x.createdAt);
        expect(await s.listCAJournal()).toHaveLength(2);
        expect(await s.listCAJournal('x509')).toEqual([x2]);
        expect(await s.listCAJournal('jwt')).toEqual([j]);
        await s.deleteCAJournalEntry('x509-a');
        expect(await s.listCAJournal()).toEqual([j]);
        await expectCode(s.deleteCAJournalEntry('x509-a'), 'NOT_FOUND');
      });

      it('keeps the owner of a slot (the server instance holding its key) and lets it change hands', async () => {
        const mine = await s.putCAJournalEntry(journal({ id: 'x509-m', owner: 'server-1' }));
        const theirs = await s.putCAJournalEntry(journal({ id: 'x509-t', keyId: 'x509-ca-t', owner: 'server-2' }));
        expect([mine.owner, theirs.owner]).toEqual(['server-1', 'server-2']);
        expect((await s.listCAJournal('x509')).map((e) => [e.id, e.owner])).toEqual([['x509-m', 'server-1'], ['x509-t', 'server-2']]);
        expect((await s.putCAJournalEntry(journal({ id: 'x509-t', keyId: 'x509-ca-t', owner: 'server-1' }))).owner).toBe('server-1');
        await expectCode(s.putCAJournalEntry(journal({ owner: 7 as never })), 'INVALID_ARGUMENT');
      });

      it('rejects an unknown state or kind', async () => {
        await expectCode(s.putCAJournalEntry(journal({ state: 'lost' as never })), 'INVALID_ARGUMENT');
        await expectCode(s.putCAJournalEntry(journal({ kind: 'ssh' as never })), 'INVALID_ARGUMENT');
        expect(await s.listCAJournal()).toEqual([]);
      });
    });

    describe('issued SVIDs by signer (issue #4)', () => {
      it('upserts by holder, counts unexpired records per authority and prunes expired ones', async () => {
        await s.recordIssuedSVIDs([
          { holder: 'x509 a1 e1', authorityId: 'ca-1', expiresAt: 100 },
          { holder: 'x509 a1 e2', authorityId: 'ca-1', expiresAt: 200 },
          { holder: 'agent a1', authorityId: 'ca-1', expiresAt: 300 },
        ]);
        expect(await s.countIssuedSVIDs('ca-1', 50)).toBe(3);
        expect(await s.countIssuedSVIDs('ca-1', 150)).toBe(2); // expired records do not count
        // re-issued by another authority: the holder no longer depends on ca-1
        await s.recordIssuedSVIDs([{ holder: 'x509 a1 e2', authorityId: 'ca-2', expiresAt: 400 }]);
        expect(await s.countIssuedSVIDs('ca-1', 150)).toBe(1);
        expect(await s.countIssuedSVIDs('ca-2', 150)).toBe(1);
        // the list: unexpired, soonest expiry first, limited
        const listed = await s.listIssuedSVIDs('ca-1', 150, 10);
        expect(listed.every((r) => r.authorityId === 'ca-1' && r.expiresAt > 150)).toBe(true);
        expect(listed).toHaveLength(1);
        expect(await s.listIssuedSVIDs('ca-1', 0, 10)).toEqual([
          { holder: 'x509 a1 e1', authorityId: 'ca-1', expiresAt: 100 },
          { holder: 'agent a1', authorityId: 'ca-1', expiresAt: 300 },
        ]);
        expect(await s.listIssuedSVIDs('ca-1', 0, 1)).toEqual([{ holder: 'x509 a1 e1', authorityId: 'ca-1', expiresAt: 100 }]);
        expect(await s.countIssuedSVIDs('ca-3', 0)).toBe(0);
        expect(await s.pruneIssuedSVIDs(300)).toBe(2);
        expect(await s.countIssuedSVIDs('ca-1', 0)).toBe(0);
        expect(await s.countIssuedSVIDs('ca-2', 0)).toBe(1);
        await s.recordIssuedSVIDs([]);
      });

      it('rejects a malformed record and stores none of the batch', async () => {
        await expectCode(
          s.recordIssuedSVIDs([
            { holder: 'ok', authorityId: 'ca-1', expiresAt: 1 },
            { holder: '', authorityId: 'ca-1', expiresAt: 1 },
          ]),
          'INVALID_ARGUMENT',
        );
        expect(await s.countIssuedSVIDs('ca-1', 0)).toBe(0);
      });
    });

    describe('federation relationships', () => {
      const web = { trustDomain: 'b.example.org', bundleEndpointUrl: 'https://b.example.org/bundle', profile: 'https_web' as const, endpointSpiffeId: null };
      const spiffe = {
        trustDomain: 'a.example.org',
        bundleEndpointUrl: 'https://a.example.org:8443',
        profile: 'https_spiffe' as const,
        endpointSpiffeId: 'spiffe://a.example.org/tessera/server',
      };

      it('creates, fetches, lists (by trust domain), updates and deletes', async () => {
        const b = await s.createFederationRelationship(web);
        expect(b).toEqual({ ...web, createdAt: b.createdAt, updatedAt: b.createdAt, lastRefreshAt: null, lastError: null });
        const a = await s.createFederationRelationship(spiffe);
        expect(await s.fetchFederationRelationship('b.example.org')).toEqual(b);
        expect(await s.fetchFederationRelationship('c.example.org')).toBeUndefined();
        expect(await s.listFederationRelationships()).toEqual([a, b]);

        const status = await s.updateFederationRelationship('b.example.org', { lastRefreshAt: 1_700_000_000, lastError: 'connection refused' });
        expect(status).toEqual({ ...b, lastRefreshAt: 1_700_000_000, lastError: 'connection refused' });
        const cleared = await s.updateFederationRelationship('b.example.org', { lastError: null });
        expect(cleared.lastError).toBeNull();
        expect(cleared.lastRefreshAt).toBe(1_700_000_000);
        const moved = await s.updateFederationRelationship('b.example.org', {
          profile: 'https_spiffe',
          endpointSpiffeId: 'spiffe://b.example.org/bundle-server',
          bundleEndpointUrl: 'https://bundles.b.example.org',
        });
        expect(moved).toMatchObject({ profile: 'https_spiffe', endpointSpiffeId: 'spiffe://b.example.org/bundle-server', bundleEndpointUrl: 'https://bundles.b.example.org' });

        expect(await s.deleteFederationRelationship('b.example.org')).toEqual(moved);
        expect(await s.listFederationRelationships()).toEqual([a]);
        await expectCode(s.deleteFederationRelationship('b.example.org'), 'NOT_FOUND');
        await expectCode(s.updateFederationRelationship('b.example.org', { lastError: 'x' }), 'NOT_FOUND');
      });

      it('refuses a duplicate trust domain', async () => {
        await s.createFederationRelationship(web);
        await expectCode(s.createFederationRelationship({ ...web, bundleEndpointUrl: 'https://other.example.org' }), 'ALREADY_EXISTS');
      });

      it('keeps the trust domain bundle when the relationship is deleted', async () => {
        await s.createFederationRelationship(web);
        const bundle = await s.setBundle({ trustDomain: 'b.example.org', document: bundleDoc(4), sequence: 4 });
        await s.deleteFederationRelationship('b.example.org');
        expect(await s.fetchBundle('b.example.org')).toEqual(bundle);
      });

      it('rejects a bad profile, url, trust domain or an endpoint id that does not fit the profile, writing nothing', async () => {
        await expectCode(s.createFederationRelationship({ ...web, profile: 'http' as never }), 'INVALID_ARGUMENT');
        await expectCode(s.createFederationRelationship({ ...web, bundleEndpointUrl: 'http://b.example.org' }), 'INVALID_ARGUMENT');
        await expectCode(s.createFederationRelationship({ ...web, trustDomain: 'spiffe://b.example.org' }), 'INVALID_ARGUMENT');
        await expectCode(s.createFederationRelationship({ ...web, endpointSpiffeId: 'spiffe://b.example.org/x' }), 'INVALID_ARGUMENT');
        await expectCode(s.createFederationRelationship({ ...spiffe, endpointSpiffeId: null }), 'INVALID_ARGUMENT');
        await expectCode(s.createFederationRelationship({ ...spiffe, endpointSpiffeId: 'a.example.org/x' }), 'INVALID_ARGUMENT');
        expect(await s.listFederationRelationships()).toEqual([]);
        await s.createFederationRelationship(spiffe);
        await expectCode(s.updateFederationRelationship('a.example.org', { profile: 'https_web' }), 'INVALID_ARGUMENT');
        await expectCode(s.updateFederationRelationship('a.example.org', { trustDomain: 'c.example.org' } as never), 'INVALID_ARGUMENT');
        await expectCode(s.updateFederationRelationship('a.example.org', { lastRefreshAt: -1 }), 'INVALID_ARGUMENT');
        expect((await s.fetchFederationRelationship('a.example.org'))?.profile).toBe('https_spiffe');
      });

      it('survives a restart (skipped without reopen)', async () => {
        if (!ctx.reopen) return;
        const a = await s.createFederationRelationship(spiffe);
        await s.close();
        s = await ctx.reopen();
        expect(await s.listFederationRelationships()).toEqual([a]);
      });
    });

    describe('restart', () => {
      it('keeps every kind of data and continues the revision (skipped without reopen)', async () => {
        if (!ctx.reopen) return;
        const a = await s.createRegistrationEntry(newEntry({ selectors: [UID], dnsNames: ['a.example.org'] }));
        const b = await s.createRegistrationEntry(newEntry({ selectors: [GID] }));
        await s.updateRegistrationEntry(b.id, { hint: 'h' });
        const n = await s.createAttestedNode(newNode());
        await s.createJoinToken({ tokenHash: hash('r'), tokenId: 'r', expiresAt: 2_000_000_000 });
        const bundle = await s.setBundle({ trustDomain: 'example.org', document: bundleDoc(3), sequence: 3 });
        const j = await s.putCAJournalEntry(journal());
        const events = await s.listEntryEvents(0);
        await s.close();

        s = await ctx.reopen();
        expect(await s.fetchRegistrationEntry(a.id)).toEqual(a);
        expect((await s.fetchRegistrationEntry(b.id))?.hint).toBe('h');
        expect(await s.fetchAttestedNode(AGENT)).toEqual(n);
        expect(await s.fetchBundle('example.org')).toEqual(bundle);
        expect(await s.listCAJournal()).toEqual([j]);
        expect(await s.listEntryEvents(0)).toEqual(events);
        expect(await s.getRevision()).toBe(3);
        expect((await s.createRegistrationEntry(newEntry({ selectors: [PROD] }))).revision).toBe(4);
        expect(await s.consumeJoinToken(hash('r'))).toMatchObject({ tokenId: 'r' });
      });
    });
  });
}
