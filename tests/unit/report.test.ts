import { describe, expect, it } from "vitest";
import { comparisonRow } from "../../postdeploy/pgbench-scripts";
import { num, renderReportHtml, renderReportJson, renderReportMarkdown, type ReportInput } from "../../postdeploy/report";
import type { ScenarioResult, SmokeResult } from "../../postdeploy/smoke";
import { tlsCostRow, type TlsCostReport, type TlsLegRun } from "../../postdeploy/tls-cost";

function scenario(name: ScenarioResult["name"], opsPerSec: number, target: number, extra: Partial<ScenarioResult> = {}): ScenarioResult {
  const pass = opsPerSec >= target;
  return {
    name,
    seconds: 15,
    ops: Math.round(opsPerSec * 15),
    opsPerSec,
    target: { opsPerSec: target, p99Ms: 200 },
    p50Ms: 1.25,
    p95Ms: 3.5,
    p99Ms: 7.75,
    maxMs: 21.5,
    meanMs: 1.6,
    errors: 0,
    errorSamples: [],
    operations: { [name === "mixed" || name === "sustained" ? "search" : name === "hybrid" ? "hybrid" : name]: Math.round(opsPerSec * 15) },
    clientCpuMsPerOp: 0.12,
    clientCpuCores: 0.3,
    vectorSource: "generated",
    pass,
    failures: pass ? [] : [`${opsPerSec} ops/s is below the target ${target} ops/s`],
    ...extra,
  };
}

const result: SmokeResult = {
  machine: { cores: 2, memoryBytes: 24 * 2 ** 30 },
  table: { name: "memories", column: "embedding", type: "vector", dimensions: 768, metric: "cosine", indexName: "memories_embedding_hnsw_idx", efSearch: 40, rows: 100000, scratch: false },
  load: { rows: 100000, rowsPerSec: 21987.4, seconds: 4.548 },
  indexBuildSeconds: 37.8,
  run: { concurrency: 8, durationSeconds: 15, warmupSeconds: 5, sustainedSeconds: 60, seed: 42, vectorSource: "generated", vectorEncoding: "binary", pipeline: true, namedStatements: true },
  scenarios: [
    scenario("insert", 612.3, 1000),
    scenario("search", 1834.5, 800, { recallAt10: 0.9851, plan: { shape: "Limit > Index Scan using memories_embedding_hnsw_idx", usesIndex: true } }),
    scenario("hybrid", 1569, 600, { recallAt10: 0.994, plan: { shape: "Sort > CTE Scan on r; CTE r: Limit > Index Scan using memories_embedding_hnsw_idx", usesIndex: true } }),
    scenario("mixed", 917.2, 1200),
    scenario("sustained", 737, 1200),
  ],
  skipped: [],
  pass: false,
};

const input: ReportInput = {
  result,
  settings: { work_mem: "16MB", shared_buffers: "6GB", huge_pages_status: "on" },
  comparison: [comparisonRow({ scenario: "search", concurrency: 8, seconds: 15, nodeOpsPerSec: 1790, pgbenchTps: 1900, nodeGeneratedOpsPerSec: 1829, pgbenchFailed: 0, nodeErrors: 0 })],
};

describe("report", () => {
  it("Markdown holds the numbers, targets, verdicts and reasons", () => {
    const md = renderReportMarkdown(input);
    expect(md).toMatch(/^## pgvector smoke benchmark: FAIL\n/);
    expect(md).toContain("Machine: 2 cores, 24.0 GiB RAM");
    expect(md).toContain("loaded 100,000 rows at 21,987 rows/s");
    expect(md).toContain("HNSW build 37.8 s");
    expect(md).toContain("huge pages: on");
    expect(md).toContain("| search | 1,834.5 | ≥ 800 | 1.25 | 3.50 | 7.75 (≤ 200) | 21.50 | 0 | 0.985 | Limit > Index Scan using memories_embedding_hnsw_idx | pass |");
    expect(md).toContain("| insert | 612.3 | ≥ 1,000 |");
    expect(md).toContain("**FAIL** |");
    expect(md).toContain("- insert: 612.3 ops/s is below the target 1000 ops/s");
    expect(md).toContain("| shared_buffers | 6GB |");
    expect(md).toContain("| search | 1,790.0 | 1,900.0 | 94.2 % | 1,829.0 |");
  });

  it("HTML is one self-contained page with charts, machine, settings and pass/fail", () => {
    const html = renderReportHtml(input);
    expect(html.startsWith("<!DOCTYPE html>")).toBe(true);
    expect(html).not.toMatch(/<script|<link|src="http|href="http/);
    expect((html.match(/<svg /g) ?? []).length).toBe(2);
    expect(html).toContain("2 cores, 24.0 GiB RAM");
    expect(html).toContain("<dt>Huge pages</dt><dd>on</dd>");
    expect(html).toContain("<dt>HNSW build</dt><dd>37.8 s</dd>");
    expect(html).toContain("<td>work_mem</td><td>16MB</td>");
    expect(html).toContain("1,834.5");
    expect(html).toContain("Limit &gt; Index Scan using memories_embedding_hnsw_idx");
    expect(html).toContain('<span class="fail">FAIL</span>');
    expect(html).toContain("p99 target 200 ms");
  });

  it("JSON has sorted keys and round-trips the result", () => {
    const json = renderReportJson(input);
    const doc = JSON.parse(json) as { result: SmokeResult; pass: boolean; indexBuildSeconds: number };
    expect(doc.result).toEqual(result);
    expect(doc.pass).toBe(false);
    expect(Object.keys(doc)).toEqual([...Object.keys(doc)].sort());
    expect(json.endsWith("\n")).toBe(true);
  });

  it("is deterministic: same input, same bytes, whatever the key order", () => {
    const reordered: ReportInput = { ...input, settings: { huge_pages_status: "on", shared_buffers: "6GB", work_mem: "16MB" } };
    expect(renderReportJson(reordered)).toBe(renderReportJson(input));
    expect(renderReportMarkdown(reordered)).toBe(renderReportMarkdown(input));
    expect(renderReportHtml(reordered)).toBe(renderReportHtml(input));
  });

  it("shows a generic plan that differs and flags a plan without the HNSW index", () => {
    const hybrid = scenario("hybrid", 700, 600, {
      plan: {
        shape: "Sort > CTE Scan on r; CTE r: Limit > Index Scan using memories_embedding_hnsw_idx",
        usesIndex: false,
        generic: { shape: "Sort > CTE Scan on r; CTE r: Limit > Sort > Bitmap Heap Scan on memories", usesIndex: false },
      },
      pass: false,
      failures: ["the plan does not use the HNSW index memories_embedding_hnsw_idx"],
    });
    const md = renderReportMarkdown({ result: { ...result, scenarios: [hybrid] } });
    expect(md).toContain("(generic plan: Sort > CTE Scan on r; CTE r: Limit > Sort > Bitmap Heap Scan on memories) — NOT using the HNSW index");
    expect(md).toContain("- hybrid: the plan does not use the HNSW index memories_embedding_hnsw_idx");
  });

  it("escapes what it prints and accepts a passed-in build time", () => {
    const html = renderReportHtml({ ...input, title: "<b>x</b>", indexBuildSeconds: 250, hugePages: "off" });
    expect(html).toContain("&lt;b&gt;x&lt;/b&gt;");
    expect(html).toContain("<dd>250.0 s</dd>");
    expect(html).toContain("<dt>Huge pages</dt><dd>off</dd>");
  });

  describe("TLS cost", () => {
    const leg = (...ops: number[]): TlsLegRun[] => ops.map((o) => ({ opsPerSec: o, p50Ms: 2.5, p99Ms: 11.25, errors: 0 }));
    const tlsCost: TlsCostReport = {
      rounds: 3,
      seconds: 15,
      concurrency: 8,
      tlsMode: "verify-full (the cluster's CA)",
      rows: [
        tlsCostRow({ scenario: "search", client: "Node (smoke runners)", plain: leg(1600, 1650, 1620), tls: leg(1550, 1530, 1580) }),
        tlsCostRow({ scenario: "insert", client: "Node (smoke runners)", plain: leg(600, 610, 605), tls: leg(520, 530, 525) }),
        tlsCostRow({
          scenario: "reconnect",
          client: "pgbench -C (SELECT 1)",
          plain: [{ opsPerSec: 700, p50Ms: null, p99Ms: null, errors: 0, connectionMs: 8.5 }],
          tls: [{ opsPerSec: 500, p50Ms: null, p99Ms: null, errors: 0, connectionMs: 12.25 }],
        }),
      ],
      evidence: [
        { leg: "plain", client: "Node (smoke runners)", applicationName: "pgstack-tls-cost-plain", clients: 8, tls: [""] },
        { leg: "tls", client: "Node (smoke runners)", applicationName: "pgstack-tls-cost-tls", clients: 8, tls: ["TLSv1.3/TLS_AES_256_GCM_SHA384"] },
      ],
      goal: 0.9,
      meetsGoal: false,
      reconnectCommand: "pgbench -C -n -c 8 -j 8 -T 15 -f select1.sql -h 127.0.0.1 -p 40002 -U app app",
    };

    it("Markdown: a row per scenario with both legs, the ratio, the rounds and the verdict; the legs as SHOW CLIENTS saw them", () => {
      const md = renderReportMarkdown({ ...input, tlsCost });
      expect(md).toContain("**TLS cost through PgBouncer: goal MISSED** (plain text (sslmode=disable) against TLS (verify-full (the cluster's CA)) through the same PgBouncer, table and 8 connections; each leg the median of 3 alternating rounds of 15 s; goal: with TLS at least 90 % of plain text in steady state)");
      expect(md).toContain("| search | Node (smoke runners) | 1,620.0 | 1,550.0 | 95.7 % | 2.50 / 11.25 | 2.50 / 11.25 | 0 / 0 | 1,600 · 1,650 · 1,620 | 1,550 · 1,530 · 1,580 | met |");
      expect(md).toContain("| insert | Node (smoke runners) | 605.0 | 525.0 | 86.8 % |");
      expect(md).toContain("| **MISSED** |");
      expect(md).toContain("| reconnect | pgbench -C (SELECT 1) | 700.0 tps | 500.0 tps | 71.4 % | connect 8.50 | connect 12.25 | 0 / 0 | 700 | 500 | handshake cost, not judged |");
      expect(md).toContain("Node (smoke runners), plain text: 8 connections (pgstack-tls-cost-plain), none with TLS; Node (smoke runners), TLS: 8 connections (pgstack-tls-cost-tls), TLS TLSv1.3/TLS_AES_256_GCM_SHA384.");
      expect(md).toContain("`PGSSLMODE=disable|verify-full pgbench -C -n -c 8 -j 8 -T 15 -f select1.sql");
      expect(renderReportMarkdown(input)).not.toContain("TLS cost");
    });

    it("HTML and JSON carry it too; without it JSON says null", () => {
      const html = renderReportHtml({ ...input, tlsCost });
      expect(html).toContain('<h2>TLS cost through PgBouncer: <span class="fail">goal missed</span></h2>');
      expect(html).toContain('<tr class="bad"><td>insert</td>');
      expect(html).toContain("<td>95.7 %</td>");
      expect(html).toContain("<li>Node (smoke runners), TLS: 8 connections (pgstack-tls-cost-tls), TLS TLSv1.3/TLS_AES_256_GCM_SHA384</li>");
      expect(html).not.toMatch(/<script/);
      expect((JSON.parse(renderReportJson({ ...input, tlsCost })) as { tlsCost: TlsCostReport }).tlsCost).toEqual(tlsCost);
      expect((JSON.parse(renderReportJson(input)) as { tlsCost: unknown }).tlsCost).toBeNull();
    });
  });

  it.each([
    [1234567.891, 1, "1,234,567.9"],
    [0, 2, "0.00"],
    [-1500, 0, "-1,500"],
    [-0.001, 1, "0.0"],
  ])("num(%s, %s) = %s", (v, d, s) => {
    expect(num(v, d)).toBe(s);
  });
});
