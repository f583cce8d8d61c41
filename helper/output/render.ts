import { derToPem } from '../../common/pem';
import { jwtBundleJwks, type SpiffeBundle } from '../../common/bundle/bundle';
import type { X509SVIDWithKey } from '../../sdk/source/x509-source';
import type { HelperConfig } from '../config';
import type { OutputFile } from './snapshot-dir';
import { pkcs12Keystore, pkcs12Truststore } from './pkcs12';

/** What the helper holds at a moment; each part is there once it first arrived. */
export interface HelperState {
  svid?: X509SVIDWithKey;
  /** X.509 bundles by bare trust domain (own and federated) */
  x509Bundles?: ReadonlyMap<string, Buffer[]>;
  jwtBundles?: ReadonlyMap<string, SpiffeBundle>;
  /** by file name */
  jwtTokens: Map<string, string>;
  /** access tokens from token exchanges, by file name */
  accessTokens: Map<string, string>;
  pkcs12Password?: string;
}

const pem = (ders: readonly Buffer[]) => ders.map((d) => derToPem(d)).join('');

/**
 * The files of one version, from the state; `missing` names what is configured
 * but not there yet (for `--once` and /ready). PKCS#12 files are made only when
 * the X.509 part changed (their encryption is salted: equal input gives other bytes).
 */
export function renderFiles(c: HelperConfig, s: HelperState, previous?: Map<string, OutputFile>): { files: OutputFile[]; missing: string[] } {
  const files: OutputFile[] = [];
  const missing: string[] = [];
  const cert = (name: string, data: string | Buffer) => name && files.push({ name, data, mode: c.certFileMode });
  const secret = (name: string, data: string | Buffer) => name && files.push({ name, data, mode: c.keyFileMode });
  const wantsX509 = Boolean(c.x509.certFile || c.x509.keyFile || c.x509.bundleFile || c.x509.combinedFile || c.pkcs12);
  if (wantsX509) {
    if (!s.svid || !s.x509Bundles) missing.push('x509-svid');
    else {
      const own = s.x509Bundles.get(s.svid.trustDomain) ?? s.svid.bundle;
      const bundle = c.x509.includeFederated ? [...own, ...[...s.x509Bundles].filter(([td]) => td !== s.svid!.trustDomain).flatMap(([, b]) => b)] : own;
      cert(c.x509.certFile, pem(s.svid.chain));
      secret(c.x509.keyFile, derToPem(s.svid.privateKey, 'PRIVATE KEY'));
      cert(c.x509.bundleFile, pem(bundle));
      secret(c.x509.combinedFile, derToPem(s.svid.privateKey, 'PRIVATE KEY') + pem(s.svid.chain));
      if (c.pkcs12) {
        if (s.pkcs12Password === undefined) missing.push('pkcs12 password');
        else {
          const key = `${s.svid.chain[0]!.toString('base64')}|${pem(bundle)}`;
          const prevKs = previous?.get(c.pkcs12.keystoreFile);
          const prevTs = previous?.get(c.pkcs12.truststoreFile);
          const same = prevKs?.source === key && prevTs?.source === key;
          files.push({ name: c.pkcs12.keystoreFile, mode: c.keyFileMode, data: same ? prevKs.data : pkcs12Keystore(s.svid.privateKey, s.svid.chain, s.pkcs12Password, c.pkcs12.alias), source: key });
          files.push({ name: c.pkcs12.truststoreFile, mode: c.certFileMode, data: same ? prevTs!.data : pkcs12Truststore(bundle, s.pkcs12Password, 'spiffe'), source: key });
        }
      }
    }
  }
  for (const j of c.jwtSvids) {
    const t = s.jwtTokens.get(j.file);
    if (t === undefined) missing.push(`jwt-svid for ${j.audience.join(',')}`);
    else secret(j.file, t);
  }
  for (const t of c.tokenExchanges) {
    const a = s.accessTokens.get(t.file);
    if (a === undefined) missing.push(`access token from ${new URL(t.tokenEndpoint).origin}`);
    else secret(t.file, a);
  }
  if (c.jwtBundleFile) {
    if (!s.jwtBundles) missing.push('jwt bundle');
    else {
      const out: Record<string, unknown> = {};
      for (const [td, b] of [...s.jwtBundles].sort(([a], [b]) => a.localeCompare(b))) out[td] = JSON.parse(jwtBundleJwks(b));
      cert(c.jwtBundleFile, JSON.stringify(out, null, 2) + '\n');
    }
  }
  return { files, missing };
}

/** Whether two versions have the same names, modes and bytes. */
export function sameFiles(a: readonly OutputFile[], b: ReadonlyMap<string, OutputFile> | undefined): boolean {
  if (!b || a.length !== b.size) return false;
  return a.every((f) => {
    const o = b.get(f.name);
    return o !== undefined && o.mode === f.mode && Buffer.from(o.data).equals(Buffer.from(f.data));
  });
}
