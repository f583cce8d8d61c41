/**
 * An inference-style endpoint that holds no shared secret: callers prove who they
 * are with their SPIFFE identity (an mTLS client SVID, or a JWT-SVID bearer token),
 * and a Cedar policy decides, per request and per tool call, what each SPIFFE ID
 * may do. HTTP routes (`/v1/...`) and an MCP server (`/mcp`, Streamable HTTP)
 * share the same identity, policy and audit log.
 *
 * In your own service, import from `tessera/sdk` (or `@tessera/sdk`) instead of
 * the relative paths used inside this repository.
 */
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { z } from 'zod';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { attachMTLSServer, authorizeAny, mtlsServerOptions, PolicyAuthorizer, type JWTSource, type Logger, type PolicySource, type SVIDPicker, type X509Source } from '../../sdk/index';
import { callerOf, spiffeAuth } from '../../sdk/express';
import { guardMcpServer, mcpCaller } from '../../sdk/mcp';

export interface AiEndpointOptions {
  /** the endpoint's own SVID and the bundles callers are verified with */
  source: X509Source;
  /** which of the workload's SVIDs the endpoint presents (default its default identity) */
  picker?: SVIDPicker;
  /** JWT bundles for bearer callers */
  jwt: JWTSource;
  /** the audience JWT-SVIDs must be for (usually the endpoint's own SPIFFE ID) */
  audience: string;
  policy: PolicySource;
  log: Logger;
  host?: string;
  port?: number;
  /**
   * The model provider `POST /v1/chat` asks, with the access token `tessera helper`
   * keeps fresh in `tokenFile` (read on every call: the helper replaces it before
   * it expires). No API key anywhere.
   */
  model?: { url: string; tokenFile: string };
}

export interface RunningEndpoint {
  port: number;
  close(): Promise<void>;
}

/** The tools, as an MCP server; a new one per request (stateless Streamable HTTP), guarded before tools are registered. */
function mcpServer(authorizer: PolicyAuthorizer): McpServer {
  const server = new McpServer({ name: 'tessera-ai-endpoint', version: '0.1.0' });
  guardMcpServer(server, { policy: authorizer });
  const who = (extra: Parameters<typeof mcpCaller>[0]) => mcpCaller(extra)?.id.toString() ?? 'nobody';
  server.registerTool('search', { description: 'search the knowledge base', inputSchema: { query: z.string() } }, async ({ query }, extra) => ({
    content: [{ type: 'text', text: `results for ${JSON.stringify(query)} (asked by ${who(extra)})` }],
  }));
  server.registerTool('summarize', { description: 'summarize a text', inputSchema: { text: z.string() } }, async ({ text }, extra) => ({
    content: [{ type: 'text', text: `summary of ${text.length} characters (for ${who(extra)})` }],
  }));
  server.registerTool('delete_everything', { description: 'drop every index (administrators only)' }, async (extra) => ({
    content: [{ type: 'text', text: `deleted by ${who(extra)}` }],
  }));
  return server;
}

export async function startAiEndpoint(o: AiEndpointOptions): Promise<RunningEndpoint> {
  const authorizer = new PolicyAuthorizer(o.policy, o.log);
  const auth = { jwt: { audience: o.audience, source: o.jwt }, log: o.log };
  const app = express();
  app.disable('x-powered-by');
  app.use(express.json({ limit: '1mb' }));

  // HTTP routes: every request is authenticated and decided on Route::"<METHOD> <path>".
  app.use('/v1', spiffeAuth({ ...auth, policy: authorizer }));
  app.get('/v1/models', (_req, res) => void res.json({ models: ['tessera-small'] }));
  app.post('/v1/chat', async (req, res) => {
    const caller = callerOf(req);
    if (!o.model) return void res.json({ reply: `hello, ${caller.id}`, caller: caller.id.toString(), via: caller.via });
    try {
      const token = (await readFile(o.model.tokenFile, 'utf8')).trim();
      const r = await fetch(o.model.url, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ messages: req.body?.messages ?? [] }),
      });
      if (!r.ok) return void res.status(502).json({ error: { code: 'UNAVAILABLE', message: `the model provider answered ${r.status}` } });
      const answer = (await r.json()) as { content?: Array<{ text?: string }> };
      res.json({ reply: answer.content?.[0]?.text ?? '', caller: caller.id.toString(), via: caller.via });
    } catch (e) {
      o.log.warn({ event: 'model_call_failed', reason: (e as Error).message }, 'model provider call failed');
      res.status(502).json({ error: { code: 'UNAVAILABLE', message: 'the model provider could not be reached' } });
    }
  });

  // MCP: authenticated here, each tool call decided by the guard (call_tool on Tool::"<name>").
  app.use('/mcp', spiffeAuth(auth));
  app.post('/mcp', async (req, res) => {
    const server = mcpServer(authorizer);
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    res.on('close', () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  });

  // TLS with the endpoint's SVID; a client SVID is optional (JWT callers present none),
  // verified when presented, and the certificate follows every rotation.
  const tls = { source: o.source, picker: o.picker, authorizer: authorizeAny(), clientCert: 'optional' as const };
  const server = https.createServer(mtlsServerOptions(tls), app);
  const detach = attachMTLSServer(server, { ...tls, onRefused: (reason) => o.log.warn({ event: 'tls_peer_refused', reason }, 'tls peer refused') });
  await new Promise<void>((r) => server.listen(o.port ?? 0, o.host ?? '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        detach();
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}
