import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { startAgentProcess, startServerProcess, stopAndRemove, type AgentProcess, type ServerProcess } from '../../helpers/processes';
import { waitFor } from '../../helpers/security';
import { BundleSource, JWTSource, X509Source, attachMTLSServer, authorizeID, mtlsClientOptions, mtlsServerOptions, peerIdentity } from '../../../sdk/index';

/**
 * The SDK's sources against the real agent: they keep serving through an agent
 * restart and reconnect on their own (backoff with jitter), and http2 servers
 * and clients speak SPIFFE mTLS with the same options as https.
 */
jest.setTimeout(120_000);

const td = 'sources.example.org';
const alias = `spiffe://${td}/node/src`;
const ME = `spiffe://${td}/svc`;
let server: ServerProcess;
let agent: AgentProcess;

beforeAll(async () => {
  server = await startServerProcess({ trustDomain: td });
  await server.cli(['entry', 'create', '--spiffe-id', ME, '--parent-id', alias, '--selector', `unix:uid:${process.getuid!()}`, '--x509-svid-ttl', '120']);
  agent = await startAgentProcess(server, { alias });
});
afterAll(() => stopAndRemove(agent, server));

it('X509Source, JWTSource and BundleSource keep their last state while the agent is down and reconnect when it is back, with an update', async () => {
  const x509 = new X509Source({ address: agent.socket });
  const jwt = new JWTSource({ address: agent.socket });
  const bundles = new BundleSource({ address: agent.socket });
  try {
    await Promise.all([x509.ready(20_000), jwt.ready(20_000), bundles.ready(20_000)]);
    const before = x509.svid();
    expect(before.spiffeId).toBe(ME);
    const token = await jwt.fetchJWTSVID('spiffe://sources.example.org/api');
    expect((await jwt.validate(token.token, 'spiffe://sources.example.org/api')).spiffeId).toBe(ME);
    // cached until half its life: the same token, no second call to the agent
    expect((await jwt.fetchJWTSVID('spiffe://sources.example.org/api')).token).toBe(token.token);

    const updates = { x509: 0, jwt: 0, bundles: 0 };
    x509.on('update', () => updates.x509++);
    jwt.on('update', () => updates.jwt++);
    bundles.on('update', () => updates.bundles++);
    const errors: Error[] = [];
    x509.on('error', (e: Error) => errors.push(e));

    await agent.stop();
    await waitFor('the source to notice the agent is gone', () => errors.length > 0, 20_000);
    // the last good state is still served
    expect(x509.svid().spiffeId).toBe(ME);
    expect(bundles.bundleFor(td)?.length).toBeGreaterThan(0);
    expect((await jwt.validate(token.token, 'spiffe://sources.example.org/api')).spiffeId).toBe(ME);

    agent = await startAgentProcess(server, { dir: agent.dir, join: false });
    await waitFor('all three sources to get an update from the restarted agent', () => updates.x509 > 0 && updates.jwt > 0 && updates.bundles > 0, 30_000);
    expect(x509.svid().spiffeId).toBe(ME);
    expect(new X509Certificate(x509.svid().chain[0]!).verify(new X509Certificate(x509.bundleFor(td)![0]!).publicKey)).toBe(true);
  } finally {
    x509.close();
    jwt.close();
    bundles.close();
  }
});

it('http2: a SPIFFE mTLS server and client from the same options, the caller verified on both ends; a client refuses a server with another ID', async () => {
  const source = new X509Source({ address: agent.socket });
  await source.ready(20_000);
  const cfg = { source, authorizer: authorizeID(ME) };
  const srv = http2.createSecureServer(mtlsServerOptions(cfg));
  attachMTLSServer(srv, cfg);
  srv.on('stream', (stream) => {
    // the session's socket is a Proxy of the TLSSocket; the session itself works too
    const caller = peerIdentity(stream.session!.socket as TLSSocket);
    const same = peerIdentity(stream.session!)?.id.toString() === caller?.id.toString();
    stream.respond({ ':status': 200, 'content-type': 'text/plain' });
    stream.end(`caller ${caller?.id.toString()}${same ? '' : ' (the session disagrees)'}`);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const url = `https://127.0.0.1:${(srv.address() as AddressInfo).port}`;
  const get = (authorizer = cfg.authorizer) =>
    new Promise<string>((resolve, reject) => {
      const session = http2.connect(url, mtlsClientOptions({ source, authorizer }));
      session.on('error', reject);
      const req = session.request({ ':path': '/' });
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        session.close();
        resolve(body);
      });
      req.on('error', reject);
    });
  try {
    expect(await get()).toBe(`caller ${ME}`);
    await expect(get(authorizeID(`spiffe://${td}/someone-else`))).rejects.toThrow(/not an acceptable spiffe peer/);
  } finally {
    srv.close();
    source.close();
  }
});
