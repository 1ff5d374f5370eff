import { describe, expect, it } from "vitest";
import { guideTargets } from "../../configs/benchmark";
import { planIndex } from "../../configs/hnsw";
import { LatencyRecorder } from "../../postdeploy/latency";
import { copyBinaryHeader, copyBinaryRow, copyBinaryTrailer } from "../../postdeploy/load";
import { statementName } from "../../postdeploy/smoke-pg";
import { judgeScenario, recallAtK, targetFor, type Measured } from "../../postdeploy/smoke-judge";
import {
  benchTable,
  efSearchSetting,
  exactSql,
  hybridSql,
  insertSql,
  planShape,
  searchSql,
  toNodeSql,
  toPgbenchSql,
  updateSql,
} from "../../postdeploy/smoke-sql";

const plan = planIndex(
  {
    table: "memories",
    column: "embedding",
    dimensions: 768,
    metric: "cosine",
    type: "vector",
    filterColumns: ["tier"],
    efSearch: 40,
    createTable: true,
  },
  { maintenanceWorkMem: "1GB", maxParallelMaintenanceWorkers: 2 },
);

describe("HDR latency percentiles", () => {
  it("match known data within the histogram's 3 significant digits", () => {
    const r = new LatencyRecorder();
    for (let ms = 1; ms <= 1000; ms++) r.recordMs(ms);
    const s = r.summary();
    expect(s.count).toBe(1000);
    expect(Math.abs(s.p50Ms - 500) / 500).toBeLessThan(0.001);
    expect(Math.abs(s.p95Ms - 950) / 950).toBeLessThan(0.001);
    expect(Math.abs(s.p99Ms - 990) / 990).toBeLessThan(0.001);
    expect(Math.abs(s.maxMs - 1000) / 1000).toBeLessThan(0.001);
  });

  it("keeps sub-millisecond values at microsecond resolution and merges workers", () => {
    const a = new LatencyRecorder();
    const b = new LatencyRecorder();
    for (let i = 0; i < 99; i++) a.recordMs(0.25);
    b.recordMs(40);
    a.add(b);
    const s = a.summary();
    expect(s.p50Ms).toBeCloseTo(0.25, 3);
    expect(s.p99Ms).toBeCloseTo(0.25, 3);
    expect(s.maxMs).toBeCloseTo(40, 1);
  });

  it("summarizes an empty histogram as zeros", () => {
    expect(new LatencyRecorder().summary()).toEqual({ count: 0, p50Ms: 0, p95Ms: 0, p99Ms: 0, maxMs: 0, meanMs: 0 });
  });
});

describe("recall@k", () => {
  const n = (id: number, distance: number) => ({ id: String(id), distance });
  const truth = Array.from({ length: 10 }, (_, i) => n(i, i / 10));

  it.each([
    ["all found", truth, 1],
    ["none found", Array.from({ length: 10 }, (_, i) => n(100 + i, 2 + i)), 0],
    ["7 of 10", [...truth.slice(0, 7), n(50, 1.5), n(51, 1.6), n(52, 1.7)], 0.7],
    ["a tie at the k-th distance counts", [...truth.slice(0, 9), n(99, 0.9)], 1],
    ["fewer returned than k", truth.slice(0, 5), 0.5],
  ])("%s", (_, found, expected) => {
    expect(recallAtK(found, truth, 10)).toBeCloseTo(expected, 10);
  });

  it("uses what exists when the truth has fewer than k rows (a rare filter value)", () => {
    expect(recallAtK(truth.slice(0, 3), truth.slice(0, 3), 10)).toBe(1);
    expect(recallAtK([], [], 10)).toBe(1);
  });
});

describe("pass/fail judgement", () => {
  const target = targetFor("search", guideTargets);
  const ok: Measured = { opsPerSec: 900, p99Ms: 50, errors: 0, usesIndex: true, indexName: "i" };
  it.each<[string, Measured, boolean, RegExp | null]>([
    ["meets both", ok, true, null],
    ["exactly the target", { ...ok, opsPerSec: 800, p99Ms: 200 }, true, null],
    ["too slow", { ...ok, opsPerSec: 799.9 }, false, /799.9 ops\/s is below the target 800/],
    ["p99 too high", { ...ok, p99Ms: 200.5 }, false, /p99 200.5 ms is above the target 200/],
    ["errors", { ...ok, errors: 2 }, false, /2 operations failed/],
    ["plan without the index", { ...ok, usesIndex: false }, false, /does not use the HNSW index i/],
    ["no plan checked (inserts)", { opsPerSec: 900, p99Ms: 5, errors: 0 }, true, null],
    ["NaN throughput fails", { ...ok, opsPerSec: NaN }, false, /below the target/],
  ])("%s", (_, measured, pass, reason) => {
    const j = judgeScenario(measured, target);
    expect(j.pass).toBe(pass);
    if (reason) expect(j.failures.join("\n")).toMatch(reason);
    else expect(j.failures).toEqual([]);
  });

  it.each([
    ["insert", 1000],
    ["search", 800],
    ["hybrid", 600],
    ["mixed", 1200],
    ["sustained", 1200],
  ] as const)("target of %s is the guide's %s ops/s and p99 200 ms", (name, ops) => {
    expect(targetFor(name, guideTargets)).toEqual({ opsPerSec: ops, p99Ms: 200 });
  });
});

describe("benchmark SQL", () => {
  const t = benchTable(plan);

  it("searches with ORDER BY distance LIMIT 10 and ef_search as SET LOCAL", () => {
    const s = searchSql(t, "generated");
    expect(toNodeSql(s.template)).toEqual({
      text: 'SELECT id, "embedding" <=> $1::vector AS distance FROM "memories" ORDER BY distance LIMIT 10',
      params: ["vector"],
    });
    expect(s.setLocal).toEqual(["SET LOCAL hnsw.ef_search = 40"]);
  });

  it("re-sorts the relaxed-order hybrid query outside a MATERIALIZED CTE", () => {
    const h = hybridSql(t, "generated")!;
    const { text, params } = toNodeSql(h.template);
    expect(text).toContain('WITH r AS MATERIALIZED (SELECT id, "embedding" <=> $1::vector AS distance FROM "memories" WHERE "tier" = $2 ORDER BY distance LIMIT 10)');
    expect(text).toMatch(/ORDER BY distance \+ 0$/);
    expect(params).toEqual(["vector", "filter"]);
    expect(h.setLocal).toContain("SET LOCAL hnsw.iterative_scan = relaxed_order");
    expect(hybridSql({ ...t, filterColumns: [] }, "generated")).toBeNull();
  });

  it("renders the stored form identically for Node ($n) and pgbench (:name)", () => {
    const s = searchSql(t, "stored");
    expect(toPgbenchSql(s.template)).toBe(
      'SELECT id, "embedding" <=> (SELECT "embedding" FROM "memories_pool" WHERE id = :qid) AS distance FROM "memories" ORDER BY distance LIMIT 10',
    );
    expect(toNodeSql(s.template).text).toBe(toPgbenchSql(s.template).replace(":qid", "$1"));
    const h = toPgbenchSql(hybridSql(t, "stored")!.template);
    expect(h).toContain(`"tier" = (ARRAY['working', 'warm', 'cold', 'archive', 'frozen'])[:tier]`);
    expect(toPgbenchSql(insertSql(t, "stored").template)).toBe(
      `INSERT INTO "memories" ("tier", "embedding") VALUES ((ARRAY['working', 'warm', 'cold', 'archive', 'frozen'])[:tier], (SELECT "embedding" FROM "memories_pool" WHERE id = :pool_id))`,
    );
    expect(toNodeSql(updateSql(t, "generated").template)).toEqual({
      text: 'UPDATE "memories" SET "embedding" = $1::vector WHERE id = $2',
      params: ["vector", "row_id"],
    });
  });

  it("uses a scratch table's own index name and pool", () => {
    const s = benchTable(plan, "smoke_scratch");
    expect(s.indexName).toBe("smoke_scratch_embedding_hnsw_idx");
    expect(s.poolTable).toBe("smoke_scratch_pool");
  });

  it("turns index scans off for ground truth", () => {
    expect(exactSql(searchSql(t, "generated")).setLocal).toEqual(["SET LOCAL enable_indexscan = off"]);
  });

  it.each([0, 1001, 1.5])("rejects ef_search %s", (ef) => {
    expect(() => efSearchSetting(ef)).toThrow(/1 to 1000/);
  });
});

describe("plan shape", () => {
  it("names the HNSW index of a search plan", () => {
    const explain = [{ Plan: { "Node Type": "Limit", Plans: [{ "Node Type": "Index Scan", "Index Name": "memories_embedding_hnsw_idx", "Relation Name": "memories" }] } }];
    expect(planShape(explain, "memories_embedding_hnsw_idx")).toEqual({
      shape: "Limit > Index Scan using memories_embedding_hnsw_idx",
      usesIndex: true,
    });
  });

  it("sees a bitmap + sort plan as not using it", () => {
    const explain = JSON.stringify([
      {
        Plan: {
          "Node Type": "Limit",
          Plans: [
            {
              "Node Type": "Sort",
              Plans: [
                {
                  "Node Type": "Bitmap Heap Scan",
                  "Relation Name": "memories",
                  Plans: [{ "Node Type": "Bitmap Index Scan", "Index Name": "memories_tier_btree_idx" }],
                },
              ],
            },
          ],
        },
      },
    ]);
    const p = planShape(explain, "memories_embedding_hnsw_idx");
    expect(p.usesIndex).toBe(false);
    expect(p.shape).toBe("Limit > Sort > Bitmap Heap Scan on memories > Bitmap Index Scan using memories_tier_btree_idx");
  });

  it("puts a CTE after the main chain, under its name", () => {
    const explain = [
      {
        Plan: {
          "Node Type": "Sort",
          Plans: [
            {
              "Node Type": "Limit",
              "Parent Relationship": "InitPlan",
              "Subplan Name": "CTE r",
              Plans: [{ "Node Type": "Index Scan", "Parent Relationship": "Outer", "Index Name": "memories_embedding_hnsw_idx" }],
            },
            { "Node Type": "CTE Scan", "Parent Relationship": "Outer", "CTE Name": "r" },
          ],
        },
      },
    ];
    expect(planShape(explain, "memories_embedding_hnsw_idx")).toEqual({
      shape: "Sort > CTE Scan on r; CTE r: Limit > Index Scan using memories_embedding_hnsw_idx",
      usesIndex: true,
    });
  });

  it("rejects output without a plan", () => {
    expect(() => planShape([{}], "x")).toThrow(/no Plan/);
  });
});

describe("COPY BINARY encoding", () => {
  it("writes the signature, field counts, lengths and the trailer", () => {
    expect(copyBinaryHeader.toString("hex")).toBe("5047434f50590aff0d0a00" + "00000000" + "00000000");
    expect(copyBinaryRow(["ab", null, Buffer.from([1, 2])]).toString("hex")).toBe(
      "0003" + "00000002" + "6162" + "ffffffff" + "00000002" + "0102",
    );
    expect(copyBinaryTrailer.toString("hex")).toBe("ffff");
  });
});

describe("prepared statements", () => {
  it("names statements stably by text", () => {
    expect(statementName("smoke_search", "SELECT 1")).toBe(statementName("smoke_search", "SELECT 1"));
    expect(statementName("smoke_search", "SELECT 1")).not.toBe(statementName("smoke_search", "SELECT 2"));
  });
});
