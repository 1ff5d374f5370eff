/**
 * The smoke benchmark's synthetic data set: clustered, normalized vectors from a seeded PRNG.
 *
 * Uniform noise is the wrong test data for HNSW: in high dimensions every uniform point is about equally far from every
 * other, so the graph has no neighbourhoods to exploit and recall says little about real embeddings. Real embeddings
 * cluster by topic, so we draw k cluster centres and scatter points around them with gaussian noise, then normalize
 * (cosine and inner-product indexes expect unit vectors; the tuning guide's `<#>` advice assumes them).
 * Same seed → same centres → same vectors, on every machine (only integer arithmetic and IEEE doubles are used).
 */

/** A 32-bit PRNG (mulberry32): tiny, fast, and identical on every platform. Returns floats in [0, 1). */
export interface Rng {
  next(): number;
  /** An integer in [0, n). */
  int(n: number): number;
  /** A standard normal deviate (Box–Muller). */
  gaussian(): number;
}

export function createRng(seed: number): Rng {
  let state = seed >>> 0;
  let spare: number | null = null;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n) => Math.floor(next() * n),
    gaussian: () => {
      if (spare !== null) {
        const s = spare;
        spare = null;
        return s;
      }
      // 1 - next() is in (0, 1], so the logarithm is finite.
      const r = Math.sqrt(-2 * Math.log(1 - next()));
      const theta = 2 * Math.PI * next();
      spare = r * Math.sin(theta);
      return r * Math.cos(theta);
    },
  };
}

/** Derives independent stream seeds from one user seed, so adding a stream never shifts another stream's vectors. */
export function streamSeed(seed: number, stream: number): number {
  // splitmix32-style finalizer over (seed, stream).
  let h = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul((stream + 1) >>> 0, 0x85ebca77)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

export function normalize(v: Float32Array): Float32Array {
  let sum = 0;
  for (let i = 0; i < v.length; i++) sum += v[i] * v[i];
  const norm = Math.sqrt(sum);
  if (norm === 0) throw new Error("cannot normalize a zero vector (cosine distance is undefined for it)");
  for (let i = 0; i < v.length; i++) v[i] = v[i] / norm;
  return v;
}

export interface ClusteredVectorsOptions {
  readonly seed: number;
  readonly dimensions: number;
  /** Cluster centres. Defaults to 32. */
  readonly clusters?: number;
  /**
   * Length of the noise added to a (unit) centre, relative to it. At 0 every point is its centre; at 1 the noise is
   * as long as the centre, which leaves clear neighbourhoods without making nearest neighbours trivial. Defaults to 1.
   */
  readonly spread?: number;
}

/** The values written to filter columns: five tiers, uniform, so a hybrid filter keeps about 20 % of the rows. */
export const filterValues: readonly string[] = ["working", "warm", "cold", "archive", "frozen"];

/** Stream numbers: each use draws from its own stream so the data set does not depend on how many queries ran. */
export const streams = {
  centres: 0,
  rows: 1,
  queries: 2,
  inserts: 3,
  /** Per-worker choices (which query, which row to update): `workerBase + worker`. */
  workerBase: 1000,
} as const;

export class ClusteredVectors {
  readonly dimensions: number;
  readonly seed: number;
  private readonly centres: Float32Array[];
  private readonly noiseScale: number;

  constructor(options: ClusteredVectorsOptions) {
    const { seed, dimensions } = options;
    const clusters = options.clusters ?? 32;
    const spread = options.spread ?? 1;
    if (!Number.isInteger(dimensions) || dimensions < 1) {
      throw new Error(`vector dimensions ${dimensions} is not a positive integer`);
    }
    if (!Number.isInteger(clusters) || clusters < 1) throw new Error(`clusters ${clusters} is not a positive integer`);
    if (!(spread >= 0)) throw new Error(`spread ${spread} must be ≥ 0`);
    this.dimensions = dimensions;
    this.seed = seed;
    // Per-dimension sigma so that the noise vector's expected length is `spread` (|N(0,σ²)^d| ≈ σ·√d).
    this.noiseScale = spread / Math.sqrt(dimensions);
    const rng = createRng(streamSeed(seed, streams.centres));
    this.centres = [];
    for (let c = 0; c < clusters; c++) {
      const v = new Float32Array(dimensions);
      for (let i = 0; i < dimensions; i++) v[i] = rng.gaussian();
      this.centres.push(normalize(v));
    }
  }

  /** One vector drawn with `rng`: a random centre plus gaussian noise, normalized. */
  draw(rng: Rng): Float32Array {
    const centre = this.centres[rng.int(this.centres.length)];
    const v = new Float32Array(this.dimensions);
    for (let i = 0; i < this.dimensions; i++) v[i] = centre[i] + this.noiseScale * rng.gaussian();
    return normalize(v);
  }

  /** `count` vectors of one stream: the same (seed, stream, count) always gives the same vectors. */
  take(stream: number, count: number): Float32Array[] {
    const rng = createRng(streamSeed(this.seed, stream));
    const out: Float32Array[] = [];
    for (let i = 0; i < count; i++) out.push(this.draw(rng));
    return out;
  }
}

/**
 * Rows of the benchmark table in load order: a filter value per filter column and a vector. A generator, so 1M rows
 * never sit in memory at once.
 */
export function* benchmarkRows(
  vectors: ClusteredVectors,
  count: number,
  filterColumns: number,
): Generator<{ filters: string[]; vector: Float32Array }> {
  const rng = createRng(streamSeed(vectors.seed, streams.rows));
  for (let i = 0; i < count; i++) {
    const vector = vectors.draw(rng);
    const filters: string[] = [];
    for (let f = 0; f < filterColumns; f++) filters.push(filterValues[rng.int(filterValues.length)]);
    yield { filters, vector };
  }
}
