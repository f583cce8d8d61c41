import tls from 'node:tls';
import { Agent, fetch as undiciFetch, type Dispatcher } from 'undici';
import { invalidArgument } from '../../common/errors';
import { mtlsClientOptions, type MTLSClientConfig } from './client';

/**
 * An undici dispatcher that connects with the workload's SVID (the one current at
 * each new connection) and accepts only servers that pass the SPIFFE checks of
 * {@link mtlsClientOptions}. Use it with undici's own `fetch` (see
 * {@link spiffeFetch}): handing a dispatcher from the `undici` package to Node's
 * global `fetch` only works when both undici versions agree.
 */
export function spiffeDispatcher(c: MTLSClientConfig, opts: Omit<Agent.Options, 'connect'> = {}): Agent {
  return new Agent({
    ...opts,
    connect: (o, callback) => {
      if (o.protocol !== 'https:') return callback(invalidArgument(`spiffe fetch needs an https url, not ${o.protocol}//${o.hostname}`), null);
      const host = o.hostname;
      let socket: tls.TLSSocket;
      try {
        socket = tls.connect({
          ...mtlsClientOptions(c),
          host,
          port: Number(o.port) || 443,
          servername: o.servername || (/^[\d.]+$/.test(host) || host.includes(':') ? undefined : host),
          ALPNProtocols: ['http/1.1'],
        });
      } catch (e) {
        return callback(e as Error, null);
      }
      socket.setNoDelay(true);
      const onError = (e: Error) => callback(e, null);
      socket.once('error', onError);
      socket.once('secureConnect', () => {
        socket.off('error', onError);
        callback(null, socket);
      });
    },
  });
}

/**
 * `fetch` with the workload's identity: `await spiffeFetch(cfg)('https://inference.internal/v1/chat', {...})`.
 * The returned function shares one dispatcher (keep-alive connections); call `close()` on it when done.
 */
export function spiffeFetch(c: MTLSClientConfig, opts?: Omit<Agent.Options, 'connect'>): typeof undiciFetch & { dispatcher: Dispatcher; close(): Promise<void> } {
  const dispatcher = spiffeDispatcher(c, opts);
  const f = ((input: Parameters<typeof undiciFetch>[0], init: Parameters<typeof undiciFetch>[1] = {}) =>
    undiciFetch(input, { ...init, dispatcher })) as typeof undiciFetch & { dispatcher: Dispatcher; close(): Promise<void> };
  f.dispatcher = dispatcher;
  f.close = () => dispatcher.close();
  return f;
}
