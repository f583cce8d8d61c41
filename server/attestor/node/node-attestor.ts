import type { Selector } from '../../datastore/datastore';

/** Who the attestor proved the agent to be; the CA then decides what gets signed. */
export interface AttestationResult {
  agentId: string;
  selectors: Selector[];
  /** may an agent with this ID attest again (x509pop: yes; join tokens are one-time) */
  canReattest: boolean;
  /** IDs older versions gave the same node: records under them are migrated to `agentId` (bans included) */
  legacyAgentIds?: string[];
}

export type AttestStep =
  | { done: AttestationResult }
  /** challenge–response: send `challenge` to the agent, keep `state` for `finish` */
  | { challenge: Buffer; state: unknown };

/**
 * A node attestor, looked up by name (SPIRE's NodeAttestor plugin: Attest(payload,
 * challengeFn) → AgentID, selectors). Over HTTP the challenge round trip is split
 * into `begin` and `finish`. Attestors throw TesseraError: INVALID_ARGUMENT for
 * malformed payloads, PERMISSION_DENIED when the evidence does not hold.
 */
export interface NodeAttestor {
  readonly type: string;
  begin(payload: unknown): Promise<AttestStep>;
  finish?(state: unknown, response: Buffer): Promise<AttestationResult>;
}

export const AGENT_PATH_PREFIX = '/tessera/agent/';
export const agentIdFor = (trustDomain: string, type: string, suffix: string) =>
  `spiffe://${trustDomain}${AGENT_PATH_PREFIX}${type}/${suffix}`;
