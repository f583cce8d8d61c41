import * as grpc from '@grpc/grpc-js';
import { GRPC_STATUS, isTesseraError } from '../../common/errors';
import { audit, F, type Logger } from '../../common/log';
import type { Selector } from '../../common/selector';
import type { CallerInfo } from '../attestor/workload/unix';
import type { WorkloadIdentitySource } from '../manager/identity-source';
import type { Connection } from './connections';
import { SECURITY_HEADER, type WorkloadRPC } from '../../common/workloadapi/proto';

/** The workload attestor as the Workload API uses it (UnixWorkloadAttestor fits). */
export interface WorkloadAttestor {
  attest(caller: CallerInfo): Promise<{ selectors: Selector[]; warnings: string[] }>;
}

/** Everything a call handler needs from the server. */
export interface CallDeps {
  source: WorkloadIdentitySource;
  attestor: WorkloadAttestor;
  /** Bare name of the agent's own trust domain. */
  trustDomain: string;
  log: Logger;
  /**
   * Called once per call with the status it ended with (a gRPC code name such as
   * `OK`) and, once attested, the caller's uid and the call's note (a
   * FetchJWTSVID's audiences), for metrics and identity-use anomalies.
   */
  onCall?: (rpc: WorkloadRPC, code: string, caller?: { uid: number; note?: string }) => void;
  connections: { get(id: string): Connection | undefined };
  /** True once close() has started: new calls get Unavailable. */
  closing(): boolean;
}

/** Log fields of the Workload API not (yet) in common/log `F`: the method and the connection id. */
export const RPC_FIELD = 'rpc';
export const CONN_FIELD = 'conn';

/** A gRPC status to end a call with. The message goes to the client: never put keys or tokens in it. */
export class CallError extends Error {
  constructor(readonly code: grpc.status, message: string) {
    super(message);
    this.name = 'CallError';
  }
}

/** The status for any error: CallError as is, TesseraError by its code, anything else Internal with a generic message. */
export function toCallError(e: unknown, log: Logger): CallError {
  if (e instanceof CallError) return e;
  if (isTesseraError(e)) return new CallError(GRPC_STATUS[e.code] as grpc.status, e.message);
  log.error({ err: e }, 'workload api call failed');
  return new CallError(grpc.status.INTERNAL, 'internal error');
}

/** `OK`, `PERMISSION_DENIED`, ...: the name of a gRPC status code, for metrics. */
export const statusName = (code: grpc.status): string => grpc.status[code] ?? String(code);

/** The per-call steps every RPC shares, in the order the spec wants them. */
export class CallContext {
  private caller?: CallerInfo;
  /** what distinguishes this call for anomaly tracking (FetchJWTSVID: its audiences), at most 256 characters */
  note?: string;
  private counted = false;
  private logger?: Logger;
  private readonly logFields: Record<string, unknown>;

  constructor(
    private readonly deps: CallDeps,
    readonly rpc: WorkloadRPC,
    private readonly call: { metadata: grpc.Metadata; getPeer(): string },
  ) {
    this.logFields = { [RPC_FIELD]: rpc };
    deps.connections.get(call.getPeer())?.callStarted();
  }

  /**
   * The call's logger (rpc, and once attested the caller's pid, uid and
   * connection). Made on first use: most calls log nothing at the default level,
   * and two child loggers per call showed up in the Workload API's latency.
   */
  get log(): Logger {
    this.logger ??= this.deps.log.child(this.logFields);
    return this.logger;
  }

  /** InvalidArgument unless the request carries `workload.spiffe.io: true`, exactly once. */
  checkHeader(): void {
    const values = this.call.metadata.get(SECURITY_HEADER);
    if (values.length !== 1 || values[0] !== 'true') {
      throw new CallError(grpc.status.INVALID_ARGUMENT, `security header ${SECURITY_HEADER}: true is missing`);
    }
  }

  /** Unavailable while the agent has nothing to serve yet, or is shutting down. */
  requireReady(): void {
    if (this.deps.closing()) throw new CallError(grpc.status.UNAVAILABLE, 'workload api is shutting down');
    if (!this.deps.source.ready()) throw new CallError(grpc.status.UNAVAILABLE, 'agent is not ready yet; retry later');
  }

  /**
   * The caller's selectors, attested now. uid/gid are the kernel's at connect
   * time; path/sha256 only if the connection's pidfd shows the same process
   * still alive (the attestor checks). Warnings (selectors left out) go to debug.
   */
  async attest(): Promise<Selector[]> {
    const conn = this.deps.connections.get(this.call.getPeer());
    // Only possible if the connection closed while the call was being set up.
    if (!conn) throw new CallError(grpc.status.UNAVAILABLE, 'caller could not be identified');
    this.caller = conn.caller;
    Object.assign(this.logFields, { [F.pid]: conn.caller.pid, [F.uid]: conn.caller.uid, [CONN_FIELD]: conn.id });
    this.logger = undefined; // made again, with the caller's fields
    let result: Awaited<ReturnType<WorkloadAttestor['attest']>>;
    try {
      result = await conn.withCaller((c) => this.deps.attestor.attest(c));
    } catch (err) {
      this.log.warn({ err }, 'workload attestation failed');
      throw new CallError(grpc.status.UNAVAILABLE, 'workload attestation failed');
    }
    if (result.warnings.length > 0) this.log.debug({ warnings: result.warnings }, 'workload attestation left selectors out');
    return result.selectors;
  }

  /** A PermissionDenied error, audit-logged with the caller's pid/uid and the reason. */
  deny(reason: string): CallError {
    audit(this.log, 'workload_api_denied', {
      [RPC_FIELD]: this.rpc,
      [F.pid]: this.caller?.pid,
      [F.uid]: this.caller?.uid,
      [F.gid]: this.caller?.gid,
      [F.reason]: reason,
    });
    return new CallError(grpc.status.PERMISSION_DENIED, reason);
  }

  /** Counts the call, once, with its final status. */
  finish(code: grpc.status): void {
    if (this.counted) return;
    this.counted = true;
    if (this.deps.log.isLevelEnabled('debug')) this.log.debug({ [F.code]: statusName(code) }, 'workload api call finished');
    this.deps.onCall?.(this.rpc, statusName(code), this.caller && { uid: this.caller.uid, note: this.note?.slice(0, 256) });
  }
}

/** A unary handler running `body`, mapping its errors to statuses and counting the call. */
export function unary<Req, Res>(
  deps: CallDeps,
  rpc: WorkloadRPC,
  body: (ctx: CallContext, req: Req) => Promise<Res>,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    const ctx = new CallContext(deps, rpc, call);
    body(ctx, call.request).then(
      (res) => {
        ctx.finish(grpc.status.OK);
        callback(null, res);
      },
      (e: unknown) => {
        const err = toCallError(e, ctx.log);
        ctx.finish(err.code);
        callback({ code: err.code, details: err.message });
      },
    );
  };
}
