import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { CallToolRequestSchema, ErrorCode, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { defaultLogger, type Logger } from '../log';
import { PolicyAuthorizer, type PolicySource } from '../policy/authorizer';
import type { SpiffeCaller } from '../express/index';

export interface McpGuardOptions {
  policy: PolicySource | PolicyAuthorizer;
  log?: Logger;
}

/** What a tool handler receives (`extra.authInfo.extra.spiffe`): the caller spiffeAuth verified. */
export function mcpCaller(extra: { authInfo?: { extra?: Record<string, unknown> } } | undefined): SpiffeCaller | undefined {
  return extra?.authInfo?.extra?.spiffe as SpiffeCaller | undefined;
}

/** JSON-RPC error code for a refused tool call (in the range the spec leaves to servers). */
export const TOOL_CALL_DENIED = -32003;

/**
 * A refused tool call. The MCP SDK turns what a handler throws into the JSON-RPC
 * error `{code, message}`; an McpError would put its own "MCP error N:" prefix
 * into the message, which the client then prefixes again, so this is a plain
 * Error with the code.
 */
export class ToolCallDenied extends Error {
  readonly code = TOOL_CALL_DENIED;
  constructor(message: string) {
    super(message);
    this.name = 'ToolCallDenied';
  }
}

type Handler = (request: { params: { name?: string; arguments?: unknown } } & Record<string, unknown>, extra: { authInfo?: { extra?: Record<string, unknown> } }) => unknown;

/**
 * Puts an MCP server (the official SDK's `McpServer`, served over Streamable
 * HTTP behind {@link spiffeAuth}) under the Cedar policy, by SPIFFE ID:
 * - `tools/list` returns only the tools the caller could call (`call_tool` on
 *   `Tool::"<name>"` may be allowed for some arguments: Cedar partial evaluation);
 * - `tools/call` is decided before the tool runs, with the call's arguments in
 *   the context; a denied call is a JSON-RPC error (code {@link TOOL_CALL_DENIED})
 *   and an audit line, and the tool never runs; a call without a verified caller
 *   is refused the same way. The policy is asked before the tool is looked up,
 *   so the answer to a denied call does not depend on whether the tool exists.
 * - allowed calls reach the tool with the caller in `extra.authInfo.extra.spiffe`
 *   (see {@link mcpCaller}).
 *
 * Call it on a fresh server, before registering tools: it wraps the handlers the
 * McpServer installs when its first tool is registered.
 * @throws Error when the server already has its tool handlers
 */
export function guardMcpServer(server: McpServer, o: McpGuardOptions): void {
  const inner = server.server;
  try {
    inner.assertCanSetRequestHandler('tools/list');
  } catch {
    throw new Error('guardMcpServer must be called before the first tool is registered');
  }
  const log = o.log ?? defaultLogger();
  const authorizer = o.policy instanceof PolicyAuthorizer ? o.policy : new PolicyAuthorizer(o.policy, log);
  const original = inner.setRequestHandler.bind(inner) as (schema: unknown, handler: Handler) => void;
  (inner as unknown as { setRequestHandler: (schema: unknown, handler: Handler) => void }).setRequestHandler = (schema, handler) => {
    if (schema === ListToolsRequestSchema) {
      return original(schema, async (request, extra) => {
        const result = (await handler(request, extra)) as { tools: Array<{ name: string }> };
        const caller = mcpCaller(extra);
        const tools = caller ? result.tools.filter((t) => authorizer.mayCallTool(caller.id, caller.via, t.name, caller.claims)) : [];
        return { ...result, tools };
      });
    }
    if (schema === CallToolRequestSchema) {
      return original(schema, async (request, extra) => {
        const caller = mcpCaller(extra);
        const name = String(request.params.name ?? '');
        if (!caller) throw new ToolCallDenied(`tool ${name} is not available: the request carries no verified spiffe identity`);
        const d = authorizer.decide({
          principal: caller.id,
          authn: caller.via,
          action: 'call_tool',
          resource: { type: 'Tool', id: name },
          claims: caller.claims,
          arguments: request.params.arguments,
          correlationId: caller.correlationId,
        });
        if (!d.allowed) throw new ToolCallDenied(`tool ${name} is not available to ${caller.id} (correlation id ${d.correlationId})`);
        return handler(request, extra);
      });
    }
    return original(schema, handler);
  };
}

export { ErrorCode };
