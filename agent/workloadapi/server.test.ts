// The Workload API over a real Unix socket: the real server, the real
// UnixWorkloadAttestor (this jest worker is the uid-0 caller), an in-memory
// identity source over real certificates, and two clients: ours and a raw
// grpc-js one built from the proto. Other uids are child processes under setpriv.
import * as grpc from '@grpc/grpc-js';
import { execFile } from 'child_process';
import { createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { promisify } from 'util';
import { concatDer } from '../../common/bundle/bundle';
import { unavailable } from '../../common/errors';
import { validateJWTSVID } from '../../common/jwtsvid/validate';
import { UnixWorkloadAttestor, type CallerInfo } from '../attestor/workload/unix';
import type { CachedX509SVID } from '../manager/identity-source';
import { WorkloadAPIClient } from '../../sdk/workloadapi/client';
import { NO_ENTRY_REASON, SVID_AWAITED } from './handlers';
import { workloadProtoPath } from '../../common/workloadapi/proto';
import { startWorkloadAPI, type WorkloadAPIServer } from './server';
import { FakeIdentitySource, svid, trustDomain, type TestSVID, type TestTrustDomain } from './test-fixtures';
import { captureLog, header, openStream, rawClient, sleep, unaryCall, until, type RawClient } from './test-helpers';

const asRoot = process.getuid?.() === 0;
const S = grpc.status;

let dir: string;
let sock: string;
let api: WorkloadAPIServer;
let source: FakeIdentitySource;
let raw: RawClient;
let client: WorkloadAPIClient;
let A: TestTrustDomain, B: TestTrustDomain, C: TestTrustDomain;
let web: TestSVID, admin: CachedX509SVID, dupHint: CachedX509SVID, nobody: CachedX509SVID;
let baseSVIDs: CachedX509SVID[];
const calls: string[] = [];
const logs = captureLog();
let attestations = 0;

beforeAll(async () => {
  [A, B, C] = await Promise.all(['example.org', 'other.org', 'third.org'].map(trustDomain));
  web = await svid(A, '/web', { selectors: ['unix:uid:0'], hint: 'internal', federatesWith: ['spiffe://other.org'], createdAt: 1 });
  admin = await svid(A, '/admin', { selectors: ['unix:uid:0', 'unix:user:root'], hint: 'external', createdAt: 2 });
  dupHint = await svid(A, '/dup', { selectors: ['unix:uid:0'], hint: 'internal', createdAt: 3 });
  nobody = await svid(A, '/nobody', { selectors: ['unix:uid:65534'], createdAt: 1 });
  baseSVIDs = [admin, nobody, dupHint, web];
  source = new FakeIdentitySource(A.bundle, A.jwt.signer);
  source.svids = [...baseSVIDs];
  source.federated = [B.bundle, C.bundle];

  dir = mkdtempSync(join(tmpdir(), 'wl-'));
  chmodSync(dir, 0o755); // uid 65534 must reach the socket
  sock = join(dir, 'run', 'api.sock');
  const real = new UnixWorkloadAttestor();
  const attestor = { attest: (c: CallerInfo) => (attestations++, real.attest(c)) };
  api = await startWorkloadAPI({ socketPath: sock, source, attestor, trustDomain: 'example.org', log: logs.log, onCall: (rpc, code) => calls.push(`${rpc} ${code}`) });
  raw = rawClient(sock);
  client = new WorkloadAPIClient(`unix://${sock}`);
});

afterEach(() => {
  source.svids = [...baseSVIDs];
  source.own = A.bundle;
  source.isReady = true;
  source.jwtFailure = undefined;
  source.awaited = [];
});

afterAll(async () => {
  raw?.close();
  client?.close();
  await api?.close();
  rmSync(dir, { recursive: true, force: true });
});

const spki = (k: KeyObject) => (k.type === 'private' ? createPublicKey(k) : k).export({ type: 'spki', format: 'der' });

describe('security header', () => {
  it.each([[[]], [['false']], [['TRUE']], [['true', 'true']]])('answers InvalidArgument and does nothing else for header values %j', async (values) => {
    const before = attestations;
    const stream = openStream(raw, 'FetchX509SVID', header(...values));
    expect(await stream.status).toMatchObject({ code: S.INVALID_ARGUMENT, details: 'security header workload.spiffe.io: true is missing' });
    expect(stream.messages).toEqual([]);
    // Checked before the request itself: an empty audience is not what gets reported.
    const { err } = await unaryCall(raw, 'FetchJWTSVID', { audience: [] }, header(...values));
    expect(err).toMatchObject({ code: S.INVALID_ARGUMENT, details: expect.stringContaining('security header') });
    expect((await unaryCall(raw, 'ValidateJWTSVID', { audience: 'a', svid: 'b' }, header(...values))).err?.code).toBe(S.INVALID_ARGUMENT);
    expect(attestations).toBe(before);
  });
});

describe('FetchX509SVID', () => {
  it('sends the caller its SVIDs at once: chain, key, bundle, hints and federated bundles', async () => {
    const s = openStream(raw, 'FetchX509SVID');
    await until(() => s.messages.length === 1, 5000, 'first message');
    const m = s.messages[0];
    // Default (oldest entry) first; the later SVID reusing hint "internal" is left out; uid 65534's is not ours.
    expect(m.svids.map((x: { spiffe_id: string; hint: string }) => [x.spiffe_id, x.hint])).toEqual([
      ['spiffe://example.org/web', 'internal'],
      ['spiffe://example.org/admin', 'external'],
    ]);
    expect(Object.keys(m.federated_bundles)).toEqual(['spiffe://other.org']);
    expect(m.federated_bundles['spiffe://other.org']).toEqual(B.root.der);
    s.call.cancel();

    // The same message through our client, decoded.
    const ctx = await client.fetchX509SVIDs();
    const first = ctx.svids[0];
    expect(first.chain).toEqual([web.leaf.der, A.inter.der]);
    expect(first.bundle).toEqual([A.root.der]);
    expect(new X509Certificate(first.chain[0]).subjectAltName).toBe('URI:spiffe://example.org/web');
    expect(new X509Certificate(first.chain[0]).verify(new X509Certificate(first.chain[1]).publicKey)).toBe(true);
    const key = createPrivateKey({ key: first.privateKey, format: 'der', type: 'pkcs8' });
    expect(spki(key)).toEqual(spki(new X509Certificate(first.chain[0]).publicKey));
    expect([...ctx.federatedBundles.keys()]).toEqual(['other.org']);
    expect(ctx.federatedBundles.get('other.org')).toEqual([B.root.der]);
  });

  it('sends a full new message when the source changes, and none when nothing visible changed', async () => {
    const s = openStream(raw, 'FetchX509SVID');
    await until(() => s.messages.length === 1);
    source.changed();
    source.changed();
    await sleep(50);
    expect(s.messages).toHaveLength(1);

    const rotated = await svid(A, '/web', { selectors: ['unix:uid:0'], hint: 'internal', federatesWith: ['spiffe://other.org'], createdAt: 1 });
    source.svids = source.svids.map((x) => (x.entryId === web.entryId ? rotated : x));
    source.changed();
    await until(() => s.messages.length === 2, 5000, 'second message');
    const m = s.messages[1];
    expect(m.svids).toHaveLength(2); // complete state, not a delta
    expect(m.svids[0].x509_svid).toEqual(concatDer(rotated.chain));
    expect(m.svids[1].spiffe_id).toBe('spiffe://example.org/admin');
    s.call.cancel();
    expect((await s.status).code).toBe(S.CANCELLED);
    await until(() => api.streams() === 0, 5000, 'stream cleanup');
  });

  it('client watchX509SVIDs: one update per change, then the denial as an error', async () => {
    const updates: string[][] = [];
    const errors: unknown[] = [];
    const stop = client.watchX509SVIDs((ctx) => updates.push(ctx.svids.map((x) => x.spiffeId)), (e) => errors.push(e));
    try {
      await until(() => updates.length === 1);
      source.svids = [web, nobody];
      source.changed();
      await until(() => updates.length === 2);
      expect(updates).toEqual([['spiffe://example.org/web', 'spiffe://example.org/admin'], ['spiffe://example.org/web']]);
      source.svids = [nobody];
      source.changed();
      await until(() => errors.length === 1);
      expect(errors[0]).toMatchObject({ code: 'PERMISSION_DENIED', message: `workload api: ${NO_ENTRY_REASON}` });
    } finally {
      stop();
    }
  });

  it('ends the stream with PermissionDenied once the caller has no identity left', async () => {
    const s = openStream(raw, 'FetchX509SVID');
    await until(() => s.messages.length === 1);
    source.svids = [nobody];
    source.changed();
    expect(await s.status).toMatchObject({ code: S.PERMISSION_DENIED, details: NO_ENTRY_REASON });
  });

  it('denies a caller that matches no entry, with an audit line naming it', async () => {
    source.svids = [nobody];
    const s = openStream(raw, 'FetchX509SVID');
    expect((await s.status).code).toBe(S.PERMISSION_DENIED);
    const denial = logs.entries().find((e) => e.event === 'workload_api_denied' && e.rpc === 'FetchX509SVID');
    expect(denial).toMatchObject({ audit: true, pid: process.pid, uid: 0, reason: NO_ENTRY_REASON });
    await expect(client.fetchX509SVIDs()).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
  });

  it('answers Unavailable while the source is not ready', async () => {
    source.isReady = false;
    expect((await openStream(raw, 'FetchX509SVID').status).code).toBe(S.UNAVAILABLE);
    expect((await unaryCall(raw, 'FetchJWTSVID', { audience: ['db'] })).err?.code).toBe(S.UNAVAILABLE);
  });
});

// An entry matches but its SVID is not held: signed a moment from now, or expired while
// the server was unreachable. The caller is entitled: it waits, it is not denied.
describe('an entitled caller whose SVID is awaited', () => {
  const awaitWeb = () => ({ entryId: web.entryId, spiffeId: web.spiffeId, selectors: web.selectors, federatesWith: web.federatesWith });
  /** how many times a stream started waiting for an SVID (a debug line each time) */
  const waits = () => logs.lines.filter((l) => l.includes('stream waits')).length;

  it('FetchX509SVID holds a new stream open with no message, then sends the SVID once it is held', async () => {
    const denials = () => logs.entries().filter((e) => e.event === 'workload_api_denied').length;
    const deniedBefore = denials();
    source.svids = [nobody];
    source.awaited = [awaitWeb()];
    const s = openStream(raw, 'FetchX509SVID');
    await until(() => api.streams() === 1, 5000, 'the stream registered');
    source.changed(); // a change that still leaves the SVID awaited sends nothing
    const bundles = await client.fetchX509Bundles(); // a round trip through the same server after that change
    expect(bundles.has('other.org')).toBe(true); // the awaited entry's federation still counts
    expect(s.messages).toHaveLength(0);
    source.svids = [web, nobody];
    source.awaited = [];
    source.changed();
    await until(() => s.messages.length === 1);
    expect(s.messages[0].svids.map((x: { spiffe_id: string }) => x.spiffe_id)).toEqual(['spiffe://example.org/web']);
    s.call.cancel();
    expect((await s.status).code).toBe(S.CANCELLED);
    expect(denials()).toBe(deniedBefore);
  });

  it('an open stream outlives its SVID expiring: no denial, the renewed SVID follows on the same stream', async () => {
    const s = openStream(raw, 'FetchX509SVID');
    const b = openStream(raw, 'FetchJWTBundles');
    await until(() => s.messages.length === 1 && b.messages.length === 1);
    source.svids = [nobody];
    source.awaited = [awaitWeb(), { entryId: admin.entryId, spiffeId: admin.spiffeId, selectors: admin.selectors, federatesWith: [] }];
    const before = waits();
    source.changed();
    await until(() => waits() > before, 5000, 'the stream to wait');
    // The JWT-SVID ask gets the retryable code, naming why.
    const jwt = await unaryCall(raw, 'FetchJWTSVID', { audience: ['db'] });
    expect(jwt.err).toMatchObject({ code: S.UNAVAILABLE, details: SVID_AWAITED });
    const renewed = await svid(A, '/web', { selectors: ['unix:uid:0'], hint: 'internal', federatesWith: ['spiffe://other.org'], createdAt: 1 });
    source.svids = [renewed, admin, nobody];
    source.awaited = [];
    source.changed();
    await until(() => s.messages.length === 2);
    expect(s.messages[1].svids.map((x: { spiffe_id: string }) => x.spiffe_id)).toEqual(['spiffe://example.org/web', 'spiffe://example.org/admin']);
    expect(s.messages[1].svids[0].x509_svid).toEqual(concatDer(renewed.chain));
    expect(b.messages).toHaveLength(1); // the bundles never changed, so nothing was resent
    s.call.cancel();
    b.call.cancel();
    expect((await s.status).code).toBe(S.CANCELLED);
    expect((await b.status).code).toBe(S.CANCELLED);
  });

  it('the SDK client sees the renewed SVID as one more update, never an error', async () => {
    const updates: string[][] = [];
    const errors: unknown[] = [];
    const stop = client.watchX509SVIDs((ctx) => updates.push(ctx.svids.map((x) => x.spiffeId)), (e) => errors.push(e));
    try {
      await until(() => updates.length === 1);
      source.svids = [admin, nobody];
      source.awaited = [awaitWeb()];
      source.changed();
      await until(() => updates.length === 2); // admin is still held: the stream carries it alone
      const before = waits();
      source.svids = [nobody];
      source.awaited = [awaitWeb()];
      source.changed();
      await until(() => waits() > before, 5000, 'the stream to wait');
      source.svids = [web, admin, nobody];
      source.awaited = [];
      source.changed();
      await until(() => updates.length === 3);
      expect(updates[1]).toEqual(['spiffe://example.org/admin']);
      expect(updates[2]).toEqual(['spiffe://example.org/web', 'spiffe://example.org/admin']);
      expect(errors).toEqual([]);
    } finally {
      stop();
    }
  });
});

describe('bundles', () => {
  it('FetchX509Bundles: own and federated CA certificates keyed spiffe://<td>, resent on change', async () => {
    const s = openStream(raw, 'FetchX509Bundles');
    await until(() => s.messages.length === 1);
    expect(s.messages[0].bundles).toEqual({ 'spiffe://example.org': A.root.der, 'spiffe://other.org': B.root.der });
    source.own = { ...A.bundle, x509Authorities: [A.root.der, C.root.der] };
    source.changed();
    await until(() => s.messages.length === 2);
    expect(s.messages[1].bundles['spiffe://example.org']).toEqual(concatDer([A.root.der, C.root.der]));
    s.call.cancel();
    expect([...(await client.fetchX509Bundles()).keys()]).toEqual(['example.org', 'other.org']);
  });

  it('FetchJWTBundles: JWKS documents with kids for own and federated trust domains', async () => {
    const bundles = await client.fetchJWTBundles();
    expect([...bundles.keys()]).toEqual(['example.org', 'other.org']);
    expect(bundles.get('example.org')!.jwtAuthorities.map((a) => a.kid)).toEqual([A.jwt.signer.kid]);
    expect(spki(bundles.get('other.org')!.jwtAuthorities[0].publicKey)).toEqual(spki(B.jwt.publicKey));
  });

  it('both deny a caller without identity, as SPIRE does', async () => {
    source.svids = [nobody];
    expect((await openStream(raw, 'FetchX509Bundles').status).code).toBe(S.PERMISSION_DENIED);
    expect((await openStream(raw, 'FetchJWTBundles').status).code).toBe(S.PERMISSION_DENIED);
  });
});

describe('FetchJWTSVID', () => {
  it('requires an audience', async () => {
    expect((await unaryCall(raw, 'FetchJWTSVID', { audience: [] })).err).toMatchObject({ code: S.INVALID_ARGUMENT, details: 'audience must be specified' });
    await expect(client.fetchJWTSVIDs([''])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('returns one JWT-SVID per identity of the caller, default first, each valid for the audience', async () => {
    const svids = await client.fetchJWTSVIDs(['db']);
    expect(svids.map((s) => [s.spiffeId, s.hint])).toEqual([
      ['spiffe://example.org/web', 'internal'],
      ['spiffe://example.org/admin', 'external'],
    ]);
    const keysFor = (td: string) => (td === 'example.org' ? A.bundle.jwtAuthorities : undefined);
    for (const s of svids) expect((await validateJWTSVID(s.token, { audience: 'db', keysFor })).spiffeId).toBe(s.spiffeId);
  });

  it('with spiffe_id returns only that identity, and PermissionDenied for one the caller does not have', async () => {
    const only = await client.fetchJWTSVIDs(['db'], 'spiffe://example.org/admin');
    expect(only.map((s) => s.spiffeId)).toEqual(['spiffe://example.org/admin']);
    await expect(client.fetchJWTSVIDs(['db'], 'spiffe://example.org/nobody')).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    await expect(client.fetchJWTSVIDs(['db'], 'not a spiffe id')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('maps source errors by code, and hides unexpected ones', async () => {
    source.jwtFailure = unavailable('server unreachable and nothing cached');
    expect((await unaryCall(raw, 'FetchJWTSVID', { audience: ['db'] })).err).toMatchObject({ code: S.UNAVAILABLE, details: 'server unreachable and nothing cached' });
    source.jwtFailure = new Error('boom with secrets');
    expect((await unaryCall(raw, 'FetchJWTSVID', { audience: ['db'] })).err).toMatchObject({ code: S.INTERNAL, details: 'internal error' });
  });
});

describe('ValidateJWTSVID', () => {
  it('returns the SPIFFE ID and the claims as a google.protobuf.Struct, aud as a list', async () => {
    const [{ token }] = await client.fetchJWTSVIDs(['db']);
    const { res } = await unaryCall(raw, 'ValidateJWTSVID', { audience: 'db', svid: token });
    expect(res.spiffe_id).toBe('spiffe://example.org/web');
    expect(res.claims.fields.sub).toMatchObject({ kind: 'stringValue', stringValue: 'spiffe://example.org/web' });
    expect(res.claims.fields.aud).toMatchObject({ kind: 'listValue', listValue: { values: [{ kind: 'stringValue', stringValue: 'db' }] } });
    expect(res.claims.fields.exp.kind).toBe('numberValue');
    const v = await client.validateJWTSVID(token, 'db');
    expect(v).toEqual({ spiffeId: 'spiffe://example.org/web', claims: { sub: 'spiffe://example.org/web', aud: ['db'], exp: expect.any(Number), iat: expect.any(Number) } });
  });

  it('rejects a tampered token and a wrong audience with InvalidArgument, never echoing the token', async () => {
    const [{ token }] = await client.fetchJWTSVIDs(['db']);
    const [h, p, sig] = token.split('.');
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
    const tampered = [h, Buffer.from(JSON.stringify({ ...claims, sub: 'spiffe://example.org/admin' })).toString('base64url'), sig].join('.');
    const bad = await unaryCall(raw, 'ValidateJWTSVID', { audience: 'db', svid: tampered });
    expect(bad.err).toMatchObject({ code: S.INVALID_ARGUMENT, details: 'invalid jwt-svid: signature verification failed' });
    const wrongAud = await unaryCall(raw, 'ValidateJWTSVID', { audience: 'other', svid: token });
    expect(wrongAud.err).toMatchObject({ code: S.INVALID_ARGUMENT, details: expect.stringContaining('audience') });
    for (const e of [bad.err!, wrongAud.err!]) expect(e.details).not.toContain(sig);
  });

  it('requires audience and svid', async () => {
    expect((await unaryCall(raw, 'ValidateJWTSVID', { audience: '', svid: 'x.y.z' })).err).toMatchObject({ code: S.INVALID_ARGUMENT, details: 'audience must be specified' });
    expect((await unaryCall(raw, 'ValidateJWTSVID', { audience: 'db', svid: '' })).err).toMatchObject({ code: S.INVALID_ARGUMENT, details: 'svid must be specified' });
  });

  it("validates against the caller's own bundles only: federated ones its entries federate with, none for a caller without identity", async () => {
    const token = (td: typeof A) => td.jwt.signer.mint({ sub: `spiffe://${td.name}/api`, aud: ['db'], ttlSeconds: 60 }).token;
    source.svids = [nobody]; // the caller (root) has no entry; the agent holds B's and C's bundles for others
    expect((await client.validateJWTSVID(token(A), 'db')).spiffeId).toBe('spiffe://example.org/api');
    for (const td of [B, C]) {
      await expect(client.validateJWTSVID(token(td), 'db')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining(`no jwt bundle for trust domain ${td.name}`) });
    }
    source.svids = [web, nobody]; // root's entry federates with other.org (B), not third.org (C)
    expect((await client.validateJWTSVID(token(B), 'db')).spiffeId).toBe('spiffe://other.org/api');
    await expect(client.validateJWTSVID(token(C), 'db')).rejects.toMatchObject({ message: expect.stringContaining('no jwt bundle for trust domain third.org') });
  });

  it('refuses more audiences, or longer ones, than a JWT-SVID may carry', async () => {
    await expect(client.fetchJWTSVIDs(Array.from({ length: 33 }, (_, i) => `aud-${i}`))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('at most 32') });
    await expect(client.validateJWTSVID('x.y.z', 'a'.repeat(1025))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('at most 1024') });
  });
});

describe('other behaviour', () => {
  it('answers Unimplemented for the WIT-SVID profile', async () => {
    for (const rpc of ['FetchWITSVID', 'FetchWITBundles']) expect((await openStream(raw, rpc).status).code).toBe(S.UNIMPLEMENTED);
  });

  it('counts every call by rpc and final status', () => {
    expect(calls).toEqual(
      expect.arrayContaining([
        'FetchX509SVID INVALID_ARGUMENT',
        'FetchX509SVID CANCELLED',
        'FetchX509SVID PERMISSION_DENIED',
        'FetchJWTSVID OK',
        'ValidateJWTSVID INVALID_ARGUMENT',
        'FetchWITSVID UNIMPLEMENTED',
      ]),
    );
  });

  it('never logs a token or a private key', async () => {
    const [{ token }] = await client.fetchJWTSVIDs(['db']);
    await client.validateJWTSVID(token, 'db');
    const text = logs.lines.join('\n');
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{8,}\./);
    for (const s of baseSVIDs) expect(text).not.toContain(s.privateKeyPkcs8.toString('base64').slice(0, 40));
  });
});

// A third-party client in another process under another uid: the kernel's uid decides.
const CHILD = `
const [grpcPath, loaderPath, protoPath, sock] = process.argv.slice(2);
const grpc = require(grpcPath);
const def = require(loaderPath).loadSync(protoPath, { keepCase: true, defaults: true });
const Api = grpc.loadPackageDefinition(def).SpiffeWorkloadAPI;
const md = new grpc.Metadata();
md.set('workload.spiffe.io', 'true');
const call = new Api('unix://' + sock, grpc.credentials.createInsecure()).FetchX509SVID({}, md);
const done = (r) => { console.log(JSON.stringify(r)); process.exit(0); };
call.on('data', (m) => done({ ids: m.svids.map((s) => s.spiffe_id), federated: Object.keys(m.federated_bundles) }));
call.on('error', (e) => done({ code: e.code, details: e.details }));
`;

(asRoot ? describe : describe.skip)('callers under other uids (setpriv)', () => {
  const runAs = async (uid: number): Promise<Record<string, unknown>> => {
    const script = join(dir, 'child.js');
    writeFileSync(script, CHILD, { mode: 0o644 });
    const args = [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', process.execPath, script];
    args.push(require.resolve('@grpc/grpc-js'), require.resolve('@grpc/proto-loader'), workloadProtoPath(), sock);
    const { stdout } = await promisify(execFile)('setpriv', args, { cwd: dir, timeout: 20_000 });
    return JSON.parse(stdout) as Record<string, unknown>;
  };

  it('uid 65534 gets only its own SVID', async () => {
    expect(await runAs(65534)).toEqual({ ids: ['spiffe://example.org/nobody'], federated: [] });
  });

  it('a uid no entry names gets PermissionDenied, audit-logged with its uid', async () => {
    expect(await runAs(4321)).toEqual({ code: S.PERMISSION_DENIED, details: NO_ENTRY_REASON });
    expect(logs.entries()).toContainEqual(expect.objectContaining({ event: 'workload_api_denied', uid: 4321, pid: expect.any(Number), reason: NO_ENTRY_REASON }));
  });
});
