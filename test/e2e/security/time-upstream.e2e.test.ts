import { execFileSync } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startServerProcess, removeDir, shortTempDir, type ServerProcess } from '../../helpers/processes';
import { opensslVerify } from '../../helpers/agent-identity';
import { httpGet, logLines, startExpectingRefusal, waitFor } from '../../helpers/security';
import { makeTestKey } from '../../helpers/x509-test-keys';
import { createSelfSignedCA } from '../../../server/ca/ca-certificates';
import { derToPem } from '../../../common/pem';
import { x509AuthoritiesFromPem } from '../../../common/bundle/bundle';
import { figure } from '../../helpers/figures';

/**
 * Findings 14 and 15 against the real server: its wall clock stepped with
 * libfaketime (Debian's `faketime` package; `.ci/run` installs it), and an
 * upstream CA on disk that is readable by others, expired, or about to expire.
 */
jest.setTimeout(120_000);

function libfaketime(): string | undefined {
  const known = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1', '/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1'];
  const found = known.find(existsSync);
  if (found) return found;
  try {
    return execFileSync('dpkg', ['-L', 'libfaketime'], { encoding: 'utf8' }).split('\n').find((l) => l.endsWith('libfaketimeMT.so.1'));
  } catch {
    return undefined;
  }
}
const faketime = libfaketime();
if (!faketime && process.env.CI) throw new Error('libfaketime is required in CI (apt-get install faketime); .ci/run installs it');
const withFaketime = faketime ? describe : describe.skip;
if (!faketime) console.warn('SKIPPING the clock-step tests: libfaketime is not installed (apt-get install faketime)');

const td = 'time.example.org';

withFaketime('finding 14: the server clock steps forward and back', () => {
  let server: ServerProcess;
  let offsetFile: string;
  let work: string;
  beforeAll(async () => {
    work = shortTempDir('clk-');
    offsetFile = path.join(work, 'offset');
    writeFileSync(offsetFile, '+0');
    server = await startServerProcess({
      trustDomain: td,
      // A 20-minute CA: +30 minutes puts it past its expiry.
      config: { ca: { ttl: 1200, rotation_interval: 0.5 }, default_x509_svid_ttl: 60 },
      env: { LD_PRELOAD: faketime, FAKETIME_TIMESTAMP_FILE: offsetFile, FAKETIME_NO_CACHE: '1', FAKETIME_DONT_FAKE_MONOTONIC: '1' },
    });
  });
  afterAll(async () => {
    await server?.stop();
    removeDir(server?.dir);
    removeDir(work);
  });

  /** Steps the server's wall clock to real time + `seconds`; waits until what it mints shows the new time. */
  async function stepTo(seconds: number) {
    writeFileSync(offsetFile, `${seconds >= 0 ? '+' : ''}${seconds}`);
    let probes = 0;
    await waitFor('the server clock to move', async () => Math.abs((await mint(`probe-${seconds}-${probes++}`)).mintedAt - (Date.now() / 1000 + seconds)) < 30);
  }
  /** Mints an SVID now (retrying while the CA rotates to one valid at the server's clock). */
  async function mint(name: string): Promise<{ chain: Buffer[]; mintedAt: number }> {
    const dir = path.join(work, name);
    await waitFor(`a mint (${name})`, async () => (await server.cliResult(['x509', 'mint', '--spiffe-id', `spiffe://${td}/${name}`, '--ttl', '60', '--write', dir])).code === 0);
    const chain = x509AuthoritiesFromPem(readFileSync(path.join(dir, 'svid.pem'), 'utf8'));
    // The server's clock when it minted: notBefore is backdated 10 s.
    return { chain, mintedAt: Math.floor(Date.parse(new X509Certificate(chain[0]!).validFrom) / 1000) + 10 };
  }
  const bundle = async () => x509AuthoritiesFromPem(await server.cli(['bundle', 'show', '--format', 'pem']));
  const verify = async (name: string, chain: Buffer[], at: number) => (await opensslVerify(work, chain, await bundle(), name, at)).code;

  it('every SVID is valid under its CA at the time it was minted, and SVIDs from before the step keep validating after it', async () => {
    const invalid: string[] = [];
    const expectValid = async (name: string, chain: Buffer[], at: number) => {
      if ((await verify(name, chain, at)) !== 0) invalid.push(name);
    };
    const a = await mint('a-before');
    await expectValid('a-before', a.chain, a.mintedAt);

    await stepTo(1800); // +30 min: the real CA looks expired
    const b = await mint('b-during');
    await expectValid('b-during', b.chain, b.mintedAt);

    await stepTo(0); // back
    const c = await mint('c-after');
    const now = Math.floor(Date.now() / 1000);
    await expectValid('c-after', c.chain, now);
    await expectValid('a-still-valid', a.chain, now); // its CA was not pruned during the step

    await stepTo(-7200); // two hours back: every CA so far is not valid yet at that clock
    const d = await mint('d-early');
    await expectValid('d-early', d.chain, d.mintedAt);

    process.stdout.write(`clock steps: 4 SVIDs minted across +30 min, back, -2 h; invalid under their CA: ${invalid.length}\n`);
    figure('clock_steps', 3);
    figure('clock_svids_minted', 4);
    figure('clock_svids_checked', 5);
    figure('clock_svids_invalid', invalid.length);
    expect(invalid).toEqual([]);
    expect(logLines(server.logs(), 'clock_jump').map((l) => l.seconds)).toEqual([1800, -1800, -7200]);
  });
});

describe('finding 15: the upstream CA on disk', () => {
  let pki: string;
  beforeAll(() => {
    pki = shortTempDir('ups-');
  });
  afterAll(() => removeDir(pki));

  async function upstream(name: string, notBefore: Date, notAfter: Date, keyMode = 0o600) {
    const key = await makeTestKey('ec-p256');
    const der = await createSelfSignedCA({ key, trustDomain: 'upstream.example', notBefore, notAfter, organization: 'Upstream' });
    const certFile = path.join(pki, `${name}.crt`);
    const keyFile = path.join(pki, `${name}.key`);
    writeFileSync(certFile, derToPem(der));
    writeFileSync(keyFile, createPrivateKey(key.privateKey.export({ format: 'pem', type: 'pkcs8' })).export({ format: 'pem', type: 'pkcs8' }), { mode: keyMode });
    return { type: 'disk', cert_file: certFile, key_file: keyFile };
  }
  const serverArgs = (dir: string, over: object) => {
    const cfg = path.join(dir, 'server.json');
    writeFileSync(
      cfg,
      JSON.stringify({ trust_domain: td, data_dir: path.join(dir, 'data'), bind: '127.0.0.1:0', health_bind: '127.0.0.1:0', admin_socket: path.join(dir, 'admin', 'api.sock'), ...over }),
    );
    return ['server', 'run', '--config', cfg];
  };

  it('an upstream key file readable by others, or an expired upstream certificate, is refused at start, naming the file', async () => {
    const now = Date.now();
    const loose = await upstream('loose', new Date(now - 3600e3), new Date(now + 86400e3), 0o644);
    const r1 = await startExpectingRefusal(serverArgs(shortTempDir('u1-'), { upstream_authority: loose }), { readyEvent: 'server_ready' });
    expect(r1.ready).toBe(false);
    expect(r1.output).toMatch(/upstream_authority\.key_file .*loose\.key.*accessible by group or others \(mode 0644\)/);

    const expired = await upstream('expired', new Date(now - 7200e3), new Date(now - 3600e3));
    const r2 = await startExpectingRefusal(serverArgs(shortTempDir('u2-'), { upstream_authority: expired }), { readyEvent: 'server_ready' });
    expect(r2.ready).toBe(false);
    expect(r2.output).toMatch(/upstream_authority\.cert_file .*expired\.crt: the upstream certificate expired at/);
  });

  it('an upstream that expires before the CA TTL: no rotation churn, an error saying why, and not ready once the CA cannot sign', async () => {
    const now = Date.now();
    const soon = await upstream('soon', new Date(now - 3600e3), new Date(now + 15_000));
    const server = await startServerProcess({ trustDomain: td, config: { upstream_authority: soon, ca: { ttl: 60, rotation_interval: 0.5 }, default_x509_svid_ttl: 10 } });
    try {
      expect((await httpGet(server.health, '/ready')).status).toBe(200);
      await waitFor('/ready to report 503 once the upstream (and so the CA) expired', async () => (await httpGet(server.health, '/ready')).status === 503, 40_000, 250);
      const ready = JSON.parse((await httpGet(server.health, '/ready')).text) as { ca: { x509: string } };
      expect(ready.ca.x509).not.toBe('ok');
      expect(logLines(server.logs(), 'x509_authority_prepared')).toHaveLength(1); // the review saw one every few seconds
      expect(server.logs()).toMatch(/x509 authority cannot rotate: the upstream authority certificate expires before a new key could outlive the active one/);
    } finally {
      await server.stop();
      removeDir(server.dir);
    }
  });
});
