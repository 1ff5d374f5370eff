/**
 * The smoke benchmark against real PostgreSQL 17 + pgvector 0.8 behind PgBouncer 1.24 in transaction pooling
 * (local/runtime): 5,000 × 768 clustered vectors loaded by binary COPY, HNSW built, every scenario run for ~1.5 s.
 * Asserts what must hold on any machine (non-zero throughput, no errors, recall > 0.5, plans on the HNSW index,
 * binary and text parameters agreeing); speed itself is printed, not asserted.
 */
import * as os from "os";
import * as path from "path";
import { Client } from "pg";
import pgvector from "pgvector";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultBenchmark, type BenchmarkSpec } from "../../configs/benchmark";
import { planIndex } from "../../configs/hnsw";
import { stopAll } from "../../local/runtime/registry";
import { renderReportMarkdown, writeReport } from "../../postdeploy/report";
import { runSmoke, SmokeSession, type SmokeResult } from "../../postdeploy/smoke";
import { OperationRunner, settingStatements, statementName } from "../../postdeploy/smoke-pg";
import { benchTable, searchSql, toNodeSql } from "../../postdeploy/smoke-sql";
import { encodeVector } from "../../postdeploy/vector-binary";
import { ClusteredVectors, streams } from "../../postdeploy/vectors";
import { benchPlan, startBenchServers } from "./scratch-servers";

const appPassword = "smoke-app-pw";

let pooledUrl: string;
let directUrl: string;

const plan = benchPlan;

const spec: BenchmarkSpec = {
  ...defaultBenchmark,
  concurrency: 4,
  durationSeconds: 1.5,
  warmupSeconds: 0.5,
  sustainedSeconds: 2,
  rows: 5000,
  recallQueries: 20,
};

beforeAll(async () => {
  ({ pooledUrl, directUrl } = await startBenchServers(appPassword));
});

afterAll(async () => {
  await stopAll();
});

function print(label: string, result: SmokeResult): void {
  const lines = result.scenarios.map(
    (s) =>
      `${s.name.padEnd(9)} ${s.opsPerSec.toFixed(1).padStart(8)} ops/s  p50 ${s.p50Ms.toFixed(2)}  p99 ${s.p99Ms.toFixed(2)}  max ${s.maxMs.toFixed(2)} ms  errors ${s.errors}` +
      `${s.recallAt10 === undefined ? "" : `  recall@10 ${s.recallAt10}`}${s.plan ? `  plan: ${s.plan.shape}${s.plan.generic ? ` | generic: ${s.plan.generic.shape}` : ""}` : ""}`,
  );
  console.log(`${label}: load ${result.load.rows} rows at ${result.load.rowsPerSec} rows/s, HNSW build ${result.indexBuildSeconds} s\n${lines.join("\n")}`);
}

describe("smoke benchmark through PgBouncer", () => {
  it("runs every scenario with no errors, real numbers, recall and HNSW plans", async () => {
    const result = await runSmoke({ pooledUrl, directUrl, plan, spec, scratchTable: "smoke_scratch", queryPoolSize: 200, insertPoolSize: 2000 });
    print("binary, pipelined", result);
    expect(result.load.rows).toBe(5000);
    expect(result.load.rowsPerSec).toBeGreaterThan(0);
    expect(result.indexBuildSeconds).toBeGreaterThan(0);
    expect(result.skipped).toEqual([]);
    expect(result.scenarios.map((s) => s.name)).toEqual(["insert", "search", "hybrid", "mixed", "sustained"]);
    for (const s of result.scenarios) {
      expect(s.errors, `${s.name}: ${s.errorSamples.join("; ")}`).toBe(0);
      expect(s.ops).toBeGreaterThan(0);
      expect(s.opsPerSec).toBeGreaterThan(0);
      expect(s.p50Ms).toBeGreaterThan(0);
      expect(s.p99Ms).toBeGreaterThanOrEqual(s.p50Ms);
      expect(s.maxMs).toBeGreaterThanOrEqual(s.p99Ms);
    }
    const mixed = result.scenarios.find((s) => s.name === "mixed")!;
    expect(Object.keys(mixed.operations).sort()).toEqual(["insert", "search", "update"]);
    for (const name of ["search", "hybrid"] as const) {
      const s = result.scenarios.find((x) => x.name === name)!;
      expect(s.recallAt10).toBeGreaterThan(0.5);
      expect(s.recallAt10).toBeLessThanOrEqual(1);
      expect(s.plan?.usesIndex, s.plan?.shape).toBe(true);
      expect(s.plan?.shape).toContain("Index Scan using smoke_scratch_embedding_hnsw_idx");
      // PostgreSQL 17: the generic plan a named prepared statement may switch to is checked too.
      expect(s.plan?.generic?.usesIndex, s.plan?.generic?.shape).toBe(true);
    }
    // The scratch tables are gone.
    const client = new Client({ connectionString: directUrl });
    await client.connect();
    const left = await client.query("SELECT relname FROM pg_class WHERE relname LIKE 'smoke_scratch%'");
    await client.end();
    expect(left.rows).toEqual([]);
    const dir = writeReport(path.join(os.tmpdir(), "pgstack-smoke-report"), { result });
    console.log(`report: ${dir.html}\n${renderReportMarkdown({ result })}`);
  });

  it("the stored vector source, text vectors and sequential transactions also run clean", async () => {
    const variants = [
      { label: "stored (pgbench's statements)", vectorSource: "stored" as const },
      { label: "text vectors", vectorEncoding: "text" as const },
      { label: "sequential (no pipeline)", pipeline: false },
      { label: "unnamed statements", namedStatements: false },
    ];
    for (const v of variants) {
      const result = await runSmoke({
        pooledUrl,
        directUrl,
        plan,
        spec: { ...spec, rows: 2000 },
        scratchTable: "smoke_variant",
        scenarios: ["search", "hybrid", "mixed"],
        queryPoolSize: 100,
        insertPoolSize: 500,
        ...v,
      });
      print(v.label, result);
      for (const s of result.scenarios) {
        expect(s.errors, `${v.label} ${s.name}: ${s.errorSamples.join("; ")}`).toBe(0);
        expect(s.opsPerSec).toBeGreaterThan(0);
      }
    }
  });

  it("halfvec tables work with binary float16 parameters", async () => {
    const halfPlan = planIndex(
      { table: "memories_half", column: "embedding", dimensions: 768, metric: "cosine", type: "halfvec", filterColumns: ["tier"], efSearch: 40, createTable: true },
      { maintenanceWorkMem: "256MB", maxParallelMaintenanceWorkers: 1 },
    );
    const result = await runSmoke({
      pooledUrl,
      directUrl,
      plan: halfPlan,
      spec: { ...spec, rows: 3000 },
      scratchTable: "smoke_half",
      scenarios: ["insert", "search", "mixed"],
      queryPoolSize: 100,
      insertPoolSize: 500,
    });
    print("halfvec", result);
    expect(result.table.type).toBe("halfvec");
    for (const s of result.scenarios) {
      expect(s.errors, `${s.name}: ${s.errorSamples.join("; ")}`).toBe(0);
      expect(s.opsPerSec).toBeGreaterThan(0);
    }
    const search = result.scenarios.find((s) => s.name === "search")!;
    expect(search.recallAt10).toBeGreaterThan(0.5);
    expect(search.plan?.usesIndex, search.plan?.shape).toBe(true);
  });

  it("binary vector parameters return the same neighbours as pgvector's text form, pipelined or not", async () => {
    const session = await SmokeSession.open({
      pooledUrl,
      directUrl,
      plan,
      spec: { ...spec, rows: 2000, concurrency: 1 },
      scratchTable: "smoke_binary",
      queryPoolSize: 30,
      insertPoolSize: 10,
    });
    const client = new Client({ connectionString: pooledUrl });
    await client.connect();
    try {
      const t = benchTable(plan, "smoke_binary");
      const sql = searchSql(t, "generated");
      const { text } = toNodeSql(sql.template);
      const statement = { name: statementName("test_search", text), text };
      const setLocal = settingStatements(sql.setLocal);
      const pipelined = new OperationRunner(client, true);
      const sequential = new OperationRunner(client, false);
      const queries = new ClusteredVectors({ seed: spec.seed, dimensions: 768 }).take(streams.queries, 30);
      for (const q of queries) {
        const binary = await pipelined.run(setLocal, statement, [encodeVector(q)]);
        const textual = await sequential.run(setLocal, { name: statementName("test_search_text", text), text }, [pgvector.toSql(Array.from(q)) as string]);
        expect(binary.map((r) => r[0])).toHaveLength(10);
        expect(binary.map((r) => r[0])).toEqual(textual.map((r) => r[0]));
        const plain = await client.query(`BEGIN; ${sql.setLocal.join("; ")}`).then(() => client.query({ text, values: [encodeVector(q)], rowMode: "array" }));
        await client.query("COMMIT");
        expect(plain.rows.map((r: unknown[]) => String(r[0]))).toEqual(binary.map((r) => r[0]));
      }
    } finally {
      await client.end();
      await session.close();
    }
  });

  it("recall is measured, not assumed: ef_search 1 returns one candidate, so recall@10 drops to about 0.1", async () => {
    const session = await SmokeSession.open({
      pooledUrl,
      directUrl,
      plan,
      spec: { ...spec, rows: 2000, concurrency: 1 },
      scratchTable: "smoke_recall",
      queryPoolSize: 20,
      insertPoolSize: 10,
    });
    try {
      const narrow = searchSql({ ...session.table, efSearch: 1 }, "generated");
      const recall = await session.recall(narrow);
      console.log(`recall@10 at ef_search 1: ${recall}`);
      expect(recall).toBeGreaterThan(0);
      expect(recall).toBeLessThan(0.5);
      expect(await session.recall(searchSql(session.table, "generated"))).toBeGreaterThan(0.9);
    } finally {
      await session.close();
    }
  });

  it("creates the plan's table when told, then benchmarks it as a given table (no load, its own filter values)", async () => {
    const given = planIndex(
      { table: "memories_given", column: "embedding", dimensions: 768, metric: "cosine", type: "vector", filterColumns: ["tier"], efSearch: 40, createTable: true },
      { maintenanceWorkMem: "256MB", maxParallelMaintenanceWorkers: 1 },
    );
    const short = { ...spec, rows: 2000, durationSeconds: 0.5, warmupSeconds: 0.2 };
    const created = await runSmoke({ pooledUrl, directUrl, plan: given, spec: short, createTables: true, scenarios: ["search"], queryPoolSize: 50, insertPoolSize: 50 });
    expect(created.load.rows).toBe(2000);
    expect(created.indexBuildSeconds).toBeGreaterThan(0);
    const reused = await runSmoke({ pooledUrl, directUrl, plan: given, spec: short, scenarios: ["search", "hybrid", "insert"], queryPoolSize: 50, insertPoolSize: 50 });
    print("given table", reused);
    expect(reused.load.rows).toBe(0);
    expect(reused.indexBuildSeconds).toBeNull();
    expect(reused.table.rows).toBeGreaterThanOrEqual(2000);
    for (const s of reused.scenarios) expect(s.errors, s.errorSamples.join("; ")).toBe(0);
    const client = new Client({ connectionString: directUrl });
    await client.connect();
    try {
      // The pool table was dropped; the application's table stays (with the rows the insert scenario added).
      const tables = await client.query("SELECT relname FROM pg_class WHERE relname LIKE 'memories_given%' AND relkind = 'r' ORDER BY 1");
      expect(tables.rows.map((r: { relname: string }) => r.relname)).toEqual(["memories_given"]);
      await client.query("DROP TABLE memories_given");
    } finally {
      await client.end();
    }
    const missing = await runSmoke({ pooledUrl, directUrl, plan: given, spec: short }).catch((e: Error) => e);
    expect(String(missing)).toMatch(/has no index memories_given_embedding_hnsw_idx/);
  });

  it("masks the password in a connection error", async () => {
    const bad = pooledUrl.replace(appPassword, "wrong-secret-pw");
    const error = await runSmoke({ pooledUrl: bad, directUrl: directUrl.replace(appPassword, "wrong-secret-pw"), plan, spec, scratchTable: "smoke_nope" }).catch((e: Error) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).not.toContain("wrong-secret-pw");
    expect((error as Error).message).toContain("***");
  });
});
