import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { ROOT } from './processes';

/** What the peer process reports (see workload-peer.ts). */
export type PeerEvent =
  | { type: 'ready' }
  | { type: 'x509'; at: number; spiffe_id: string; aki: string; chain: string[] }
  | { type: 'jwt'; at: number; token: string }
  | { type: 'x509_bundle'; at: number; skis: string[] }
  | { type: 'jwt_bundle'; at: number; kids: string[] }
  | { type: 'fetch_error'; message: string }
  | { type: 'result'; id: number; error: string | null };

export interface WorkloadPeer {
  proc: ChildProcess;
  events: PeerEvent[];
  /** called for every event as it arrives */
  onEvent?: (e: PeerEvent) => void;
  /** asks the peer to validate with what it holds now; resolves with undefined or the reason it failed */
  validate(req: { kind: 'x509'; chain: Buffer[] } | { kind: 'jwt'; token: string; audience: string }): Promise<string | undefined>;
  stopJWTFetches(): void;
  stop(): Promise<void>;
  stderr(): string;
}

/**
 * Starts the built `workload-peer.js` as `uid` (setpriv) against an agent socket,
 * and resolves once its Workload API streams are up.
 */
export async function startWorkloadPeer(socket: string, trustDomain: string, audience: string, uid: number): Promise<WorkloadPeer> {
  const script = path.join(ROOT, 'dist', 'test', 'helpers', 'workload-peer.js');
  const proc = spawn('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', process.execPath, script, socket, trustDomain, audience], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr!.on('data', (c) => (stderr += c));
  const waiting = new Map<number, (error: string | undefined) => void>();
  let nextId = 1;
  const peer: WorkloadPeer = {
    proc,
    events: [],
    validate(req) {
      const id = nextId++;
      const body = req.kind === 'x509' ? { id, kind: 'x509', chain: req.chain.map((c) => c.toString('base64')) } : { id, ...req };
      return new Promise((resolve) => {
        waiting.set(id, resolve);
        proc.stdin!.write(JSON.stringify(body) + '\n');
      });
    },
    stopJWTFetches: () => void proc.stdin!.write(JSON.stringify({ kind: 'stop_jwt' }) + '\n'),
    stop: () =>
      new Promise((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
        proc.once('exit', () => resolve());
        proc.stdin!.end();
        setTimeout(() => proc.kill('SIGKILL'), 2000).unref();
      }),
    stderr: () => stderr,
  };
  const ready = new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`workload peer not ready in 20 s: ${stderr}`)), 20_000);
    proc.once('exit', (code) => reject(new Error(`workload peer exited with ${code}: ${stderr}`)));
    readline.createInterface({ input: proc.stdout! }).on('line', (line) => {
      const e = JSON.parse(line) as PeerEvent;
      peer.events.push(e);
      if (e.type === 'ready') {
        clearTimeout(t);
        resolve();
      }
      if (e.type === 'result') {
        waiting.get(e.id)?.(e.error ?? undefined);
        waiting.delete(e.id);
      }
      peer.onEvent?.(e);
    });
  });
  await ready;
  return peer;
}
