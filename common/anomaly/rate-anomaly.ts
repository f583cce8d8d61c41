/**
 * Identity-use anomalies: a caller (a uid at the agent, an agent at the server)
 * whose request rate for one kind of request bursts far above its own recent
 * baseline. Written by hand: what it needs is a few counters per key, and no
 * library on npm does per-key baselines with bounded memory without pulling in a
 * time-series stack.
 *
 * Per key: the last `windowMs` of counts in one-second buckets, and a baseline
 * rate (events/s), an exponentially weighted mean (bias-corrected, so a young
 * key's mean is its plain mean) of the per-second counts that have left the
 * window, with a half-life of `baselineHalfLifeMs`: a burst in the window does
 * not raise the baseline it is compared with. A record is an
 * anomaly when the window holds at least `minEvents` and more than `factor`
 * times what the baseline predicts for the window. A key is watched but not
 * reported during its first `warmupMs` (a service starting up is not a burst),
 * and reported at most once per `cooldownMs`. At most `maxKeys` keys are kept;
 * the least recently seen one is forgotten first. Nothing here blocks a request.
 */
export interface RateAnomalyOptions {
  windowMs?: number;
  baselineHalfLifeMs?: number;
  factor?: number;
  minEvents?: number;
  warmupMs?: number;
  cooldownMs?: number;
  maxKeys?: number;
  now?: () => number;
}

export interface RateAnomaly {
  key: string;
  /** events in the window */
  count: number;
  windowMs: number;
  /** events per second in the window, and the baseline's */
  rate: number;
  baseline: number;
}

interface KeyState {
  firstSeen: number;
  /** the second (unix s) bucket 0 stands for */
  second: number;
  buckets: number[];
  /** EWMA of per-second counts, before bias correction */
  baseline: number;
  /** seconds fed into it (for the correction: a young key's mean is not pulled towards 0) */
  fed: number;
  lastReported: number;
}

export const ANOMALY_DEFAULTS = { windowMs: 10_000, baselineHalfLifeMs: 300_000, factor: 10, minEvents: 50, warmupMs: 60_000, cooldownMs: 60_000, maxKeys: 10_000 };

export class RateAnomalyDetector {
  private readonly o: Required<Omit<RateAnomalyOptions, 'now'>>;
  private readonly now: () => number;
  private readonly keys = new Map<string, KeyState>();
  private readonly windowS: number;
  private readonly decay: number;

  constructor(opts: RateAnomalyOptions = {}) {
    const { now, ...rest } = opts;
    this.o = { ...ANOMALY_DEFAULTS, ...Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)) };
    this.now = now ?? Date.now;
    this.windowS = Math.max(1, Math.round(this.o.windowMs / 1000));
    this.decay = Math.pow(0.5, 1000 / this.o.baselineHalfLifeMs);
  }

  /** Counts `n` events for `key`; returns the anomaly when this record makes one. */
  record(key: string, n = 1): RateAnomaly | undefined {
    const t = this.now();
    const sec = Math.floor(t / 1000);
    let s = this.keys.get(key);
    if (s) this.keys.delete(key); // re-inserted below: the Map's order is least recently seen first
    else {
      s = { firstSeen: t, second: sec, buckets: new Array<number>(this.windowS).fill(0), baseline: 0, fed: 0, lastReported: -Infinity };
      if (this.keys.size >= this.o.maxKeys) this.keys.delete(this.keys.keys().next().value as string);
    }
    this.keys.set(key, s);
    this.advance(s, sec);
    s.buckets[sec % this.windowS]! += n;
    const count = s.buckets.reduce((a, b) => a + b, 0);
    const baseline = s.fed === 0 ? 0 : s.baseline / (1 - Math.pow(this.decay, s.fed));
    const expected = baseline * this.windowS;
    if (count < this.o.minEvents || count <= this.o.factor * expected) return undefined;
    if (t - s.firstSeen < this.o.warmupMs || t - s.lastReported < this.o.cooldownMs) return undefined;
    s.lastReported = t;
    return { key, count, windowMs: this.windowS * 1000, rate: count / this.windowS, baseline };
  }

  /** Keys held (for tests and metrics). */
  get size(): number {
    return this.keys.size;
  }

  /** Closes the seconds between the key's last one and `sec`: each leaves the window and feeds the baseline. */
  private advance(s: KeyState, sec: number): void {
    const gap = sec - s.second;
    if (gap <= 0) return;
    const closing = Math.min(gap, this.windowS);
    for (let i = 1; i <= closing; i++) {
      const idx = (s.second + i) % this.windowS;
      // the bucket about to be reused held the count of second (s.second + i - windowS)
      s.baseline = s.baseline * this.decay + s.buckets[idx]! * (1 - this.decay);
      s.buckets[idx] = 0;
      s.fed++;
    }
    // seconds beyond a whole window were empty: they only decay the baseline
    if (gap > this.windowS) {
      s.baseline *= Math.pow(this.decay, gap - this.windowS);
      s.fed += gap - this.windowS;
    }
    s.second = sec;
  }
}
