import pg from 'pg';
import { TesseraError } from '../../../common/errors';
import { describePostgres, freshSchema, adminQuery } from '../../../test/helpers/postgres';
import { runDataStoreContract } from '../contract';
import type { DataStore, ListEntriesQuery } from '../datastore';
import { normalizeEntryQuery } from '../validation';
import { entryListQuery } from './sql';
import { PostgresDataStore } from './store';
import { redactUrl } from './url';

describePostgres('PostgreSQL datastore', (url) => {
  runDataStoreContract('postgres', async () => {
    const { schema, drop } = await freshSchema(url);
    let current: DataStore = await PostgresDataStore.open({ url, schema, poolSize: 4 });
    return {
      store: current,
      reopen: async () => (current = await PostgresDataStore.open({ url, schema, poolSize: 4 })),
      cleanup: async () => {
        await current.close();
        await drop();
      },
    };
  });

  it('applies its migrations once when several servers open one database at the same time', async () => {
    const { schema, drop } = await freshSchema(url);
    const lines: unknown[] = [];
    const log = { info: (o: Record<string, unknown>) => lines.push(o) };
    const stores = await Promise.all([1, 2, 3, 4].map(() => PostgresDataStore.open({ url, schema, poolSize: 2, log })));
    try {
      expect(lines).toEqual([{ version: 1, name: 'init' }, { version: 2, name: 'journal_owner' }, { version: 3, name: 'entry_lookup_by_seq' }]);
      const rows = await adminQuery<{ version: number }>(url, `SELECT version FROM ${schema}.schema_version ORDER BY version`);
      expect(rows.map((r) => r.version)).toEqual([1, 2, 3]);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
      await drop();
    }
  });

  it('refuses a database stamped with a newer schema, naming the database without its password', async () => {
    const { schema, drop } = await freshSchema(url);
    try {
      await (await PostgresDataStore.open({ url, schema })).close();
      await adminQuery(url, `INSERT INTO ${schema}.schema_version VALUES (9, 'future', 0)`);
      const err = await PostgresDataStore.open({ url, schema }).then(() => undefined, (e: unknown) => e as TesseraError);
      expect(err).toBeInstanceOf(TesseraError);
      expect(err!.code).toBe('FAILED_PRECONDITION');
      expect(err!.message).toMatch(/schema version 9 is newer than this tessera supports \(3\)/);
    } finally {
      await drop();
    }
  });

  it('answers UNAVAILABLE (not a hang, not a crash) when the database cannot be reached', async () => {
    const dead = 'postgresql://tessera:hunter2@127.0.0.1:1/postgres';
    const err = await PostgresDataStore.open({ url: dead, connectTimeoutMs: 2000 }).then(() => undefined, (e: unknown) => e as TesseraError);
    expect(err).toBeInstanceOf(TesseraError);
    expect(err!.code).toBe('UNAVAILABLE');
    expect(err!.message).toContain('postgresql://tessera:***@127.0.0.1:1/postgres');
    expect(err!.message).not.toContain('hunter2');
  });

  it('one join token is consumed exactly once by many concurrent consumers on separate stores', async () => {
    const { schema, drop } = await freshSchema(url);
    const stores = await Promise.all([1, 2, 3].map(() => PostgresDataStore.open({ url, schema, poolSize: 4 })));
    try {
      const tokenHash = 'ab'.repeat(32);
      await stores[0]!.createJoinToken({ tokenHash, tokenId: 't1', expiresAt: 2_000_000_000 });
      const got = await Promise.all(Array.from({ length: 24 }, (_, i) => stores[i % 3]!.consumeJoinToken(tokenHash)));
      expect(got.filter(Boolean)).toHaveLength(1);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
      await drop();
    }
  });

  it('hands out revisions in commit order to concurrent writers on separate stores: the event list has no gap', async () => {
    const { schema, drop } = await freshSchema(url);
    const stores = await Promise.all([1, 2].map(() => PostgresDataStore.open({ url, schema, poolSize: 4 })));
    try {
      const writes = Array.from({ length: 40 }, (_, i) =>
        stores[i % 2]!.createRegistrationEntry({
          spiffeId: `spiffe://example.org/w${i}`, parentId: 'spiffe://example.org/a', selectors: [{ type: 'unix', value: `uid:${i}` }],
          x509SvidTtl: 0, jwtSvidTtl: 0, dnsNames: [], federatesWith: [], hint: '', expiresAt: null,
        }),
      );
      await Promise.all(writes);
      const events = await stores[1]!.listEntryEvents(0);
      expect(events.map((e) => e.revision)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
      expect(await stores[0]!.getRevision()).toBe(40);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
      await drop();
    }
  });

  it("reads an agent's entries as index ranges, also right after a bulk import (no statistics yet)", async () => {
    const { schema, drop } = await freshSchema(url);
    const store = await PostgresDataStore.open({ url, schema, poolSize: 2 });
    try {
      const td = 'spiffe://example.org';
      for (let start = 0; start < 20_000; start += 2_000) {
        await store.createRegistrationEntries(
          Array.from({ length: 2_000 }, (_, k) => ({
            spiffeId: `${td}/w/${start + k}`, parentId: `${td}/agent/${(start + k) % 100}`, selectors: [{ type: 'unix', value: `uid:${start + k}` }],
            x509SvidTtl: 0, jwtSvidTtl: 0, dnsNames: [], federatesWith: [], hint: '', expiresAt: null,
          })),
        );
      }
      // what the authorizer asks on every entry change: its agent's entries, and whether the changed IDs parent any entry
      const lookups: ListEntriesQuery[] = [
        { parentIds: [`${td}/agent/7`] },
        { parentIds: [`${td}/nobody`, `${td}/nobody-else`], pageSize: 1 },
        { parentId: `${td}/tessera/server` },
        { parentId: `${td}/agent/7`, pageSize: 10 },
        { spiffeId: `${td}/w/5`, pageSize: 1 },
      ];
      const c = new pg.Client({ connectionString: url, options: `-c search_path=${schema}` });
      await c.connect();
      try {
        for (const q of lookups) {
          const { sql, values } = entryListQuery(normalizeEntryQuery(q));
          const plan = (await c.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`, values)).rows.map((r) => r['QUERY PLAN']).join('\n');
          // never a walk of the whole table in seq order (its primary key) nor a sequential scan
          expect({ q, plan }).toEqual({ q, plan: expect.not.stringMatching(/registration_entries_pkey|Seq Scan/) });
        }
      } finally {
        await c.end();
      }
    } finally {
      await store.close();
      await drop();
    }
  });
});

describe('redactUrl', () => {
  it('hides the password and password-like parameters, and never echoes an unparsable text', () => {
    expect(redactUrl('postgresql://u:secret@db:5432/x?sslpassword=s2&application_name=t')).toBe(
      'postgresql://u:***@db:5432/x?sslpassword=***&application_name=t',
    );
    expect(redactUrl('postgresql://db/x')).toBe('postgresql://db/x');
    expect(redactUrl('not a url with secret')).toBe('(unparsable url)');
  });
});
