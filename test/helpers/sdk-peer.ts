/**
 * A workload built on the SDK, run as its own process (under another uid with
 * setpriv) by the SDK end-to-end tests:
 *   node dist/test/helpers/sdk-peer.js SOCKET PEER_SPIFFE_ID
 * It serves HTTPS with SPIFFE mTLS (only PEER_SPIFFE_ID may call it) and, once
 * told the peer's port, calls the peer every 50 ms, alternating SpiffeHttpsAgent
 * (keep-alive, and new connections) and spiffeFetch (undici). JSON lines:
 *   stdout: {type:'ready', port, spiffe_id}; {type:'rotated', serial} when its own SVID changes;
 *           {type:'result', ok, via, server_serial?, error?}; {type:'summary', ...} on `stop`
 *   stdin:  {cmd:'call', port} starts calling; {cmd:'stop'} prints the summary and exits.
 */
import https from 'node:https';
import readline from 'node:readline';
import type { TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { X509Source, SpiffeHttpsAgent, attachMTLSServer, authorizeID, mtlsServerOptions, peerIdentity, spiffeFetch } from '../../sdk/index';

const [socket, peerId] = process.argv.slice(2) as [string, string];
const emit = (o: object) => process.stdout.write(JSON.stringify(o) + '\n');

async function main(): Promise<void> {
  const source = new X509Source({ address: socket });
  await source.ready(20_000);
  const authorizer = authorizeID(peerId);
  const serverCfg = { source, authorizer };
  let listening = 0;
  const refusals: string[] = [];
  const server = https.createServer(mtlsServerOptions(serverCfg), (req, res) => {
    const caller = peerIdentity(req.socket as TLSSocket);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ me: source.svid().spiffeId, caller: caller?.id.toString() }));
  });
  attachMTLSServer(server, { ...serverCfg, onRefused: (r) => refusals.push(r) });
  // handshakes OpenSSL itself failed (before attachMTLSServer sees the peer)
  const tlsErrors: string[] = [];
  server.on('tlsClientError', (e: Error) => tlsErrors.push(e.message));
  // errors on accepted connections, and what the HTTP layer saw (diagnosis only)
  const serverSocketErrors: string[] = [];
  // what OpenSSL's own check said of peers the SDK accepted by the SPIFFE rules (diagnosis only)
  const opensslWouldRefuse: string[] = [];
  server.on('secureConnection', (s: TLSSocket) => {
    s.on('error', (e: NodeJS.ErrnoException) => serverSocketErrors.push(`${e.code ?? e.message}`));
    if (s.authorizationError) opensslWouldRefuse.push(String(s.authorizationError));
  });
  server.on('clientError', (e: NodeJS.ErrnoException) => serverSocketErrors.push(`clientError ${e.code ?? e.message}`));
  server.on('listening', () => listening++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  emit({ type: 'ready', port: (server.address() as { port: number }).port, spiffe_id: source.svid().spiffeId });

  let serial = new X509Certificate(source.svid().chain[0]!).serialNumber;
  let rotations = 0;
  source.on('update', () => {
    const now = new X509Certificate(source.svid().chain[0]!).serialNumber;
    if (now !== serial) {
      serial = now;
      rotations++;
      emit({ type: 'rotated', serial });
    }
  });

  const clientCfg = { source, authorizer };
  const keepAlive = new SpiffeHttpsAgent(clientCfg);
  const fresh = new SpiffeHttpsAgent(clientCfg, { keepAlive: false });
  const f = spiffeFetch(clientCfg);
  let ok = 0;
  let failed = 0;
  const serverSerials = new Set<string>();
  const errors: string[] = [];
  let timer: NodeJS.Timeout | undefined;
  let n = 0;

  const viaAgent = (port: number, agent: https.Agent) =>
    new Promise<string>((resolve, reject) => {
      let phase = 'connecting';
      const req = https.get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
        phase = 'response headers';
        const peerSerial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => (res.statusCode === 200 && JSON.parse(body).caller ? resolve(peerSerial) : reject(new Error(`status ${res.statusCode} ${body}`))));
      });
      req.on('socket', (sock: TLSSocket) => {
        // a reused keep-alive socket is already up; only a new one gets a listener
        if (sock.getProtocol()) phase = `tls up (${sock.getProtocol()}, reused)`;
        else sock.once('secureConnect', () => (phase = `tls up (${sock.getProtocol()})`));
      });
      req.on('finish', () => (phase += ', request sent'));
      req.on('error', (e: Error) => reject(new Error(`${e.message} [${phase}]`)));
      req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    });
  const viaFetch = async (port: number) => {
    const r = await f(`https://127.0.0.1:${port}/`).catch((e: Error & { cause?: NodeJS.ErrnoException }) => {
      throw new Error(`${e.message}: ${e.cause?.code ?? ''} ${e.cause?.message ?? ''}`);
    });
    const body = (await r.json()) as { caller?: string };
    if (r.status !== 200 || !body.caller) throw new Error(`status ${r.status}`);
    return '';
  };

  const pending = new Set<Promise<unknown>>();
  const call = (port: number) => {
    const i = n++;
    const via = ['keep-alive', 'new-connection', 'fetch'][i % 3]!;
    const p = via === 'fetch' ? viaFetch(port) : viaAgent(port, via === 'keep-alive' ? keepAlive : fresh);
    const done = p.then(
      (s) => {
        ok++;
        if (s) serverSerials.add(s);
        emit({ type: 'result', ok: true, via, server_serial: s || undefined });
      },
      (e: Error) => {
        failed++;
        errors.push(`${via}: ${e.message}`);
        emit({ type: 'result', ok: false, via, error: e.message });
      },
    );
    pending.add(done);
    void done.finally(() => pending.delete(done));
  };

  readline.createInterface({ input: process.stdin }).on('line', (line) => {
    const m = JSON.parse(line) as { cmd: string; port?: number };
    if (m.cmd === 'call') timer = setInterval(() => call(m.port!), 50);
    // Two steps, so that neither peer's listener goes away while the other still calls it:
    // 'stop' ends this peer's calls and reports once those in flight are done (the listener
    // keeps serving); 'exit' ends the process, sent once both peers have reported.
    if (m.cmd === 'stop') {
      clearInterval(timer);
      void Promise.allSettled([...pending]).then(() => {
        emit({ type: 'summary', ok, failed, errors: errors.slice(0, 10), listening, rotations, server_serials: serverSerials.size, refusals, tls_errors: tlsErrors.slice(0, 10), server_socket_errors: serverSocketErrors.slice(0, 10), openssl_would_refuse: opensslWouldRefuse.slice(0, 10) });
      });
    }
    if (m.cmd === 'exit') process.exit(0);
  });
}

main().catch((e: Error) => {
  process.stderr.write(`sdk-peer: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
