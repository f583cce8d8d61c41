import * as grpc from '@grpc/grpc-js';
import { decodeJwtBundleJwks, splitConcatenatedDer, type SpiffeBundle } from '../../common/bundle/bundle';
import { ERROR_CODES, GRPC_STATUS, TesseraError, unavailable, type ErrorCode } from '../../common/errors';
import { parseTrustDomain } from '../../common/spiffeid/spiffe-id';
import { parseEndpoint, type WorkloadEndpoint } from '../../common/workloadapi/endpoint';
import {
  SECURITY_HEADER,
  workloadClientConstructor,
  type JWTBundlesResponse,
  type JWTSVIDResponse,
  type ValidateJWTSVIDResponse,
  type X509BundlesResponse,
  type X509SVIDResponse,
} from '../../common/workloadapi/proto';
import { fromStruct } from '../../common/workloadapi/struct';

export { parseEndpoint, type WorkloadEndpoint } from '../../common/workloadapi/endpoint';

/** One X.509-SVID as the Workload API delivered it, decoded. */
export interface X509SVID {
  spiffeId: string;
  /** DER certificates, leaf first. */
  chain: Buffer[];
  /** Unencrypted PKCS#8 DER private key of the leaf. */
  privateKey: Buffer;
  /** DER CA certificates of the SVID's own trust domain. */
  bundle: Buffer[];
  hint: string;
}

/** A full FetchX509SVID message: the SVIDs (default first) and federated CA certificates by bare trust domain name. */
export interface X509Context {
  svids: X509SVID[];
  federatedBundles: Map<string, Buffer[]>;
}

export interface JWTSVID {
  spiffeId: string;
  token: string;
  hint: string;
}

export interface WorkloadAPIClientOptions {
  /** Deadline of unary calls and of the first message of a fetch; default 10000 ms. */
  timeoutMs?: number;
  /**
   * Largest message accepted (bytes); default 64 MiB. gRPC's own default is 4 MiB,
   * which a workload with a few thousand entries outgrows.
   */
  maxMessageBytes?: number;
}

type Unary = (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: unknown) => void) => void;
type Streaming = (req: object, md: grpc.Metadata, opts?: grpc.CallOptions) => grpc.ClientReadableStream<unknown>;

const CODE_BY_STATUS = new Map<number, ErrorCode>(ERROR_CODES.map((c) => [GRPC_STATUS[c], c]));

/** A gRPC error as a TesseraError with the same code name (DEADLINE_EXCEEDED counts as UNAVAILABLE); the gRPC error is the cause. */
export function fromGrpcError(e: grpc.ServiceError): TesseraError {
  const code = e.code === grpc.status.DEADLINE_EXCEEDED ? 'UNAVAILABLE' : (CODE_BY_STATUS.get(e.code) ?? 'INTERNAL');
  return new TesseraError(code, `workload api: ${e.details || e.message}`, { cause: e });
}

/**
 * A SPIFFE Workload API client: one-shot fetches, watches of the three streams,
 * JWT-SVIDs and ValidateJWTSVID. The sources (X509Source, JWTSource, BundleSource)
 * build on it; the CLI's `agent api` verbs use it as it is. Every request
 * carries `workload.spiffe.io: true`; DER chains and bundles come back split
 * into Buffers. Errors are TesseraErrors with the status's code name.
 *
 * The endpoint is explicit (the CLI passes `SPIFFE_ENDPOINT_SOCKET`, as no module
 * but config reads the environment): `unix:///path`, `tcp://IP:PORT`, or a plain
 * absolute socket path.
 *
 * @example
 * const client = new WorkloadAPIClient('unix:///run/tessera/agent/public/api.sock');
 * const { svids } = await client.fetchX509SVIDs();
 * client.close();
 */
export class WorkloadAPIClient {
  readonly endpoint: WorkloadEndpoint;
  private readonly stub: grpc.Client & Record<string, Unary & Streaming>;
  private readonly timeoutMs: number;

  /** @throws TesseraError INVALID_ARGUMENT for an address {@link parseEndpoint} refuses */
  constructor(endpoint: string, opts: WorkloadAPIClientOptions = {}) {
    this.endpoint = endpoint.startsWith('/') ? { network: 'unix', path: endpoint, target: `unix://${endpoint}` } : parseEndpoint(endpoint);
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    const Client = workloadClientConstructor();
    const max = opts.maxMessageBytes ?? 64 * 1024 * 1024;
    this.stub = new Client(this.endpoint.target, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': max }) as typeof this.stub;
  }

  /** The first FetchX509SVID message (then the stream is cancelled). */
  fetchX509SVIDs(): Promise<X509Context> {
    return this.first('FetchX509SVID', (m) => decodeX509Context(m as X509SVIDResponse));
  }

  /**
   * Calls `onUpdate` with every FetchX509SVID message. `onError` gets the status
   * the stream ended with (UNAVAILABLE for a clean end by the server); the watch
   * is then over, and reconnecting (with backoff) is the caller's choice.
   * @returns a function that stops watching
   */
  watchX509SVIDs(onUpdate: (ctx: X509Context) => void, onError: (err: TesseraError) => void): () => void {
    return this.watch('FetchX509SVID', (m) => decodeX509Context(m as X509SVIDResponse), onUpdate, onError);
  }

  /** As {@link watchX509SVIDs}, for FetchX509Bundles: CA certificates by bare trust domain name. */
  watchX509Bundles(onUpdate: (bundles: Map<string, Buffer[]>) => void, onError: (err: TesseraError) => void): () => void {
    return this.watch('FetchX509Bundles', (m) => derMap((m as X509BundlesResponse).bundles), onUpdate, onError);
  }

  /** As {@link watchX509SVIDs}, for FetchJWTBundles: JWT bundles by bare trust domain name. */
  watchJWTBundles(onUpdate: (bundles: Map<string, SpiffeBundle>) => void, onError: (err: TesseraError) => void): () => void {
    return this.watch('FetchJWTBundles', decodeJWTBundles, onUpdate, onError);
  }

  private watch<T>(rpc: string, decode: (m: unknown) => T, onUpdate: (v: T) => void, onError: (err: TesseraError) => void): () => void {
    const call = this.stub[rpc]({}, this.metadata());
    let stopped = false;
    const stop = (err?: TesseraError) => {
      if (stopped) return;
      stopped = true;
      if (err) onError(err);
    };
    call.on('data', (m: unknown) => {
      if (stopped) return;
      let v: T;
      try {
        v = decode(m);
      } catch (e) {
        call.cancel();
        return stop(e instanceof TesseraError ? e : new TesseraError('INTERNAL', `cannot decode a ${rpc} message`, { cause: e }));
      }
      onUpdate(v);
    });
    call.on('error', (e: grpc.ServiceError) => stop(fromGrpcError(e)));
    call.on('end', () => stop(unavailable(`workload api: the server ended the ${rpc} stream`)));
    return () => {
      stop();
      call.cancel();
    };
  }

  /** The first FetchX509Bundles message: CA certificates by bare trust domain name. */
  fetchX509Bundles(): Promise<Map<string, Buffer[]>> {
    return this.first('FetchX509Bundles', (m) => derMap((m as X509BundlesResponse).bundles));
  }

  /** One JWT-SVID per identity of the caller (default first), or only `spiffeId`'s. */
  async fetchJWTSVIDs(audience: string[], spiffeId?: string): Promise<JWTSVID[]> {
    const res = (await this.unary('FetchJWTSVID', { audience, spiffe_id: spiffeId ?? '' })) as JWTSVIDResponse;
    return res.svids.map((s) => ({ spiffeId: s.spiffe_id, token: s.svid, hint: s.hint }));
  }

  /** The first FetchJWTBundles message: JWT bundles by bare trust domain name. */
  fetchJWTBundles(): Promise<Map<string, SpiffeBundle>> {
    return this.first('FetchJWTBundles', decodeJWTBundles);
  }

  /** Asks the agent to validate a JWT-SVID for `audience`; resolves with its SPIFFE ID and claims. */
  async validateJWTSVID(token: string, audience: string): Promise<{ spiffeId: string; claims: Record<string, unknown> }> {
    const res = (await this.unary('ValidateJWTSVID', { audience, svid: token })) as ValidateJWTSVIDResponse;
    return { spiffeId: res.spiffe_id, claims: fromStruct(res.claims) };
  }

  close(): void {
    this.stub.close();
  }

  private metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    md.set(SECURITY_HEADER, 'true');
    return md;
  }

  private deadline(): grpc.CallOptions {
    return { deadline: Date.now() + this.timeoutMs };
  }

  private unary(rpc: string, req: object): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.stub[rpc](req, this.metadata(), this.deadline(), (err, res) => (err ? reject(fromGrpcError(err)) : resolve(res)));
    });
  }

  private first<T>(rpc: string, decode: (m: unknown) => T): Promise<T> {
    return new Promise((resolve, reject) => {
      const call = this.stub[rpc]({}, this.metadata(), this.deadline());
      let settled = false;
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        fn();
      };
      call.on('data', (m: unknown) => {
        settle(() => {
          try {
            resolve(decode(m));
          } catch (e) {
            reject(e);
          }
        });
        // One message is all we wanted; the CANCELLED status that follows is ignored.
        call.cancel();
      });
      call.on('error', (e: grpc.ServiceError) => settle(() => reject(fromGrpcError(e))));
      call.on('end', () => settle(() => reject(unavailable(`workload api: ${rpc} ended before its first message`))));
    });
  }
}

function decodeJWTBundles(m: unknown): Map<string, SpiffeBundle> {
  const out = new Map<string, SpiffeBundle>();
  for (const [key, jwks] of Object.entries((m as JWTBundlesResponse).bundles)) {
    const td = parseTrustDomain(key);
    out.set(td, decodeJwtBundleJwks(td, jwks.toString('utf8')));
  }
  return out;
}

function derMap(map: Record<string, Buffer>): Map<string, Buffer[]> {
  // Clients accept a bare trust domain name as a key too.
  return new Map(Object.entries(map).map(([key, der]) => [parseTrustDomain(key), splitConcatenatedDer(der)]));
}

function decodeX509Context(m: X509SVIDResponse): X509Context {
  return {
    svids: m.svids.map((s) => ({
      spiffeId: s.spiffe_id,
      chain: splitConcatenatedDer(s.x509_svid),
      privateKey: Buffer.from(s.x509_svid_key),
      bundle: splitConcatenatedDer(s.bundle),
      hint: s.hint,
    })),
    federatedBundles: derMap(m.federated_bundles),
  };
}
