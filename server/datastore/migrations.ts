import fs from 'node:fs';
import path from 'node:path';
import { failedPrecondition } from '../../common/errors';

/**
 * What both stores' migrators share: the numbered `NNNN_name.sql` files of
 * `migrations/<engine>/`, their checks, and the refusal of a database written by a
 * newer or a different Tessera build.
 */

/** The part of a logger migrate uses (a pino Logger fits). */
export interface MigrateLog {
  info(obj: Record<string, unknown>, msg: string): void;
}

export interface MigrationFile {
  version: number;
  name: string;
  file: string;
}

const FILE_RE = /^(\d{4})_([a-z0-9_]+)\.sql$/;

export function checkCompatible(rows: { version: number; name: string }[], files: MigrationFile[], latest: number): void {
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
export function readMigrations(dir: string): MigrationFile[] {
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
 * The repository's `migrations/<engine>/` directory, found by walking up from this
 * file, so it works from the TypeScript source (`server/datastore/`) and from the
 * compiled output (`dist/server/datastore/`, which has no copy of the SQL files).
 */
export function defaultMigrationsDir(engine: 'sqlite' | 'postgres' = 'sqlite'): string {
  for (let d = __dirname; ; d = path.dirname(d)) {
    const candidate = path.join(d, 'migrations', engine);
    if (fs.existsSync(path.join(candidate, '0001_init.sql'))) return candidate;
    if (path.dirname(d) === d) break;
  }
  throw failedPrecondition(`cannot find the migrations directory above ${__dirname}`);
}
