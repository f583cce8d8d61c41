import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');
const SCRIPT = path.join(ROOT, 'scripts', 'pg-throwaway.sh');
const OWN_DIR = 'TESSERA_TEST_POSTGRES_OWN_DIR';

/** PostgreSQL server binaries installed (Debian's postgresql package puts them here). */
function haveServerBinaries(): boolean {
  try {
    return readdirSync('/usr/lib/postgresql').some((v) => existsSync(path.join('/usr/lib/postgresql', v, 'bin', 'initdb')));
  } catch {
    return false;
  }
}

/**
 * jest global setup, PostgreSQL part: with no TESSERA_TEST_POSTGRES_URL but
 * PostgreSQL installed, start a throwaway cluster for this run (the same script
 * `.ci/run` uses: a temporary directory and port, stopped in teardown), so the
 * PostgreSQL tests run on a developer's machine too instead of being skipped.
 * Workers inherit the URL through the environment. Without the binaries the
 * tests are skipped with a loud message (test/helpers/postgres.ts), outside CI only.
 */
export function startPostgresIfNeeded(): void {
  if (process.env.TESSERA_TEST_POSTGRES_URL || !haveServerBinaries()) return;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tpg-run-'));
  try {
    process.env.TESSERA_TEST_POSTGRES_URL = execFileSync(SCRIPT, ['start', dir], { encoding: 'utf8' }).trim();
    process.env[OWN_DIR] = dir;
    process.stderr.write(`\nPostgreSQL for this test run: a throwaway cluster in ${dir} (${process.env.TESSERA_TEST_POSTGRES_URL})\n`);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    process.stderr.write(`\n*** could not start a throwaway PostgreSQL cluster: ${(err as Error).message}\n`);
  }
}

/** jest global teardown: stops and removes the cluster setup started (none when the URL came from outside). */
export function stopOwnPostgres(): void {
  const dir = process.env[OWN_DIR];
  if (!dir) return;
  try {
    execFileSync(SCRIPT, ['stop', dir], { stdio: 'ignore' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
    delete process.env[OWN_DIR];
    delete process.env.TESSERA_TEST_POSTGRES_URL;
  }
}
