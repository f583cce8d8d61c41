import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { x509AuthoritiesFromPem } from '../../common/bundle/bundle';
import { run } from './processes';

/** A certificate and key made by openssl, as files and as PEM/DER. */
export interface TestCert {
  certFile: string;
  keyFile: string;
  certPem: string;
  keyPem: string;
  der: Buffer;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

async function openssl(dir: string, args: string[]): Promise<void> {
  const r = await run('openssl', args, { cwd: dir });
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

function load(dir: string, name: string): TestCert {
  const certFile = path.join(dir, `${name}.crt`);
  const keyFile = path.join(dir, `${name}.key`);
  const certPem = readFileSync(certFile, 'utf8');
  return { certFile, keyFile, certPem, keyPem: readFileSync(keyFile, 'utf8'), der: x509AuthoritiesFromPem(certPem)[0]! };
}

/**
 * A self-signed CA (P-256, CA:true, keyCertSign). With `spiffeTrustDomain` it is
 * shaped as a SPIFFE X.509 CA (URI SAN `spiffe://<td>`).
 */
export async function makeTestCA(dir: string, name: string, opts: { spiffeTrustDomain?: string } = {}): Promise<TestCert> {
  const ext = ['-addext', 'basicConstraints=critical,CA:true', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'];
  if (opts.spiffeTrustDomain) ext.push('-addext', `subjectAltName=URI:spiffe://${opts.spiffeTrustDomain}`);
  await openssl(dir, ['req', '-x509', ...EC, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-subj', `/O=Test/CN=${name}`, '-days', '2', ...ext]);
  return load(dir, name);
}

/**
 * A leaf under `ca` with the X.509-SVID shape (CA:false, digitalSignature,
 * serverAuth + clientAuth) and the given SANs: `uri` for an SVID, `dns`/`ip` for a
 * web server certificate. `cert.crt` holds the leaf only.
 */
export async function makeTestLeaf(dir: string, name: string, ca: TestCert, san: { uri?: string; dns?: string[]; ip?: string[] }): Promise<TestCert> {
  const names = [...(san.uri ? [`URI:${san.uri}`] : []), ...(san.dns ?? []).map((d) => `DNS:${d}`), ...(san.ip ?? []).map((i) => `IP:${i}`)];
  writeFileSync(
    path.join(dir, `${name}.ext`),
    [
      'basicConstraints=critical,CA:false',
      'keyUsage=critical,digitalSignature',
      'extendedKeyUsage=serverAuth,clientAuth',
      'subjectKeyIdentifier=hash',
      'authorityKeyIdentifier=keyid',
      `subjectAltName=${names.join(',')}`,
    ].join('\n'),
  );
  await openssl(dir, ['req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/O=Test/CN=${name}`]);
  await openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', `${name}.ext`]);
  return load(dir, name);
}
