import crypto from 'node:crypto';
import pg from 'pg';

/**
 * The PostgreSQL server tests run against: TESSERA_TEST_POSTGRES_URL, which
 * `.ci/run` sets after starting a throwaway cluster (scripts/pg-throwaway.sh), and
 * which jest's global setup sets by starting one itself when PostgreSQL is
 * installed (test/global/postgres.ts). In CI (CI set) a missing URL fails the run;
 * elsewhere, on a machine without PostgreSQL, the tests are skipped with a loud message.
 */
export function postgresUrl(): string | undefined {
  const url = process.env.TESSERA_TEST_POSTGRES_URL;
  if (url) return url;
  if (process.env.CI) throw new Error('TESSERA_TEST_POSTGRES_URL is not set: in CI the PostgreSQL tests must run (.ci/run starts a cluster)');
  return undefined;
}

let warned = false;
/** `describe`, or `describe.skip` with a warning when no PostgreSQL server is configured (outside CI only). */
export function describePostgres(name: string, fn: (url: string) => void): void {
  const url = postgresUrl();
  if (!url) {
    if (!warned) {
      warned = true;
      console.warn(
        '\n*** PostgreSQL tests SKIPPED: TESSERA_TEST_POSTGRES_URL is not set and PostgreSQL is not installed\n' +
          '*** (no /usr/lib/postgresql/*/bin/initdb). Install it (apt-get install postgresql) and the tests start\n' +
          '*** a throwaway cluster themselves, or point TESSERA_TEST_POSTGRES_URL at a server. In CI they always run.\n',
      );
    }
    describe.skip(name, () => fn(''));
    return;
  }
  describe(name, () => fn(url));
}

/** A fresh, empty schema on the test server (a store opened with `schema` keeps its tables there). */
export async function freshSchema(url: string): Promise<{ schema: string; drop: () => Promise<void> }> {
  const schema = `t_${crypto.randomBytes(6).toString('hex')}`;
  await adminQuery(url, `CREATE SCHEMA ${schema}`);
  return { schema, drop: async () => void (await adminQuery(url, `DROP SCHEMA IF EXISTS ${schema} CASCADE`)) };
}

/** One statement on a short-lived connection of its own (setup and inspection, never the code under test). */
export async function adminQuery<R extends pg.QueryResultRow = pg.QueryResultRow>(url: string, sql: string, values: unknown[] = []): Promise<R[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<R>(sql, values)).rows;
  } finally {
    await c.end();
  }
}
