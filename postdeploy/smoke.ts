/**
 * The smoke benchmark: the tuning guide's five load-test scenarios (inserts, HNSW search, hybrid search, the
 * 40/50/10 mixed workload, sustained load) run through PgBouncer, judged against the spec's targets.
 *
 * Loads and DDL go over the DIRECT connection; every measured operation goes through the POOLER in transaction mode,
 * as the application's queries do, so per-query settings are SET LOCAL inside the operation's transaction.
 * Each worker is one pooler connection running a closed loop; a warm-up (prepares statements, fills caches) runs
 * before each scenario and is not counted.
 *
 * `runSmoke` is the whole run; `SmokeSession` lets a caller (the pgbench comparison) run scenarios one by one on one
 * prepared table.
 */
import * as os from "os";
import type { Client } from "pg";
import pgvector from "pgvector";
import type { BenchmarkSpec } from "../configs/benchmark";
import type { IndexPlanEntry } from "../configs/hnsw";
import { silentProgress, type Progress } from "../configs/progress";
import { LatencyRecorder, roundTo } from "./latency";
import { copyRows, vectorRows, type LoadResult } from "./load";
import {
  connect,
  errorMessage,
  maskSecrets,
  maskedError,
  OperationRunner,
  settingStatements,
  statementName,
  type Statement,
  type TextRows,
  type WireValue,
} from "./smoke-pg";
import {
  benchTable,
  exactSql,
  hybridSql,
  insertSql,
  planShape,
  quoteIdent,
  recallK,
  searchSql,
  toNodeSql,
  updateSql,
  type BenchTable,
  type OpKind,
  type ParamName,
  type PlanCheck,
  type SqlTemplate,
  type VectorSource,
} from "./smoke-sql";
import {
  judgeScenario,
  meanRecall,
  recallAtK,
  scenarioNames,
  targetFor,
  type Neighbour,
  type ScenarioName,
  type ScenarioTarget,
} from "./smoke-judge";
import { benchmarkRows, ClusteredVectors, createRng, filterValues, streamSeed, streams, type Rng } from "./vectors";
import { encodeVectorParam } from "./vector-binary";

export type { ScenarioName } from "./smoke-judge";
export type { VectorSource } from "./smoke-sql";

/** How vectors travel as parameters: binary (default, +17 % q/s measured) or pgvector's text `toSql`, to compare. */
export type VectorEncoding = "binary" | "text";

export interface SmokeOptions {
  /** Through PgBouncer (transaction pooling); user and password included. */
  readonly pooledUrl: string;
  /** Straight to PostgreSQL, for loading, DDL, EXPLAIN and recall. */
  readonly directUrl: string;
  readonly plan: IndexPlanEntry;
  readonly spec: BenchmarkSpec;
  /** Defaults to silentProgress. */
  readonly progress?: Progress;
  /**
   * Run on a scratch table of this name with the plan's layout: created, loaded with `spec.rows` rows, indexed, and
   * dropped afterwards. Defaults to none: the plan's table as it is.
   */
  readonly scratchTable?: string;
  /** Create the plan's table when missing (its `createTableSql`) and load `spec.rows` rows when it is empty. Defaults to false. */
  readonly createTables?: boolean;
  /** Keep the scratch table (and the pool table) after the run. Defaults to false. */
  readonly keepTables?: boolean;
  /** Defaults to all five, in the guide's order. */
  readonly scenarios?: readonly ScenarioName[];
  /** Defaults to "generated" (vectors as parameters, as an application sends them). */
  readonly vectorSource?: VectorSource;
  /** Defaults to "binary". */
  readonly vectorEncoding?: VectorEncoding;
  /** One round trip per operation (see smoke-pg.ts). Defaults to true. */
  readonly pipeline?: boolean;
  /**
   * Protocol-level named prepared statements (+10 % q/s). Turn off for a pooler that cannot track them
   * (PgBouncer < 1.21 or max_prepared_statements = 0). Defaults to true.
   */
  readonly namedStatements?: boolean;
  /** The database machine, when it is not this one (a post-deploy hook runs elsewhere). Defaults to this host. */
  readonly machine?: Machine;
  /** Query vectors cycled through by the search scenarios; the first `spec.recallQueries` measure recall. Defaults to 1,000. */
  readonly queryPoolSize?: number;
  /** Fresh vectors for inserts and updates. Defaults to 10,000. */
  readonly insertPoolSize?: number;
}

export interface Machine {
  readonly cores: number;
  readonly memoryBytes: number;
}

export interface ScenarioResult {
  readonly name: ScenarioName;
  /** Measured seconds (warm-up excluded). */
  readonly seconds: number;
  readonly ops: number;
  readonly opsPerSec: number;
  readonly target: ScenarioTarget;
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly meanMs: number;
  readonly errors: number;
  /** The first few distinct error messages, passwords masked. */
  readonly errorSamples: string[];
  /** Operations counted per kind (the mixed workload's actual split). */
  readonly operations: Partial<Record<OpKind, number>>;
  readonly recallAt10?: number;
  readonly plan?: PlanCheck;
  /**
   * CPU this Node process spent per operation (user + system, warm-up included) and the cores it kept busy on
   * average: how close the client itself is to being the bottleneck.
   */
  readonly clientCpuMsPerOp: number;
  readonly clientCpuCores: number;
  readonly vectorSource: VectorSource;
  readonly pass: boolean;
  readonly failures: string[];
}

export interface SmokeResult {
  readonly machine: Machine;
  readonly table: {
    readonly name: string;
    readonly column: string;
    readonly type: string;
    readonly dimensions: number;
    readonly metric: string;
    readonly indexName: string;
    readonly efSearch: number;
    /** Rows when the run started (an estimate for a table the run did not load). */
    readonly rows: number;
    readonly scratch: boolean;
  };
  readonly load: { readonly rows: number; readonly rowsPerSec: number; readonly seconds: number };
  /** Seconds the HNSW build took when this run built the index, else null. */
  readonly indexBuildSeconds: number | null;
  readonly run: {
    readonly concurrency: number;
    readonly durationSeconds: number;
    readonly warmupSeconds: number;
    readonly sustainedSeconds: number;
    readonly seed: number;
    readonly vectorSource: VectorSource;
    readonly vectorEncoding: VectorEncoding;
    readonly pipeline: boolean;
    readonly namedStatements: boolean;
  };
  readonly scenarios: ScenarioResult[];
  /** Scenarios that could not run here, with the reason (hybrid needs a filter column). */
  readonly skipped: { readonly name: ScenarioName; readonly reason: string }[];
  readonly pass: boolean;
}

/** Exit code for a CLI: non-zero only when the spec enforces its targets and one was missed. */
export function smokeExitCode(result: SmokeResult, spec: BenchmarkSpec): number {
  return spec.enforce && !result.pass ? 1 : 0;
}

export async function runSmoke(options: SmokeOptions): Promise<SmokeResult> {
  const session = await SmokeSession.open(options);
  try {
    const results: ScenarioResult[] = [];
    for (const name of options.scenarios ?? scenarioNames) {
      const r = await session.runScenario(name);
      if (r) results.push(r);
    }
    return session.result(results);
  } finally {
    await session.close();
  }
}

/** What a scenario does per operation: which statements, chosen how. */
interface PreparedOp {
  readonly kind: OpKind;
  readonly setLocal: Statement[];
  readonly statement: Statement;
  readonly params: ParamName[];
}

function prepareOp(template: SqlTemplate): PreparedOp {
  const { text, params } = toNodeSql(template.template);
  return {
    kind: template.kind,
    setLocal: settingStatements(template.setLocal),
    statement: { name: statementName(`smoke_${template.kind}`, text), text },
    params,
  };
}

/** The guide's mixed workload: 40 % inserts, 50 % searches, 10 % updates. */
export const mixedShares: Readonly<Record<"insert" | "search" | "update", number>> = { insert: 40, search: 50, update: 10 };

export interface ScenarioOverrides {
  readonly durationSeconds?: number;
  readonly warmupSeconds?: number;
  readonly vectorSource?: VectorSource;
  /** Measure recall@10 and check plans for search and hybrid. Defaults to true. */
  readonly measureRecall?: boolean;
}

export class SmokeSession {
  private readonly urls: string[];
  private readonly progress: Progress;
  readonly pipeline: boolean;
  private readonly encoding: VectorEncoding;
  private readonly defaultSource: VectorSource;
  private queryParams: WireValue[] = [];
  private insertParams: WireValue[] = [];
  private queryVectors: Float32Array[] = [];
  private insertCursor = 0;
  /** Filter values the hybrid query and inserts use: the generator's tiers, or the values a given table holds. */
  private filters: readonly string[] = filterValues;
  private idRange: { min: number; max: number } = { min: 1, max: 1 };
  private startRows = 0;
  private load: LoadResult = { rows: 0, seconds: 0, rowsPerSec: 0 };
  private indexBuildSeconds: number | null = null;
  private hasPool = false;
  private runners: OperationRunner[] = [];
  private readonly skipped: { name: ScenarioName; reason: string }[] = [];

  private constructor(
    readonly options: SmokeOptions,
    readonly table: BenchTable,
    private readonly direct: Client,
  ) {
    this.urls = [options.pooledUrl, options.directUrl];
    this.progress = options.progress ?? silentProgress;
    this.pipeline = options.pipeline ?? true;
    this.encoding = options.vectorEncoding ?? "binary";
    this.defaultSource = options.vectorSource ?? "generated";
  }

  get queryPoolSize(): number {
    return this.queryParams.length;
  }
  get insertPoolSize(): number {
    return this.insertParams.length;
  }
  /** Ids of the rows present before the run: updates and pgbench pick from this range. */
  get rowIds(): { min: number; max: number } {
    return this.idRange;
  }

  static async open(options: SmokeOptions): Promise<SmokeSession> {
    validate(options);
    const direct = await connect(options.directUrl, "pgstack-smoke-direct");
    const session = new SmokeSession(options, benchTable(options.plan, options.scratchTable), direct);
    try {
      await session.prepare();
    } catch (error) {
      await session.close();
      throw maskedError(error, session.urls);
    }
    return session;
  }

  private async prepare(): Promise<void> {
    const { options, table: t } = this;
    const spec = options.spec;
    const vectors = new ClusteredVectors({ seed: spec.seed, dimensions: t.dimensions });
    const queryCount = Math.max(options.queryPoolSize ?? 1000, spec.recallQueries);
    this.progress.step(`smoke: generating ${queryCount} query and ${options.insertPoolSize ?? 10_000} insert vectors`);
    this.queryVectors = vectors.take(streams.queries, queryCount);
    const insertVectors = vectors.take(streams.inserts, options.insertPoolSize ?? 10_000);
    const encode = (v: Float32Array): WireValue =>
      this.encoding === "binary" ? encodeVectorParam(t.type, v) : (pgvector.toSql(Array.from(v)) as string);
    this.queryParams = this.queryVectors.map(encode);
    this.insertParams = insertVectors.map(encode);

    if (options.scratchTable) await this.createScratch(vectors);
    else if (options.createTables) await this.createPlanTable(vectors);
    else {
      await this.checkGivenTable();
      this.filters = await this.filterValuesInUse();
    }

    if (options.scratchTable || options.createTables) {
      await this.createPool([...this.queryVectors, ...insertVectors]);
      this.hasPool = true;
    }
    const range = await this.direct.query<{ min: string | null; max: string | null }>(
      `SELECT min(id)::text AS min, max(id)::text AS max FROM ${quoteIdent(t.table)}`,
    );
    const min = Number(range.rows[0].min ?? 1);
    const max = Number(range.rows[0].max ?? 1);
    this.idRange = { min, max };
    if (this.startRows === 0) {
      const estimate = await this.direct.query<{ n: string }>(
        `SELECT greatest(reltuples, 0)::bigint::text AS n FROM pg_class WHERE oid = $1::regclass`,
        [quoteIdent(t.table)],
      );
      this.startRows = Number(estimate.rows[0]?.n ?? 0);
    }
    const concurrency = spec.concurrency;
    this.progress.step(`smoke: opening ${concurrency} connections through the pooler`);
    for (let i = 0; i < concurrency; i++) {
      this.runners.push(new OperationRunner(await connect(options.pooledUrl, `pgstack-smoke-${i}`), this.pipeline, options.namedStatements ?? true));
    }
  }

  private async createScratch(vectors: ClusteredVectors): Promise<void> {
    const { table: t, options } = this;
    const plan = options.plan;
    const q = quoteIdent;
    this.progress.step(`smoke: creating scratch table ${t.table}`);
    await this.direct.query(`DROP TABLE IF EXISTS ${q(t.table)}, ${q(t.poolTable)}`);
    const filters = t.filterColumns.map((f) => `${q(f)} text NOT NULL, `).join("");
    await this.direct.query(
      `CREATE TABLE ${q(t.table)} (id bigserial PRIMARY KEY, ${filters}${q(t.column)} ${t.type}(${t.dimensions}) NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`,
    );
    // The plan's storage choice, so the scratch table builds and plans like the real one (configs/hnsw.ts).
    if (plan.storage === "plain") await this.direct.query(`ALTER TABLE ${q(t.table)} ALTER COLUMN ${q(t.column)} SET STORAGE PLAIN`);
    if (plan.storage === "parallel-workers-reloption") {
      await this.direct.query(`ALTER TABLE ${q(t.table)} SET (parallel_workers = ${plan.build.maxParallelMaintenanceWorkers})`);
    }
    await this.loadRows(vectors);
    for (const f of t.filterColumns) {
      await this.direct.query(`CREATE INDEX ${q(`${t.table}_${f}_btree_idx`)} ON ${q(t.table)} (${q(f)})`);
    }
    await this.buildIndex(
      `CREATE INDEX ${q(t.indexName)} ON ${q(t.table)} USING hnsw (${q(t.column)} ${plan.opclass}) WITH (m = ${plan.m}, ef_construction = ${plan.efConstruction})`,
    );
  }

  private async createPlanTable(vectors: ClusteredVectors): Promise<void> {
    const { table: t, options } = this;
    const plan = options.plan;
    if (!plan.createTableSql) {
      throw new Error(`createTables is set but ${plan.table} is owned by the application (its plan has no createTableSql); use scratchTable instead`);
    }
    this.progress.step(`smoke: creating ${t.table} when missing`);
    for (const sql of plan.createTableSql) await this.direct.query(sql);
    const empty = await this.direct.query(`SELECT 1 FROM ${quoteIdent(t.table)} LIMIT 1`);
    if (empty.rowCount === 0) {
      if (plan.storageSql) await this.direct.query(plan.storageSql);
      await this.loadRows(vectors);
    }
    const existing = await this.direct.query(`SELECT 1 FROM pg_indexes WHERE indexname = $1`, [t.indexName]);
    if (existing.rowCount === 0) await this.buildIndex(plan.createIndexSql);
    else await this.direct.query(`ANALYZE ${quoteIdent(t.table)}`);
  }

  private async checkGivenTable(): Promise<void> {
    const { table: t } = this;
    const found = await this.direct.query(`SELECT 1 FROM pg_indexes WHERE tablename = $1 AND indexname = $2`, [t.table, t.indexName]);
    if (found.rowCount === 0) {
      throw new Error(
        `table ${t.table} has no index ${t.indexName}: build the plan's indexes first, or pass scratchTable / createTables`,
      );
    }
  }

  /**
   * A filter value the table does not hold would make every hybrid query an unsatisfiable filter, which an iterative
   * scan walks to hnsw.max_scan_tuples (pgvector-facts §2: 183 ms instead of 5 ms). So for a table the run did not
   * fill, filter on its most common values (the planner's statistics; a sample when there are none).
   */
  private async filterValuesInUse(): Promise<readonly string[]> {
    const { table: t } = this;
    if (t.filterColumns.length === 0) return filterValues;
    const column = t.filterColumns[0];
    const stats = await this.direct.query<{ values: string[] | null }>(
      `SELECT most_common_vals::text::text[] AS values FROM pg_stats WHERE tablename = $1 AND attname = $2 LIMIT 1`,
      [t.table, column],
    );
    const common = stats.rows[0]?.values ?? [];
    if (common.length > 0) return common.slice(0, filterValues.length);
    const sample = await this.direct.query<{ v: string }>(
      `SELECT DISTINCT ${quoteIdent(column)}::text AS v FROM (SELECT ${quoteIdent(column)} FROM ${quoteIdent(t.table)} LIMIT 10000) s WHERE ${quoteIdent(column)} IS NOT NULL ORDER BY 1 LIMIT ${filterValues.length}`,
    );
    if (sample.rows.length === 0) {
      this.progress.warn(`smoke: ${t.table}.${column} holds no values; hybrid queries filter on the generator's tiers and may find nothing`);
      return filterValues;
    }
    return sample.rows.map((r) => r.v);
  }

  private async loadRows(vectors: ClusteredVectors): Promise<void> {
    const { table: t, options } = this;
    const rows = options.spec.rows;
    this.progress.step(`smoke: loading ${rows} rows into ${t.table} (binary COPY, direct connection)`);
    this.load = await copyRows(
      this.direct,
      { table: t.table, columns: [...t.filterColumns, t.column] },
      vectorRows(t.type, benchmarkRows(vectors, rows, t.filterColumns.length)),
      rows,
      this.progress,
    );
    this.startRows = this.load.rows;
  }

  private async buildIndex(createIndexSql: string): Promise<void> {
    const { table: t, options } = this;
    const build = options.plan.build;
    // Session settings on the direct connection, as the index manager does (pgvector-facts §3–4).
    if (!/^\d+\s*(kB|MB|GB|TB)?$/.test(build.maintenanceWorkMem)) {
      throw new Error(`maintenance_work_mem "${build.maintenanceWorkMem}" is not a PostgreSQL memory size such as 2GB`);
    }
    await this.direct.query(`SET maintenance_work_mem = '${build.maintenanceWorkMem}'`);
    await this.direct.query(`SET max_parallel_maintenance_workers = ${Math.trunc(build.maxParallelMaintenanceWorkers)}`);
    this.progress.step(`smoke: building ${t.indexName}`);
    const started = performance.now();
    await this.direct.query(createIndexSql);
    this.indexBuildSeconds = (performance.now() - started) / 1000;
    await this.direct.query("RESET maintenance_work_mem");
    await this.direct.query("RESET max_parallel_maintenance_workers");
    await this.direct.query(`ANALYZE ${quoteIdent(t.table)}`);
  }

  private async createPool(all: Float32Array[]): Promise<void> {
    const { table: t } = this;
    const q = quoteIdent;
    await this.direct.query(`DROP TABLE IF EXISTS ${q(t.poolTable)}`);
    await this.direct.query(`CREATE TABLE ${q(t.poolTable)} (id integer PRIMARY KEY, ${q(t.column)} ${t.type}(${t.dimensions}) NOT NULL)`);
    await this.direct.query(`ALTER TABLE ${q(t.poolTable)} ALTER COLUMN ${q(t.column)} SET STORAGE PLAIN`);
    const rows = function* () {
      for (let i = 0; i < all.length; i++) {
        const id = Buffer.allocUnsafe(4);
        id.writeInt32BE(i + 1, 0);
        yield [id, encodeVectorParam(t.type, all[i])];
      }
    };
    await copyRows(this.direct, { table: t.poolTable, columns: ["id", t.column] }, rows(), all.length);
    await this.direct.query(`ANALYZE ${q(t.poolTable)}`);
  }

  /** The statements a scenario runs, or the reason it cannot run here. */
  private operations(name: ScenarioName, source: VectorSource): PreparedOp[] | string {
    const t = this.table;
    switch (name) {
      case "insert":
        return [prepareOp(insertSql(t, source))];
      case "search":
        return [prepareOp(searchSql(t, source))];
      case "hybrid": {
        const hybrid = hybridSql(t, source);
        return hybrid ? [prepareOp(hybrid)] : `${t.table} has no filter column to filter on`;
      }
      case "mixed":
      case "sustained":
        return [prepareOp(insertSql(t, source)), prepareOp(searchSql(t, source)), prepareOp(updateSql(t, source))];
    }
  }

  /** One parameter value; ids in the stored form are 1-based like pgbench's random(1, n). */
  private param(name: ParamName, kind: OpKind, rng: Rng): WireValue {
    switch (name) {
      case "vector":
        if (kind === "search" || kind === "hybrid") return this.queryParams[rng.int(this.queryParams.length)];
        return this.insertParams[this.insertCursor++ % this.insertParams.length];
      case "filter":
        return this.filters[rng.int(this.filters.length)];
      case "qid":
        return String(1 + rng.int(this.queryParams.length));
      case "tier":
        return String(1 + rng.int(filterValues.length));
      case "pool_id":
        return String(this.queryParams.length + 1 + rng.int(this.insertParams.length));
      case "row_id":
        return String(this.idRange.min + rng.int(this.idRange.max - this.idRange.min + 1));
    }
  }

  /** Runs one scenario; null when it cannot run on this table (recorded in `skipped`). */
  async runScenario(name: ScenarioName, overrides: ScenarioOverrides = {}): Promise<ScenarioResult | null> {
    try {
      return await this.runScenarioUnmasked(name, overrides);
    } catch (error) {
      throw maskedError(error, this.urls, `smoke scenario ${name}`);
    }
  }

  private async runScenarioUnmasked(name: ScenarioName, overrides: ScenarioOverrides): Promise<ScenarioResult | null> {
    const spec = this.options.spec;
    const source = overrides.vectorSource ?? this.defaultSource;
    if (source === "stored" && !this.hasPool) {
      throw new Error(`vectorSource "stored" needs the pool table, which only a run with scratchTable or createTables creates`);
    }
    const ops = this.operations(name, source);
    if (typeof ops === "string") {
      this.skipped.push({ name, reason: ops });
      this.progress.warn(`smoke: ${name} skipped: ${ops}`);
      return null;
    }
    const seconds = overrides.durationSeconds ?? (name === "sustained" ? spec.sustainedSeconds : spec.durationSeconds);
    const warmup = overrides.warmupSeconds ?? spec.warmupSeconds;
    const choose = chooser(name, ops);
    this.progress.step(`smoke: ${name} for ${seconds} s (+${warmup} s warm-up) at concurrency ${this.runners.length}`);
    const measured = await this.drive(choose, warmup * 1000, seconds * 1000, name);

    let recallAt10: number | undefined;
    let plan: PlanCheck | undefined;
    if ((name === "search" || name === "hybrid") && overrides.measureRecall !== false) {
      const template = name === "search" ? searchSql(this.table, "generated") : hybridSql(this.table, "generated");
      if (template) {
        plan = await this.checkPlan(template);
        recallAt10 = await this.recall(template);
      }
    }
    const target = targetFor(name, spec.targets);
    const latency = measured.latency.summary();
    const opsPerSec = measured.seconds > 0 ? measured.latency.count / measured.seconds : 0;
    const judgement = judgeScenario(
      { opsPerSec, p99Ms: latency.p99Ms, errors: measured.errors, usesIndex: plan?.usesIndex, indexName: this.table.indexName },
      target,
    );
    return {
      name,
      seconds: roundTo(measured.seconds, 3),
      ops: measured.latency.count,
      opsPerSec: roundTo(opsPerSec, 1),
      target,
      p50Ms: latency.p50Ms,
      p95Ms: latency.p95Ms,
      p99Ms: latency.p99Ms,
      maxMs: latency.maxMs,
      meanMs: latency.meanMs,
      errors: measured.errors,
      errorSamples: measured.errorSamples,
      operations: measured.operations,
      ...(recallAt10 === undefined ? {} : { recallAt10: roundTo(recallAt10, 4) }),
      ...(plan === undefined ? {} : { plan }),
      clientCpuMsPerOp: roundTo(measured.cpuMsPerOp, 4),
      clientCpuCores: roundTo(measured.cpuCores, 3),
      vectorSource: source,
      pass: judgement.pass,
      failures: judgement.failures,
    };
  }

  /** Closed-loop workers, one per pooler connection, for warm-up + measured time. */
  private async drive(
    choose: (rng: Rng) => PreparedOp,
    warmupMs: number,
    durationMs: number,
    label: string,
  ): Promise<{
    latency: LatencyRecorder;
    seconds: number;
    errors: number;
    errorSamples: string[];
    operations: Partial<Record<OpKind, number>>;
    cpuMsPerOp: number;
    cpuCores: number;
  }> {
    const cpuBefore = process.cpuUsage();
    let allOps = 0;
    const started = performance.now();
    const measureFrom = started + warmupMs;
    const deadline = measureFrom + durationMs;
    const latency = new LatencyRecorder();
    const operations: Partial<Record<OpKind, number>> = {};
    const errorSamples: string[] = [];
    let errors = 0;
    let lastEnd = deadline;
    const ticker = setInterval(() => {
      const now = performance.now();
      const fraction = Math.min(1, Math.max(0, (now - started) / (deadline - started)));
      this.progress.advance(fraction, now < measureFrom ? "warming up" : `${label}: ${latency.count} ops`);
    }, 1000);
    const worker = async (w: number): Promise<void> => {
      // Each worker has its own stream: reproducible choices whatever the interleaving.
      const rng = createRng(streamSeed(this.options.spec.seed, streams.workerBase + w));
      for (;;) {
        const start = performance.now();
        if (start >= deadline) return;
        const op = choose(rng);
        const values = op.params.map((p) => this.param(p, op.kind, rng));
        const runner = this.runners[w];
        allOps++;
        try {
          await runner.run(op.setLocal, op.statement, values);
          const end = performance.now();
          if (start >= measureFrom) {
            latency.recordMs(end - start);
            operations[op.kind] = (operations[op.kind] ?? 0) + 1;
            if (end > lastEnd) lastEnd = end;
          }
        } catch (error) {
          if (start >= measureFrom) {
            errors++;
            const message = maskSecrets(errorMessage(error), this.urls);
            if (errorSamples.length < 5 && !errorSamples.includes(message)) errorSamples.push(message);
          }
          await this.replaceRunner(w);
        }
      }
    };
    try {
      await Promise.all(this.runners.map((_, w) => worker(w)));
    } finally {
      clearInterval(ticker);
    }
    const cpu = process.cpuUsage(cpuBefore);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    const wallMs = performance.now() - started;
    this.progress.advance(1, `${label}: ${latency.count} ops`);
    return {
      latency,
      seconds: (lastEnd - measureFrom) / 1000,
      errors,
      errorSamples,
      operations,
      cpuMsPerOp: allOps > 0 ? cpuMs / allOps : 0,
      cpuCores: wallMs > 0 ? cpuMs / wallMs : 0,
    };
  }

  /** A failed operation may leave its connection inside an aborted transaction: start over with a new one. */
  private async replaceRunner(w: number): Promise<void> {
    const old = this.runners[w];
    await old.client.end().catch(() => undefined);
    for (let attempt = 0; ; attempt++) {
      try {
        this.runners[w] = new OperationRunner(
          await connect(this.options.pooledUrl, `pgstack-smoke-${w}`),
          this.pipeline,
          this.options.namedStatements ?? true,
        );
        return;
      } catch (error) {
        if (attempt >= 4) throw maskedError(error, this.urls);
        await new Promise((r) => setTimeout(r, 200 * (attempt + 1)));
      }
    }
  }

  /** Runs `template` on the direct connection for query vector `i` (filter value by i too), in its transaction. */
  private async queryOnce(template: SqlTemplate, i: number, setLocal = template.setLocal): Promise<TextRows> {
    const { text, params } = toNodeSql(template.template);
    const values = params.map((p) =>
      p === "vector" ? encodeVectorParam(this.table.type, this.queryVectors[i]) : this.filters[i % this.filters.length],
    );
    await this.direct.query(["BEGIN", ...setLocal].join("; "));
    try {
      const result = await this.direct.query<(string | null)[]>({ text, values, rowMode: "array" });
      return result.rows;
    } finally {
      await this.direct.query("COMMIT");
    }
  }

  private async explain(template: SqlTemplate, setLocal: readonly string[]): Promise<PlanCheck> {
    const explained: SqlTemplate = { ...template, template: `EXPLAIN (FORMAT JSON) ${template.template}` };
    const rows = await this.queryOnce(explained, 0, setLocal);
    return planShape(rows[0][0], this.table.indexName);
  }

  /**
   * The plan of the benchmarked query, as the pooler's connections run it (same SET LOCALs): the custom plan for a
   * sample query vector and, on PostgreSQL 16+, the generic plan that named prepared statements may switch to.
   * `usesIndex` holds only when both use the HNSW index.
   */
  async checkPlan(template: SqlTemplate): Promise<PlanCheck> {
    const custom = await this.explain(template, template.setLocal);
    const version = await this.direct.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
    if (Number(version.rows[0].v) < 160000) return custom;
    const { text } = toNodeSql(template.template);
    await this.direct.query(["BEGIN", ...template.setLocal].join("; "));
    let generic: PlanCheck;
    try {
      const rows = await this.direct.query<(string | null)[]>({ text: `EXPLAIN (FORMAT JSON, GENERIC_PLAN) ${text}`, rowMode: "array" });
      generic = planShape(rows.rows[0][0], this.table.indexName);
    } finally {
      await this.direct.query("COMMIT");
    }
    return {
      shape: custom.shape,
      usesIndex: custom.usesIndex && generic.usesIndex,
      generic: { shape: generic.shape, usesIndex: generic.usesIndex },
    };
  }

  /** Mean recall@10 of `template` against the same query run exactly, over `spec.recallQueries` query vectors. */
  async recall(template: SqlTemplate): Promise<number> {
    const exact = exactSql(template);
    const exactPlan = await this.explain(template, exact.setLocal);
    if (exactPlan.usesIndex) {
      throw new Error(`the ground-truth query still uses ${this.table.indexName} (${exactPlan.shape}); recall would be meaningless`);
    }
    const n = Math.min(this.options.spec.recallQueries, this.queryVectors.length);
    const recalls: number[] = [];
    for (let i = 0; i < n; i++) {
      const found = neighbours(await this.queryOnce(template, i));
      const truth = neighbours(await this.queryOnce(exact, i));
      recalls.push(recallAtK(found, truth, recallK));
    }
    return meanRecall(recalls);
  }

  result(scenarios: ScenarioResult[]): SmokeResult {
    const { options, table: t } = this;
    const spec = options.spec;
    return {
      machine: options.machine ?? { cores: os.cpus().length, memoryBytes: os.totalmem() },
      table: {
        name: t.table,
        column: t.column,
        type: t.type,
        dimensions: t.dimensions,
        metric: options.plan.metric,
        indexName: t.indexName,
        efSearch: t.efSearch,
        rows: this.startRows,
        scratch: options.scratchTable !== undefined,
      },
      load: { rows: this.load.rows, rowsPerSec: roundTo(this.load.rowsPerSec, 1), seconds: roundTo(this.load.seconds, 3) },
      indexBuildSeconds: this.indexBuildSeconds === null ? null : roundTo(this.indexBuildSeconds, 3),
      run: {
        concurrency: spec.concurrency,
        durationSeconds: spec.durationSeconds,
        warmupSeconds: spec.warmupSeconds,
        sustainedSeconds: spec.sustainedSeconds,
        seed: spec.seed,
        vectorSource: this.defaultSource,
        vectorEncoding: this.encoding,
        pipeline: this.pipeline,
        namedStatements: options.namedStatements ?? true,
      },
      scenarios,
      skipped: [...this.skipped],
      pass: scenarios.every((s) => s.pass),
    };
  }

  /** Closes every connection and drops what the run created (unless `keepTables`). */
  async close(): Promise<void> {
    await Promise.all(this.runners.map((r) => r.client.end().catch(() => undefined)));
    this.runners = [];
    try {
      const q = quoteIdent;
      if (this.options.scratchTable && !this.options.keepTables) {
        await this.direct.query(`DROP TABLE IF EXISTS ${q(this.table.table)}, ${q(this.table.poolTable)}`);
      } else if (this.hasPool && !this.options.keepTables) {
        await this.direct.query(`DROP TABLE IF EXISTS ${q(this.table.poolTable)}`);
      }
    } finally {
      await this.direct.end().catch(() => undefined);
    }
  }
}

function validate(options: SmokeOptions): void {
  const { spec, plan } = options;
  if (options.scratchTable !== undefined && options.createTables) {
    throw new Error(`scratchTable "${options.scratchTable}" and createTables both given: a run uses a scratch table or creates the plan's table, not both`);
  }
  if (options.scratchTable !== undefined && options.scratchTable === plan.table) {
    throw new Error(`scratchTable "${options.scratchTable}" is the plan's own table; a scratch table is dropped after the run, so give it another name`);
  }
  if (!Number.isInteger(spec.concurrency) || spec.concurrency < 1) {
    throw new Error(`benchmark concurrency ${spec.concurrency} must be a positive integer`);
  }
  for (const [key, value] of Object.entries({
    durationSeconds: spec.durationSeconds,
    warmupSeconds: spec.warmupSeconds,
    sustainedSeconds: spec.sustainedSeconds,
  })) {
    if (!(value >= 0)) throw new Error(`benchmark ${key} ${value} must be ≥ 0`);
  }
  if (plan.dimensions > 16_000) throw new Error(`${plan.table}.${plan.column}: ${plan.dimensions} dimensions exceed pgvector's 16,000`);
}

/** The scenario's operation mix. Mixed and sustained draw 40/50/10 per operation; the others run one statement. */
function chooser(name: ScenarioName, ops: PreparedOp[]): (rng: Rng) => PreparedOp {
  if (name !== "mixed" && name !== "sustained") return () => ops[0];
  const [insert, search, update] = ops;
  return (rng) => {
    const x = rng.next() * 100;
    if (x < mixedShares.insert) return insert;
    if (x < mixedShares.insert + mixedShares.search) return search;
    return update;
  };
}

function neighbours(rows: TextRows): Neighbour[] {
  return rows.map((r) => ({ id: String(r[0]), distance: Number(r[1]) }));
}
