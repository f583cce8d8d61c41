import * as der from '../der/der';
import { invalidArgument } from '../errors';

/**
 * Validity (unix seconds) and SubjectPublicKeyInfo DER of a certificate, read with
 * the strict DER reader: about 10x cheaper than building an X509Certificate and
 * its KeyObject, which matters when 10,000 SVIDs arrive at once.
 * @throws TesseraError INVALID_ARGUMENT for a malformed certificate
 */
export function certificateValidity(certDer: Buffer): { notBefore: number; notAfter: number; spki: Buffer } {
  const cert = der.expectTLV(certDer, 0, der.TAG.SEQUENCE, 'certificate');
  const tbs = der.expectTLV(certDer, cert.start, der.TAG.SEQUENCE, 'tbsCertificate', cert.end);
  const f = der.readChildren(certDer, tbs);
  const i = f[0]?.tag === 0xa0 ? 1 : 0; // optional [0] version
  const [validity, spki] = [f[i + 3], f[i + 5]];
  if (!validity || !spki) throw invalidArgument('der: tbsCertificate has too few fields');
  const [nb, na] = der.readChildren(certDer, validity);
  if (!nb || !na) throw invalidArgument('der: validity must hold two times');
  return {
    notBefore: der.decodeTime(certDer, nb).getTime() / 1000,
    notAfter: der.decodeTime(certDer, na).getTime() / 1000,
    spki: certDer.subarray(spki.offset, spki.end),
  };
}
