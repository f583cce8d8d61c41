import { randomUUID } from 'node:crypto';
import type { SpiffeId } from '../../common/spiffeid/spiffe-id';
import type { Logger } from '../log';
import { claimsRecord, toCedarValue, type CedarJSON } from './cedar-values';
import type { PolicyDecision, PolicyEngine } from './engine';
import type { AuthnMethod } from './schema';

/** Something that hands out the policy in force: an engine, or a PolicyFile (which reloads). */
export type PolicySource = PolicyEngine | { engine(): PolicyEngine };

/** One decision to make: who is calling (and how they proved it), what, on what. */
export interface DecisionInput {
  principal: SpiffeId;
  authn: AuthnMethod;
  action: 'http' | 'call_tool' | string;
  resource: { type: 'Route' | 'Tool' | string; id: string };
  /** JWT-SVID claims, when it authenticated with one */
  claims?: Record<string, unknown>;
  /** an MCP tool call's arguments */
  arguments?: unknown;
  /** propagated from the caller (x-correlation-id), else made here */
  correlationId?: string;
}

export interface AuditedDecision extends PolicyDecision {
  correlationId: string;
}

/**
 * Asks the policy in force and writes **one audit line per decision** (pino JSON,
 * `"audit": true, "event": "authz_decision"`): the caller's SPIFFE ID and trust
 * domain, how it authenticated, the action and resource, the decision, the
 * policies that decided (and any that failed to evaluate), the correlation id,
 * and how long the evaluation took. Never the token or the tool arguments.
 */
export class PolicyAuthorizer {
  constructor(
    private readonly policy: PolicySource,
    private readonly log: Logger,
  ) {}

  private engine(): PolicyEngine {
    return 'authorize' in this.policy ? this.policy : this.policy.engine();
  }

  decide(i: DecisionInput): AuditedDecision {
    const correlationId = i.correlationId ?? randomUUID();
    const context = this.context(i, correlationId);
    const t = process.hrtime.bigint();
    const d = this.engine().authorize({ principal: i.principal, action: i.action, resource: i.resource, context });
    const evalUs = Number(process.hrtime.bigint() - t) / 1000;
    this.log.info(
      {
        audit: true,
        event: 'authz_decision',
        spiffe_id: i.principal.toString(),
        trust_domain: i.principal.trustDomain,
        authn: i.authn,
        action: i.action,
        resource: `${i.resource.type}::${i.resource.id}`,
        decision: d.allowed ? 'allow' : 'deny',
        policies: d.policies,
        errors: d.errors.length > 0 ? d.errors : undefined,
        correlation_id: correlationId,
        eval_us: Math.round(evalUs * 10) / 10,
      },
      'authz_decision',
    );
    return { ...d, correlationId };
  }

  /** Whether the caller could call `tool` with some arguments (for tools/list); not audited. */
  mayCallTool(principal: SpiffeId, authn: AuthnMethod, tool: string, claims?: Record<string, unknown>): boolean {
    const context = this.context({ principal, authn, action: 'call_tool', resource: { type: 'Tool', id: tool }, claims }, 'list');
    return this.engine().mayAllow({ principal, action: 'call_tool', resource: { type: 'Tool', id: tool }, context }, ['arguments']);
  }

  private context(i: DecisionInput, correlationId: string): Record<string, CedarJSON> {
    const c: Record<string, CedarJSON> = { authn: i.authn, correlation_id: correlationId };
    if (i.claims) c.claims = claimsRecord(i.claims);
    if (i.arguments !== undefined) {
      const a = toCedarValue(i.arguments);
      if (a !== undefined && typeof a === 'object' && !Array.isArray(a)) c.arguments = a;
    }
    return c;
  }
}
