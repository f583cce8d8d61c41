import { ChangeFeed } from './change-feed';

describe('ChangeFeed', () => {
  it('a notify between reading the version and waiting ends the wait at once (no lost wake-up)', async () => {
    const feed = new ChangeFeed();
    const seen = feed.version;
    feed.notify(); // lands while the waiter was still checking the store
    const t0 = performance.now();
    await feed.wait(10_000, undefined, seen);
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it('without a change since the version read, waits for the next notify', async () => {
    const feed = new ChangeFeed();
    let done = false;
    const w = feed.wait(10_000, undefined, feed.version).then(() => (done = true));
    await new Promise((r) => setImmediate(r));
    expect(done).toBe(false);
    feed.notify();
    await w;
    expect(done).toBe(true);
    expect(feed.waiting).toBe(0);
  });

  it('ends at the timeout or on abort', async () => {
    const feed = new ChangeFeed();
    await feed.wait(5);
    const ac = new AbortController();
    const w = feed.wait(10_000, ac.signal);
    ac.abort();
    await w;
    expect(feed.waiting).toBe(0);
  });
});
