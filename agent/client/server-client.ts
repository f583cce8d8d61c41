import { TLS_OPTIONS } from '../../common/tls';
import https from 'node:https';
import { X509Certificate, createHash, type KeyObject } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { TesseraError, ERROR_CODES, type ErrorCode, unavailable, permissionDenied } from '../../common/errors';
import { decodeBundle, type SpiffeBundle } from '../../common/bundle/bundle';
import { derToPem } from '../../common/pem';

export const SERVER_PATH = '/tessera/server';

export interface SVIDResponse {
  agentId: string;
  /** leaf first */
  chain: Buffer[];
  expiresAt: number;
  bundle: SpiffeBundle;
}

export interface EntryJSON {
  id: string;
  spiffe_id: string;
  parent_id: string;
  selectors: Array<{ type: string; value: string }>;
  x509_svid_ttl: number;
  jwt_svid_ttl: number;
  dns_names: string[];
  federates_with: string[];
  hint: string;
  /** the entry's JWT audience allowlist (absent from servers before it existed: any audience) */
  jwt_audiences?: string[];
  /** its JWT-SVIDs carry a unique jti: minted per request, never cached */
  jwt_jti?: boolean;
  expires_at: number | null;
  created_at: number;
  revision: number;
}

export interface EntrySyncResponse {
  revision: number;
  full: boolean;
  entries: EntryJSON[];
  removed: string[];
  bundle_sequence: number;
  /** keys an operator tainted: X.509 CA subject key identifiers (hex) and JWT kids (absent from older servers) */
  tainted_authorities?: { x509: string[]; jwt: string[] };
}

export type X509SignResult =
  | { entry_id: string; spiffe_id: string; x509_svid: string[]; expires_at: number }
  | { entry_id: string | null; error: { code: ErrorCode; message: string } };

/**
 * The agent's client for the server's agent API. It verifies the server's TLS
 * certificate as an X.509-SVID: it must chain to the trust bundle it holds and
 * carry exactly the SPIFFE ID `spiffe://<td>/tessera/server` (host names are not
 * used). Before attestation the bundle comes from a file, or from the server
 * itself checked against a pinned SHA-256 fingerprint of a root (SPIRE #2136).
 */
export class ServerClient {
  private agent: https.Agent;
  private roots: Buffer[];
  private identity?: { chain: Buffer[]; key: KeyObject };
  private readonly addresses: string[];
  /** index of the server in use; moves on when that one cannot be reached */
  private current = 0;
  /** called when requests move to another server (the agent logs it) */
  onServerChange?: (change: { from: string; to: string; reason: string }) => void;
  private closed = false;

  /**
   * `address`: one server, or several servers of one trust domain sharing a database.
   * A request that cannot reach the server in use (connection refused or reset, no
   * answer in time, 503) goes to the next one, each at most once per request; the
   * client then stays with the server that answered.
   */
  constructor(
    address: string | string[],
    private readonly trustDomain: string,
    roots: Buffer[],
    private readonly timeoutMs = 30_000,
  ) {
    this.addresses = Array.isArray(address) ? [...address] : [address];
    if (this.addresses.length === 0) throw new TesseraError('INVALID_ARGUMENT', 'at least one server address is needed');
    this.roots = roots;
    this.agent = this.makeAgent();
  }

  /** The server address requests go to now. */
  get address(): string {
    return this.addresses[this.current]!;
  }

  /**
   * Trust on first use, pinned: fetches the bundle over an unverified connection
   * and keeps **only the roots whose SHA-256 equals the pin**. The rest of that
   * bundle came from a connection anyone could have answered (a man in the middle
   * can add its own CA to a copy of the real bundle), so it is dropped; the full
   * bundle arrives later in the attestation response, over TLS verified against
   * the pinned root, and the manager switches to it then.
   * @throws TesseraError PERMISSION_DENIED when no root matches the pin
   */
  static async bootstrapWithFingerprint(address: string | string[], trustDomain: string, sha256Hex: string): Promise<ServerClient> {
    const pin = sha256Hex.toLowerCase().replace(/:/g, '');
    if (!/^[0-9a-f]{64}$/.test(pin)) throw new TesseraError('INVALID_ARGUMENT', 'trust bundle sha256 must be 64 hex digits');
    const addresses = Array.isArray(address) ? address : [address];
    const insecure = new https.Agent({ rejectUnauthorized: false });
    let answer: { status: number; text: string } | undefined;
    let lastErr: unknown;
    for (const a of addresses) {
      try {
        answer = await request(insecure, a, 'GET', '/agent/v1/bootstrap-bundle', undefined, 10_000);
        break;
      } catch (e) {
        lastErr = e;
      }
    }
    insecure.destroy();
    if (!answer) throw lastErr;
    const { status, text } = answer;
    if (status !== 200) throw unavailable(`server answered ${status} to the bootstrap bundle request`);
    const bundle = decodeBundle(trustDomain, text);
    const pinned = bundle.x509Authorities.filter((c) => createHash('sha256').update(c).digest('hex') === pin);
    if (pinned.length === 0) throw permissionDenied('no root in the server-provided bundle matches the pinned sha256 fingerprint; refusing to trust it');
    return new ServerClient(addresses, trustDomain, pinned);
  }

  setIdentity(chain: Buffer[], key: KeyObject): void {
    this.identity = { chain, key };
    this.reset();
  }

  setRoots(roots: Buffer[]): void {
    this.roots = roots;
    this.reset();
  }

  private reset(): void {
    this.agent.destroy();
    this.agent = this.makeAgent();
  }

  private makeAgent(): https.Agent {
    const expected = `spiffe://${this.trustDomain}${SERVER_PATH}`;
    return new https.Agent({
      keepAlive: true,
      maxSockets: 4,
      ca: this.roots.map((r) => derToPem(r)),
      cert: this.identity?.chain.map((c) => derToPem(c)).join(''),
      key: this.identity?.key.export({ format: 'pem', type: 'pkcs8' }) as string | undefined,
      ...TLS_OPTIONS,
      checkServerIdentity: (_host: string, cert: PeerCertificate) => {
        const uris = (new X509Certificate(cert.raw).subjectAltName ?? '').split(', ').filter((s) => s.startsWith('URI:'));
        if (uris.length !== 1 || uris[0] !== `URI:${expected}`) {
          return new Error(`server certificate is not the SVID ${expected}`);
        }
        return undefined;
      },
    });
  }

  close(): void {
    // Before the sockets go: a request they cut must not move to the next server (with
    // several servers a held long poll would otherwise be sent again and keep a stopping
    // agent waiting up to sync_wait).
    this.closed = true;
    this.agent.destroy();
  }

  /** One request, moved to the next server when the one in use cannot be reached. */
  private async send(method: string, path: string, body: unknown, timeoutMs: number): Promise<{ status: number; text: string }> {
    for (let tried = 1; ; tried++) {
      if (this.closed) throw new TesseraError('UNAVAILABLE', 'the server client is closed (the agent is stopping)');
      const at = this.current;
      let r: { status: number; text: string } | undefined;
      let err: unknown;
      try {
        r = await request(this.agent, this.addresses[at]!, method, path, body, timeoutMs);
      } catch (e) {
        err = e;
      }
      // 503: that server is up but cannot serve (its database is gone): another one may
      const unreachable = err !== undefined || r!.status === 503;
      if (!unreachable || tried >= this.addresses.length || this.closed) {
        if (err !== undefined) throw err;
        return r!;
      }
      if (this.current === at) {
        this.current = (at + 1) % this.addresses.length;
        const reason = err !== undefined ? ((err as { code?: string }).code ?? (err as Error).message) : 'HTTP 503';
        this.onServerChange?.({ from: this.addresses[at]!, to: this.addresses[this.current]!, reason });
      }
    }
  }

  private async call<T>(method: string, path: string, body?: unknown, timeoutMs = this.timeoutMs): Promise<T> {
    const { status, text } = await this.send(method, path, body, timeoutMs);
    const parsed = text ? (JSON.parse(text) as unknown) : undefined;
    if (status >= 400 && !(status < 500 && (parsed as { results?: unknown })?.results)) {
      const err = (parsed as { error?: { code?: string; message?: string } })?.error;
      const code = (ERROR_CODES as readonly string[]).includes(err?.code ?? '') ? (err!.code as ErrorCode) : 'UNAVAILABLE';
      throw new TesseraError(code, err?.message ?? `server answered HTTP ${status}`);
    }
    return parsed as T;
  }

  private svid(r: { agent_id: string; x509_svid: string[]; expires_at: number; bundle: unknown }): SVIDResponse {
    return {
      agentId: r.agent_id,
      chain: r.x509_svid.map((c) => Buffer.from(c, 'base64')),
      expiresAt: r.expires_at,
      bundle: decodeBundle(this.trustDomain, r.bundle as object),
    };
  }

  async attestJoinToken(token: string, csr: Buffer): Promise<SVIDResponse> {
    const r = await this.call<Parameters<ServerClient['svid']>[0]>('POST', '/agent/v1/attest', {
      type: 'join_token',
      payload: { token },
      csr: csr.toString('base64'),
    });
    return this.svid(r);
  }

  /** x509pop: sends the chain, signs the server's nonce with `sign`, returns the agent SVID. */
  async attestX509Pop(certificates: Buffer[], sign: (challenge: Buffer) => Buffer, csr: Buffer): Promise<SVIDResponse> {
    const c = await this.call<{ challenge_id: string; challenge: string }>('POST', '/agent/v1/attest', {
      type: 'x509pop',
      payload: { certificates: certificates.map((d) => d.toString('base64')) },
      csr: csr.toString('base64'),
    });
    const response = sign(Buffer.from(c.challenge, 'base64'));
    const r = await this.call<Parameters<ServerClient['svid']>[0]>('POST', '/agent/v1/attest/response', {
      challenge_id: c.challenge_id,
      response: response.toString('base64'),
    });
    return this.svid(r);
  }

  async renew(csr: Buffer): Promise<SVIDResponse> {
    return this.svid(await this.call('POST', '/agent/v1/renew', { csr: csr.toString('base64') }));
  }

  /** Entries this agent may serve; with `wait`, the server holds the request until something changes. */
  entries(opts: { since?: number; waitSeconds?: number; bundleSequence?: number } = {}): Promise<EntrySyncResponse> {
    const q = new URLSearchParams();
    if (opts.since !== undefined) q.set('since', String(opts.since));
    if (opts.waitSeconds) q.set('wait', String(opts.waitSeconds));
    if (opts.bundleSequence !== undefined) q.set('bundle_sequence', String(opts.bundleSequence));
    return this.call('GET', `/agent/v1/entries?${q}`, undefined, this.timeoutMs + (opts.waitSeconds ?? 0) * 1000);
  }

  signX509SVIDs(requests: Array<{ entryId: string; csr: Buffer }>): Promise<{ results: X509SignResult[] }> {
    return this.call('POST', '/agent/v1/x509-svids', {
      requests: requests.map((r) => ({ entry_id: r.entryId, csr: r.csr.toString('base64') })),
    });
  }

  mintJWTSVID(entryId: string, audience: string[], ttl?: number): Promise<{ spiffe_id: string; token: string; expires_at: number }> {
    return this.call('POST', '/agent/v1/jwt-svids', { entry_id: entryId, audience, ttl });
  }

  async bundle(): Promise<{ bundle: SpiffeBundle; federated: SpiffeBundle[] }> {
    const r = await this.call<{ bundle: object; federated_bundles: Record<string, object> }>('GET', '/agent/v1/bundle');
    return {
      bundle: decodeBundle(this.trustDomain, r.bundle),
      federated: Object.entries(r.federated_bundles).map(([td, b]) => decodeBundle(td, b)),
    };
  }
}

function request(
  agent: https.Agent,
  address: string,
  method: string,
  path: string,
  body: unknown,
  timeoutMs: number,
): Promise<{ status: number; text: string }> {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(i + 1));
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        agent,
        host,
        port,
        method,
        path,
        servername: host.match(/^[\d.]+$|:/) ? undefined : host,
        headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(unavailable(`server ${address} did not answer within ${timeoutMs} ms`)));
    req.on('error', (e: NodeJS.ErrnoException) =>
      reject(e instanceof TesseraError ? e : unavailable(`cannot reach server ${address}: ${e.code ?? e.message}`, e)),
    );
    req.end(payload);
  });
}
