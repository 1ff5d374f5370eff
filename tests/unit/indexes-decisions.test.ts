import { describe, expect, it } from "vitest";
import { type IndexPlanEntry, type VectorTableSpec, planIndex } from "../../configs/hnsw";
import {
  type ObservedIndex,
  type ObservedStorage,
  buildProgress,
  createIndexSqlNamed,
  formatBytes,
  hnswParameters,
  indexDifferences,
  parseBuildNotice,
  parseReloptions,
  rebuildIndexName,
  storageDecision,
  truncateIdentifier,
  versionAtLeast,
} from "../../postdeploy/index-decisions";

const build = { maintenanceWorkMem: "1GB", maxParallelMaintenanceWorkers: 2 };

function entry(overrides: Partial<VectorTableSpec> = {}): IndexPlanEntry {
  return planIndex(
    {
      table: "memories",
      column: "embedding",
      dimensions: 768,
      metric: "cosine",
      type: "vector",
      filterColumns: ["tier"],
      efSearch: 40,
      createTable: true,
      ...overrides,
    },
    build,
  );
}

function observed(overrides: Partial<ObservedIndex> = {}): ObservedIndex {
  return {
    name: "memories_embedding_hnsw_idx",
    table: "memories",
    accessMethod: "hnsw",
    columns: ["embedding"],
    opclasses: ["vector_cosine_ops"],
    reloptions: ["m=16", "ef_construction=128"],
    valid: true,
    ready: true,
    partial: false,
    definition: "CREATE INDEX …",
    ...overrides,
  };
}

describe("parseReloptions / hnswParameters", () => {
  it.each<{ reloptions: string[] | null; m: number; efConstruction: number }>([
    { reloptions: null, m: 16, efConstruction: 64 },
    { reloptions: [], m: 16, efConstruction: 64 },
    { reloptions: ["m=8"], m: 8, efConstruction: 64 },
    { reloptions: ["ef_construction=200"], m: 16, efConstruction: 200 },
    { reloptions: ["m=48", "ef_construction=200"], m: 48, efConstruction: 200 },
    { reloptions: ["ef_construction=100", "m=24", "fillfactor=90"], m: 24, efConstruction: 100 },
  ])("$reloptions → m $m, ef_construction $efConstruction", ({ reloptions, m, efConstruction }) => {
    expect(hnswParameters(reloptions)).toEqual({ m, efConstruction });
  });

  it("keeps every option, splitting at the first =", () => {
    expect([...parseReloptions(["parallel_workers=2", "weird=a=b", "flag"])]).toEqual([
      ["parallel_workers", "2"],
      ["weird", "a=b"],
      ["flag", ""],
    ]);
  });

  it("rejects a non-integer m with the option named", () => {
    expect(() => hnswParameters(["m=abc"])).toThrow("reloption m=abc is not an integer");
  });
});

describe("indexDifferences", () => {
  it.each<{ name: string; index: Partial<ObservedIndex>; differences: string[] }>([
    { name: "as planned", index: {}, differences: [] },
    { name: "m 8", index: { reloptions: ["m=8", "ef_construction=128"] }, differences: ["m 8, plan 16"] },
    {
      name: "no reloptions: pgvector defaults 16/64",
      index: { reloptions: null },
      differences: ["ef_construction 64, plan 128"],
    },
    { name: "other opclass", index: { opclasses: ["vector_l2_ops"] }, differences: ["operator class vector_l2_ops, plan vector_cosine_ops"] },
    {
      name: "ivfflat",
      index: { accessMethod: "ivfflat", reloptions: ["lists=100"] },
      differences: ["access method ivfflat, plan hnsw"],
    },
    { name: "other column", index: { columns: ["other"] }, differences: ["columns (other), plan (embedding)"] },
    {
      name: "expression, two columns",
      index: { columns: ["", "embedding"], opclasses: ["vector_cosine_ops", "vector_cosine_ops"] },
      differences: ["columns ((expression), embedding), plan (embedding)", "operator class vector_cosine_ops, vector_cosine_ops, plan vector_cosine_ops"],
    },
    { name: "partial", index: { partial: true }, differences: ["is partial (has a WHERE clause), plan indexes every row"] },
    { name: "other table", index: { table: "docs" }, differences: ["is on table docs, plan memories"] },
    {
      name: "both parameters",
      index: { reloptions: ["m=4", "ef_construction=8"] },
      differences: ["m 4, plan 16", "ef_construction 8, plan 128"],
    },
  ])("$name", ({ index, differences }) => {
    expect(indexDifferences(entry(), observed(index))).toEqual(differences);
  });

  it("ignores validity: that is repair, not mismatch", () => {
    expect(indexDifferences(entry(), observed({ valid: false, ready: false }))).toEqual([]);
  });

  it("halfvec plan against a vector index", () => {
    expect(
      indexDifferences(entry({ type: "halfvec", dimensions: 3000 }), observed({ opclasses: ["vector_cosine_ops"], reloptions: ["m=48", "ef_construction=200"] })),
    ).toEqual(["operator class vector_cosine_ops, plan halfvec_cosine_ops"]);
  });
});

describe("storageDecision", () => {
  const fresh: ObservedStorage = { attstorage: "e", toastBytes: 0, parallelWorkers: null };
  it.each<{ name: string; plan: Partial<VectorTableSpec>; seen: Partial<ObservedStorage>; apply: string | null; sql: string | null }>([
    { name: "384-dim default: nothing", plan: { dimensions: 384 }, seen: {}, apply: null, sql: null },
    {
      name: "768 plain on an empty table: SET STORAGE PLAIN",
      plan: {},
      seen: {},
      apply: "plain",
      sql: `ALTER TABLE "memories" ALTER COLUMN "embedding" SET STORAGE PLAIN`,
    },
    { name: "768 plain, already plain: nothing", plan: {}, seen: { attstorage: "p" }, apply: null, sql: null },
    {
      name: "768 plain but TOAST holds vectors: reloption instead",
      plan: {},
      seen: { toastBytes: 8 * 1024 * 1024 },
      apply: "parallel-workers-reloption",
      sql: `ALTER TABLE "memories" SET (parallel_workers = 2)`,
    },
    {
      name: "TOASTed although PLAIN was set later: reloption",
      plan: {},
      seen: { attstorage: "p", toastBytes: 8192 },
      apply: "parallel-workers-reloption",
      sql: `ALTER TABLE "memories" SET (parallel_workers = 2)`,
    },
    { name: "TOASTed, reloption already set: nothing", plan: {}, seen: { toastBytes: 8192, parallelWorkers: 2 }, apply: null, sql: null },
    {
      name: "TOASTed, reloption set to another count: set it",
      plan: {},
      seen: { toastBytes: 8192, parallelWorkers: 1 },
      apply: "parallel-workers-reloption",
      sql: `ALTER TABLE "memories" SET (parallel_workers = 2)`,
    },
    {
      name: "4000-dim halfvec: reloption as planned",
      plan: { type: "halfvec", dimensions: 4000 },
      seen: {},
      apply: "parallel-workers-reloption",
      sql: `ALTER TABLE "memories" SET (parallel_workers = 2)`,
    },
    { name: "4000-dim halfvec, already set: nothing", plan: { type: "halfvec", dimensions: 4000 }, seen: { parallelWorkers: 2 }, apply: null, sql: null },
  ])("$name", ({ plan, seen, apply, sql }) => {
    const decision = storageDecision(entry(plan), { ...fresh, ...seen });
    expect(decision.apply).toBe(apply);
    expect(decision.sql).toBe(sql);
    expect(decision.note.length).toBeGreaterThan(0);
  });

  it("says why PLAIN was not used on a TOASTed table", () => {
    expect(storageDecision(entry(), { ...fresh, toastBytes: 3 * 1024 * 1024 }).note).toBe(
      "the TOAST table already holds 3.0 MB of out-of-line vectors; SET STORAGE PLAIN would only affect rows written afterwards: set parallel_workers = 2 so the build is parallel",
    );
  });

  it("does nothing when builds are serial anyway", () => {
    const serial = planIndex(
      { table: "m", column: "e", dimensions: 768, metric: "l2", type: "vector", filterColumns: [], efSearch: 40, createTable: true },
      { maintenanceWorkMem: "64MB", maxParallelMaintenanceWorkers: 0 },
    );
    expect(storageDecision(serial, { ...fresh, toastBytes: 1 }).apply).toBeNull();
  });
});

describe("buildProgress", () => {
  const row = { blocksDone: 0, blocksTotal: 0, tuplesDone: 0, tuplesTotal: 0 };
  it.each<{ phase: string; blocksDone?: number; blocksTotal?: number; tuplesDone?: number; tuplesTotal?: number; fraction: number; detail: string }>([
    { phase: "initializing", fraction: 0, detail: "initializing" },
    { phase: "waiting for writers before build", fraction: 0, detail: "waiting for writers before build" },
    { phase: "building index: initializing", fraction: 0, detail: "initializing" },
    { phase: "building index: loading tuples", blocksDone: 50, blocksTotal: 200, fraction: 0.225, detail: "loading tuples 25 %" },
    { phase: "building index: loading tuples", blocksDone: 200, blocksTotal: 200, fraction: 0.9, detail: "loading tuples 100 %" },
    { phase: "building index: loading tuples", blocksDone: 300, blocksTotal: 200, fraction: 0.9, detail: "loading tuples 100 %" },
    { phase: "waiting for writers before validation", fraction: 0.9, detail: "waiting for writers before validation" },
    { phase: "index validation: scanning index", tuplesDone: 5, tuplesTotal: 10, fraction: 0.95, detail: "index validation: scanning index 50 %" },
    { phase: "index validation: scanning table", blocksDone: 10, blocksTotal: 10, fraction: 1, detail: "index validation: scanning table 100 %" },
    { phase: "waiting for old snapshots", fraction: 1, detail: "waiting for old snapshots" },
    { phase: "waiting for readers before marking dead", fraction: 1, detail: "waiting for readers before marking dead" },
  ])("$phase $blocksDone/$blocksTotal → $fraction", ({ phase, fraction, detail, ...counts }) => {
    const progress = buildProgress({ ...row, ...counts, phase });
    expect(progress.fraction).toBeCloseTo(fraction, 6);
    expect(progress.detail).toBe(detail);
  });
});

describe("parseBuildNotice", () => {
  it.each([
    { message: 'building index "memories_embedding_hnsw_idx" on table "memories" with request for 2 parallel workers', notice: { kind: "workers-planned", workers: 2 } },
    { message: 'building index "memories_embedding_hnsw_idx" on table "memories" serially', notice: { kind: "workers-planned", workers: 0 } },
    { message: "using 1 parallel workers", notice: { kind: "workers-launched", workers: 1 } },
    {
      message: "hnsw graph no longer fits into maintenance_work_mem after 4351 tuples",
      notice: { kind: "out-of-memory", message: "hnsw graph no longer fits into maintenance_work_mem after 4351 tuples" },
    },
    { message: 'relation "memories" already exists, skipping', notice: null },
    { message: "StartTransaction(1) name: unnamed; blockState: DEFAULT", notice: null },
  ])("$message", ({ message, notice }) => {
    expect(parseBuildNotice(message)).toEqual(notice);
  });
});

describe("names and quoting", () => {
  it("truncates identifiers to 63 bytes like PostgreSQL, on a character boundary", () => {
    expect(truncateIdentifier("memories_embedding_hnsw_idx")).toBe("memories_embedding_hnsw_idx");
    expect(truncateIdentifier("x".repeat(70))).toBe("x".repeat(63));
    expect(truncateIdentifier(`${"x".repeat(62)}é`)).toBe("x".repeat(62));
  });

  it("names the rebuild index with a suffix that survives truncation", () => {
    expect(rebuildIndexName("memories_embedding_hnsw_idx")).toBe("memories_embedding_hnsw_idx_rebuild");
    const long = rebuildIndexName("t".repeat(70));
    expect(long).toBe(`${"t".repeat(55)}_rebuild`);
    expect(Buffer.byteLength(long)).toBe(63);
  });

  it("renames the plan's own DDL, nothing else", () => {
    const e = entry();
    expect(createIndexSqlNamed(e, e.indexName)).toBe(e.createIndexSql);
    expect(createIndexSqlNamed(e, "memories_embedding_hnsw_idx_rebuild")).toBe(
      `CREATE INDEX CONCURRENTLY IF NOT EXISTS "memories_embedding_hnsw_idx_rebuild" ON "memories" USING hnsw ("embedding" vector_cosine_ops) WITH (m = 16, ef_construction = 128)`,
    );
    expect(() => createIndexSqlNamed({ ...e, createIndexSql: "CREATE INDEX x ON y" }, "z")).toThrow(/does not contain the index name/);
  });

  it.each([
    [100, "100 B"],
    [2048, "2.0 kB"],
    [391 * 1024 * 1024, "391 MB"],
  ])("formatBytes(%i) = %s", (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });

  it.each([
    ["0.8.0", "0.8.2", false],
    ["0.8.2", "0.8.2", true],
    ["0.8.10", "0.8.2", true],
    ["0.10.0", "0.8.2", true],
    ["0.7.4", "0.8.2", false],
  ])("versionAtLeast(%s, %s) = %s", (version, minimum, expected) => {
    expect(versionAtLeast(version, minimum)).toBe(expected);
  });
});
