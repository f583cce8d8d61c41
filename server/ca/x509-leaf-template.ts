import { hash, randomFillSync } from 'node:crypto';
import * as der from '../../common/der/der';
import { invalidArgument } from '../../common/errors';
import type { KeyType, ManagedKey } from '../keymanager/keymanager';
import { readCertificateInfo } from './certificate-info';

/** Attribute types accepted in a leaf subject. */
export type NameAttribute = 'C' | 'ST' | 'L' | 'O' | 'OU' | 'CN';

const ATTRIBUTE_OID: Record<NameAttribute, string> = {
  C: '2.5.4.6',
  ST: '2.5.4.8',
  L: '2.5.4.7',
  O: '2.5.4.10',
  OU: '2.5.4.11',
  CN: '2.5.4.3',
};

/** Name DER, one attribute per RDN, in the given order (C as PrintableString, the rest UTF8String). */
export function encodeName(rdns: ReadonlyArray<readonly [NameAttribute, string]>): Buffer {
  return der.sequence(
    ...rdns.map(([type, value]) =>
      der.set(der.sequence(der.oid(ATTRIBUTE_OID[type]), type === 'C' ? der.printableString(value) : der.utf8String(value))),
    ),
  );
}

/** signatureAlgorithm for each CA key type; the CA key's `sign` uses the matching hash. */
const SIGNATURE_ALGORITHM: Record<KeyType, Buffer> = {
  'ec-p256': der.sequence(der.oid('1.2.840.10045.4.3.2')), // ecdsa-with-SHA256, parameters absent (RFC 5758)
  'ec-p384': der.sequence(der.oid('1.2.840.10045.4.3.3')), // ecdsa-with-SHA384
  'rsa-2048': der.sequence(der.oid('1.2.840.113549.1.1.11'), der.NULL), // sha256WithRSAEncryption, NULL params (RFC 4055)
};

const EXT = {
  keyUsage: '2.5.29.15',
  basicConstraints: '2.5.29.19',
  extKeyUsage: '2.5.29.37',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  subjectAltName: '2.5.29.17',
};

const extension = (id: string, critical: boolean, value: Uint8Array): Buffer =>
  critical ? der.sequence(der.oid(id), der.boolean(true), der.octetString(value)) : der.sequence(der.oid(id), der.octetString(value));

const VERSION_3 = der.explicit(0, der.integer(2));
// BasicConstraints ::= SEQUENCE {} — cA defaults to FALSE and DER omits defaults.
const BASIC_CONSTRAINTS = extension(EXT.basicConstraints, true, der.sequence());
// KeyUsage bits: digitalSignature (0) → 0x80 with 7 unused bits; + keyEncipherment (2) → 0xa0 with 5 unused bits.
const KEY_USAGE_EC = extension(EXT.keyUsage, true, der.bitString(Buffer.from([0x80]), 7));
const KEY_USAGE_RSA = extension(EXT.keyUsage, true, der.bitString(Buffer.from([0xa0]), 5));
const EXT_KEY_USAGE = extension(EXT.extKeyUsage, false, der.sequence(der.oid('1.3.6.1.5.5.7.3.1'), der.oid('1.3.6.1.5.5.7.3.2')));
// Everything of the SKI extension up to the 20-byte SHA-1.
const SKI_PREFIX = extension(EXT.subjectKeyIdentifier, false, der.octetString(Buffer.alloc(20))).subarray(0, -20);
const SAN_OID = der.oid(EXT.subjectAltName);
const CRITICAL = der.boolean(true);
const NO_UNUSED_BITS = Buffer.from([0]);

const OID_EC_PUBLIC_KEY = der.oid('1.2.840.10045.2.1');
const OID_RSA_ENCRYPTION = der.oid('1.2.840.113549.1.1.1');
const OID_P256 = der.oid('1.2.840.10045.3.1.7');
const OID_P384 = der.oid('1.3.132.0.34');

const DNS_NAME = /^(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*$/;
const SERIAL_POOL_SIZE = 16 * 512;

const equalAt = (buf: Buffer, t: der.TLV, want: Buffer) => buf.compare(want, 0, want.length, t.offset, t.end) === 0;

/**
 * Structural SubjectPublicKeyInfo check for the hot path: DER shape, EC P-256/P-384
 * with an uncompressed point of the right length, or rsaEncryption.
 * `crypto.createPublicKey` would also check the point is on the curve, but it
 * measured ~120 µs here, four times the signature; the CA parses and verifies
 * the CSR (and so the key) before minting, see common/x509svid/csr.ts.
 */
function inspectSPKI(spki: Buffer): { rsa: boolean; keyBits: Buffer } {
  try {
    const outer = der.expectTLV(spki, 0, der.TAG.SEQUENCE, 'subjectPublicKeyInfo');
    if (outer.end !== spki.length) throw invalidArgument('der: trailing bytes after subjectPublicKeyInfo');
    const alg = der.expectTLV(spki, outer.start, der.TAG.SEQUENCE, 'algorithm', outer.end);
    const algOid = der.expectTLV(spki, alg.start, der.TAG.OID, 'algorithm oid', alg.end);
    const bits = der.expectTLV(spki, alg.end, der.TAG.BIT_STRING, 'subjectPublicKey', outer.end);
    if (bits.end !== outer.end || bits.end === bits.start || spki[bits.start] !== 0) throw invalidArgument('der: malformed subjectPublicKey');
    const keyBits = spki.subarray(bits.start + 1, bits.end);
    if (equalAt(spki, algOid, OID_RSA_ENCRYPTION)) return { rsa: true, keyBits };
    if (equalAt(spki, algOid, OID_EC_PUBLIC_KEY)) {
      const curve = der.readTLV(spki, algOid.end, alg.end);
      const pointLength = equalAt(spki, curve, OID_P256) ? 65 : equalAt(spki, curve, OID_P384) ? 97 : 0;
      if (pointLength === 0) throw invalidArgument('ec curve is not P-256 or P-384');
      if (keyBits.length !== pointLength || keyBits[0] !== 0x04) throw invalidArgument('ec point is not an uncompressed point');
      return { rsa: false, keyBits };
    }
    throw invalidArgument('key algorithm is not EC or RSA');
  } catch (e) {
    throw invalidArgument(`publicKeySpki is not a usable subjectPublicKeyInfo: ${(e as Error).message}`, e);
  }
}

/** Inputs of {@link X509SVIDTemplate.mint}. */
export interface MintParams {
  /** The SPIFFE ID, already validated by the caller; becomes the only URI SAN. */
  spiffeId: string;
  dnsNames?: readonly string[];
  /** SubjectPublicKeyInfo DER of the workload key (EC P-256/P-384 uncompressed, or RSA). */
  publicKeySpki: Buffer;
  notBefore: Date;
  /** Must not be later than the CA certificate's notAfter. */
  notAfter: Date;
  /** Unsigned big-endian serial (1–20 bytes, non-zero); default: 128 random bits. */
  serial?: Buffer;
}

/**
 * Pre-encoded X.509-SVID leaf certificate for one CA (signing) key.
 *
 * Everything constant per CA key (signature algorithm, issuer copied
 * byte-for-byte from the CA certificate's subject, leaf subject, basic
 * constraints, key usage, EKU, AKI) is encoded once; {@link mint} splices in
 * serial, validity, public key, SKI and SAN, then signs the TBS with the CA
 * key. Policy (TTLs, backdating, which SPIFFE ID) is the caller's: the template
 * only refuses to outlive the CA certificate.
 *
 * @example
 * const template = new X509SVIDTemplate({ caCertDer, caKey });
 * const { der, serialHex } = template.mint({ spiffeId: 'spiffe://td/web', publicKeySpki, notBefore, notAfter });
 */
export class X509SVIDTemplate {
  /** The CA certificate's notAfter; leaves may not end later. */
  readonly caNotAfter: Date;
  private readonly caKey: ManagedKey;
  private readonly sigAlg: Buffer;
  private readonly issuer: Buffer;
  private readonly subject: Buffer;
  /** Last encoded Validity: callers pass now-based times, so consecutive mints within a second share it. */
  private lastValidity: { notBefore: number; notAfter: number; der: Buffer } = { notBefore: NaN, notAfter: NaN, der: Buffer.alloc(0) };
  private readonly authorityKeyId: Buffer;
  private readonly sanCritical: boolean;
  private readonly serialPool = Buffer.allocUnsafe(SERIAL_POOL_SIZE);
  private serialOffset = SERIAL_POOL_SIZE;

  constructor(opts: { caCertDer: Buffer; caKey: ManagedKey; subject?: ReadonlyArray<readonly [NameAttribute, string]> }) {
    const ca = readCertificateInfo(opts.caCertDer);
    if (!ca.isCA) throw invalidArgument('ca certificate does not have basicConstraints cA=true');
    if (!ca.subjectKeyId) throw invalidArgument('ca certificate has no subjectKeyIdentifier; re-issue it with one');
    if (!Buffer.from(opts.caKey.publicKeySpki).equals(ca.spki)) {
      throw invalidArgument(`ca key ${opts.caKey.id} does not match the public key of the ca certificate`);
    }
    this.caKey = opts.caKey;
    this.caNotAfter = ca.notAfter;
    this.sigAlg = SIGNATURE_ALGORITHM[opts.caKey.type];
    if (!this.sigAlg) throw invalidArgument(`ca key type ${opts.caKey.type} is not supported`);
    const subjectRdns = opts.subject ?? [['O', 'SPIFFE']];
    // RFC 5280 4.2.1.6: with an empty subject the SAN extension must be critical.
    this.sanCritical = subjectRdns.length === 0;
    this.issuer = ca.subject;
    this.subject = encodeName(subjectRdns);
    this.authorityKeyId = extension(EXT.authorityKeyIdentifier, false, der.sequence(der.implicitPrimitive(0, ca.subjectKeyId)));
  }

  /**
   * Issues one leaf. Throws INVALID_ARGUMENT when notAfter is later than the CA
   * certificate's (never silently shortened), when notBefore is not before
   * notAfter, or when the SPKI, SPIFFE ID or a DNS name is malformed.
   */
  mint(p: MintParams): { der: Buffer; serialHex: string } {
    const nb = p.notBefore.getTime();
    const na = Math.floor(p.notAfter.getTime() / 1000) * 1000; // what gets encoded
    if (!Number.isFinite(nb) || !Number.isFinite(na)) throw invalidArgument('notBefore and notAfter must be valid dates');
    if (na > this.caNotAfter.getTime()) {
      throw invalidArgument(`notAfter ${p.notAfter.toISOString()} is later than the ca certificate's notAfter ${this.caNotAfter.toISOString()}`);
    }
    if (nb >= na) throw invalidArgument('notBefore must be before notAfter');
    if (!p.spiffeId.startsWith('spiffe://') || !/^[\x21-\x7e]+$/.test(p.spiffeId) || p.spiffeId.length > 2048) {
      throw invalidArgument(`"${p.spiffeId}" is not a spiffe id`);
    }
    const { rsa, keyBits } = inspectSPKI(p.publicKeySpki);

    const serial = p.serial ? this.checkedSerial(p.serial) : this.randomSerial();
    const names: Buffer[] = [der.implicitPrimitive(6, Buffer.from(p.spiffeId, 'latin1'))]; // [6] uniformResourceIdentifier
    for (const dns of p.dnsNames ?? []) {
      if (dns.length > 253 || !DNS_NAME.test(dns)) throw invalidArgument(`"${dns}" is not a valid dns name`);
      names.push(der.implicitPrimitive(2, Buffer.from(dns, 'latin1'))); // [2] dNSName
    }
    const ski = hash('sha1', keyBits, 'buffer'); // RFC 5280 4.2.1.2 method (1); one-shot, no Hash object

    // Nested TLVs are assembled as a flat list of pieces and copied once:
    // nesting with tlv() would copy every level and the allocations show up in GC time.
    const b = new der.DerBuilder();
    const tbsMark = b.mark();
    b.push(VERSION_3, der.integer(serial), this.sigAlg, this.issuer, this.validity(p.notBefore, p.notAfter), this.subject, p.publicKeySpki);
    const extsMark = b.mark();
    const extSeqMark = b.mark();
    b.push(rsa ? KEY_USAGE_RSA : KEY_USAGE_EC, BASIC_CONSTRAINTS, EXT_KEY_USAGE, SKI_PREFIX, ski, this.authorityKeyId);
    const sanMark = b.mark();
    b.push(SAN_OID);
    if (this.sanCritical) b.push(CRITICAL);
    const sanValueMark = b.mark();
    const generalNamesMark = b.mark();
    b.push(...names);
    b.wrap(der.TAG.SEQUENCE, generalNamesMark).wrap(der.TAG.OCTET_STRING, sanValueMark).wrap(der.TAG.SEQUENCE, sanMark);
    b.wrap(der.TAG.SEQUENCE, extSeqMark).wrap(0xa3, extsMark).wrap(der.TAG.SEQUENCE, tbsMark);
    const tbs = b.toBuffer();

    const signature = this.caKey.sign(tbs, 'der');
    const cert = new der.DerBuilder();
    cert.push(tbs, this.sigAlg, der.header(der.TAG.BIT_STRING, signature.length + 1), NO_UNUSED_BITS, signature);
    cert.wrap(der.TAG.SEQUENCE, [0, 0]);
    const firstNonZero = serial.findIndex((x) => x !== 0);
    return { der: cert.toBuffer(), serialHex: serial.subarray(firstNonZero).toString('hex') };
  }

  private validity(notBefore: Date, notAfter: Date): Buffer {
    const nb = Math.floor(notBefore.getTime() / 1000);
    const na = Math.floor(notAfter.getTime() / 1000);
    const last = this.lastValidity;
    if (last.notBefore !== nb || last.notAfter !== na) {
      this.lastValidity = { notBefore: nb, notAfter: na, der: der.sequence(der.time(notBefore), der.time(notAfter)) };
    }
    return this.lastValidity.der;
  }

  private randomSerial(): Buffer {
    for (;;) {
      if (this.serialOffset === SERIAL_POOL_SIZE) {
        randomFillSync(this.serialPool);
        this.serialOffset = 0;
      }
      const s = this.serialPool.subarray(this.serialOffset, this.serialOffset + 16);
      this.serialOffset += 16;
      // A zero serial is not positive (RFC 5280 4.1.2.2); odds 2^-128, but cheap to rule out.
      if (s.some((b) => b !== 0)) return Buffer.from(s);
    }
  }

  private checkedSerial(s: Buffer): Buffer {
    const content = der.integerContent(s);
    if (content.length > 20 || !s.some((b) => b !== 0)) throw invalidArgument('serial must be a non-zero unsigned integer of at most 20 octets');
    return s;
  }
}
