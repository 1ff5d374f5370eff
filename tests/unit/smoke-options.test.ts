/**
 * The smoke benchmark's options resolved once (postdeploy/smoke-options.ts): every default applied, every problem
 * reported before anything connects, the result frozen.
 */
import * as os from "node:os";
import { describe, expect, it } from "vitest";
import { defaultBenchmark } from "../../configs/benchmark";
import { planIndex } from "../../configs/hnsw";
import { silentProgress } from "../../configs/progress";
import { resolveSmokeOptions, smokeOptionProblems, type SmokeOptions } from "../../postdeploy/smoke-options";

const plan = planIndex(
  { table: "memories", column: "embedding", dimensions: 768, metric: "cosine", type: "vector", filterColumns: ["tier"], efSearch: 40, createTable: true },
  { maintenanceWorkMem: "1GB", maxParallelMaintenanceWorkers: 2 },
);
const appOwned = planIndex(
  { table: "documents", column: "embedding", dimensions: 384, metric: "cosine", type: "vector", filterColumns: [], efSearch: 40, createTable: false },
  { maintenanceWorkMem: "1GB", maxParallelMaintenanceWorkers: 2 },
);

const base: SmokeOptions = {
  pooledUrl: "postgresql://app:p%40ss@127.0.0.1:6432/app",
  directUrl: "postgresql://app:direct-pw@127.0.0.1:5432/app",
  plan,
  spec: defaultBenchmark,
};

describe("resolveSmokeOptions", () => {
  it("applies every default once", () => {
    const r = resolveSmokeOptions(base);
    expect(r).toMatchObject({
      tableSource: "given",
      hasPool: false,
      keepTables: false,
      scenarios: ["insert", "search", "hybrid", "mixed", "sustained"],
      vectorSource: "generated",
      vectorEncoding: "binary",
      pipeline: true,
      namedStatements: true,
      machine: { cores: os.cpus().length, memoryBytes: os.totalmem() },
      queryPoolSize: 1000,
      insertPoolSize: 10_000,
    });
    expect(r.progress).toBe(silentProgress);
    expect(r.table.table).toBe("memories");
    expect(r.table.poolTable).toBe("memories_pool");
  });

  it("keeps what the caller gave", () => {
    const progress = { ...silentProgress };
    const given = {
      keepTables: true,
      scenarios: ["search"],
      vectorSource: "stored",
      vectorEncoding: "text",
      pipeline: false,
      namedStatements: false,
      machine: { cores: 16, memoryBytes: 64 * 2 ** 30 },
      queryPoolSize: 200,
      insertPoolSize: 300,
    } as const;
    const r = resolveSmokeOptions({ ...base, progress, scratchTable: "smoke_scratch", ...given });
    expect(r).toMatchObject({ tableSource: "scratch", hasPool: true, ...given });
    expect(r.progress).toBe(progress);
    expect(r.table).toMatchObject({ table: "smoke_scratch", indexName: "smoke_scratch_embedding_hnsw_idx", poolTable: "smoke_scratch_pool" });
  });

  it.each([
    ["a scratch table", { scratchTable: "s" }, "scratch", true],
    ["the plan's table, created", { createTables: true }, "create", true],
    ["the plan's table as given", {}, "given", false],
  ] as const)("%s: table source and pool", (_, options, source, hasPool) => {
    const r = resolveSmokeOptions({ ...base, ...options });
    expect(r.tableSource).toBe(source);
    expect(r.hasPool).toBe(hasPool);
  });

  it("never has fewer query vectors than recall queries", () => {
    expect(resolveSmokeOptions({ ...base, queryPoolSize: 10, spec: { ...defaultBenchmark, recallQueries: 50 } }).queryPoolSize).toBe(50);
  });

  it("holds the passwords of both URLs, in every form, for masking", () => {
    expect(resolveSmokeOptions(base).secrets).toEqual(["p%40ss", "p@ss", "direct-pw"]);
  });

  it("is frozen, down to the lists and the table it made", () => {
    const r = resolveSmokeOptions(base);
    expect(Object.isFrozen(r)).toBe(true);
    expect(Object.isFrozen(r.scenarios)).toBe(true);
    expect(Object.isFrozen(r.table)).toBe(true);
    expect(Object.isFrozen(r.machine)).toBe(true);
    expect(Object.isFrozen(r.secrets)).toBe(true);
    // The caller's own objects are not frozen behind its back.
    expect(Object.isFrozen(base.spec)).toBe(false);
  });
});

describe("smokeOptionProblems", () => {
  it.each<[string, Partial<SmokeOptions>, RegExp]>([
    ["scratch table and createTables together", { scratchTable: "s", createTables: true }, /scratchTable "s" and createTables both given/],
    ["an empty scratch table name", { scratchTable: "" }, /scratchTable "" is empty/],
    ["the plan's own table as scratch table", { scratchTable: "memories" }, /scratchTable "memories" is the plan's own table/],
    ["createTables on a table the application owns", { plan: appOwned, createTables: true }, /createTables is set but documents is owned by the application/],
    ["stored vectors without a pool table", { vectorSource: "stored" }, /vectorSource "stored" needs the pool table/],
    ["concurrency 0", { spec: { ...defaultBenchmark, concurrency: 0 } }, /benchmark concurrency 0 must be a positive integer/],
    ["fractional concurrency", { spec: { ...defaultBenchmark, concurrency: 1.5 } }, /benchmark concurrency 1.5 must be a positive integer/],
    ["negative duration", { spec: { ...defaultBenchmark, durationSeconds: -1 } }, /benchmark durationSeconds -1 must be ≥ 0/],
    ["NaN warm-up", { spec: { ...defaultBenchmark, warmupSeconds: NaN } }, /benchmark warmupSeconds NaN must be ≥ 0/],
    ["an empty query pool", { queryPoolSize: 0 }, /queryPoolSize 0 must be a positive integer/],
    ["a fractional insert pool", { insertPoolSize: 2.5 }, /insertPoolSize 2.5 must be a positive integer/],
    ["an unknown scenario", { scenarios: ["serach" as never] }, /scenario "serach" is not one of insert, search, hybrid, mixed, sustained/],
    ["more dimensions than pgvector stores", { plan: { ...plan, dimensions: 16_001 } }, /16001 dimensions exceed pgvector's 16,000/],
    [
      "a maintenance_work_mem SET would reject, when the run builds",
      { scratchTable: "s", plan: { ...plan, build: { ...plan.build, maintenanceWorkMem: "lots" } } },
      /maintenance_work_mem "lots" is not a PostgreSQL memory size/,
    ],
  ])("%s", (_, options, problem) => {
    const all = { ...base, ...options };
    expect(smokeOptionProblems(all).join("\n")).toMatch(problem);
    expect(() => resolveSmokeOptions(all)).toThrow(problem);
  });

  it("has nothing to say about good options, including a given table's build settings it never uses", () => {
    expect(smokeOptionProblems(base)).toEqual([]);
    expect(smokeOptionProblems({ ...base, plan: { ...plan, build: { ...plan.build, maintenanceWorkMem: "lots" } } })).toEqual([]);
  });

  it("reports every problem at once", () => {
    const problems = smokeOptionProblems({ ...base, scratchTable: "memories", spec: { ...defaultBenchmark, concurrency: 0 }, queryPoolSize: -1 });
    expect(problems).toHaveLength(3);
    expect(() => resolveSmokeOptions({ ...base, scratchTable: "memories", spec: { ...defaultBenchmark, concurrency: 0 } })).toThrow(
      /own table.*; benchmark concurrency 0/,
    );
  });
});
