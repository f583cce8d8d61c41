import { X509Certificate } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import * as jose from 'jose';
import { splitConcatenatedDer } from '../../common/bundle/bundle';
import { authorityKeyId, subjectKeyId } from '../../common/x509svid/key-id';
import { securityHeader, thirdPartyClient, unary } from './third-party-client';

/** One X.509-SVID as a FetchX509SVID message delivered it, with the bundle of that message. */
export interface SeenX509 {
  at: number;
  spiffeId: string;
  serial: string;
  /** subject key id of the CA that signed the leaf */
  aki: string;
  chain: Buffer[];
  bundle: Buffer[];
}

/** A JWKS as held at a moment. */
export interface SeenJWKS {
  at: number;
  jwks: { keys: Array<{ kid?: string }> };
}

type Msg<T> = T & Record<string, unknown>;

/**
 * What one workload sees through the Workload API (the third-party client
 * generated from the proto): its FetchX509SVID, FetchX509Bundles and
 * FetchJWTBundles streams, kept open, with every change recorded and timed.
 * The validations use only what the workload holds at that moment.
 */
export class WorkloadView {
  readonly client: grpc.Client & Record<string, any>;
  /** every new X.509-SVID (by serial), in arrival order */
  readonly x509: SeenX509[] = [];
  /** the latest FetchX509SVID message's SVIDs (by SPIFFE ID) */
  current = new Map<string, SeenX509>();
  readonly x509Bundles: Array<{ at: number; skis: string[] }> = [];
  readonly jwtBundles: SeenJWKS[] = [];
  readonly streamErrors: string[] = [];
  onX509?: (s: SeenX509) => void;
  private readonly streams: grpc.ClientReadableStream<unknown>[] = [];
  private readonly tdKey: string;

  constructor(socket: string, trustDomain: string) {
    this.client = thirdPartyClient(socket);
    this.tdKey = `spiffe://${trustDomain}`;
  }

  /** Opens the three streams and resolves once each has delivered a first message. */
  async start(timeoutMs = 20_000): Promise<void> {
    this.follow('FetchX509SVID', (m: Msg<{ svids: Array<{ spiffe_id: string; x509_svid: Buffer; bundle: Buffer }> }>) => {
      const at = Date.now();
      const next = new Map<string, SeenX509>();
      for (const s of m.svids) {
        const chain = splitConcatenatedDer(s.x509_svid);
        const serial = new X509Certificate(chain[0]!).serialNumber;
        const prev = this.current.get(s.spiffe_id);
        const seen: SeenX509 = prev?.serial === serial ? { ...prev, bundle: splitConcatenatedDer(s.bundle) } : { at, spiffeId: s.spiffe_id, serial, aki: authorityKeyId(chain[0]!) ?? '', chain, bundle: splitConcatenatedDer(s.bundle) };
        next.set(s.spiffe_id, seen);
        if (prev?.serial !== serial) {
          this.x509.push(seen);
          this.onX509?.(seen);
        }
      }
      this.current = next;
    });
    this.follow('FetchX509Bundles', (m: Msg<{ bundles: Record<string, Buffer> }>) => {
      const own = m.bundles[this.tdKey];
      if (own) this.x509Bundles.push({ at: Date.now(), skis: splitConcatenatedDer(own).map((c) => subjectKeyId(c) ?? '') });
    });
    this.follow('FetchJWTBundles', (m: Msg<{ bundles: Record<string, Buffer> }>) => {
      const own = m.bundles[this.tdKey];
      if (own) this.jwtBundles.push({ at: Date.now(), jwks: JSON.parse(own.toString('utf8')) });
    });
    const end = Date.now() + timeoutMs;
    while (this.current.size === 0 || this.x509Bundles.length === 0 || this.jwtBundles.length === 0) {
      if (Date.now() > end) throw new Error(`workload streams did not start: ${this.streamErrors.join('; ')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private follow<T>(method: string, onData: (m: T) => void): void {
    const s = this.client[method]({}, securityHeader()) as grpc.ClientReadableStream<T>;
    s.on('data', onData);
    s.on('error', (e: grpc.ServiceError) => {
      if (e.code !== 1 /* CANCELLED */) this.streamErrors.push(`${method}: ${e.message}`);
    });
    this.streams.push(s as grpc.ClientReadableStream<unknown>);
  }

  /** JWT-SVIDs for `audience` (one per identity of the caller). */
  async fetchJWTs(audience: string[]): Promise<Array<{ spiffe_id: string; svid: string }>> {
    return (await unary<object, { svids: Array<{ spiffe_id: string; svid: string }> }>(this.client, 'FetchJWTSVID', { audience })).svids;
  }

  /**
   * Checks an X.509-SVID chain against the bundle of this workload's latest
   * FetchX509SVID message, at `now`. @returns undefined when valid, else the reason
   */
  validateX509(chain: Buffer[], now = Date.now()): string | undefined {
    const bundle = [...this.current.values()][0]?.bundle;
    if (!bundle) return 'no bundle held';
    return verifyChain(chain, bundle, now);
  }

  /** Validates a JWT-SVID through the agent (ValidateJWTSVID) and with jose against the JWKS held now. @returns undefined or the reasons */
  async validateJWT(token: string, audience: string): Promise<string | undefined> {
    const errors: string[] = [];
    await unary(this.client, 'ValidateJWTSVID', { audience, svid: token }).catch((e: Error) => errors.push(`agent: ${e.message}`));
    const jwks = this.jwtBundles[this.jwtBundles.length - 1]?.jwks;
    if (!jwks) errors.push('no jwt bundle held');
    else await jose.jwtVerify(token, jose.createLocalJWKSet(jwks as jose.JSONWebKeySet), { audience }).catch((e: Error) => errors.push(`jose: ${e.message}`));
    return errors.length ? errors.join('; ') : undefined;
  }

  close(): void {
    for (const s of this.streams) s.cancel();
    this.client.close();
  }
}

/**
 * Path validation with node:crypto only: every certificate of the chain valid at
 * `now`, each signed by the next, the last signed by a root of `roots` (itself
 * valid at `now`). @returns undefined when valid, else the reason
 */
export function verifyChain(chain: Buffer[], roots: Buffer[], now: number): string | undefined {
  const certs = chain.map((d) => new X509Certificate(d));
  const anchors = roots.map((d) => new X509Certificate(d));
  const valid = (c: X509Certificate) => Date.parse(c.validFrom) <= now && now < Date.parse(c.validTo);
  for (const [i, c] of certs.entries()) {
    if (!valid(c)) return `certificate ${i} is not valid now (${c.validFrom} .. ${c.validTo})`;
    const next = certs[i + 1];
    if (next && !(c.checkIssued(next) && c.verify(next.publicKey))) return `certificate ${i} is not signed by certificate ${i + 1}`;
  }
  const top = certs[certs.length - 1]!;
  const root = anchors.find((r) => top.checkIssued(r) && top.verify(r.publicKey));
  if (!root) return `no root of the bundle (${roots.length} roots) signed the chain (issuer AKI ${authorityKeyId(chain[chain.length - 1]!)})`;
  if (!valid(root)) return 'the root is not valid now';
  return undefined;
}

/** The kid of a JWT's header. */
export const jwtKidOf = (token: string): string => (JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()) as { kid: string }).kid;
