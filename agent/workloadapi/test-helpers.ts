import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { createLogger, type Logger } from '../../common/log';
import { SECURITY_HEADER, workloadProtoPath } from '../../common/workloadapi/proto';

/**
 * Test-only: a raw grpc-js client built straight from workload.proto with
 * proto-loader, as a third party would (none of our client code), stream
 * collectors and a log capture.
 */

// Any message: the raw client is deliberately untyped, as a third party's would be.
export type Msg = any;
export type RawClient = grpc.Client & Record<string, (...args: unknown[]) => Msg>;

export function rawClient(socketPath: string): RawClient {
  const def = protoLoader.loadSync(workloadProtoPath(), { keepCase: true, defaults: true, oneofs: true });
  const Ctor = grpc.loadPackageDefinition(def).SpiffeWorkloadAPI as grpc.ServiceClientConstructor;
  return new Ctor(`unix://${socketPath}`, grpc.credentials.createInsecure()) as RawClient;
}

/** Metadata with the security header set to each given value (none: no header at all). */
export function header(...values: string[]): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const v of values) md.add(SECURITY_HEADER, v);
  return md;
}

/** A unary call: resolves with the response or with the ServiceError (never rejects). */
export function unaryCall(c: RawClient, rpc: string, req: object, md = header('true')): Promise<{ res?: Msg; err?: grpc.ServiceError }> {
  return new Promise((resolve) => c[rpc](req, md, (err: grpc.ServiceError | null, res: Msg) => resolve(err ? { err } : { res })));
}

export interface OpenStream {
  call: grpc.ClientReadableStream<Msg>;
  messages: Msg[];
  /** The call's final status (OK included). */
  status: Promise<grpc.StatusObject>;
}

export function openStream(c: RawClient, rpc: string, md = header('true')): OpenStream {
  const call = c[rpc]({}, md) as grpc.ClientReadableStream<Msg>;
  const messages: Msg[] = [];
  call.on('data', (m: Msg) => messages.push(m));
  call.on('error', () => undefined); // the status promise carries it
  const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  return { call, messages, status };
}

/** Polls `cond` every 5 ms; rejects after `ms`. */
export async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A debug-level logger whose JSON lines land in `lines`. */
export function captureLog(): { log: Logger; lines: string[]; entries: () => Record<string, unknown>[] } {
  const lines: string[] = [];
  const log = createLogger({ name: 'test', level: 'debug', destination: { write: (s: string) => void lines.push(s) } });
  return { log, lines, entries: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}
