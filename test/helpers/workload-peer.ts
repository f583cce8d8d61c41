/**
 * A second workload for e2e tests, run as its own process (under another uid with
 * setpriv): `node dist/test/helpers/workload-peer.js SOCKET TRUST_DOMAIN AUDIENCE`.
 * It follows its Workload API view (see WorkloadView) and talks JSON lines:
 *   stdout: {type:'ready'} once its streams are up; {type:'x509', at, spiffe_id, aki, chain}
 *           for each new X.509-SVID it receives; {type:'jwt', at, token} for each new
 *           JWT-SVID for AUDIENCE (fetched every 250 ms); {type:'x509_bundle', at, skis} and
 *           {type:'jwt_bundle', at, kids} for each bundle message; {type:'result', id, error}.
 *   stdin:  {id, kind:'x509', chain:[base64 DER]} or {id, kind:'jwt', token, audience}:
 *           validate with what this workload holds at that moment.
 * `{kind:'stop_jwt'}` stops the JWT fetch loop.
 */
import readline from 'node:readline';
import { WorkloadView } from './workload-view';

const [socket, trustDomain, audience] = process.argv.slice(2);
const emit = (o: object) => process.stdout.write(JSON.stringify(o) + '\n');

async function main(): Promise<void> {
  const view = new WorkloadView(socket!, trustDomain!);
  view.onX509 = (s) => emit({ type: 'x509', at: s.at, spiffe_id: s.spiffeId, aki: s.aki, chain: s.chain.map((c) => c.toString('base64')) });
  await view.start();
  let bundlesSent = 0;
  let jwksSent = 0;
  const flushBundles = () => {
    for (; bundlesSent < view.x509Bundles.length; bundlesSent++) emit({ type: 'x509_bundle', ...view.x509Bundles[bundlesSent] });
    for (; jwksSent < view.jwtBundles.length; jwksSent++) {
      const b = view.jwtBundles[jwksSent]!;
      emit({ type: 'jwt_bundle', at: b.at, kids: b.jwks.keys.map((k) => k.kid) });
    }
  };
  flushBundles();
  setInterval(flushBundles, 20);
  emit({ type: 'ready' });

  let lastToken = '';
  let fetching = true;
  const fetchLoop = async () => {
    while (fetching) {
      try {
        const [first] = await view.fetchJWTs([audience!]);
        if (first && first.svid !== lastToken) emit({ type: 'jwt', at: Date.now(), token: (lastToken = first.svid) });
      } catch (e) {
        emit({ type: 'fetch_error', message: (e as Error).message });
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  };
  void fetchLoop();

  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const req = JSON.parse(line) as { id?: number; kind: string; chain?: string[]; token?: string; audience?: string };
    if (req.kind === 'stop_jwt') return void (fetching = false);
    if (req.kind === 'x509') {
      return emit({ type: 'result', id: req.id, error: view.validateX509(req.chain!.map((c) => Buffer.from(c, 'base64'))) ?? null });
    }
    void view.validateJWT(req.token!, req.audience!).then((error) => emit({ type: 'result', id: req.id, error: error ?? null }));
  });
  rl.on('close', () => {
    view.close();
    process.exit(0);
  });
}

main().catch((e: Error) => {
  process.stderr.write(`workload-peer: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
