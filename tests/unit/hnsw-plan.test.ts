import { describe, expect, it } from "vitest";
import {
  type IndexBuildSettings,
  type VectorMetric,
  type VectorTableSpec,
  type VectorType,
  guideParameters,
  hnswMaxDimensions,
  indexName,
  planIndex,
  planIndexes,
  renderIndexPlanSql,
  vectorBytes,
  vectorStorage,
} from "../../configs/hnsw";

const build: IndexBuildSettings = { maintenanceWorkMem: "2GB", maxParallelMaintenanceWorkers: 4 };

function table(overrides: Partial<VectorTableSpec> = {}): VectorTableSpec {
  return {
    table: "memories",
    column: "embedding",
    dimensions: 768,
    metric: "cosine",
    type: "vector",
    filterColumns: ["tier"],
    efSearch: 40,
    createTable: false,
    ...overrides,
  };
}

describe("guideParameters: the guide's Index Configuration rows", () => {
  // The guide's three rows are golden; the rest pins the step boundaries (≤ 512 as 384, ≤ 1024 as 768, above as 1536).
  it.each([
    { dimensions: 384, m: 16, efConstruction: 64 },
    { dimensions: 768, m: 16, efConstruction: 128 },
    { dimensions: 1536, m: 48, efConstruction: 200 },
    { dimensions: 128, m: 16, efConstruction: 64 },
    { dimensions: 512, m: 16, efConstruction: 64 },
    { dimensions: 513, m: 16, efConstruction: 128 },
    { dimensions: 1024, m: 16, efConstruction: 128 },
    { dimensions: 1025, m: 48, efConstruction: 200 },
    { dimensions: 3000, m: 48, efConstruction: 200 },
    { dimensions: 4000, m: 48, efConstruction: 200 },
  ])("$dimensions dims → m $m, ef_construction $efConstruction", ({ dimensions, m, efConstruction }) => {
    expect(guideParameters(dimensions)).toEqual({ m, efConstruction });
    expect(planIndex(table({ dimensions, type: dimensions > 2000 ? "halfvec" : "vector" }), build)).toMatchObject({ m, efConstruction });
  });

  it.each([384, 768, 1536, 3000, 4000])("%i dims: within pgvector's limits (m 2–100, ef_construction 4–1000 and ≥ 2·m)", (dimensions) => {
    const { m, efConstruction } = guideParameters(dimensions);
    expect(m).toBeGreaterThanOrEqual(2);
    expect(m).toBeLessThanOrEqual(100);
    expect(efConstruction).toBeGreaterThanOrEqual(4);
    expect(efConstruction).toBeLessThanOrEqual(1000);
    expect(efConstruction).toBeGreaterThanOrEqual(2 * m);
  });

  it("takes explicit m and ef_construction over the guide", () => {
    expect(planIndex(table({ m: 8, efConstruction: 32 }), build)).toMatchObject({ m: 8, efConstruction: 32 });
  });
});

describe("operator classes and distance operators per metric and type", () => {
  it.each<{ type: VectorType; metric: VectorMetric; opclass: string; operator: string }>([
    { type: "vector", metric: "cosine", opclass: "vector_cosine_ops", operator: "<=>" },
    { type: "vector", metric: "l2", opclass: "vector_l2_ops", operator: "<->" },
    { type: "vector", metric: "inner_product", opclass: "vector_ip_ops", operator: "<#>" },
    { type: "halfvec", metric: "cosine", opclass: "halfvec_cosine_ops", operator: "<=>" },
    { type: "halfvec", metric: "l2", opclass: "halfvec_l2_ops", operator: "<->" },
    { type: "halfvec", metric: "inner_product", opclass: "halfvec_ip_ops", operator: "<#>" },
  ])("$type $metric → $opclass, $operator", ({ type, metric, opclass, operator }) => {
    const entry = planIndex(table({ type, metric }), build);
    expect(entry.opclass).toBe(opclass);
    expect(entry.distanceOperator).toBe(operator);
    expect(entry.createIndexSql).toContain(`USING hnsw ("embedding" ${opclass})`);
  });
});

describe("names", () => {
  it.each([
    { t: "memories", c: "embedding", name: "memories_embedding_hnsw_idx" },
    { t: "documents", c: "vec", name: "documents_vec_hnsw_idx" },
  ])("$t.$c → $name", ({ t, c, name }) => {
    expect(indexName(t, c)).toBe(name);
    expect(planIndex(table({ table: t, column: c }), build).indexName).toBe(name);
  });
});

describe("storage per vector size", () => {
  // TOAST_TUPLE_THRESHOLD is ~2 kB; PLAIN is possible while the row fits an 8 kB page with 1 kB to spare.
  it.each<{ type: VectorType; dimensions: number; bytes: number; storage: string }>([
    { type: "vector", dimensions: 384, bytes: 1544, storage: "default" },
    { type: "vector", dimensions: 506, bytes: 2032, storage: "default" },
    { type: "vector", dimensions: 507, bytes: 2036, storage: "plain" },
    { type: "vector", dimensions: 768, bytes: 3080, storage: "plain" },
    { type: "vector", dimensions: 1536, bytes: 6152, storage: "plain" },
    { type: "vector", dimensions: 1782, bytes: 7136, storage: "plain" },
    { type: "vector", dimensions: 2000, bytes: 8008, storage: "parallel-workers-reloption" },
    { type: "halfvec", dimensions: 768, bytes: 1544, storage: "default" },
    { type: "halfvec", dimensions: 1536, bytes: 3080, storage: "plain" },
    { type: "halfvec", dimensions: 3000, bytes: 6008, storage: "plain" },
    { type: "halfvec", dimensions: 4000, bytes: 8008, storage: "parallel-workers-reloption" },
  ])("$type($dimensions) = $bytes bytes → $storage", ({ type, dimensions, bytes, storage }) => {
    expect(vectorBytes(type, dimensions)).toBe(bytes);
    expect(vectorStorage(bytes)).toBe(storage);
    const entry = planIndex(table({ type, dimensions }), build);
    expect(entry.vectorBytes).toBe(bytes);
    expect(entry.storage).toBe(storage);
    expect(entry.storageSql).toBe(
      storage === "plain"
        ? `ALTER TABLE "memories" ALTER COLUMN "embedding" SET STORAGE PLAIN`
        : storage === "parallel-workers-reloption"
          ? `ALTER TABLE "memories" SET (parallel_workers = 4)`
          : null,
    );
  });

  it("pgvector 0.8 indexes vector up to 2,000 and halfvec up to 4,000 dimensions", () => {
    expect(hnswMaxDimensions).toEqual({ vector: 2000, halfvec: 4000 });
  });
});

describe("DDL text", () => {
  it("CREATE INDEX CONCURRENTLY IF NOT EXISTS with m and ef_construction", () => {
    expect(planIndex(table(), build).createIndexSql).toBe(
      `CREATE INDEX CONCURRENTLY IF NOT EXISTS "memories_embedding_hnsw_idx" ON "memories" USING hnsw ("embedding" vector_cosine_ops) WITH (m = 16, ef_construction = 128)`,
    );
    expect(planIndex(table({ dimensions: 1536, metric: "inner_product" }), build).createIndexSql).toBe(
      `CREATE INDEX CONCURRENTLY IF NOT EXISTS "memories_embedding_hnsw_idx" ON "memories" USING hnsw ("embedding" vector_ip_ops) WITH (m = 48, ef_construction = 200)`,
    );
  });

  it("no table DDL when the application owns the table", () => {
    expect(planIndex(table({ createTable: false }), build).createTableSql).toBeNull();
  });

  it("CREATE TABLE IF NOT EXISTS plus a B-tree per filter column when the stack owns it", () => {
    expect(planIndex(table({ createTable: true, filterColumns: ["tier", "tenant"] }), build).createTableSql).toEqual([
      `CREATE TABLE IF NOT EXISTS "memories" (id bigserial PRIMARY KEY, "tier" text NOT NULL, "tenant" text NOT NULL, "embedding" vector(768) NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`,
      `CREATE INDEX IF NOT EXISTS "memories_tier_btree_idx" ON "memories" ("tier")`,
      `CREATE INDEX IF NOT EXISTS "memories_tenant_btree_idx" ON "memories" ("tenant")`,
    ]);
    expect(planIndex(table({ createTable: true, filterColumns: [], type: "halfvec", dimensions: 3000 }), build).createTableSql).toEqual([
      `CREATE TABLE IF NOT EXISTS "memories" (id bigserial PRIMARY KEY, "embedding" halfvec(3000) NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`,
    ]);
  });

  it("quotes identifiers", () => {
    const entry = planIndex(table({ table: 'we"ird', column: "Emb" }), build);
    expect(entry.createIndexSql).toContain(`ON "we""ird" USING hnsw ("Emb" vector_cosine_ops)`);
    expect(entry.storageSql).toBe(`ALTER TABLE "we""ird" ALTER COLUMN "Emb" SET STORAGE PLAIN`);
  });

  it("carries the build settings and ef_search into every entry", () => {
    const [a, b] = planIndexes([table(), table({ table: "docs", dimensions: 384, efSearch: 100 })], build);
    expect(a.build).toEqual(build);
    expect(b).toMatchObject({ table: "docs", efSearch: 100, storage: "default", storageSql: null, build });
  });

  it("renders the plan as one reviewable SQL file", () => {
    const sql = renderIndexPlanSql(planIndexes([table({ createTable: true })], build));
    expect(sql).toBe(
      [
        "-- HNSW index plan rendered by pgvector-stack; applied by the post-deploy hook (postdeploy/indexes.ts).",
        "",
        "-- memories.embedding: vector(768) cosine, 3080 bytes per vector, storage plain",
        "-- build with maintenance_work_mem = 2GB, max_parallel_maintenance_workers = 4; queries SET LOCAL hnsw.ef_search = 40",
        `CREATE TABLE IF NOT EXISTS "memories" (id bigserial PRIMARY KEY, "tier" text NOT NULL, "embedding" vector(768) NOT NULL, created_at timestamptz NOT NULL DEFAULT now());`,
        `CREATE INDEX IF NOT EXISTS "memories_tier_btree_idx" ON "memories" ("tier");`,
        `ALTER TABLE "memories" ALTER COLUMN "embedding" SET STORAGE PLAIN;`,
        `CREATE INDEX CONCURRENTLY IF NOT EXISTS "memories_embedding_hnsw_idx" ON "memories" USING hnsw ("embedding" vector_cosine_ops) WITH (m = 16, ef_construction = 128);`,
        "",
      ].join("\n"),
    );
    expect(renderIndexPlanSql(planIndexes([table()], build))).toBe(renderIndexPlanSql(planIndexes([table()], build)));
  });
});
