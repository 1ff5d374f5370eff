/**
 * The smoke benchmark's settings and targets. Targets are the tuning guide's "Load Testing" expected results
 * (inserts > 1000/s, searches > 800/s, hybrid > 600/s, mixed > 1200/s) and its latency baseline (P99 < 200 ms).
 */
export interface BenchmarkTargets {
  readonly insertOpsPerSec: number;
  readonly searchOpsPerSec: number;
  readonly hybridOpsPerSec: number;
  readonly mixedOpsPerSec: number;
  /** Applies to every scenario, including sustained. */
  readonly p99Ms: number;
}

export interface BenchmarkSpec {
  readonly targets: BenchmarkTargets;
  /** Client connections through PgBouncer. */
  readonly concurrency: number;
  /** Measured seconds per scenario (sustained has its own). */
  readonly durationSeconds: number;
  /** Seconds run before each scenario and not counted: fills caches and prepares statements. */
  readonly warmupSeconds: number;
  /** The guide's "Sustained Load Test" is 60 seconds of continuous load. */
  readonly sustainedSeconds: number;
  /** Rows loaded into each benchmark table before measuring. */
  readonly rows: number;
  /** Queries whose top 10 is compared with exact search to compute recall@10. */
  readonly recallQueries: number;
  /** Exit non-zero when a target is missed. */
  readonly enforce: boolean;
  /** Seed of the synthetic data set: same seed, same vectors. */
  readonly seed: number;
}

export const guideTargets: BenchmarkTargets = {
  insertOpsPerSec: 1000,
  searchOpsPerSec: 800,
  hybridOpsPerSec: 600,
  mixedOpsPerSec: 1200,
  p99Ms: 200,
};

export const defaultBenchmark: BenchmarkSpec = {
  targets: guideTargets,
  concurrency: 8,
  durationSeconds: 15,
  warmupSeconds: 5,
  sustainedSeconds: 60,
  rows: 100_000,
  recallQueries: 50,
  enforce: false,
  seed: 42,
};
