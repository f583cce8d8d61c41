import type { KeyObject } from 'node:crypto';
import type { SpiffeBundle } from '../../common/bundle/bundle';
import type { Clock } from '../../common/clock';
import type { Logger } from '../../common/log';
import type { ServerClient } from '../client/server-client';
import type { BackoffOptions } from '../../common/backoff';

/** What a successful node attestation yields (join token or x509pop, done by the caller). */
export interface AttestedIdentity {
  /** the agent X.509-SVID, leaf first */
  chain: Buffer[];
  key: KeyObject;
  agentId: string;
  /** the trust domain bundle the server sent with the SVID */
  bundle: SpiffeBundle;
}

/**
 * How to attest (again). Undefined, or a function returning undefined, when no
 * attestation method is configured: the agent then runs on its stored SVID only.
 */
export type AttestFn = (() => Promise<AttestedIdentity> | undefined) | undefined;

/** Events for metrics (the manager never imports prom-client; the caller maps these). */
export type ManagerEvent =
  | { type: 'sync'; ok: boolean; full?: boolean }
  | { type: 'x509_svids_signed'; count: number; rotations: number }
  | { type: 'x509_sign_errors'; count: number }
  | { type: 'x509_svids_expired'; count: number }
  | { type: 'agent_svid_renewed' }
  | { type: 'attested'; reattestation: boolean }
  | { type: 'jwt_svid_minted' }
  | { type: 'bundle_updated' };

/** Figures for gauges. Times are unix seconds. */
export interface ManagerStats {
  /** X.509-SVIDs held and not expired */
  cachedSVIDs: number;
  /** X.509-SVIDs replaced by a new one since start */
  rotations: number;
  /** notAfter of the X.509-SVID expiring first, or null when none is held */
  earliestExpiry: number | null;
  /** when the last sync with the server succeeded, or null if none has since start */
  lastSyncOk: number | null;
}

/** Options of AgentManager.start. */
export interface AgentManagerOptions {
  client: ServerClient;
  trustDomain: string;
  dataDir: string;
  /** how to (re-)attest; undefined (or returning undefined) when no method is configured */
  attest: AttestFn;
  /** re-attest when the server says the agent was evicted (else keep serving the cache) */
  reattestOnEviction: boolean;
  log: Logger;
  clock?: Clock;
  /** long-poll wait per sync request, seconds; default 30 (at most the server's agent_sync_max_wait) */
  syncWaitSeconds?: number;
  onMetrics?: (e: ManagerEvent) => void;
  /** retry delays after failures; default 1 s doubling up to 30 s, full jitter */
  backoff?: BackoffOptions;
  /** randomness for jitter (tests make it deterministic) */
  random?: () => number;
  /** delay between a change and writing the cache to disk; default 200 ms */
  persistDelayMs?: number;
  /** the longest a save waits for a running signing round to end; default 5 s */
  maxPersistDelayMs?: number;
}
