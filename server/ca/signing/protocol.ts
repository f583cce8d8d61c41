import type { KeyObject } from 'node:crypto';
import type { ErrorCode } from '../../../common/errors';
import type { KeyType } from '../../keymanager/keymanager';

/** Messages between the signing pool (main thread) and its workers. Same process only. */

/** A CA a worker signs with; sent once per worker and authority. */
export interface AuthorityInstall {
  id: string;
  caCertDer: Uint8Array;
  keyId: string;
  keyType: KeyType;
  /** the CA private key: a KeyObject is cloned between threads of this process, never serialized */
  key: KeyObject;
}

/** One leaf to mint: the CSR is verified in the worker, and only its public key is used. */
export interface SignItem {
  csr: Uint8Array;
  spiffeId: string;
  dnsNames: string[];
}

export interface SignJob {
  id: number;
  install?: AuthorityInstall;
  authorityId: string;
  /** ms since the epoch, decided by the CA manager on the main thread (one clock) */
  notBefore: number;
  notAfter: number;
  items: SignItem[];
}

export type SignResult = { der: Uint8Array; serialHex: string } | { error: { code: ErrorCode; message: string } };

export interface SignReply {
  id: number;
  results: SignResult[];
}
