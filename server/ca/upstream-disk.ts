import { readFileSync } from 'node:fs';
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { invalidArgument } from '../../common/errors';
import { x509AuthoritiesFromPem } from '../../common/bundle/bundle';
import type { ManagedKey } from '../keymanager/keymanager';
import { createIntermediateCA } from './ca-certificates';

/** An upstream authority signs our CA certificate, making it an intermediate. */
export interface UpstreamAuthority {
  mintIntermediate(req: { key: ManagedKey; trustDomain: string; notBefore: number; notAfter: number }): Promise<{
    certificateDer: Buffer;
    /** upstream intermediates between our CA and a root (not the root), nearest first */
    upstreamChain: Buffer[];
  }>;
  /** The roots relying parties trust: these go into the trust bundle. */
  roots(): Buffer[];
}

/**
 * `upstream_authority: disk` (as SPIRE's disk UpstreamAuthority): an existing CA's
 * certificate and key on disk. The upstream key is loaded into this process only to
 * sign our intermediate; it is never written anywhere or logged.
 */
export class DiskUpstreamAuthority implements UpstreamAuthority {
  private readonly certDer: Buffer;
  private readonly chain: Buffer[];
  private readonly key: KeyObject;
  private readonly rootCerts: Buffer[];

  constructor(opts: { certFile: string; keyFile: string; bundleFile?: string }) {
    const certs = readPemCerts(opts.certFile, 'upstream_authority.cert_file');
    this.certDer = certs[0]!;
    this.chain = certs.slice(1);
    try {
      this.key = createPrivateKey(readFileSync(opts.keyFile));
    } catch (e) {
      throw invalidArgument(`upstream_authority.key_file ${opts.keyFile}: cannot load a private key (${(e as Error).message})`);
    }
    const cert = new X509Certificate(this.certDer);
    if (!cert.checkPrivateKey(this.key)) {
      throw invalidArgument('upstream_authority.key_file does not match upstream_authority.cert_file');
    }
    if (!cert.ca) throw invalidArgument('upstream_authority.cert_file is not a CA certificate (basicConstraints cA is false)');
    if (opts.bundleFile) {
      this.rootCerts = readPemCerts(opts.bundleFile, 'upstream_authority.bundle_file');
    } else if (cert.checkIssued(cert) && cert.verify(cert.publicKey)) {
      this.rootCerts = [this.certDer];
    } else {
      throw invalidArgument('upstream_authority.bundle_file is required when cert_file is not a self-signed root');
    }
  }

  async mintIntermediate(req: { key: ManagedKey; trustDomain: string; notBefore: number; notAfter: number }) {
    const upstreamNotAfter = Math.floor(new Date(new X509Certificate(this.certDer).validTo).getTime() / 1000);
    const certificateDer = await createIntermediateCA({
      key: req.key,
      upstreamCertDer: this.certDer,
      upstreamKey: this.key,
      trustDomain: req.trustDomain,
      notBefore: new Date(req.notBefore * 1000),
      notAfter: new Date(Math.min(req.notAfter, upstreamNotAfter) * 1000),
    });
    // The upstream cert itself is an intermediate unless it is one of the roots.
    const isRoot = this.rootCerts.some((r) => r.equals(this.certDer));
    return { certificateDer, upstreamChain: isRoot ? [...this.chain] : [this.certDer, ...this.chain] };
  }

  roots(): Buffer[] {
    return this.rootCerts;
  }
}

function readPemCerts(file: string, key: string): Buffer[] {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (e) {
    throw invalidArgument(`${key} ${file}: ${(e as Error).message}`);
  }
  const certs = x509AuthoritiesFromPem(pem);
  if (certs.length === 0) throw invalidArgument(`${key} ${file} holds no PEM certificate`);
  return certs;
}
