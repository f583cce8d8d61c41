import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { AuditHub } from '../../audit/audit-hub';
import { auditRouter } from './audit';

/** The audit tail over SSE: events recorded after the stream opened reach it, however the request body was handled. */
describe('GET /v1/audit/stream', () => {
  it('keeps delivering live events after the (empty) request body was read', async () => {
    const hub = new AuditHub({ nowMs: () => Date.UTC(2026, 0, 1) });
    const app = express();
    // a middleware that reads the body, as body parsers do: the request's 'close' then fires at once
    app.use((req, _res, next) => {
      req.resume();
      req.on('end', () => next());
    });
    app.use(auditRouter({ audit: hub }));
    const server = http.createServer(app).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    try {
      const got = await new Promise<string>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, path: '/v1/audit/stream' }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            text += c;
            if (text.includes('retry:')) setImmediate(() => hub.record('svid_denied', { spiffe_id: 'spiffe://td/w' }));
            if (text.includes('event: audit')) {
              res.destroy();
              resolve(text);
            }
          });
        }).on('error', reject);
      });
      expect(got).toMatch(/event: audit\ndata: .*"svid_denied"/);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});
