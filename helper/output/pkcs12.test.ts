import { createPrivateKey } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run } from '../../test/helpers/processes';
import { makeTestCA, makeTestLeaf } from '../../test/helpers/test-pki';
import { pkcs12Keystore, pkcs12Truststore } from './pkcs12';

/**
 * The files are read by the tools their users have: OpenSSL (`openssl pkcs12`)
 * and Java's `keytool` (the JDK is installed by .ci/run when missing).
 */
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'p12-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('a keystore with an EC P-256 key and its chain, and a truststore, open with openssl and keytool with the password', async () => {
  const ca = await makeTestCA(dir, 'ca', { spiffeTrustDomain: 'p12.example.org' });
  const leaf = await makeTestLeaf(dir, 'leaf', ca, { uri: 'spiffe://p12.example.org/java' });
  const keyDer = createPrivateKey(leaf.keyPem).export({ type: 'pkcs8', format: 'der' });
  const pass = 'correct horse battery staple';
  writeFileSync(path.join(dir, 'keystore.p12'), pkcs12Keystore(keyDer, [leaf.der], pass, 'svid'));
  writeFileSync(path.join(dir, 'truststore.p12'), pkcs12Truststore([ca.der], pass, 'spiffe'));

  const ks = await run('openssl', ['pkcs12', '-in', 'keystore.p12', '-passin', `pass:${pass}`, '-nodes'], { cwd: dir });
  expect(ks.stderr).not.toMatch(/error|invalid/i);
  expect(ks.code).toBe(0);
  expect(ks.stdout).toContain('-----BEGIN PRIVATE KEY-----');
  expect(ks.stdout).toContain('friendlyName: svid');
  // the key openssl reads back is the SVID's
  const back = ks.stdout.slice(ks.stdout.indexOf('-----BEGIN PRIVATE KEY-----'), ks.stdout.indexOf('-----END PRIVATE KEY-----') + 25);
  expect(createPrivateKey(back).export({ type: 'pkcs8', format: 'der' }).equals(keyDer)).toBe(true);
  expect((await run('openssl', ['pkcs12', '-in', 'keystore.p12', '-passin', 'pass:wrong', '-nodes'], { cwd: dir })).code).not.toBe(0);

  const ts = await run('openssl', ['pkcs12', '-in', 'truststore.p12', '-passin', `pass:${pass}`, '-nokeys'], { cwd: dir });
  expect(ts.code).toBe(0);
  expect(ts.stdout).toContain('-----BEGIN CERTIFICATE-----');

  const kl = await run('keytool', ['-list', '-v', '-keystore', 'keystore.p12', '-storetype', 'PKCS12', '-storepass', pass], { cwd: dir });
  expect(kl.stdout + kl.stderr).toMatch(/Your keystore contains 1 entry/);
  expect(kl.stdout).toMatch(/Alias name: svid[\s\S]*Entry type: PrivateKeyEntry/);
  expect(kl.stdout).toContain('URIName: spiffe://p12.example.org/java');
  const tl = await run('keytool', ['-list', '-keystore', 'truststore.p12', '-storetype', 'PKCS12', '-storepass', pass], { cwd: dir });
  expect(tl.stdout).toMatch(/Your keystore contains 1 entry/);
  expect(tl.stdout).toMatch(/spiffe-1, .*trustedCertEntry/);
}, 60_000);
