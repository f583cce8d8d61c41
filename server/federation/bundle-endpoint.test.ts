import https from 'node:https';
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { createLogger } from '../../common/log';
import { makeTestCA, makeTestLeaf, type TestCert } from '../../test/helpers/test-pki';
import { removeDir, shortTempDir } from '../../test/helpers/processes';
import { startBundleEndpoint, type BundleEndpoint } from './bundle-endpoint';

let dir: string;
let ca: TestCert, first: TestCert, second: TestCert;
let ep: BundleEndpoint;
let current: TestCert;
let doc = '{"keys":[],"spiffe_sequence":1}';

beforeAll(async () => {
  dir = shortTempDir('bep-');
  ca = await makeTestCA(dir, 'ca');
  first = await makeTestLeaf(dir, 'first', ca, { ip: ['127.0.0.1'] });
  second = await makeTestLeaf(dir, 'second', ca, { ip: ['127.0.0.1'] });
  current = first;
  ep = await startBundleEndpoint({
    bind: { host: '127.0.0.1', port: 0 },
    profile: 'https_web',
    tls: () => ({ key: current.keyPem, cert: current.certPem }),
    bundle: () => doc,
    log: createLogger({ name: 'test', level: 'silent' }),
  });
});
afterAll(async () => {
  await ep.close();
  removeDir(dir);
});

function request(method: string, path: string): Promise<{ status: number; type?: string; body: string; serial: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port: ep.address.port, method, path, ca: ca.certPem, agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () =>
        resolve({ status: res.statusCode!, type: res.headers['content-type'], body, serial: new X509Certificate((res.socket as TLSSocket).getPeerCertificate().raw).serialNumber }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

it('answers GET / with the current bundle as application/json, to a client without a certificate', async () => {
  const r = await request('GET', '/');
  expect(r).toMatchObject({ status: 200, type: 'application/json', body: doc });
  doc = '{"keys":[],"spiffe_sequence":2}';
  expect((await request('GET', '/?x=1')).body).toBe(doc);
});

it('refuses other methods and paths', async () => {
  expect((await request('POST', '/')).status).toBe(405);
  expect((await request('GET', '/bundle')).status).toBe(404);
});

it('serves a new certificate to new connections after refresh()', async () => {
  const before = (await request('GET', '/')).serial;
  expect(before).toBe(new X509Certificate(first.certPem).serialNumber);
  current = second;
  ep.refresh();
  expect((await request('GET', '/')).serial).toBe(new X509Certificate(second.certPem).serialNumber);
});
