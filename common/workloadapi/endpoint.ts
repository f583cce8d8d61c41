import { isIP } from 'net';
import { invalidArgument } from '../errors';

/** A parsed Workload API endpoint address. `target` is what grpc-js dials. */
export type WorkloadEndpoint =
  | { network: 'unix'; path: string; target: string }
  | { network: 'tcp'; host: string; port: number; target: string };

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;
// Spaces and controls have no place in a URI, and would otherwise end up in a socket path.
const BAD_CHARS = /[\s\p{Cc}]/u;

/**
 * Parses a `SPIFFE_ENDPOINT_SOCKET` value by the SPIFFE Workload Endpoint rules:
 * - `unix:///absolute/path`: no authority (not even `unix://host/...`), an
 *   absolute path, no query, fragment or userinfo; percent-escapes are decoded;
 * - `tcp://IP:PORT`: an IPv4 or bracketed IPv6 literal (no host names), a port
 *   1-65535, and nothing else (no path, not even `/`).
 * Schemes compare case-insensitively, as in any URI.
 * @throws TesseraError INVALID_ARGUMENT saying which rule the address breaks
 * @example parseEndpoint('unix:///run/tessera/api.sock') // { network: 'unix', path: '/run/tessera/api.sock', target: 'unix:///run/tessera/api.sock' }
 */
export function parseEndpoint(s: string): WorkloadEndpoint {
  if (typeof s !== 'string' || s === '') throw invalidArgument('workload endpoint address is empty');
  if (BAD_CHARS.test(s)) throw invalidArgument('workload endpoint address must not contain spaces or control characters');
  const m = SCHEME.exec(s);
  if (!m) throw invalidArgument('workload endpoint address must be a unix:// or tcp:// uri');
  const scheme = m[1].toLowerCase();
  if (scheme !== 'unix' && scheme !== 'tcp') throw invalidArgument(`workload endpoint address has scheme "${scheme}"; use unix:// or tcp://`);
  const rest = s.slice(m[0].length);
  if (!rest.startsWith('//')) throw invalidArgument(`workload endpoint ${scheme} uri must not be opaque; write ${scheme}://...`);
  if (rest.includes('?')) throw invalidArgument(`workload endpoint ${scheme} uri must not include a query`);
  if (rest.includes('#')) throw invalidArgument(`workload endpoint ${scheme} uri must not include a fragment`);
  const slash = rest.indexOf('/', 2);
  const authority = slash < 0 ? rest.slice(2) : rest.slice(2, slash);
  const path = slash < 0 ? '' : rest.slice(slash);
  if (authority.includes('@')) throw invalidArgument(`workload endpoint ${scheme} uri must not include user info`);
  return scheme === 'unix' ? unixEndpoint(authority, path) : tcpEndpoint(authority, path);
}

function unixEndpoint(authority: string, rawPath: string): WorkloadEndpoint {
  if (authority !== '') throw invalidArgument('workload endpoint unix uri must not have an authority; write unix:///absolute/path');
  if (rawPath === '' || rawPath === '/') throw invalidArgument('workload endpoint unix uri must include a socket path');
  let path: string;
  try {
    path = decodeURIComponent(rawPath);
  } catch {
    throw invalidArgument('workload endpoint unix uri has a malformed percent-escape');
  }
  if (path.includes('\0')) throw invalidArgument('workload endpoint unix path must not contain a nul byte');
  return { network: 'unix', path, target: `unix://${path}` };
}

function tcpEndpoint(authority: string, path: string): WorkloadEndpoint {
  if (authority === '') throw invalidArgument('workload endpoint tcp uri must include a host');
  if (path !== '') throw invalidArgument('workload endpoint tcp uri must not include a path');
  const m = /^(?:\[([^\]]*)\]|([^:[\]]*))(?::(\d*))?$/.exec(authority);
  const host = m?.[1] ?? m?.[2];
  const v6 = m?.[1] !== undefined;
  if (!m || host === undefined || isIP(host) !== (v6 ? 6 : 4)) {
    throw invalidArgument('workload endpoint tcp uri host must be an ip address literal (ipv6 in brackets)');
  }
  const portText = m[3];
  if (portText === undefined || portText === '') throw invalidArgument('workload endpoint tcp uri must include a port');
  const port = Number(portText);
  if (!/^[1-9]\d{0,4}$/.test(portText) || port > 65535) throw invalidArgument(`workload endpoint tcp uri port ${portText} is not 1-65535`);
  return { network: 'tcp', host, port, target: v6 ? `ipv6:[${host}]:${port}` : `ipv4:${host}:${port}` };
}
