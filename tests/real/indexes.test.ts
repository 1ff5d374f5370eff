/**
 * ensureIndexes against a real PostgreSQL 17 + pgvector 0.8 (local/runtime): create and idempotence, repair of an
 * INVALID index from a cancelled concurrent build, mismatch reporting and the no-downtime rebuild, table-missing,
 * failed and aborted builds, and the validity check after every build.
 */
import { Client } from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type IndexPlanEntry, type VectorTableSpec, planIndex } from "../../configs/hnsw";
import type { Progress } from "../../configs/progress";
import type { PostgresServer } from "../../local/runtime/postgres";
import { stopAll } from "../../local/runtime/registry";
import { type EnsureIndexesOptions, IndexBuildError, ensureIndexes } from "../../postdeploy/indexes";
import { startScratchPostgres } from "./scratch-servers";

/** Rows per test table: enough for a build of a few seconds that can be caught and cancelled mid-way. */
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

function entryFor(table: string, overrides: Partial<VectorTableSpec> = {}): IndexPlanEntry {
  return planIndex(
    { table, column: "embedding", dimensions: 768, metric: "cosine", type: "vector", filterColumns: ["tier"], efSearch: 40, createTable: true, ...overrides },
    build,
  );
}

class RecordingProgress implements Progress {
  readonly steps: string[] = [];
  readonly advances: { fraction: number; detail?: string }[] = [];
  readonly warnings: string[] = [];
  constructor(private readonly onAdvance?: (fraction: number, detail?: string) => void) {}
  step(message: string): void {
    this.steps.push(message);
  }
  advance(fraction: number, detail?: string): void {
    this.advances.push({ fraction, detail });
    this.onAdvance?.(fraction, detail);
  }
  warn(message: string): void {
    this.warnings.push(message);
  }
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

function run(plan: readonly IndexPlanEntry[], opts: Partial<EnsureIndexesOptions> = {}, progress: Progress = new RecordingProgress()) {
  return ensureIndexes(plan, { directUrl: url, progress, pollIntervalMs: 50, ...opts });
}

/** The plan's own table DDL and storage, then `count` random rows (generated server-side: no client round trips). */
async function createLoadedTable(entry: IndexPlanEntry, count = rows, storage = true): Promise<void> {
  await withClient(async (c) => {
    await c.query("CREATE EXTENSION IF NOT EXISTS vector");
    for (const sql of entry.createTableSql ?? []) await c.query(sql);
    if (storage && entry.storageSql) await c.query(entry.storageSql);
    await c.query(
      `INSERT INTO "${entry.table}" (tier, ${entry.column})
       SELECT CASE WHEN g % 5 = 0 THEN 'hot' ELSE 'cold' END,
              (SELECT array_agg(random()::real) FROM generate_series(1, ${entry.dimensions}) WHERE g > 0)::${entry.type}(${entry.dimensions})
         FROM generate_series(1, ${count}) AS g`,
    );
    await c.query(`ANALYZE "${entry.table}"`);
  });
}

interface IndexRow {
  oid: string;
  valid: boolean;
  reloptions: string[] | null;
}

async function indexRow(name: string): Promise<IndexRow | null> {
  return withClient(async (c) => {
    const { rows: found } = await c.query<IndexRow>(
      `SELECT c.oid::text AS oid, i.indisvalid AS valid, c.reloptions
         FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid WHERE c.relname = $1`,
      [name],
    );
    return found[0] ?? null;
  });
}

describe("ensureIndexes on PostgreSQL 17 + pgvector", () => {
  it("creates the table, its storage and the index; a second run changes nothing and says so", async () => {
    const entry = entryFor("fresh");
    const first = await run([entry], { createTables: true });
    expect(first.extensionVersion).toMatch(/^0\.8\./);
    expect(first.serverVersion).toMatch(/^17\./);
    const [created] = first.results;
    expect(created).toMatchObject({ status: "created", indexName: "fresh_embedding_hnsw_idx", tableCreated: true });
    expect(created.storage).toMatchObject({ planned: "plain", applied: "plain", toastBytes: 0 });
    expect(created.buildMs).toBeGreaterThan(0);
    const before = await indexRow("fresh_embedding_hnsw_idx");
    expect(before).toMatchObject({ valid: true, reloptions: ["m=16", "ef_construction=128"] });
    const storage = await withClient(async (c) =>
      (await c.query<{ attstorage: string }>("SELECT attstorage FROM pg_attribute WHERE attrelid = 'fresh'::regclass AND attname = 'embedding'")).rows[0]!.attstorage,
    );
    expect(storage).toBe("p");
    const btree = await indexRow("fresh_tier_btree_idx");
    expect(btree?.valid).toBe(true);

    const second = await run([entry], { createTables: true });
    expect(second.results[0]).toMatchObject({ status: "unchanged", tableCreated: false, buildMs: null, parallelWorkers: null });
    expect(second.results[0].storage?.applied).toBeNull();
    expect(second.results[0].messages.join("\n")).toMatch(/is valid and as planned.*nothing to do/);
    expect((await indexRow("fresh_embedding_hnsw_idx"))?.oid).toBe(before?.oid);
    console.log(`fresh: create ${first.results[0].durationMs.toFixed(0)} ms, idempotent second run ${second.durationMs.toFixed(0)} ms`);
  });

  it("builds on a loaded table with progress from pg_stat_progress_create_index and the plan's session settings", async () => {
    const entry = entryFor("loaded");
    await createLoadedTable(entry);
    const progress = new RecordingProgress();
    const report = await run([entry], { createTables: true }, progress);
    const [result] = report.results;
    expect(result).toMatchObject({ status: "created", tableCreated: false });
    expect(result.storage?.applied).toBeNull(); // already PLAIN
    const details = progress.advances.map((a) => a.detail ?? "");
    expect(details.some((d) => d.startsWith("loading tuples"))).toBe(true);
    const fractions = progress.advances.map((a) => a.fraction);
    expect(fractions).toEqual([...fractions].sort((a, b) => a - b)); // never moves back
    expect(fractions.at(-1)).toBe(1);
    expect(progress.steps.join("\n")).toContain("maintenance_work_mem 256MB, up to 2 parallel workers");
    expect((await indexRow("loaded_embedding_hnsw_idx"))?.valid).toBe(true);
    console.log(
      `loaded (${rows} × 768, PLAIN): build ${result.buildMs?.toFixed(0)} ms, workers planned ${result.parallelWorkers?.planned} launched ${result.parallelWorkers?.launched}, ${progress.advances.length} progress updates`,
    );
  });

  it("repairs an INVALID index left by a cancelled CREATE INDEX CONCURRENTLY", async () => {
    const entry = entryFor("repair");
    await createLoadedTable(entry);
    // Produce the INVALID index for real: start the plan's own build and cancel it while it loads tuples.
    await withClient(async (builder) => {
      const pid = (await builder.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid;
      const building = builder.query(entry.createIndexSql).then(
        () => null,
        (error: Error) => error,
      );
      await withClient(async (watcher) => {
        for (let i = 0; i < 600; i++) {
          const { rows: phase } = await watcher.query<{ phase: string }>("SELECT phase FROM pg_stat_progress_create_index WHERE pid = $1", [pid]);
          if (phase[0]?.phase.startsWith("building index")) break;
          await new Promise((r) => setTimeout(r, 20));
        }
        await watcher.query("SELECT pg_cancel_backend($1)", [pid]);
      });
      const error = await building;
      expect(error?.message).toMatch(/canceling statement due to user request/);
    });
    expect((await indexRow("repair_embedding_hnsw_idx"))?.valid).toBe(false);

    const report = await run([entry]);
    const [result] = report.results;
    expect(result.status).toBe("repaired");
    expect(result.messages.join("\n")).toMatch(/dropped repair_embedding_hnsw_idx concurrently: INVALID/);
    expect((await indexRow("repair_embedding_hnsw_idx"))?.valid).toBe(true);
    expect((await run([entry])).results[0].status).toBe("unchanged");
    console.log(`repair: ${result.durationMs.toFixed(0)} ms (build ${result.buildMs?.toFixed(0)} ms)`);
  });

  it("reports an index built with m = 8 and leaves it; rebuilds it on request while queries keep using an HNSW index", async () => {
    const entry = entryFor("mismatch");
    await createLoadedTable(entry);
    await withClient((c) =>
      c.query(`CREATE INDEX "mismatch_embedding_hnsw_idx" ON "mismatch" USING hnsw (embedding vector_cosine_ops) WITH (m = 8, ef_construction = 128)`),
    );
    const old = await indexRow("mismatch_embedding_hnsw_idx");

    const reported = await run([entry]);
    expect(reported.results[0]).toMatchObject({ status: "mismatch", differences: ["m 8, plan 16"], buildMs: null });
    expect(await indexRow("mismatch_embedding_hnsw_idx")).toEqual(old);

    // Queries in a loop during the rebuild: every plan must be an HNSW index scan (enable_seqscan = off makes a
    // missing index show as a Seq Scan or another index) and every query must return its 10 rows.
    const query = `SELECT id FROM mismatch ORDER BY embedding <=> (SELECT embedding FROM mismatch WHERE id = 1) LIMIT 10`;
    const usedIndexes = new Map<string, number>();
    let stop = false;
    let failures = 0;
    const reader = new Client({ connectionString: url });
    await reader.connect();
    await reader.query("SET enable_seqscan = off");
    const loop = (async () => {
      while (!stop) {
        const plan = (await reader.query<{ "QUERY PLAN": unknown }>(`EXPLAIN (FORMAT JSON) ${query}`)).rows[0]!["QUERY PLAN"];
        const names = [...JSON.stringify(plan).matchAll(/"Index Name":"([^"]+)"/g)].map((m) => m[1]);
        const name = names.find((n) => n.includes("hnsw")) ?? `no HNSW index (${names.join(", ") || "no index"})`;
        usedIndexes.set(name, (usedIndexes.get(name) ?? 0) + 1);
        const result = await reader.query(query);
        if (result.rowCount !== 10) failures += 1;
      }
    })();
    let rebuilt;
    try {
      rebuilt = await run([entry], { rebuildMismatched: true });
    } finally {
      stop = true;
      await loop.finally(() => reader.end());
    }
    const [result] = rebuilt.results;
    expect(result).toMatchObject({ status: "rebuilt", differences: ["m 8, plan 16"] });
    const now = await indexRow("mismatch_embedding_hnsw_idx");
    expect(now).toMatchObject({ valid: true, reloptions: ["m=16", "ef_construction=128"] });
    expect(now?.oid).not.toBe(old?.oid);
    expect(await indexRow("mismatch_embedding_hnsw_idx_rebuild")).toBeNull();
    expect(failures).toBe(0);
    expect([...usedIndexes.keys()].every((n) => n === "mismatch_embedding_hnsw_idx" || n === "mismatch_embedding_hnsw_idx_rebuild")).toBe(true);
    const queries = [...usedIndexes.values()].reduce((a, b) => a + b, 0);
    expect(queries).toBeGreaterThan(10);
    console.log(`rebuild: ${result.durationMs.toFixed(0)} ms; ${queries} queries during it, by index: ${JSON.stringify(Object.fromEntries(usedIndexes))}`);
    expect((await run([entry])).results[0].status).toBe("unchanged");
  });

  it("finishes a rebuild that stopped between dropping the old index and the rename", async () => {
    const entry = entryFor("halfway");
    await createLoadedTable(entry, 500);
    await withClient((c) => c.query(entry.createIndexSql.replace('"halfway_embedding_hnsw_idx"', '"halfway_embedding_hnsw_idx_rebuild"')));
    const report = await run([entry]);
    expect(report.results[0]).toMatchObject({ status: "repaired", buildMs: null });
    expect((await indexRow("halfway_embedding_hnsw_idx"))?.valid).toBe(true);
    expect(await indexRow("halfway_embedding_hnsw_idx_rebuild")).toBeNull();
  });

  it("finishes a rebuild that stopped before dropping the old index, without building again", async () => {
    const entry = entryFor("beside");
    await createLoadedTable(entry, 500);
    await withClient(async (c) => {
      await c.query(`CREATE INDEX "beside_embedding_hnsw_idx" ON "beside" USING hnsw (embedding vector_cosine_ops) WITH (m = 8, ef_construction = 128)`);
      await c.query(entry.createIndexSql.replace('"beside_embedding_hnsw_idx"', '"beside_embedding_hnsw_idx_rebuild"'));
    });
    // Without rebuildMismatched the old index is what the operator keeps: the spare goes, the mismatch is reported.
    const reported = await run([entry]);
    expect(reported.results[0].status).toBe("mismatch");
    expect(await indexRow("beside_embedding_hnsw_idx_rebuild")).toBeNull();
    await withClient((c) => c.query(entry.createIndexSql.replace('"beside_embedding_hnsw_idx"', '"beside_embedding_hnsw_idx_rebuild"')));
    const spare = await indexRow("beside_embedding_hnsw_idx_rebuild");
    const finished = await run([entry], { rebuildMismatched: true });
    expect(finished.results[0]).toMatchObject({ status: "repaired", buildMs: null });
    expect(finished.results[0].messages.join("\n")).toMatch(/finished an interrupted rebuild/);
    const now = await indexRow("beside_embedding_hnsw_idx");
    expect(now).toMatchObject({ valid: true, reloptions: ["m=16", "ef_construction=128"] });
    expect(now?.oid).toBe(spare?.oid); // renamed, not built again
  });

  it("reports a missing table instead of failing", async () => {
    const owned = entryFor("absent_owned");
    const appOwned = entryFor("absent_app", { createTable: false });
    const progress = new RecordingProgress();
    const report = await run([owned, appOwned], { createTables: false }, progress);
    expect(report.results.map((r) => r.status)).toEqual(["table-missing", "table-missing"]);
    expect(report.results[0].messages[0]).toMatch(/table absent_owned does not exist.*createTables/);
    const withCreate = await run([appOwned], { createTables: true });
    expect(withCreate.results[0].status).toBe("table-missing");
    expect(withCreate.results[0].messages[0]).toMatch(/the application owns it/);
    expect(progress.warnings.filter((w) => w.includes("does not exist"))).toHaveLength(2);
  });

  it("a failed build names the index and the server's message, and leaves nothing a later run cannot fix", async () => {
    const good = entryFor("failing");
    await createLoadedTable(good, 200);
    // pgvector rejects ef_construction < 2·m when the build starts. configs/hnsw.ts refuses such a plan too, so the
    // entry is forged here to reach the server's own check: a plan from elsewhere (or an older pgstack) could.
    const bad = { ...good, m: 48, efConstruction: 64, createIndexSql: good.createIndexSql.replace("m = 16, ef_construction = 128", "m = 48, ef_construction = 64") };
    expect(bad.createIndexSql).toContain("m = 48, ef_construction = 64");
    const error = await run([bad]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IndexBuildError);
    const failure = error as IndexBuildError;
    expect(failure.indexName).toBe("failing_embedding_hnsw_idx");
    expect(failure.message).toContain("building failing_embedding_hnsw_idx on failing failed");
    expect(failure.serverMessage).toMatch(/ef_construction must be greater than or equal to 2 \* m/);
    expect(failure.sqlState).toBe("22023");
    expect(await indexRow("failing_embedding_hnsw_idx")).toBeNull();
    expect((await run([good])).results[0].status).toBe("created");
  });

  it("an abort cancels the running build; the next run repairs the INVALID index it left", async () => {
    const entry = entryFor("aborted");
    await createLoadedTable(entry);
    const controller = new AbortController();
    const progress = new RecordingProgress((_f, detail) => {
      if (detail?.startsWith("loading tuples")) controller.abort();
    });
    const error = await run([entry], { signal: controller.signal }, progress).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IndexBuildError);
    expect((error as IndexBuildError).message).toMatch(/building aborted_embedding_hnsw_idx on aborted was cancelled \(run aborted\)/);
    expect((error as IndexBuildError).serverMessage).toMatch(/canceling statement due to user request/);
    expect((await indexRow("aborted_embedding_hnsw_idx"))?.valid).toBe(false);
    const repaired = await run([entry]);
    expect(repaired.results[0].status).toBe("repaired");
    expect((await indexRow("aborted_embedding_hnsw_idx"))?.valid).toBe(true);
  });

  it("checks validity after the build: an index the catalog shows INVALID without an error fails loudly (pgvector #925)", async () => {
    const entry = entryFor("validity");
    await createLoadedTable(entry, 300);
    // Stand-in for pgvector #925: an event trigger at the end of CREATE INDEX marks the new index INVALID.
    await withClient(async (c) => {
      await c.query(`CREATE FUNCTION mark_invalid() RETURNS event_trigger LANGUAGE plpgsql AS $$
        DECLARE r record;
        BEGIN
          FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
            IF r.object_identity LIKE '%validity_embedding_hnsw_idx' THEN
              UPDATE pg_index SET indisvalid = false WHERE indexrelid = r.objid;
            END IF;
          END LOOP;
        END $$`);
      await c.query("CREATE EVENT TRIGGER mark_invalid ON ddl_command_end WHEN TAG IN ('CREATE INDEX') EXECUTE FUNCTION mark_invalid()");
    });
    try {
      const error = await run([entry]).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(IndexBuildError);
      expect((error as IndexBuildError).message).toMatch(
        /index validity_embedding_hnsw_idx on validity is INVALID .* although CREATE INDEX CONCURRENTLY reported no error/,
      );
      expect(await indexRow("validity_embedding_hnsw_idx")).toBeNull(); // dropped, so writes do not maintain it
    } finally {
      await withClient((c) => c.query("DROP EVENT TRIGGER mark_invalid; DROP FUNCTION mark_invalid()"));
    }
    expect((await run([entry])).results[0].status).toBe("created");
  });

  it("refuses a second concurrent run instead of racing it", async () => {
    const holder = new Client({ connectionString: url });
    await holder.connect();
    try {
      await holder.query("SELECT pg_advisory_lock($1::bigint)", [0x70677673]);
      await expect(run([entryFor("fresh")])).rejects.toThrow(/another index run holds advisory lock/);
    } finally {
      await holder.end();
    }
  });
});
