import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * `npm test`: every test, in two jest runs side by side.
 *
 * The key rotation suites (on SQLite and on PostgreSQL) spend about 200 s each
 * waiting for 60-s CAs to rotate three times, using little CPU; run one after the
 * other with everything else they add 400 s to a 2-core machine's test time. So
 * they run in their own jest process (one after the other) while the rest runs as
 * usual (jest's default workers), at a lower CPU priority (nice 10). Not both at
 * once, and not at the same priority as the rest: with their server restarts and
 * 6-s SVIDs, three heavy suites at a time overload two cores and the others'
 * timing checks suffer. Their output is printed after
 * the rest's, and with `--json --outputFile F` the two reports are merged into F.
 *
 * With any other argument than those (a test path, `-t`, ...), or with
 * TESSERA_TEST_LANES=0, this is plain `jest` with the same arguments.
 */
const SLOW = ['test/e2e/rotation.e2e.test.ts', 'test/e2e/postgres/rotation.pg.e2e.test.ts'];
const SLOW_IGNORE = '/node_modules/|/test/e2e/(postgres/rotation\\.pg|rotation)\\.e2e\\.test\\.ts$';

const root = path.resolve(__dirname, '..', '..');
const jestBin = require.resolve('jest/bin/jest', { paths: [root] });
const args = process.argv.slice(2);

interface Report {
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTotalTests: number;
  numPassedTestSuites: number;
  numFailedTestSuites: number;
  numTotalTestSuites: number;
  success: boolean;
  testResults: unknown[];
}

function run(jestArgs: string[], capture: boolean, niceness = 0): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const argv = [process.execPath, jestBin, ...jestArgs];
    const [cmd, ...rest] = niceness > 0 ? ['nice', '-n', String(niceness), ...argv] : argv;
    const child = spawn(cmd!, rest, { cwd: root, stdio: capture ? ['ignore', 'pipe', 'pipe'] : 'inherit' });
    let output = '';
    child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
    child.on('exit', (code, signal) => resolve({ code: code ?? (signal ? 1 : 0), output }));
  });
}

function readReport(file: string): Report | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as Report;
  } catch {
    return undefined;
  }
}

async function main(): Promise<number> {
  // --json and --outputFile are the only arguments lanes understand
  let outputFile: string | undefined;
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--json') continue; // the lanes always write JSON; it reaches --outputFile merged
    else if (a.startsWith('--outputFile=')) outputFile = a.slice('--outputFile='.length);
    else if (a === '--outputFile') outputFile = args[++i];
    else rest.push(a);
  }
  if (rest.length > 0 || process.env.TESSERA_TEST_LANES === '0') return (await run(args, false)).code;

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-lanes-'));
  const slowReport = path.join(tmp, 'slow.json');
  const mainReport = path.join(tmp, 'main.json');
  // Niced, with the servers and agents it starts: the rest keeps the CPU it would have alone
  // (its latency checks then see the machine they were written for); the rotation suites
  // mostly wait, and their own checks allow for a slower turn.
  const slow = run(['--maxWorkers=1', '--json', `--outputFile=${slowReport}`, '--runTestsByPath', ...SLOW], true, 10);
  const main = await run(['--json', `--outputFile=${mainReport}`, `--testPathIgnorePatterns=${SLOW_IGNORE}`], false);
  const s = await slow;
  process.stderr.write(`\n===== the rotation suites (run alongside the others) =====\n${s.output}\n`);
  const reports = [readReport(mainReport), readReport(slowReport)];
  const merged: Report = {
    numPassedTests: 0, numFailedTests: 0, numPendingTests: 0, numTotalTests: 0,
    numPassedTestSuites: 0, numFailedTestSuites: 0, numTotalTestSuites: 0, success: true, testResults: [],
  };
  for (const r of reports) {
    if (!r) {
      merged.success = false;
      continue;
    }
    for (const k of ['numPassedTests', 'numFailedTests', 'numPendingTests', 'numTotalTests', 'numPassedTestSuites', 'numFailedTestSuites', 'numTotalTestSuites'] as const) merged[k] += r[k];
    merged.success &&= r.success;
    merged.testResults.push(...r.testResults);
  }
  process.stderr.write(`all tests: ${merged.numPassedTests} passed, ${merged.numFailedTests} failed, ${merged.numTotalTests} total (${merged.numTotalTestSuites} files)\n`);
  if (outputFile) fs.writeFileSync(outputFile, JSON.stringify(merged));
  fs.rmSync(tmp, { recursive: true, force: true });
  return main.code !== 0 || s.code !== 0 || !merged.success ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`test runner failed: ${(err as Error).stack}\n`);
    process.exit(1);
  },
);
