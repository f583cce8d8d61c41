import { figure, p99 } from './figures';

/**
 * A legitimate caller's calls during an attack: `call` runs back to back (with a
 * short pause) until stop(), each timed; stop() records the adversarial figures
 * `exhaustion_<name>_calls`, `_failed_calls` (must be 0) and `_p99_ms`, and
 * returns them. Starts at once, so the first calls overlap the attack's start.
 */
export function probe(name: string, call: () => Promise<unknown>, pauseMs = 20): { stop(): Promise<{ calls: number; failed: string[]; p99Ms: number }> } {
  const latencies: number[] = [];
  const failed: string[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const t0 = performance.now();
      try {
        await call();
      } catch (e) {
        failed.push(String((e as Error)?.message ?? e).slice(0, 200));
      }
      latencies.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, pauseMs));
    }
  })();
  let result: Promise<{ calls: number; failed: string[]; p99Ms: number }> | undefined;
  return {
    // Idempotent: a test stops it to assert, and again in its finally block.
    stop: () =>
      (result ??= (async () => {
        running = false;
        await loop;
        const r = { calls: latencies.length, failed, p99Ms: p99(latencies) };
        figure(`exhaustion_${name}_calls`, r.calls);
        figure(`exhaustion_${name}_failed_calls`, failed.length);
        figure(`exhaustion_${name}_p99_ms`, Math.round(r.p99Ms), 'max');
        return r;
      })()),
  };
}
