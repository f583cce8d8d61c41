import { parseSpiffeId } from '../../common/spiffeid/spiffe-id';
import { PolicyEngine, PolicyError, type PolicyRequest } from './engine';
import { TESSERA_SCHEMA } from './schema';

const id = (s: string) => parseSpiffeId(s);
const req = (principal: string, action: string, type: string, resource: string, context: PolicyRequest['context'] = { authn: 'mtls', correlation_id: 'c' }): PolicyRequest => ({
  principal: id(principal),
  action,
  resource: { type, id: resource },
  context,
});

describe('loading', () => {
  it('names the line of a syntax error', () => {
    const text = 'permit (principal, action, resource);\n\nforbid (principal action);\n';
    expect(() => PolicyEngine.fromText(text, { source: 'p.cedar' })).toThrow(PolicyError);
    try {
      PolicyEngine.fromText(text, { source: 'p.cedar' });
    } catch (e) {
      expect((e as PolicyError).line).toBe(3);
      expect((e as Error).message).toMatch(/^p\.cedar: line 3: unexpected token `action`/);
    }
  });

  it('validates against the schema and names the line: a misspelt attribute or entity type is an error at load', () => {
    const text = [
      'permit (principal, action == Action::"http", resource);',
      '@id("bad")',
      'permit (principal, action == Action::"call_tool", resource)',
      '  when { principal.trustdomain == "a.example" };',
    ].join('\n');
    expect(() => PolicyEngine.fromText(text)).toThrow(/line 4: policy bad: .*attribute `trustdomain`/);
    expect(() => PolicyEngine.fromText('permit (principal == User::"x", action, resource);')).toThrow(/line 1: .*User/);
  });

  it('takes @id annotations as policy ids, else policy<N>; two equal ids are refused', () => {
    const e = PolicyEngine.fromText('@id("a") permit (principal, action, resource);\npermit (principal, action, resource);');
    expect(e.ids()).toEqual(['a', 'policy1']);
    expect(() => PolicyEngine.fromText('@id("a") permit (principal, action, resource);\n@id("a") forbid (principal, action, resource);')).toThrow(/two policies have the id "a"/);
  });

  it('accepts a schema with typed tool arguments', () => {
    const schema = TESSERA_SCHEMA.replace('type ToolArguments = {};', 'type ToolArguments = { model?: String, max_tokens?: Long };');
    const text = 'permit (principal, action == Action::"call_tool", resource == Tool::"generate") when { context has arguments && context.arguments has max_tokens && context.arguments.max_tokens <= 1000 };';
    // The published schema has no argument types: a condition on one does not validate.
    expect(() => PolicyEngine.fromText(text.replace('context.arguments has max_tokens && ', ''))).toThrow(/attribute `arguments.max_tokens`/);
    const e = PolicyEngine.fromText(text, { schema });
    const r = (n: number) => req('spiffe://a.example/x', 'call_tool', 'Tool', 'generate', { authn: 'jwt', correlation_id: 'c', arguments: { max_tokens: n } });
    expect(e.authorize(r(10)).allowed).toBe(true);
    expect(e.authorize(r(5000)).allowed).toBe(false);
    expect(e.mayAllow(req('spiffe://a.example/x', 'call_tool', 'Tool', 'generate'), ['arguments'])).toBe(true);
    expect(e.mayAllow(req('spiffe://a.example/x', 'call_tool', 'Tool', 'other'), ['arguments'])).toBe(false);
  });
});

describe('decisions', () => {
  const e = PolicyEngine.fromText(
    [
      '@id("tools-for-a") permit (principal in TrustDomain::"a.example", action == Action::"call_tool", resource == Tool::"search");',
      '@id("no-bad") forbid (principal == Workload::"spiffe://a.example/bad", action, resource);',
      '@id("chat") permit (principal == Workload::"spiffe://a.example/web", action == Action::"http", resource == Route::"POST /v1/chat") when { context.authn == "mtls" };',
      '@id("models") permit (principal is Workload, action == Action::"http", resource == Route::"GET /v1/models");',
    ].join('\n'),
  );

  it('denies by default, and a forbid wins over a permit', () => {
    expect(e.authorize(req('spiffe://b.example/x', 'call_tool', 'Tool', 'search'))).toMatchObject({ allowed: false, policies: [] });
    expect(e.authorize(req('spiffe://a.example/x', 'call_tool', 'Tool', 'search'))).toMatchObject({ allowed: true, policies: ['tools-for-a'], via: 'scope' });
    expect(e.authorize(req('spiffe://a.example/bad', 'call_tool', 'Tool', 'search'))).toMatchObject({ allowed: false, policies: ['no-bad'] });
  });

  it('evaluates conditions on the request context with Cedar', () => {
    expect(e.authorize(req('spiffe://a.example/web', 'http', 'Route', 'POST /v1/chat'))).toMatchObject({ allowed: true, policies: ['chat'], via: 'cedar' });
    expect(e.authorize(req('spiffe://a.example/web', 'http', 'Route', 'POST /v1/chat', { authn: 'jwt', correlation_id: 'c' })).allowed).toBe(false);
    expect(e.authorize(req('spiffe://b.example/web', 'http', 'Route', 'GET /v1/models')).allowed).toBe(true);
  });
});

describe('the decision cache', () => {
  const text = [
    '@id("chat") permit (principal == Workload::"spiffe://a.example/web", action == Action::"http", resource == Route::"POST /v1/chat") when { context.authn == "mtls" };',
    '@id("iss") permit (principal == Workload::"spiffe://a.example/web", action == Action::"call_tool", resource == Tool::"search") when { context has claims && context.claims has iss && context.claims.iss == "https://oidc.a.example" };',
  ].join('\n');

  it('answers from the cache only for equal values of what the policies read (the correlation id is not read)', () => {
    const e = PolicyEngine.fromText(text);
    const chat = (authn: string, c: string) => e.authorize(req('spiffe://a.example/web', 'http', 'Route', 'POST /v1/chat', { authn, correlation_id: c }));
    expect(chat('mtls', 'c1')).toMatchObject({ allowed: true, via: 'cedar' });
    expect(chat('mtls', 'c2')).toMatchObject({ allowed: true, via: 'cache' });
    expect(chat('jwt', 'c3')).toMatchObject({ allowed: false, via: 'cedar' });
    expect(chat('jwt', 'c4')).toMatchObject({ allowed: false, via: 'cache' });
    expect(chat('mtls', 'c5')).toMatchObject({ allowed: true, via: 'cache' });

    const search = (claims?: Record<string, unknown>) =>
      e.authorize(req('spiffe://a.example/web', 'call_tool', 'Tool', 'search', { authn: 'jwt', correlation_id: 'c', ...(claims ? { claims: claims as PolicyRequest['context'] } : {}) }));
    expect(search({ iss: 'https://oidc.a.example' }).allowed).toBe(true);
    expect(search({ iss: 'https://other' }).allowed).toBe(false);
    expect(search().allowed).toBe(false);
    expect(search({ iss: 'https://oidc.a.example' })).toMatchObject({ allowed: true, via: 'cache' });
    expect(search({ iss: 'https://other' })).toMatchObject({ allowed: false, via: 'cache' });
  });

  it('can be turned off, with the same answers', () => {
    const e = PolicyEngine.fromText(text, { cacheDecisions: false });
    const q = req('spiffe://a.example/web', 'http', 'Route', 'POST /v1/chat', { authn: 'mtls', correlation_id: 'c' });
    expect(e.authorize(q)).toMatchObject({ allowed: true, via: 'cedar' });
    expect(e.authorize(q)).toMatchObject({ allowed: true, via: 'cedar' });
  });
});

/** A seeded generator, so a failure can be replayed. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('sliced answers are the answers of the whole policy set', () => {
  it.each([1, 2, 3])('on 1,500 generated requests against 200 generated policies (seed %i)', (seed) => {
    const r = rng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
    const tds = ['a.example', 'b.example'];
    const workloads = ['web', 'api', 'batch', 'bad', 'agent'].flatMap((w) => tds.map((td) => `spiffe://${td}/${w}`));
    const tools = ['search', 'fetch', 'exec', 'summarize', 'translate', 'delete'];
    const routes = ['GET /v1/models', 'POST /v1/chat', 'POST /v1/embed', 'DELETE /v1/files'];
    const principal = () =>
      pick([
        () => 'principal',
        () => `principal == Workload::"${pick(workloads)}"`,
        () => `principal in TrustDomain::"${pick(tds)}"`,
        () => 'principal is Workload',
        () => `principal is Workload in TrustDomain::"${pick(tds)}"`,
      ])();
    const scope = () => {
      const tool = r() < 0.5;
      const action = pick(['action', tool ? 'action == Action::"call_tool"' : 'action == Action::"http"', 'action in [Action::"http", Action::"call_tool"]']);
      const resource = pick(['resource', tool ? `resource == Tool::"${pick(tools)}"` : `resource == Route::"${pick(routes)}"`, tool ? 'resource is Tool' : 'resource is Route']);
      return `${principal()}, ${action}, ${resource}`;
    };
    const condition = () =>
      pick([
        '',
        '',
        ' when { context.authn == "mtls" }',
        ' unless { context.authn == "jwt" }',
        ' when { principal.path like "/a*" }',
        ' when { context has claims && context.claims has iss && context.claims.iss == "https://oidc.a.example" }',
        ' when { principal.trust_domain == "b.example" }',
      ]);
    // Forbids name one workload (a blanket forbid would make nearly every answer deny).
    const policy = (i: number) =>
      r() < 0.1
        ? `@id("p${i}") forbid (principal == Workload::"${pick(workloads)}", action, resource)${condition()};`
        : `@id("p${i}") permit (${scope()})${condition()};`;
    const text = Array.from({ length: 200 }, (_, i) => policy(i)).join('\n');
    const e = PolicyEngine.fromText(text);
    let allowed = 0;
    for (let i = 0; i < 1500; i++) {
      const tool = r() < 0.5;
      const context: PolicyRequest['context'] = { authn: pick(['mtls', 'jwt']), correlation_id: `c${i}` };
      if (r() < 0.5) context.claims = { iss: pick(['https://oidc.a.example', 'https://other']), aud: ['x'] };
      const q = req(pick(workloads), tool ? 'call_tool' : 'http', tool ? 'Tool' : 'Route', tool ? pick(tools) : pick(routes), context);
      const sliced = e.authorize(q);
      const full = e.authorizeWithFullSet(q);
      expect({ i, allowed: sliced.allowed, policies: [...sliced.policies].sort(), errors: sliced.errors.length }).toEqual({
        i,
        allowed: full.allowed,
        policies: [...full.policies].sort(),
        errors: full.errors.length,
      });
      if (sliced.allowed) allowed++;
    }
    expect(allowed).toBeGreaterThan(20); // the generator produces both answers
    expect(allowed).toBeLessThan(1400);
  });
});
