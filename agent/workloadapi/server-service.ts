import type * as grpc from '@grpc/grpc-js';
import { workloadService } from '../../common/workloadapi/proto';

/**
 * The service definition the agent's server uses: as {@link workloadService},
 * except that a response that is already a Buffer (the stream handlers encode
 * each message once, to compare it with the last one sent) is written as is
 * instead of being encoded a second time.
 */
export function workloadServerService(): grpc.ServiceDefinition {
  serverService ??= Object.fromEntries(
    Object.entries(workloadService()).map(([rpc, def]) => {
      const encode = def.responseSerialize;
      return [rpc, { ...def, responseSerialize: (m: unknown) => (Buffer.isBuffer(m) ? m : encode(m)) }];
    }),
  ) as grpc.ServiceDefinition;
  return serverService;
}
let serverService: grpc.ServiceDefinition | undefined;
