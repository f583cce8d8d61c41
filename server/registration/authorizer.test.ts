import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SqliteDataStore } from '../datastore/sqlite/store';
import type { NewRegistrationEntry } from '../datastore/datastore';
import { EntryAuthorizer } from './authorizer';

const TD = 'spiffe://auth.test';
const SERVER = `${TD}/tessera/server`;
const AGENT = `${TD}/tessera/agent/x509pop/abc`;
const agent = { spiffeId: AGENT, selectors: [{ type: 'x509pop', value: 'subject:cn:node-1' }, { type: 'x509pop', value: 'ca:fingerprint:ff' }] };

const entry = (spiffeId: string, parentId: string, selectors = ['unix:uid:1'], extra: Partial<NewRegistrationEntry> = {}): NewRegistrationEntry => ({
  spiffeId: `${TD}${spiffeId}`,
  parentId: parentId.startsWith('spiffe://') ? parentId : `${TD}${parentId}`,
  selectors: selectors.map((s) => ({ type: s.split(':')[0]!, value: s.split(':').slice(1).join(':') })),
  x509SvidTtl: 0,
  jwtSvidTtl: 0,
  dnsNames: [],
  federatesWith: [],
  hint: '',
  expiresAt: null,
  ...extra,
});

let dir: string;
let store: SqliteDataStore;
let auth: EntryAuthorizer;
let now = 1_000_000;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'authz-'));
  store = SqliteDataStore.open(path.join(dir, 'db.sqlite3'));
  auth = new EntryAuthorizer(store, SERVER, () => now);
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

it('authorizes direct children, node-alias children and nested chains, and nothing else', async () => {
  const [direct, alias, viaAlias, nested, otherAlias, foreign, expired] = await store.createRegistrationEntries([
    entry('/direct', AGENT),
    entry('/node/rack', SERVER, ['x509pop:subject:cn:node-1']), // alias: selectors ⊆ agent's
    entry('/via-alias', '/node/rack'),
    entry('/nested', '/via-alias'),
    entry('/node/other', SERVER, ['x509pop:subject:cn:node-2']), // not this agent
    entry('/foreign', '/node/other'),
    entry('/expired', AGENT, ['unix:uid:2'], { expiresAt: now - 1 }),
  ]);
  const set = await auth.authorized(agent);
  expect([...set.agentIds].sort()).toEqual([AGENT, alias!.spiffeId].sort());
  expect(set.entries.map((e) => e.id).sort()).toEqual([direct!.id, viaAlias!.id, nested!.id].sort());
  for (const e of [otherAlias, foreign, expired]) expect(set.byId.has(e!.id)).toBe(false);
});

it('sync: nothing since the current revision, leaf changes as deltas, alias changes as a full set', async () => {
  const [a] = await store.createRegistrationEntries([entry('/a', AGENT)]);
  const first = await auth.sync(agent, undefined);
  expect(first.full).toBe(true);
  expect(await auth.sync(agent, first.revision)).toMatchObject({ full: false, entries: [], removed: [] });

  const b = await store.createRegistrationEntry(entry('/b', AGENT));
  const d1 = await auth.sync(agent, first.revision);
  expect(d1).toMatchObject({ full: false, removed: [] });
  expect(d1.entries.map((e) => e.id)).toEqual([b.id]);

  await store.updateRegistrationEntry(a!.id, { parentId: `${TD}/elsewhere` });
  await store.deleteRegistrationEntry(b.id);
  const d2 = await auth.sync(agent, d1.revision);
  expect(d2.full).toBe(false);
  expect(d2.removed.sort()).toEqual([a!.id, b.id].sort());

  await store.createRegistrationEntry(entry('/node/rack', SERVER, ['x509pop:subject:cn:node-1']));
  const d3 = await auth.sync(agent, d2.revision);
  expect(d3.full).toBe(true);
});

it('a deleted parent entry forces a full set so its children are withdrawn', async () => {
  const [p, c] = await store.createRegistrationEntries([entry('/parent', AGENT), entry('/child', '/parent')]);
  const s0 = await auth.sync(agent, undefined);
  expect(s0.entries).toHaveLength(2);
  await store.deleteRegistrationEntry(p!.id);
  const s1 = await auth.sync(agent, s0.revision);
  expect(s1.full).toBe(true);
  expect(s1.entries.map((e) => e.id)).not.toContain(c!.id);
});
