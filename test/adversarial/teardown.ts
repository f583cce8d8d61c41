import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';

/**
 * jest global teardown: adds up the figures every test file recorded
 * (test/helpers/figures.ts), scans every process log the suite wrote for
 * secrets, and prints one figure a line, `adversarial <name> <value>`. Fails the
 * run when an attempt was not refused or a secret was found in a log.
 */
const PRIVATE_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----|"d"\s*:\s*"[A-Za-z0-9_-]{20,}"/g;
const JWT = /eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}/g;

interface Figure {
  name: string;
  value: number;
  agg: 'sum' | 'max';
}

function count(text: string, re: RegExp): number {
  return (text.match(re) ?? []).length;
}

export default function teardown(): void {
  const dir = process.env.TESSERA_FIGURES_DIR;
  if (!dir || !existsSync(dir)) return;
  const files = readdirSync(dir);
  const totals = new Map<string, Figure>();
  for (const f of files.filter((n) => n.startsWith('figures-'))) {
    for (const line of readFileSync(path.join(dir, f), 'utf8').split('\n').filter(Boolean)) {
      const fig = JSON.parse(line) as Figure;
      const t = totals.get(fig.name);
      if (!t) totals.set(fig.name, { ...fig });
      else t.value = fig.agg === 'max' ? Math.max(t.value, fig.value) : t.value + fig.value;
    }
  }

  const secrets = files
    .filter((n) => n.startsWith('secrets-'))
    .flatMap((f) => readFileSync(path.join(dir, f), 'utf8').split('\n'))
    .filter((s) => s.length >= 16);
  const logDir = path.join(dir, 'logs');
  let lines = 0;
  let keys = 0;
  let tokens = 0;
  let jwts = 0;
  const where: string[] = [];
  for (const f of existsSync(logDir) ? readdirSync(logDir) : []) {
    const text = readFileSync(path.join(logDir, f), 'utf8');
    lines += text.split('\n').filter(Boolean).length;
    const k = count(text, PRIVATE_KEY);
    const j = count(text, JWT);
    const t = secrets.filter((s) => text.includes(s)).length;
    keys += k;
    jwts += j;
    tokens += t;
    if (k + j + t > 0) where.push(f);
  }
  if (lines > 0) {
    totals.set('secrets_log_lines_scanned', { name: 'secrets_log_lines_scanned', value: lines, agg: 'sum' });
    totals.set('secrets_private_keys_found', { name: 'secrets_private_keys_found', value: keys, agg: 'sum' });
    totals.set('secrets_join_tokens_found', { name: 'secrets_join_tokens_found', value: tokens, agg: 'sum' });
    totals.set('secrets_jwts_found', { name: 'secrets_jwts_found', value: jwts, agg: 'sum' });
  }

  const out = [...totals.values()].sort((a, b) => a.name.localeCompare(b.name));
  if (out.length > 0) process.stdout.write('\n' + out.map((f) => `adversarial ${f.name} ${Number.isInteger(f.value) ? f.value : f.value.toFixed(1)}`).join('\n') + '\n');

  const notRefused = out
    .filter((f) => f.name.endsWith('_tried'))
    .filter((f) => (totals.get(f.name.replace(/_tried$/, '_refused'))?.value ?? 0) !== f.value)
    .map((f) => f.name.replace(/_tried$/, ''));
  const leaked = keys + tokens + jwts;
  if (leaked === 0) rmSync(dir, { recursive: true, force: true });
  if (notRefused.length > 0) throw new Error(`adversarial: attempts not refused: ${notRefused.join(', ')}`);
  if (leaked > 0) throw new Error(`adversarial: secrets found in process logs (kept in ${logDir}): ${where.join(', ')}`);
}
