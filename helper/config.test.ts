import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadHelperConfig } from './config';

let dir: string;
beforeAll(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'hcfg-'))));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const load = (config: object, env: NodeJS.ProcessEnv = {}, flags: object = {}) => {
  const file = path.join(dir, `c-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify(config));
  return loadHelperConfig({ config: file, ...flags }, env);
};

it('takes a spiffe-helper style file, with its defaults', () => {
  const c = load({
    agent_address: 'unix:///run/spire/agent.sock',
    cert_dir: '/certs',
    svid_file_name: 'tls.crt',
    svid_key_file_name: 'tls.key',
    svid_bundle_file_name: 'ca.crt',
    jwt_svids: [{ jwt_audience: 'https://api.openai.com', jwt_svid_file_name: 'openai.token' }],
    cmd: 'nginx',
    cmd_args: '-g daemon off;',
    renew_signal: 'SIGHUP',
  });
  expect(c).toMatchObject({
    agentAddress: 'unix:///run/spire/agent.sock',
    certDir: '/certs',
    x509: { certFile: 'tls.crt', keyFile: 'tls.key', bundleFile: 'ca.crt', combinedFile: '', includeFederated: false },
    jwtSvids: [{ audience: ['https://api.openai.com'], file: 'openai.token' }],
    cmd: { command: 'nginx', args: ['-g', 'daemon', 'off;'], exitWithCmd: false },
    renewSignal: 'SIGHUP',
    certFileMode: 0o644,
    keyFileMode: 0o600,
  });
});

it('lets env and flags override the file (flags win)', () => {
  const c = load({ cert_dir: '/a' }, { TESSERA_HELPER_CERT_DIR: '/b', SPIFFE_ENDPOINT_SOCKET: 'unix:///env.sock' }, { certDir: '/c' });
  expect(c.certDir).toBe('/c');
  expect(c.agentAddress).toBe('unix:///env.sock');
});

it.each([
  [{ cert_dir: '/c', pkcs12: { password: 'inline' } }, /pkcs12/],
  [{ cert_dir: '/c', pkcs12: {} }, /password_file or password_env/],
  [{ cert_dir: '/c', svid_file_name: '../etc/passwd' }, /svid_file_name: must be a plain file name/],
  [{ cert_dir: '/c', svid_key_file_name: 'bundle.pem' }, /two outputs are both named bundle.pem/],
  [{ cert_dir: '/c', renew_signal: 'SIGHUP' }, /renew_signal: needs cmd or pid_file_name/],
  [{ cert_dir: '/c', cmd: 'x', renew_signal: 'SIGNOPE' }, /not a signal on this system/],
  [{ cert_dir: '/c', key_file_mode: '0666' }, /key_file_mode: must be a file mode no one else may write/],
  [{ cert_dir: '/c', svid_hint: 'a', spiffe_id: 'spiffe://td/a' }, /svid_hint or spiffe_id, not both/],
  [{ cert_dir: '/c', spiffe_id: 'https://td/a' }, /spiffe_id/],
  [{ cert_dir: '/c', exit_with_cmd: true }, /exit_with_cmd: needs cmd/],
])('refuses %j', (config, message) => {
  expect(() => load(config)).toThrow(message);
});
