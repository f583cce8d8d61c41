import { readFileSync, realpathSync, statSync } from 'node:fs';
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { failedPrecondition, invalidArgument } from '../../common/errors';
import { x509AuthoritiesFromPem } from '../../common/bundle/bundle';
import { readTrustedFileSync } from '../../common/fs/private-file';
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
  /** Unix seconds at which the upstream certificate expires: no intermediate it signs can live longer. */
  notAfter(): number;
}

interface Loaded {
  /** device, inode, size and mtime of the three files, to notice a renewal */
  stamp: string;
  certDer: Buffer;
  cert: X509Certificate;
  chain: Buffer[];
  key: KeyObject;
  rootCerts: Buffer[];
  notBefore: number;
  notAfter: number;
}

const CERT = 'upstream_authority.cert_file';
const KEY = 'upstream_authority.key_file';
const BUNDLE = 'upstream_authority.bundle_file';

/**
 * `upstream_authority: disk` (as SPIRE's disk UpstreamAuthority): an existing CA's
 * certificate and key on disk. The upstream key is loaded into this process only to
 * sign our intermediate; it is never written anywhere or logged.
 *
 * The key file must be a regular file (symlinks are followed, as for a Kubernetes
 * secret mount, and the file they point to is checked) owned by this uid or root,
 * with no access for group or others: the disk key manager's own rule. The files
 * are re-read whenever one of them changes, so renewing the upstream certificate
 * needs no restart. Every error names the file.
 */
export class DiskUpstreamAuthority implements UpstreamAuthority {
  private loaded: Loaded;
  private failedStamp?: string;

  constructor(
    private readonly opts: { certFile: string; keyFile: string; bundleFile?: string },
    private readonly nowS: () => number = () => Math.floor(Date.now() / 1000),
  ) {
    this.loaded = this.load();
    this.checkUnexpired(this.loaded);
  }

  async mintIntermediate(req: { key: ManagedKey; trustDomain: string; notBefore: number; notAfter: number }) {
    const u = this.current();
    this.checkUnexpired(u);
    const certificateDer = await createIntermediateCA({
      key: req.key,
      upstreamCertDer: u.certDer,
      upstreamKey: u.key,
      trustDomain: req.trustDomain,
      // Within the upstream's own validity: a relying party may check that nesting.
      notBefore: new Date(Math.max(req.notBefore, u.notBefore) * 1000),
      notAfter: new Date(Math.min(req.notAfter, u.notAfter) * 1000),
    });
    // The upstream cert itself is an intermediate unless it is one of the roots.
    const isRoot = u.rootCerts.some((r) => r.equals(u.certDer));
    return { certificateDer, upstreamChain: isRoot ? [...u.chain] : [u.certDer, ...u.chain] };
  }

  roots(): Buffer[] {
    return this.current().rootCerts;
  }

  notAfter(): number {
    return this.current().notAfter;
  }

  /** The files as they are now; a broken renewal keeps the last good set (the error is thrown once per change). */
  private current(): Loaded {
    const stamp = this.stamp();
    if (stamp === this.loaded.stamp || stamp === this.failedStamp) return this.loaded;
    try {
      this.loaded = this.load();
    } catch (e) {
      this.failedStamp = stamp;
      throw e;
    }
    return this.loaded;
  }

  private checkUnexpired(u: Loaded): void {
    if (u.notAfter <= this.nowS()) {
      throw failedPrecondition(`${CERT} ${this.opts.certFile}: the upstream certificate expired at ${new Date(u.notAfter * 1000).toISOString()}; renew it`);
    }
  }

  private stamp(): string {
    return [this.opts.certFile, this.opts.keyFile, this.opts.bundleFile]
      .map((f) => {
        if (!f) return '';
        try {
          const st = statSync(f);
          return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
        } catch {
          return 'missing';
        }
      })
      .join('|');
  }

  private load(): Loaded {
    const stamp = this.stamp();
    const certs = readPemCerts(this.opts.certFile, CERT);
    const certDer = certs[0]!;
    const cert = new X509Certificate(certDer);
    let key: KeyObject;
    let keyPem: Buffer | undefined;
    try {
      keyPem = readTrustedFileSync(realpathSync(this.opts.keyFile), { what: KEY, private: true });
    } catch (e) {
      throw failedPrecondition(`${KEY} ${this.opts.keyFile}: ${(e as Error).message}`);
    }
    if (!keyPem) throw invalidArgument(`${KEY} ${this.opts.keyFile} does not exist`);
    try {
      key = createPrivateKey(keyPem);
    } catch (e) {
      throw invalidArgument(`${KEY} ${this.opts.keyFile}: cannot load a private key (${(e as Error).message})`);
    } finally {
      keyPem.fill(0);
    }
    if (!cert.checkPrivateKey(key)) throw invalidArgument(`${KEY} does not match ${CERT} ${this.opts.certFile}`);
    if (!cert.ca) throw invalidArgument(`${CERT} ${this.opts.certFile} is not a CA certificate (basicConstraints cA is false)`);
    let rootCerts: Buffer[];
    if (this.opts.bundleFile) rootCerts = readPemCerts(this.opts.bundleFile, BUNDLE);
    else if (cert.checkIssued(cert) && cert.verify(cert.publicKey)) rootCerts = [certDer];
    else throw invalidArgument(`${BUNDLE} is required when ${CERT} ${this.opts.certFile} is not a self-signed root`);
    return {
      stamp,
      certDer,
      cert,
      chain: certs.slice(1),
      key,
      rootCerts,
      notBefore: Math.floor(Date.parse(cert.validFrom) / 1000),
      notAfter: Math.floor(Date.parse(cert.validTo) / 1000),
    };
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
