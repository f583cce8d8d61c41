import { createPrivateKey, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { decodeBundle, encodeBundle, type SpiffeBundle } from '../../common/bundle/bundle';
import type { EntryJSON } from '../client/server-client';

/**
 * On-disk formats of the agent data directory (JSON, version 1). DER blobs are
 * standard base64. Times: `not_before`/`not_after` in unix seconds (certificate
 * resolution), `received_at`/`rotate_at` in unix milliseconds.
 */

/** The agent's own X.509-SVID. */
export interface StoredIdentity {
  agentId: string;
  /** leaf first */
  chain: Buffer[];
  key: KeyObject;
  /** unix seconds */
  notBefore: number;
  notAfter: number;
  /** unix ms: when the agent received it (rotation counts from here, see rotation.ts) */
  receivedAt: number;
}

/** A workload X.509-SVID and the entry fields it was signed for. */
export interface StoredSVID {
  entryId: string;
  spiffeId: string;
  chain: Buffer[];
  /** unencrypted PKCS#8 DER */
  keyPkcs8: Buffer;
  notBefore: number;
  notAfter: number;
  receivedAt: number;
  /** unix ms, jitter included */
  rotateAt: number;
  /** the entry's dns_names and x509_svid_ttl when signed: a change means a new certificate */
  dnsNames: string[];
  ttl: number;
}

/** The workload cache: what the agent needs to serve workloads without the server. */
export interface StoredCache {
  trustDomain: string;
  revision?: number;
  bundleSequence?: number;
  bundle?: SpiffeBundle;
  federated: SpiffeBundle[];
  entries: EntryJSON[];
  svids: StoredSVID[];
}

const b64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/);
const num = z.number().finite();
const blob = b64.transform((s) => Buffer.from(s, 'base64'));

const identitySchema = z.object({
  version: z.literal(1),
  agent_id: z.string().startsWith('spiffe://'),
  chain: z.array(blob).min(1),
  key: blob,
  not_before: num,
  not_after: num,
  received_at: num,
});

const entrySchema = z
  .object({
    id: z.string(),
    spiffe_id: z.string(),
    parent_id: z.string(),
    selectors: z.array(z.object({ type: z.string(), value: z.string() })),
    x509_svid_ttl: num,
    jwt_svid_ttl: num,
    dns_names: z.array(z.string()),
    federates_with: z.array(z.string()),
    hint: z.string(),
    created_at: num,
    revision: num,
  })
  .loose(); // keep fields a newer server sends

const svidSchema = z.object({
  entry_id: z.string(),
  spiffe_id: z.string(),
  chain: z.array(blob).min(1),
  key: blob,
  not_before: num,
  not_after: num,
  received_at: num,
  rotate_at: num,
  dns_names: z.array(z.string()),
  ttl: num,
});

const cacheSchema = z.object({
  version: z.literal(1),
  trust_domain: z.string(),
  revision: num.nullable(),
  bundle_sequence: num.nullable(),
  bundle: z.record(z.string(), z.unknown()).nullable(),
  federated: z.record(z.string(), z.record(z.string(), z.unknown())),
  entries: z.array(entrySchema),
  svids: z.array(svidSchema),
});

const b64s = (list: Buffer[]) => list.map((d) => d.toString('base64'));

export function encodeIdentity(id: StoredIdentity): string {
  return JSON.stringify({
    version: 1,
    agent_id: id.agentId,
    chain: b64s(id.chain),
    key: (id.key.export({ type: 'pkcs8', format: 'der' }) as Buffer).toString('base64'),
    not_before: id.notBefore,
    not_after: id.notAfter,
    received_at: id.receivedAt,
  });
}

/** @throws on anything malformed (the caller treats it as a corrupt file) */
export function decodeIdentity(text: string): StoredIdentity {
  const d = identitySchema.parse(JSON.parse(text));
  return {
    agentId: d.agent_id,
    chain: d.chain,
    key: createPrivateKey({ key: d.key, format: 'der', type: 'pkcs8' }),
    notBefore: d.not_before,
    notAfter: d.not_after,
    receivedAt: d.received_at,
  };
}

/**
 * JSON of each record, kept as long as the record object lives. Records are never
 * mutated (a renewal makes a new one), so a save re-encodes only what changed:
 * with 10,000 SVIDs that is the difference between ~200 ms and ~20 ms of main
 * thread per save.
 */
const encoded = new WeakMap<object, string>();
function memo<T extends object>(v: T, encode: (v: T) => unknown): string {
  let s = encoded.get(v);
  if (s === undefined) encoded.set(v, (s = JSON.stringify(encode(v))));
  return s;
}

const svidDoc = (s: StoredSVID) => ({
  entry_id: s.entryId,
  spiffe_id: s.spiffeId,
  chain: b64s(s.chain),
  key: s.keyPkcs8.toString('base64'),
  not_before: s.notBefore,
  not_after: s.notAfter,
  received_at: s.receivedAt,
  rotate_at: s.rotateAt,
  dns_names: s.dnsNames,
  ttl: s.ttl,
});

export function encodeCache(c: StoredCache): string {
  const bundleDoc = (b: SpiffeBundle) => JSON.parse(encodeBundle(b)) as object;
  const head = JSON.stringify({
    version: 1,
    trust_domain: c.trustDomain,
    revision: c.revision ?? null,
    bundle_sequence: c.bundleSequence ?? null,
    bundle: c.bundle ? bundleDoc(c.bundle) : null,
    federated: Object.fromEntries(c.federated.map((b) => [b.trustDomain, bundleDoc(b)])),
  });
  const entries = c.entries.map((e) => memo(e, (x) => x)).join(',');
  const svids = c.svids.map((s) => memo(s, svidDoc)).join(',');
  return `${head.slice(0, -1)},"entries":[${entries}],"svids":[${svids}]}`;
}

/** @throws on anything malformed (the caller treats it as a corrupt file) */
export function decodeCache(text: string): StoredCache {
  const d = cacheSchema.parse(JSON.parse(text));
  return {
    trustDomain: d.trust_domain,
    revision: d.revision ?? undefined,
    bundleSequence: d.bundle_sequence ?? undefined,
    bundle: d.bundle ? decodeBundle(d.trust_domain, d.bundle) : undefined,
    federated: Object.entries(d.federated).map(([td, doc]) => decodeBundle(td, doc)),
    entries: d.entries as unknown as EntryJSON[],
    svids: d.svids.map((s) => ({
      entryId: s.entry_id,
      spiffeId: s.spiffe_id,
      chain: s.chain,
      keyPkcs8: s.key,
      notBefore: s.not_before,
      notAfter: s.not_after,
      receivedAt: s.received_at,
      rotateAt: s.rotate_at,
      dnsNames: s.dns_names,
      ttl: s.ttl,
    })),
  };
}
