import type { Command } from 'commander';
import { generateKeyPair as generateKeyPairCb, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../common/fs/private-file';
import { outputDir } from './output-dir';
import path from 'node:path';
import { promisify } from 'node:util';
import type { AdminClient } from './admin-client';
import { json, kv, ts, type Out } from './output';
import { createCSR } from '../common/x509svid/csr';
import { derToPem } from '../common/pem';

const generateKeyPair = promisify(generateKeyPairCb);
const collect = (v: string, prev: string[] = []) => [...prev, v];
const int = (v: string) => {
  if (!/^\d+$/.test(v)) throw new Error(`"${v}" is not a non-negative integer`);
  return Number(v);
};

interface AgentJSON {
  spiffe_id: string;
  attestation_type: string;
  serial_number: string;
  expires_at: number;
  selectors: Array<{ type: string; value: string }>;
  banned: boolean;
}

const formatAgent = (a: AgentJSON) =>
  kv([
    ['SPIFFE ID', a.spiffe_id],
    ['Attestation type', a.attestation_type],
    ['Expiration time', ts(a.expires_at)],
    ['Serial number', a.serial_number],
    ['Banned', String(a.banned)],
    ...a.selectors.map((s): [string, string] => ['Selector', `${s.type}:${s.value}`]),
  ]);


export function registerAdminCommands(program: Command, client: () => AdminClient, out: () => Out): Command {
  program
    .command('token')
    .description('join tokens')
    .command('generate')
    .description('generate a one-time join token for an agent')
    .option('--spiffe-id <ID>', 'also known as this ID (a node alias entries can name as parent)')
    .option('--ttl <S>', 'seconds the token stays valid', int)
    .action(async (o) => {
      const r = await client().request<{ token: string; agent_id: string; expires_at: number; spiffe_id: string | null }>('POST', '/v1/join-tokens', {
        ttl: o.ttl,
        spiffe_id: o.spiffeId,
      });
      if (out().format === 'json') return json(out(), r);
      out().write(`Token: ${r.token}\n`);
    });

  const agent = program.command('agent').description('manage attested agents (and run one: `tessera agent run`)');
  agent
    .command('list')
    .description('list attested agents')
    .action(async () => {
      const all: AgentJSON[] = [];
      for (let token: string | null = ''; token !== null; ) {
        const r: { agents: AgentJSON[]; next_page_token: string | null } = await client().request(
          'GET',
          `/v1/agents?page_size=1000${token ? `&page_token=${encodeURIComponent(token)}` : ''}`,
        );
        all.push(...r.agents);
        token = r.next_page_token;
      }
      if (out().format === 'json') return json(out(), { agents: all });
      out().write(`Found ${all.length} attested agent${all.length === 1 ? '' : 's'}\n\n`);
      for (const a of all) out().write(formatAgent(a) + '\n\n');
    });
  for (const [verb, desc, method] of [
    ['show', 'show one attested agent', 'GET'],
    ['evict', 'evict an agent: it must attest again (a join-token agent needs a new token)', 'POST'],
    ['ban', 'ban an agent: it is refused, and cannot attest again until evicted', 'POST'],
  ] as const) {
    agent
      .command(verb)
      .description(desc)
      .requiredOption('--spiffe-id <ID>', 'the agent SPIFFE ID')
      .action(async (o) => {
        const suffix = verb === 'show' ? '' : `/${verb}`;
        const r = await client().request<{ agent: AgentJSON }>(method, `/v1/agents/${encodeURIComponent(o.spiffeId)}${suffix}`);
        if (out().format === 'json') return json(out(), r.agent);
        if (verb !== 'show') out().write(`Agent ${verb === 'evict' ? 'evicted' : 'banned'} successfully\n`);
        else out().write(formatAgent(r.agent) + '\n');
      });
  }

  const bundle = program.command('bundle').description('trust bundles');
  bundle
    .command('show')
    .description("show this trust domain's bundle")
    .option('--format <F>', 'pem or spiffe', 'pem')
    .action(async (o) => {
      const r = await client().raw('GET', `/v1/bundle?format=${encodeURIComponent(o.format)}`);
      if (r.status >= 400) throw new Error((JSON.parse(r.text) as { error: { message: string } }).error.message);
      out().write(r.text.endsWith('\n') ? r.text : r.text + '\n');
    });
  bundle
    .command('list')
    .description('list federated bundles')
    .action(async () => {
      const r = await client().request<{ bundles: Array<{ trust_domain: string; sequence: number }> }>('GET', '/v1/federated-bundles');
      if (out().format === 'json') return json(out(), r);
      for (const b of r.bundles) out().write(kv([['Trust domain', b.trust_domain], ['Sequence', b.sequence]]) + '\n\n');
    });
  bundle
    .command('set')
    .description('set a federated trust domain bundle from a SPIFFE bundle JSON file')
    .requiredOption('--id <TD>', 'the foreign trust domain (name or spiffe://name)')
    .requiredOption('--path <FILE>', 'SPIFFE bundle JSON file')
    .action(async (o) => {
      const doc = JSON.parse(readFileSync(o.path, 'utf8')) as unknown;
      const r = await client().request('PUT', `/v1/federated-bundles/${encodeURIComponent(o.id)}`, doc);
      if (out().format === 'json') return json(out(), r);
      out().write('bundle set\n');
    });
  bundle
    .command('delete')
    .description('delete a federated bundle')
    .requiredOption('--id <TD>', 'the foreign trust domain')
    .action(async (o) => {
      const r = await client().request('DELETE', `/v1/federated-bundles/${encodeURIComponent(o.id)}`);
      if (out().format === 'json') return json(out(), r);
      out().write('bundle deleted\n');
    });

  program
    .command('x509')
    .description('X.509-SVIDs')
    .command('mint')
    .description('mint an X.509-SVID; the key is generated here and never sent')
    .requiredOption('--spiffe-id <ID>', 'the SPIFFE ID')
    .option('--ttl <S>', 'lifetime in seconds', int)
    .option('--dns <NAME>', 'DNS SAN (repeat for more)', collect)
    .option('--write <DIR>', 'write svid.pem, key.pem and bundle.pem into DIR')
    .action(async (o) => {
      const { privateKey, publicKey } = await generateKeyPair('ec', { namedCurve: 'P-256' });
      const csr = await createCSR(privateKey as KeyObject, publicKey as KeyObject);
      const r = await client().request<{ spiffe_id: string; x509_svid: string[]; expires_at: number; bundle_pem: string }>('POST', '/v1/svids/x509', {
        spiffe_id: o.spiffeId,
        csr: csr.toString('base64'),
        ttl: o.ttl,
        dns_names: o.dns,
      });
      const chainPem = r.x509_svid.map((c) => derToPem(Buffer.from(c, 'base64'))).join('');
      const keyPem = (privateKey as KeyObject).export({ format: 'pem', type: 'pkcs8' }) as string;
      if (o.write) {
        const dir = outputDir(o.write);
        await writeFileAtomic(path.join(dir, 'svid.pem'), chainPem, 0o644);
        await writeFileAtomic(path.join(dir, 'key.pem'), keyPem, 0o600);
        await writeFileAtomic(path.join(dir, 'bundle.pem'), r.bundle_pem, 0o644);
      }
      if (out().format === 'json') {
        return json(out(), { spiffe_id: r.spiffe_id, expires_at: r.expires_at, x509_svid: r.x509_svid, written_to: o.write ?? null });
      }
      if (o.write) {
        out().write(`X509-SVID for ${r.spiffe_id} (expires ${ts(r.expires_at)}) written to ${path.join(o.write, 'svid.pem')}\n`);
        out().write(`Private key written to ${path.join(o.write, 'key.pem')}\nBundle written to ${path.join(o.write, 'bundle.pem')}\n`);
      } else {
        // Without --write the key goes to stdout, as spire-server x509 mint does.
        out().write(`X509-SVID:\n${chainPem}Private key:\n${keyPem}Root CAs:\n${r.bundle_pem}`);
      }
    });

  program
    .command('jwt')
    .description('JWT-SVIDs')
    .command('mint')
    .description('mint a JWT-SVID and print it')
    .requiredOption('--spiffe-id <ID>', 'the SPIFFE ID (sub)')
    .requiredOption('--audience <A>', 'audience (repeat for more)', collect)
    .option('--ttl <S>', 'lifetime in seconds', int)
    .action(async (o) => {
      const r = await client().request<{ token: string; expires_at: number; spiffe_id: string }>('POST', '/v1/svids/jwt', {
        spiffe_id: o.spiffeId,
        audience: o.audience,
        ttl: o.ttl,
      });
      if (out().format === 'json') return json(out(), r);
      out().write(r.token + '\n');
    });

  program
    .command('healthcheck')
    .description('check that the server is up and ready (exit 0) or not (exit 1)')
    .option('--shallow', 'only check that the server answers')
    .action(async (o) => {
      const r = await client().raw('GET', '/v1/health');
      const ok = o.shallow ? r.status > 0 : r.status === 200;
      if (out().format === 'json') json(out(), { healthy: ok });
      else out().write(ok ? 'Server is healthy.\n' : 'Server is unhealthy.\n');
      if (!ok) process.exitCode = 1;
    });

  return agent;
}
