import { invalidArgument } from '../../../common/errors';
import type { AttestedNode, SelectorMatch } from '../../datastore/datastore';

/** Helpers of more than one admin router. */

export const MAX_BATCH = 1000;

export function requireAllowlist(a: readonly string[] | undefined, where: string): void {
  if (!a || a.length === 0) {
    throw invalidArgument(`${where}jwt_audiences: this server requires every entry to list the JWT audiences its workloads may ask for (jwt.require_audience_allowlist)`);
  }
}
export const MATCHES: SelectorMatch[] = ['exact', 'subset', 'superset', 'any'];

export const nodeToJSON = (n: AttestedNode) => ({
  spiffe_id: n.spiffeId,
  attestation_type: n.attestationType,
  serial_number: n.serialNumber,
  expires_at: n.expiresAt,
  selectors: n.selectors,
  banned: n.banned,
  created_at: n.createdAt,
  updated_at: n.updatedAt,
});

export function arrayField(b: Record<string, unknown>, key: string): unknown[] {
  const v = b[key];
  if (!Array.isArray(v) || v.length === 0 || v.length > MAX_BATCH) throw invalidArgument(`${key} must be an array of 1..${MAX_BATCH} items`);
  return v;
}

export const queryList = (v: unknown): string[] => (v === undefined ? [] : Array.isArray(v) ? v.map(String) : [String(v)]);
