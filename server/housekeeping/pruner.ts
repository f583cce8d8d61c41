import type { Logger } from 'pino';
import { audit } from '../../common/log';
import type { DataStore } from '../datastore/datastore';
import type { SVIDLedger } from '../ca/svid-ledger';

/**
 * Once a minute: deletes entries whose expiry has passed (each a revision and an
 * event, so agents drop them), expired join tokens and expired issued-SVID
 * records. A failed round is logged and tried again at the next.
 */
export function startPruner(d: {
  store: DataStore;
  ledger: Pick<SVIDLedger, 'prune'>;
  now: () => number;
  log: Logger;
  /** entries were pruned: wake the agents' long polls */
  onEntriesPruned: () => void;
  intervalMs?: number;
}): { stop(): void } {
  const timer = setInterval(async () => {
    try {
      const pruned = await d.store.pruneRegistrationEntries(d.now());
      await d.store.pruneJoinTokens(d.now());
      await d.ledger.prune();
      if (pruned > 0) {
        audit(d.log, 'entries_pruned', { count: pruned });
        d.onEntriesPruned();
      }
    } catch (err) {
      d.log.error({ err }, 'prune failed');
    }
  }, d.intervalMs ?? 60_000);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
