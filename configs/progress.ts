/**
 * The one small interface long work (provisioning, index builds, benchmarks) reports through.
 * The CLI draws it; tests pass `silentProgress` and ignore it.
 */
export interface Progress {
  /** A step starts or a line of news: "building memories_embedding_hnsw_idx". */
  step(message: string): void;
  /** Fraction done of the current step, 0..1, with an optional short detail ("loading tuples 41 %"). */
  advance(fraction: number, detail?: string): void;
  /** Something the user should read even when progress is not drawn. */
  warn(message: string): void;
}

export const silentProgress: Progress = {
  step: () => undefined,
  advance: () => undefined,
  warn: () => undefined,
};
