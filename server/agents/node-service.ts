import { randomBytes } from 'node:crypto';
import type { Logger } from '../../common/log';
import { F, audit } from '../../common/log';
import { TesseraError, invalidArgument, permissionDenied } from '../../common/errors';
import { parseAndVerifyCSR } from '../../common/x509svid/csr';
import type { AttestedNode, DataStore } from '../datastore/datastore';
import type { CAManager, MintedX509 } from '../ca/ca-manager';
import type { AttestationResult, NodeAttestor } from '../attestor/node/node-attestor';
import type { ServerMetrics } from '../telemetry';
import { SVIDLedger } from '../ca/svid-ledger';

/** Serials compare as lower-case hex without leading zeros (TLS and the minter format them differently). */
export const normSerial = (s: string) => s.toLowerCase().replace(/^0+/, '') || '0';

const CHALLENGE_TTL_MS = 60_000;
const MAX_PENDING_CHALLENGES = 10_000;

export interface AttestOutcome {
  agentId: string;
  svid: MintedX509;
}

interface Pending {
  attestor: NodeAttestor;
  state: unknown;
  spki: Buffer;
  expires: number;
  remote: string;
}

/**
 * Node attestation and the agents' own SVIDs: runs the named attestor, mints the
 * agent X.509-SVID from the agent's CSR (only its public key is used), records the
 * attested node, and checks on every agent request that the node is still known,
 * not banned, and presenting its current (or just-renewed) SVID.
 */
export class NodeService {
  private readonly pending = new Map<string, Pending>();

  constructor(
    private readonly deps: {
      store: DataStore;
      ca: CAManager;
      attestors: Map<string, NodeAttestor>;
      agentSvidTtl: number;
      log: Logger;
      metrics: ServerMetrics;
      now: () => number;
      /** milliseconds on a clock that never steps (challenge lifetimes); default performance.now */
      monotonicMs?: () => number;
      /** records which CA signed each agent SVID (dependents of a tainted CA) */
      ledger?: Pick<SVIDLedger, 'record'>;
    },
  ) {}

  /** Step one. Returns the finished attestation, or a challenge to answer. */
  async attest(
    type: unknown,
    payload: unknown,
    csrDer: Buffer,
    remote: string,
  ): Promise<{ done: AttestOutcome } | { challengeId: string; challenge: Buffer }> {
    const attestor = typeof type === 'string' ? this.deps.attestors.get(type) : undefined;
    if (!attestor) {
      throw invalidArgument(`unknown or disabled attestation type ${JSON.stringify(type)}; enabled: ${[...this.deps.attestors.keys()].join(', ')}`);
    }
    // The CSR is checked before the attestor runs, so a bad CSR never burns a join token.
    const { publicKeySpki } = parseAndVerifyCSR(csrDer);
    try {
      const step = await attestor.begin(payload);
      if ('done' in step) return { done: await this.complete(attestor.type, step.done, publicKeySpki, remote) };
      this.sweep();
      if (this.pending.size >= MAX_PENDING_CHALLENGES) throw new TesseraError('UNAVAILABLE', 'too many attestations in progress; retry shortly');
      const challengeId = randomBytes(16).toString('base64url');
      this.pending.set(challengeId, { attestor, state: step.state, spki: publicKeySpki, expires: this.mono() + CHALLENGE_TTL_MS, remote });
      return { challengeId, challenge: step.challenge };
    } catch (e) {
      this.denied(attestor.type, e, remote);
      throw e;
    }
  }

  /** Step two of a challenge–response attestation. */
  async answer(challengeId: unknown, response: Buffer, remote: string): Promise<AttestOutcome> {
    const p = typeof challengeId === 'string' ? this.pending.get(challengeId) : undefined;
    if (!p || p.expires < this.mono()) throw permissionDenied('attestation challenge is unknown or expired; start the attestation again');
    this.pending.delete(challengeId as string);
    try {
      const result = await p.attestor.finish!(p.state, response);
      return await this.complete(p.attestor.type, result, p.spki, remote);
    } catch (e) {
      this.denied(p.attestor.type, e, remote);
      throw e;
    }
  }

  private denied(type: string, e: unknown, remote: string): void {
    const code = e instanceof TesseraError ? e.code : 'INTERNAL';
    this.deps.metrics.attestations.inc({ type, result: code === 'INTERNAL' ? 'error' : 'denied' });
    audit(this.deps.log, 'node_attestation_denied', {
      [F.attestationType]: type,
      [F.remoteAddr]: remote,
      [F.code]: code,
      [F.reason]: e instanceof TesseraError ? e.message : 'internal error',
    });
  }

  private async complete(type: string, r: AttestationResult, spki: Buffer, remote: string): Promise<AttestOutcome> {
    for (const legacy of r.legacyAgentIds ?? []) await this.migrate(legacy, r.agentId);
    const existing = await this.deps.store.fetchAttestedNode(r.agentId);
    if (existing?.banned) throw permissionDenied(`agent ${r.agentId} is banned; an operator must remove the ban (evict it) first`);
    if (existing && !r.canReattest) throw permissionDenied(`agent ${r.agentId} is already attested and its attestor does not allow re-attestation`);
    const svid = this.deps.ca.mintX509SVID({ spiffeId: r.agentId, publicKeySpki: spki, ttl: this.deps.agentSvidTtl });
    if (existing) {
      await this.deps.store.updateAttestedNode(r.agentId, {
        serialNumber: normSerial(svid.serialHex),
        expiresAt: svid.expiresAt,
        newSerialNumber: '',
        newExpiresAt: 0,
        selectors: r.selectors,
      });
    } else {
      await this.deps.store.createAttestedNode({
        spiffeId: r.agentId,
        attestationType: type,
        serialNumber: normSerial(svid.serialHex),
        expiresAt: svid.expiresAt,
        newSerialNumber: '',
        newExpiresAt: 0,
        selectors: r.selectors,
        banned: false,
      });
    }
    await this.recordIssued(r.agentId, svid);
    this.deps.metrics.attestations.inc({ type, result: 'ok' });
    this.deps.metrics.svidsIssued.inc({ type: 'agent_x509', api: 'agent' });
    audit(this.deps.log, 'node_attested', {
      [F.agentId]: r.agentId,
      [F.attestationType]: type,
      [F.remoteAddr]: remote,
      [F.serial]: svid.serialHex,
      [F.expiresAt]: svid.expiresAt,
      reattested: !!existing,
    });
    return { agentId: r.agentId, svid };
  }

  /**
   * Moves a node recorded under an ID an older version gave it to its current ID:
   * the record (a ban included: a ban under either ID holds for both) and the
   * entries parented to it. The old record is deleted, so the old agent SVID stops working.
   */
  private async migrate(legacyId: string, agentId: string): Promise<void> {
    if (legacyId === agentId) return;
    const old = await this.deps.store.fetchAttestedNode(legacyId);
    if (!old) return;
    const current = await this.deps.store.fetchAttestedNode(agentId);
    if (!current) {
      const { createdAt: _c, updatedAt: _u, ...fields } = old;
      await this.deps.store.createAttestedNode({ ...fields, spiffeId: agentId });
    } else if (old.banned && !current.banned) {
      await this.deps.store.updateAttestedNode(agentId, { banned: true });
    }
    const children = await this.deps.store.listRegistrationEntries({ parentId: legacyId });
    for (const e of children.items) await this.deps.store.updateRegistrationEntry(e.id, { parentId: agentId });
    await this.deps.store.deleteAttestedNode(legacyId);
    audit(this.deps.log, 'agent_id_migrated', { from: legacyId, to: agentId, banned: old.banned, entries_moved: children.items.length });
  }

  /**
   * The attested node behind a verified client certificate, or PERMISSION_DENIED
   * when it was evicted, banned, or presents an SVID that is no longer its own.
   * Presenting the renewed SVID promotes it to current (SPIRE's new_serial_number).
   */
  async authenticate(agentId: string, serialHex: string): Promise<AttestedNode> {
    const node = await this.deps.store.fetchAttestedNode(agentId);
    if (!node) throw permissionDenied(`agent ${agentId} is not attested (it may have been evicted); the agent must attest again`);
    if (node.banned) throw permissionDenied(`agent ${agentId} is banned`);
    const presented = normSerial(serialHex);
    if (presented === normSerial(node.serialNumber)) return node;
    if (node.newSerialNumber && presented === normSerial(node.newSerialNumber)) {
      return this.deps.store.updateAttestedNode(agentId, {
        serialNumber: node.newSerialNumber,
        expiresAt: node.newExpiresAt,
        newSerialNumber: '',
        newExpiresAt: 0,
      });
    }
    throw permissionDenied(`agent ${agentId} presented an SVID that is no longer current; the agent must attest again`);
  }

  /** Renews the agent's own SVID from a CSR; the old SVID stays valid until the new one is used. */
  async renew(node: AttestedNode, csrDer: Buffer): Promise<MintedX509> {
    const { publicKeySpki } = parseAndVerifyCSR(csrDer);
    const svid = this.deps.ca.mintX509SVID({ spiffeId: node.spiffeId, publicKeySpki, ttl: this.deps.agentSvidTtl });
    await this.deps.store.updateAttestedNode(node.spiffeId, { newSerialNumber: normSerial(svid.serialHex), newExpiresAt: svid.expiresAt });
    await this.recordIssued(node.spiffeId, svid);
    this.deps.metrics.svidsIssued.inc({ type: 'agent_x509', api: 'agent' });
    audit(this.deps.log, 'agent_svid_renewed', { [F.agentId]: node.spiffeId, [F.serial]: svid.serialHex, [F.expiresAt]: svid.expiresAt });
    return svid;
  }

  private recordIssued(agentId: string, svid: MintedX509): Promise<void> | undefined {
    return this.deps.ledger?.record([{ holder: SVIDLedger.agentHolder(agentId), authorityId: svid.authorityId, expiresAt: svid.expiresAt }]);
  }

  private mono(): number {
    return this.deps.monotonicMs ? this.deps.monotonicMs() : performance.now();
  }

  private sweep(): void {
    const t = this.mono();
    for (const [k, p] of this.pending) if (p.expires < t) this.pending.delete(k);
  }
}
