import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { startAgentProcess, startServerProcess, removeDir, shortTempDir, type ServerProcess } from '../../helpers/processes';
import { makeTestCA, makeTestLeaf } from '../../helpers/test-pki';
import { waitFor } from '../../helpers/security';
import { x509AuthoritiesFromPem } from '../../../common/bundle/bundle';
import { tried } from '../../helpers/figures';

/**
 * Finding 1 (high): trust on first use with --trust-bundle-sha256. A man in the
 * middle answers the bootstrap-bundle request with the real bundle plus its own
 * CA, and presents a server certificate for spiffe://<td>/tessera/server signed by
 * that CA. Before the fix the agent trusted every root of that bundle once one
 * matched the pin, and sent its join token to the man in the middle.
 */
jest.setTimeout(90_000);

const td = 'pin.example.org';
let server: ServerProcess;
let pki: string;

beforeAll(async () => {
  server = await startServerProcess({ trustDomain: td });
  pki = shortTempDir('mitm-');
});
afterAll(async () => {
  await server?.stop();
  removeDir(server?.dir);
  removeDir(pki);
});

it('a man in the middle with the real bundle plus its own CA never receives the join token; the real server accepts the pinned agent', async () => {
  const refused = tried('bootstrap_man_in_the_middle');
  const realRoots = x509AuthoritiesFromPem(await server.cli(['bundle', 'show', '--format', 'pem']));
  const pin = createHash('sha256').update(realRoots[0]!).digest('hex');
  const realBundle = JSON.parse(await server.cli(['bundle', 'show', '--format', 'spiffe'])) as { keys: object[] };

  // The attacker: its own CA for the trust domain and a "server SVID" under it.
  const evilCA = await makeTestCA(pki, 'evil-ca', { spiffeTrustDomain: td });
  const evilServer = await makeTestLeaf(pki, 'evil-server', evilCA, { uri: `spiffe://${td}/tessera/server`, ip: ['127.0.0.1'] });
  const poisoned = { ...realBundle, keys: [...realBundle.keys, { kty: 'EC', use: 'x509-svid', x5c: [evilCA.der.toString('base64')] }] };
  const seen = { bootstrap: 0, attest: [] as string[], tlsFailures: 0 };
  const mitm = https.createServer({ cert: evilServer.certPem + evilCA.certPem, key: evilServer.keyPem }, (req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      if (req.url === '/agent/v1/bootstrap-bundle') {
        seen.bootstrap++;
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(poisoned));
      }
      if (req.url === '/agent/v1/attest') seen.attest.push(body); // the join token would be in here
      res.writeHead(503).end('{}');
    });
  });
  mitm.on('tlsClientError', () => seen.tlsFailures++);
  await new Promise<void>((r) => mitm.listen(0, '127.0.0.1', r));
  const mitmAddr = `127.0.0.1:${(mitm.address() as AddressInfo).port}`;

  const victim = await startAgentProcess(server, {
    config: { server_address: mitmAddr, trust_bundle_path: undefined, trust_bundle_sha256: pin, sync_wait: 1 },
    waitReady: false,
  });
  try {
    // The agent fetched the poisoned bundle; then it either refused the attacker's certificate
    // at the handshake (fixed) or sent its attestation, join token included, to the attacker.
    await waitFor('the agent to refuse the mitm certificate or attest to it', () => seen.bootstrap > 0 && (seen.tlsFailures > 0 || seen.attest.length > 0));
    expect(seen.attest).toEqual([]);
    await waitFor('the agent to log the failed attestation', () => /cannot reach the server to attest|agent attestation failed/.test(victim.logs()));
    expect(victim.logs()).not.toMatch(/"event":"agent_ready".*"synced":true/);
    refused();
  } finally {
    await victim.stop();
    mitm.close();
  }

  // The same pin against the real server: attested, and the full bundle came with the (authenticated) attestation answer.
  const agent = await startAgentProcess(server, { config: { trust_bundle_path: undefined, trust_bundle_sha256: pin } });
  try {
    expect(agent.agentId).toMatch(new RegExp(`^spiffe://${td.replace(/\./g, '\\.')}/tessera/agent/join_token/`));
    await agent.stop(); // saves the cache
    const cache = JSON.parse(readFileSync(path.join(agent.dir, 'data', 'cache.json'), 'utf8')) as { bundle: { keys: Array<{ x5c?: string[] }> } };
    const cached = cache.bundle.keys.flatMap((k) => k.x5c ?? []);
    expect(cached).toEqual(realRoots.map((r) => r.toString('base64')));
    expect(cached).not.toContain(evilCA.der.toString('base64'));
  } finally {
    await agent.stop();
    removeDir(agent.dir);
  }
});
