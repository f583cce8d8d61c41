import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { existsSync } from 'fs';
import { dirname, join } from 'path';

/**
 * The SPIFFE Workload API proto, loaded once for the server and the client,
 * plus the TypeScript shapes of its messages as proto-loader hands them over
 * (`keepCase`: field names exactly as in the proto).
 */

/** gRPC metadata every Workload API request must carry, with the value `true`. */
export const SECURITY_HEADER = 'workload.spiffe.io';

/** Method names of `SpiffeWorkloadAPI` (also the `rpc` metric label). */
export type WorkloadRPC =
  | 'FetchX509SVID'
  | 'FetchX509Bundles'
  | 'FetchJWTSVID'
  | 'FetchJWTBundles'
  | 'ValidateJWTSVID'
  | 'FetchWITSVID'
  | 'FetchWITBundles';

const PROTO_REL = join('common', 'workloadapi', 'workload.proto');

/**
 * Absolute path of workload.proto. The build is `tsc` only, which does not copy
 * .proto files, so this walks up from this module's directory until it finds
 * `common/workloadapi/workload.proto`: from the sources that is the repository
 * root; from `dist/common/workloadapi` it is the repository root too (dist
 * lives inside it, and the image copies the whole tree); in the SDK package the
 * build copies the file next to this module (`dist/common/workloadapi`).
 * @throws Error if no ancestor directory holds the file
 */
export function workloadProtoPath(from: string = __dirname): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, PROTO_REL);
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) throw new Error(`cannot find ${PROTO_REL} in any parent of ${from}`);
  }
}

/** proto-loader options: proto field names, strings for enums, defaults filled in, `kind` for oneofs. */
export const LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

let loaded: protoLoader.PackageDefinition | undefined;

/** The package definition (loaded from disk on first use, then cached). */
export function workloadPackage(): protoLoader.PackageDefinition {
  loaded ??= protoLoader.loadSync(workloadProtoPath(), LOADER_OPTIONS);
  return loaded;
}

/** The `SpiffeWorkloadAPI` service definition, for `server.addService`. */
export function workloadService(): grpc.ServiceDefinition {
  return workloadPackage().SpiffeWorkloadAPI as grpc.ServiceDefinition;
}

/** A generic grpc-js client constructor for `SpiffeWorkloadAPI`. */
export function workloadClientConstructor(): grpc.ServiceClientConstructor {
  return grpc.loadPackageDefinition(workloadPackage()).SpiffeWorkloadAPI as grpc.ServiceClientConstructor;
}

/** Protobuf encoding of a response of `rpc`: the exact bytes a client receives (used to detect changes). */
export function encodeResponse(rpc: WorkloadRPC, message: object): Buffer {
  return workloadService()[rpc].responseSerialize(message);
}

// Message shapes. Bytes are Buffers, maps are plain objects keyed by trust domain SPIFFE ID.

export interface X509SVIDMessage {
  spiffe_id: string;
  x509_svid: Buffer;
  x509_svid_key: Buffer;
  bundle: Buffer;
  hint: string;
}

export interface X509SVIDResponse {
  svids: X509SVIDMessage[];
  crl: Buffer[];
  federated_bundles: Record<string, Buffer>;
}

export interface X509BundlesResponse {
  crl: Buffer[];
  bundles: Record<string, Buffer>;
}

export interface JWTSVIDRequest {
  audience: string[];
  spiffe_id: string;
}

export interface JWTSVIDMessage {
  spiffe_id: string;
  svid: string;
  hint: string;
}

export interface JWTSVIDResponse {
  svids: JWTSVIDMessage[];
}

export interface JWTBundlesResponse {
  bundles: Record<string, Buffer>;
}

export interface ValidateJWTSVIDRequest {
  audience: string;
  svid: string;
}

/** `google.protobuf.Value` in proto-loader's message form (one member set; `kind` names it on decode). */
export interface StructValue {
  nullValue?: 'NULL_VALUE' | 0;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: ProtoStruct;
  listValue?: { values: StructValue[] };
  kind?: string;
}

/** `google.protobuf.Struct` in proto-loader's message form. */
export interface ProtoStruct {
  fields: Record<string, StructValue>;
}

export interface ValidateJWTSVIDResponse {
  spiffe_id: string;
  claims: ProtoStruct;
}
