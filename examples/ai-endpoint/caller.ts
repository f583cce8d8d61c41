/**
 * A workload that calls the AI endpoint with its SPIFFE identity and no API key:
 *   SPIFFE_ENDPOINT_SOCKET=unix:///path/api.sock node dist/examples/ai-endpoint/caller.js URL ENDPOINT_SPIFFE_ID [--hint H]
 * It uses its SVID (the entry with hint H, default `ai-caller`) two ways: as the
 * client certificate of SPIFFE mTLS, and as a JWT-SVID bearer token for the
 * endpoint's SPIFFE ID (audience), fetched from the agent. It accepts the server
 * only if it proves ENDPOINT_SPIFFE_ID. It talks HTTP and MCP (the official MCP
 * client over Streamable HTTP) and prints one JSON line per call:
 *   {"call":"tools/call delete_everything","authn":"mtls","outcome":"denied","code":-32003,"detail":"..."}
 */
import { parseArgs } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { JWTSource, X509Source, authorizeID, byHint, spiffeFetch } from '../../sdk/index';

type Authn = 'mtls' | 'jwt';
const emit = (o: object) => process.stdout.write(JSON.stringify(o) + '\n');

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { hint: { type: 'string', default: 'ai-caller' } } });
  const [url, endpointId] = positionals as [string, string];
  if (!url || !endpointId) throw new Error('usage: caller URL ENDPOINT_SPIFFE_ID [--hint H]');
  const source = new X509Source({ picker: byHint(values.hint!) });
  const jwt = new JWTSource();
  await Promise.all([source.ready(20_000), jwt.ready(20_000)]);
  const me = source.svid().spiffeId;
  const server = authorizeID(endpointId);
  const mtls = spiffeFetch({ source, authorizer: server }); // presents the caller's SVID
  const tlsOnly = spiffeFetch({ source, authorizer: server, presentSVID: false }); // verifies the server, presents nothing
  const bearer = async () => `Bearer ${(await jwt.fetchJWTSVID(endpointId, me)).token}`;
  const fetchFor = (authn: Authn) => (authn === 'mtls' ? mtls : tlsOnly);
  emit({ event: 'caller_ready', spiffe_id: me, endpoint: endpointId });

  const http = async (authn: Authn, method: string, path: string, body?: object) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (authn === 'jwt') headers.authorization = await bearer();
    const r = await fetchFor(authn)(new URL(path, url), { method, headers, body: body ? JSON.stringify(body) : undefined });
    const text = await r.text();
    emit({ call: `${method} ${path}`, authn, outcome: r.ok ? 'allowed' : 'denied', status: r.status, detail: text.slice(0, 200) });
  };

  const mcp = async (authn: Authn, steps: (c: Client) => Promise<void>) => {
    const transport = new StreamableHTTPClientTransport(new URL('/mcp', url), {
      fetch: fetchFor(authn) as never,
      requestInit: authn === 'jwt' ? { headers: { authorization: await bearer() } } : undefined,
    });
    const client = new Client({ name: 'tessera-example-caller', version: '0.1.0' });
    await client.connect(transport);
    try {
      await steps(client);
    } finally {
      await client.close();
    }
  };
  const listTools = (authn: Authn) => async (c: Client) =>
    emit({ call: 'tools/list', authn, outcome: 'allowed', tools: (await c.listTools()).tools.map((t) => t.name).sort() });
  const callTool = (authn: Authn, name: string, args: Record<string, unknown>) => async (c: Client) => {
    try {
      const r = await c.callTool({ name, arguments: args });
      emit({ call: `tools/call ${name}`, authn, outcome: 'allowed', detail: (r.content as Array<{ text?: string }>)[0]?.text });
    } catch (e) {
      const err = e as { code?: number; message: string };
      emit({ call: `tools/call ${name}`, authn, outcome: 'denied', code: err.code, detail: err.message });
    }
  };

  await http('mtls', 'GET', '/v1/models');
  await http('mtls', 'POST', '/v1/chat', { messages: [{ role: 'user', content: 'hello' }] });
  await http('jwt', 'POST', '/v1/chat', { messages: [{ role: 'user', content: 'hello again' }] });
  for (const authn of ['mtls', 'jwt'] as const) {
    await mcp(authn, async (c) => {
      await listTools(authn)(c);
      await callTool(authn, 'search', { query: 'workload identity' })(c);
      await callTool(authn, 'summarize', { text: 'SPIFFE IDs instead of API keys' })(c);
      // not in its tools/list, called by name anyway: refused before the tool runs
      await callTool(authn, 'delete_everything', {})(c);
    });
  }
  await Promise.all([mtls.close(), tlsOnly.close()]);
  source.close();
  jwt.close();
}

main().catch((e: Error) => {
  process.stderr.write(`caller: ${e.message}\n`);
  process.exit(1);
});
