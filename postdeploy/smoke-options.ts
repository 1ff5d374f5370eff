/**
 * The smoke benchmark's options: what a caller gives (`SmokeOptions`, most of it optional) and what a run reads
 * (`ResolvedSmokeOptions`). `resolveSmokeOptions` makes every check and applies every default once, before anything
 * connects: a bad combination is reported with all its problems up front instead of halfway through a run, and no
 * later step re-derives a default (which is how two steps come to disagree about one).
 */
import * as os from "node:os";
import type { BenchmarkSpec } from "../configs/benchmark";
import type { IndexPlanEntry } from "../configs/hnsw";
import { silentProgress, type Progress } from "../configs/progress";
import { urlPasswords } from "../configs/secrets";
import { scenarioNames, type ScenarioName } from "./smoke-judge";
import { benchTable, type BenchTable, type VectorSource } from "./smoke-sql";
import { maxStoredDimensions } from "./vector-binary";

/** How vectors travel as parameters: binary (default, +17 % q/s measured) or pgvector's text `toSql`, to compare. */
export type VectorEncoding = "binary" | "text";

export interface Machine {
  readonly cores: number;
  readonly memoryBytes: number;
}

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

/**
 * Where a run's rows come from:
 * - `scratch`: a table of the plan's layout under another name, created, loaded, indexed and dropped by the run;
 * - `create`: the plan's own table, created when missing and loaded when empty (the dev and perf stacks own it);
 * - `given`: the plan's table as the application filled it; the run creates and drops nothing.
 */
export type TableSource = "scratch" | "create" | "given";

/** Every option with its default applied; frozen. A session reads these and nothing else of the caller's. */
export interface ResolvedSmokeOptions extends Pick<SmokeOptions, "pooledUrl" | "directUrl" | "plan" | "spec"> {
  readonly progress: Progress;
  readonly tableSource: TableSource;
  /** The table the run measures: the scratch table, or the plan's own. */
  readonly table: BenchTable;
  /**
   * The run creates `table.poolTable`, the stored query and insert vectors that pgbench and the `stored` source
   * need: scratch and create runs, whose table the run owns.
   */
  readonly hasPool: boolean;
  readonly keepTables: boolean;
  readonly scenarios: readonly ScenarioName[];
  readonly vectorSource: VectorSource;
  readonly vectorEncoding: VectorEncoding;
  readonly pipeline: boolean;
  readonly namedStatements: boolean;
  readonly machine: Machine;
  /** Never fewer than `spec.recallQueries`: recall is measured on the first query vectors. */
  readonly queryPoolSize: number;
  readonly insertPoolSize: number;
  /** The passwords of both URLs, in every form: masked in every error and error sample the run reports. */
  readonly secrets: readonly string[];
}

export const defaultQueryPoolSize = 1000;
export const defaultInsertPoolSize = 10_000;

/** A memory size PostgreSQL's SET accepts (the plan renders one with configs/units.ts pgMemory). */
const pgMemorySize = /^\d+\s*(kB|MB|GB|TB)?$/;

function tableSourceOf(options: SmokeOptions): TableSource {
  if (options.scratchTable !== undefined) return "scratch";
  return options.createTables ? "create" : "given";
}

/** Everything wrong with `options`, each naming the option, its value and what would be right. */
export function smokeOptionProblems(options: SmokeOptions): string[] {
  const { spec, plan, scratchTable } = options;
  const problems: string[] = [];
  const source = tableSourceOf(options);
  if (scratchTable !== undefined && options.createTables) {
    problems.push(`scratchTable "${scratchTable}" and createTables both given: a run uses a scratch table or creates the plan's table, not both`);
  }
  if (scratchTable === "") problems.push(`scratchTable "" is empty; give the scratch table a name, or leave scratchTable out`);
  if (scratchTable !== undefined && scratchTable === plan.table) {
    problems.push(`scratchTable "${scratchTable}" is the plan's own table; a scratch table is dropped after the run, so give it another name`);
  }
  if (options.createTables && !plan.createTableSql) {
    problems.push(`createTables is set but ${plan.table} is owned by the application (its plan has no createTableSql); use scratchTable instead`);
  }
  if (options.vectorSource === "stored" && source === "given") {
    problems.push(`vectorSource "stored" needs the pool table, which only a run with scratchTable or createTables creates`);
  }
  if (!Number.isInteger(spec.concurrency) || spec.concurrency < 1) {
    problems.push(`benchmark concurrency ${spec.concurrency} must be a positive integer`);
  }
  for (const [key, value] of Object.entries({
    durationSeconds: spec.durationSeconds,
    warmupSeconds: spec.warmupSeconds,
    sustainedSeconds: spec.sustainedSeconds,
  })) {
    if (!(value >= 0)) problems.push(`benchmark ${key} ${value} must be ≥ 0`);
  }
  for (const [key, value] of Object.entries({ queryPoolSize: options.queryPoolSize, insertPoolSize: options.insertPoolSize })) {
    if (value !== undefined && !(Number.isInteger(value) && value >= 1)) problems.push(`${key} ${value} must be a positive integer`);
  }
  for (const name of options.scenarios ?? []) {
    if (!scenarioNames.includes(name)) problems.push(`scenario "${name}" is not one of ${scenarioNames.join(", ")}`);
  }
  if (plan.dimensions > maxStoredDimensions) {
    problems.push(`${plan.table}.${plan.column}: ${plan.dimensions} dimensions exceed pgvector's ${maxStoredDimensions.toLocaleString("en")}`);
  }
  // Only a run that builds the index sets maintenance_work_mem; a given table's index is the index manager's.
  if (source !== "given" && !pgMemorySize.test(plan.build.maintenanceWorkMem)) {
    problems.push(`maintenance_work_mem "${plan.build.maintenanceWorkMem}" is not a PostgreSQL memory size such as 2GB`);
  }
  return problems;
}

/** `options` checked (all problems in one error) and completed with every default, frozen. */
export function resolveSmokeOptions(options: SmokeOptions): ResolvedSmokeOptions {
  const problems = smokeOptionProblems(options);
  if (problems.length > 0) throw new Error(problems.join("; "));
  const tableSource = tableSourceOf(options);
  return Object.freeze({
    pooledUrl: options.pooledUrl,
    directUrl: options.directUrl,
    plan: options.plan,
    spec: options.spec,
    progress: options.progress ?? silentProgress,
    tableSource,
    table: Object.freeze(benchTable(options.plan, options.scratchTable)),
    hasPool: tableSource !== "given",
    keepTables: options.keepTables ?? false,
    scenarios: Object.freeze([...(options.scenarios ?? scenarioNames)]),
    vectorSource: options.vectorSource ?? "generated",
    vectorEncoding: options.vectorEncoding ?? "binary",
    pipeline: options.pipeline ?? true,
    namedStatements: options.namedStatements ?? true,
    machine: Object.freeze({ ...(options.machine ?? { cores: os.cpus().length, memoryBytes: os.totalmem() }) }),
    queryPoolSize: Math.max(options.queryPoolSize ?? defaultQueryPoolSize, options.spec.recallQueries),
    insertPoolSize: options.insertPoolSize ?? defaultInsertPoolSize,
    secrets: Object.freeze(urlPasswords([options.pooledUrl, options.directUrl])),
  });
}
