import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SqliteDataStore } from '../datastore/sqlite/store';
import { SVIDLedger } from './svid-ledger';

describe('SVIDLedger on a SQLite file', () => {
  let dir: string;
  let store: SqliteDataStore;
  let now = 1000;
  let ledger: SVIDLedger;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-ledger-'));
    store = SqliteDataStore.open(path.join(dir, 'datastore.sqlite3'));
    ledger = new SVIDLedger({ store, now: () => now });
  });
  afterEach(async () => {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('keeps only the last SVID of each holder within one batch', async () => {
    const h1 = SVIDLedger.x509Holder('spiffe://td/tessera/agent/a', 'e1');
    const h2 = SVIDLedger.x509Holder('spiffe://td/tessera/agent/a', 'e2');
    const spy = jest.spyOn(store, 'recordIssuedSVIDs'); // calls through to SQLite
    // A batch re-issuing e1 three times (the last by ca-2) and e2 once.
    await ledger.record([
      { holder: h1, authorityId: 'ca-1', expiresAt: 2000 },
      { holder: h2, authorityId: 'ca-1', expiresAt: 2000 },
      { holder: h1, authorityId: 'ca-1', expiresAt: 2000 },
      { holder: h1, authorityId: 'ca-2', expiresAt: 3000 },
    ]);
    expect(spy.mock.calls.map(([items]) => items.map((i) => [i.holder, i.authorityId]))).toEqual([
      [
        [h2, 'ca-1'],
        [h1, 'ca-2'],
      ],
    ]);
    expect(await ledger.dependents('ca-1')).toBe(1); // e2 only: e1 was replaced within the batch
    expect(await ledger.dependents('ca-2')).toBe(1);
    now = 2500;
    expect(await ledger.dependents('ca-1')).toBe(0);
    expect(await ledger.prune()).toBe(1);
  });

  it('holders of JWT-SVIDs ignore audience order and duplicates', () => {
    expect(SVIDLedger.jwtHolder('a', 'e', ['x', 'y', 'x'])).toBe(SVIDLedger.jwtHolder('a', 'e', ['y', 'x']));
    expect(SVIDLedger.jwtHolder('a', 'e', ['x'])).not.toBe(SVIDLedger.jwtHolder('a', 'e', ['y']));
  });

  it('lists the dependents of an authority with their holder parsed, soonest expiry first', async () => {
    const agent = 'spiffe://td/tessera/agent/a';
    now = 1000;
    await ledger.record([
      { holder: SVIDLedger.x509Holder(agent, 'e1'), authorityId: 'ca-1', expiresAt: 3000 },
      { holder: SVIDLedger.jwtHolder(agent, 'e2', ['aud']), authorityId: 'ca-1', expiresAt: 2500 },
      { holder: SVIDLedger.agentHolder(agent), authorityId: 'ca-1', expiresAt: 2000 },
      { holder: SVIDLedger.x509Holder(agent, 'e3'), authorityId: 'ca-1', expiresAt: 900 }, // already expired
      { holder: SVIDLedger.x509Holder(agent, 'e4'), authorityId: 'ca-2', expiresAt: 3000 },
    ]);
    expect(await ledger.listDependents('ca-1', 10)).toEqual([
      { kind: 'agent', agentId: agent, entryId: null, expiresAt: 2000 },
      { kind: 'jwt', agentId: agent, entryId: 'e2', expiresAt: 2500 },
      { kind: 'x509', agentId: agent, entryId: 'e1', expiresAt: 3000 },
    ]);
    expect(await ledger.listDependents('ca-1', 1)).toHaveLength(1);
  });
});
