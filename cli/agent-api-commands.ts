import type { Command } from 'commander';
import { X509Certificate } from 'node:crypto';
import path from 'node:path';
import type { WorkloadAPIClient, X509Context } from '../sdk/workloadapi/client';
import { defaultClientSocket } from '../common/fs/runtime-paths';
import { assertTrustedSocketDir } from '../common/fs/trusted-socket';
import { outputDir } from './output-dir';
import { writeFileAtomic } from '../common/fs/private-file';
import { derToPem } from '../common/pem';
import { json, type Out } from './output';

/**
 * --socket PATH, else SPIFFE_ENDPOINT_SOCKET (unix:///path or tcp://IP:PORT), else
 * the default socket (root's agent under /run/tessera when it exists, else this
 * user's), whose directory must then pass the ownership check.
 */
export function workloadEndpoint(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  const explicit = flag ?? (env.SPIFFE_ENDPOINT_SOCKET || undefined);
  if (explicit) return explicit;
  const socket = defaultClientSocket('agent');
  assertTrustedSocketDir(socket, 'workload api socket');
  return socket;
}

const pkcs8Pem = (der: Buffer) => derToPem(der, 'PRIVATE KEY');

function describeX509(ctx: X509Context, ms: number): string {
  const lines = [`Received ${ctx.svids.length} svid${ctx.svids.length === 1 ? '' : 's'} after ${ms.toFixed(1)}ms`, ''];
  for (const s of ctx.svids) {
    const leaf = new X509Certificate(s.chain[0]!);
    lines.push(`SPIFFE ID:\t\t${s.spiffeId}`);
    if (s.hint) lines.push(`Hint:\t\t\t${s.hint}`);
    lines.push(`SVID Valid After:\t${leaf.validFrom}`, `SVID Valid Until:\t${leaf.validTo}`);
    s.chain.slice(1).forEach((c, i) => {
      const x = new X509Certificate(c);
      lines.push(`Intermediate #${i + 1} Valid After:\t${x.validFrom}`, `Intermediate #${i + 1} Valid Until:\t${x.validTo}`);
    });
    s.bundle.forEach((c, i) => {
      const x = new X509Certificate(c);
      lines.push(`CA #${i + 1} Valid After:\t${x.validFrom}`, `CA #${i + 1} Valid Until:\t${x.validTo}`);
    });
    lines.push('');
  }
  for (const [td, certs] of ctx.federatedBundles) lines.push(`[federated] ${td}: ${certs.length} CA certificate(s)`);
  return lines.join('\n') + '\n';
}

/** spire-agent's file names: svid.N.pem (chain), svid.N.key (PKCS#8), bundle.N.pem, federated_bundle.N.M.pem. */
async function writeX509(dirArg: string, ctx: X509Context, out: Out): Promise<void> {
  const dir = outputDir(dirArg);
  for (const [i, s] of ctx.svids.entries()) {
    await writeFileAtomic(path.join(dir, `svid.${i}.pem`), s.chain.map((c) => derToPem(c)).join(''), 0o644);
    await writeFileAtomic(path.join(dir, `svid.${i}.key`), pkcs8Pem(s.privateKey), 0o600);
    await writeFileAtomic(path.join(dir, `bundle.${i}.pem`), s.bundle.map((c) => derToPem(c)).join(''), 0o644);
    let j = 0;
    for (const certs of ctx.federatedBundles.values()) {
      await writeFileAtomic(path.join(dir, `federated_bundle.${i}.${j++}.pem`), certs.map((c) => derToPem(c)).join(''), 0o644);
    }
    if (out.format === 'pretty') out.write(`Writing SVID #${i} to file ${path.join(dir, `svid.${i}.pem`)}.\nWriting key #${i} to file ${path.join(dir, `svid.${i}.key`)}.\nWriting bundle #${i} to file ${path.join(dir, `bundle.${i}.pem`)}.\n`);
  }
}

const x509JSON = (ctx: X509Context) => ({
  svids: ctx.svids.map((s) => {
    const leaf = new X509Certificate(s.chain[0]!);
    return {
      spiffe_id: s.spiffeId,
      hint: s.hint,
      serial: leaf.serialNumber.toLowerCase(),
      not_before: leaf.validFrom,
      not_after: leaf.validTo,
      x509_svid: s.chain.map((c) => c.toString('base64')),
      bundle: s.bundle.map((c) => c.toString('base64')),
    };
  }),
  federated_bundles: Object.fromEntries([...ctx.federatedBundles].map(([td, c]) => [td, c.map((d) => d.toString('base64'))])),
});

/**
 * The Workload API client, loaded when a verb runs: it brings grpc-js and the
 * protobuf loader (~70 ms), which every other `tessera` command, `agent run`
 * first of all, would otherwise load at start-up for nothing.
 */
const workloadClient = async () => (await import('../sdk/workloadapi/client')).WorkloadAPIClient;

/** `tessera agent api fetch x509|jwt`, `api validate jwt`, `api watch` (the spire-agent verbs). */
export function registerAgentApiCommands(agent: Command, env: NodeJS.ProcessEnv, out: () => Out): void {
  const api = agent.command('api').description('talk to the local Workload API as a workload would');
  const withClient = async <T>(o: { socket?: string; timeout?: string }, fn: (c: WorkloadAPIClient) => Promise<T>): Promise<T> => {
    const c = new (await workloadClient())(workloadEndpoint(o.socket, env), { timeoutMs: Number(o.timeout ?? 10) * 1000 });
    try {
      return await fn(c);
    } finally {
      c.close();
    }
  };
  const socketOpt = (c: Command) =>
    c.option('--socket <PATH>', 'Workload API socket (else SPIFFE_ENDPOINT_SOCKET, else /run/tessera/agent/public/api.sock, else /tmp/tessera-<uid>/agent/public/api.sock)').option('--timeout <S>', 'seconds to wait', '10');

  const fetch = api.command('fetch').description('fetch SVIDs');
  socketOpt(fetch.command('x509').description('fetch X.509-SVIDs'))
    .option('--write <DIR>', 'write svid.N.pem, svid.N.key and bundle.N.pem into DIR')
    .option('--silent', 'print nothing (with --write)')
    .action(async (o) => {
      const t0 = performance.now();
      const ctx = await withClient(o, (c) => c.fetchX509SVIDs());
      const ms = performance.now() - t0;
      if (o.write) await writeX509(o.write, ctx, o.silent ? { ...out(), format: 'json', write: () => undefined } : out());
      if (o.silent) return;
      if (out().format === 'json') return json(out(), x509JSON(ctx));
      out().write(describeX509(ctx, ms));
    });

  socketOpt(fetch.command('jwt').description('fetch JWT-SVIDs'))
    .requiredOption('--audience <A...>', 'audience(s)')
    .option('--spiffe-id <ID>', 'only this identity')
    .action(async (o) => {
      const { svids, bundles } = await withClient(o, async (c) => ({ svids: await c.fetchJWTSVIDs(o.audience, o.spiffeId), bundles: await c.fetchJWTBundles() }));
      if (out().format === 'json') {
        return json(out(), { svids: svids.map((s) => ({ spiffe_id: s.spiffeId, hint: s.hint, token: s.token })), bundles: [...bundles.keys()] });
      }
      for (const s of svids) out().write(`token(${s.spiffeId}):\n\t${s.token}\n`);
      for (const td of bundles.keys()) out().write(`bundle(spiffe://${td}): ${bundles.get(td)!.jwtAuthorities.length} key(s)\n`);
    });

  const validate = api.command('validate').description('validate SVIDs');
  socketOpt(validate.command('jwt').description('validate a JWT-SVID through the agent'))
    .requiredOption('--audience <A>', 'the audience the token must be for')
    .requiredOption('--svid <TOKEN>', 'the JWT-SVID')
    .action(async (o) => {
      const r = await withClient(o, (c) => c.validateJWTSVID(o.svid, o.audience));
      if (out().format === 'json') return json(out(), { spiffe_id: r.spiffeId, claims: r.claims });
      out().write(`SVID is valid.\nSPIFFE ID : ${r.spiffeId}\nClaims    : ${JSON.stringify(r.claims)}\n`);
    });

  socketOpt(api.command('watch').description('print every X.509-SVID update until interrupted')).action(async (o) => {
    const c = new (await workloadClient())(workloadEndpoint(o.socket, env));
    await new Promise<void>((resolve, reject) => {
      let t0 = performance.now();
      const stop = c.watchX509SVIDs(
        (ctx) => {
          if (out().format === 'json') json(out(), x509JSON(ctx));
          else out().write(describeX509(ctx, performance.now() - t0));
          t0 = performance.now();
        },
        (err) => {
          c.close();
          reject(err);
        },
      );
      const quit = () => {
        stop();
        c.close();
        resolve();
      };
      process.once('SIGINT', quit);
      process.once('SIGTERM', quit);
    });
  });
}
