import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { buildProgram } from '../cli/main';
import { ERROR_CODES, HTTP_STATUS } from '../common/errors';

/**
 * The README stays a true map: every CLI verb is in its CLI reference, every
 * admin API route (read from the route registrations in server/api/) is named
 * with its method, and every error code and HTTP status is listed.
 */
const ROOT = path.join(__dirname, '..');
const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const section = (title: string): string => {
  const start = readme.indexOf(`\n## ${title}\n`);
  if (start < 0) throw new Error(`README has no section "${title}"`);
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
};

function leafPaths(cmd: Command, prefix: string[] = []): string[][] {
  const subs = cmd.commands.filter((c) => c.name() !== 'help');
  if (subs.length === 0) return [prefix];
  return subs.flatMap((c) => leafPaths(c, [...prefix, c.name()]));
}

describe('README', () => {
  it('lists every CLI verb in its CLI reference', () => {
    const cli = section('CLI reference');
    // A verb may be written as one of alternatives (`authority x509\|jwt show`).
    const word = (w: string) => `(?:[\\w-]+\\\\\\|)*${w}(?:\\\\\\|[\\w-]+)*`;
    const verbs = leafPaths(buildProgram({}));
    expect(verbs.length).toBeGreaterThan(30);
    const listed = (v: string[]) => new RegExp(`(?:^|[\\s\`])${v.map(word).join(' ')}(?=[\\s\`]|$)`, 'm').test(cli);
    expect(verbs.filter((v) => !listed(v)).map((v) => v.join(' '))).toEqual([]);
    // control: the check does find what is not there
    expect(listed(['entry', 'frobnicate'])).toBe(false);
    expect(listed(['authority', 'jwt', 'revoke'])).toBe(true);
  });

  it('names every admin API route with its method', () => {
    const dir = path.join(ROOT, 'server', 'api');
    const routes: string[] = [];
    const files = [...readdirSync(path.join(dir, 'admin')).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts')).map((f) => path.join('admin', f)), 'authority-api.ts', 'federation-api.ts'];
    for (const f of files) {
      for (const m of readFileSync(path.join(dir, f), 'utf8').matchAll(/\br\.(get|post|put|patch|delete)\('([^']+)'/g)) routes.push(`${m[1]!.toUpperCase()} ${m[2]}`);
    }
    expect(routes.length).toBeGreaterThan(25);
    const lines = readme.split('\n');
    const missing = routes.filter((r) => {
      const [method, p] = r.split(' ') as [string, string];
      const pathRe = new RegExp(`${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![\\w/-])`);
      // the method on the same line, alone or among alternatives (`GET|PATCH|DELETE /v1/...`)
      return !lines.some((l) => pathRe.test(l) && new RegExp(`\\b${method}\\b`).test(l));
    });
    expect(missing).toEqual([]);
  });

  it('lists every error code with its HTTP status', () => {
    const admin = section('Admin API');
    const missing = ERROR_CODES.filter((c) => !admin.includes(`${HTTP_STATUS[c]} ${c}`));
    expect(missing).toEqual([]);
  });
});
