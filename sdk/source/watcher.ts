import { EventEmitter } from 'node:events';
import { Backoff } from '../../common/backoff';
import { TesseraError, unavailable } from '../../common/errors';

/** How long a source waits before reconnecting: full jitter from 100 ms doubling to 5 s. */
export const SOURCE_BACKOFF = { baseMs: 100, capMs: 5000 } as const;

/** A watch as the Workload API client starts one: updates until an error ends it; the function stops it. */
export type StartWatch<T> = (onUpdate: (v: T) => void, onError: (e: TesseraError) => void) => () => void;

/**
 * Keeps one Workload API stream open for a source: opens it, hands every message
 * to `apply`, and when the stream ends (the agent restarted, was not ready, or
 * the caller has no identity yet) opens it again after a backoff with full
 * jitter, which resets once a message arrives. `ready()` resolves with the first
 * message and rejects at its deadline with the last error; `close()` stops for good.
 *
 * Events: `update` (after each applied message), `error` (each time the stream
 * ends; the source keeps its last state and retries). An `error` listener is not
 * required: without one, errors are only kept for `ready()`.
 */
export class StreamWatcher<T> extends EventEmitter {
  private stop?: () => void;
  private timer?: NodeJS.Timeout;
  private closed = false;
  private received = false;
  private lastError?: TesseraError;
  private readonly backoff: Backoff;
  private readonly waiters = new Set<{ resolve: () => void; reject: (e: Error) => void }>();

  constructor(
    private readonly start: StartWatch<T>,
    private readonly apply: (v: T) => void,
    private readonly what: string,
    random: () => number = Math.random,
  ) {
    super();
    this.backoff = new Backoff(SOURCE_BACKOFF, random);
    this.open();
  }

  /** Resolves once the first message has been applied; rejects after `timeoutMs` (default 10 s) with the last error. */
  ready(timeoutMs = 10_000): Promise<void> {
    if (this.received) return Promise.resolve();
    if (this.closed) return Promise.reject(unavailable(`${this.what}: the source is closed`));
    return new Promise((resolve, reject) => {
      const w = {
        resolve: () => {
          clearTimeout(t);
          resolve();
        },
        reject: (e: Error) => {
          clearTimeout(t);
          reject(e);
        },
      };
      const t = setTimeout(() => {
        this.waiters.delete(w);
        const why = this.lastError ? `: ${this.lastError.message}` : '';
        reject(new TesseraError(this.lastError?.code ?? 'UNAVAILABLE', `${this.what} not ready within ${timeoutMs} ms${why}`, { cause: this.lastError }));
      }, timeoutMs);
      this.waiters.add(w);
    });
  }

  get isReady(): boolean {
    return this.received;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    this.stop?.();
    for (const w of this.waiters) w.reject(unavailable(`${this.what}: the source was closed before it was ready`));
    this.waiters.clear();
  }

  private open(): void {
    if (this.closed) return;
    this.stop = this.start(
      (v) => {
        if (this.closed) return;
        this.apply(v);
        this.backoff.reset();
        this.lastError = undefined;
        if (!this.received) {
          this.received = true;
          for (const w of this.waiters) w.resolve();
          this.waiters.clear();
        }
        this.emit('update');
      },
      (e) => {
        if (this.closed) return;
        this.lastError = e;
        if (this.listenerCount('error') > 0) this.emit('error', e);
        this.timer = setTimeout(() => this.open(), this.backoff.next());
        this.timer.unref();
      },
    );
  }
}
