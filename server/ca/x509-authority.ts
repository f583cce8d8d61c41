import { X509Certificate } from 'node:crypto';
import { TesseraError } from '../../common/errors';
import type { CAJournalEntry } from '../datastore/datastore';
import type { KeyType, ManagedKey } from '../keymanager/keymanager';
import { createSelfSignedCA } from './ca-certificates';
import { readCertificateInfo } from './certificate-info';
import type { NewSlot, SlotMaterial } from './authority-slots';
import type { UpstreamAuthority } from './upstream-disk';
import { X509SVIDTemplate } from './x509-leaf-template';
import { certificateValidity } from '../../common/x509svid/certificate-validity';

/** X.509-SVID backdating, as SPIRE: tolerates clock skew between issuer and relying parties. */
export const NOT_BEFORE_BACKDATE_SECONDS = 10;

/**
 * CA certificates are backdated by an hour: a server whose clock is stepped back
 * by less than that keeps signing with a CA that is valid at its clock (a larger
 * step makes the CA "not valid yet", and the rotation rules replace it, see
 * rotation.ts). Backdating widens nothing that matters: the CA's notAfter, and
 * so every SVID's, is unchanged, and SVIDs carry their own notBefore.
 */
export const CA_NOT_BEFORE_BACKDATE_SECONDS = 3600;

/** An X.509 CA slot ready to sign. */
export interface X509Signer {
  slot: CAJournalEntry;
  template: X509SVIDTemplate;
  /** the CA key (signing workers of this process build their own template over it) */
  key: ManagedKey;
  /** certificates sent after the leaf: our CA cert when it is an intermediate, plus upstream intermediates */
  chainTail: Buffer[];
  notAfter: number;
  /** the CA certificate's notBefore (unix s): nothing is signed before it */
  validFrom: number;
}

/**
 * The X.509 CA's key material: a self-signed root, or an intermediate signed by
 * the upstream authority (each rotation asks the upstream for a new one). The
 * slot's `kid` is the CA certificate's subject key identifier (hex), which is the
 * authority key identifier of every SVID it signs: that is how agents find the
 * SVIDs of a tainted CA.
 */
export function x509Material(cfg: { trustDomain: string; caKeyType: KeyType; caTtl: number; organization: string; upstream?: UpstreamAuthority }): SlotMaterial<X509Signer> {
  return {
    kind: 'x509',
    keyType: cfg.caKeyType,
    async create(key: ManagedKey, now: number): Promise<NewSlot> {
      const notBefore = now - CA_NOT_BEFORE_BACKDATE_SECONDS;
      const notAfter = now + cfg.caTtl;
      let certDer: Buffer;
      let upstreamChain: Buffer | null = null;
      if (cfg.upstream) {
        const r = await cfg.upstream.mintIntermediate({ key, trustDomain: cfg.trustDomain, notBefore, notAfter });
        certDer = r.certificateDer;
        upstreamChain = Buffer.concat(r.upstreamChain);
      } else {
        certDer = await createSelfSignedCA({
          key,
          trustDomain: cfg.trustDomain,
          notBefore: new Date(notBefore * 1000),
          notAfter: new Date(notAfter * 1000),
          organization: cfg.organization,
        });
      }
      const cert = new X509Certificate(certDer);
      return {
        certificateDer: certDer,
        upstreamChainDer: upstreamChain,
        publicJwk: null,
        kid: x509KeyId(certDer),
        // Rotation times count from issuance: the certificate's backdating is clock-step
        // tolerance, and would move prepare and activate earlier.
        notBefore: now,
        // the upstream may have capped it at its own expiry
        notAfter: Math.floor(new Date(cert.validTo).getTime() / 1000),
      };
    },
    signer(slot: CAJournalEntry, key: ManagedKey): X509Signer {
      const caCertDer = slot.certificateDer!;
      const template = new X509SVIDTemplate({ caCertDer, caKey: key });
      const chainTail: Buffer[] = [];
      if (cfg.upstream) {
        chainTail.push(caCertDer);
        if (slot.upstreamChainDer && slot.upstreamChainDer.length) chainTail.push(...splitDer(slot.upstreamChainDer));
      }
      return { slot, template, key, chainTail, notAfter: slot.notAfter, validFrom: caValidFrom(slot) };
    },
    keyId: (slot) => (slot.certificateDer ? x509KeyId(slot.certificateDer) : slot.kid),
    validFrom: caValidFrom,
    maxNotAfter: () => cfg.upstream?.notAfter(),
  };
}

const validFromCache = new WeakMap<Buffer, number>();
/** The notBefore (unix s) of a slot's CA certificate; the slot's own time for a slot without one. */
function caValidFrom(slot: CAJournalEntry): number {
  const der = slot.certificateDer;
  if (!der) return slot.notBefore;
  let v = validFromCache.get(der);
  if (v === undefined) validFromCache.set(der, (v = certificateValidity(der).notBefore));
  return v;
}

/** The subject key identifier of a CA certificate, lower-case hex (journals of older builds stored the slot id as kid). */
export function x509KeyId(certDer: Buffer): string {
  const ski = readCertificateInfo(certDer).subjectKeyId;
  if (!ski) throw new TesseraError('INTERNAL', 'ca certificate has no subject key identifier');
  return ski.toString('hex');
}

/** Splits concatenated DER certificates (each a SEQUENCE with a definite length). */
export function splitDer(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  while (off < buf.length) {
    if (buf[off] !== 0x30) throw new TesseraError('INTERNAL', 'stored certificate chain is corrupt');
    let len = buf[off + 1]!;
    let hdr = 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + buf[off + 2 + i]!;
      hdr = 2 + n;
    }
    out.push(buf.subarray(off, off + hdr + len));
    off += hdr + len;
  }
  return out;
}
