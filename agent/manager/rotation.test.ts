import { COALESCE_WINDOW_MS, coalesceWindow, drawJitter, jwtNeedsRefresh, lifetimeStart, rotationTime, shouldRotate } from './rotation';
import { Backoff, fullJitterDelay } from '../../common/backoff';
import { rateLimitDelayMs } from './x509-rotator';
import { TesseraError } from '../../common/errors';

describe('rotationTime / shouldRotate', () => {
  test('half-life without jitter', () => {
    expect(rotationTime(0, 10_000, 0)).toBe(5000);
    expect(shouldRotate(0, 10_000, 4999, 0)).toBe(false);
    expect(shouldRotate(0, 10_000, 5000, 0)).toBe(true);
  });

  test('jitter moves the time by up to ±10 % of the lifetime', () => {
    expect(rotationTime(0, 3600_000, 0.1)).toBe(2160_000);
    expect(rotationTime(0, 3600_000, -0.1)).toBe(1440_000);
    expect(shouldRotate(0, 3600_000, 1500_000, -0.1)).toBe(true);
    expect(shouldRotate(0, 3600_000, 2000_000, 0.1)).toBe(false);
  });

  test('an expired SVID always rotates; a zero lifetime does not break', () => {
    expect(shouldRotate(0, 10_000, 10_000, 0.1)).toBe(true);
    expect(shouldRotate(0, 10_000, 99_999, 0.1)).toBe(true);
    expect(rotationTime(5, 5, 0)).toBe(5);
  });

  test('drawJitter stays within [-0.1, 0.1)', () => {
    expect(drawJitter(() => 0)).toBeCloseTo(-0.1);
    expect(drawJitter(() => 0.5)).toBeCloseTo(0);
    expect(drawJitter(() => 0.999999)).toBeLessThan(0.1);
    for (let i = 0; i < 1000; i++) {
      const j = drawJitter();
      expect(j).toBeGreaterThanOrEqual(-0.1);
      expect(j).toBeLessThan(0.1);
    }
  });

  test('lifetimeStart ignores the server backdating of notBefore', () => {
    // 10-s SVID, notBefore backdated 10 s: half of notAfter - notBefore would be "now".
    const received = 100_000;
    const start = lifetimeStart(received - 10_000, received + 10_000, received);
    expect(start).toBe(received);
    expect(rotationTime(start, received + 10_000, 0)).toBe(received + 5000);
    // a receipt time outside the validity is clamped
    expect(lifetimeStart(1000, 2000, 500)).toBe(1000);
    expect(lifetimeStart(1000, 2000, 9000)).toBe(2000);
  });

  test('coalesceWindow is 1 s but at most 5 % of a short lifetime', () => {
    expect(coalesceWindow(0, 3600_000)).toBe(COALESCE_WINDOW_MS);
    expect(coalesceWindow(0, 10_000)).toBe(500);
  });

  test('jwtNeedsRefresh past half the lifetime', () => {
    expect(jwtNeedsRefresh(0, 300_000, 149_999)).toBe(false);
    expect(jwtNeedsRefresh(0, 300_000, 150_000)).toBe(true);
  });
});

describe('backoff', () => {
  test('full jitter: uniform below min(cap, base·2^n)', () => {
    expect(fullJitterDelay(0, 1000, 30_000, () => 0.999)).toBe(999);
    expect(fullJitterDelay(3, 1000, 30_000, () => 0.5)).toBe(4000);
    expect(fullJitterDelay(10, 1000, 30_000, () => 0.5)).toBe(15_000);
    expect(fullJitterDelay(5000, 1000, 30_000, () => 0.999)).toBe(29_970);
    expect(fullJitterDelay(2, 1000, 30_000, () => 0)).toBe(0);
  });

  test('Backoff grows per failure and resets after a success', () => {
    const b = new Backoff({}, () => 0.999);
    expect([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()]).toEqual([999, 1998, 3996, 7992, 15_984, 29_970]);
    expect(b.next()).toBe(29_970);
    expect(b.failures).toBe(7);
    b.reset();
    expect(b.next()).toBe(999);
  });
});

describe('rateLimitDelayMs', () => {
  test('uses the server hint for RESOURCE_EXHAUSTED only', () => {
    expect(rateLimitDelayMs(new TesseraError('RESOURCE_EXHAUSTED', 'signing rate limit (500/s) exceeded; retry in 0.812s'))).toBe(812);
    expect(rateLimitDelayMs(new TesseraError('RESOURCE_EXHAUSTED', 'slow down'))).toBe(1000);
    expect(rateLimitDelayMs(new TesseraError('UNAVAILABLE', 'retry in 3s'))).toBeUndefined();
    expect(rateLimitDelayMs(new Error('x'))).toBeUndefined();
  });
});
