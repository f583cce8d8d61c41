import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import readline from 'node:readline';
import type { TLSSocket } from 'node:tls';
import { TESSERA_BIN, removeDir, shortTempDir, startAgentProcess, startServerProcess, stopAndRemove, type AgentProcess, type ServerProcess } from '../../helpers/processes';
import { freePort } from '../../helpers/free-port';
import { waitFor } from '../../helpers/security';
import { SpiffeHttpsAgent, X509Source, authorizeID } from '../../../sdk/index';

/**
 * The classic spiffe-helper setup with Debian's nginx (.ci/run installs it):
 * `tessera helper` writes the files, starts nginx as its supervised command once
 * they are there, and sends it SIGHUP on every rotation; nginx serves mTLS with
 * them (client certificates checked against the written bundle). A client built on
 * the SDK, whose own SVID rotates too, calls nginx every 50 ms over new
 * connections: no request may fail across three rotations of nginx's certificate,
 * and nginx is reloaded, never restarted.
 */
jest.setTimeout(180_000);

const td = 'nginx.example.org';
const alias = `spiffe://${td}/node/nginx`;
const WEB = `spiffe://${td}/web`;
let server: ServerProcess;
let agent: AgentProcess;
let work: string;

beforeAll(async () => {
  server = await startServerProcess({ trustDomain: td });
  await server.cli(['entry', 'create', '--spiffe-id', WEB, '--parent-id', alias, '--selector', 'unix:uid:0', '--x509-svid-ttl', '10', '--hint', 'web']);
  agent = await startAgentProcess(server, { alias });
  work = shortTempDir('ngx-');
});
afterAll(async () => {
  await stopAndRemove(agent, server);
  removeDir(work);
});

it('nginx reloaded by the helper on every rotation keeps serving mTLS: 0 failed requests across three rotations', async () => {
  const certs = path.join(work, 'certs');
  const prefix = path.join(work, 'nginx');
  mkdirSync(path.join(prefix, 'logs'), { recursive: true });
  const port = await freePort();
  const pidFile = path.join(prefix, 'nginx.pid');
  writeFileSync(
    path.join(prefix, 'nginx.conf'),
    `pid ${pidFile};
error_log ${prefix}/logs/error.log notice;
worker_processes 1;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${prefix}/body; proxy_temp_path ${prefix}/proxy; fastcgi_temp_path ${prefix}/fastcgi; uwsgi_temp_path ${prefix}/uwsgi; scgi_temp_path ${prefix}/scgi;
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${certs}/svid.pem;
    ssl_certificate_key ${certs}/svid_key.pem;
    ssl_client_certificate ${certs}/bundle.pem;
    ssl_verify_client on;
    location / { return 200 "client $ssl_client_verify\\n"; }
  }
}
`,
  );
  const config = path.join(work, 'helper.json');
  writeFileSync(
    config,
    JSON.stringify({
      agent_address: `unix://${agent.socket}`,
      cert_dir: certs,
      svid_hint: 'web',
      cmd: '/usr/sbin/nginx',
      cmd_args: ['-p', prefix, '-c', path.join(prefix, 'nginx.conf'), '-e', path.join(prefix, 'logs', 'error.log'), '-g', 'daemon off;'],
      renew_signal: 'SIGHUP',
    }),
  );
  const helper: ChildProcess = spawn(process.execPath, [TESSERA_BIN, 'helper', '--config', config], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: Array<Record<string, any>> = [];
  readline.createInterface({ input: helper.stdout! }).on('line', (l) => {
    try {
      lines.push(JSON.parse(l));
    } catch {
      // nginx's own output
    }
  });
  const source = new X509Source({ address: agent.socket });
  const client = new SpiffeHttpsAgent({ source, authorizer: authorizeID(WEB) }, { keepAlive: false });
  let ok = 0;
  const failures: string[] = [];
  const serials = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  const pending = new Set<Promise<void>>();
  try {
    await source.ready(20_000);
    await waitFor('nginx started by the helper', () => lines.some((l) => l.event === 'helper_cmd_started'), 30_000);
    await waitFor('nginx listening', async () => {
      try {
        return readFileSync(pidFile, 'utf8').trim().length > 0;
      } catch {
        return false;
      }
    }, 20_000);
    const masterPid = readFileSync(pidFile, 'utf8').trim();
    const call = () => {
      const p = new Promise<void>((resolve) => {
        const req = https.get({ host: '127.0.0.1', port, path: '/', agent: client }, (res) => {
          serials.add((res.socket as TLSSocket).getPeerCertificate().serialNumber);
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => {
            if (res.statusCode === 200 && body === 'client SUCCESS\n') ok++;
            else failures.push(`status ${res.statusCode}: ${body.trim()}`);
            resolve();
          });
        });
        req.on('error', (e) => (failures.push(e.message), resolve()));
        req.setTimeout(5000, () => req.destroy(new Error('timeout')));
      });
      pending.add(p);
      void p.then(() => pending.delete(p));
    };
    // the first call may race nginx's first bind: wait for one success, then count from there
    await waitFor('nginx answering', async () => {
      call();
      await Promise.all([...pending]);
      const up = ok > 0;
      failures.length = 0;
      return up;
    }, 20_000, 200);
    timer = setInterval(call, 50);
    const signals = () => lines.filter((l) => l.event === 'helper_signalled' && l.signal === 'SIGHUP').length;
    await waitFor('three rotations, each a reload of nginx seen by the client', () => signals() >= 3 && serials.size >= 4, 90_000, 200);
    clearInterval(timer);
    await Promise.all([...pending]);
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(100);
    expect(readFileSync(pidFile, 'utf8').trim()).toBe(masterPid); // reloaded, not restarted
    expect(lines.filter((l) => l.event === 'helper_cmd_started')).toHaveLength(1);
    process.stdout.write(`nginx via tessera helper: ${ok} requests ok, ${failures.length} failed, ${signals()} reloads, ${serials.size} server certificates seen\n`);
  } finally {
    clearInterval(timer);
    client.destroy();
    source.close();
    const gone = new Promise((r) => helper.once('exit', r));
    helper.kill('SIGTERM');
    await gone;
  }
});
