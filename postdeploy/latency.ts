/**
 * Latency recording for the smoke benchmark: an HDR histogram of microseconds, summarized in milliseconds.
 *
 * Settings follow VectorDBBench (pgvector-facts §8): 1 µs to 60 s at 3 significant digits, so a percentile is within
 * 0.1 % of the true value whatever its size; auto-resize keeps a pathological stall from being dropped.
 * The loop is closed (a client waits for its answer before the next request), so stalls are under-sampled
 * (coordinated omission); the report says so next to the numbers.
 */
import * as hdr from "hdr-histogram-js";

export interface LatencySummary {
  readonly count: number;
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly meanMs: number;
}

export class LatencyRecorder {
  private readonly histogram = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
    autoResize: true,
    useWebAssembly: false,
  });

  /** Records one latency given in milliseconds (fractions allowed); kept at microsecond resolution. */
  recordMs(ms: number): void {
    this.histogram.recordValue(Math.max(1, Math.round(ms * 1000)));
  }

  /** Adds another recorder's values (one recorder per worker, merged at the end). */
  add(other: LatencyRecorder): void {
    this.histogram.add(other.histogram);
  }

  get count(): number {
    return this.histogram.totalCount;
  }

  summary(): LatencySummary {
    const h = this.histogram;
    if (h.totalCount === 0) return { count: 0, p50Ms: 0, p95Ms: 0, p99Ms: 0, maxMs: 0, meanMs: 0 };
    const ms = (us: number) => roundTo(us / 1000, 3);
    return {
      count: h.totalCount,
      p50Ms: ms(h.getValueAtPercentile(50)),
      p95Ms: ms(h.getValueAtPercentile(95)),
      p99Ms: ms(h.getValueAtPercentile(99)),
      maxMs: ms(h.maxValue),
      meanMs: ms(h.mean),
    };
  }
}

export function roundTo(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
