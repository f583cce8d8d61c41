import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type { Clock } from '../common/clock';
import { loadServerConfig } from './config';
import { startServer, type RunningServer } from './server';

/** A wall clock the test sets; the monotonic clock is real (deadlines still pass). */
class SetClock implements Clock {
  constructor(public ms: number) {}
  now(): Date {
    return new Date(this.ms);
  }
  monotonic(): number {
    return performance.now();
  }
}

const getJson = (host: string, port: number, p: string) =>
  new Promise<{ status: number; body: Record<string, unknown> }>((resolve, reject) => {
    http
      .get({ host, port, path: p }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c)).on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      })
      .on('error', reject);
  });

describe('one injected clock drives the whole server', () => {
  let dir: string;
  let server: RunningServer | undefined;
  afterEach(async () => {
    await server?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the CA, stored times and readiness follow the clock given to startServer, not the system clock', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsr-clk-'));
    const start = Date.UTC(2031, 5, 1); // years away from the machine's time
    const clock = new SetClock(start);
    const config = loadServerConfig(
      {
        trustDomain: 'example.org',
        dataDir: path.join(dir, 'data'),
        bind: '127.0.0.1:0',
        healthBind: '127.0.0.1:0',
        adminSocket: path.join(dir, 'admin', 'api.sock'),
      },
      {},
    );
    server = await startServer(config, pino({ level: 'silent' }), clock);
    const startS = Math.floor(start / 1000);
    // the CA was made at the clock's time, for ca.ttl (24 h)
    expect(server.ca.x509NotAfter()).toBeGreaterThan(startS + 23 * 3600);
    expect(server.ca.x509NotAfter()).toBeLessThanOrEqual(startS + 24 * 3600 + 60);
    // the store stamps rows with the same clock
    const entry = await server.store.createRegistrationEntry({
      spiffeId: 'spiffe://example.org/w', parentId: 'spiffe://example.org/a', selectors: [{ type: 'unix', value: 'uid:1' }],
      x509SvidTtl: 0, jwtSvidTtl: 0, dnsNames: [], federatesWith: [], hint: '', expiresAt: null,
    });
    expect(entry.createdAt).toBe(startS);
    const health = server.health;
    expect((await getJson(health.address, health.port, '/ready')).status).toBe(200);
    // two days on, with no rotation check run yet: the CA has expired and /ready says so
    clock.ms = start + 2 * 24 * 3600 * 1000;
    const ready = await getJson(health.address, health.port, '/ready');
    expect(ready.status).toBe(503);
    expect(ready.body.ca).toMatchObject({ x509: 'expired' });
  });
});
