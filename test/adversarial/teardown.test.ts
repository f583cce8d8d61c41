import { mkdtempSync, mkdirSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import teardown from './teardown';

/** The teardown's verdicts, on figure directories made here (not the run's own). */
describe('adversarial teardown', () => {
  const saved = process.env.TESSERA_FIGURES_DIR;
  let dir: string;
  const write = process.stdout.write;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'tessera-teardown-test-'));
    process.env.TESSERA_FIGURES_DIR = dir;
    process.stdout.write = (() => true) as never; // its figure lines are not this run's
  });
  afterEach(() => {
    process.env.TESSERA_FIGURES_DIR = saved;
    process.stdout.write = write;
    rmSync(dir, { recursive: true, force: true });
  });
  const figures = (lines: object[]) => writeFileSync(path.join(dir, 'figures-1.jsonl'), lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  const log = (text: string) => {
    mkdirSync(path.join(dir, 'logs'), { recursive: true });
    writeFileSync(path.join(dir, 'logs', 'server-run-1.log'), text);
  };

  it('passes equal tried and refused counts and a clean log, and removes the directory', () => {
    figures([{ name: 'x_tried', value: 1, agg: 'sum' }, { name: 'x_refused', value: 1, agg: 'sum' }]);
    log('{"msg":"server ready"}\n');
    expect(() => teardown()).not.toThrow();
    expect(existsSync(dir)).toBe(false);
  });

  it('fails when an attempt was not refused', () => {
    figures([{ name: 'x_tried', value: 2, agg: 'sum' }, { name: 'x_refused', value: 1, agg: 'sum' }]);
    expect(() => teardown()).toThrow(/attempts not refused: x/);
  });

  it.each([
    ['a PEM private key', '-----BEGIN PRIVATE KEY-----'],
    ['a JWK private key', '{"kty":"EC","d":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"}'],
    ['a JWT', 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzcGlmZmU6Ly94In0.MEUCIQDsignaturesignaturesig'],
  ])('fails on %s in a log, and keeps the logs', (_what, secret) => {
    log(`oops ${secret}\n`);
    expect(() => teardown()).toThrow(/secrets found in process logs/);
    expect(existsSync(path.join(dir, 'logs'))).toBe(true);
  });

  it('fails on a join token the suite handed out', () => {
    const token = 'Zq3v9yXbW2kLmN4pR7sT1uV8wY0aB5cD6eF_gH-iJkL';
    writeFileSync(path.join(dir, 'secrets-1.txt'), token + '\n');
    log(`{"msg":"attesting with ${token}"}\n`);
    expect(() => teardown()).toThrow(/secrets found in process logs/);
  });
});
