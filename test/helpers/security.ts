import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { TESSERA_BIN } from './processes';
import { scanLog } from './figures';
import { derToPem } from '../../common/pem';

/**
 * Helpers of the security end-to-end tests (test/e2e/security): start a real
 * process expecting it to refuse, read metrics, wait for events, run as another uid.
 */

/** A uid no test entry names: "another local user". */
export const ATTACKER_UID = 4242;

/** Polls `fn` until it returns something truthy (or throws after `timeoutMs`): waits for events, not for time. */
export async function waitFor<T>(what: string, fn: () => T | undefined | false | null | Promise<T | undefined | false | null>, timeoutMs = 20_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The outcome of a start that should fail: the exit code and everything it printed, or `ready` if it came up. */
export interface StartOutcome {
  ready: boolean;
  code: number | null;
  output: string;
  proc: ChildProcess;
}

/**
 * Runs `tessera ARGS` and resolves once it exits, or once it logs `readyEvent`
 * (then it is killed and `ready` is true: the start that should have been refused was not).
 * `wrap` prefixes the command (`['prlimit', '--nofile=256']`, `['setpriv', ...]`).
 */
export function startExpectingRefusal(args: string[], opts: { env?: NodeJS.ProcessEnv; readyEvent: string; wrap?: string[]; timeoutMs?: number }): Promise<StartOutcome> {
  const [cmd, ...pre] = [...(opts.wrap ?? []), process.execPath];
  const proc = spawn(cmd!, [...pre, TESSERA_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  let output = '';
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      resolve({ ready: false, code: null, output: output + '\n[timed out]', proc });
    }, opts.timeoutMs ?? 30_000);
    const onData = (c: Buffer) => {
      output += c.toString();
      if (output.includes(`"${opts.readyEvent}"`)) {
        clearTimeout(timer);
        proc.kill('SIGKILL');
        resolve({ ready: true, code: null, output, proc });
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ ready: false, code, output, proc });
    });
    proc.once('close', () => scanLog(`refused-${args.slice(0, 2).join('-')}`, output));
  });
}

/** A directory created by `uid` first (as another local user could under /tmp), with `mode`. */
export function dirOwnedBy(dir: string, uid: number, mode = 0o777): string {
  mkdirSync(dir, { recursive: true });
  chownSync(dir, uid, uid);
  chmodSync(dir, mode);
  return dir;
}

/** GET over plain HTTP; resolves with status and body (status 0 when unreachable). */
export function httpGet(hostPort: string, p: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve) => {
    http
      .get(`http://${hostPort}${p}`, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      })
      .on('error', () => resolve({ status: 0, text: '' }));
  });
}

/** The value of one Prometheus sample (`name{labels}`) from `/metrics`, 0 when absent. */
export async function metric(health: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const { text } = await httpGet(health, '/metrics');
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([^{\s]+)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = (m[2] ?? '').split(',');
    if (want.every((w) => have.includes(w))) return Number(m[3]);
  }
  return 0;
}

/** Lines of a JSON-lines log that parse, optionally only those with `event`. */
export function logLines(text: string, event?: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const l of text.split('\n')) {
    if (!l.startsWith('{')) continue;
    try {
      const o = JSON.parse(l) as Record<string, unknown>;
      if (event === undefined || o.event === event) out.push(o);
    } catch {
      // a partial last line
    }
  }
  return out;
}

/** An HTTPS request with a client certificate (the agent's SVID), for calling the agent API as that agent. */
export function agentApiRequest(
  address: string,
  opts: { method: string; path: string; body?: unknown; cert: string; key: string; ca: string },
): Promise<{ status: number; json: any }> {
  const i = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const payload = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
    const req = https.request(
      {
        host: address.slice(0, i),
        port: Number(address.slice(i + 1)),
        method: opts.method,
        path: opts.path,
        cert: opts.cert,
        key: opts.key,
        ca: opts.ca,
        checkServerIdentity: () => undefined, // the server's SVID has no DNS name; its chain is still verified
        headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
      },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** The agent's own SVID and key as PEM, read from its data directory (as root, like a test harness). */
export function agentIdentityPem(dataDir: string): { cert: string; key: string; agentId: string } {
  const doc = JSON.parse(readFileSync(path.join(dataDir, 'agent-svid.json'), 'utf8')) as { agent_id: string; chain: string[]; key: string };
  return {
    agentId: doc.agent_id,
    cert: doc.chain.map((c) => derToPem(Buffer.from(c, 'base64'))).join(''),
    key: derToPem(Buffer.from(doc.key, 'base64'), 'PRIVATE KEY'),
  };
}

/** Unix seconds of a certificate's notBefore. */
export const notBeforeOf = (der: Buffer) => Math.floor(Date.parse(new X509Certificate(der).validFrom) / 1000);
