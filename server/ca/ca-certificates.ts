import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate as NodeX509, createHash, createPublicKey, randomBytes, sign as nodeSign, webcrypto, type KeyObject } from 'node:crypto';
import { invalidArgument } from '../../common/errors';
import { parseTrustDomain } from '../../common/spiffeid/spiffe-id';
import type { KeyType, ManagedKey } from '../keymanager/keymanager';
import { readCertificateInfo, subjectPublicKeyBits } from './certificate-info';

/** What signs a CA certificate: a ManagedKey, or anything with the same `type` + synchronous `sign`. */
export type CASigner = Pick<ManagedKey, 'type' | 'sign'>;

/**
 * Wraps a private KeyObject (e.g. an upstream CA key loaded from disk) as a
 * {@link CASigner}. RSA keys of any size sign with SHA-256 (type 'rsa-2048'
 * names the algorithm family here, not the modulus).
 */
export function signerFromKeyObject(privateKey: KeyObject): CASigner {
  const curve = privateKey.asymmetricKeyDetails?.namedCurve;
  let type: KeyType;
  if (privateKey.type !== 'private') throw invalidArgument('upstream key must be a private key');
  if (privateKey.asymmetricKeyType === 'ec' && curve === 'prime256v1') type = 'ec-p256';
  else if (privateKey.asymmetricKeyType === 'ec' && curve === 'secp384r1') type = 'ec-p384';
  else if (privateKey.asymmetricKeyType === 'rsa' && (privateKey.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048) type = 'rsa-2048';
  else throw invalidArgument(`upstream key type ${privateKey.asymmetricKeyType} ${curve ?? ''} is not supported; use EC P-256, P-384 or RSA-2048+`);
  const hash = type === 'ec-p384' ? 'sha384' : 'sha256';
  return { type, sign: (data, dsaEncoding = 'der') => nodeSign(hash, data, { key: privateKey, dsaEncoding }) };
}

type GeneratorCrypto = Parameters<typeof x509.X509CertificateGenerator.create>[1];
type GeneratorParams = Extract<Parameters<typeof x509.X509CertificateGenerator.create>[0], { signingKey: unknown }>;

const WEBCRYPTO_ALGORITHM: Record<KeyType, { key: object; hash: string }> = {
  'ec-p256': { key: { name: 'ECDSA', namedCurve: 'P-256' }, hash: 'SHA-256' },
  'ec-p384': { key: { name: 'ECDSA', namedCurve: 'P-384' }, hash: 'SHA-384' },
  'rsa-2048': { key: { name: 'RSASSA-PKCS1-v1_5', hash: { name: 'SHA-256' } }, hash: 'SHA-256' },
};

/**
 * A WebCrypto-shaped provider whose `subtle.sign` calls the signer, so
 * @peculiar/x509's generator (which only signs through `crypto.subtle.sign`,
 * checked against 2.2) never needs the private key. The generator reads the
 * algorithm from the fake CryptoKey and turns the IEEE-P1363 ECDSA signature
 * WebCrypto returns into DER itself.
 */
function signingProvider(signer: CASigner) {
  const alg = WEBCRYPTO_ALGORITHM[signer.type];
  if (!alg) throw invalidArgument(`signing key type ${signer.type} is not supported`);
  const signingKey = { type: 'private', extractable: false, algorithm: alg.key, usages: ['sign'] };
  const subtle = {
    sign: async (algorithm: { hash?: string | { name: string } }, _key: unknown, data: ArrayBuffer | ArrayBufferView) => {
      const hash = typeof algorithm.hash === 'string' ? algorithm.hash : algorithm.hash?.name;
      // The signer hashes with its key's natural hash; refuse to label it as anything else.
      if (hash !== alg.hash) throw invalidArgument(`signer of type ${signer.type} cannot sign with ${hash}`);
      const bytes = ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);
      const sig = signer.sign(bytes, 'ieee-p1363');
      return sig.buffer.slice(sig.byteOffset, sig.byteOffset + sig.byteLength);
    },
  };
  const provider = { subtle, getRandomValues: <T extends ArrayBufferView>(a: T) => webcrypto.getRandomValues(a as never) as T };
  return {
    crypto: provider as unknown as GeneratorCrypto,
    signingKey: signingKey as unknown as GeneratorParams['signingKey'],
    signingAlgorithm: { ...alg.key, hash: alg.hash },
  };
}

/** SHA-1 of the subjectPublicKey BIT STRING contents (RFC 5280 4.2.1.2 method 1), as hex. */
const keyIdHex = (spki: Buffer): string => createHash('sha1').update(subjectPublicKeyBits(spki)).digest('hex');

function checkValidity(notBefore: Date, notAfter: Date) {
  if (!(notBefore.getTime() < notAfter.getTime())) throw invalidArgument('notBefore must be before notAfter');
}

interface CACertParams {
  serial: string;
  signer: CASigner;
  subjectSpki: Buffer;
  subject: string;
  issuer: string | x509.Name;
  authorityKeyId?: Buffer;
  trustDomainId: string;
  notBefore: Date;
  notAfter: Date;
}

async function issueCACert(p: CACertParams): Promise<Buffer> {
  const { crypto, signingKey, signingAlgorithm } = signingProvider(p.signer);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(true, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    new x509.SubjectKeyIdentifierExtension(keyIdHex(p.subjectSpki)),
    new x509.SubjectAlternativeNameExtension([{ type: 'url', value: p.trustDomainId }]),
  ];
  if (p.authorityKeyId) extensions.push(new x509.AuthorityKeyIdentifierExtension(p.authorityKeyId.toString('hex')));
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: p.serial,
      subject: p.subject,
      issuer: p.issuer,
      notBefore: p.notBefore,
      notAfter: p.notAfter,
      publicKey: p.subjectSpki,
      signingKey,
      signingAlgorithm,
      extensions,
    },
    crypto,
  );
  return Buffer.from(cert.rawData);
}

/** Inputs shared by both CA certificate kinds. */
export interface CACertificateParams {
  /** Bare name or `spiffe://name`. */
  trustDomain: string;
  notBefore: Date;
  notAfter: Date;
  /**
   * RFC 4514 subject. Default `O=<organization>, CN=<trust domain>, serialNumber=<certificate serial>`:
   * the serial keeps subjects unique across rotations and between root and intermediate.
   */
  subject?: string;
  /** O= of the default subject; default "Tessera". */
  organization?: string;
}

/**
 * Creates a self-signed root CA certificate for `key`: basicConstraints
 * critical cA=true, keyUsage critical keyCertSign+cRLSign, SKI, and the URI SAN
 * `spiffe://<trust domain>`. Returns the certificate DER.
 */
export async function createSelfSignedCA(p: CACertificateParams & { key: ManagedKey }): Promise<Buffer> {
  const trustDomain = parseTrustDomain(p.trustDomain);
  checkValidity(p.notBefore, p.notAfter);
  const serial = randomSerialHex();
  const subject = p.subject ?? defaultSubject(p.organization, trustDomain, serial);
  const certDer = await issueCACert({
    serial,
    signer: p.key,
    subjectSpki: p.key.publicKeySpki,
    subject,
    issuer: subject,
    trustDomainId: `spiffe://${trustDomain}`,
    notBefore: p.notBefore,
    notAfter: p.notAfter,
  });
  verifySignedBy(certDer, p.key.publicKeySpki);
  return certDer;
}

/**
 * Creates an intermediate CA certificate for the public part of `key`, signed
 * by `upstreamKey` (a ManagedKey-like signer or a private KeyObject) under
 * `upstreamCertDer`. The issuer Name is the upstream subject byte-for-byte, AKI
 * is the upstream SKI, and notAfter is capped at the upstream's notAfter (a
 * CA can never outlive its issuer). Throws INVALID_ARGUMENT if the upstream
 * certificate is not a CA or `upstreamKey` does not match it.
 */
export async function createIntermediateCA(
  p: CACertificateParams & { key: ManagedKey; upstreamCertDer: Buffer; upstreamKey: CASigner | KeyObject },
): Promise<Buffer> {
  const trustDomain = parseTrustDomain(p.trustDomain);
  const upstream = readCertificateInfo(p.upstreamCertDer);
  if (!upstream.isCA) throw invalidArgument('upstream certificate is not a ca certificate (basicConstraints cA is not true)');
  const notAfter = p.notAfter.getTime() > upstream.notAfter.getTime() ? upstream.notAfter : p.notAfter;
  checkValidity(p.notBefore, notAfter);
  const signer = isKeyObject(p.upstreamKey) ? signerFromKeyObject(p.upstreamKey) : p.upstreamKey;
  const serial = randomSerialHex();
  const certDer = await issueCACert({
    serial,
    signer,
    subjectSpki: p.key.publicKeySpki,
    subject: p.subject ?? defaultSubject(p.organization, trustDomain, serial),
    issuer: new x509.Name(upstream.subject),
    authorityKeyId: upstream.subjectKeyId ?? createHash('sha1').update(subjectPublicKeyBits(upstream.spki)).digest(),
    trustDomainId: `spiffe://${trustDomain}`,
    notBefore: p.notBefore,
    notAfter,
  });
  // Catches an upstream key that does not belong to the upstream certificate.
  verifySignedBy(certDer, upstream.spki, 'upstream key does not match the upstream certificate');
  return certDer;
}

const isKeyObject = (k: unknown): k is KeyObject => typeof k === 'object' && k !== null && 'asymmetricKeyType' in k && 'export' in k;
const randomSerialHex = () => randomBytes(16).toString('hex');
function defaultSubject(organization: string | undefined, trustDomain: string, serial: string): string {
  // JSON form, so an organization with commas or other RFC 4514 specials needs no escaping.
  return new x509.Name([{ O: [organization ?? 'Tessera'] }, { CN: [trustDomain] }, { '2.5.4.5': [serial] }]).toString();
}

function verifySignedBy(certDer: Buffer, issuerSpki: Buffer, message = 'ca key does not match its public key'): void {
  const ok = new NodeX509(certDer).verify(createPublicKey({ key: issuerSpki, format: 'der', type: 'spki' }));
  if (!ok) throw invalidArgument(message);
}
