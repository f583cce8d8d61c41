import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { randomBytes } from 'node:crypto';
import { TesseraError } from '../../common/errors';
import type { SpiffeId } from '../../common/spiffeid/spiffe-id';
import { TESSERA_SCHEMA, resourceEntity, workloadEntity, TRUST_DOMAIN, WORKLOAD } from './schema';
import type { CedarJSON } from './cedar-values';

/** A policy file that does not parse or does not validate against the schema. */
export class PolicyError extends TesseraError {
  constructor(
    message: string,
    /** 1-based line of the first problem in the policy text, when known */
    readonly line?: number,
  ) {
    super('INVALID_ARGUMENT', message);
  }
}

/** One authorization question: who, what, on what, and the request's context. */
export interface PolicyRequest {
  principal: SpiffeId;
  /** `http` or `call_tool` (or an action of your own schema) */
  action: string;
  /** `{ type: 'Route', id: 'POST /v1/chat' }` or `{ type: 'Tool', id: 'search' }` */
  resource: { type: string; id: string };
  context: Record<string, CedarJSON>;
}

/** Cedar's answer: default deny; any satisfied `forbid` wins over every `permit`. */
export interface PolicyDecision {
  allowed: boolean;
  /** ids of the policies that decided (the satisfied forbids, else the satisfied permits; none: default deny) */
  policies: string[];
  /** policies that failed to evaluate (they count as not satisfied), with Cedar's message */
  errors: string[];
  /** how the answer was found: `cache`, `scope` (no condition to evaluate), `cedar` */
  via: 'cache' | 'scope' | 'cedar';
}

type EntityRef = { type: string; id: string };
type Constraint = { op: 'All' } | { op: '=='; entity: EntityRef } | { op: 'in'; entity?: EntityRef; entities?: EntityRef[] } | { op: 'is'; entity_type: string; in?: { entity: EntityRef } };

interface IndexedPolicy {
  id: string;
  text: string;
  effect: 'permit' | 'forbid';
  principal: Constraint;
  action: Constraint;
  resource: Constraint;
  /** false when it has no `when`/`unless` clause: its scope alone decides */
  conditional: boolean;
  /**
   * The context paths its clauses read (`context.authn` → ["authn"]), or
   * undefined when it uses `context` in any other way (whole, or through an
   * expression): then its answers are not cached.
   */
  contextPaths?: string[][];
  /** first line in the source text (1-based) */
  line: number;
}

const entityRef = (e: unknown): EntityRef => {
  const o = e as { type?: string; id?: string; __entity?: EntityRef };
  return o.__entity ?? { type: o.type!, id: o.id! };
};
const sameRef = (a: EntityRef, b: EntityRef) => a.type === b.type && a.id === b.id;

/** Whether a principal/resource scope constraint can match `uid` with these ancestors. */
function scopeMatches(c: Constraint, uid: EntityRef, ancestors: EntityRef[]): boolean {
  const inSet = (e: EntityRef) => sameRef(e, uid) || ancestors.some((a) => sameRef(a, e));
  switch (c.op) {
    case 'All':
      return true;
    case '==':
      return sameRef(entityRef(c.entity), uid);
    case 'in':
      if (c.entities) return c.entities.map(entityRef).some(inSet);
      return c.entity ? inSet(entityRef(c.entity)) : false;
    case 'is':
      return c.entity_type === uid.type && (!c.in || inSet(entityRef(c.in.entity)));
  }
}

/**
 * The context attribute paths an expression reads, when every use of `context`
 * is a chain of attribute accesses or a `has` test (`context.claims has iss`
 * reads ["claims", "iss"]); undefined for any other use. Cedar can observe the
 * context only through these paths, so equal values there give equal answers.
 */
function contextPaths(node: unknown): string[][] | undefined {
  const out: string[][] = [];
  let opaque = false;
  const pathOf = (n: unknown): string[] | undefined => {
    const o = n as Record<string, any>;
    if (o?.Var === 'context') return [];
    const dot = o?.['.'];
    if (dot) {
      const base = pathOf(dot.left);
      return base && [...base, dot.attr];
    }
    return undefined;
  };
  const walk = (n: unknown): void => {
    if (opaque) return;
    if (Array.isArray(n)) return n.forEach(walk);
    if (!n || typeof n !== 'object') return;
    const o = n as Record<string, any>;
    if (o.Var === 'context') {
      opaque = true; // `context` itself, not through an attribute
      return;
    }
    const dot = o['.'];
    if (dot) {
      const p = pathOf(n);
      if (p) return void out.push(p);
      return walk(dot.left);
    }
    const has = o.has;
    if (has) {
      const base = pathOf(has.left);
      const attrs: string[] = Array.isArray(has.attr) ? has.attr : [has.attr];
      if (base) return void out.push([...base, ...attrs]);
      return walk(has.left);
    }
    for (const v of Object.values(o)) walk(v);
  };
  walk(node);
  return opaque ? undefined : out;
}

/** The value at `path` in `context`, for a cache key (undefined when absent). */
function valueAt(context: Record<string, unknown>, path: string[]): unknown {
  let v: unknown = context;
  for (const k of path) {
    if (!v || typeof v !== 'object' || !Object.hasOwn(v, k)) return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v;
}

/** 1-based line of a character offset. */
const lineAt = (text: string, offset: number) => text.slice(0, Math.max(0, offset)).split('\n').length;

/** Cedar's error list, first message and its line. */
function firstError(errors: cedar.DetailedError[], text: string, base = 0): { message: string; line?: number } {
  const e = errors[0];
  if (!e) return { message: 'unknown error' };
  const at = e.sourceLocations?.[0]?.start;
  const help = e.help ? ` (${e.help})` : '';
  return { message: `${e.message}${help}`, line: at === undefined ? undefined : lineAt(text, base + at) };
}

let engines = 0;

/**
 * A Cedar policy set compiled for fast, exact answers. Policies are parsed and
 * validated against the schema once; each one's scope (principal, action,
 * resource) is indexed, so a request evaluates only the policies whose scope can
 * match it, which gives the same answer as evaluating the whole set (a policy
 * whose scope does not match is not satisfied and cannot error) at a cost that
 * does not grow with the number of policies:
 * - no policy can apply: default deny, without calling Cedar;
 * - only unconditional policies apply: their scopes decide (forbid over permit),
 *   without calling Cedar either;
 * - otherwise Cedar evaluates just those policies (a preparsed set per distinct
 *   group), and the answer is cached by the request scope and the values of the
 *   context attributes those policies read (`context.authn`, ...), unless one
 *   of them uses the context in another way; errors are never cached.
 *
 * Policy ids are the `@id("...")` annotation when there is one, else `policy<N>`
 * (N counting from 0 in file order), as Cedar names them.
 */
export class PolicyEngine {
  private readonly policies: IndexedPolicy[];
  private readonly byResource = new Map<string, IndexedPolicy[]>();
  private readonly byPrincipal = new Map<string, IndexedPolicy[]>();
  private readonly rest: IndexedPolicy[] = [];
  private readonly slices = new Map<string, string>();
  private readonly decisions = new Map<string, PolicyDecision>();
  private readonly prefix = `tessera-${++engines}-${randomBytes(4).toString('hex')}`;
  private readonly order = new Map<string, number>();
  private fullSetId?: string;

  private readonly cacheDecisions: boolean;

  private constructor(policies: IndexedPolicy[], cacheDecisions: boolean) {
    this.policies = policies;
    this.cacheDecisions = cacheDecisions;
    policies.forEach((p, i) => {
      this.order.set(p.id, i);
      if (p.resource.op === '==') push(this.byResource, key(entityRef(p.resource.entity)), p);
      else if (p.principal.op === '==') push(this.byPrincipal, key(entityRef(p.principal.entity)), p);
      else this.rest.push(p);
    });
  }

  /**
   * Parses and validates `text` (Cedar policies) against `schema` (default {@link TESSERA_SCHEMA}).
   * @throws PolicyError naming the problem and its line
   */
  static fromText(text: string, opts: { schema?: string; source?: string; /** default true */ cacheDecisions?: boolean } = {}): PolicyEngine {
    const where = opts.source ? `${opts.source}: ` : '';
    const schema = opts.schema ?? TESSERA_SCHEMA;
    const parts = cedar.policySetTextToParts(text);
    if (parts.type === 'failure') {
      const e = firstError(parts.errors, text);
      throw new PolicyError(`${where}${e.line ? `line ${e.line}: ` : ''}${e.message}`, e.line);
    }
    if (parts.policy_templates.length > 0) throw new PolicyError(`${where}policy templates are not supported`);
    const policies: IndexedPolicy[] = [];
    const byId: Record<string, string> = {};
    let from = 0;
    parts.policies.forEach((p, n) => {
      const at = text.indexOf(p, from);
      from = at < 0 ? from : at + p.length;
      const json = cedar.policyToJson(p);
      if (json.type === 'failure') throw new PolicyError(`${where}${firstError(json.errors, p).message}`);
      const j = json.json;
      const id = j.annotations?.id ?? `policy${n}`;
      if (byId[id] !== undefined) throw new PolicyError(`${where}line ${lineAt(text, at)}: two policies have the id ${JSON.stringify(id)}`, lineAt(text, at));
      byId[id] = p;
      policies.push({
        id,
        text: p,
        effect: j.effect,
        principal: j.principal as Constraint,
        action: j.action as Constraint,
        resource: j.resource as Constraint,
        conditional: j.conditions.length > 0,
        contextPaths: contextPaths(j.conditions),
        line: at < 0 ? 0 : lineAt(text, at),
      });
    });
    const v = cedar.validate({ schema, policies: { staticPolicies: byId }, validationSettings: { mode: 'strict' } });
    if (v.type === 'failure') throw new PolicyError(`${where}the schema is invalid: ${firstError(v.errors, schema).message}`);
    if (v.validationErrors.length > 0) {
      const bad = v.validationErrors[0]!;
      const p = policies.find((x) => x.id === bad.policyId)!;
      const at = bad.error.sourceLocations?.[0]?.start;
      const line = p.line + (at === undefined ? 0 : lineAt(p.text, at) - 1);
      throw new PolicyError(`${where}line ${line}: policy ${bad.policyId}: ${bad.error.message}${bad.error.help ? ` (${bad.error.help})` : ''}`, line);
    }
    return new PolicyEngine(policies, opts.cacheDecisions !== false);
  }

  /** The number of policies. */
  get size(): number {
    return this.policies.length;
  }

  /** Policy ids in file order. */
  ids(): string[] {
    return this.policies.map((p) => p.id);
  }

  /** Cedar's answer for `r`, from the policies whose scope can match it. */
  authorize(r: PolicyRequest): PolicyDecision {
    const principal = { type: WORKLOAD, id: r.principal.toString() };
    const ancestors = [{ type: TRUST_DOMAIN, id: r.principal.trustDomain }];
    const action = { type: 'Action', id: r.action };
    const resource = { type: r.resource.type, id: r.resource.id };
    const candidates = this.candidates(principal, ancestors, action, resource);
    if (candidates.length === 0) return { allowed: false, policies: [], errors: [], via: 'scope' };
    if (!candidates.some((p) => p.conditional)) return scopeDecision(candidates);
    // An answer depends on the scope and on the context values the policies read; it is
    // cached by those, unless a policy uses the context in a way no path describes.
    const paths = candidates.flatMap((p) => p.contextPaths ?? [['\0opaque']]);
    const cacheable = this.cacheDecisions && !paths.some((x) => x[0] === '\0opaque');
    const cacheKey = cacheable ? `${key(principal)}\n${r.action}\n${key(resource)}\n${JSON.stringify(paths.map((x) => valueAt(r.context, x)))}` : '';
    if (cacheable) {
      const hit = this.decisions.get(cacheKey);
      if (hit) return { ...hit, via: 'cache' };
    }
    const answer = cedar.statefulIsAuthorized({
      principal,
      action,
      resource,
      context: r.context as cedar.Context,
      preparsedPolicySetId: this.slice(candidates),
      entities: [workloadEntity(r.principal), resourceEntity(resource.type, resource.id)] as cedar.Entities,
    });
    const d = toDecision(answer, 'cedar');
    if (cacheable && d.errors.length === 0) {
      if (this.decisions.size >= 100_000) this.decisions.clear(); // bounded: start over rather than grow
      this.decisions.set(cacheKey, d);
    }
    return d;
  }

  /**
   * Whether a request could be allowed once the context attributes in `unknown`
   * are known (Cedar partial evaluation): used to list only the MCP tools a
   * caller may call, before any call's arguments exist.
   */
  mayAllow(r: PolicyRequest, unknown: string[]): boolean {
    const principal = { type: WORKLOAD, id: r.principal.toString() };
    const action = { type: 'Action', id: r.action };
    const resource = { type: r.resource.type, id: r.resource.id };
    const candidates = this.candidates(principal, [{ type: TRUST_DOMAIN, id: r.principal.trustDomain }], action, resource);
    if (candidates.length === 0) return false;
    if (!candidates.some((p) => p.conditional)) return scopeDecision(candidates).allowed;
    const context: Record<string, unknown> = { ...r.context };
    for (const name of unknown) context[name] = { __extn: { fn: 'unknown', arg: name } };
    const answer = cedar.isAuthorizedPartial({
      principal,
      action,
      resource,
      context: context as cedar.Context,
      policies: { staticPolicies: Object.fromEntries(candidates.map((p) => [p.id, p.text])) },
      entities: [workloadEntity(r.principal), resourceEntity(resource.type, resource.id)] as cedar.Entities,
    });
    if (answer.type === 'failure') return false;
    // Decided allow, or undecided: some values of the unknowns could allow it.
    return answer.response.decision !== 'deny';
  }

  /** Cedar over every policy, for tests that check the sliced answers against it. */
  authorizeWithFullSet(r: PolicyRequest): PolicyDecision {
    this.fullSetId ??= this.preparse(this.policies);
    const resource = { type: r.resource.type, id: r.resource.id };
    return toDecision(
      cedar.statefulIsAuthorized({
        principal: { type: WORKLOAD, id: r.principal.toString() },
        action: { type: 'Action', id: r.action },
        resource,
        context: r.context as cedar.Context,
        preparsedPolicySetId: this.fullSetId,
        entities: [workloadEntity(r.principal), resourceEntity(resource.type, resource.id)] as cedar.Entities,
      }),
      'cedar',
    );
  }

  private candidates(principal: EntityRef, ancestors: EntityRef[], action: EntityRef, resource: EntityRef): IndexedPolicy[] {
    const pool = [...(this.byResource.get(key(resource)) ?? []), ...(this.byPrincipal.get(key(principal)) ?? []), ...this.rest];
    const out = pool.filter(
      (p) => scopeMatches(p.principal, principal, ancestors) && scopeMatches(p.action, action, []) && scopeMatches(p.resource, resource, []),
    );
    return out.sort((a, b) => this.order.get(a.id)! - this.order.get(b.id)!);
  }

  /** A preparsed Cedar policy set holding just these policies (one per distinct group, made once). */
  private slice(policies: IndexedPolicy[]): string {
    const k = policies.map((p) => p.id).join('\n');
    let id = this.slices.get(k);
    if (!id) {
      if (this.slices.size >= 4096) return (this.fullSetId ??= this.preparse(this.policies)); // correct, only slower
      id = this.preparse(policies);
      this.slices.set(k, id);
    }
    return id;
  }

  private preparse(policies: IndexedPolicy[]): string {
    const id = `${this.prefix}-${this.slices.size}-${policies.length}`;
    const r = cedar.preparsePolicySet(id, { staticPolicies: Object.fromEntries(policies.map((p) => [p.id, p.text])) });
    if (r.type === 'failure') throw new PolicyError(`cannot prepare policies: ${r.errors[0]?.message ?? 'unknown error'}`);
    return id;
  }
}

function push(m: Map<string, IndexedPolicy[]>, k: string, p: IndexedPolicy): void {
  let l = m.get(k);
  if (!l) m.set(k, (l = []));
  l.push(p);
}
const key = (e: EntityRef) => `${e.type}::${e.id}`;

/** Cedar's semantics for policies that have no condition: each is satisfied by its scope alone. */
function scopeDecision(ps: IndexedPolicy[]): PolicyDecision {
  const forbids = ps.filter((p) => p.effect === 'forbid');
  if (forbids.length > 0) return { allowed: false, policies: forbids.map((p) => p.id), errors: [], via: 'scope' };
  return { allowed: true, policies: ps.map((p) => p.id), errors: [], via: 'scope' };
}

function toDecision(a: cedar.AuthorizationAnswer, via: PolicyDecision['via']): PolicyDecision {
  if (a.type === 'failure') return { allowed: false, policies: [], errors: a.errors.map((e) => e.message), via };
  const d = a.response;
  return {
    allowed: d.decision === 'allow',
    policies: [...d.diagnostics.reason],
    errors: d.diagnostics.errors.map((e) => `${e.policyId}: ${e.error.message}`),
    via,
  };
}
