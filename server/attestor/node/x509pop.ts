import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate, createHash, randomBytes, verify as cryptoVerify } from 'node:crypto';
import { invalidArgument, permissionDenied, TesseraError } from '../../../common/errors';
import type { Selector } from '../../datastore/datastore';
import { X509POP_CONTEXT } from '../../../common/x509pop';
import { checkCertificatePath } from '../../../common/x509svid/validate';
import { CURVE_NAME, tbsCertificate, withFlippedSignatureS } from '../../../common/x509svid/ecdsa-signature';
import { agentIdFor, type AttestationResult, type AttestStep, type NodeAttestor } from './node-attestor';

const MAX_CHAIN = 8;
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const ANY_EKU = '2.5.29.37.0';

interface PopState {
  nonce: Buffer;
  leaf: X509Certificate;
  result: AttestationResult;
}

/**
 * `x509pop` attestation (as SPIRE's x509pop): the agent sends a certificate chain
 * that must chain to a configured CA; the server answers with a random nonce and
 * the agent proves possession of the leaf's private key by signing it.
 *
 * Agent ID: `spiffe://<td>/tessera/agent/x509pop/<sha256 of the leaf's tbsCertificate>`.
 * Not the certificate's fingerprint (SPIRE's choice, and Tessera's before): an
 * ECDSA signature (r, s) has a twin (r, n − s) that verifies just as well, so
 * whoever holds a copy of a certificate can make a second encoding with another
 * fingerprint, and a banned node came back under a new agent ID with the same key
 * and certificate contents. The tbsCertificate is what the CA signed and cannot
 * change without the CA's key. Agents recorded under the old fingerprint IDs
 * (`legacyAgentIds`, both signature encodings) are migrated when they attest.
 *
 * Path validation is RFC 5280's (common/x509svid/validate.ts checkCertificatePath:
 * validity, CA basic constraints, keyCertSign, pathLenConstraint, critical
 * extensions, signatures) and the leaf must be fit for signing in a client role:
 * not a CA, keyUsage with digitalSignature (as SPIRE requires), and an
 * extendedKeyUsage, when present, with clientAuth (or anyExtendedKeyUsage).
 *
 * Selectors: `x509pop:subject:cn:<CN>`, `x509pop:serialnumber:<hex>`,
 * `x509pop:ca:fingerprint:<sha1>` for each certificate above the leaf.
 */
export class X509PopAttestor implements NodeAttestor {
  readonly type = 'x509pop';

  constructor(
    private readonly roots: X509Certificate[],
    private readonly trustDomain: string,
    private readonly now: () => Date,
  ) {}

  async begin(payload: unknown): Promise<AttestStep> {
    const certs = (payload as { certificates?: unknown } | null)?.certificates;
    if (!Array.isArray(certs) || certs.length === 0 || certs.length > MAX_CHAIN || !certs.every((c) => typeof c === 'string')) {
      throw invalidArgument(`x509pop payload must be {"certificates": [base64 DER, leaf first, at most ${MAX_CHAIN}]}`);
    }
    const chain = certs.map((c: string, i) => {
      try {
        return new X509Certificate(Buffer.from(c, 'base64'));
      } catch {
        throw invalidArgument(`x509pop certificates.${i} is not a DER certificate`);
      }
    });
    const leaf = chain[0]!;
    // @peculiar/x509 decodes extensions lazily and throws plain Errors on malformed ones (found by fuzzing)
    let path: X509Certificate[];
    let legacy: string[];
    try {
      checkLeaf(leaf);
      path = this.verifyChain(chain);
      legacy = legacyAgentIds(leaf.raw, path[0]!);
    } catch (e) {
      if (e instanceof TesseraError) throw e;
      throw invalidArgument(`x509pop certificate has a malformed extension: ${(e as Error)?.message ?? String(e)}`);
    }
    const fp = (c: X509Certificate) => c.fingerprint.replace(/:/g, '').toLowerCase();
    const selectors: Selector[] = [{ type: 'x509pop', value: `serialnumber:${leaf.serialNumber.toLowerCase()}` }];
    const cn = /(?:^|\n)CN=([^\n]*)/.exec(leaf.subject)?.[1];
    if (cn) selectors.push({ type: 'x509pop', value: `subject:cn:${cn}` });
    for (const ca of path) selectors.push({ type: 'x509pop', value: `ca:fingerprint:${fp(ca)}` });
    const state: PopState = {
      nonce: randomBytes(32),
      leaf,
      result: {
        agentId: agentIdFor(this.trustDomain, this.type, x509popAgentSuffix(leaf.raw)),
        selectors,
        canReattest: true,
        legacyAgentIds: legacy.map((h) => agentIdFor(this.trustDomain, this.type, h)),
      },
    };
    return { challenge: state.nonce, state };
  }

  async finish(state: unknown, response: Buffer): Promise<AttestationResult> {
    const s = state as PopState;
    const data = Buffer.concat([X509POP_CONTEXT, s.nonce]);
    let ok = false;
    try {
      ok = cryptoVerify('sha256', data, s.leaf.publicKey, response);
    } catch {
      ok = false;
    }
    if (!ok) throw permissionDenied('x509pop challenge signature does not verify with the certificate key');
    return s.result;
  }

  /**
   * Builds the path leaf → intermediates (from the sent certificates, in any
   * order) → a configured root, then validates it. @returns the CAs above the leaf, nearest first, root last
   */
  private verifyChain(chain: X509Certificate[]): X509Certificate[] {
    const path: X509Certificate[] = [chain[0]!];
    const pool = chain.slice(1);
    let root: X509Certificate | undefined;
    for (let cur = chain[0]!; path.length <= MAX_CHAIN; ) {
      root = this.roots.find((r) => cur.checkIssued(r) && cur.verify(r.publicKey));
      if (root) break;
      const next = pool.find((c) => !path.includes(c) && cur.checkIssued(c) && cur.verify(c.publicKey));
      if (!next) break;
      path.push(next);
      cur = next;
    }
    if (!root) throw permissionDenied('x509pop certificate does not chain to a configured x509pop CA');
    checkCertificatePath(
      path.map((c) => c.raw),
      [root.raw],
      this.now(),
      'the configured x509pop CAs',
      (_reason, message) => permissionDenied(`x509pop certificate chain is not valid: ${message}`),
    );
    return [...path.slice(1), root];
  }
}

/** The leaf rules: a signing key for a client, not a CA. */
function checkLeaf(leaf: X509Certificate): void {
  if (leaf.ca) throw permissionDenied('x509pop leaf certificate is a CA certificate');
  const c = new x509.X509Certificate(leaf.raw);
  const ku = c.getExtension(x509.KeyUsagesExtension);
  if (!ku || (ku.usages & x509.KeyUsageFlags.digitalSignature) === 0) {
    throw permissionDenied('x509pop leaf certificate is not for digital signatures (its keyUsage lacks digitalSignature)');
  }
  const eku = c.getExtension(x509.ExtendedKeyUsageExtension);
  if (eku && !eku.usages.map(String).some((u) => u === CLIENT_AUTH || u === ANY_EKU)) {
    throw permissionDenied('x509pop leaf certificate is not for client authentication (its extendedKeyUsage lacks clientAuth)');
  }
}

/** The agent ID suffix of an x509pop leaf: SHA-256 (hex) of its tbsCertificate, the same for every encoding of its signature. */
export function x509popAgentSuffix(leafDer: Buffer): string {
  return createHash('sha256').update(tbsCertificate(leafDer)).digest('hex');
}

/**
 * The suffixes older Tessera versions gave this certificate (SHA-1 of its DER),
 * for both encodings of an ECDSA signature: a node banned under either is the
 * same node.
 */
function legacyAgentIds(leafDer: Buffer, issuer: X509Certificate): string[] {
  const out = [certFingerprint(leafDer)];
  const curve = CURVE_NAME[issuer.publicKey.asymmetricKeyDetails?.namedCurve ?? ''];
  const twin = curve ? withFlippedSignatureS(leafDer, curve) : undefined;
  if (twin) out.push(certFingerprint(twin));
  return out;
}

/** sha1 hex of a DER certificate (the fingerprint x509pop agent IDs used before they moved to the tbsCertificate). */
export const certFingerprint = (der: Buffer) => createHash('sha1').update(der).digest('hex');
