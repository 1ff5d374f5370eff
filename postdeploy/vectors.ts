/**
 * The smoke benchmark's synthetic data set: clustered, normalized vectors from a seeded PRNG.
 *
 * Uniform noise is the wrong test data for HNSW: in high dimensions every uniform point is about equally far from every
 * other, so the graph has no neighbourhoods to exploit and recall says little about real embeddings. Real embeddings
 * cluster by topic and vary within a topic along few directions, so we draw k cluster centres, scatter points around
 * each along a handful of its own directions (gaussian, decaying variance) plus a little isotropic jitter, and
 * normalize (cosine and inner-product indexes expect unit vectors; the tuning guide's `<#>` advice assumes them).
 * Same seed → same centres → same vectors, on every machine (only integer arithmetic and IEEE doubles are used).
 */

/** A 32-bit PRNG (mulberry32): tiny, fast, and identical on every platform. Returns floats in [0, 1). */
export interface Rng {
  next(): number;
  /** An integer in [0, n). */
  int(n: number): number;
  /** A standard normal deviate. */
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
      // Marsaglia's polar method: two deviates per accepted pair, no trigonometry (the loader draws ~800 per row).
      let u: number;
      let v: number;
      let q: number;
      do {
        u = 2 * next() - 1;
        v = 2 * next() - 1;
        q = u * u + v * v;
      } while (q >= 1 || q === 0);
      const f = Math.sqrt((-2 * Math.log(q)) / q);
      spare = v * f;
      return u * f;
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
   * Directions each cluster varies along. Real embeddings have a low intrinsic dimension: points of one topic differ
   * along a few directions, not along all 768 at once (isotropic noise in 768-d makes every point about equally far
   * from every other of its cluster, which is as hard for HNSW as uniform noise). Defaults to 16.
   */
  readonly latentDimensions?: number;
  /** Expected length of a point's offset along its cluster's directions, relative to the unit centre. Defaults to 1. */
  readonly spread?: number;
  /** Expected length of the isotropic noise added on top (so no point lies exactly in its cluster's subspace). Defaults to 0.2. */
  readonly jitter?: number;
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
  /** Per cluster, its latent directions, each pre-scaled by its standard deviation. */
  private readonly axes: Float32Array[][];
  private readonly jitterScale: number;

  constructor(options: ClusteredVectorsOptions) {
    const { seed, dimensions } = options;
    const clusters = options.clusters ?? 32;
    const latent = options.latentDimensions ?? 16;
    const spread = options.spread ?? 1;
    const jitter = options.jitter ?? 0.2;
    if (!Number.isInteger(dimensions) || dimensions < 1) {
      throw new Error(`vector dimensions ${dimensions} is not a positive integer`);
    }
    if (!Number.isInteger(clusters) || clusters < 1) throw new Error(`clusters ${clusters} is not a positive integer`);
    if (!Number.isInteger(latent) || latent < 1) throw new Error(`latentDimensions ${latent} is not a positive integer`);
    if (!(spread >= 0)) throw new Error(`spread ${spread} must be ≥ 0`);
    if (!(jitter >= 0)) throw new Error(`jitter ${jitter} must be ≥ 0`);
    this.dimensions = dimensions;
    this.seed = seed;
    // Per-dimension sigma so that the jitter's expected length is `jitter` (|N(0,σ²)^d| ≈ σ·√d).
    this.jitterScale = jitter / Math.sqrt(dimensions);
    // Latent directions carry decaying variance (1/(j+1), like an embedding's spectrum), scaled so that the
    // expected offset length is `spread`.
    const weights = Array.from({ length: latent }, (_, j) => 1 / Math.sqrt(j + 1));
    const total = Math.sqrt(weights.reduce((a, w) => a + w * w, 0));
    const rng = createRng(streamSeed(seed, streams.centres));
    const unit = (): Float32Array => {
      const v = new Float32Array(dimensions);
      for (let i = 0; i < dimensions; i++) v[i] = rng.gaussian();
      return normalize(v);
    };
    this.centres = [];
    this.axes = [];
    for (let c = 0; c < clusters; c++) {
      this.centres.push(unit());
      this.axes.push(
        weights.map((w) => {
          const axis = unit();
          const scale = (spread * w) / total;
          for (let i = 0; i < dimensions; i++) axis[i] *= scale;
          return axis;
        }),
      );
    }
  }

  /** One vector drawn with `rng`: a random centre, an offset along its directions, a little jitter; normalized. */
  draw(rng: Rng): Float32Array {
    const c = rng.int(this.centres.length);
    const v = Float32Array.from(this.centres[c]);
    for (const axis of this.axes[c]) {
      const g = rng.gaussian();
      for (let i = 0; i < this.dimensions; i++) v[i] += g * axis[i];
    }
    if (this.jitterScale > 0) for (let i = 0; i < this.dimensions; i++) v[i] += this.jitterScale * rng.gaussian();
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
