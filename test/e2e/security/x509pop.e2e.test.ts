import { X509Certificate, createPrivateKey, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startServerProcess, removeDir, run, shortTempDir, type ServerProcess } from '../../helpers/processes';
import { clientFor, newCSR } from '../../helpers/agent-identity';
import { x509AuthoritiesFromPem } from '../../../common/bundle/bundle';
import { withFlippedSignatureS } from '../../../common/x509svid/ecdsa-signature';
import { tried } from '../../helpers/figures';

/**
 * Findings 11 and 12: x509pop node attestation against the real server. A banned
 * node re-encodes its certificate's ECDSA signature (s → n − s: same key, same
 * contents, another fingerprint) to come back under a new agent ID; chains and
 * leaves that RFC 5280 (and `openssl verify`) refuse.
 */
jest.setTimeout(90_000);

const td = 'pop.example.org';
const X509POP_CONTEXT = Buffer.from('tessera x509pop v1\0');
let pki: string;
let server: ServerProcess;

async function openssl(args: string[]): Promise<void> {
  const r = await run('openssl', args, { cwd: pki });
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}
const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
const pem = (f: string) => readFileSync(path.join(pki, f), 'utf8');
const der = (f: string) => x509AuthoritiesFromPem(pem(f));

/** A certificate `name` signed by `ca` with the given extension lines. */
async function issue(name: string, ca: string, ext: string[]): Promise<void> {
  writeFileSync(path.join(pki, `${name}.ext`), ext.join('\n') + '\n');
  await openssl(['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
  await openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`]);
}

const LEAF = ['basicConstraints=critical,CA:false', 'keyUsage=critical,digitalSignature'];
const CA = (pathlen?: number) => [`basicConstraints=critical,CA:true${pathlen === undefined ? '' : `,pathlen:${pathlen}`}`, 'keyUsage=critical,keyCertSign,cRLSign'];

beforeAll(async () => {
  pki = shortTempDir('pop-');
  await openssl(['req', '-x509', ...ec, '-keyout', 'root.key', '-out', 'root.crt', '-subj', '/CN=Node Root', '-days', '3', '-addext', 'basicConstraints=critical,CA:true', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  await issue('node', 'root', LEAF);
  await issue('int0', 'root', CA(0)); // may sign leaves only
  await issue('int1', 'int0', CA()); // breaks int0's pathlen:0
  await issue('deep', 'int1', LEAF);
  await issue('ok-int', 'root', CA(0));
  await issue('ok-leaf', 'ok-int', LEAF);
  await issue('encipher', 'root', ['basicConstraints=critical,CA:false', 'keyUsage=critical,keyEncipherment']);
  await issue('email', 'root', [...LEAF, 'extendedKeyUsage=emailProtection']);
  server = await startServerProcess({ trustDomain: td, config: { node_attestors: { join_token: true, x509pop: { ca_bundle_file: path.join(pki, 'root.crt') } } } });
});
afterAll(async () => {
  await server?.stop();
  removeDir(server?.dir);
  removeDir(pki);
});

async function attest(chain: Buffer[], key: KeyObject) {
  const client = await clientFor(server);
  try {
    const { csr } = await newCSR();
    return await client.attestX509Pop(chain, (nonce) => cryptoSign('sha256', Buffer.concat([X509POP_CONTEXT, nonce]), key), csr);
  } finally {
    client.close();
  }
}

it('finding 11: a banned node cannot come back by re-encoding its certificate signature', async () => {
  const chain = der('node.crt');
  const key = createPrivateKey(pem('node.key'));
  const first = await attest(chain, key);
  await server.cli(['agent', 'ban', '--spiffe-id', first.agentId]);

  const refused = tried('banned_agent_x509pop_reencoded');
  const twin = withFlippedSignatureS(chain[0]!, 'P-256')!;
  expect(new X509Certificate(twin).fingerprint256).not.toBe(new X509Certificate(chain[0]!).fingerprint256);
  expect(new X509Certificate(twin).verify(new X509Certificate(der('root.crt')[0]!).publicKey)).toBe(true); // an equally valid certificate
  await expect(attest([twin], key)).rejects.toMatchObject({ code: 'PERMISSION_DENIED', message: expect.stringContaining('is banned') });
  refused();
  await expect(attest(chain, key)).rejects.toMatchObject({ code: 'PERMISSION_DENIED', message: expect.stringContaining('is banned') });
  const agents = JSON.parse(await server.cli(['--output', 'json', 'agent', 'list'])) as { agents: Array<{ spiffe_id: string; banned: boolean }> };
  expect(agents.agents.filter((a) => a.spiffe_id.includes('/x509pop/'))).toEqual([expect.objectContaining({ spiffe_id: first.agentId, banned: true })]);
});

it('finding 12: x509pop refuses what RFC 5280 refuses: a broken pathlen, a leaf not for signatures, a leaf not for client authentication', async () => {
  // control: openssl agrees about the chain
  const opensslVerify = async (leaf: string, untrusted: string[]) => {
    writeFileSync(path.join(pki, 'untrusted.pem'), untrusted.map(pem).join(''));
    return (await run('openssl', ['verify', '-CAfile', path.join(pki, 'root.crt'), '-untrusted', path.join(pki, 'untrusted.pem'), path.join(pki, leaf)])).code;
  };
  expect(await opensslVerify('deep.crt', ['int1.crt', 'int0.crt'])).not.toBe(0);
  expect(await opensslVerify('ok-leaf.crt', ['ok-int.crt'])).toBe(0);

  await expect(attest([...der('deep.crt'), ...der('int1.crt'), ...der('int0.crt')], createPrivateKey(pem('deep.key')))).rejects.toMatchObject({
    code: 'PERMISSION_DENIED',
    message: expect.stringMatching(/allows 0 intermediate\(s\) below it/),
  });
  await expect(attest(der('encipher.crt'), createPrivateKey(pem('encipher.key')))).rejects.toMatchObject({
    code: 'PERMISSION_DENIED',
    message: expect.stringContaining('lacks digitalSignature'),
  });
  await expect(attest(der('email.crt'), createPrivateKey(pem('email.key')))).rejects.toMatchObject({
    code: 'PERMISSION_DENIED',
    message: expect.stringContaining('lacks clientAuth'),
  });
  // control: a chain that keeps the rules is accepted
  const ok = await attest([...der('ok-leaf.crt'), ...der('ok-int.crt')], createPrivateKey(pem('ok-leaf.key')));
  expect(ok.agentId).toMatch(/\/tessera\/agent\/x509pop\/[0-9a-f]{64}$/);
});
