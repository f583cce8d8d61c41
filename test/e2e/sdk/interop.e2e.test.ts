import { spawn } from 'node:child_process';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { run, startAgentProcess, startServerProcess, stopAndRemove, type AgentProcess, type ServerProcess } from '../../helpers/processes';
import { freePort } from '../../helpers/free-port';
import { waitFor } from '../../helpers/security';
import { X509Source, SpiffeHttpsAgent, attachMTLSServer, authorizeID, authorizeMemberOf, mtlsServerOptions, peerIdentity, spiffeFetch } from '../../../sdk/index';

/**
 * The SDK's TLS is plain standard TLS: `openssl s_client` / `s_server` and `curl
 * --cert` with SVIDs written by `tessera agent api fetch x509 --write` talk to the
 * SDK's server and client.
 */
jest.setTimeout(90_000);

const td = 'interop.example.org';
const alias = `spiffe://${td}/node/interop`;
let server: ServerProcess;
let agent: AgentProcess;
let source: X509Source;
let files: string;

beforeAll(async () => {
  server = await startServerProcess({ trustDomain: td });
  // DNS name localhost, so curl's host name check passes too
  await server.cli(['entry', 'create', '--spiffe-id', `spiffe://${td}/svc`, '--parent-id', alias, '--selector', 'unix:uid:0', '--dns', 'localhost']);
  agent = await startAgentProcess(server, { alias });
  source = new X509Source({ address: agent.socket });
  await source.ready(20_000);
  files = path.join(agent.dir, 'svid-files');
  expect((await agent.cli(['fetch', 'x509', '--write', files])).code).toBe(0);
});
afterAll(async () => {
  source?.close();
  await stopAndRemove(agent, server);
});

const f = (name: string) => path.join(files, name);

it('curl and openssl s_client with the written SVID are accepted by the SDK server; without a certificate they are not', async () => {
  const cfg = { source, authorizer: authorizeMemberOf(td) };
  const s = https.createServer(mtlsServerOptions(cfg), (req, res) => res.end(`hello ${peerIdentity(req.socket as TLSSocket)?.id}`));
  attachMTLSServer(s, cfg);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  try {
    const ok = await run('curl', ['-sS', '--cert', f('svid.0.pem'), '--key', f('svid.0.key'), '--cacert', f('bundle.0.pem'), `https://localhost:${port}/`]);
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toBe(`hello spiffe://${td}/svc`);
    const noCert = await run('curl', ['-sS', '--cacert', f('bundle.0.pem'), `https://localhost:${port}/`]);
    expect(noCert.code).not.toBe(0);

    const sc = await run(
      'openssl',
      ['s_client', '-connect', `127.0.0.1:${port}`, '-cert', f('svid.0.pem'), '-key', f('svid.0.key'), '-CAfile', f('bundle.0.pem'), '-verify_return_error', '-quiet'],
      { input: 'GET / HTTP/1.0\r\n\r\n' },
    );
    expect(sc.stdout).toMatch(/^HTTP\/1\.[01] 200/);
    expect(sc.stdout).toContain(`hello spiffe://${td}/svc`);
  } finally {
    s.close();
  }
});

it('the SDK client (https.Agent and fetch) talks to openssl s_server using the written SVID', async () => {
  const port = await freePort();
  const srv = spawn('openssl', ['s_server', '-accept', String(port), '-cert', f('svid.0.pem'), '-key', f('svid.0.key'), '-CAfile', f('bundle.0.pem'), '-Verify', '2', '-verify_return_error', '-www'], {
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  let stderr = '';
  srv.stderr!.on('data', (c) => (stderr += c));
  try {
    await waitFor('s_server accepting', () => new Promise<boolean>((r) => net.connect(port, '127.0.0.1').once('connect', function (this: net.Socket) { this.destroy(); r(true); }).once('error', () => r(false))));
    const cfg = { source, authorizer: authorizeID(`spiffe://${td}/svc`) };
    const body = await new Promise<string>((resolve, reject) => {
      https
        .get({ host: '127.0.0.1', port, path: '/', agent: new SpiffeHttpsAgent(cfg, { keepAlive: false }) }, (res) => {
          let b = '';
          res.on('data', (c) => (b += c));
          res.on('end', () => resolve(b));
        })
        .on('error', reject);
    });
    expect(body).toMatch(/s_server/); // -www's status page
    const fetch = spiffeFetch(cfg);
    const r = await fetch(`https://127.0.0.1:${port}/`);
    expect(r.status).toBe(200);
    await r.text();
    await fetch.close();
    // An authorizer that wants another ID refuses the same server.
    const wrong = spiffeFetch({ source, authorizer: authorizeID(`spiffe://${td}/other`) });
    await expect(wrong(`https://127.0.0.1:${port}/`)).rejects.toThrow();
    await wrong.close();
  } finally {
    srv.kill();
  }
  expect(stderr).not.toMatch(/verify error/);
});
