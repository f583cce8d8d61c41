import { TLS_OPTIONS } from '../../common/tls';
import https from 'node:https';
import type { PeerCertificate } from 'node:tls';
import { TesseraError, unavailable } from '../../common/errors';
import { derToPem } from '../../common/pem';
import { validateX509SVIDChain } from '../../common/x509svid/validate';
import type { FederationProfile } from '../datastore/datastore';

/** How to reach and authenticate one bundle endpoint. */
export interface BundleEndpointTarget {
  url: string;
  profile: FederationProfile;
  /** the foreign trust domain (bare name) */
  trustDomain: string;
  /** https_spiffe: the ID the endpoint's X.509-SVID must carry */
  endpointSpiffeId: string | null;
  /** https_spiffe: X.509 roots of the endpoint's trust domain (the latest stored bundle) */
  spiffeRoots: Buffer[];
}

export interface BundleClientOptions {
  /** https_web roots (PEM): Node's default CAs plus any configured extra ones */
  webRoots: string[];
  /** longest silence on the connection (ms); default 10 s */
  timeoutMs?: number;
  /**
   * longest a whole fetch may take, redirects included (ms); default 30 s. The idle
   * timeout alone lets an endpoint that trickles a byte every few seconds hold a
   * fetch (and the relationship's schedule) forever.
   */
  deadlineMs?: number;
  maxBytes?: number;
  /** aborts the fetch (the relationship changed or was deleted) */
  signal?: AbortSignal;
}

export const DEFAULT_FETCH_DEADLINE_MS = 30_000;

/** Temporary redirects only (SPIFFE Federation 4.3); they are followed but never remembered. */
const TEMPORARY_REDIRECTS = new Set([302, 303, 307]);
const MAX_REDIRECTS = 3;
const MAX_CHAIN = 16;

/**
 * GETs the bundle document of `t`, authenticating the endpoint by its profile:
 * `https_web` by Web PKI (chain to `webRoots`, host name per RFC 6125);
 * `https_spiffe` by an X.509-SVID that chains to `spiffeRoots` and carries exactly
 * `endpointSpiffeId` (the host name is not checked: the SPIFFE ID is the identity).
 * Up to 3 temporary redirects (302/303/307) are followed, each authenticated the
 * same way; a permanent one is refused so the operator updates the URL instead.
 *
 * @returns the body (UTF-8); decoding it is the caller's job
 * @throws TesseraError UNAVAILABLE naming what failed (connection, TLS, status, size)
 */
export async function fetchBundleDocument(t: BundleEndpointTarget, o: BundleClientOptions): Promise<string> {
  const deadlineMs = o.deadlineMs ?? DEFAULT_FETCH_DEADLINE_MS;
  const deadline = AbortSignal.timeout(deadlineMs);
  const signal = o.signal ? AbortSignal.any([o.signal, deadline]) : deadline;
  const reason = () =>
    deadline.aborted ? `the fetch did not complete within ${deadlineMs} ms (federation.fetch_timeout)` : 'the fetch was aborted: the relationship changed or a new refresh replaced it';
  let url = new URL(t.url);
  for (let hop = 0; ; hop++) {
    if (signal.aborted) throw unavailable(`fetching ${url.href}: ${reason()}`);
    const r = await get(url, t, o, signal, reason);
    if (r.kind === 'body') return r.text;
    if (hop >= MAX_REDIRECTS) throw unavailable(`bundle endpoint ${t.url} redirected more than ${MAX_REDIRECTS} times`);
    const next = new URL(r.location, url);
    if (next.protocol !== 'https:' || next.username || next.password) {
      throw unavailable(`bundle endpoint ${url.href} redirected to ${next.protocol}//${next.host}, which is not an https url without userinfo`);
    }
    url = next;
  }
}

type GetResult = { kind: 'body'; text: string } | { kind: 'redirect'; location: string };

function get(url: URL, t: BundleEndpointTarget, o: BundleClientOptions, signal: AbortSignal, reason: () => string): Promise<GetResult> {
  const maxBytes = o.maxBytes ?? 4 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    const fail = (msg: string, cause?: unknown) => reject(cause instanceof TesseraError ? cause : unavailable(`fetching ${url.href}: ${msg}`, cause));
    const onAbort = () => req.destroy(new Error(reason()));
    const req = https.request(url, {
      method: 'GET',
      headers: { accept: 'application/json' },
      // No pooled connection and no TLS session reuse: a resumed session skips
      // checkServerIdentity (the SVID check below), and new roots must apply at once.
      agent: false,
      timeout: o.timeoutMs ?? 10_000,
      ...TLS_OPTIONS,
      ...tlsOptions(t, o),
    });
    signal.addEventListener('abort', onAbort, { once: true });
    req.once('close', () => signal.removeEventListener('abort', onAbort));
    req.on('timeout', () => req.destroy(new Error(`no answer within ${o.timeoutMs ?? 10_000} ms`)));
    req.on('error', (e) => fail(e.message, e));
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      if (TEMPORARY_REDIRECTS.has(status) && res.headers.location) {
        res.resume();
        return resolve({ kind: 'redirect', location: res.headers.location });
      }
      if (status === 301 || status === 308) {
        res.resume();
        return fail(`permanent redirect (${status}) to ${res.headers.location ?? '?'}; update the relationship's bundle_endpoint_url`);
      }
      if (status !== 200) {
        res.resume();
        return fail(`answered HTTP ${status}`);
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxBytes) return req.destroy(new Error(`bundle is larger than ${maxBytes} bytes`));
        chunks.push(c);
      });
      res.on('end', () => resolve({ kind: 'body', text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (e) => fail(e.message, e));
    });
    req.end();
  });
}

function tlsOptions(t: BundleEndpointTarget, o: BundleClientOptions): https.RequestOptions {
  if (t.profile === 'https_web') return { ca: o.webRoots, rejectUnauthorized: true };
  if (t.spiffeRoots.length === 0) {
    throw unavailable(`no x509 authorities are stored for ${t.trustDomain} to authenticate its https_spiffe endpoint; set a bootstrap bundle`);
  }
  return {
    // OpenSSL checks the chain against the foreign roots first; the SVID checks follow.
    ca: t.spiffeRoots.map((d) => derToPem(d)),
    rejectUnauthorized: true,
    checkServerIdentity: (_host, cert) => spiffeIdentityError(cert, t),
  };
}

/** undefined if `cert` is an X.509-SVID of the foreign trust domain with exactly the expected ID. */
function spiffeIdentityError(cert: PeerCertificate, t: BundleEndpointTarget): Error | undefined {
  const chain: Buffer[] = [];
  type Linked = PeerCertificate & { issuerCertificate?: Linked };
  for (let c: Linked | undefined = cert; c && chain.length < MAX_CHAIN; ) {
    chain.push(c.raw);
    const up: Linked | undefined = c.issuerCertificate;
    if (!up || up === c || up.fingerprint256 === c.fingerprint256) break; // self-issued root: end of chain
    c = up;
  }
  try {
    const { spiffeId } = validateX509SVIDChain(chain, (td) => (td === t.trustDomain ? t.spiffeRoots : undefined));
    if (spiffeId !== t.endpointSpiffeId) return new Error(`bundle endpoint presented ${spiffeId}, expected ${t.endpointSpiffeId}`);
    return undefined;
  } catch (e) {
    return new Error(`bundle endpoint certificate is not an x509-svid of ${t.trustDomain}: ${(e as Error).message}`);
  }
}
