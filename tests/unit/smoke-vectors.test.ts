import { describe, expect, it } from "vitest";
import pgvector from "pgvector";
import {
  decodeHalfvec,
  decodeVector,
  encodeHalfvec,
  encodeVector,
  float16Bits,
  float16Value,
} from "../../postdeploy/vector-binary";
import { benchmarkRows, ClusteredVectors, createRng, filterValues, streamSeed, streams } from "../../postdeploy/vectors";

function norm(v: Float32Array): number {
  return Math.sqrt(v.reduce((s, x) => s + x * x, 0));
}

function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  for (let i = 0; i < a.length; i++) dot += a[i] * b[i];
  return dot / (norm(a) * norm(b));
}

describe("seeded PRNG", () => {
  it("repeats for the same seed and differs for another", () => {
    const a = createRng(42);
    const b = createRng(42);
    const c = createRng(43);
    const xs = Array.from({ length: 5 }, () => a.next());
    expect(Array.from({ length: 5 }, () => b.next())).toEqual(xs);
    expect(Array.from({ length: 5 }, () => c.next())).not.toEqual(xs);
    for (const x of xs) expect(x >= 0 && x < 1).toBe(true);
  });

  it("draws standard normal deviates", () => {
    const rng = createRng(7);
    const n = 20_000;
    let sum = 0;
    let squares = 0;
    for (let i = 0; i < n; i++) {
      const g = rng.gaussian();
      sum += g;
      squares += g * g;
    }
    expect(Math.abs(sum / n)).toBeLessThan(0.03);
    expect(Math.abs(squares / n - 1)).toBeLessThan(0.05);
  });

  it("gives independent streams distinct seeds", () => {
    const seeds = new Set([0, 1, 2, 3, 1000, 1001].map((s) => streamSeed(42, s)));
    expect(seeds.size).toBe(6);
  });
});

describe("clustered vectors", () => {
  const gen = () => new ClusteredVectors({ seed: 42, dimensions: 64, clusters: 8 });

  it("are the same for the same seed (determinism)", () => {
    const a = gen().take(streams.queries, 20);
    const b = gen().take(streams.queries, 20);
    expect(a.map((v) => Array.from(v))).toEqual(b.map((v) => Array.from(v)));
    const other = new ClusteredVectors({ seed: 43, dimensions: 64, clusters: 8 }).take(streams.queries, 1)[0];
    expect(Array.from(other)).not.toEqual(Array.from(a[0]));
  });

  it("are normalized", () => {
    for (const v of gen().take(streams.rows, 100)) expect(norm(v)).toBeCloseTo(1, 5);
  });

  it("are clustered, not uniform noise: nearest neighbours are much closer than random pairs", () => {
    const vs = gen().take(streams.rows, 400);
    let nearest = 0;
    let random = 0;
    for (let i = 0; i < 50; i++) {
      let best = -1;
      for (let j = 0; j < vs.length; j++) if (j !== i) best = Math.max(best, cosine(vs[i], vs[j]));
      nearest += best;
      random += cosine(vs[i], vs[(i * 7 + 13) % vs.length]);
    }
    // Uniform 64-d noise gives nearest-neighbour cosine ≈ 0.35; with 8 clusters at spread 1 it is ≈ 0.6+.
    expect(nearest / 50).toBeGreaterThan(0.5);
    expect(random / 50).toBeLessThan(0.3);
  });

  it("benchmark rows carry one filter value per filter column from the tier list, deterministically", () => {
    const rows = [...benchmarkRows(gen(), 50, 2)];
    const again = [...benchmarkRows(gen(), 50, 2)];
    expect(rows.map((r) => r.filters)).toEqual(again.map((r) => r.filters));
    for (const r of rows) {
      expect(r.filters).toHaveLength(2);
      for (const f of r.filters) expect(filterValues).toContain(f);
    }
  });

  it("rejects a bad dimension count with the value", () => {
    expect(() => new ClusteredVectors({ seed: 1, dimensions: 0 })).toThrow(/dimensions 0/);
  });
});

describe("binary vector encoding", () => {
  const sample = new ClusteredVectors({ seed: 1, dimensions: 768 }).take(streams.queries, 3);

  it("round-trips vector (float4) exactly", () => {
    for (const v of sample) expect(Array.from(decodeVector(encodeVector(v)))).toEqual(Array.from(v));
  });

  it("lays out int16 dim, int16 unused = 0, big-endian float4s (pgvector vector_recv)", () => {
    const b = encodeVector([1, -2, 0.5]);
    expect(b.toString("hex")).toBe("00030000" + "3f800000" + "c0000000" + "3f000000");
  });

  it("agrees with pgvector's text form", () => {
    const v = sample[0];
    const text = pgvector.toSql(Array.from(v)) as string;
    const fromText = (JSON.parse(text) as number[]).map((x) => Math.fround(x));
    expect(Array.from(decodeVector(encodeVector(v)))).toEqual(fromText);
    expect(pgvector.fromSql(text)).toHaveLength(768);
  });

  it("round-trips halfvec (float16) within half precision", () => {
    for (const v of sample) {
      const back = decodeHalfvec(encodeHalfvec(v));
      for (let i = 0; i < v.length; i++) expect(Math.abs(back[i] - v[i])).toBeLessThanOrEqual(Math.abs(v[i]) * 2 ** -11 + 2 ** -25);
    }
    expect(encodeHalfvec([1, -2]).toString("hex")).toBe("00020000" + "3c00" + "c000");
  });

  it.each([
    [0, 0x0000],
    [-0, 0x8000],
    [1, 0x3c00],
    [65504, 0x7bff],
    [2 ** -24, 0x0001],
    [2 ** -14, 0x0400],
    [1 + 2 ** -11, 0x3c00], // tie → even
    [1 + 3 * 2 ** -11, 0x3c02], // tie → even (up)
    [65520, 0x7c00], // rounds past the largest finite half
    [0.1, 0x2e66],
  ])("float16Bits(%s) = %s", (x, bits) => {
    expect(float16Bits(x)).toBe(bits);
    if (bits !== 0x7c00) expect(float16Value(bits)).toBe(float16Value(float16Bits(x)));
  });

  it("rejects what pgvector rejects", () => {
    expect(() => encodeVector([1, NaN])).toThrow(/element 1 is NaN/);
    expect(() => encodeHalfvec([70000])).toThrow(/65504/);
    expect(() => encodeVector([])).toThrow(/1 to 16000/);
    const bad = encodeVector([1, 2]);
    bad.writeInt16BE(1, 2);
    expect(() => decodeVector(bad)).toThrow(/unused to be 0/);
  });
});
