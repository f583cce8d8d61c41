import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT, run, shortTempDir, removeDir, startAgentProcess, startServerProcess, stopAndRemove, type AgentProcess, type ServerProcess } from '../../helpers/processes';

/**
 * The SDK as an application outside this repository gets it: `npm pack` of the
 * `@tessera/sdk` package, installed from the tarball into an empty app, whose
 * TypeScript program (type-checked against the shipped declarations) and
 * JavaScript program import it by name and get an SVID from a real agent. The
 * install compiles nothing: no SQLite, no native addon.
 */
jest.setTimeout(240_000);

const td = 'pkg.example.org';
let server: ServerProcess;
let agent: AgentProcess;
let app: string;

beforeAll(async () => {
  server = await startServerProcess({ trustDomain: td });
  await server.cli(['entry', 'create', '--spiffe-id', `spiffe://${td}/outside-app`, '--parent-id', `spiffe://${td}/node/pkg`, '--selector', 'unix:uid:0']);
  agent = await startAgentProcess(server, { alias: `spiffe://${td}/node/pkg` });
  app = shortTempDir('app-');
});
afterAll(async () => {
  await stopAndRemove(agent, server);
  removeDir(app);
});

const must = async (cmd: string, args: string[], cwd: string) => {
  const r = await run(cmd, args, { cwd });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r;
};

it('installs from the packed tarball without compiling anything, type-checks, and fetches an SVID by the package name', async () => {
  await must('npm', ['run', 'build:sdk'], ROOT);
  const packed = await must('npm', ['pack', '--json', '--pack-destination', app], path.join(ROOT, 'sdk'));
  const tarball = path.join(app, (JSON.parse(packed.stdout) as Array<{ filename: string }>)[0]!.filename);
  expect(existsSync(tarball)).toBe(true);

  writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'outside-app', version: '1.0.0', private: true }));
  await must('npm', ['install', tarball, '--no-audit', '--no-fund', '--prefer-offline', '--loglevel', 'error'], app);
  const installed = readdirSync(path.join(app, 'node_modules'));
  expect(installed).not.toContain('better-sqlite3');
  expect(existsSync(path.join(app, 'node_modules', '@tessera', 'peercred'))).toBe(false);
  expect(existsSync(path.join(app, 'node_modules', '@tessera', 'ecdsa-verify'))).toBe(false);

  mkdirSync(path.join(app, 'src'));
  writeFileSync(
    path.join(app, 'src', 'main.ts'),
    `import { X509Source, authorizeMemberOf, parseSpiffeId, type X509SVIDWithKey } from '@tessera/sdk';

async function main(): Promise<void> {
  const source = new X509Source(); // SPIFFE_ENDPOINT_SOCKET
  await source.ready(15_000);
  const svid: X509SVIDWithKey = source.svid();
  const allowed = authorizeMemberOf('${td}')(parseSpiffeId(svid.spiffeId)) === undefined;
  const loaded = Object.keys(require.cache).some((k) => k.includes('express') || k.includes('modelcontextprotocol'));
  console.log(JSON.stringify({ spiffeId: svid.spiffeId, chain: svid.chain.length, allowed, loadedOptionalParts: loaded }));
  source.close();
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
`,
  );
  // Type-check against the shipped declarations (node16 resolution, as a current Node app would), then emit.
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  await must(
    process.execPath,
    [tsc, '--module', 'node16', '--moduleResolution', 'node16', '--target', 'es2022', '--strict', '--types', 'node', '--typeRoots', path.join(ROOT, 'node_modules', '@types'), '--outDir', 'out', 'src/main.ts'],
    app,
  );
  const out = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const { spawn } = require('node:child_process') as typeof import('node:child_process');
    const p = spawn(process.execPath, ['out/main.js'], { cwd: app, env: { ...process.env, SPIFFE_ENDPOINT_SOCKET: `unix://${agent.socket}` } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c));
    p.stderr.on('data', (c: Buffer) => (stderr += c));
    p.on('close', (code: number) => resolve({ code, stdout, stderr }));
  });
  expect(out.stderr).toBe('');
  expect(JSON.parse(out.stdout)).toEqual({ spiffeId: `spiffe://${td}/outside-app`, chain: 1, allowed: true, loadedOptionalParts: false });
});
