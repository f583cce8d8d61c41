import type { CAJournalEntry } from '../datastore/datastore';
import { activateAt, prepareAt } from './rotation';

export type AuthorityKind = 'x509' | 'jwt';

/** One slot as operators see it (no key material). */
export interface AuthorityInfo {
  id: string;
  kind: AuthorityKind;
  state: CAJournalEntry['state'];
  tainted: boolean;
  /** X.509: subject key identifier (hex); JWT: kid */
  keyId: string;
  notBefore: number;
  notAfter: number;
  /** for the active slot: when the next key is prepared and activated (unix s) */
  prepareAt?: number;
  activateAt?: number;
  /** X.509 with an upstream authority: the CA is an intermediate, and the bundle holds the upstream roots */
  upstream?: boolean;
}

/** The operator view of a journal slot. A revoked slot was tainted first, so it counts as tainted. */
export function toAuthorityInfo(s: CAJournalEntry, keyId: string, upstream: boolean): AuthorityInfo {
  const info: AuthorityInfo = {
    id: s.id,
    kind: s.kind,
    state: s.state,
    tainted: s.state === 'tainted' || s.state === 'revoked',
    keyId,
    notBefore: s.notBefore,
    notAfter: s.notAfter,
  };
  if (s.state === 'active') {
    info.prepareAt = Math.ceil(prepareAt(s));
    info.activateAt = Math.ceil(activateAt(s));
  }
  if (upstream) info.upstream = true;
  return info;
}
