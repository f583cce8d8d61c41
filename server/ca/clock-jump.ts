import type { Clock } from '../../common/clock';

/** A wall-clock step larger than this (between two checks, against the monotonic clock) is a jump. */
export const CLOCK_JUMP_THRESHOLD_MS = 5000;

/**
 * Notices when the wall clock steps (an operator's `date -s`, a large NTP
 * correction, libfaketime in the tests): between two calls to {@link check}
 * the wall clock and the monotonic clock should advance alike; when they differ
 * by more than the threshold, the wall clock jumped by the difference. A machine
 * that was suspended looks the same (CLOCK_MONOTONIC stops while suspended).
 */
export class ClockJumpDetector {
  private last?: { wall: number; mono: number };

  constructor(
    private readonly clock: Clock,
    private readonly thresholdMs = CLOCK_JUMP_THRESHOLD_MS,
  ) {}

  /** @returns the jump in ms (positive: forward) since the last check, or 0 */
  check(): number {
    if (!this.clock.monotonic) return 0;
    const now = { wall: this.clock.now().getTime(), mono: this.clock.monotonic() };
    const prev = this.last;
    this.last = now;
    if (!prev) return 0;
    const jump = now.wall - prev.wall - (now.mono - prev.mono);
    return Math.abs(jump) > this.thresholdMs ? jump : 0;
  }
}
