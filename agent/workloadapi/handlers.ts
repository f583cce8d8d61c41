import * as grpc from '@grpc/grpc-js';
import { JWTSVIDError, validateJWTSVID } from '../../common/jwtsvid/validate';
import { checkAudience } from '../../common/jwtsvid/audience';
import { disallowedAudiences } from '../../common/jwtsvid/audience-allowlist';
import { F } from '../../common/log';
import type { Selector } from '../../common/selector';
import { parseSpiffeId } from '../../common/spiffeid/spiffe-id';
import type { CachedX509SVID } from '../manager/identity-source';
import { CallContext, CallError, unary, type CallDeps } from './calls';
import type { JWTSVIDRequest, JWTSVIDResponse, ValidateJWTSVIDRequest, ValidateJWTSVIDResponse, WorkloadRPC } from '../../common/workloadapi/proto';
import { federatedTrustDomains, jwtBundlesResponse, uniqueHints, x509BundlesResponse, x509SVIDResponse } from './responses';
import { serverStream, type OpenStreams } from './stream';
import { toStruct } from '../../common/workloadapi/struct';

/** The audit reason when the caller's selectors match no registration entry. */
export const NO_ENTRY_REASON = 'no registration entry matches the caller';

/**
 * A unary call from an entitled caller whose X.509-SVID is not held right now. UNAVAILABLE is
 * the code gRPC clients retry; the stream RPCs wait instead (SPIRE holds them the same way).
 */
export const SVID_AWAITED =
  "the caller's identity is not issued yet: the agent is waiting for the server to sign it " +
  '(its entry was created a moment ago, or the server cannot be reached); retry shortly';

const invalid = (msg: string) => new CallError(grpc.status.INVALID_ARGUMENT, msg);

/**
 * The `SpiffeWorkloadAPI` implementation for `server.addService`. Every RPC
 * first checks the security header (InvalidArgument, nothing else), then its
 * request, then readiness (Unavailable), then attests the caller.
 *
 * Choices where the spec leaves room:
 * - A caller whose entry matches but whose X.509-SVID is not held right now (an
 *   entry created a moment ago, or an SVID that expired while the server could
 *   not be reached) is entitled, not denied: FetchX509SVID holds the stream and
 *   sends once the SVID is signed (SPIRE's cache likewise blocks a subscriber
 *   until its SVIDs are cached), the bundle streams keep serving, and
 *   FetchJWTSVID answers Unavailable (retryable). PermissionDenied means no
 *   entry matches.
 * - FetchX509Bundles and FetchJWTBundles deny (PermissionDenied) a caller with
 *   no identity, as SPIRE does without `allow_unauthenticated_verifiers`.
 * - ValidateJWTSVID serves any attested caller, identity or not (as SPIRE): it
 *   reveals nothing but whether a token is valid. It checks the token against
 *   the caller's own bundles only: the own trust domain's keys, and the
 *   federated bundles of the trust domains its entries federate with.
 */
export function workloadHandlers(deps: CallDeps, streams: OpenStreams): grpc.UntypedServiceImplementation {
  const { source, trustDomain } = deps;

  /**
   * The caller's SVIDs (default first, later duplicate hints dropped); undefined
   * when it is entitled (a live entry matches) but none of its SVIDs is held right
   * now; PermissionDenied when no entry matches.
   */
  const svidsFor = (ctx: CallContext, selectors: Selector[]): CachedX509SVID[] | undefined => {
    const { kept, dropped } = uniqueHints(source.x509SVIDsFor(selectors));
    if (dropped.length > 0) ctx.log.debug({ [F.entryId]: dropped.map((s) => s.entryId) }, 'svids with a duplicate hint left out');
    if (kept.length > 0) return kept;
    if (source.entitlementsFor(selectors).length > 0) return undefined;
    throw ctx.deny(NO_ENTRY_REASON);
  };
  const federatedOf = (svids: ReadonlyArray<{ federatesWith: string[] }>) => source.federatedBundles(federatedTrustDomains(svids, trustDomain));
  /**
   * Bundles follow entitlement, not the SVIDs held: the federations of every entry
   * that matches the caller (an SVID awaited or not); PermissionDenied when none does.
   */
  const bundlesFederatedFor = (ctx: CallContext, selectors: Selector[]) => {
    const entitled = source.entitlementsFor(selectors);
    if (entitled.length === 0) throw ctx.deny(NO_ENTRY_REASON);
    return federatedOf(entitled);
  };

  return {
    FetchX509SVID: serverStream(deps, streams, 'FetchX509SVID', (ctx, selectors) => {
      const svids = svidsFor(ctx, selectors);
      if (!svids) return undefined; // entitled, SVID awaited: the stream waits for it
      return x509SVIDResponse(svids, source.bundle(), federatedOf(svids));
    }),

    FetchX509Bundles: serverStream(deps, streams, 'FetchX509Bundles', (ctx, selectors) =>
      x509BundlesResponse(source.bundle(), bundlesFederatedFor(ctx, selectors)),
    ),

    FetchJWTBundles: serverStream(deps, streams, 'FetchJWTBundles', (ctx, selectors) =>
      jwtBundlesResponse(source.bundle(), bundlesFederatedFor(ctx, selectors)),
    ),

    FetchJWTSVID: unary(deps, 'FetchJWTSVID', async (ctx, req: JWTSVIDRequest): Promise<JWTSVIDResponse> => {
      ctx.checkHeader();
      const audience = req.audience ?? [];
      if (audience.length === 0) throw invalid('audience must be specified');
      if (audience.some((a) => a === '')) throw invalid('audience must not contain an empty string');
      checkAudience(audience); // the same caps as the server's (INVALID_ARGUMENT naming the limit)
      ctx.note = [...audience].sort().join(',');
      let wanted: string | undefined;
      if (req.spiffe_id) {
        try {
          wanted = parseSpiffeId(req.spiffe_id).toString();
        } catch (e) {
          throw invalid(`spiffe_id is invalid: ${(e as Error).message}`);
        }
      }
      ctx.requireReady();
      let svids = svidsFor(ctx, await ctx.attest());
      if (!svids) throw new CallError(grpc.status.UNAVAILABLE, SVID_AWAITED);
      if (wanted !== undefined) {
        const match = svids.find((s) => s.spiffeId === wanted);
        if (!match) throw ctx.deny(`caller is not entitled to ${wanted}`);
        svids = [match];
      }
      // The entries' audience allowlists, checked here before the server is asked (it checks again):
      // the identities that may not have this audience are left out, and none left is a denial.
      const allowed = svids.filter((s) => disallowedAudiences(s.jwtAudiences, audience).length === 0);
      if (allowed.length === 0) {
        const s = svids[0]!;
        throw ctx.deny(`${s.spiffeId} may not have jwt-svids for ${disallowedAudiences(s.jwtAudiences, audience).map((a) => JSON.stringify(a)).join(', ')}: not in its entry's jwt_audiences`);
      }
      svids = allowed;
      // One JWT-SVID per identity, default first (as SPIRE); the source caches them per audience.
      const minted = await Promise.all(svids.map((s) => source.fetchJWTSVID(s.entryId, audience)));
      ctx.log.debug({ [F.spiffeId]: minted.map((m) => m.spiffeId), audience }, 'jwt-svids served');
      return { svids: svids.map((s, i) => ({ spiffe_id: minted[i].spiffeId, svid: minted[i].token, hint: s.hint })) };
    }),

    ValidateJWTSVID: unary(deps, 'ValidateJWTSVID', async (ctx, req: ValidateJWTSVIDRequest): Promise<ValidateJWTSVIDResponse> => {
      ctx.checkHeader();
      if (!req.audience) throw invalid('audience must be specified');
      if (!req.svid) throw invalid('svid must be specified');
      checkAudience([req.audience]);
      ctx.requireReady();
      // Any attested caller may validate (as SPIRE), but only against its own bundles:
      // the own trust domain's, plus the federated ones its entries' federates_with
      // name. A caller with no entry gets only the own trust domain (SPIRE's
      // getWorkloadBundles); a federated bundle held for another workload is not its.
      const federated = new Map(federatedOf(source.entitlementsFor(await ctx.attest())).map((b) => [b.trustDomain, b]));
      const keysFor = (td: string) => (td === trustDomain ? source.bundle().jwtAuthorities : federated.get(td)?.jwtAuthorities);
      try {
        const v = await validateJWTSVID(req.svid, { audience: req.audience, keysFor, lowSOnly: (td) => td === trustDomain });
        const aud = v.claims.aud;
        return { spiffe_id: v.spiffeId, claims: toStruct({ ...v.claims, aud: Array.isArray(aud) ? aud : [aud] }) };
      } catch (e) {
        // The message names the failed check, never the token.
        if (e instanceof JWTSVIDError) ctx.log.debug({ [F.reason]: e.reason }, 'jwt-svid rejected');
        throw e;
      }
    }),

    FetchWITSVID: unimplemented(deps, 'FetchWITSVID'),
    FetchWITBundles: unimplemented(deps, 'FetchWITBundles'),
  };
}

/** A streaming RPC of a profile Tessera does not serve: Unimplemented (after the header check). */
function unimplemented(deps: CallDeps, rpc: WorkloadRPC): grpc.handleServerStreamingCall<unknown, unknown> {
  return (call) => {
    const ctx = new CallContext(deps, rpc, call);
    let err = new CallError(grpc.status.UNIMPLEMENTED, 'the wit-svid profile is not supported by this agent');
    try {
      ctx.checkHeader();
    } catch (e) {
      err = e as CallError;
    }
    ctx.finish(err.code);
    call.emit('error', Object.assign(new Error(err.message), { code: err.code, details: err.message }));
  };
}
