import pg from 'pg';
import type { StoreChange } from '../datastore';

/** NOTIFY channels the PostgreSQL store sends on; payloads are revisions or sequences, never data. */
export const CHANNELS: Record<string, StoreChange> = {
  tessera_entries: 'entries',
  tessera_bundle: 'bundle',
  tessera_nodes: 'nodes',
};

/**
 * One dedicated connection that LISTENs on the store's channels and calls the
 * subscribers (a pooled connection would go back to the pool and lose the
 * subscription). NOTIFY is delivered when the sending transaction commits, to
 * every listening session, this server's own included. When the connection
 * drops it reconnects with backoff (0.25 s doubling to 5 s) and then reports
 * 'all': what changed while it was gone is unknown, so every waiter re-reads.
 */
export class ChangeListener {
  private client?: pg.Client;
  private readonly subscribers = new Set<(what: StoreChange) => void>();
  private stopped = false;
  private backoffMs = 250;
  private retry?: NodeJS.Timeout;

  constructor(
    private readonly config: pg.ClientConfig,
    private readonly log?: { warn?(obj: Record<string, unknown>, msg: string): void; info(obj: Record<string, unknown>, msg: string): void },
    /** appended to every channel name: the store's schema, so stores in other schemas stay apart */
    private readonly suffix = '',
  ) {}

  subscribe(fn: (what: StoreChange) => void): () => void {
    this.subscribers.add(fn);
    if (!this.client && !this.retry) void this.connect(false);
    return () => this.subscribers.delete(fn);
  }

  async close(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    const c = this.client;
    this.client = undefined;
    await c?.end().catch(() => undefined);
  }

  private emit(what: StoreChange): void {
    for (const fn of this.subscribers) {
      try {
        fn(what);
      } catch {
        // a subscriber's failure is its own; the others still hear of the change
      }
    }
  }

  private async connect(reconnecting: boolean): Promise<void> {
    this.retry = undefined;
    if (this.stopped) return;
    const c = new pg.Client(this.config);
    let failed = false;
    const lost = (why: string) => {
      if (failed) return;
      failed = true;
      if (this.client === c) this.client = undefined;
      c.end().catch(() => undefined);
      if (this.stopped) return;
      this.log?.warn?.({ event: 'datastore_listen_lost', reason: why }, 'lost the datastore change subscription; reconnecting');
      this.retry = setTimeout(() => void this.connect(true), this.backoffMs);
      this.retry.unref();
      this.backoffMs = Math.min(this.backoffMs * 2, 5000);
    };
    c.on('error', (err) => lost((err as { code?: string }).code ?? err.message));
    c.on('end', () => lost('connection ended'));
    c.on('notification', (n) => {
      const what = n.channel.endsWith(this.suffix) ? CHANNELS[n.channel.slice(0, n.channel.length - this.suffix.length)] : undefined;
      if (what) this.emit(what);
    });
    try {
      await c.connect();
      // channel names are constants plus a checked schema identifier: safe to quote as identifiers
      for (const ch of Object.keys(CHANNELS)) await c.query(`LISTEN "${ch}${this.suffix}"`);
    } catch (err) {
      lost((err as { code?: string }).code ?? (err as Error).message);
      return;
    }
    if (this.stopped) {
      await c.end().catch(() => undefined);
      return;
    }
    this.client = c;
    this.backoffMs = 250;
    if (reconnecting) {
      this.log?.info({ event: 'datastore_listen_restored' }, 'datastore change subscription restored');
      this.emit('all');
    }
  }
}
