import 'reflect-metadata';
import { generateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';
import { ServerClient } from '../../agent/client/server-client';
import { AdminClient } from '../../cli/admin-client';
import { createCSR } from '../../common/x509svid/csr';

/**
 * A load generator process: simulated agents that keep asking servers for SVIDs.
 *
 * Each simulated agent is a real ServerClient (the agent's own client: its own
 * join-token attestation, agent SVID, mTLS connection and failover between the
 * given addresses) with one registration entry; it asks for `batch` SVIDs of that
 * entry per request, again and again, until the process gets SIGTERM. Several of
 * these processes load several servers beyond what one process's TLS clients
 * can (the agents bench in one process is bounded by its own CPU).
 *
 * Run as `node dist/test/load/svid-load.js '<json options>'`. It prints one JSON
 * line when its agents are attested (`{"ready":true}`), then every 250 ms and once
 * more on SIGTERM `{"signed":N,"failed":N,"errors":{code:N}}` (totals so far).
 */
export interface LoadOptions {
  /** agent API addresses, in the order the simulated agents try them */
  addresses: string[];
  trustDomain: string;
  /** an admin socket of one server: join tokens, entries and the bundle come from it */
  adminSocket: string;
  agents: number;
  /** SVIDs per request (the real agent batches up to 500) */
  batch: number;
}

const gen = promisify(generateKeyPair);

async function main(opts: LoadOptions): Promise<void> {
  const admin = new AdminClient(opts.adminSocket);
  const bundle = await admin.request<{ keys: Array<{ use: string; x5c?: string[] }> }>('GET', '/v1/bundle?format=spiffe');
  const roots = bundle.keys.filter((k) => k.use === 'x509-svid' && k.x5c?.[0]).map((k) => Buffer.from(k.x5c![0]!, 'base64'));
  const run = `${process.pid}`;
  const agents: Array<{ client: ServerClient; entryId: string; csr: Buffer }> = [];
  for (let i = 0; i < opts.agents; i++) {
    const key = await gen('ec', { namedCurve: 'P-256' });
    const csr = await createCSR(key.privateKey, key.publicKey);
    const { token } = await admin.request<{ token: string }>('POST', '/v1/join-tokens', {});
    const client = new ServerClient(opts.addresses, opts.trustDomain, roots);
    const svid = await client.attestJoinToken(token, csr);
    client.setIdentity(svid.chain, key.privateKey);
    const created = await admin.request<{ entries: Array<{ id: string }> }>('POST', '/v1/entries', {
      entries: [{ spiffe_id: `spiffe://${opts.trustDomain}/load/${run}/${i}`, parent_id: svid.agentId, selectors: [`unix:uid:${i}`] }],
    });
    agents.push({ client, entryId: created.entries[0]!.id, csr });
  }
  let signed = 0;
  let failed = 0;
  const errors: Record<string, number> = {};
  const report = () => process.stdout.write(JSON.stringify({ signed, failed, errors }) + '\n');
  let running = true;
  const loops = agents.map(async (a) => {
    const items = Array.from({ length: opts.batch }, () => ({ entryId: a.entryId, csr: a.csr }));
    while (running) {
      try {
        const r = await a.client.signX509SVIDs(items);
        for (const x of r.results) {
          if ('error' in x) {
            failed++;
            errors[x.error.code] = (errors[x.error.code] ?? 0) + 1;
          } else signed++;
        }
      } catch (err) {
        failed += items.length;
        const code = (err as { code?: string }).code ?? 'UNKNOWN';
        errors[code] = (errors[code] ?? 0) + items.length;
        await new Promise((r) => setTimeout(r, 50)); // a server down: do not spin
      }
    }
  });
  process.stdout.write(JSON.stringify({ ready: true }) + '\n');
  const timer = setInterval(report, 250);
  process.once('SIGTERM', () => {
    running = false;
    clearInterval(timer);
    void Promise.race([Promise.all(loops), new Promise((r) => setTimeout(r, 5000))]).then(() => {
      report();
      for (const a of agents) a.client.close();
      process.exit(0);
    });
  });
}

if (require.main === module) {
  main(JSON.parse(process.argv[2] ?? '{}') as LoadOptions).catch((err) => {
    process.stderr.write(`svid-load: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  });
}
