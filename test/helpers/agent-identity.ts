import { generateKeyPair as gen, type KeyObject, X509Certificate } from 'node:crypto';
import { promisify } from 'node:util';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { ServerClient } from '../../agent/client/server-client';
import { createCSR } from '../../common/x509svid/csr';
import { x509AuthoritiesFromPem } from '../../common/bundle/bundle';
import { derToPem } from '../../common/pem';
import { run, type ServerProcess } from './processes';

export const generateKeyPair = async (): Promise<{ privateKey: KeyObject; publicKey: KeyObject }> =>
  (await promisify(gen)('ec', { namedCurve: 'P-256' })) as { privateKey: KeyObject; publicKey: KeyObject };

export async function newCSR(): Promise<{ csr: Buffer; privateKey: KeyObject }> {
  const { privateKey, publicKey } = await generateKeyPair();
  return { csr: await createCSR(privateKey, publicKey), privateKey };
}

/** A ServerClient trusting the bundle the CLI prints (as an operator would bootstrap an agent). */
export async function clientFor(server: ServerProcess): Promise<ServerClient> {
  const pem = await server.cli(['bundle', 'show', '--format', 'pem']);
  return new ServerClient(server.agentApi, server.trustDomain, x509AuthoritiesFromPem(pem));
}

/** Generates a join token with the CLI and attests with it; returns a client using the agent SVID. */
export async function attestedAgent(server: ServerProcess, extraArgs: string[] = []) {
  const out = await server.cli(['token', 'generate', ...extraArgs]);
  const token = /^Token: (\S+)$/m.exec(out)![1]!;
  const client = await clientFor(server);
  const { csr, privateKey } = await newCSR();
  const svid = await client.attestJoinToken(token, csr);
  client.setIdentity(svid.chain, privateKey);
  return { client, svid, token, privateKey };
}

export function uriSan(der: Buffer): string[] {
  return (new X509Certificate(der).subjectAltName ?? '')
    .split(', ')
    .filter((s) => s.startsWith('URI:'))
    .map((s) => s.slice(4));
}

/** `openssl verify` of a chain (leaf first) against roots, now or at `atUnix`; resolves with openssl's exit code and output. */
export async function opensslVerify(dir: string, chain: Buffer[], roots: Buffer[], name = 'v', atUnix?: number): Promise<{ code: number; out: string }> {
  const leaf = path.join(dir, `${name}-leaf.pem`);
  const inter = path.join(dir, `${name}-inter.pem`);
  const ca = path.join(dir, `${name}-ca.pem`);
  writeFileSync(leaf, derToPem(chain[0]!));
  writeFileSync(ca, roots.map((r) => derToPem(r)).join(''));
  const args = ['verify', '-CAfile', ca];
  if (atUnix !== undefined) args.push('-attime', String(Math.floor(atUnix)));
  if (chain.length > 1) {
    writeFileSync(inter, chain.slice(1).map((c) => derToPem(c)).join(''));
    args.push('-untrusted', inter);
  }
  args.push(leaf);
  const r = await run('openssl', args);
  return { code: r.code, out: r.stdout + r.stderr };
}
