import { X509Certificate, createHash, createPrivateKey, sign as cryptoSign } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { SqliteDataStore } from '../datastore/sqlite/store';
import { MemoryKeyManager } from '../keymanager/memory';
import { CAManager } from '../ca/ca-manager';
import { X509PopAttestor } from '../attestor/node/x509pop';
import { createServerMetrics } from '../telemetry';
import { NodeService } from './node-service';
import { createCSR } from '../../common/x509svid/csr';
import { X509POP_CONTEXT } from '../../common/x509pop';
import { withFlippedSignatureS } from '../../common/x509svid/ecdsa-signature';
import { generateKeyPair } from '../../test/helpers/agent-identity';
import { makeTestCA, makeTestLeaf, type TestCert } from '../../test/helpers/test-pki';

/**
 * Agents recorded under the x509pop IDs of older versions (SHA-1 of the leaf DER)
 * are moved to the tbsCertificate ID when they attest; a ban under either
 * encoding of the leaf's signature holds.
 */
const td = 'ns.example.org';
let dir: string;
let store: SqliteDataStore;
let nodes: NodeService;
let ca: CAManager;
let root: TestCert;
let leaf: TestCert;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ns-'));
  root = await makeTestCA(dir, 'root');
  leaf = await makeTestLeaf(dir, 'node', root, { dns: ['node.example'] });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeEach(async () => {
  store = SqliteDataStore.open(path.join(dir, `db-${Math.random()}.sqlite3`));
  const log = pino({ level: 'silent' });
  ca = await CAManager.start({
    config: { trustDomain: td, caKeyType: 'ec-p256', caTtl: 3600, organization: 'T', jwtKeyType: 'ec-p256', refreshHint: 60 },
    keyManager: new MemoryKeyManager(),
    store,
    log,
  });
  const attestors = new Map([['x509pop', new X509PopAttestor([new X509Certificate(root.der)], td, () => new Date())]]);
  nodes = new NodeService({ store, ca, attestors, agentSvidTtl: 600, log, metrics: createServerMetrics(), now: () => Math.floor(Date.now() / 1000) });
});
afterEach(async () => {
  await ca.stop();
  await store.close();
});

const sha1 = (d: Buffer) => createHash('sha1').update(d).digest('hex');
const legacyId = (d: Buffer) => `spiffe://${td}/tessera/agent/x509pop/${sha1(d)}`;

async function attest(certDer: Buffer) {
  const { privateKey, publicKey } = await generateKeyPair();
  const step = await nodes.attest('x509pop', { certificates: [certDer.toString('base64')] }, await createCSR(privateKey, publicKey), '127.0.0.1');
  if (!('challengeId' in step)) throw new Error('expected a challenge');
  const sig = cryptoSign('sha256', Buffer.concat([X509POP_CONTEXT, step.challenge]), createPrivateKey(leaf.keyPem));
  return nodes.answer(step.challengeId, sig, '127.0.0.1');
}

async function legacyNode(id: string, banned: boolean) {
  await store.createAttestedNode({ spiffeId: id, attestationType: 'x509pop', serialNumber: '1', expiresAt: 2_000_000_000, newSerialNumber: '', newExpiresAt: 0, selectors: [], banned });
}

it.each([
  ['the certificate as sent', (d: Buffer) => d],
  ['its re-encoded twin', (d: Buffer) => withFlippedSignatureS(d, 'P-256')!],
])('a node banned under the old ID of %s stays banned', async (_what, recorded) => {
  await legacyNode(legacyId(recorded(leaf.der)), true);
  await expect(attest(leaf.der)).rejects.toMatchObject({ code: 'PERMISSION_DENIED', message: expect.stringContaining('is banned') });
  await expect(attest(withFlippedSignatureS(leaf.der, 'P-256')!)).rejects.toMatchObject({ message: expect.stringContaining('is banned') });
  expect(await store.fetchAttestedNode(legacyId(recorded(leaf.der)))).toBeUndefined(); // moved to the new ID
});

it('a node under its old ID is moved to the new one, with the entries parented to it', async () => {
  const old = legacyId(leaf.der);
  await legacyNode(old, false);
  const e = await store.createRegistrationEntry({
    spiffeId: `spiffe://${td}/wl`, parentId: old, selectors: [{ type: 'unix', value: 'uid:0' }],
    x509SvidTtl: 0, jwtSvidTtl: 0, dnsNames: [], federatesWith: [], hint: '', expiresAt: null,
  });
  const out = await attest(leaf.der);
  expect(out.agentId).toMatch(/\/x509pop\/[0-9a-f]{64}$/);
  expect(await store.fetchAttestedNode(old)).toBeUndefined();
  expect((await store.fetchAttestedNode(out.agentId))!.banned).toBe(false);
  expect((await store.fetchRegistrationEntry(e.id))!.parentId).toBe(out.agentId);
  // The twin encoding is the same node: the same ID.
  expect((await attest(withFlippedSignatureS(leaf.der, 'P-256')!)).agentId).toBe(out.agentId);
});
