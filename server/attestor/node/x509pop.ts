import { X509Certificate, createHash, randomBytes, verify as cryptoVerify } from 'node:crypto';
import { invalidArgument, permissionDenied } from '../../../common/errors';
import type { Selector } from '../../datastore/datastore';
import { X509POP_CONTEXT } from '../../../common/x509pop';
import { agentIdFor, type AttestationResult, type AttestStep, type NodeAttestor } from './node-attestor';

const MAX_CHAIN = 8;

interface PopState {
  nonce: Buffer;
  leaf: X509Certificate;
  result: AttestationResult;
}

/**
 * `x509pop` attestation (as SPIRE's x509pop): the agent sends a certificate chain
 * that must chain to a configured CA; the server answers with a random nonce and
 * the agent proves possession of the leaf's private key by signing it. Agent ID:
 * `spiffe://<td>/tessera/agent/x509pop/<sha1 fingerprint of the leaf>`. Selectors:
 * `x509pop:subject:cn:<CN>`, `x509pop:serialnumber:<hex>`,
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
    const path = this.verifyChain(chain);
    const fp = (c: X509Certificate) => c.fingerprint.replace(/:/g, '').toLowerCase();
    const selectors: Selector[] = [{ type: 'x509pop', value: `serialnumber:${leaf.serialNumber.toLowerCase()}` }];
    const cn = /(?:^|\n)CN=([^\n]*)/.exec(leaf.subject)?.[1];
    if (cn) selectors.push({ type: 'x509pop', value: `subject:cn:${cn}` });
    for (const ca of path) selectors.push({ type: 'x509pop', value: `ca:fingerprint:${fp(ca)}` });
    const state: PopState = {
      nonce: randomBytes(32),
      leaf,
      result: { agentId: agentIdFor(this.trustDomain, this.type, fp(leaf)), selectors, canReattest: true },
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

  /** RFC 5280-style path check leaf → intermediates → a configured root; returns the CAs above the leaf. */
  private verifyChain(chain: X509Certificate[]): X509Certificate[] {
    const now = this.now().getTime();
    const within = (c: X509Certificate) => Date.parse(c.validFrom) <= now && now <= Date.parse(c.validTo);
    if (chain[0]!.ca) throw permissionDenied('x509pop leaf certificate is a CA certificate');
    const path: X509Certificate[] = [];
    let cur = chain[0]!;
    const pool = chain.slice(1);
    for (let depth = 0; depth <= MAX_CHAIN; depth++) {
      if (!within(cur)) throw permissionDenied(`x509pop certificate "${cur.subject.replace(/\n/g, ', ')}" is expired or not yet valid`);
      const root = this.roots.find((r) => cur.checkIssued(r) && cur.verify(r.publicKey));
      if (root) {
        if (!within(root)) throw permissionDenied('x509pop root certificate is expired');
        path.push(root);
        return path;
      }
      const next = pool.find((c) => c.ca && cur.checkIssued(c) && cur.verify(c.publicKey));
      if (!next) break;
      path.push(next);
      cur = next;
    }
    throw permissionDenied('x509pop certificate does not chain to a configured x509pop CA');
  }
}

/** sha1 hex of a DER certificate (the fingerprint used in x509pop agent IDs). */
export const certFingerprint = (der: Buffer) => createHash('sha1').update(der).digest('hex');
