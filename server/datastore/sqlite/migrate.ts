import fs from 'node:fs';
import type { Database } from 'better-sqlite3';
import { checkCompatible, readMigrations, type MigrateLog } from '../migrations';
import { unixNow } from '../../../common/clock';

/**
 * Applies the not-yet-applied `NNNN_name.sql` files of `dir` in version order, each
 * in its own IMMEDIATE transaction together with its `schema_version` row, so a
 * failing file leaves the database at the previous version. Running it again is a
 * no-op. Migration files must not contain BEGIN/COMMIT.
 *
 * Throws TesseraError FAILED_PRECONDITION when the database was migrated by a newer
 * tessera (its version is above the highest file here) or when a recorded version
 * has a different name than the file here (another branch's schema), or when `dir`
 * is malformed (gaps, duplicate numbers, a misnamed `.sql` file).
 *
 * @returns the schema version before and after
 * @example
 * const { from, to } = migrate(db, defaultMigrationsDir(), log);
 */
export function migrate(db: Database, dir: string, log?: MigrateLog, nowUnix: () => number = unixNow): { from: number; to: number } {
  const files = readMigrations(dir);
  const latest = files.length ? files[files.length - 1]!.version : 0;

  db.exec(`CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at INTEGER NOT NULL
  )`);
  const recorded = () =>
    db.prepare('SELECT version, name FROM schema_version ORDER BY version').all() as { version: number; name: string }[];
  const current = (rows: { version: number }[]) => (rows.length ? rows[rows.length - 1]!.version : 0);

  const before = recorded();
  const from = current(before);
  checkCompatible(before, files, latest);

  const insert = db.prepare('INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)');
  for (const m of files) {
    if (m.version <= from) continue;
    const sql = fs.readFileSync(m.file, 'utf8');
    // IMMEDIATE takes the write lock first, and the re-check inside it makes two
    // processes starting on one data directory apply each file exactly once.
    const applied = db
      .transaction(() => {
        if (db.prepare('SELECT 1 FROM schema_version WHERE version = ?').get(m.version)) return false;
        db.exec(sql);
        insert.run(m.version, m.name, nowUnix());
        return true;
      })
      .immediate();
    if (applied) log?.info({ version: m.version, name: m.name }, 'applied schema migration');
  }
  return { from, to: current(recorded()) };
}


export { defaultMigrationsDir, type MigrateLog } from '../migrations';
