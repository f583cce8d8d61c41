import * as der from '../../common/der/der';
import { invalidArgument } from '../../common/errors';
import { OID, basicConstraints, extension, readCertificateFields, subjectKeyId } from '../../common/x509svid/certificate-fields';

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

/**
 * The CA-side view of common/x509svid/certificate-fields (one strict TBS walk
 * for the whole project), copied out of the input buffer. Used once per CA
 * certificate, so the issuer Name can be copied byte-for-byte: re-encoding a
 * parsed Name (string types, attribute order) could change the bytes and break
 * name chaining. Throws INVALID_ARGUMENT if the certificate is malformed.
 */
export function readCertificateInfo(certDer: Buffer): CertificateInfo {
  try {
    const f = readCertificateFields(certDer);
    const ski = extension(f, OID.subjectKeyIdentifier);
    const bc = extension(f, OID.basicConstraints);
    return {
      subject: Buffer.from(f.subject),
      issuer: Buffer.from(f.issuer),
      notBefore: f.notBefore,
      notAfter: f.notAfter,
      spki: Buffer.from(f.spki),
      subjectKeyId: ski && Buffer.from(subjectKeyId(ski)),
      isCA: bc ? basicConstraints(bc).ca : false,
    };
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
