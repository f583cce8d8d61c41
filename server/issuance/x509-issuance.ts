import { TesseraError } from '../../common/errors';
import { parseAndVerifyCSR } from '../../common/x509svid/csr';
import type { CAManager, MintedX509 } from '../ca/ca-manager';
import { SigningPool } from '../ca/signing/pool';
import { SVIDLedger } from '../ca/svid-ledger';
import type { RegistrationEntry } from '../datastore/datastore';

/** One X.509-SVID to issue: an entry the caller is already authorized for, and the CSR it sent. */
export interface X509IssueItem {
  entry: RegistrationEntry;
  csr: Buffer;
}

/**
 * Verify CSR → mint → ledger for a batch of X.509-SVIDs (authorization and audit
 * stay with the API that received the request). With a signing pool, CSR checks
 * and signatures run on its workers, grouped by TTL (one validity per group, as
 * the CA manager plans it on this thread with the server's one clock); without
 * one, or for a key that cannot go to workers, they run here. Identity, TTL and
 * DNS names come from the entry, never from the CSR.
 */
export class X509Issuance {
  constructor(
    private readonly d: {
      ca: CAManager;
      defaultTtl: number;
      pool?: SigningPool;
      ledger?: Pick<SVIDLedger, 'record'>;
    },
  ) {}

  /**
   * One SVID outside any entry (the admin API's `x509 mint`): the CSR is verified and
   * only its key used; identity, DNS names and TTL are the operator's. Signed here.
   * @throws TesseraError INVALID_ARGUMENT for a bad CSR, UNAVAILABLE when the CA cannot sign
   */
  mintOne(req: { spiffeId: string; csr: Buffer; dnsNames: string[]; ttl: number }): MintedX509 {
    const { publicKeySpki } = parseAndVerifyCSR(req.csr);
    return this.d.ca.mintX509SVID({ spiffeId: req.spiffeId, publicKeySpki, dnsNames: req.dnsNames, ttl: req.ttl });
  }

  /** One result per item, in order: the minted SVID or the item's typed error. */
  async issue(agentId: string, items: X509IssueItem[]): Promise<Array<MintedX509 | TesseraError>> {
    const out = await this.mintAll(items);
    const ledger = out.flatMap((r, i) =>
      r instanceof TesseraError ? [] : [{ holder: SVIDLedger.x509Holder(agentId, items[i]!.entry.id), authorityId: r.authorityId, expiresAt: r.expiresAt }],
    );
    await this.d.ledger?.record(ledger);
    return out;
  }

  private async mintAll(items: X509IssueItem[]): Promise<Array<MintedX509 | TesseraError>> {
    const ttlOf = (e: RegistrationEntry) => e.x509SvidTtl || this.d.defaultTtl;
    const pool = this.d.pool;
    if (!pool || items.length < 2) return items.map((it) => this.mintHere(it, ttlOf(it.entry)));
    const out: Array<MintedX509 | TesseraError> = new Array(items.length);
    const byTtl = new Map<number, number[]>();
    items.forEach((it, i) => {
      const ttl = ttlOf(it.entry);
      byTtl.set(ttl, [...(byTtl.get(ttl) ?? []), i]);
    });
    await Promise.all(
      [...byTtl].map(async ([ttl, idx]) => {
        let plan: ReturnType<CAManager['planX509Mint']>;
        try {
          plan = this.d.ca.planX509Mint(ttl);
        } catch (e) {
          if (!(e instanceof TesseraError)) throw e;
          for (const i of idx) out[i] = e;
          return;
        }
        if (!SigningPool.canSignWith(plan.signer.key)) {
          for (const i of idx) out[i] = this.mintHere(items[i]!, ttl);
          return;
        }
        const results = await pool.sign(
          { authorityId: plan.signer.slot.id, caCertDer: plan.signer.slot.certificateDer!, key: plan.signer.key, notBefore: plan.notBefore, notAfter: plan.notAfter },
          idx.map((i) => ({ csr: items[i]!.csr, spiffeId: items[i]!.entry.spiffeId, dnsNames: items[i]!.entry.dnsNames })),
        );
        results.forEach((r, k) => {
          out[idx[k]!] =
            'error' in r
              ? new TesseraError(r.error.code, r.error.message)
              : { chain: [Buffer.from(r.der), ...plan.signer.chainTail], serialHex: r.serialHex, expiresAt: plan.expiresAt, authorityId: plan.signer.slot.id };
        });
      }),
    );
    return out;
  }

  private mintHere(it: X509IssueItem, ttl: number): MintedX509 | TesseraError {
    try {
      const { publicKeySpki } = parseAndVerifyCSR(it.csr);
      return this.d.ca.mintX509SVID({ spiffeId: it.entry.spiffeId, publicKeySpki, dnsNames: it.entry.dnsNames, ttl });
    } catch (e) {
      if (e instanceof TesseraError) return e;
      throw e;
    }
  }
}
