import { generateKeyPair, sign as cryptoSign, verify as cryptoVerify } from 'node:crypto';
import https from 'node:https';
import tls from 'node:tls';
import { TLS_OPTIONS } from '../common/tls';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { startAgentProcess, startServerProcess, removeDir } from '../test/helpers/processes';
import { AdminClient } from '../cli/admin-client';
import { JWTSVIDSigner } from '../common/jwtsvid/sign';
import { validateJWTSVID } from '../common/jwtsvid/validate';
import { parseSpiffeId } from '../common/spiffeid/spiffe-id';
import { derToPem } from '../common/pem';
import { X509Source, SpiffeHttpsAgent, attachMTLSServer, authorizeAny, mtlsServerOptions, PolicyEngine, type PolicyRequest } from '../sdk/index';
import { percentile } from './propagation';

const gen = promisify(generateKeyPair);
const usSince = (t: bigint) => Number(process.hrtime.bigint() - t) / 1000;

/**
 * Policy decisions with N rules of the shape a deployment has: each workload may
 * call a few tools and routes (equality scopes), a tenth of the rules add a
 * condition on how the caller authenticated, a few forbid. The same generated
 * requests are answered by the sliced engine after a warm-up pass over them (the
 * steady state of a running service, mostly cache hits), by the same engine with
 * its decision cache off (`uncached`: every conditional decision goes to Cedar),
 * and a sample by Cedar on the whole set (the baseline).
 */
export function benchPolicy(
  rules: number,
  decisions = 20_000,
): { p50: number; p99: number; perSec: number; uncachedP50: number; uncachedP99: number; fullSetP50: number } {
  const workloads = Math.max(10, Math.floor(rules / 10));
  const tools = 50;
  const text: string[] = [];
  for (let i = 0; i < rules; i++) {
    const w = `spiffe://bench.example/svc-${i % workloads}`;
    if (i % 20 === 19) text.push(`@id("r${i}") forbid (principal == Workload::"${w}", action == Action::"call_tool", resource == Tool::"tool-${(i * 7) % tools}");`);
    else if (i % 10 === 3) text.push(`@id("r${i}") permit (principal == Workload::"${w}", action == Action::"http", resource == Route::"POST /v1/chat") when { context.authn == "mtls" };`);
    else text.push(`@id("r${i}") permit (principal == Workload::"${w}", action == Action::"call_tool", resource == Tool::"tool-${i % tools}");`);
  }
  const engine = PolicyEngine.fromText(text.join('\n'));
  const uncachedEngine = PolicyEngine.fromText(text.join('\n'), { cacheDecisions: false });
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const reqs: PolicyRequest[] = Array.from({ length: decisions }, (_, i) => {
    const http = rnd() < 0.2;
    return {
      principal: parseSpiffeId(`spiffe://bench.example/svc-${Math.floor(rnd() * workloads)}`),
      action: http ? 'http' : 'call_tool',
      resource: http ? { type: 'Route', id: 'POST /v1/chat' } : { type: 'Tool', id: `tool-${Math.floor(rnd() * tools)}` },
      context: { authn: rnd() < 0.5 ? 'mtls' : 'jwt', correlation_id: `c${i}` },
    };
  });
  const time = (f: (r: PolicyRequest) => unknown, list: PolicyRequest[]) => {
    const out: number[] = [];
    for (const r of list) {
      const t = process.hrtime.bigint();
      f(r);
      out.push(usSince(t));
    }
    return out;
  };
  time((r) => engine.authorize(r), reqs); // warm-up, fills the decision cache
  time((r) => uncachedEngine.authorize(r), reqs.slice(0, 2000));
  const uncached = time((r) => uncachedEngine.authorize(r), reqs);
  const t0 = performance.now();
  const warm = time((r) => engine.authorize(r), reqs);
  const elapsed = performance.now() - t0;
  const full = time((r) => engine.authorizeWithFullSet(r), reqs.slice(0, rules >= 1000 ? 300 : 2000));
  return { p50: percentile(warm, 50), p99: percentile(warm, 99), perSec: (reqs.length / elapsed) * 1000, uncachedP50: percentile(uncached, 50), uncachedP99: percentile(uncached, 99), fullSetP50: percentile(full, 50) };
}

/** Local JWT-SVID validation against `crypto.verify` of the same signature, alternating rounds. */
export async function benchJWTValidation(seconds = 2): Promise<{ ratio: number; validatePerSec: number; verifyPerSec: number }> {
  const { privateKey, publicKey } = await gen('ec', { namedCurve: 'P-256' });
  const now = Math.floor(Date.now() / 1000);
  const signer = new JWTSVIDSigner({ kid: 'k1', alg: 'ES256', sign: (d) => cryptoSign('sha256', d, { key: privateKey, dsaEncoding: 'ieee-p1363' }), notAfter: now + 3600 });
  const { token } = signer.mint({ sub: 'spiffe://bench.example/client', aud: ['spiffe://bench.example/api'], ttlSeconds: 300, iss: 'https://oidc.bench.example', now });
  const keys = [{ kid: 'k1', publicKey }];
  const dot = token.lastIndexOf('.');
  const input = Buffer.from(token.slice(0, dot), 'latin1');
  const sig = Buffer.from(token.slice(dot + 1), 'base64url');
  const opts = { audience: 'spiffe://bench.example/api', keysFor: () => keys, now };
  let v = 0;
  let r = 0;
  let vMs = 0;
  let rMs = 0;
  const slice = (seconds * 1000) / 20;
  for (let round = 0; round < 10; round++) {
    let t = performance.now();
    while (performance.now() - t < slice) {
      for (let i = 0; i < 32; i++) await validateJWTSVID(token, opts);
      v += 32;
    }
    vMs += performance.now() - t;
    t = performance.now();
    while (performance.now() - t < slice) {
      for (let i = 0; i < 32; i++) cryptoVerify('sha256', input, { key: publicKey, dsaEncoding: 'ieee-p1363' }, sig);
      r += 32;
    }
    rMs += performance.now() - t;
  }
  const validatePerSec = (v / vMs) * 1000;
  const verifyPerSec = (r / rMs) * 1000;
  return { ratio: validatePerSec / verifyPerSec, validatePerSec, verifyPerSec };
}

/**
 * SPIFFE mTLS through the SDK (SVIDs from a real agent) against Node's https with
 * the same certificate, key and CAs given statically: requests/s over keep-alive
 * connections, and handshakes/s with a new connection per request (no session
 * resumption on either side). The server pair is measured with the same plain
 * client; the client pair against the same static server. Rounds alternate so
 * that the machine's drift hits both sides of each ratio.
 */
export interface MTLSBenchResult {
  /** SDK server / static server, the same plain Node client */
  serverKeepAliveRatio: number;
  serverHandshakeRatio: number;
  /** SDK client (SpiffeHttpsAgent) / plain https.Agent, against the static server */
  clientKeepAliveRatio: number;
  clientHandshakeRatio: number;
  keepAlivePerSec: number;
  handshakesPerSec: number;
}

// A handshake costs about 3.5 ms of CPU on this class of machine, a keep-alive
// request about 0.1 ms: these counts keep each run near half a second or more.
export async function benchMTLS(rounds = 6, keepAliveRequests = 5000, handshakeRequests = 400): Promise<MTLSBenchResult> {
  const td = 'mtls.example.org';
  const alias = `spiffe://${td}/node/bench`;
  const server = await startServerProcess({ trustDomain: td, config: { log_level: 'warn' } });
  const admin = new AdminClient(server.adminSocket);
  const uid = process.getuid?.() ?? 0;
  await admin.request('POST', '/v1/entries', { entries: [{ spiffe_id: `spiffe://${td}/svc`, parent_id: alias, selectors: [`unix:uid:${uid}`] }] });
  const agent = await startAgentProcess(server, { alias, config: { log_level: 'warn' } });
  const source = new X509Source({ address: agent.socket });
  await source.ready(20_000);
  const cfg = { source, authorizer: authorizeAny() };
  const handler = (_req: IncomingMessage, res: ServerResponse) => void res.end('ok');

  const sdkServer = https.createServer(mtlsServerOptions(cfg), handler);
  attachMTLSServer(sdkServer, cfg);
  const svid = source.svid();
  const material = {
    cert: svid.chain.map((c) => derToPem(c)).join(''),
    key: derToPem(svid.privateKey, 'PRIVATE KEY'),
    ca: [...source.allBundles().values()].flat().map((c) => derToPem(c)),
  };
  // The static side gets the same TLS settings and a context built once, as a
  // careful hand-written server and client would: the ratios are then the SDK's
  // own cost (verification by trust domain, authorizer, rotation), nothing else.
  const staticContext = tls.createSecureContext({ ...TLS_OPTIONS, ...material });
  const staticServer = https.createServer({ ...TLS_OPTIONS, ...material, requestCert: true, rejectUnauthorized: true }, handler);
  const listen = (s: https.Server) => new Promise<number>((r) => s.listen(0, '127.0.0.1', () => r((s.address() as AddressInfo).port)));
  const [sdkPort, staticPort] = [await listen(sdkServer), await listen(staticServer)];

  const run = async (port: number, agentFor: () => https.Agent, inFlight: number, requests: number): Promise<number> => {
    const ag = agentFor();
    let left = requests;
    const one = () =>
      new Promise<void>((resolve, reject) => {
        https
          .get({ host: '127.0.0.1', port, path: '/', agent: ag, checkServerIdentity: () => undefined }, (res) => {
            res.resume();
            res.on('end', resolve);
          })
          .on('error', reject);
      });
    const t = performance.now();
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (left-- > 0) await one();
      }),
    );
    const ms = performance.now() - t;
    ag.destroy();
    return (requests / ms) * 1000;
  };
  const sdkAgent = (keepAlive: boolean) => () => new SpiffeHttpsAgent(cfg, { keepAlive, maxSockets: 4 });
  const staticAgent = (keepAlive: boolean) => () => new https.Agent({ secureContext: staticContext, keepAlive, maxSockets: 4, maxCachedSessions: 0 });
  const r = { serverKeep: [] as number[], serverFresh: [] as number[], clientKeep: [] as number[], clientFresh: [] as number[] };
  let keepRate = 0;
  let freshRate = 0;
  // A, B, B, A within each round: a drift of the machine's speed during the round
  // weighs on both sides of the ratio alike.
  const pair = async (a: () => Promise<number>, b: () => Promise<number>) => {
    const a1 = await a();
    const b1 = await b();
    const b2 = await b();
    const a2 = await a();
    return { ratio: (a1 + a2) / (b1 + b2), a: (a1 + a2) / 2 };
  };
  try {
    await run(sdkPort, staticAgent(true), 4, keepAliveRequests); // warm-up
    await run(staticPort, sdkAgent(true), 4, keepAliveRequests);
    await run(sdkPort, staticAgent(false), 4, handshakeRequests);
    for (let i = 0; i < rounds; i++) {
      const sk = await pair(() => run(sdkPort, staticAgent(true), 4, keepAliveRequests), () => run(staticPort, staticAgent(true), 4, keepAliveRequests));
      r.serverKeep.push(sk.ratio);
      keepRate = sk.a;
      const sf = await pair(() => run(sdkPort, staticAgent(false), 4, handshakeRequests), () => run(staticPort, staticAgent(false), 4, handshakeRequests));
      r.serverFresh.push(sf.ratio);
      freshRate = sf.a;
      r.clientKeep.push((await pair(() => run(staticPort, sdkAgent(true), 4, keepAliveRequests), () => run(staticPort, staticAgent(true), 4, keepAliveRequests))).ratio);
      r.clientFresh.push((await pair(() => run(staticPort, sdkAgent(false), 4, handshakeRequests), () => run(staticPort, staticAgent(false), 4, handshakeRequests))).ratio);
    }
  } finally {
    sdkServer.close();
    staticServer.close();
    source.close();
    await agent.stop();
    await server.stop();
    removeDir(agent.dir);
    removeDir(server.dir);
  }
  return {
    serverKeepAliveRatio: percentile(r.serverKeep, 50),
    serverHandshakeRatio: percentile(r.serverFresh, 50),
    clientKeepAliveRatio: percentile(r.clientKeep, 50),
    clientHandshakeRatio: percentile(r.clientFresh, 50),
    keepAlivePerSec: keepRate,
    handshakesPerSec: freshRate,
  };
}
