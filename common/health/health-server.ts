import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Logger } from 'pino';

/**
 * The plain-HTTP health listener of a long-running process: `GET /live` (200
 * while the process runs), `GET /ready` (200 or 503 with the reason, from
 * `ready()`), `GET /metrics` (Prometheus text from `registry`). Anything else is 404.
 * Bound to loopback by default by its callers; it carries no secret. The server,
 * the agent and the helper all serve theirs with this.
 */
export async function startHealthServer(o: {
  host: string;
  port: number;
  registry: Registry;
  ready: () => { ready: boolean } & Record<string, unknown>;
  log: Logger;
  /** runs before each /metrics scrape (gauges computed on demand) */
  beforeMetrics?: () => void;
}): Promise<{ address: AddressInfo; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (req.method !== 'GET') return send(405, 'application/json', '{"error":"only GET"}');
    const url = (req.url ?? '/').split('?')[0];
    if (url === '/live') return send(200, 'application/json', '{"live":true}');
    if (url === '/ready') {
      const r = o.ready();
      return send(r.ready ? 200 : 503, 'application/json', JSON.stringify(r));
    }
    if (url === '/metrics') {
      try {
        o.beforeMetrics?.();
      } catch (e) {
        o.log.warn({ err: { message: (e as Error).message } }, 'a metrics gauge could not be computed');
      }
      o.registry.metrics().then(
        (m) => send(200, o.registry.contentType, m),
        (e: Error) => send(500, 'text/plain', `metrics failed: ${e.message}`),
      );
      return;
    }
    send(404, 'application/json', '{"error":"not found"}');
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(o.port, o.host, () => resolve()));
  server.on('error', (err) => o.log.error({ err }, 'health listener error'));
  return {
    address: server.address() as AddressInfo,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}
