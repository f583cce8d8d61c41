import 'reflect-metadata';
import { spawn } from 'node:child_process';
import { X509Certificate, generateKeyPair as gen, type KeyObject } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { AdminClient } from '../cli/admin-client';
import { createCSR } from '../common/x509svid/csr';

/**
 * `npm start`: runs a real server on an embedded SQLite file under ./.tessera,
 * registers a demo workload, mints its X.509-SVID and JWT-SVID through the admin
 * API, shows them, and keeps the server running until Ctrl-C.
 */
const TD = process.env.TESSERA_TRUST_DOMAIN ?? 'demo.tessera.local';
const root = path.resolve(__dirname, '..', '..');
const dataDir = path.join(root, '.tessera', 'server');
let adminSocket = path.join(root, '.tessera', 'admin', 'api.sock');
if (adminSocket.length > 100) adminSocket = `/tmp/tessera-demo-${process.getuid?.() ?? 0}/admin/api.sock`;
const bin = path.join(root, 'bin', 'tessera.js');

async function main(): Promise<void> {
  mkdirSync(dataDir, { recursive: true });
  const server = spawn(
    process.execPath,
    [bin, 'server', 'run', '--trust-domain', TD, '--data-dir', dataDir, '--admin-socket', adminSocket, '--bind', '127.0.0.1:8081', '--health-bind', '127.0.0.1:8082'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const stop = () => server.kill('SIGTERM');
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  await new Promise<void>((resolve, reject) => {
    let buf = '';
    server.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      if (buf.includes('"server_ready"')) resolve();
    });
    server.once('exit', (code) => reject(new Error(`server exited (${code}) before it was ready:\n${buf}`)));
  });
  server.stdout!.resume();
  const admin = new AdminClient(adminSocket);

  const { privateKey, publicKey } = await promisify(gen)('ec', { namedCurve: 'P-256' });
  const csr = await createCSR(privateKey as KeyObject, publicKey as KeyObject);
  const spiffeId = `spiffe://${TD}/demo/workload`;
  const x = await admin.request<{ x509_svid: string[]; expires_at: number }>('POST', '/v1/svids/x509', { spiffe_id: spiffeId, csr: csr.toString('base64'), ttl: 300 });
  const leaf = new X509Certificate(Buffer.from(x.x509_svid[0]!, 'base64'));
  const j = await admin.request<{ token: string; expires_at: number }>('POST', '/v1/svids/jwt', { spiffe_id: spiffeId, audience: ['demo'] });
  const cli = `npx tessera --admin-socket ${adminSocket}`;
  process.stdout.write(`
Tessera server is running for trust domain ${TD}
  agent API   https://127.0.0.1:8081   (mTLS; agents attest with a join token)
  health      http://127.0.0.1:8082/ready  and /metrics
  admin API   ${adminSocket}
  data        ${dataDir} (SQLite: datastore.sqlite3, keys: keys/)

Demo workload ${spiffeId} got an X.509-SVID:
  subject     ${leaf.subject}
  URI SAN     ${leaf.subjectAltName}
  serial      ${leaf.serialNumber}
  valid       ${leaf.validFrom} .. ${leaf.validTo}
  issuer      ${leaf.issuer.replace(/\n/g, ', ')}
and a JWT-SVID for audience "demo", valid until ${new Date(j.expires_at * 1000).toISOString()} (not printed: it is a credential).

Try, in another terminal:
  ${cli} x509 mint --spiffe-id ${spiffeId} --write /tmp/demo-svid && openssl verify -CAfile /tmp/demo-svid/bundle.pem /tmp/demo-svid/svid.pem
  ${cli} token generate --spiffe-id spiffe://${TD}/node/demo
  ${cli} entry create --parent-id spiffe://${TD}/node/demo --spiffe-id spiffe://${TD}/api --selector unix:uid:${process.getuid?.() ?? 0}
  ${cli} entry show
  ${cli} bundle show --format spiffe

Ctrl-C stops the server.
`);
  await new Promise((r) => server.once('exit', r));
}

main().catch((e: Error) => {
  process.stderr.write(`demo failed: ${e.message}\n`);
  process.exit(1);
});
