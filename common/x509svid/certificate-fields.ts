import * as der from '../der/der';
import { invalidArgument } from '../errors';

/**
 * The fields of an X.509 certificate (RFC 5280 4.1) that the X.509-SVID
 * validator reads and Node's `X509Certificate` does not expose: the version,
 * the serial's sign, whether the subject is empty, and every extension with
 * its critical flag; plus decoders for the five extensions the SVID profile
 * speaks of (basicConstraints, keyUsage, subjectAltName URIs, extKeyUsage,
 * subjectKeyIdentifier).
 *
 * Why by hand (on common/der's strict reader) and not with @peculiar/x509:
 * this runs in the agent (verifying its cache at start) and in every
 * workload's SDK (each mTLS handshake's peer chain), and loading
 * @peculiar/x509 with its schema stack and reflect-metadata costs each of
 * those processes about 14 MB of resident memory, a seventh of the agent's
 * 100 MB budget. Signatures, issuer/subject chaining and the outer DER parse
 * stay with OpenSSL (Node's `X509Certificate`); this reads only TLVs.
 */

export const OID = {
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  extKeyUsage: '2.5.29.37',
  subjectKeyIdentifier: '2.5.29.14',
} as const;

/** RFC 5280 4.2.1.3 KeyUsage bit numbers. */
export const KeyUsage = { digitalSignature: 0, keyCertSign: 5, cRLSign: 6 } as const;

export interface CertificateExtension {
  oid: string;
  critical: boolean;
  /** the extnValue OCTET STRING's content: the extension's own DER */
  value: Buffer;
}

export interface CertificateFields {
  /** 1-based, as people say it (v3 = 3) */
  version: number;
  serialNegative: boolean;
  serialZero: boolean;
  /** the subject Name is an empty SEQUENCE */
  subjectEmpty: boolean;
  /** subject and issuer Name DER (whole TLVs), byte for byte: a child's issuer must be exactly its CA's subject */
  subject: Buffer;
  issuer: Buffer;
  /** SubjectPublicKeyInfo DER (whole TLV) */
  spki: Buffer;
  notBefore: Date;
  notAfter: Date;
  extensions: CertificateExtension[];
}

const CONTEXT_0 = 0xa0;
const CONTEXT_3 = 0xa3;
const URI_NAME = 0x86; // GeneralName uniformResourceIdentifier [6] IMPLICIT IA5String

/** Decodes the TBSCertificate of `certDer`; throws INVALID_ARGUMENT on anything that is not strict DER of that shape. */
export function readCertificateFields(certDer: Buffer): CertificateFields {
  const cert = der.expectTLV(certDer, 0, der.TAG.SEQUENCE, 'certificate');
  if (cert.end !== certDer.length) throw invalidArgument('der: trailing bytes after the certificate');
  const tbs = der.expectTLV(certDer, cert.start, der.TAG.SEQUENCE, 'tbsCertificate', cert.end);
  const fields = der.readChildren(certDer, tbs);
  let i = 0;
  let version = 1;
  if (fields[i]?.tag === CONTEXT_0) {
    const v = der.expectTLV(certDer, fields[i].start, der.TAG.INTEGER, 'version', fields[i].end);
    if (v.end - v.start !== 1) throw invalidArgument('der: version is not a small integer');
    version = certDer[v.start] + 1;
    i++;
  }
  const serial = fields[i++];
  const algorithm = fields[i++];
  const issuer = fields[i++];
  const validity = fields[i++];
  const subject = fields[i++];
  const spki = fields[i++];
  if (!serial || serial.tag !== der.TAG.INTEGER || serial.end === serial.start) throw invalidArgument('der: serialNumber is missing');
  for (const [t, what] of [[algorithm, 'signature'], [issuer, 'issuer'], [validity, 'validity'], [subject, 'subject'], [spki, 'subjectPublicKeyInfo']] as const) {
    if (!t || t.tag !== der.TAG.SEQUENCE) throw invalidArgument(`der: ${what} is missing or not a SEQUENCE`);
  }
  const times = der.readChildren(certDer, validity!);
  if (times.length !== 2) throw invalidArgument('der: validity must hold notBefore and notAfter');
  const serialBytes = certDer.subarray(serial.start, serial.end);

  let extensions: CertificateExtension[] = [];
  for (; i < fields.length; i++) {
    const f = fields[i];
    if (f.tag === 0x81 || f.tag === 0x82 || f.tag === 0xa1 || f.tag === 0xa2) continue; // issuer/subjectUniqueID
    if (f.tag !== CONTEXT_3 || i !== fields.length - 1) throw invalidArgument(`der: unexpected field with tag 0x${f.tag.toString(16)} in tbsCertificate`);
    extensions = readExtensions(certDer, der.expectTLV(certDer, f.start, der.TAG.SEQUENCE, 'extensions', f.end));
  }
  return {
    version,
    serialNegative: (serialBytes[0] & 0x80) !== 0,
    serialZero: serialBytes.every((b) => b === 0),
    subjectEmpty: subject!.end === subject!.start,
    subject: certDer.subarray(subject!.offset, subject!.end),
    issuer: certDer.subarray(issuer!.offset, issuer!.end),
    spki: certDer.subarray(spki!.offset, spki!.end),
    notBefore: der.decodeTime(certDer, times[0]),
    notAfter: der.decodeTime(certDer, times[1]),
    extensions,
  };
}

function readExtensions(buf: Buffer, seq: der.TLV): CertificateExtension[] {
  const out: CertificateExtension[] = [];
  for (const ext of der.readChildren(buf, seq)) {
    if (ext.tag !== der.TAG.SEQUENCE) throw invalidArgument('der: an extension is not a SEQUENCE');
    const parts = der.readChildren(buf, ext);
    const oid = der.decodeOid(buf, parts[0] ?? { tag: 0, offset: 0, headerLength: 0, start: 0, end: 0 });
    let critical = false;
    let k = 1;
    if (parts[k]?.tag === der.TAG.BOOLEAN) {
      critical = readBoolean(buf, parts[k], `extension ${oid} critical`);
      k++;
    }
    const value = parts[k];
    if (!value || value.tag !== der.TAG.OCTET_STRING || k !== parts.length - 1) throw invalidArgument(`der: extension ${oid} has no extnValue`);
    // RFC 5280 4.2: a certificate MUST NOT include more than one instance of a particular extension.
    if (out.some((e) => e.oid === oid)) throw invalidArgument(`der: extension ${oid} appears twice`);
    out.push({ oid, critical, value: buf.subarray(value.start, value.end) });
  }
  return out;
}

function readBoolean(buf: Uint8Array, t: der.TLV, what: string): boolean {
  if (t.end - t.start !== 1 || (buf[t.start] !== 0 && buf[t.start] !== 0xff)) throw invalidArgument(`der: ${what} is not a DER BOOLEAN`);
  return buf[t.start] === 0xff;
}

/** The whole of one extension's value, as a single TLV of the given tag. */
function only(value: Buffer, tag: number, what: string): der.TLV {
  const t = der.expectTLV(value, 0, tag, what);
  if (t.end !== value.length) throw invalidArgument(`der: trailing bytes after ${what}`);
  return t;
}

export const extension = (f: CertificateFields, oid: string) => f.extensions.find((e) => e.oid === oid);

/** basicConstraints (RFC 5280 4.2.1.9): cA (default false) and pathLenConstraint (undefined: none). */
export function basicConstraints(e: CertificateExtension): { ca: boolean; pathLength?: number } {
  const seq = only(e.value, der.TAG.SEQUENCE, 'basicConstraints');
  const parts = der.readChildren(e.value, seq);
  let k = 0;
  let ca = false;
  if (parts[k]?.tag === der.TAG.BOOLEAN) ca = readBoolean(e.value, parts[k++], 'basicConstraints cA');
  let pathLength: number | undefined;
  if (parts[k]?.tag === der.TAG.INTEGER) {
    const t = parts[k++];
    if (t.end - t.start > 4 || t.end === t.start || (e.value[t.start] & 0x80) !== 0) throw invalidArgument('der: pathLenConstraint is not a small non-negative integer');
    pathLength = 0;
    for (let j = t.start; j < t.end; j++) pathLength = pathLength * 256 + e.value[j];
  }
  if (k !== parts.length) throw invalidArgument('der: basicConstraints has unexpected fields');
  return { ca, pathLength };
}

/** keyUsage (RFC 5280 4.2.1.3) as a test for one bit number of {@link KeyUsage}. */
export function keyUsage(e: CertificateExtension): (bit: number) => boolean {
  const t = only(e.value, der.TAG.BIT_STRING, 'keyUsage');
  if (t.end === t.start || e.value[t.start] > 7) throw invalidArgument('der: keyUsage is not a valid BIT STRING');
  const bits = e.value.subarray(t.start + 1, t.end);
  return (bit) => bit >> 3 < bits.length && (bits[bit >> 3] & (0x80 >> (bit & 7))) !== 0;
}

/** The URI names of a subjectAltName (RFC 5280 4.2.1.6); other name forms are skipped. */
export function uriNames(e: CertificateExtension): string[] {
  const seq = only(e.value, der.TAG.SEQUENCE, 'subjectAltName');
  return der
    .readChildren(e.value, seq)
    .filter((n) => n.tag === URI_NAME)
    .map((n) => e.value.subarray(n.start, n.end).toString('latin1')); // a bad character fails the SPIFFE ID parse
}

/** The keyIdentifier of a subjectKeyIdentifier (RFC 5280 4.2.1.2). */
export function subjectKeyId(e: CertificateExtension): Buffer {
  const t = only(e.value, der.TAG.OCTET_STRING, 'subjectKeyIdentifier');
  return e.value.subarray(t.start, t.end);
}

/** The purposes of an extKeyUsage (RFC 5280 4.2.1.12), dotted OIDs. */
export function extKeyUsages(e: CertificateExtension): string[] {
  const seq = only(e.value, der.TAG.SEQUENCE, 'extKeyUsage');
  return der.readChildren(e.value, seq).map((t) => der.decodeOid(e.value, t));
}
