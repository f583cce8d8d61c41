import { readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createHash, createPrivateKey, sign as cryptoSign, X509Certificate } from 'node:crypto';
import { tbsCertificate } from '../../common/x509svid/ecdsa-signature';
import { startServerProcess, removeDir, run, shortTempDir, type ServerProcess } from '../helpers/processes';
import { clientFor, newCSR, opensslVerify, uriSan } from '../helpers/agent-identity';
import { x509AuthoritiesFromPem } from '../../common/bundle/bundle';

/**
 * A server whose CA is an intermediate under an upstream root on disk, with the
 * x509pop node attestor enabled and the SPIRE default attestation rate limit (1/s).
 */
jest.setTimeout(60_000);

let pki: string;
let server: ServerProcess;
const X509POP_CONTEXT = Buffer.from('tessera x509pop v1\0');

async function openssl(args: string[]): Promise<void> {
  const r = await run('openssl', args, { cwd: pki });
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

beforeAll(async () => {
  pki = shortTempDir('pki-');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const caExt = ['-addext', 'basicConstraints=critical,CA:true', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'];
  // upstream root for the server CA
  await openssl(['req', '-x509', ...ec, '-keyout', 'up.key', '-out', 'up.crt', '-subj', '/O=Upstream/CN=Upstream Root', '-days', '3', ...caExt]);
  // x509pop CA and an agent certificate under it
  await openssl(['req', '-x509', ...ec, '-keyout', 'pop-ca.key', '-out', 'pop-ca.crt', '-subj', '/CN=Node CA', '-days', '3', ...caExt]);
  await openssl(['req', ...ec, '-keyout', 'node.key', '-out', 'node.csr', '-subj', '/CN=node-1.example']);
  writeFileSync(path.join(pki, 'node.ext'), 'basicConstraints=critical,CA:false\nkeyUsage=critical,digitalSignature\n');
  await openssl(['x509', '-req', '-in', 'node.csr', '-CA', 'pop-ca.crt', '-CAkey', 'pop-ca.key', '-CAcreateserial', '-out', 'node.crt', '-days', '2', '-extfile', 'node.ext']);
  // a certificate from a CA the server does not trust
  await openssl(['req', '-x509', ...ec, '-keyout', 'rogue.key', '-out', 'rogue.crt', '-subj', '/CN=rogue', '-days', '2', '-addext', 'basicConstraints=critical,CA:false', '-addext', 'keyUsage=critical,digitalSignature']);
  server = await startServerProcess({
    trustDomain: 'up.example.org',
    config: {
      upstream_authority: { type: 'disk', cert_file: path.join(pki, 'up.crt'), key_file: path.join(pki, 'up.key') },
      node_attestors: { join_token: true, x509pop: { ca_bundle_file: path.join(pki, 'pop-ca.crt') } },
      rate_limits: { attestation_per_second: 1, signing_per_second: 500 },
      key_manager: 'disk',
    },
  });
});

afterAll(async () => {
  await server?.stop();
  removeDir(server?.dir);
  removeDir(pki);
});

const pem = (f: string) => readFileSync(path.join(pki, f), 'utf8');

it('serves the upstream root as bundle and chains SVIDs leaf → intermediate → root', async () => {
  const bundle = x509AuthoritiesFromPem(await server.cli(['bundle', 'show', '--format', 'pem']));
  expect(bundle).toEqual(x509AuthoritiesFromPem(pem('up.crt')));
  const dir = path.join(server.dir, 'mint');
  await server.cli(['x509', 'mint', '--spiffe-id', 'spiffe://up.example.org/svc', '--write', dir]);
  const chain = x509AuthoritiesFromPem(readFileSync(path.join(dir, 'svid.pem'), 'utf8'));
  expect(chain).toHaveLength(2);
  const inter = new X509Certificate(chain[1]!);
  expect(inter.ca).toBe(true);
  expect(inter.issuer).toContain('Upstream Root');
  expect(inter.subjectAltName).toBe('URI:spiffe://up.example.org');
  expect((await opensslVerify(dir, chain, bundle, 'up')).code).toBe(0);
  // without the intermediate the leaf must not verify: the chain is really needed
  expect((await opensslVerify(dir, [chain[0]!], bundle, 'up-noint')).code).not.toBe(0);
  // the CA key is on disk with mode 0600
  const keysDir = path.join(server.dir, 'data', 'keys');
  for (const f of require('node:fs').readdirSync(keysDir) as string[]) {
    expect(statSync(path.join(keysDir, f)).mode & 0o077).toBe(0);
  }
});

it('x509pop: an agent proving its certificate key gets an ID from the certificate', async () => {
  await new Promise((r) => setTimeout(r, 1100)); // attestation rate limit: 1/s per IP
  const client = await clientFor(server);
  const nodeCert = x509AuthoritiesFromPem(pem('node.crt'));
  const nodeKey = createPrivateKey(pem('node.key'));
  const { csr } = await newCSR();
  const svid = await client.attestX509Pop(nodeCert, (nonce) => cryptoSign('sha256', Buffer.concat([X509POP_CONTEXT, nonce]), nodeKey), csr);
  // The ID is the SHA-256 of the tbsCertificate: the same for every encoding of the CA's signature.
  const tbsHash = createHash('sha256').update(tbsCertificate(nodeCert[0]!)).digest('hex');
  expect(svid.agentId).toBe(`spiffe://up.example.org/tessera/agent/x509pop/${tbsHash}`);
  expect(uriSan(svid.chain[0]!)).toEqual([svid.agentId]);
  expect(svid.chain).toHaveLength(2);
  const agent = JSON.parse(await server.cli(['--output', 'json', 'agent', 'show', '--spiffe-id', svid.agentId]));
  expect(agent.selectors).toContainEqual({ type: 'x509pop', value: 'subject:cn:node-1.example' });
  client.close();
});

it('x509pop: a wrong key or an untrusted certificate is refused', async () => {
  const client = await clientFor(server);
  const { csr } = await newCSR();
  await new Promise((r) => setTimeout(r, 1100));
  const wrongKey = createPrivateKey(pem('rogue.key'));
  await expect(
    client.attestX509Pop(x509AuthoritiesFromPem(pem('node.crt')), (n) => cryptoSign('sha256', Buffer.concat([X509POP_CONTEXT, n]), wrongKey), csr),
  ).rejects.toMatchObject({ code: 'PERMISSION_DENIED', message: expect.stringMatching(/signature/) });
  await new Promise((r) => setTimeout(r, 2100));
  await expect(
    client.attestX509Pop(x509AuthoritiesFromPem(pem('rogue.crt')), (n) => cryptoSign('sha256', n, wrongKey), csr),
  ).rejects.toMatchObject({ code: 'PERMISSION_DENIED', message: expect.stringMatching(/chain/) });
  client.close();
});

it('limits attestation to the configured rate per IP (429)', async () => {
  await new Promise((r) => setTimeout(r, 1100));
  const client = await clientFor(server);
  const { csr } = await newCSR();
  const tries = await Promise.allSettled([1, 2, 3].map(() => client.attestJoinToken('no-such-token', csr)));
  const codes = tries.map((t) => (t.status === 'rejected' ? (t.reason as { code: string }).code : 'ok'));
  expect(codes).toContain('PERMISSION_DENIED');
  expect(codes).toContain('RESOURCE_EXHAUSTED');
  client.close();
});
