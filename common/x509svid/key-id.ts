import * as der from '../der/der';

const OID_SKI = der.oid('2.5.29.14');
const OID_AKI = der.oid('2.5.29.35');

/**
 * The keyIdentifier of a certificate's authorityKeyIdentifier extension, as
 * lower-case hex, or undefined when the extension (or its keyIdentifier) is
 * absent or the certificate cannot be parsed. For an SVID this is the subject
 * key identifier of the CA that signed it: agents compare it with the tainted
 * authorities the server publishes.
 * @example authorityKeyId(leafDer) // '3f1c…' (40 hex digits for a SHA-1 key id)
 */
export function authorityKeyId(certDer: Buffer): string | undefined {
  const v = extensionValue(certDer, OID_AKI);
  if (!v) return undefined;
  try {
    // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING OPTIONAL, ... }
    const seq = der.expectTLV(v, 0, der.TAG.SEQUENCE, 'authorityKeyIdentifier');
    const first = der.readChildren(v, seq)[0];
    return first && first.tag === 0x80 ? Buffer.from(v.subarray(first.start, first.end)).toString('hex') : undefined;
  } catch {
    return undefined;
  }
}

/** The subjectKeyIdentifier of a certificate as lower-case hex, or undefined. */
export function subjectKeyId(certDer: Buffer): string | undefined {
  const v = extensionValue(certDer, OID_SKI);
  if (!v) return undefined;
  try {
    const t = der.expectTLV(v, 0, der.TAG.OCTET_STRING, 'subjectKeyIdentifier');
    return Buffer.from(v.subarray(t.start, t.end)).toString('hex');
  } catch {
    return undefined;
  }
}

/** The DER inside an extension's extnValue OCTET STRING, or undefined. */
function extensionValue(certDer: Buffer, oid: Buffer): Buffer | undefined {
  try {
    const cert = der.expectTLV(certDer, 0, der.TAG.SEQUENCE, 'certificate');
    const tbs = der.expectTLV(certDer, cert.start, der.TAG.SEQUENCE, 'tbsCertificate', cert.end);
    const wrapper = der.readChildren(certDer, tbs).find((t) => t.tag === 0xa3);
    if (!wrapper) return undefined;
    const exts = der.readChildren(certDer, der.expectTLV(certDer, wrapper.start, der.TAG.SEQUENCE, 'extensions', wrapper.end));
    for (const ext of exts) {
      const parts = der.readChildren(certDer, ext);
      if (!Buffer.from(certDer.subarray(parts[0]!.offset, parts[0]!.end)).equals(oid)) continue;
      const value = parts[parts.length - 1]!;
      return Buffer.from(certDer.subarray(value.start, value.end));
    }
  } catch {
    return undefined;
  }
  return undefined;
}
