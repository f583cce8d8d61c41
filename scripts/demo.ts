import 'reflect-metadata';
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { AdminClient } from '../cli/admin-client';
import { TesseraError } from '../common/errors';
import { X509Source } from '../sdk/source/x509-source';
import { demoPaths } from './demo-paths';

/**
 * `npm start`: a real server on an embedded SQLite file under ./.tessera, a real
 * agent attested with a join token, a registration entry for the current uid, and
 * the demo workload's X.509-SVID fetched over the Workload API socket. Both
 * processes keep running until Ctrl-C.
 */
const { root, base, uid, trustDomain: TD, adminSocket, agentSocket, alias, ports, oidcIssuerFile } = demoPaths();
const bin = path.join(root, 'bin', 'tessera.js');
const children: ChildProcess[] = [];
const workloadId = `spiffe://${TD}/demo/workload`;

/** A TCP port that was free a moment ago. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Starts `tessera ARGS` and resolves with the process and its ready line (JSON) once it logs `readyEvent`. */
function start(name: string, args: string[], env: NodeJS.ProcessEnv, readyEvent: string): Promise<{ proc: ChildProcess; ready: Record<string, string> }> {
  const p = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  children.push(p);
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (c: Buffer) => {
      buf += c.toString();
      const line = buf.split('\n').find((l) => l.includes(`"${readyEvent}"`));
      if (line) {
        p.stdout!.off('data', onData);
        p.stdout!.resume(); // the logs are not shown: the summary below says where everything is
        resolve({ proc: p, ready: JSON.parse(line) as Record<string, string> });
      }
    };
    p.stdout!.on('data', onData);
    p.once('exit', (code) => reject(new Error(`${name} exited (${code}) before it was ready:\n${buf.slice(-2000)}`)));
  });
}

async function main(): Promise<void> {
  mkdirSync(base, { recursive: true });
  const stop = () => children.forEach((c) => c.kill('SIGTERM'));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  // OIDC discovery, so relying parties (the AI example's model-provider stand-in) can check JWT-SVIDs.
  // The issuer names its port, so a port the system picks is chosen here first.
  const oidcPort = ports.oidc || (await freePort());
  const issuer = `http://127.0.0.1:${oidcPort}`;
  const serverConfig = path.join(base, 'server.json');
  writeFileSync(serverConfig, JSON.stringify({ oidc: { bind: `127.0.0.1:${oidcPort}`, issuer } }, null, 2));
  writeFileSync(oidcIssuerFile, issuer);
  const server = await start('server', ['server', 'run', '--config', serverConfig, '--trust-domain', TD, '--data-dir', path.join(base, 'server'), '--admin-socket', adminSocket,
    '--bind', `127.0.0.1:${ports.server}`, '--health-bind', `127.0.0.1:${ports.serverHealth}`], {}, 'server_ready');
  const admin = new AdminClient(adminSocket);
  const bundleFile = path.join(base, 'bootstrap-bundle.pem');
  writeFileSync(bundleFile, (await admin.raw('GET', '/v1/bundle?format=pem')).text);
  const agentData = path.join(base, 'agent');
  // A fresh join token every time: the agent uses it only when it must attest (first run, or
  // its stored SVID expired while the demo was stopped); unused, it expires on its own.
  const t = await admin.request<{ token: string }>('POST', '/v1/join-tokens', { spiffe_id: alias });
  const env: NodeJS.ProcessEnv = { TESSERA_JOIN_TOKEN: t.token };
  try {
    await admin.request('POST', '/v1/entries', { entries: [{ spiffe_id: workloadId, parent_id: alias, selectors: [`unix:uid:${uid}`], hint: 'demo' }] });
  } catch (e) {
    if (!(e instanceof TesseraError && e.code === 'ALREADY_EXISTS')) throw e;
  }
  const agent = await start('agent', ['agent', 'run', '--server', server.ready.agent_api!, '--trust-domain', TD, '--trust-bundle', bundleFile,
    '--data-dir', agentData, '--socket', agentSocket, '--health-bind', `127.0.0.1:${ports.agentHealth}`], env, 'agent_ready');

  // The first update of an X509Source: the SVID as soon as the agent's first sync brings it.
  const source = new X509Source({ address: agentSocket });
  await source.ready(30_000);
  const ctx = { svids: source.allSVIDs() };
  source.close();
  const svid = ctx.svids[0]!;
  const leaf = new X509Certificate(svid.chain[0]!);
  process.stdout.write(`
Tessera is running for trust domain ${TD}
  server   agent API https://${server.ready.agent_api} (mTLS), health http://${server.ready.health}/ready and /metrics
           admin socket ${adminSocket}, data ${path.join(base, 'server')} (SQLite datastore.sqlite3, keys/)
           OIDC discovery ${issuer}/.well-known/openid-configuration
  agent    Workload API unix://${agentSocket}, health http://${agent.ready.health}/ready and /metrics

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

Try the AI endpoint example against it: npm run example:ai-endpoint

Ctrl-C stops both.
`);
  await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(c.exitCode) : c.once('exit', r)))));
}

main().catch(async (e: Error) => {
  process.stderr.write(`demo failed: ${e.message}\n`);
  // whatever did start is stopped, so the next `npm start` finds its ports free
  await Promise.all(children.map((c) => (c.exitCode !== null ? undefined : new Promise((r) => (c.once('exit', r), c.kill('SIGTERM'))))));
  process.exit(1);
});
