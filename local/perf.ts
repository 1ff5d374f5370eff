/**
 * `local perf` on a running cluster: the post-deploy hook and the smoke benchmark, then the report.
 *
 *   1. the plan's table is created (its createTableSql and storage choice) and loaded with `benchmark.rows` seeded,
 *      clustered vectors by binary COPY: the same rows the smoke benchmark would load (postdeploy/vectors.ts);
 *   2. postdeploy/indexes.ts builds the HNSW index over the loaded rows, CREATE INDEX CONCURRENTLY with progress:
 *      its build time is the one a real deploy would see (loading into an already indexed table would instead pay
 *      HNSW insertion per row, ~3 ms of CPU each, and measure nothing);
 *   3. postdeploy/smoke.ts runs the scenarios through PgBouncer on that table;
 *   4. on request, Node against pgbench on the same statements (local/pgbench.ts), and what TLS costs through
 *      PgBouncer, plain text against verify-full TLS (local/tls-cost.ts);
 *   5. postdeploy/report.ts writes JSON, Markdown and HTML with the machine, settings, huge pages and build time.
 */
import * as os from "node:os";
import type { IndexPlanEntry } from "../configs/hnsw";
import type { Progress } from "../configs/progress";
import { quoteIdent } from "../configs/sql";
import { humanBytes } from "../configs/units";
import { connect } from "../pgclient/connect";
import { ensureIndexes, type EnsureIndexesReport, type IndexResult } from "../postdeploy/indexes";
import { loadBenchmarkRows, type LoadResult } from "../postdeploy/load";
import { writeReport, type ReportInput, type WrittenReport } from "../postdeploy/report";
import type { PgbenchComparison } from "../postdeploy/pgbench-scripts";
import { runSmoke, SmokeSession, smokeExitCode, type SmokeResult } from "../postdeploy/smoke";
import type { TlsCostReport } from "../postdeploy/tls-cost";
import { ClusteredVectors } from "../postdeploy/vectors";
import type { LocalCluster } from "./cluster";
import { describeHugePages } from "./hugepages";
import { compareWithPgbench } from "./pgbench";
import { getRuntime } from "./runtime";
import { compareTlsCost } from "./tls-cost";

export interface PerfOptions {
  readonly cluster: LocalCluster;
  readonly progress: Progress;
  /** Directory that receives report.json, report.md and report.html. */
  readonly reportDir: string;
  /** How the node size came about, for the report ("auto: this host's 23.5 GiB", "2 GiB (--memory)"). */
  readonly sizing: string;
  /**
   * After the smoke benchmark, run the same statements with `pgbench -M prepared` and Node, alternating this many
   * rounds per scenario (each side keeps its best), to show the Node client is not the bottleneck. Defaults to 0: off.
   */
  readonly againstPgbenchRounds?: number;
  /**
   * After the benchmark, run search, hybrid, insert and mixed through PgBouncer over plain text and over verify-full
   * TLS, and pgbench -C both ways, alternating this many rounds per scenario (each leg keeps its median). The cluster
   * must have been started with clientTls "allow". Defaults to 0: off.
   */
  readonly compareTlsRounds?: number;
}

export interface PerfOutcome {
  readonly files: WrittenReport;
  readonly result: SmokeResult;
  readonly indexes: EnsureIndexesReport;
  readonly settings: Readonly<Record<string, string>>;
  readonly hugePages: string;
  readonly indexBuildSeconds: number | null;
  /** Node vs pgbench per scenario, when asked for. */
  readonly comparison: readonly PgbenchComparison[];
  /** Plain text vs TLS through PgBouncer, when asked for. */
  readonly tlsCost: TlsCostReport | null;
  /** Non-zero only when benchmark.enforce is set and a target was missed. */
  readonly exitCode: number;
}

/** The table the benchmark runs on: the first of the plan, which local perf creates (createTable must be true). */
export function benchmarkEntry(plan: readonly IndexPlanEntry[]): IndexPlanEntry {
  const entry = plan[0];
  if (entry === undefined) throw new Error("the stack has no vectorTables, so there is nothing to index or benchmark");
  if (entry.createTableSql === null) {
    throw new Error(
      `vectorTables[0] (${entry.table}) has createTable: false; local perf creates and loads its benchmark table, so set createTable: true for the perf stack`,
    );
  }
  return entry;
}

export async function runPerf(opts: PerfOptions): Promise<PerfOutcome> {
  const { cluster, progress } = opts;
  const { info, rendered } = cluster;
  const spec = rendered.spec;
  const plan = rendered.indexPlan;
  const entry = benchmarkEntry(plan);
  // Checked before the long load and build, not after them.
  if (opts.compareTlsRounds && rendered.placement.clientTls !== "allow") {
    throw new Error(`the TLS comparison needs a PgBouncer that admits plain text too; cluster ${cluster.name} was started with client_tls_sslmode = ${rendered.placement.clientTls} (start it with clientTls: "allow", as local perf --compare-tls does)`);
  }
  if (plan.length > 1) progress.warn(`the smoke benchmark runs on ${entry.table} only; the other ${plan.length - 1} table(s) are indexed, not benchmarked`);

  const load = await createAndLoad(info.directUrl, entry, spec.benchmark, progress);
  const indexes = await ensureIndexes(plan, { directUrl: info.directUrl, progress, createTables: true });
  const built = indexes.results.find((r) => r.indexName === entry.indexName || r.table === entry.table);
  const indexBuildSeconds = built?.buildMs == null ? null : built.buildMs / 1000;

  const smoke = await runSmoke({
    pooledUrl: info.pooledUrl,
    directUrl: info.directUrl,
    plan: entry,
    spec: spec.benchmark,
    progress,
    // The table exists and is loaded, with its index: the smoke benchmark finds both and only runs ANALYZE.
    createTables: true,
  });
  // The load and the build happened here, before the smoke benchmark found both in place: put them in its result.
  const result: SmokeResult = {
    ...smoke,
    // The smoke benchmark estimates the row count of a table it did not load (pg_class.reltuples); here it is known.
    table: load.rows > 0 ? { ...smoke.table, rows: load.rows } : smoke.table,
    load: { rows: load.rows, rowsPerSec: load.rowsPerSec, seconds: load.seconds },
    indexBuildSeconds,
  };

  const comparison = opts.againstPgbenchRounds ? await againstPgbench(opts, entry, opts.againstPgbenchRounds) : [];
  const tlsCost = opts.compareTlsRounds
    ? await compareTlsCost({
        runtime: await getRuntime(),
        pooledUrl: info.pooledUrl,
        directUrl: info.directUrl,
        consoleUrl: pgbouncerConsoleUrl(info),
        plan: entry,
        spec: spec.benchmark,
        rounds: opts.compareTlsRounds,
        progress,
      })
    : null;

  const settings = { ...(await cluster.settings()), ...perfFacts(opts, entry, indexes.results) };
  const hugePages = describeHugePages(info.hugePages);
  const input: ReportInput = {
    result,
    title: `pgvector-stack local perf — stack ${spec.stack} on ${os.hostname()}`,
    settings,
    hugePages,
    indexBuildSeconds,
    comparison,
    ...(tlsCost === null ? {} : { tlsCost }),
  };
  const files = writeReport(opts.reportDir, input);
  return { files, result, indexes, settings, hugePages, indexBuildSeconds, comparison, tlsCost, exitCode: smokeExitCode(result, spec.benchmark) };
}

/** PgBouncer's admin console as its admin user (admin_users, not a database role), over verify-full TLS: for SHOW CLIENTS. */
export function pgbouncerConsoleUrl(info: Pick<LocalCluster["info"], "pgbouncerAdminUrl">): string {
  return info.pgbouncerAdminUrl;
}

/** The same table, statements and concurrency through the same PgBouncer: Node's ops/s against pgbench's tps. */
async function againstPgbench(opts: PerfOptions, entry: IndexPlanEntry, rounds: number): Promise<PgbenchComparison[]> {
  const { info, rendered } = opts.cluster;
  const runtime = await getRuntime();
  const session = await SmokeSession.open({
    pooledUrl: info.pooledUrl,
    directUrl: info.directUrl,
    plan: entry,
    spec: rendered.spec.benchmark,
    progress: opts.progress,
    createTables: true,
  });
  try {
    return await compareWithPgbench({ runtime, session, rounds, progress: opts.progress });
  } finally {
    await session.close();
  }
}

/** Rows besides the server's settings that a reader of the report needs: sizing, pooling, the index build. */
function perfFacts(opts: PerfOptions, entry: IndexPlanEntry, results: readonly IndexResult[]): Record<string, string> {
  const { spec } = opts.cluster.rendered;
  const facts: Record<string, string> = {
    "node memory (sized for)": opts.sizing,
    "node cpus": String(spec.node.cpus),
    "pgbouncer pool_mode": spec.pgbouncer.poolMode,
    "pgbouncer default_pool_size": String(spec.pgbouncer.defaultPoolSize),
    "pgbouncer max_client_conn": String(spec.pgbouncer.maxClientConn),
    "runtime": `${opts.cluster.info.runtime.kind} (PgBouncer ${opts.cluster.info.runtime.versions.pgbouncer})`,
    "pgbouncer client_tls_sslmode":
      opts.cluster.rendered.placement.clientTls === "allow"
        ? "allow (for the TLS comparison: plain text admitted beside TLS; the smoke benchmark itself ran over verify-full TLS)"
        : "require",
    [`${entry.table}.${entry.column} storage`]: `${entry.storage} (${entry.vectorBytes} bytes per vector${entry.storageSql ? `; ${entry.storageSql} before loading` : ""})`,
  };
  for (const r of results) {
    const workers = r.parallelWorkers?.launched ?? r.parallelWorkers?.planned;
    facts[`index ${r.indexName}`] = [
      r.status,
      r.buildMs === null ? null : `built in ${(r.buildMs / 1000).toFixed(1)} s`,
      workers === null || workers === undefined ? null : `${workers} parallel worker${workers === 1 ? "" : "s"}`,
      r.storage?.applied ? `storage ${r.storage.applied}` : null,
    ]
      .filter((p): p is string => p !== null)
      .join(", ");
  }
  return facts;
}

/** The plan's table with its storage choice, loaded by binary COPY over the direct connection as the app user. */
async function createAndLoad(
  directUrl: string,
  entry: IndexPlanEntry,
  benchmark: { readonly rows: number; readonly seed: number },
  progress: Progress,
): Promise<LoadResult> {
  const client = await connect(directUrl, "pgstack-local-perf-load");
  try {
    for (const sql of entry.createTableSql ?? []) await client.query(sql);
    const empty = (await client.query(`SELECT 1 FROM ${quoteIdent(entry.table)} LIMIT 1`)).rowCount === 0;
    if (!empty) {
      progress.step(`${entry.table} already holds rows; not loading more`);
      return { rows: 0, seconds: 0, rowsPerSec: 0 };
    }
    // Before the rows arrive, so they are stored as the build and the planner need them (configs/hnsw.ts).
    if (entry.storageSql) await client.query(entry.storageSql);
    const vectors = new ClusteredVectors({ seed: benchmark.seed, dimensions: entry.dimensions });
    progress.step(
      `loading ${benchmark.rows} rows of ${entry.type}(${entry.dimensions}) into ${entry.table} (binary COPY, seed ${benchmark.seed}, ` +
        `${humanBytes(benchmark.rows * entry.vectorBytes)} of vectors)`,
    );
    const load = await loadBenchmarkRows(client, entry, vectors, benchmark.rows, progress);
    progress.step(`loaded ${load.rows} rows in ${load.seconds.toFixed(1)} s (${Math.round(load.rowsPerSec)} rows/s)`);
    await client.query(`ANALYZE ${quoteIdent(entry.table)}`);
    return load;
  } finally {
    await client.end().catch(() => undefined);
  }
}
