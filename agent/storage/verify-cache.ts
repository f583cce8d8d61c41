import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { validateX509SVIDChain } from '../../common/x509svid/validate';
import { certificateValidity } from '../../common/x509svid/certificate-validity';
import * as der from '../../common/der/der';
import type { StoredCache, StoredIdentity, StoredSVID } from './formats';

/** An SVID of the stored cache that failed verification, and why. */
export interface DroppedSVID {
  entryId: string;
  reason: string;
}

/**
 * Checks what the agent reads back from its data directory before it serves it:
 * the data directory is trusted only as far as its ownership checks go, and a file
 * that was tampered with (or written by a buggy older build) must not make the
 * agent hand a workload a certificate the server never issued for it. For every
 * stored X.509-SVID:
 * - the chain validates as an X.509-SVID (signatures, validity at `now`, path rules)
 *   up to a root of the **cached** own bundle;
 * - its URI SAN equals the SPIFFE ID of the entry it is stored under;
 * - the stored private key is the certificate's key;
 * - notBefore / notAfter are taken from the certificate, not from the JSON.
 * What fails is dropped (the caller logs it) and is signed again at the next sync.
 *
 * Full path validation runs once per distinct issuer chain; the other leaves of
 * that chain get the leaf checks only (issuer, signature with the issuer's cached
 * key, validity, SAN, key), so 10,000 SVIDs cost about one ECDSA verification each.
 */
export function verifyStoredCache(c: StoredCache, now: number): { cache: StoredCache; dropped: DroppedSVID[] } {
  const roots = c.bundle?.x509Authorities ?? [];
  const entries = new Map(c.entries.map((e) => [e.id, e]));
  const issuers = new Map<string, { cert: X509Certificate; key: KeyObject }>();
  const kept: StoredSVID[] = [];
  const dropped: DroppedSVID[] = [];
  for (const s of c.svids) {
    const reason = problem(s);
    if (reason) dropped.push({ entryId: s.entryId, reason });
  }
  return { cache: { ...c, svids: kept }, dropped };

  function problem(s: StoredSVID): string | undefined {
    const entry = entries.get(s.entryId);
    if (!entry) return 'its entry is not in the cache';
    if (roots.length === 0) return 'the cache holds no bundle to verify it with';
    let leaf: X509Certificate;
    let v: ReturnType<typeof certificateValidity>;
    try {
      leaf = new X509Certificate(s.chain[0]!);
      v = certificateValidity(s.chain[0]!);
      const tailKey = Buffer.concat(s.chain.slice(1)).toString('base64');
      let issuer = issuers.get(tailKey);
      if (issuer && leaf.checkIssued(issuer.cert)) {
        if (!leaf.verify(issuer.key)) return 'its signature does not verify';
        const t = now / 1000;
        if (t < v.notBefore || t >= v.notAfter) return 'it is expired or not yet valid';
        if (leaf.ca) return 'it is a ca certificate';
        const uris = (leaf.subjectAltName ?? '').split(', ').filter((n) => n.startsWith('URI:'));
        if (uris.length !== 1 || uris[0] !== `URI:${entry.spiffe_id}`) return `its uri san is not the entry's spiffe id ${entry.spiffe_id}`;
      } else {
        const r = validateX509SVIDChain(s.chain, (td) => (td === c.trustDomain ? roots : undefined), new Date(now));
        if (r.spiffeId !== entry.spiffe_id) return `its uri san ${r.spiffeId} is not the entry's spiffe id ${entry.spiffe_id}`;
        // The leaf's issuer: the first intermediate, or the bundle root that signed it.
        const cert = s.chain.length > 1 ? new X509Certificate(s.chain[1]!) : roots.map((d) => new X509Certificate(d)).find((r) => leaf.checkIssued(r) && leaf.verify(r.publicKey));
        if (cert) issuers.set(tailKey, (issuer = { cert, key: cert.publicKey }));
      }
      if (!keyMatches(s.keyPkcs8, v.spki, leaf)) return 'the stored key is not the certificate key';
    } catch (e) {
      return (e as Error).message;
    }
    const { notBefore, notAfter } = v;
    const halfLife = (notBefore + (notAfter - notBefore) / 2) * 1000;
    kept.push({ ...s, notBefore, notAfter, rotateAt: Math.min(s.rotateAt, halfLife) });
    return undefined;
  }
}

/**
 * Whether a PKCS#8 key belongs to the certificate. For EC keys the public point
 * stored in the key (ECPrivateKey's publicKey, which Node always writes) is
 * compared with the certificate's, with the strict DER reader: importing each
 * private key instead costs ~0.4 ms, 4 s for 10,000 SVIDs at every agent start.
 * Keys without that field (other writers) are imported and checked by OpenSSL.
 */
function keyMatches(pkcs8: Buffer, spki: Buffer, leaf: X509Certificate): boolean {
  const point = ecPublicPointOfPkcs8(pkcs8);
  if (point) {
    const [, bits] = der.readChildren(spki, der.expectTLV(spki, 0, der.TAG.SEQUENCE, 'subjectPublicKeyInfo'));
    return !!bits && bits.tag === der.TAG.BIT_STRING && spki.subarray(bits.start, bits.end).equals(point);
  }
  return leaf.checkPrivateKey(createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }));
}

/** The BIT STRING content (unused-bits byte + point) of the publicKey [1] inside a PKCS#8 EC key, if present. */
function ecPublicPointOfPkcs8(pkcs8: Buffer): Buffer | undefined {
  try {
    const outer = der.readChildren(pkcs8, der.expectTLV(pkcs8, 0, der.TAG.SEQUENCE, 'pkcs8'));
    const inner = outer[2];
    if (!inner || inner.tag !== der.TAG.OCTET_STRING) return undefined;
    const ec = pkcs8.subarray(inner.start, inner.end);
    for (const f of der.readChildren(ec, der.expectTLV(ec, 0, der.TAG.SEQUENCE, 'ECPrivateKey'))) {
      if (f.tag !== 0xa1) continue;
      const bits = der.expectTLV(ec, f.start, der.TAG.BIT_STRING, 'publicKey', f.end);
      return ec.subarray(bits.start, bits.end);
    }
  } catch {
    // not an EC PKCS#8 key this reader knows: let OpenSSL decide
  }
  return undefined;
}

/**
 * The agent's own SVID as read back from disk: its URI SAN must be the stored
 * agent ID and the stored key its key; with `roots` (the cached bundle) the chain
 * must also validate. Validity comes from the certificate.
 * @returns the identity, or the reason it cannot be used
 */
export function verifyStoredIdentity(id: StoredIdentity, roots: Buffer[] | undefined, trustDomain: string, now: number): StoredIdentity | string {
  try {
    const leaf = new X509Certificate(id.chain[0]!);
    if (roots && roots.length > 0) {
      const r = validateX509SVIDChain(id.chain, (td) => (td === trustDomain ? roots : undefined), new Date(now));
      if (r.spiffeId !== id.agentId) return `its uri san ${r.spiffeId} is not the stored agent id`;
    } else {
      const uris = (leaf.subjectAltName ?? '').split(', ').filter((n) => n.startsWith('URI:'));
      if (uris.length !== 1 || uris[0] !== `URI:${id.agentId}`) return 'its uri san is not the stored agent id';
    }
    if (!leaf.checkPrivateKey(id.key)) return 'the stored key is not the certificate key';
    const { notBefore, notAfter } = certificateValidity(id.chain[0]!);
    return { ...id, notBefore, notAfter };
  } catch (e) {
    return (e as Error).message;
  }
}
