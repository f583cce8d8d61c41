import { startServerProcess, startAgentProcess, removeDir, type ServerProcess, type AgentProcess } from '../helpers/processes';
import { freePort } from '../helpers/free-port';
import { AdminClient } from '../../cli/admin-client';
import { WorkloadView, jwtKidOf, verifyChain } from '../helpers/workload-view';
import { startWorkloadPeer, type WorkloadPeer } from '../helpers/workload-peer-process';

/**
 * Key rotation with the real server and agent processes: (a) three full CA and
 * JWT rotations while two workloads (uid 0 in this process, uid 65534 in its own)
 * validate each other's SVIDs with what they hold at each moment; (b) a server
 * SIGKILLed right after each rotation step; (c) taint then revoke. Timings are
 * printed: bundle update delay after prepare, SVID replacement spread after taint.
 */
jest.setTimeout(240_000);

const NOBODY = 65534;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs: number, everyMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Audit events of the server's current process log. */
function events(server: ServerProcess, event: string): Array<Record<string, any> & { t: number }> {
  return server
    .logs()
    .split('\n')
    .filter((l) => l.includes(`"event":"${event}"`))
    .map((l) => JSON.parse(l) as Record<string, any>)
    .map((e) => ({ ...e, t: Date.parse(e.time as string) }));
}

interface Authority {
  id: string;
  state: string;
  tainted: boolean;
  key_id: string;
  not_after: number;
  svids: number;
}
const authorities = async (server: ServerProcess, kind: 'x509' | 'jwt'): Promise<Authority[]> =>
  (JSON.parse(await server.cli(['--output', 'json', 'authority', kind, 'show'])) as { authorities: Authority[] }).authorities;

async function entry(server: ServerProcess, td: string, alias: string, path: string, selector: string): Promise<void> {
  await server.cli(['entry', 'create', '--spiffe-id', `spiffe://${td}${path}`, '--parent-id', alias, '--selector', selector]);
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? `min ${s[0]} ms, median ${s[Math.floor(s.length / 2)]} ms, max ${s[s.length - 1]} ms (n=${s.length})` : 'n=0';
};

/** First time (ms) a list of timed sets contained `id`. */
const firstSeen = (list: Array<{ at: number; ids: string[] }>, id: string) => list.find((b) => b.ids.includes(id))?.at;

describe('(a) three full CA and JWT key rotations with a 60-s CA', () => {
  const td = 'rotation.example.org';
  const alias = `spiffe://${td}/node/a`;
  let server: ServerProcess;
  let agent: AgentProcess;
  let w1: WorkloadView;
  let w2: WorkloadPeer;

  afterAll(async () => {
    w1?.close();
    await w2?.stop();
    await agent?.stop();
    await server?.stop();
    removeDir(agent?.dir);
    removeDir(server?.dir);
  });

  it('two workloads validate each other’s X.509- and JWT-SVIDs throughout, without a single failure', async () => {
    server = await startServerProcess({ trustDomain: td, config: { ca: { ttl: 60 }, default_x509_svid_ttl: 10, default_jwt_svid_ttl: 10 } });
    await entry(server, td, alias, '/w1', 'unix:uid:0');
    await entry(server, td, alias, '/w2', `unix:uid:${NOBODY}`);
    agent = await startAgentProcess(server, { alias });
    w1 = new WorkloadView(agent.socket, td);
    await w1.start();
    w2 = await startWorkloadPeer(agent.socket, td, 'w1', NOBODY);
    const started = Date.now();

    const counts = { w1OwnX509: 0, w2ChecksW1X509: 0, w1OwnJWT: 0, w2ChecksW1JWT: 0, w1ChecksW2X509: 0, w1ChecksW2JWT: 0 };
    const failures: string[] = [];
    const pending = new Set<Promise<unknown>>();
    const check = (what: keyof typeof counts, p: Promise<string | undefined> | string | undefined) => {
      const done = Promise.resolve(p).then((err) => {
        counts[what]++;
        if (err) failures.push(`${what} at +${Date.now() - started} ms: ${err}`);
      });
      pending.add(done);
      void done.finally(() => pending.delete(done));
    };
    // w2's own SVIDs, validated by w1 with what w1 holds
    w2.onEvent = (e) => {
      if (e.type === 'x509') check('w1ChecksW2X509', w1.validateX509(e.chain.map((c) => Buffer.from(c, 'base64'))));
      if (e.type === 'jwt') check('w1ChecksW2JWT', w1.validateJWT(e.token, 'w1'));
    };
    // Continuously: w1's current X.509-SVID against the bundle delivered with it, and by w2;
    // a JWT-SVID fetched anew (the agent serves its cached one until half-life) validated by both.
    let running = true;
    const kids = new Set<string>();
    const loop = (async () => {
      while (running) {
        const mine = w1.current.get(`spiffe://${td}/w1`)!;
        check('w1OwnX509', verifyChain(mine.chain, mine.bundle, Date.now()));
        check('w2ChecksW1X509', w2.validate({ kind: 'x509', chain: mine.chain }));
        const jwts = await w1.fetchJWTs(['w2']).catch((e: Error) => (failures.push(`fetch jwt: ${e.message}`), []));
        for (const j of jwts) {
          kids.add(jwtKidOf(j.svid));
          check('w1OwnJWT', w1.validateJWT(j.svid, 'w2'));
          check('w2ChecksW1JWT', w2.validate({ kind: 'jwt', token: j.svid, audience: 'w2' }));
        }
        await sleep(250);
      }
    })();

    // Three full rotations: the third successor is active and its predecessor pruned (~120 s).
    await waitFor('three x509 and jwt prunes', () => events(server, 'x509_authority_pruned').length >= 3 && events(server, 'jwt_authority_pruned').length >= 3, 170_000, 500);
    await sleep(2000); // a little past the last prune
    running = false;
    await loop;
    await Promise.all(pending);

    const akis = new Set(w1.x509.map((s) => s.aki));
    const peerAkis = new Set(w2.events.flatMap((e) => (e.type === 'x509' ? [e.aki] : [])));
    const peerKids = new Set(w2.events.flatMap((e) => (e.type === 'jwt' ? [jwtKidOf(e.token)] : [])));
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    process.stdout.write(
      `rotation e2e (a): ${total} validations, ${failures.length} failed: ${JSON.stringify(counts)}; ` +
        `w1 saw ${akis.size} CAs and ${kids.size} JWT keys, w2 saw ${peerAkis.size} CAs and ${peerKids.size} JWT keys\n`,
    );

    // Bundle update delay after prepare: server's prepare event → the workload's bundle stream has the new key.
    const delays = { w1X509: [] as number[], w2X509: [] as number[], w1JWT: [] as number[], w2JWT: [] as number[] };
    const w1X509 = w1.x509Bundles.map((b) => ({ at: b.at, ids: b.skis }));
    const w1JWT = w1.jwtBundles.map((b) => ({ at: b.at, ids: b.jwks.keys.map((k) => k.kid!) }));
    const w2X509 = w2.events.flatMap((e) => (e.type === 'x509_bundle' ? [{ at: e.at, ids: e.skis }] : []));
    const w2JWT = w2.events.flatMap((e) => (e.type === 'jwt_bundle' ? [{ at: e.at, ids: e.kids }] : []));
    for (const e of events(server, 'x509_authority_prepared').filter((x) => x.t > started)) {
      for (const [list, out] of [[w1X509, delays.w1X509], [w2X509, delays.w2X509]] as const) {
        const at = firstSeen(list, e.kid);
        if (at !== undefined) out.push(at - e.t);
      }
    }
    for (const e of events(server, 'jwt_authority_prepared').filter((x) => x.t > started)) {
      for (const [list, out] of [[w1JWT, delays.w1JWT], [w2JWT, delays.w2JWT]] as const) {
        const at = firstSeen(list, e.kid);
        if (at !== undefined) out.push(at - e.t);
      }
    }
    process.stdout.write(
      `rotation e2e (a): bundle update delay after prepare (server event → workload bundle stream): ` +
        `x509 w1 ${stats(delays.w1X509)}; x509 w2 ${stats(delays.w2X509)}; jwt w1 ${stats(delays.w1JWT)}; jwt w2 ${stats(delays.w2JWT)}\n`,
    );

    expect(failures).toEqual([]);
    expect(w1.streamErrors).toEqual([]);
    expect(akis.size).toBeGreaterThanOrEqual(4); // the first CA and three successors
    expect(peerAkis.size).toBeGreaterThanOrEqual(4);
    expect(kids.size).toBeGreaterThanOrEqual(4);
    expect(peerKids.size).toBeGreaterThanOrEqual(4);
    expect(counts.w2ChecksW1JWT).toBeGreaterThan(100);
    for (const d of Object.values(delays)) {
      expect(d.length).toBeGreaterThanOrEqual(3);
      expect(Math.max(...d)).toBeLessThan(5000);
    }
  });
});

describe('(b) a server SIGKILLed right after each rotation step', () => {
  const td = 'killed.example.org';
  const alias = `spiffe://${td}/node/b`;
  let server: ServerProcess;
  let agent: AgentProcess;
  let w1: WorkloadView;

  afterAll(async () => {
    w1?.close();
    await agent?.stop();
    await server?.stop();
    removeDir(agent?.dir);
    removeDir(server?.dir);
  });

  it('resumes where it was, completes the rotation, and never hands out an SVID signed by an unpublished key', async () => {
    const config = { bind: `127.0.0.1:${await freePort()}`, ca: { ttl: 36 }, default_x509_svid_ttl: 6, default_jwt_svid_ttl: 6 };
    server = await startServerProcess({ trustDomain: td, config });
    const dir = server.dir;
    await entry(server, td, alias, '/w1', 'unix:uid:0');
    const [firstCA] = await authorities(server, 'x509');
    const [firstJWT] = await authorities(server, 'jwt');
    agent = await startAgentProcess(server, { alias });
    w1 = new WorkloadView(agent.socket, td);

    // Every SVID as delivered must chain to a root of the bundle delivered with it; every JWT-SVID's kid must be in the JWKS held.
    const failures: string[] = [];
    let checked = 0;
    w1.onX509 = (s) => {
      checked++;
      const err = verifyChain(s.chain, s.bundle, s.at);
      if (err) failures.push(`x509 ${s.serial}: ${err}`);
    };
    await w1.start();
    let running = true;
    let fetchErrors = 0;
    const kids = new Set<string>();
    const loop = (async () => {
      while (running) {
        const jwts = await w1.fetchJWTs(['b']).catch(() => (fetchErrors++, []));
        for (const j of jwts) {
          checked++;
          kids.add(jwtKidOf(j.svid));
          const err = await w1.validateJWT(j.svid, 'b');
          if (err) failures.push(`jwt ${jwtKidOf(j.svid)}: ${err}`);
        }
        await sleep(200);
      }
    })();

    const steps: Array<[string, string, (e: Record<string, any>) => boolean]> = [
      ['after prepare', 'x509_authority_prepared', (e) => e.reason === 'half-life'],
      ['after activate', 'x509_authority_activated', (e) => e.reason !== 'no active key'],
      ['after prune', 'x509_authority_pruned', (e) => e.authority_id === firstCA!.id],
    ];
    const log: string[] = [];
    let next: Authority | undefined;
    for (const [label, event, match] of steps) {
      const ev = await waitFor(`${event} (${label})`, () => events(server, event).find(match), 40_000);
      expect(await server.stop('SIGKILL')).toBeNull();
      const killedAfter = Date.now() - ev.t;
      const t0 = Date.now();
      server = await startServerProcess({ trustDomain: td, dir, config });
      const slots = await authorities(server, 'x509');
      log.push(`${label}: killed ${killedAfter} ms after the step, back in ${Date.now() - t0} ms with ${slots.map((s) => s.state).join(', ')}`);
      if (label === 'after prepare') {
        next = slots.find((s) => s.id === ev.authority_id);
        expect(next?.state).toBe('prepared');
        expect(slots.find((s) => s.id === firstCA!.id)?.state).toBe('active');
      } else if (label === 'after activate') {
        expect(ev.authority_id).toBe(next!.id);
        expect(slots.find((s) => s.id === next!.id)?.state).toBe('active');
        expect(slots.find((s) => s.id === firstCA!.id)?.state).toBe('retired');
      } else {
        expect(slots.map((s) => s.id)).not.toContain(firstCA!.id);
        expect(slots.find((s) => s.id === next!.id)?.state).toBe('active');
      }
    }
    // The rotation completed for both kinds, and the workload got SVIDs of the new CA and JWT key.
    await waitFor('the first jwt key pruned', async () => !(await authorities(server, 'jwt')).some((a) => a.id === firstJWT!.id), 10_000, 250);
    const newJWT = (await authorities(server, 'jwt')).find((a) => a.state === 'active')!;
    // After three kills the agent may be in its reconnect backoff; on a loaded machine that, and the
    // server's start, can take most of 15 s before the next 6-s SVID is signed.
    await waitFor('an SVID of the new CA', () => w1.x509.some((s) => s.aki === next!.key_id), 30_000);
    await waitFor('a JWT-SVID of the new key', () => kids.has(newJWT.key_id), 30_000);
    running = false;
    await loop;
    process.stdout.write(`rotation e2e (b): ${log.join('; ')}; ${checked} SVIDs checked against the bundle held with them, ${failures.length} failed, ${fetchErrors} JWT fetches failed while the server was down\n`);
    expect(failures).toEqual([]);
    expect(w1.streamErrors).toEqual([]);
  });
});

describe('(c) taint, then revoke', () => {
  const td = 'taint.example.org';
  const alias = `spiffe://${td}/node/c`;
  let server: ServerProcess;
  let agent: AgentProcess;
  let w1: WorkloadView;
  let w2: WorkloadPeer;

  afterAll(async () => {
    w1?.close();
    await w2?.stop();
    await agent?.stop();
    await server?.stop();
    removeDir(agent?.dir);
    removeDir(server?.dir);
  });

  it('re-issues everything a tainted key signed before the revoke; revoke is refused before that, and --force overrides', async () => {
    server = await startServerProcess({ trustDomain: td, config: { default_x509_svid_ttl: 60, default_jwt_svid_ttl: 60 } });
    await entry(server, td, alias, '/w1', 'unix:uid:0');
    await entry(server, td, alias, '/w1b', 'unix:uid:0');
    await entry(server, td, alias, '/w2', `unix:uid:${NOBODY}`);
    agent = await startAgentProcess(server, { alias });
    w1 = new WorkloadView(agent.socket, td);
    await w1.start();
    await waitFor('both w1 SVIDs', () => w1.current.size === 2, 10_000);
    w2 = await startWorkloadPeer(agent.socket, td, 'w1', NOBODY);
    const [x0] = await authorities(server, 'x509');
    const [j0] = await authorities(server, 'jwt');
    const oldJWT = (await w1.fetchJWTs(['w2']))[0]!.svid;
    expect(jwtKidOf(oldJWT)).toBe(j0!.key_id);

    // Prepare: how fast the new keys reach both workloads' bundle streams.
    const cmd = (kind: string, verb: string, ...args: string[]) => server.cli(['--output', 'json', 'authority', kind, verb, ...args]);
    const x1 = (JSON.parse(await cmd('x509', 'prepare')) as { authority: Authority }).authority;
    const j1 = (JSON.parse(await cmd('jwt', 'prepare')) as { authority: Authority }).authority;
    await waitFor('new root and JWT key at both workloads', () =>
      w1.x509Bundles.some((b) => b.skis.includes(x1.key_id)) &&
      w1.jwtBundles.some((b) => b.jwks.keys.some((k) => k.kid === j1.key_id)) &&
      w2.events.some((e) => e.type === 'x509_bundle' && e.skis.includes(x1.key_id)) &&
      w2.events.some((e) => e.type === 'jwt_bundle' && e.kids.includes(j1.key_id)), 5000);
    const w2Roots = w2.events.flatMap((e) => (e.type === 'x509_bundle' ? [{ at: e.at, ids: e.skis }] : []));
    const preparedAt = events(server, 'x509_authority_prepared').find((e) => e.authority_id === x1.id)!.t;
    const prepareDelay = Math.max(firstSeen(w2Roots, x1.key_id)!, firstSeen(w1.x509Bundles.map((b) => ({ at: b.at, ids: b.skis })), x1.key_id)!) - preparedAt;
    await cmd('x509', 'activate', '--authority-id', x1.id);
    await cmd('jwt', 'activate');

    // Taint the old CA and revoke it at once (through the admin API, without a CLI process start in
    // between, so that the agents cannot have re-issued anything yet): refused, saying how many SVIDs depend on it.
    const admin = new AdminClient(server.adminSocket);
    const tainted = (await admin.request<{ authority: Authority }>('POST', '/v1/authorities/x509/taint', { authority_id: x0!.id })).authority;
    expect(tainted).toMatchObject({ state: 'tainted', tainted: true });
    const early = await admin.request('POST', '/v1/authorities/x509/revoke', { authority_id: x0!.id }).catch((e: Error & { code: string }) => e);
    expect(early).toMatchObject({ code: 'FAILED_PRECONDITION', message: expect.stringMatching(/^\d+ unexpired svids? signed by x509 authority .* not been re-issued yet/) });
    const dependents = Number(/^(\d+)/.exec((early as Error).message)![1]);
    expect(dependents).toBeGreaterThanOrEqual(3); // w1, w1b, w2, the agent's own SVID and its node alias SVID
    const tTaint = events(server, 'x509_authority_tainted')[0]!.t; // the server's clock, as the workloads' (one host)

    // Every workload stream receives its replacement, spread with jitter.
    const replaced = await waitFor('every workload SVID re-issued by the new CA', () => {
      const mine = [`spiffe://${td}/w1`, `spiffe://${td}/w1b`].map((id) => w1.x509.find((s) => s.spiffeId === id && s.aki === x1.key_id && s.at >= tTaint)?.at);
      const peer = w2.events.flatMap((e) => (e.type === 'x509' && e.aki === x1.key_id && e.at >= tTaint ? [e.at] : []))[0];
      return mine.every((t) => t !== undefined) && peer !== undefined ? [...(mine as number[]), peer].map((t) => t - tTaint) : undefined;
    }, 20_000);
    for (const s of w1.current.values()) expect(verifyChain(s.chain, s.bundle, Date.now())).toBeUndefined();

    // Once the server counts no dependent SVID, revoke goes through without --force and the CA leaves the bundle.
    await waitFor('no SVID depends on the tainted CA', async () => (await authorities(server, 'x509')).find((a) => a.id === x0!.id)!.svids === 0, 15_000, 250);
    const revoked = JSON.parse(await cmd('x509', 'revoke', '--authority-id', x0!.id)) as { authority: Authority; dependents: number };
    expect(revoked).toMatchObject({ dependents: 0, authority: { state: 'revoked' } });
    await waitFor('the revoked root gone from both workloads', () =>
      !w1.x509Bundles[w1.x509Bundles.length - 1]!.skis.includes(x0!.key_id) &&
      w2.events.filter((e) => e.type === 'x509_bundle').slice(-1).every((e) => e.type === 'x509_bundle' && !e.skis.includes(x0!.key_id)), 5000);
    for (const s of w1.current.values()) expect(verifyChain(s.chain, s.bundle, Date.now())).toBeUndefined();

    // The old JWT key: w1 still holds a token it signed, so revoke is refused; --force revokes anyway.
    await cmd('jwt', 'taint', '--authority-id', j0!.id);
    const refused = await server.cliResult(['authority', 'jwt', 'revoke', '--authority-id', j0!.id]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/\d+ unexpired svids? signed by jwt authority .* not been re-issued yet.*--force/);
    const forced = await server.cliResult(['authority', 'jwt', 'revoke', '--authority-id', j0!.id, '--force']);
    expect(forced.code).toBe(0);
    expect(forced.stdout).toMatch(/JWT signing key revoked/);
    expect(forced.stdout).toMatch(/Warning: \d+ SVIDs? signed by it had not been re-issued/);
    await waitFor('the revoked JWT key gone from both workloads', () =>
      !w1.jwtBundles[w1.jwtBundles.length - 1]!.jwks.keys.some((k) => k.kid === j0!.key_id) &&
      w2.events.filter((e) => e.type === 'jwt_bundle').slice(-1).every((e) => e.type === 'jwt_bundle' && !e.kids.includes(j0!.key_id)), 5000);
    expect(await w1.validateJWT(oldJWT, 'w2')).toMatch(/agent: .*; jose: /); // its key is no longer trusted
    const fresh = (await w1.fetchJWTs(['w2']))[0]!.svid; // the agent dropped the cached token of the tainted key
    expect(jwtKidOf(fresh)).toBe(j1.key_id);
    expect(await w1.validateJWT(fresh, 'w2')).toBeUndefined();
    expect(await w2.validate({ kind: 'jwt', token: fresh, audience: 'w2' })).toBeUndefined();

    process.stdout.write(
      `rotation e2e (c): bundle update delay after a manual prepare (server event → both workloads) ${prepareDelay} ms; ` +
        `SVID replacement after taint (server event → workload stream, spread over min(10 s, SVID lifetime / 10)): ${replaced.map((d) => `${d} ms`).join(', ')} ` +
        `(spread ${Math.max(...replaced) - Math.min(...replaced)} ms); revoke refused with ${dependents} dependent SVIDs\n`,
    );
  });
});
