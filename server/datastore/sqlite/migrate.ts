import fs from 'node:fs';
import path from 'node:path';
import type { Database } from 'better-sqlite3';
import { failedPrecondition } from '../../../common/errors';

/** The part of a logger migrate uses (a pino Logger fits). */
export interface MigrateLog {
  info(obj: Record<string, unknown>, msg: string): void;
}

interface MigrationFile {
  version: number;
  name: string;
  file: string;
}

const FILE_RE = /^(\d{4})_([a-z0-9_]+)\.sql$/;

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
export function migrate(db: Database, dir: string, log?: MigrateLog): { from: number; to: number } {
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
        insert.run(m.version, m.name, Math.floor(Date.now() / 1000));
        return true;
      })
      .immediate();
    if (applied) log?.info({ version: m.version, name: m.name }, 'applied schema migration');
  }
  return { from, to: current(recorded()) };
}

function checkCompatible(rows: { version: number; name: string }[], files: MigrationFile[], latest: number): void {
  const current = rows.length ? rows[rows.length - 1]!.version : 0;
  if (current > latest) {
    throw failedPrecondition(
      `database schema version ${current} is newer than this tessera supports (${latest}); ` +
        'upgrade tessera or point it at another data directory',
    );
  }
  const byVersion = new Map(files.map((f) => [f.version, f.name]));
  for (const r of rows) {
    const name = byVersion.get(r.version);
    if (name !== r.name) {
      throw failedPrecondition(
        `database schema version ${r.version} was applied as "${r.name}" but this tessera has ` +
          `"${name ?? '(none)'}"; the data directory belongs to a different tessera build`,
      );
    }
  }
}

/** Reads and checks the migration files of `dir`: numbered 1..n without gaps or duplicates. */
function readMigrations(dir: string): MigrationFile[] {
  const out: MigrationFile[] = [];
  for (const f of fs.readdirSync(dir)) {
    if (!f.endsWith('.sql')) continue; // READMEs and the like
    const m = FILE_RE.exec(f);
    if (!m) throw failedPrecondition(`migration file ${f} is not named NNNN_name.sql`);
    out.push({ version: Number(m[1]), name: m[2]!, file: path.join(dir, f) });
  }
  out.sort((a, b) => a.version - b.version);
  out.forEach((m, i) => {
    if (m.version !== i + 1) {
      const what = m.version === out[i - 1]?.version ? 'duplicate' : 'missing';
      throw failedPrecondition(`migrations in ${dir}: ${what} version ${what === 'missing' ? i + 1 : m.version}`);
    }
  });
  return out;
}

/**
 * The repository's `migrations/` directory, found by walking up from this file, so
 * it works from the TypeScript source (`server/datastore/`) and from the compiled
 * output (`dist/server/datastore/`, which has no copy of the SQL files).
 */
export function defaultMigrationsDir(): string {
  for (let d = __dirname; ; d = path.dirname(d)) {
    const candidate = path.join(d, 'migrations', 'sqlite');
    if (fs.existsSync(path.join(candidate, '0001_init.sql'))) return candidate;
    if (path.dirname(d) === d) break;
  }
  throw failedPrecondition(`cannot find the migrations directory above ${__dirname}`);
}
