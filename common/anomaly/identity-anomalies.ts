import { z } from 'zod';
import { audit, type Logger } from '../log';
import { ANOMALY_DEFAULTS, RateAnomalyDetector } from './rate-anomaly';

/**
 * `anomaly` in the agent's and the server's config: the thresholds of identity-use
 * anomaly detection (see rate-anomaly.ts). Defaults: a 10-s window, reported when
 * it holds ≥ 50 requests and > 10× the caller's own baseline (5-min half-life);
 * denials from 20 on; a caller's first 60 s are its warm-up; one report per caller
 * and kind a minute; 10,000 callers tracked.
 */
export const anomalyConfig = z
  .object({
    window_seconds: z.coerce.number().int().min(1).max(3600).default(ANOMALY_DEFAULTS.windowMs / 1000),
    factor: z.coerce.number().min(1).max(1e6).default(ANOMALY_DEFAULTS.factor),
    min_events: z.coerce.number().int().min(1).default(ANOMALY_DEFAULTS.minEvents),
    min_denials: z.coerce.number().int().min(1).default(20),
    baseline_half_life_seconds: z.coerce.number().positive().max(86_400).default(ANOMALY_DEFAULTS.baselineHalfLifeMs / 1000),
    warmup_seconds: z.coerce.number().min(0).max(86_400).default(ANOMALY_DEFAULTS.warmupMs / 1000),
    cooldown_seconds: z.coerce.number().min(0).max(86_400).default(ANOMALY_DEFAULTS.cooldownMs / 1000),
    max_callers: z.coerce.number().int().min(1).max(10_000_000).default(ANOMALY_DEFAULTS.maxKeys),
  })
  .strict()
  .default({ window_seconds: 10, factor: 10, min_events: 50, min_denials: 20, baseline_half_life_seconds: 300, warmup_seconds: 60, cooldown_seconds: 60, max_callers: 10_000 });
export type AnomalyConfig = z.output<typeof anomalyConfig>;

/**
 * Records requests and denials per caller and writes an `identity_anomaly` audit
 * line (caller, kind, rate, baseline) and counts it when one bursts. Requests and
 * denials have their own detectors: a caller's denials have their own baseline.
 */
export class IdentityAnomalies {
  private readonly requests: RateAnomalyDetector;
  private readonly denials: RateAnomalyDetector;

  constructor(
    c: AnomalyConfig,
    private readonly o: { log: Logger; onAnomaly: (kind: 'requests' | 'denials') => void; now: () => number },
  ) {
    const common = {
      windowMs: c.window_seconds * 1000,
      factor: c.factor,
      baselineHalfLifeMs: c.baseline_half_life_seconds * 1000,
      warmupMs: c.warmup_seconds * 1000,
      cooldownMs: c.cooldown_seconds * 1000,
      maxKeys: c.max_callers,
      now: o.now,
    };
    this.requests = new RateAnomalyDetector({ ...common, minEvents: c.min_events });
    this.denials = new RateAnomalyDetector({ ...common, minEvents: c.min_denials });
  }

  /** One request by `caller` (e.g. `uid:1000`, an agent's SPIFFE ID) of `kind` (e.g. `FetchJWTSVID aud=...`); `denied` counts it as a denial too. */
  record(caller: string, kind: string, denied: boolean, fields: Record<string, unknown> = {}): void {
    const a = this.requests.record(`${caller}\n${kind}`);
    if (a) this.report('requests', caller, kind, a, fields);
    if (denied) {
      const d = this.denials.record(caller);
      if (d) this.report('denials', caller, 'denied', d, fields);
    }
  }

  private report(kind: 'requests' | 'denials', caller: string, what: string, a: { count: number; windowMs: number; rate: number; baseline: number }, fields: Record<string, unknown>): void {
    this.o.onAnomaly(kind);
    audit(this.o.log, 'identity_anomaly', {
      ...fields,
      caller,
      anomaly: kind,
      request: what,
      count: a.count,
      window_ms: a.windowMs,
      rate_per_s: Math.round(a.rate * 10) / 10,
      baseline_per_s: Math.round(a.baseline * 100) / 100,
    });
  }
}
