import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ROOT } from './processes';

/**
 * A Workload API client written the way a third party would: generated at run
 * time from the proto with proto-loader, no Tessera code involved.
 */
export function thirdPartyClient(socketPath: string): grpc.Client & Record<string, any> {
  const def = protoLoader.loadSync(path.join(ROOT, 'common', 'workloadapi', 'workload.proto'), {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { SpiffeWorkloadAPI: grpc.ServiceClientConstructor };
  return new pkg.SpiffeWorkloadAPI(`unix://${socketPath}`, grpc.credentials.createInsecure()) as grpc.Client & Record<string, any>;
}

export function securityHeader(): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('workload.spiffe.io', 'true');
  return md;
}

/** First message of a server stream, then cancel. */
export function firstMessage<T>(stream: grpc.ClientReadableStream<T>, timeoutMs = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      stream.cancel();
      reject(new Error('no stream message in time'));
    }, timeoutMs);
    stream.once('data', (m: T) => {
      clearTimeout(t);
      resolve(m);
      stream.cancel();
    });
    stream.once('error', (e: grpc.ServiceError) => {
      clearTimeout(t);
      if (e.code !== grpc.status.CANCELLED) reject(e);
    });
  });
}

export function unary<Req, Res>(client: Record<string, any>, method: string, req: Req, md = securityHeader()): Promise<Res> {
  return new Promise((resolve, reject) => {
    client[method](req, md, (err: grpc.ServiceError | null, res: Res) => (err ? reject(err) : resolve(res)));
  });
}
