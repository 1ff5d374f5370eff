/**
 * Why the plan stores 768-dim vectors PLAIN: with pgvector's default (EXTERNAL) storage a 3,080-byte vector goes to
 * the TOAST table, the heap holds only pointers, and PostgreSQL plans the HNSW build with 0 parallel workers. PLAIN
 * (set before loading) keeps vectors in the heap and the build parallel; on a table that is already TOASTed the
 * `parallel_workers` reloption restores the parallel build. Small on purpose (a few thousand rows) so CI stays fast:
 * the structural facts are asserted, the timings printed.
 */
import { Client } from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type IndexPlanEntry, planIndex } from "../../configs/hnsw";
import { silentProgress } from "../../configs/progress";
import type { PostgresServer } from "../../local/runtime/postgres";
import { stopAll } from "../../local/runtime/registry";
import { type IndexResult, ensureIndexes } from "../../postdeploy/indexes";
import { startScratchPostgres } from "./scratch-servers";

/**
 * 4,000 × 3,080-byte vectors: PLAIN, two rows a page, is ~16 MB of heap, past min_parallel_table_scan_size (8 MB),
 * so PostgreSQL plans one worker; TOASTed, the heap is a few hundred kB and it plans none.
 */
const rows = 4000;
const build = { maintenanceWorkMem: "256MB", maxParallelMaintenanceWorkers: 2 };

let server: PostgresServer;
let url: string;

beforeAll(async () => {
  server = await startScratchPostgres({ sharedBuffers: "256MB", maxParallelMaintenanceWorkers: 2 });
  url = server.url();
});

afterAll(async () => {
  await stopAll();
});

function entryFor(table: string): IndexPlanEntry {
  return planIndex(
    { table, column: "embedding", dimensions: 768, metric: "cosine", type: "vector", filterColumns: ["tier"], efSearch: 40, createTable: true },
    build,
  );
}

async function withClient<T>(fn: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

interface Sizes {
  attstorage: string;
  heapBytes: number;
  toastBytes: number;
}

async function load(entry: IndexPlanEntry, plain: boolean): Promise<{ loadMs: number; sizes: Sizes }> {
  return withClient(async (c) => {
    await c.query("CREATE EXTENSION IF NOT EXISTS vector");
    for (const sql of entry.createTableSql ?? []) await c.query(sql);
    if (plain) await c.query(entry.storageSql!);
    const started = performance.now();
    await c.query(
      `INSERT INTO "${entry.table}" (tier, embedding)
       SELECT CASE WHEN g % 5 = 0 THEN 'hot' ELSE 'cold' END,
              (SELECT array_agg(random()::real) FROM generate_series(1, 768) WHERE g > 0)::vector(768)
         FROM generate_series(1, ${rows}) AS g`,
    );
    const loadMs = performance.now() - started;
    await c.query(`VACUUM ANALYZE "${entry.table}"`);
    const { rows: found } = await c.query<{ attstorage: string; heap: string; toast: string }>(
      `SELECT a.attstorage::text AS attstorage, pg_relation_size(c.oid)::text AS heap,
              coalesce(pg_relation_size(NULLIF(c.reltoastrelid, 0)), 0)::text AS toast
         FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'embedding'
        WHERE c.oid = to_regclass($1)`,
      [`"${entry.table}"`],
    );
    return { loadMs, sizes: { attstorage: found[0]!.attstorage, heapBytes: Number(found[0]!.heap), toastBytes: Number(found[0]!.toast) } };
  });
}

const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

describe("768-dim vectors: PLAIN vs default (EXTERNAL, TOASTed) storage for the HNSW build", () => {
  it("TOASTed vectors build serially; PLAIN and the parallel_workers reloption build in parallel", async () => {
    const toasted = entryFor("store_default");
    const plain = entryFor("store_plain");
    const reloption = entryFor("store_reloption");
    const loads = {
      default: await load(toasted, false),
      plain: await load(plain, true),
      reloption: await load(reloption, false),
    };

    // The storage facts behind the plan's choice.
    expect(loads.default.sizes.attstorage).toBe("e");
    expect(loads.default.sizes.toastBytes).toBeGreaterThan(rows * 3000);
    expect(loads.default.sizes.heapBytes).toBeLessThan(1024 * 1024);
    expect(loads.plain.sizes.attstorage).toBe("p");
    expect(loads.plain.sizes.toastBytes).toBe(0);
    expect(loads.plain.sizes.heapBytes).toBeGreaterThan(8 * 1024 * 1024);

    // Serial vs parallel: the application owns the first two (createTables off: storage untouched), the third is ours.
    const serial = (await ensureIndexes([toasted, plain], { directUrl: url, progress: silentProgress })).results;
    const fixed = (await ensureIndexes([reloption], { directUrl: url, progress: silentProgress, createTables: true })).results[0]!;
    const [defaultBuild, plainBuild] = serial as [IndexResult, IndexResult];

    for (const result of [defaultBuild, plainBuild, fixed]) expect(result.status).toBe("created");
    expect(defaultBuild.parallelWorkers?.launched).toBe(0);
    expect(defaultBuild.messages.join("\n")).toMatch(/plans the store_default_embedding_hnsw_idx build serially/);
    expect(plainBuild.parallelWorkers?.launched).toBeGreaterThanOrEqual(1);
    expect(fixed.storage).toMatchObject({ planned: "plain", applied: "parallel-workers-reloption", sql: `ALTER TABLE "store_reloption" SET (parallel_workers = 2)` });
    expect(fixed.parallelWorkers?.launched).toBeGreaterThanOrEqual(1);

    const line = (name: string, load: { loadMs: number; sizes: Sizes }, result: IndexResult): string =>
      `${name.padEnd(28)} heap ${mb(load.sizes.heapBytes).padStart(8)}  toast ${mb(load.sizes.toastBytes).padStart(8)}  load ${load.loadMs.toFixed(0).padStart(5)} ms  ` +
      `build ${result.buildMs?.toFixed(0).padStart(5)} ms  workers planned ${result.parallelWorkers?.planned ?? "?"} launched ${result.parallelWorkers?.launched ?? "?"}`;
    console.log(
      [
        `HNSW build, ${rows} × vector(768), m ${plain.m}, ef_construction ${plain.efConstruction}, maintenance_work_mem ${build.maintenanceWorkMem}:`,
        line("default (EXTERNAL, TOASTed)", loads.default, defaultBuild),
        line("PLAIN before loading", loads.plain, plainBuild),
        line("TOASTed + parallel_workers", loads.reloption, fixed),
      ].join("\n"),
    );
  });
});
