import 'reflect-metadata';
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { AdminClient } from '../cli/admin-client';
import { TesseraError } from '../common/errors';
import { WorkloadAPIClient } from '../sdk/workloadapi/client';
import { IDENTITY_FILE } from '../agent/storage/agent-store';

/**
 * `npm start`: a real server on an embedded SQLite file under ./.tessera, a real
 * agent attested with a join token, a registration entry for the current uid, and
 * the demo workload's X.509-SVID fetched over the Workload API socket. Both
 * processes keep running until Ctrl-C.
 */
const TD = process.env.TESSERA_TRUST_DOMAIN ?? 'demo.tessera.local';
const root = path.resolve(__dirname, '..', '..');
const base = path.join(root, '.tessera');
const short = (p: string, fallback: string) => (p.length > 100 ? fallback : p);
const uid = process.getuid?.() ?? 0;
const adminSocket = short(path.join(base, 'admin', 'api.sock'), `/tmp/tessera-demo-${uid}/admin/api.sock`);
const agentSocket = short(path.join(base, 'agent-public', 'api.sock'), `/tmp/tessera-demo-${uid}/public/api.sock`);
const bin = path.join(root, 'bin', 'tessera.js');
const alias = `spiffe://${TD}/node/demo`;
const workloadId = `spiffe://${TD}/demo/workload`;

function start(name: string, args: string[], env: NodeJS.ProcessEnv, readyEvent: string): Promise<ChildProcess> {
  const p = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (c: Buffer) => {
      buf += c.toString();
      if (buf.includes(`"${readyEvent}"`)) {
        p.stdout!.off('data', onData);
        p.stdout!.resume(); // logs stay available to `npm start` users via the files below if wanted
        resolve(p);
      }
    };
    p.stdout!.on('data', onData);
    p.once('exit', (code) => reject(new Error(`${name} exited (${code}) before it was ready:\n${buf.slice(-2000)}`)));
  });
}

async function main(): Promise<void> {
  mkdirSync(base, { recursive: true });
  const children: ChildProcess[] = [];
  const stop = () => children.forEach((c) => c.kill('SIGTERM'));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  children.push(
    await start('server', ['server', 'run', '--trust-domain', TD, '--data-dir', path.join(base, 'server'), '--admin-socket', adminSocket,
      '--bind', '127.0.0.1:8081', '--health-bind', '127.0.0.1:8082'], {}, 'server_ready'),
  );
  const admin = new AdminClient(adminSocket);
  const bundleFile = path.join(base, 'bootstrap-bundle.pem');
  writeFileSync(bundleFile, (await admin.raw('GET', '/v1/bundle?format=pem')).text);
  const agentData = path.join(base, 'agent');
  const env: NodeJS.ProcessEnv = {};
  if (!existsSync(path.join(agentData, IDENTITY_FILE))) {
    const t = await admin.request<{ token: string }>('POST', '/v1/join-tokens', { spiffe_id: alias });
    env.TESSERA_JOIN_TOKEN = t.token;
  }
  try {
    await admin.request('POST', '/v1/entries', { entries: [{ spiffe_id: workloadId, parent_id: alias, selectors: [`unix:uid:${uid}`], hint: 'demo' }] });
  } catch (e) {
    if (!(e instanceof TesseraError && e.code === 'ALREADY_EXISTS')) throw e;
  }
  children.push(
    await start('agent', ['agent', 'run', '--server', '127.0.0.1:8081', '--trust-domain', TD, '--trust-bundle', bundleFile,
      '--data-dir', agentData, '--socket', agentSocket, '--health-bind', '127.0.0.1:8083'], env, 'agent_ready'),
  );

  const client = new WorkloadAPIClient(agentSocket);
  let ctx;
  for (let i = 0; ; i++) {
    try {
      ctx = await client.fetchX509SVIDs();
      break;
    } catch (e) {
      if (i > 50) throw e;
      await new Promise((r) => setTimeout(r, 200)); // the agent's first sync is still under way
    }
  }
  client.close();
  const svid = ctx.svids[0]!;
  const leaf = new X509Certificate(svid.chain[0]!);
  process.stdout.write(`
Tessera is running for trust domain ${TD}
  server   agent API https://127.0.0.1:8081 (mTLS), health http://127.0.0.1:8082/ready and /metrics
           admin socket ${adminSocket}, data ${path.join(base, 'server')} (SQLite datastore.sqlite3, keys/)
  agent    Workload API unix://${agentSocket}, health http://127.0.0.1:8083/ready and /metrics

The demo workload (this uid, ${uid}) fetched its X.509-SVID over the Workload API:
  SPIFFE ID   ${svid.spiffeId}
  URI SAN     ${leaf.subjectAltName}
  serial      ${leaf.serialNumber}
  valid       ${leaf.validFrom} .. ${leaf.validTo}  (renewed by the agent at half-life)
  issuer      ${leaf.issuer.replace(/\n/g, ', ')}

See it yourself, in another terminal:
  npx tessera agent api fetch x509 --socket ${agentSocket}
  npx tessera agent api fetch jwt --audience demo --socket ${agentSocket}
  SPIFFE_ENDPOINT_SOCKET=unix://${agentSocket} npx tessera agent api watch
  npx tessera --admin-socket ${adminSocket} entry show

Ctrl-C stops both.
`);
  await Promise.all(children.map((c) => new Promise((r) => c.once('exit', r))));
}

main().catch((e: Error) => {
  process.stderr.write(`demo failed: ${e.message}\n`);
  process.exit(1);
});
