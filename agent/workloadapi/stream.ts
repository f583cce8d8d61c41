import * as grpc from '@grpc/grpc-js';
import type { Selector } from '../../common/selector';
import { CallContext, toCallError, type CallDeps } from './calls';
import { encodeResponse, type WorkloadRPC } from '../../common/workloadapi/proto';

/** What a gRPC client accepts by default (grpc.max_receive_message_length): 4 MiB. */
export const CLIENT_DEFAULT_MAX_MESSAGE = 4 * 1024 * 1024;

/** The open server streams, so close() can end each one cleanly. */
export class OpenStreams {
  private readonly ends = new Set<() => void>();

  add(end: () => void): void {
    this.ends.add(end);
  }

  delete(end: () => void): void {
    this.ends.delete(end);
  }

  get size(): number {
    return this.ends.size;
  }

  /** Ends every open stream with status OK (`call.end()`). */
  endAll(): void {
    for (const end of [...this.ends]) end();
  }
}

/**
 * Builds the complete current message for a caller with these selectors;
 * undefined when there is nothing to send yet (the caller is entitled but its
 * SVID is awaited: the stream stays open and sends on a later change); or
 * throws a CallError (e.g. `ctx.deny(...)` once the caller has no identity).
 */
export type Compose = (ctx: CallContext, selectors: Selector[]) => object | undefined;

/**
 * A server-streaming handler: checks the header and readiness, attests the
 * caller and sends the first message at once (or, while the caller's SVID is
 * awaited, as soon as there is one), then on every source change
 * attests the caller again and recomputes the full message for the selectors it
 * has *now*, sending it only if its encoding changed. Re-attesting matters: after
 * the connecting process exited (or exec'd another binary), its path and sha256
 * selectors are gone, so an entry created later for them is never pushed down a
 * stream that process left behind. (It is cheap: the connection repeats its last
 * attestation while the process lives and runs the same binary.) A compose error
 * ends the stream with its status (PermissionDenied when no entry matches the
 * caller any more, as SPIRE does; an SVID that merely expired while the server
 * was unreachable holds the stream instead). The stream otherwise stays open until the client
 * cancels or the server closes (status OK).
 */
export function serverStream(deps: CallDeps, streams: OpenStreams, rpc: WorkloadRPC, compose: Compose): grpc.handleServerStreamingCall<unknown, object> {
  return (call) => {
    const ctx = new CallContext(deps, rpc, call);
    let done = false;
    let unsubscribe: (() => void) | undefined;
    let lastSent: Buffer | undefined;

    const finish = (code: grpc.status): boolean => {
      if (done) return false;
      done = true;
      unsubscribe?.();
      streams.delete(endOk);
      ctx.finish(code);
      return true;
    };
    function endOk(): void {
      if (finish(grpc.status.OK)) call.end();
    }
    const fail = (e: unknown): void => {
      const err = toCallError(e, ctx.log);
      // grpc-js turns an 'error' event on the stream into the call's status.
      if (finish(err.code)) call.emit('error', Object.assign(new Error(err.message), { code: err.code, details: err.message }));
    };
    let warnedSize = false;
    let waiting = false;
    const publish = (selectors: Selector[]): void => {
      // Encoded once: the exact bytes the client gets. Equal bytes mean nothing it
      // can see changed; the server's service definition writes a Buffer as is.
      const msg = compose(ctx, selectors);
      if (msg === undefined) {
        if (!waiting) ctx.log.debug(`${rpc} stream waits: the caller's svid is not issued yet`);
        waiting = true;
        return;
      }
      waiting = false;
      const bytes = encodeResponse(rpc, msg);
      if (lastSent?.equals(bytes)) return;
      lastSent = bytes;
      if (bytes.length > CLIENT_DEFAULT_MAX_MESSAGE && !warnedSize) {
        warnedSize = true;
        ctx.log.warn(
          { bytes: bytes.length, limit: CLIENT_DEFAULT_MAX_MESSAGE },
          `${rpc} message is larger than the 4 MiB gRPC clients accept by default: this workload matches too many entries; ` +
            'its client fails with RESOURCE_EXHAUSTED unless it raises grpc.max_receive_message_length (split the entries, or narrow their selectors)',
        );
      }
      call.write(bytes);
    };

    call.on('cancelled', () => finish(grpc.status.CANCELLED));
    (async () => {
      ctx.checkHeader();
      ctx.requireReady();
      const selectors = await ctx.attest();
      if (done) return; // cancelled while attesting
      ctx.requireReady(); // close() may have begun meanwhile, after it ended the open streams
      publish(selectors);
      streams.add(endOk);
      let queued = false;
      let running = false;
      const update = async (): Promise<void> => {
        running = true;
        try {
          while (queued && !done) {
            queued = false;
            const now = await ctx.attest(); // the caller as it is now (see above)
            if (!done) publish(now);
          }
        } catch (e) {
          fail(e);
        } finally {
          running = false;
        }
      };
      // Sources notify once per change; a burst of them (or of changes during an
      // attestation) costs one recompute.
      unsubscribe = deps.source.subscribe(() => {
        if (done) return;
        const idle = !queued && !running;
        queued = true;
        if (idle) setImmediate(() => void update());
      });
    })().catch(fail);
  };
}
