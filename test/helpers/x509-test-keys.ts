import { execFile } from 'node:child_process';
import { X509Certificate, generateKeyPair, sign, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { KeyType, ManagedKey } from '../../server/keymanager/keymanager';

/**
 * Test-only helpers for X.509 tests: an in-memory ManagedKey over an async-generated
 * KeyObject (never generateKeyPairSync: on Node 20 a later JWK export of such a key can hang the process) and an `openssl verify` runner.
 */
export type TestKey = ManagedKey & { privateKey: KeyObject };

const gen = promisify(generateKeyPair);

export async function makeTestKey(type: KeyType, id: string = type): Promise<TestKey> {
  const { publicKey, privateKey } =
    type === 'rsa-2048'
      ? await gen('rsa', { modulusLength: 2048 })
      : await gen('ec', { namedCurve: type === 'ec-p256' ? 'P-256' : 'P-384' });
  const hash = type === 'ec-p384' ? 'sha384' : 'sha256';
  return {
    id,
    type,
    publicKey,
    privateKey,
    publicKeySpki: publicKey.export({ type: 'spki', format: 'der' }),
    sign: (data, dsaEncoding = 'der') => sign(hash, data, { key: privateKey, dsaEncoding }),
  };
}

export const toPem = (der: Buffer): string => new X509Certificate(der).toString();

/**
 * Runs `openssl verify -x509_strict -purpose any` on `leaf` with `roots` as the CA file and
 * `intermediates` as untrusted certificates. Resolves with openssl's exit
 * status and output (never rejects on a verification failure).
 */
export async function opensslVerify(roots: Buffer[], intermediates: Buffer[], leaf: Buffer, extraArgs: string[] = []): Promise<{ ok: boolean; output: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-x509-'));
  try {
    writeFileSync(join(dir, 'bundle.pem'), roots.map(toPem).join(''));
    writeFileSync(join(dir, 'leaf.pem'), toPem(leaf));
    const args = ['verify', '-x509_strict', '-CAfile', join(dir, 'bundle.pem'), '-purpose', 'any', ...extraArgs];
    if (intermediates.length) {
      writeFileSync(join(dir, 'untrusted.pem'), intermediates.map(toPem).join(''));
      args.push('-untrusted', join(dir, 'untrusted.pem'));
    }
    args.push(join(dir, 'leaf.pem'));
    try {
      const { stdout, stderr } = await promisify(execFile)('openssl', args);
      return { ok: true, output: stdout + stderr };
    } catch (e) {
      const err = e as { stdout?: string; stderr?: string };
      return { ok: false, output: `${err.stdout ?? ''}${err.stderr ?? ''}` };
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
