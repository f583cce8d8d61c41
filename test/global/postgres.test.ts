import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { startPostgresIfNeeded, stopOwnPostgres } from './postgres';

jest.setTimeout(60_000);

const installed = (() => {
  try {
    return readdirSync('/usr/lib/postgresql').some((v) => existsSync(path.join('/usr/lib/postgresql', v, 'bin', 'initdb')));
  } catch {
    return false;
  }
})();

/**
 * What the README promises for `npm test` outside CI: with no TESSERA_TEST_POSTGRES_URL,
 * jest's global setup starts a throwaway cluster when PostgreSQL is installed (and
 * teardown removes it); without PostgreSQL it leaves the environment alone, and the
 * PostgreSQL suites skip with a message.
 */
describe('the test run\'s own PostgreSQL', () => {
  const saved = { url: process.env.TESSERA_TEST_POSTGRES_URL, own: process.env.TESSERA_TEST_POSTGRES_OWN_DIR };
  beforeEach(() => {
    delete process.env.TESSERA_TEST_POSTGRES_URL;
    delete process.env.TESSERA_TEST_POSTGRES_OWN_DIR;
  });
  afterEach(() => {
    stopOwnPostgres();
    for (const [k, v] of [['TESSERA_TEST_POSTGRES_URL', saved.url], ['TESSERA_TEST_POSTGRES_OWN_DIR', saved.own]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  it('leaves a given server alone', () => {
    process.env.TESSERA_TEST_POSTGRES_URL = 'postgresql://someone@db.example:5432/x';
    startPostgresIfNeeded();
    expect(process.env.TESSERA_TEST_POSTGRES_URL).toBe('postgresql://someone@db.example:5432/x');
    expect(process.env.TESSERA_TEST_POSTGRES_OWN_DIR).toBeUndefined();
  });

  it(installed ? 'starts a throwaway cluster that answers, and removes it at teardown' : 'does nothing without PostgreSQL installed', async () => {
    startPostgresIfNeeded();
    if (!installed) {
      expect(process.env.TESSERA_TEST_POSTGRES_URL).toBeUndefined();
      return;
    }
    const url = process.env.TESSERA_TEST_POSTGRES_URL!;
    const dir = process.env.TESSERA_TEST_POSTGRES_OWN_DIR!;
    expect(url).toMatch(/^postgresql:\/\/tessera@127\.0\.0\.1:\d+\/postgres$/);
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    expect((await c.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one).toBe(1);
    await c.end();
    stopOwnPostgres();
    expect(existsSync(dir)).toBe(false);
    expect(process.env.TESSERA_TEST_POSTGRES_URL).toBeUndefined();
  });
});
