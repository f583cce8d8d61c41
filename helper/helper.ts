import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { Backoff } from '../common/backoff';
import { systemClock, type Clock } from '../common/clock';
import { failedPrecondition, TesseraError } from '../common/errors';
import { ensureTrustedDir } from '../common/fs/trusted-dir';
import { startHealthServer } from '../common/health/health-server';
import { JWTSource } from '../sdk/source/jwt-source';
import { X509Source, byHint, bySpiffeId } from '../sdk/source/x509-source';
import { TokenSource, type AccessToken } from '../sdk/source/token-source';
import type { HelperConfig } from './config';
import { notifyChange } from './notify/on-change';
import { Supervisor } from './notify/supervisor';
import { renderFiles, sameFiles, type HelperState } from './output/render';
import { SnapshotDir, type OutputFile } from './output/snapshot-dir';
import { createHelperMetrics } from './telemetry';

export interface RunningHelper {
  /** resolves with the exit code the process should end with */
  done: Promise<number>;
  health?: AddressInfo;
  stop(): Promise<void>;
}

/** JWT-SVIDs are fetched again at half their remaining life (the agent re-mints past half its lifetime). */
const JWT_RETRY = { baseMs: 500, capMs: 30_000 };

/**
 * `tessera helper`: keeps the configured files in cert_dir current from the
 * Workload API (through the SDK's X509Source and JWTSource, which reconnect on
 * their own), writes each complete version atomically (SnapshotDir), never an
 * expired SVID, and leaves the last good files in place when the agent goes
 * away. After the first complete write it starts the supervised command; after
 * every later one it signals it, signals the pid-file process and runs
 * on_change_cmd. With `once`, it ends after the first complete write (0) or
 * after once_timeout naming what is missing (1).
 */
export async function startHelper(c: HelperConfig, o: { once: boolean; log: Logger; clock?: Clock }): Promise<RunningHelper> {
  const clock = o.clock ?? systemClock;
  const log = o.log;
  ensureTrustedDir(c.certDir, { mode: 0o755, what: 'helper cert_dir', keepMode: true, ownOnly: true });
  const dir = new SnapshotDir(c.certDir);
  await dir.cleanUp();
  const metrics = createHelperMetrics();
  const state: HelperState = { jwtTokens: new Map(), accessTokens: new Map() };
  if (c.pkcs12) state.pkcs12Password = readPassword(c.pkcs12);

  const wantsX509 = Boolean(c.x509.certFile || c.x509.keyFile || c.x509.bundleFile || c.x509.combinedFile || c.pkcs12);
  const picker = c.picker.spiffeId ? bySpiffeId(c.picker.spiffeId) : c.picker.hint ? byHint(c.picker.hint) : undefined;
  const address = c.agentAddress ? { address: c.agentAddress } : {};
  const x509 = wantsX509 ? new X509Source({ ...address, picker }) : undefined;
  const jwt = c.jwtSvids.length > 0 || c.jwtBundleFile || c.tokenExchanges.length > 0 ? new JWTSource({ ...address, now: () => clock.now().getTime() }) : undefined;

  let written: Map<string, OutputFile> | undefined;
  let lastMissing: string[] = ['nothing received yet'];
  let completeWrites = 0;
  let stopped = false;
  let finish!: (code: number) => void;
  const done = new Promise<number>((r) => (finish = r));

  const supervisor = c.cmd
    ? new Supervisor({ ...c.cmd, log, onRestart: () => metrics.failures.inc({ kind: 'cmd_restart' }), now: () => clock.now().getTime() })
    : undefined;
  supervisor?.on('exit', (code: number | null) => {
    if (c.cmd?.exitWithCmd && !stopped) void stop().then(() => finish(code ?? 1));
  });

  // One write at a time, in order; each takes the state as it is when it runs.
  let chain = Promise.resolve();
  const schedule = () => {
    chain = chain.then(writeNow, (e) => log.error({ err: e }, 'helper write failed'));
  };
  const writeNow = async () => {
    if (stopped) return;
    if (x509) {
      try {
        state.svid = x509.svid();
        state.x509Bundles = x509.allBundles();
      } catch (e) {
        // no live SVID (none yet, all expired, or the picker matches none): keep the last files
        if (e instanceof TesseraError && e.code === 'NOT_FOUND') log.warn({ event: 'helper_no_matching_svid', reason: e.message }, 'no x509-svid matches svid_hint / spiffe_id');
        state.svid = undefined;
      }
    }
    if (jwt && c.jwtBundleFile) state.jwtBundles = jwt.allBundles().size > 0 ? jwt.allBundles() : undefined;
    const { files, missing } = renderFiles(c, state, written);
    lastMissing = missing;
    if (missing.length > 0) return;
    if (state.svid && state.svid.notAfter <= clock.now().getTime()) return; // never write an expired SVID
    if (sameFiles(files, written)) return;
    try {
      await dir.write(files, clock.now().getTime());
    } catch (e) {
      metrics.failures.inc({ kind: 'write' });
      log.error({ event: 'helper_write_failed', reason: (e as Error).message }, 'could not write the output files; the last good ones stay');
      return;
    }
    written = new Map(files.map((f) => [f.name, f]));
    completeWrites++;
    metrics.writes.inc();
    for (const f of files) metrics.filesWritten.inc({ file: f.name });
    metrics.lastWrite.set(Math.floor(clock.now().getTime() / 1000));
    if (state.svid) metrics.svidExpiry.set(Math.floor(state.svid.notAfter / 1000));
    log.info(
      { event: 'helper_files_written', dir: c.certDir, files: files.map((f) => f.name), spiffe_id: state.svid?.spiffeId, svid_expires: state.svid && new Date(state.svid.notAfter).toISOString(), version: completeWrites },
      'helper wrote the output files',
    );
    if (o.once) {
      void stop().then(() => finish(0));
      return;
    }
    if (completeWrites === 1) supervisor?.start();
    else if (c.renewSignal) supervisor?.signal(c.renewSignal);
    if (completeWrites > 1 || !c.cmd) {
      await notifyChange({ pidFile: c.pidFile, signal: c.renewSignal, command: c.onChangeCmd, log, onFailure: (k) => metrics.failures.inc({ kind: k }) });
    }
  };

  x509?.on('update', schedule);
  x509?.on('error', (e: Error) => log.warn({ event: 'helper_agent_unavailable', reason: e.message }, 'workload api unavailable; the last files stay'));
  jwt?.on('update', schedule);
  jwt?.on('error', (e: Error) => log.warn({ event: 'helper_agent_unavailable', reason: e.message }, 'workload api unavailable; the last files stay'));

  // JWT-SVIDs: one refresh loop per file.
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, f: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      f();
    }, ms);
    timers.add(t);
  };
  for (const j of c.jwtSvids) {
    const backoff = new Backoff(JWT_RETRY);
    const refresh = async () => {
      if (stopped) return;
      try {
        const t = await jwt!.fetchJWTSVID(j.audience, c.picker.spiffeId);
        backoff.reset();
        if (state.jwtTokens.get(j.file) !== t.token) {
          state.jwtTokens.set(j.file, t.token);
          schedule();
        }
        const left = t.expiresAt * 1000 - clock.now().getTime();
        later(Math.max(1000, left / 2), () => void refresh());
      } catch (e) {
        metrics.failures.inc({ kind: 'jwt_fetch' });
        const delay = backoff.next();
        log.warn({ event: 'helper_jwt_fetch_failed', audience: j.audience, reason: (e as Error).message, retry_in_ms: Math.round(delay) }, 'could not fetch a jwt-svid');
        later(delay, () => void refresh());
      }
    };
    void refresh();
  }

  // Access tokens: one TokenSource per exchange, refreshed ahead of expiry on its own.
  const exchanges = c.tokenExchanges.map((t) => {
    const ts = new TokenSource({ jwt: jwt!, tokenEndpoint: t.tokenEndpoint, grant: t.grant, audience: t.audience, params: t.params, spiffeId: c.picker.spiffeId, now: () => clock.now().getTime() });
    ts.on('update', (a: AccessToken) => {
      state.accessTokens.set(t.file, a.accessToken);
      log.info({ event: 'helper_token_exchanged', file: t.file, token_endpoint: new URL(t.tokenEndpoint).origin, expires_at: new Date(a.expiresAt).toISOString() }, 'access token refreshed');
      schedule();
    });
    ts.on('error', (e: Error, retryMs: number) => {
      metrics.failures.inc({ kind: 'token_exchange' });
      log.warn({ event: 'helper_token_exchange_failed', file: t.file, token_endpoint: new URL(t.tokenEndpoint).origin, reason: e.message, retry_in_ms: Math.round(retryMs) }, 'token exchange failed; the current token stays until it expires');
    });
    return ts.start();
  });

  // The sources' reconnect timers do not hold the process (a library must not keep its
  // host alive); the helper is the host and runs until it is stopped.
  const keepAlive = setInterval(() => undefined, 1 << 30);

  let onceTimer: NodeJS.Timeout | undefined;
  if (o.once) {
    onceTimer = setTimeout(() => {
      log.error({ event: 'helper_once_timeout', missing: lastMissing, timeout_ms: c.onceTimeoutMs }, `not everything arrived in time: ${lastMissing.join(', ')}`);
      process.stderr.write(`tessera helper --once: after ${c.onceTimeoutMs / 1000} s still missing: ${lastMissing.join(', ')}\n`);
      void stop().then(() => finish(1));
    }, c.onceTimeoutMs);
  }

  const health =
    c.healthBind && !o.once
      ? await startHealthServer({
          ...c.healthBind,
          registry: metrics.registry,
          log,
          ready: () => (completeWrites > 0 ? { ready: true, versions: completeWrites } : { ready: false, missing: lastMissing }),
        })
      : undefined;

  async function stop(): Promise<void> {
    if (stopped) return;
    stopped = true;
    clearInterval(keepAlive);
    clearTimeout(onceTimer);
    for (const t of timers) clearTimeout(t);
    for (const e of exchanges) e.close();
    x509?.close();
    jwt?.close();
    await supervisor?.stop();
    await health?.close();
  }

  log.info({ event: 'helper_ready', cert_dir: c.certDir, once: o.once, health: health && `${health.address.address}:${health.address.port}` }, 'helper started');
  return { done, health: health?.address, stop: () => stop().then(() => finish(0)) };
}

/** The PKCS#12 password, from a file (first line) or an environment variable; never from a flag. */
function readPassword(p: NonNullable<HelperConfig['pkcs12']>): string {
  let pw: string | undefined;
  if (p.passwordFile) {
    try {
      pw = readFileSync(p.passwordFile, 'utf8').split(/\r?\n/)[0];
    } catch (e) {
      throw failedPrecondition(`cannot read pkcs12.password_file ${p.passwordFile}: ${(e as Error).message}`);
    }
  } else pw = process.env[p.passwordEnv!];
  if (!pw) throw failedPrecondition(`the pkcs12 password (${p.passwordFile ? `file ${p.passwordFile}` : `env ${p.passwordEnv}`}) is empty`);
  return pw;
}
