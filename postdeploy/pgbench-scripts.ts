/**
 * pgbench custom scripts equivalent to the Node smoke scenarios, so "is the Node client the bottleneck?" has an
 * answer: run the same statements with pgbench (C, libpq) and compare throughput.
 *
 * Equivalence: the statements are rendered from the same templates as Node's `stored` vector source
 * (smoke-sql.ts). pgbench's `\set` is numeric only, so the query vector is fetched by a random id from the pool table
 * and the filter value by a random index from a fixed list — and Node in `stored` mode sends exactly those ids.
 * Same SET LOCALs, same transaction shape, and with `pipeline` the same single round trip (`\startpipeline`, which
 * pgbench supports in `-M prepared`).
 */
import type { OpKind, BenchTable } from "./smoke-sql";
import { hybridSql, insertSql, searchSql, toPgbenchSql, updateSql, type SqlTemplate } from "./smoke-sql";
import { filterValues } from "./vectors";
import type { ScenarioName } from "./smoke-judge";

export interface PoolLayout {
  /** Pool ids 1..queries are query vectors. */
  readonly queries: number;
  /** Pool ids queries+1..queries+inserts are insert vectors. */
  readonly inserts: number;
  /** Ids of the rows updates pick from. */
  readonly rowIds: { readonly min: number; readonly max: number };
}

export type PgbenchScripts = Readonly<Partial<Record<OpKind, string>>>;

function variables(template: SqlTemplate, pool: PoolLayout): string[] {
  const lines: string[] = [];
  if (template.template.includes("{{qid}}")) lines.push(`\\set qid random(1, ${pool.queries})`);
  if (template.template.includes("{{tier}}")) lines.push(`\\set tier random(1, ${filterValues.length})`);
  if (template.template.includes("{{pool_id}}")) {
    lines.push(`\\set pool_id random(${pool.queries + 1}, ${pool.queries + pool.inserts})`);
  }
  if (template.template.includes("{{row_id}}")) lines.push(`\\set row_id random(${pool.rowIds.min}, ${pool.rowIds.max})`);
  return lines;
}

/** One script: variables, then the operation's transaction, pipelined when Node pipelines. */
export function renderPgbenchScript(template: SqlTemplate, pool: PoolLayout, pipeline: boolean): string {
  const statements =
    template.setLocal.length > 0
      ? ["BEGIN;", ...template.setLocal.map((s) => `${s};`), `${toPgbenchSql(template.template)};`, "COMMIT;"]
      : [`${toPgbenchSql(template.template)};`];
  const body = pipeline && statements.length > 1 ? ["\\startpipeline", ...statements, "\\endpipeline"] : statements;
  return `${[`-- pgvector-stack smoke: ${template.kind}`, ...variables(template, pool), ...body].join("\n")}\n`;
}

export function renderPgbenchScripts(t: BenchTable, pool: PoolLayout, pipeline: boolean): PgbenchScripts {
  const hybrid = hybridSql(t, "stored");
  return {
    search: renderPgbenchScript(searchSql(t, "stored"), pool, pipeline),
    ...(hybrid ? { hybrid: renderPgbenchScript(hybrid, pool, pipeline) } : {}),
    insert: renderPgbenchScript(insertSql(t, "stored"), pool, pipeline),
    update: renderPgbenchScript(updateSql(t, "stored"), pool, pipeline),
  };
}

/** Which scripts a scenario runs, with pgbench's `@weight`: mixed is the guide's 40/50/10. */
export function scriptWeights(scenario: ScenarioName): { kind: OpKind; weight: number }[] {
  switch (scenario) {
    case "insert":
      return [{ kind: "insert", weight: 1 }];
    case "search":
      return [{ kind: "search", weight: 1 }];
    case "hybrid":
      return [{ kind: "hybrid", weight: 1 }];
    case "mixed":
    case "sustained":
      return [
        { kind: "insert", weight: 40 },
        { kind: "search", weight: 50 },
        { kind: "update", weight: 10 },
      ];
  }
}

export interface PgbenchSummary {
  /** Transactions per second, without initial connection time. */
  readonly tps: number;
  readonly transactions: number;
  readonly failed: number;
  readonly latencyAverageMs: number | null;
  /**
   * With -C (a new connection per transaction): pgbench's "average connection time", ms; then `tps` includes the
   * reconnections.
   */
  readonly averageConnectionMs?: number;
}

/** Reads pgbench's closing summary (PostgreSQL 15–17 wording), with or without -C. */
export function parsePgbenchOutput(output: string): PgbenchSummary {
  const tps = /^tps = ([\d.]+) \(without initial connection time\)/m.exec(output) ?? /^tps = ([\d.]+)/m.exec(output);
  if (!tps) throw new Error(`pgbench printed no "tps = …" line:\n${output.slice(-1500)}`);
  const processed = /number of transactions actually processed: (\d+)/.exec(output);
  const failed = /number of failed transactions: (\d+)/.exec(output);
  const latency = /latency average = ([\d.]+) ms/.exec(output);
  const connection = /^average connection time = ([\d.]+) ms/m.exec(output);
  return {
    tps: Number(tps[1]),
    transactions: processed ? Number(processed[1]) : 0,
    failed: failed ? Number(failed[1]) : 0,
    latencyAverageMs: latency ? Number(latency[1]) : null,
    ...(connection ? { averageConnectionMs: Number(connection[1]) } : {}),
  };
}

export interface PgbenchComparison {
  readonly scenario: ScenarioName;
  readonly concurrency: number;
  readonly seconds: number;
  /** Node running the same statements as pgbench (stored vector source). */
  readonly nodeOpsPerSec: number;
  readonly pgbenchTps: number;
  /** nodeOpsPerSec / pgbenchTps; the issue asks for ≥ 0.9. */
  readonly ratio: number;
  /** Node as an application runs it (binary vector parameters), when measured. */
  readonly nodeGeneratedOpsPerSec?: number;
  readonly pgbenchFailed: number;
  readonly nodeErrors: number;
  /** Cores the Node process kept busy during its run (1.0 = one core saturated: then Node is the bottleneck). */
  readonly nodeClientCpuCores?: number;
}

/** The issue's bar: the Node client reaches at least 90 % of pgbench on the same statements. */
export const nodeToPgbenchTarget = 0.9;

export function comparisonRow(input: Omit<PgbenchComparison, "ratio">): PgbenchComparison {
  const ratio = input.pgbenchTps > 0 ? Math.round((input.nodeOpsPerSec / input.pgbenchTps) * 1000) / 1000 : 0;
  return { ...input, ratio };
}
