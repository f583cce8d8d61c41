import fs from 'node:fs';
import type { Pool } from 'pg';
import { checkCompatible, readMigrations, type MigrateLog } from '../migrations';

/** Any constant: the key of the advisory lock every Tessera server takes to migrate. */
const MIGRATION_LOCK = 7_371_201;

/**
 * Applies the not-yet-applied files of `dir` (migrations/postgres), each in its
 * own transaction with its `schema_version` row. Several servers may start on one
 * database at once: each transaction first takes a transaction-scoped advisory
 * lock and re-reads the applied versions under it, so every file is applied once.
 * Refuses a database from a newer or a different Tessera build (FAILED_PRECONDITION).
 * @returns the schema version before and after
 */
export async function migratePostgres(pool: Pool, dir: string, nowUnix: () => number, log?: MigrateLog): Promise<{ from: number; to: number }> {
  const files = readMigrations(dir);
  const latest = files.length ? files[files.length - 1]!.version : 0;
  const client = await pool.connect();
  // the connection dying mid-migration rejects the query; unheard, its 'error' event would crash
  const onError = () => undefined;
  client.on('error', onError);
  let from = -1;
  try {
    for (;;) {
      await client.query('BEGIN');
      try {
        await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
        await client.query(`CREATE TABLE IF NOT EXISTS schema_version (
          version    INTEGER PRIMARY KEY,
          name       TEXT    NOT NULL,
          applied_at BIGINT  NOT NULL)`);
        const rows = (await client.query<{ version: number; name: string }>('SELECT version, name FROM schema_version ORDER BY version')).rows;
        const current = rows.length ? rows[rows.length - 1]!.version : 0;
        if (from < 0) from = current;
        checkCompatible(rows, files, latest);
        const next = files.find((f) => f.version === current + 1);
        if (!next) {
          await client.query('COMMIT');
          return { from, to: current };
        }
        await client.query(fs.readFileSync(next.file, 'utf8'));
        await client.query('INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)', [next.version, next.name, nowUnix()]);
        await client.query('COMMIT');
        log?.info({ version: next.version, name: next.name }, 'applied schema migration');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    }
  } finally {
    client.off('error', onError);
    client.release();
  }
}
