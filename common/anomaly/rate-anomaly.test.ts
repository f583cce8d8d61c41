import { RateAnomalyDetector, type RateAnomaly } from './rate-anomaly';

/** Drives a detector with a fake clock: `rate` events per second, spread over each second, for `seconds`. */
function drive(d: RateAnomalyDetector, clock: { t: number }, key: string, rate: number, seconds: number): Array<RateAnomaly & { at: number }> {
  const out: Array<RateAnomaly & { at: number }> = [];
  const per = Math.max(1, Math.round(rate));
  for (let s = 0; s < seconds; s++) {
    for (let i = 0; i < per; i++) {
      clock.t += 1000 / per;
      const a = d.record(key);
      if (a) out.push({ ...a, at: clock.t });
    }
    if (per === 0) clock.t += 1000;
  }
  return out;
}

const make = () => {
  const clock = { t: 1_800_000_000_000 };
  return { clock, d: new RateAnomalyDetector({ now: () => clock.t }) };
};

describe('identity-use anomalies', () => {
  it('reports a 100x burst over the caller\'s own baseline within two seconds, once per cooldown', () => {
    const { clock, d } = make();
    expect(drive(d, clock, 'uid:1000 FetchJWTSVID', 2, 600)).toEqual([]); // ten minutes of steady traffic
    const start = clock.t;
    const burst = drive(d, clock, 'uid:1000 FetchJWTSVID', 200, 5);
    expect(burst).toHaveLength(1);
    expect(burst[0]).toMatchObject({ key: 'uid:1000 FetchJWTSVID', windowMs: 10_000 });
    expect(burst[0]!.rate).toBeGreaterThan(10 * burst[0]!.baseline);
    expect(burst[0]!.baseline).toBeCloseTo(2, 0);
    // reported as soon as the window held more than factor × baseline (and minEvents)
    expect(burst[0]!.at - start).toBeLessThan(2000);
  });

  it('does not report steady traffic at any rate, nor a service starting up', () => {
    for (const rate of [1, 20, 500]) {
      const { clock, d } = make();
      expect(drive(d, clock, 'k', rate, 300)).toEqual([]);
    }
  });

  it('does not report a rotation storm: a once-per-half-life batch a few times the usual rate', () => {
    const { clock, d } = make();
    // an agent renews in batches: a few requests every 30 s, then all of them at once (3x for 2 s)
    for (let cycle = 0; cycle < 20; cycle++) {
      expect(drive(d, clock, 'agent sign', 1, 28)).toEqual([]);
      expect(drive(d, clock, 'agent sign', 3, 2)).toEqual([]);
    }
  });

  it('keeps at most maxKeys callers, forgetting the least recently seen', () => {
    const clock = { t: 0 };
    const d = new RateAnomalyDetector({ now: () => clock.t, maxKeys: 100 });
    for (let i = 0; i < 10_000; i++) d.record(`uid:${i}`);
    expect(d.size).toBe(100);
  });

  it('a flood of denials from one uid after a quiet minute is reported', () => {
    const { clock, d } = make();
    expect(drive(d, clock, 'uid:666 denied', 1, 61).length).toBe(0);
    expect(drive(d, clock, 'uid:666 denied', 100, 2)).toHaveLength(1);
  });
});
