/**
 * The AI endpoint as its own process:
 *   SPIFFE_ENDPOINT_SOCKET=unix:///path/api.sock node dist/examples/ai-endpoint/serve.js [--policy FILE] [--port N] [--hint H]
 *       [--model-url URL --model-token-file FILE]
 * It presents the SVID whose entry has hint H (default `ai-endpoint`), takes
 * JWT-SVIDs for its own SPIFFE ID as audience, enforces the Cedar policy file
 * (reloaded when it changes) and logs JSON lines (pino) to stdout: one
 * `authz_decision` line per decision, and `endpoint_ready` with the port.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { JWTSource, PolicyFile, X509Source, byHint } from '../../sdk/index';
import { startAiEndpoint } from './endpoint';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      policy: { type: 'string', default: path.join(__dirname, '..', '..', '..', 'examples', 'ai-endpoint', 'policy.cedar') },
      port: { type: 'string', default: '0' },
      hint: { type: 'string', default: 'ai-endpoint' },
      'model-url': { type: 'string' },
      'model-token-file': { type: 'string' },
    },
  });
  const log = pino({ base: { service: 'ai-endpoint' } });
  const picker = byHint(values.hint!);
  const source = new X509Source({ picker }); // SPIFFE_ENDPOINT_SOCKET
  const jwt = new JWTSource();
  await Promise.all([source.ready(20_000), jwt.ready(20_000)]);
  const me = source.svid().spiffeId;
  const policy = PolicyFile.load(values.policy!, { log, pollMs: 200 });
  const modelUrl = values['model-url'];
  const modelTokenFile = values['model-token-file'];
  if (Boolean(modelUrl) !== Boolean(modelTokenFile)) throw new Error('give --model-url and --model-token-file together');
  const model = modelUrl && modelTokenFile ? { url: modelUrl, tokenFile: modelTokenFile } : undefined;
  const endpoint = await startAiEndpoint({ source, picker, jwt, audience: me, policy, log, port: Number(values.port), model });
  log.info({ event: 'endpoint_ready', port: endpoint.port, spiffe_id: me, policy: values.policy }, 'ai endpoint ready');
  const stop = () =>
    void endpoint.close().then(() => {
      policy.close();
      source.close();
      jwt.close();
      process.exit(0);
    });
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e: Error) => {
  process.stderr.write(`ai-endpoint: ${e.message}\n`);
  process.exit(1);
});
