import path from 'node:path';

/**
 * Where `npm start` keeps the demo's state and sockets (./.tessera under the
 * repository, or TESSERA_DEMO_DIR), shared by the demo and the examples that run
 * against it. A Unix socket path must fit in sun_path (108 bytes on Linux), so a
 * checkout deep in the file system falls back to /tmp/tessera-demo-<uid>.
 * Ports are 8081 (agent API), 8082 (server health), 8083 (agent health), 8084
 * (OIDC discovery), or all chosen by the system with TESSERA_DEMO_PORTS=0 (the
 * tests do that; the OIDC issuer URL, which names its port, is then in
 * `<base>/oidc-issuer`).
 */
export function demoPaths(trustDomain = process.env.TESSERA_TRUST_DOMAIN ?? 'demo.tessera.local') {
  const root = path.resolve(__dirname, '..', '..');
  const base = process.env.TESSERA_DEMO_DIR ? path.resolve(process.env.TESSERA_DEMO_DIR) : path.join(root, '.tessera');
  const any = process.env.TESSERA_DEMO_PORTS === '0';
  const uid = process.getuid?.() ?? 0;
  const short = (p: string, fallback: string) => (p.length > 100 ? fallback : p);
  return {
    root,
    base,
    uid,
    trustDomain,
    adminSocket: short(path.join(base, 'admin', 'api.sock'), `/tmp/tessera-demo-${uid}/admin/api.sock`),
    agentSocket: short(path.join(base, 'agent-public', 'api.sock'), `/tmp/tessera-demo-${uid}/public/api.sock`),
    /** the demo agent's SPIFFE ID, parent of the demo's entries */
    alias: `spiffe://${trustDomain}/node/demo`,
    ports: { server: any ? 0 : 8081, serverHealth: any ? 0 : 8082, agentHealth: any ? 0 : 8083, oidc: any ? 0 : 8084 },
    oidcIssuerFile: path.join(base, 'oidc-issuer'),
  };
}
