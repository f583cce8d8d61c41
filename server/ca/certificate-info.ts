import * as der from '../../common/der/der';
import { invalidArgument } from '../../common/errors';

/** The fields of a CA certificate that issuing needs, as raw DER where bytes must be copied exactly. */
export interface CertificateInfo {
  /** Subject Name DER, byte-for-byte (a child's issuer must be exactly these bytes). */
  subject: Buffer;
  issuer: Buffer;
  notBefore: Date;
  notAfter: Date;
  /** SubjectPublicKeyInfo DER. */
  spki: Buffer;
  /** subjectKeyIdentifier keyIdentifier bytes, if the extension is present. */
  subjectKeyId?: Buffer;
  /** basicConstraints cA. */
  isCA: boolean;
}

const OID_SKI = der.oid('2.5.29.14');
const OID_BASIC_CONSTRAINTS = der.oid('2.5.29.19');

/**
 * Walks a certificate's TBS with the strict DER reader. Used once per CA
 * certificate, so the issuer Name can be copied byte-for-byte: re-encoding a
 * parsed Name (string types, attribute order) could change the bytes and break
 * name chaining. Throws INVALID_ARGUMENT if the certificate is malformed.
 */
export function readCertificateInfo(certDer: Buffer): CertificateInfo {
  try {
    const cert = der.expectTLV(certDer, 0, der.TAG.SEQUENCE, 'certificate');
    if (cert.end !== certDer.length) throw invalidArgument('der: trailing bytes after certificate');
    const tbs = der.expectTLV(certDer, cert.start, der.TAG.SEQUENCE, 'tbsCertificate', cert.end);
    const f = der.readChildren(certDer, tbs);
    let i = f[0]?.tag === 0xa0 ? 1 : 0; // optional [0] version
    const [, , issuer, validity, subject, spki] = f.slice(i, (i += 6));
    if (!spki) throw invalidArgument('der: tbsCertificate has too few fields');
    const times = der.readChildren(certDer, validity);
    if (times.length !== 2) throw invalidArgument('der: validity must hold two times');
    const raw = (t: der.TLV) => Buffer.from(certDer.subarray(t.offset, t.end));
    const info: CertificateInfo = {
      subject: raw(subject),
      issuer: raw(issuer),
      notBefore: der.decodeTime(certDer, times[0]),
      notAfter: der.decodeTime(certDer, times[1]),
      spki: raw(spki),
      isCA: false,
    };
    const extsWrapper = f.slice(i).find((t) => t.tag === 0xa3);
    if (!extsWrapper) return info;
    const exts = der.readChildren(certDer, der.expectTLV(certDer, extsWrapper.start, der.TAG.SEQUENCE, 'extensions', extsWrapper.end));
    for (const ext of exts) {
      const parts = der.readChildren(certDer, ext);
      const id = raw(parts[0]);
      const value = parts[parts.length - 1];
      if (value.tag !== der.TAG.OCTET_STRING) throw invalidArgument('der: extension value is not an octet string');
      if (id.equals(OID_SKI)) {
        const keyId = der.expectTLV(certDer, value.start, der.TAG.OCTET_STRING, 'subjectKeyIdentifier', value.end);
        info.subjectKeyId = Buffer.from(certDer.subarray(keyId.start, keyId.end));
      } else if (id.equals(OID_BASIC_CONSTRAINTS)) {
        const bc = der.expectTLV(certDer, value.start, der.TAG.SEQUENCE, 'basicConstraints', value.end);
        const first = der.readChildren(certDer, bc)[0];
        info.isCA = first?.tag === der.TAG.BOOLEAN && certDer[first.start] === 0xff;
      }
    }
    return info;
  } catch (e) {
    throw invalidArgument(`certificate is not a valid X.509 certificate: ${(e as Error).message}`, e);
  }
}

/** The subjectPublicKey BIT STRING contents of a SubjectPublicKeyInfo (the input of an RFC 5280 method-1 key identifier). */
export function subjectPublicKeyBits(spki: Buffer): Buffer {
  const outer = der.expectTLV(spki, 0, der.TAG.SEQUENCE, 'subjectPublicKeyInfo');
  const alg = der.expectTLV(spki, outer.start, der.TAG.SEQUENCE, 'algorithm', outer.end);
  const bits = der.expectTLV(spki, alg.end, der.TAG.BIT_STRING, 'subjectPublicKey', outer.end);
  return spki.subarray(bits.start + 1, bits.end);
}
