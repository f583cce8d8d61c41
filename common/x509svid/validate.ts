import { X509Certificate } from 'node:crypto';
import { TesseraError } from '../errors';
import { parseSpiffeId, type SpiffeId } from '../spiffeid/spiffe-id';
import {
  KeyUsage,
  OID,
  basicConstraints,
  extKeyUsages,
  extension,
  keyUsage,
  readCertificateFields,
  uriNames,
  type CertificateFields,
} from './certificate-fields';

/** Which check an X.509-SVID chain failed; stable, for callers and tests to branch on. */
export type X509SVIDRejectReason =
  | 'chain-empty'
  | 'chain-too-long'
  | 'malformed'
  | 'san-missing'
  | 'san-multiple'
  | 'spiffe-id-invalid'
  | 'spiffe-id-no-path'
  | 'leaf-is-ca'
  | 'leaf-key-cert-sign'
  | 'leaf-crl-sign'
  | 'no-bundle'
  | 'expired'
  | 'not-yet-valid'
  | 'intermediate-not-ca'
  | 'intermediate-no-key-cert-sign'
  | 'path-length-exceeded'
  | 'unsupported-critical-extension'
  | 'issuer-mismatch'
  | 'signature-invalid'
  | 'untrusted-root';

/**
 * A rejected X.509-SVID chain. Code INVALID_ARGUMENT (the chain is the
 * argument), as for JWT-SVIDs; an edge that authenticates peers with it maps
 * it to UNAUTHENTICATED itself. The message names the failed check.
 */
export class X509SVIDError extends TesseraError {
  constructor(readonly reason: X509SVIDRejectReason, message: string, cause?: unknown) {
    super('INVALID_ARGUMENT', `invalid x509-svid: ${message}`, { cause });
  }
}

const MAX_CHAIN = 16;
/** Extensions this validator understands; any other critical extension fails the chain (RFC 5280 4.2). */
const UNDERSTOOD = new Set(['2.5.29.15', '2.5.29.17', '2.5.29.19', '2.5.29.37', '2.5.29.14', '2.5.29.35', '2.5.29.32']);
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

/**
 * One certificate seen two ways: Node (OpenSSL) for the outer parse, signatures
 * and chaining; its extensions decoded from the DER (./certificate-fields),
 * all at parse time, so a malformed extension fails as 'malformed' there.
 */
interface Parsed {
  node: X509Certificate;
  fields: CertificateFields;
  /** one line, as people write it: "O=SPIFFE, CN=x" (Node gives one attribute per line) */
  subject: string;
  basic?: { ca: boolean; pathLength?: number; critical: boolean };
  usage?: { has: (bit: number) => boolean; critical: boolean };
  san?: { uris: string[]; critical: boolean };
  ekus?: string[];
  hasSKI: boolean;
}

function parse(certDer: Buffer): Parsed {
  const node = new X509Certificate(certDer);
  const fields = readCertificateFields(certDer);
  const bc = extension(fields, OID.basicConstraints);
  const ku = extension(fields, OID.keyUsage);
  const san = extension(fields, OID.subjectAltName);
  const eku = extension(fields, OID.extKeyUsage);
  return {
    node,
    fields,
    subject: (node.subject ?? '').split('\n').join(', '), // undefined when the subject is empty
    basic: bc && { ...basicConstraints(bc), critical: bc.critical },
    usage: ku && { has: keyUsage(ku), critical: ku.critical },
    san: san && { uris: uriNames(san), critical: san.critical },
    ekus: eku && extKeyUsages(eku),
    hasSKI: extension(fields, OID.subjectKeyIdentifier) !== undefined,
  };
}

const reject = (reason: X509SVIDRejectReason, message: string, cause?: unknown) => new X509SVIDError(reason, message, cause);
const label = (i: number, p: Parsed) => `${i === 0 ? 'leaf' : `intermediate ${i}`} (${p.subject || 'empty subject'})`;
const isCA = (p: Parsed) => p.basic?.ca === true;
const hasUsage = (p: Parsed, bit: number) => p.usage?.has(bit) === true;
const uriSANs = (p: Parsed) => p.san?.uris ?? [];

/** The SPIFFE ID of a leaf: exactly one URI SAN, a valid SPIFFE ID with a path. */
function leafSpiffeId(leaf: Parsed): SpiffeId {
  const uris = uriSANs(leaf);
  if (uris.length === 0) throw reject('san-missing', 'leaf certificate has no URI SAN; an x509-svid carries exactly one spiffe id');
  if (uris.length > 1) throw reject('san-multiple', `leaf certificate has ${uris.length} URI SANs; an x509-svid carries exactly one spiffe id`);
  let id: SpiffeId;
  try {
    id = parseSpiffeId(uris[0]);
  } catch (e) {
    throw reject('spiffe-id-invalid', `leaf URI SAN is not a valid spiffe id: ${(e as Error).message}`, e);
  }
  if (id.path === '') throw reject('spiffe-id-no-path', `leaf spiffe id ${id} has no path; it names a trust domain, not a workload`);
  return id;
}

/**
 * Validates an X.509-SVID chain as the SPIFFE X.509-SVID standard asks a peer
 * to: the leaf has exactly one URI SAN holding a SPIFFE ID with a path, is not
 * a CA and has neither keyCertSign nor cRLSign; the chain is then path-validated
 * (names and key identifiers via OpenSSL's check-issued, signatures, validity
 * windows at `now`, intermediates cA=true with keyCertSign, pathLenConstraint,
 * no unknown critical extension) up to a root from the bundle of **the leaf's
 * own trust domain** only. The chain may end with that root or omit it.
 *
 * @param chain leaf first, then intermediates (DER)
 * @param bundles the X.509 roots (DER) of a trust domain, or undefined if there is no bundle for it
 * @throws X509SVIDError (INVALID_ARGUMENT) whose `reason` names the failed check
 */
export function validateX509SVIDChain(
  chain: Buffer[],
  bundles: (trustDomain: string) => Buffer[] | undefined,
  now: Date = new Date(),
): { spiffeId: string; leaf: X509Certificate } {
  if (chain.length === 0) throw reject('chain-empty', 'the certificate chain is empty');
  if (chain.length > MAX_CHAIN) throw reject('chain-too-long', `the chain has ${chain.length} certificates; at most ${MAX_CHAIN} are accepted`);
  const certs = chain.map((c, i) => {
    try {
      return parse(c);
    } catch (e) {
      throw reject('malformed', `certificate ${i} of the chain is not a valid DER certificate: ${(e as Error).message}`, e);
    }
  });

  return typedParse(reject, () => {
    const leaf = certs[0]!;
    const id = leafSpiffeId(leaf);
    if (isCA(leaf)) throw reject('leaf-is-ca', 'leaf certificate is a CA (basicConstraints cA=true)');
    if (hasUsage(leaf, KeyUsage.keyCertSign)) throw reject('leaf-key-cert-sign', 'leaf certificate has the keyCertSign key usage');
    if (hasUsage(leaf, KeyUsage.cRLSign)) throw reject('leaf-crl-sign', 'leaf certificate has the cRLSign key usage');

    const rootDers = bundles(id.trustDomain);
    if (!rootDers || rootDers.length === 0) throw reject('no-bundle', `no trust bundle for trust domain ${id.trustDomain}`);
    checkPath(certs, rootDers, now, `the bundle of trust domain ${id.trustDomain}`, reject);
    return { spiffeId: id.toString(), leaf: leaf.node };
  });
}

/**
 * Runs the checks on parsed certificates. Extensions are decoded at parse time,
 * so nothing here should throw anything but the checks' own errors; should a
 * plain Error escape all the same (fuzzing found such cases with the schema
 * parser used before), it is reported as a malformed certificate, never thrown raw.
 */
function typedParse<T>(fail: PathReject, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof TesseraError) throw e;
    throw fail('malformed', `a certificate of the chain has a malformed extension: ${(e as Error)?.message ?? String(e)}`, e);
  }
}

/** How a path failure is reported: SVID validation and x509pop attestation wrap it differently. */
export type PathReject = (reason: X509SVIDRejectReason, message: string, cause?: unknown) => Error;

/**
 * RFC 5280 path validation of an ordered chain (leaf first, each certificate
 * issued by the next) up to one of `rootDers`: validity of every certificate at
 * `now`, no critical extension this validator does not process, every
 * certificate above the leaf a CA (cA=true) with keyCertSign, pathLenConstraint
 * of intermediates and of the root, issuer names / key identifiers (OpenSSL's
 * check-issued) and signatures. The chain may end with the root itself. Leaf
 * rules (SPIFFE ID, key usage) are the caller's.
 * @param anchors what the roots are, for messages ("the bundle of trust domain x")
 * @returns the root the chain ends at (DER)
 * @throws what `fail` makes, with the reason and a message naming the certificate
 */
export function checkCertificatePath(chain: Buffer[], rootDers: Buffer[], now: Date, anchors: string, fail: PathReject): Buffer {
  const certs = chain.map((c, i) => {
    try {
      return parse(c);
    } catch (e) {
      throw fail('malformed', `certificate ${i} of the chain is not a valid DER certificate: ${(e as Error).message}`, e);
    }
  });
  return typedParse(fail, () => checkPath(certs, rootDers, now, anchors, fail));
}

function checkPath(certs: Parsed[], rootDers: Buffer[], now: Date, anchors: string, fail: PathReject): Buffer {
  const time = (what: string, c: Parsed) => {
    const { notBefore, notAfter } = c.fields;
    if (now.getTime() < notBefore.getTime()) throw fail('not-yet-valid', `${what} is not valid until ${notBefore.toISOString()}`);
    if (now.getTime() > notAfter.getTime()) throw fail('expired', `${what} expired at ${notAfter.toISOString()}`);
  };
  const pathLength = (what: string, c: Parsed, below: number) => {
    const max = c.basic?.pathLength;
    if (max !== undefined && below > max) throw fail('path-length-exceeded', `${what} allows ${max} intermediate(s) below it, the chain has ${below}`);
  };
  certs.forEach((p, i) => {
    const what = label(i, p);
    time(what, p);
    const unknown = p.fields.extensions.find((e) => e.critical && !UNDERSTOOD.has(e.oid));
    if (unknown) throw fail('unsupported-critical-extension', `${what} has critical extension ${unknown.oid}, which this validator does not process`);
    if (i > 0) {
      if (!isCA(p)) throw fail('intermediate-not-ca', `${what} is not a CA (basicConstraints cA is not true)`);
      if (!hasUsage(p, KeyUsage.keyCertSign)) throw fail('intermediate-no-key-cert-sign', `${what} lacks the keyCertSign key usage`);
      pathLength(what, p, i - 1);
    }
  });
  for (let i = 0; i + 1 < certs.length; i++) {
    const [child, parent] = [certs[i], certs[i + 1]];
    if (!child.node.checkIssued(parent.node)) {
      throw fail('issuer-mismatch', `${label(i, child)} was not issued by ${label(i + 1, parent)}: issuer name or key identifier differ`);
    }
    if (!child.node.verify(parent.node.publicKey)) {
      throw fail('signature-invalid', `the signature of ${label(i, child)} does not verify with the key of ${label(i + 1, parent)}`);
    }
  }

  const last = certs[certs.length - 1];
  const lastWhat = label(certs.length - 1, last);
  // The chain may carry the root itself; a leaf is never its own anchor.
  const carried = certs.length > 1 ? rootDers.find((r) => r.equals(last.node.raw)) : undefined;
  if (carried) return carried;
  const candidates = rootDers.flatMap((r) => {
    try {
      const p = parse(r);
      return last.node.checkIssued(p.node) ? [{ p, der: r }] : [];
    } catch {
      return []; // an unparseable bundle entry can anchor nothing
    }
  });
  if (candidates.length === 0) throw fail('untrusted-root', `${lastWhat} was not issued by any root in ${anchors}`);
  const signed = candidates.filter((r) => last.node.verify(r.p.node.publicKey));
  if (signed.length === 0) throw fail('signature-invalid', `the signature of ${lastWhat} does not verify with the key of any matching root in ${anchors}`);
  let firstProblem: unknown;
  for (const root of signed) {
    try {
      time(`root (${root.p.subject})`, root.p);
      pathLength(`root (${root.p.subject})`, root.p, certs.length - 1);
      return root.der;
    } catch (e) {
      firstProblem ??= e;
    }
  }
  throw firstProblem;
}

// ---------------------------------------------------------------- profile checks

function commonChecks(certDer: Buffer): { cert: Parsed; problems: string[] } | string[] {
  let cert: Parsed;
  try {
    cert = parse(certDer);
  } catch (e) {
    return [`not a valid DER certificate: ${(e as Error).message}`];
  }
  const problems: string[] = [];
  const { version, serialNegative, serialZero } = cert.fields;
  if (version !== 3) problems.push(`version is ${version}, must be 3`);
  if (serialNegative || serialZero) problems.push('serial number must be positive');
  return { cert, problems };
}

/**
 * Lists the ways a leaf certificate breaks the X.509-SVID profile (empty array:
 * conforming). Checks: v3, positive serial, exactly one URI SAN holding a SPIFFE
 * ID with a path, SAN critical when the subject is empty, not a CA, keyUsage
 * present and critical with digitalSignature and without keyCertSign/cRLSign,
 * extKeyUsage (when present) with serverAuth and clientAuth. Does not check
 * signatures or dates: that is {@link validateX509SVIDChain}'s job.
 */
export function checkX509SVIDProfile(certDer: Buffer): string[] {
  const r = commonChecks(certDer);
  if (Array.isArray(r)) return r;
  const { cert, problems } = r;
  const san = cert.san;
  const uris = uriSANs(cert);
  if (!san) problems.push('subjectAltName extension is missing');
  else if (uris.length !== 1) problems.push(`has ${uris.length} URI SANs, must have exactly one`);
  else {
    try {
      if (parseSpiffeId(uris[0]).path === '') problems.push(`URI SAN ${uris[0]} has no path; a leaf needs a workload id`);
    } catch (e) {
      problems.push(`URI SAN is not a valid spiffe id: ${(e as Error).message}`);
    }
  }
  if (san && !san.critical && cert.fields.subjectEmpty) problems.push('subject is empty, so subjectAltName must be critical');
  if (isCA(cert)) problems.push('basicConstraints cA is true, must be false');
  const ku = cert.usage;
  if (!ku) problems.push('keyUsage extension is missing');
  else {
    if (!ku.critical) problems.push('keyUsage must be critical');
    if (!ku.has(KeyUsage.digitalSignature)) problems.push('keyUsage lacks digitalSignature');
    if (ku.has(KeyUsage.keyCertSign)) problems.push('keyUsage has keyCertSign, forbidden in a leaf');
    if (ku.has(KeyUsage.cRLSign)) problems.push('keyUsage has cRLSign, forbidden in a leaf');
  }
  if (cert.ekus) {
    const usages = cert.ekus;
    if (!usages.includes(SERVER_AUTH)) problems.push('extKeyUsage lacks serverAuth');
    if (!usages.includes(CLIENT_AUTH)) problems.push('extKeyUsage lacks clientAuth');
  }
  return problems;
}

/**
 * Lists the ways a signing (CA) certificate breaks the X.509-SVID profile or
 * RFC 5280's CA rules (empty array: conforming): v3, positive serial,
 * basicConstraints present, critical, cA=true; keyUsage present, critical,
 * with keyCertSign; subjectKeyIdentifier present; URI SANs, if any, exactly one
 * SPIFFE ID without a path.
 */
export function checkX509CAProfile(certDer: Buffer): string[] {
  const r = commonChecks(certDer);
  if (Array.isArray(r)) return r;
  const { cert, problems } = r;
  const bc = cert.basic;
  if (!bc) problems.push('basicConstraints extension is missing');
  else {
    if (!bc.ca) problems.push('basicConstraints cA is false, must be true');
    if (!bc.critical) problems.push('basicConstraints must be critical');
  }
  const ku = cert.usage;
  if (!ku) problems.push('keyUsage extension is missing');
  else {
    if (!ku.critical) problems.push('keyUsage must be critical');
    if (!ku.has(KeyUsage.keyCertSign)) problems.push('keyUsage lacks keyCertSign');
  }
  if (!cert.hasSKI) problems.push('subjectKeyIdentifier extension is missing');
  const uris = uriSANs(cert);
  if (uris.length > 1) problems.push(`has ${uris.length} URI SANs, at most one is allowed`);
  for (const uri of uris) {
    try {
      if (parseSpiffeId(uri).path !== '') problems.push(`URI SAN ${uri} has a path; a CA names only its trust domain`);
    } catch (e) {
      problems.push(`URI SAN is not a valid spiffe id: ${(e as Error).message}`);
    }
  }
  return problems;
}
