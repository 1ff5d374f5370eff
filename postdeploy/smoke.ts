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
import type { Client } from "pg";
import pgvector from "pgvector";
import type { BenchmarkSpec } from "../configs/benchmark";
import { errorMessage, maskedError, maskSecrets } from "../configs/secrets";
import { connect } from "../pgclient/connect";
import { LatencyRecorder, roundTo } from "./latency";
import { OperationRunner, settingStatements, statementName, type Statement, type TextRows, type WireValue } from "./smoke-pg";
import { resolveSmokeOptions, type Machine, type ResolvedSmokeOptions, type SmokeOptions } from "./smoke-options";
import {
  exactSql,
  hybridSql,
  insertSql,
  planShape,
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
import { judgeScenario, meanRecall, recallAtK, targetFor, type Neighbour, type ScenarioName, type ScenarioTarget } from "./smoke-judge";
import { dropRunTables, prepareTable, type PreparedTable } from "./smoke-table";
import { ClusteredVectors, createRng, filterValues, streamSeed, streams, type Rng } from "./vectors";
import { encodeVectorParam } from "./vector-binary";

export type { ScenarioName } from "./smoke-judge";
export type { Machine, ResolvedSmokeOptions, SmokeOptions, VectorEncoding } from "./smoke-options";
export type { VectorSource } from "./smoke-sql";

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
  /** How the run ran: the spec's load shape and the client's choices. */
  readonly run: Pick<BenchmarkSpec, "concurrency" | "durationSeconds" | "warmupSeconds" | "sustainedSeconds" | "seed"> &
    Pick<ResolvedSmokeOptions, "vectorSource" | "vectorEncoding" | "pipeline" | "namedStatements">;
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
    for (const name of session.options.scenarios) {
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

/** The vectors a run sends, generated once from the seed: as Float32Arrays and as wire parameters. */
interface VectorPools {
  /** The generator, which also makes the rows a run loads. */
  readonly vectors: ClusteredVectors;
  /** Cycled through by searches; the first `spec.recallQueries` measure recall. */
  readonly queries: readonly Float32Array[];
  /** Fresh vectors for inserts and updates. */
  readonly inserts: readonly Float32Array[];
  readonly queryParams: readonly WireValue[];
  readonly insertParams: readonly WireValue[];
}

function vectorPools(options: ResolvedSmokeOptions): VectorPools {
  const { spec, table: t, vectorEncoding, progress } = options;
  const vectors = new ClusteredVectors({ seed: spec.seed, dimensions: t.dimensions });
  progress.step(`smoke: generating ${options.queryPoolSize} query and ${options.insertPoolSize} insert vectors`);
  const queries = vectors.take(streams.queries, options.queryPoolSize);
  const inserts = vectors.take(streams.inserts, options.insertPoolSize);
  const encode = (v: Float32Array): WireValue =>
    vectorEncoding === "binary" ? encodeVectorParam(t.type, v) : (pgvector.toSql(Array.from(v)) as string);
  return { vectors, queries, inserts, queryParams: queries.map(encode), insertParams: inserts.map(encode) };
}

/** Worker `w`'s connection through the pooler. */
async function openRunner(options: ResolvedSmokeOptions, w: number): Promise<OperationRunner> {
  return new OperationRunner(await connect(options.pooledUrl, `pgstack-smoke-${w}`), options.pipeline, options.namedStatements);
}

/** The clock of one scenario: warm-up from `started`, measured from `measureFrom` until `deadline` (performance.now()). */
interface ScenarioClock {
  readonly started: number;
  readonly measureFrom: number;
  readonly deadline: number;
}

/** What the workers of one scenario count between them. */
class Tally {
  readonly latency = new LatencyRecorder();
  readonly operations: Partial<Record<OpKind, number>> = {};
  /** The first few distinct error messages, passwords masked. */
  readonly errorSamples: string[] = [];
  errors = 0;
  /** Every operation started, warm-up included: the client CPU per operation divides by it. */
  allOps = 0;
  /**
   * The end of the measured time: the deadline, or later when an operation that started before it ended after it
   * (its latency is counted, so its time must be too).
   */
  lastEnd: number;

  constructor(clock: ScenarioClock) {
    this.lastEnd = clock.deadline;
  }
}

/** One scenario's raw numbers, before rounding and judging. */
interface Measurement {
  readonly latency: LatencyRecorder;
  readonly seconds: number;
  readonly errors: number;
  readonly errorSamples: string[];
  readonly operations: Partial<Record<OpKind, number>>;
  readonly cpuMsPerOp: number;
  readonly cpuCores: number;
}

export class SmokeSession {
  /** Position in the insert vectors, shared by all workers: each insert takes the next one, cycling at the end. */
  private insertCursor = 0;
  private readonly skipped: { name: ScenarioName; reason: string }[] = [];

  private constructor(
    /** Every option, resolved once (resolveSmokeOptions); the session reads nothing else of the caller's. */
    readonly options: ResolvedSmokeOptions,
    private readonly direct: Client,
    private readonly pools: VectorPools,
    private readonly prepared: PreparedTable,
    /** One per worker; a runner whose operation failed is replaced in place. */
    private readonly runners: OperationRunner[],
  ) {}

  get table(): BenchTable {
    return this.options.table;
  }
  get pipeline(): boolean {
    return this.options.pipeline;
  }
  get queryPoolSize(): number {
    return this.pools.queryParams.length;
  }
  get insertPoolSize(): number {
    return this.pools.insertParams.length;
  }
  /** Ids of the rows present before the run: updates and pgbench pick from this range. */
  get rowIds(): { min: number; max: number } {
    return { ...this.prepared.rowIds };
  }

  /**
   * Resolves `userOptions` (throwing every problem before anything connects), prepares the table and opens one
   * pooler connection per worker. On failure everything opened or created so far is closed or dropped.
   */
  static async open(userOptions: SmokeOptions): Promise<SmokeSession> {
    const options = resolveSmokeOptions(userOptions);
    const direct = await connect(options.directUrl, "pgstack-smoke-direct");
    const runners: OperationRunner[] = [];
    try {
      const pools = vectorPools(options);
      const prepared = await prepareTable(direct, options, pools.vectors, [...pools.queries, ...pools.inserts]);
      options.progress.step(`smoke: opening ${options.spec.concurrency} connections through the pooler`);
      for (let w = 0; w < options.spec.concurrency; w++) runners.push(await openRunner(options, w));
      return new SmokeSession(options, direct, pools, prepared, runners);
    } catch (error) {
      await release(options, direct, runners);
      throw maskedError(error, options.secrets);
    }
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
    const { queryParams, insertParams } = this.pools;
    const { filters, rowIds } = this.prepared;
    switch (name) {
      case "vector":
        if (kind === "search" || kind === "hybrid") return queryParams[rng.int(queryParams.length)];
        return insertParams[this.insertCursor++ % insertParams.length];
      case "filter":
        return filters[rng.int(filters.length)];
      case "qid":
        return String(1 + rng.int(queryParams.length));
      case "tier":
        return String(1 + rng.int(filterValues.length));
      case "pool_id":
        return String(queryParams.length + 1 + rng.int(insertParams.length));
      case "row_id":
        return String(rowIds.min + rng.int(rowIds.max - rowIds.min + 1));
    }
  }

  /** Runs one scenario; null when it cannot run on this table (recorded in `skipped`). */
  async runScenario(name: ScenarioName, overrides: ScenarioOverrides = {}): Promise<ScenarioResult | null> {
    try {
      return await this.runScenarioUnmasked(name, overrides);
    } catch (error) {
      throw maskedError(error, this.options.secrets, `smoke scenario ${name}`);
    }
  }

  private async runScenarioUnmasked(name: ScenarioName, overrides: ScenarioOverrides): Promise<ScenarioResult | null> {
    const spec = this.options.spec;
    const source = overrides.vectorSource ?? this.options.vectorSource;
    if (source === "stored" && !this.options.hasPool) {
      throw new Error(`vectorSource "stored" needs the pool table, which only a run with scratchTable or createTables creates`);
    }
    const ops = this.operations(name, source);
    if (typeof ops === "string") {
      this.skipped.push({ name, reason: ops });
      this.options.progress.warn(`smoke: ${name} skipped: ${ops}`);
      return null;
    }
    const seconds = overrides.durationSeconds ?? (name === "sustained" ? spec.sustainedSeconds : spec.durationSeconds);
    const warmup = overrides.warmupSeconds ?? spec.warmupSeconds;
    this.options.progress.step(`smoke: ${name} for ${seconds} s (+${warmup} s warm-up) at concurrency ${this.runners.length}`);
    const measured = await this.drive(chooser(name, ops), warmup * 1000, seconds * 1000, name);
    const quality = overrides.measureRecall === false ? {} : await this.quality(name);
    return scenarioResult(name, source, measured, quality, targetFor(name, spec.targets), this.table.indexName);
  }

  /** Recall@10 and the plan check of search and hybrid, on the direct connection with generated query vectors. */
  private async quality(name: ScenarioName): Promise<Quality> {
    if (name !== "search" && name !== "hybrid") return {};
    const template = name === "search" ? searchSql(this.table, "generated") : hybridSql(this.table, "generated");
    if (!template) return {};
    const plan = await this.checkPlan(template);
    return { plan, recallAt10: await this.recall(template) };
  }

  /** Closed-loop workers, one per pooler connection, for warm-up + measured time. */
  private async drive(choose: (rng: Rng) => PreparedOp, warmupMs: number, durationMs: number, label: string): Promise<Measurement> {
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    const clock: ScenarioClock = { started, measureFrom: started + warmupMs, deadline: started + warmupMs + durationMs };
    const tally = new Tally(clock);
    const progress = this.options.progress;
    const ticker = setInterval(() => {
      const now = performance.now();
      const fraction = Math.min(1, Math.max(0, (now - started) / (clock.deadline - started)));
      progress.advance(fraction, now < clock.measureFrom ? "warming up" : `${label}: ${tally.latency.count} ops`);
    }, 1000);
    try {
      await Promise.all(this.runners.map((_, w) => this.work(w, choose, clock, tally)));
    } finally {
      clearInterval(ticker);
    }
    const cpu = process.cpuUsage(cpuBefore);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    const wallMs = performance.now() - started;
    progress.advance(1, `${label}: ${tally.latency.count} ops`);
    return {
      latency: tally.latency,
      seconds: (tally.lastEnd - clock.measureFrom) / 1000,
      errors: tally.errors,
      errorSamples: tally.errorSamples,
      operations: tally.operations,
      cpuMsPerOp: tally.allOps > 0 ? cpuMs / tally.allOps : 0,
      cpuCores: wallMs > 0 ? cpuMs / wallMs : 0,
    };
  }

  /** Worker `w`'s closed loop until the deadline; only operations that start after the warm-up are counted. */
  private async work(w: number, choose: (rng: Rng) => PreparedOp, clock: ScenarioClock, tally: Tally): Promise<void> {
    // Each worker has its own stream: reproducible choices whatever the interleaving.
    const rng = createRng(streamSeed(this.options.spec.seed, streams.workerBase + w));
    for (;;) {
      const start = performance.now();
      if (start >= clock.deadline) return;
      const op = choose(rng);
      const values = op.params.map((p) => this.param(p, op.kind, rng));
      tally.allOps++;
      try {
        await this.runners[w].run(op.setLocal, op.statement, values);
        const end = performance.now();
        if (start >= clock.measureFrom) {
          tally.latency.recordMs(end - start);
          tally.operations[op.kind] = (tally.operations[op.kind] ?? 0) + 1;
          if (end > tally.lastEnd) tally.lastEnd = end;
        }
      } catch (error) {
        if (start >= clock.measureFrom) {
          tally.errors++;
          const message = maskSecrets(errorMessage(error), this.options.secrets);
          if (tally.errorSamples.length < 5 && !tally.errorSamples.includes(message)) tally.errorSamples.push(message);
        }
        await this.replaceRunner(w);
      }
    }
  }

  /** A failed operation may leave its connection inside an aborted transaction: start over with a new one. */
  private async replaceRunner(w: number): Promise<void> {
    await this.runners[w].client.end().catch(() => undefined);
    for (let attempt = 0; ; attempt++) {
      try {
        this.runners[w] = await openRunner(this.options, w);
        return;
      } catch (error) {
        if (attempt >= 4) throw maskedError(error, this.options.secrets);
        await new Promise((r) => setTimeout(r, 200 * (attempt + 1)));
      }
    }
  }

  /** Runs `template` on the direct connection for query vector `i` (filter value by i too), in its transaction. */
  private async queryOnce(template: SqlTemplate, i: number, setLocal = template.setLocal): Promise<TextRows> {
    const { text, params } = toNodeSql(template.template);
    const filters = this.prepared.filters;
    const values = params.map((p) => (p === "vector" ? encodeVectorParam(this.table.type, this.pools.queries[i]) : filters[i % filters.length]));
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
    const n = Math.min(this.options.spec.recallQueries, this.pools.queries.length);
    const recalls: number[] = [];
    for (let i = 0; i < n; i++) {
      const found = neighbours(await this.queryOnce(template, i));
      const truth = neighbours(await this.queryOnce(exact, i));
      recalls.push(recallAtK(found, truth, recallK));
    }
    return meanRecall(recalls);
  }

  result(scenarios: ScenarioResult[]): SmokeResult {
    const { options, prepared, table: t } = this;
    const { spec } = options;
    return {
      machine: options.machine,
      table: {
        name: t.table,
        column: t.column,
        type: t.type,
        dimensions: t.dimensions,
        metric: options.plan.metric,
        indexName: t.indexName,
        efSearch: t.efSearch,
        rows: prepared.startRows,
        scratch: options.tableSource === "scratch",
      },
      load: { rows: prepared.load.rows, rowsPerSec: roundTo(prepared.load.rowsPerSec, 1), seconds: roundTo(prepared.load.seconds, 3) },
      indexBuildSeconds: prepared.indexBuildSeconds === null ? null : roundTo(prepared.indexBuildSeconds, 3),
      run: {
        concurrency: spec.concurrency,
        durationSeconds: spec.durationSeconds,
        warmupSeconds: spec.warmupSeconds,
        sustainedSeconds: spec.sustainedSeconds,
        seed: spec.seed,
        vectorSource: options.vectorSource,
        vectorEncoding: options.vectorEncoding,
        pipeline: options.pipeline,
        namedStatements: options.namedStatements,
      },
      scenarios,
      skipped: [...this.skipped],
      pass: scenarios.every((s) => s.pass),
    };
  }

  /** Closes every connection and drops what the run created (unless `keepTables`). */
  async close(): Promise<void> {
    await release(this.options, this.direct, this.runners);
  }
}

/** Ends the pooler connections, drops the run's tables (smoke-table.ts) and ends the direct connection, whatever fails. */
async function release(options: ResolvedSmokeOptions, direct: Client, runners: OperationRunner[]): Promise<void> {
  await Promise.all(runners.map((r) => r.client.end().catch(() => undefined)));
  runners.length = 0;
  try {
    await dropRunTables(direct, options);
  } finally {
    await direct.end().catch(() => undefined);
  }
}

/** Recall and plan of a search or hybrid scenario; empty for the others or when not measured. */
interface Quality {
  readonly recallAt10?: number;
  readonly plan?: PlanCheck;
}

/** One scenario's numbers, rounded for the report, and the verdict against its target. */
function scenarioResult(
  name: ScenarioName,
  source: VectorSource,
  measured: Measurement,
  { recallAt10, plan }: Quality,
  target: ScenarioTarget,
  indexName: string,
): ScenarioResult {
  const latency = measured.latency.summary();
  const opsPerSec = measured.seconds > 0 ? measured.latency.count / measured.seconds : 0;
  const judgement = judgeScenario({ opsPerSec, p99Ms: latency.p99Ms, errors: measured.errors, usesIndex: plan?.usesIndex, indexName }, target);
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
