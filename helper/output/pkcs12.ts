import { randomBytes } from 'node:crypto';
import forge from 'node-forge';

/**
 * PKCS#12 (RFC 7292) files for Java and .NET: a keystore with the SVID's key and
 * chain, and a truststore with the bundle's CA certificates.
 *
 * Built from node-forge's ASN.1, PBES2 and PKCS#12 key-derivation primitives, not
 * its `pkcs12.toPkcs12Asn1`: that one only serialises RSA keys (SVID keys are EC
 * P-256) and parses every certificate with forge's X.509 code, which refuses EC
 * public keys; and Java reads a certificate in a PKCS#12 file as a trusted entry
 * only when its bag carries Oracle's trustedKeyUsage attribute
 * (2.16.840.1.113894.746875.1.1 = anyExtendedKeyUsage), which toPkcs12Asn1 cannot add.
 * Here the key goes in as the PKCS#8 DER Node already has, certificates as their
 * DER bytes, the key bag is PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC), and the MAC
 * is HMAC-SHA256: what OpenSSL 3 writes by default and Java 11+ / .NET read.
 */
const { asn1, pki } = forge;
const OID = {
  data: pki.oids.data!,
  certBag: pki.oids.certBag!,
  x509Certificate: pki.oids.x509Certificate!,
  shroudedKeyBag: pki.oids.pkcs8ShroudedKeyBag!,
  friendlyName: pki.oids.friendlyName!,
  localKeyId: pki.oids.localKeyId!,
  sha256: pki.oids.sha256!,
  oracleTrustedKeyUsage: '2.16.840.1.113894.746875.1.1',
  anyExtendedKeyUsage: '2.5.29.37.0',
};
const ITERATIONS = 10_000;

const seq = (items: forge.asn1.Asn1[]) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, items);
const set = (items: forge.asn1.Asn1[]) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SET, true, items);
const oid = (o: string) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(o).getBytes());
const octets = (bytes: string) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, bytes);
const explicit0 = (inner: forge.asn1.Asn1) => asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [inner]);
const der = (a: forge.asn1.Asn1) => asn1.toDer(a).getBytes();
const binary = (b: Buffer) => forge.util.binary.raw.encode(new Uint8Array(b));

function attribute(type: string, value: forge.asn1.Asn1) {
  return seq([oid(type), set([value])]);
}
function friendlyName(name: string) {
  // forge writes a BMPString's value as UTF-16BE itself
  return attribute(OID.friendlyName, asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BMPSTRING, false, name));
}

function certBag(certDer: Buffer, attrs: forge.asn1.Asn1[]) {
  return seq([oid(OID.certBag), explicit0(seq([oid(OID.x509Certificate), explicit0(octets(binary(certDer)))])), ...(attrs.length ? [set(attrs)] : [])]);
}

/** ContentInfo of type data holding SafeContents. */
function dataContent(bags: forge.asn1.Asn1[]) {
  return seq([oid(OID.data), explicit0(octets(der(seq(bags))))]);
}

function pfx(contents: forge.asn1.Asn1[], password: string): Buffer {
  const authSafe = seq(contents);
  const authSafeDer = der(authSafe);
  const salt = binary(randomBytes(16));
  const macKey = forge.pkcs12.generateKey(password, new forge.util.ByteStringBuffer(salt), 3, ITERATIONS, 32, forge.md.sha256.create());
  const hmac = forge.hmac.create();
  hmac.start(forge.md.sha256.create(), macKey);
  hmac.update(authSafeDer);
  const macData = seq([
    seq([seq([oid(OID.sha256), asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, '')]), octets(hmac.digest().getBytes())]),
    octets(salt),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, asn1.integerToDer(ITERATIONS).getBytes()),
  ]);
  const out = seq([asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, asn1.integerToDer(3).getBytes()), seq([oid(OID.data), explicit0(octets(authSafeDer))]), macData]);
  return Buffer.from(der(out), 'binary');
}

/** A keystore: the key (PKCS#8 DER) and its chain, leaf first, under `alias`. */
export function pkcs12Keystore(keyPkcs8Der: Buffer, chainDer: Buffer[], password: string, alias: string): Buffer {
  const localKeyId = attribute(OID.localKeyId, octets(forge.md.sha256.create().update(binary(chainDer[0]!)).digest().getBytes()));
  const pkInfo = asn1.fromDer(binary(keyPkcs8Der));
  const encrypted = pki.encryptPrivateKeyInfo(pkInfo, password, { algorithm: 'aes256', count: ITERATIONS, saltSize: 16, prfAlgorithm: 'sha256' } as never);
  const keyBag = seq([oid(OID.shroudedKeyBag), explicit0(encrypted), set([friendlyName(alias), localKeyId])]);
  const certs = chainDer.map((c, i) => certBag(c, i === 0 ? [friendlyName(alias), localKeyId] : []));
  return pfx([dataContent(certs), dataContent([keyBag])], password);
}

/** A truststore: each CA certificate as a trusted entry (`<alias>-1`, `<alias>-2`, ...). */
export function pkcs12Truststore(caDers: Buffer[], password: string, alias: string): Buffer {
  const trusted = attribute(OID.oracleTrustedKeyUsage, oid(OID.anyExtendedKeyUsage));
  return pfx([dataContent(caDers.map((c, i) => certBag(c, [friendlyName(`${alias}-${i + 1}`), trusted])))], password);
}
