/**
 * The SQL of the smoke benchmark, written once and rendered twice: with `$n` parameters for node-postgres and with
 * `:name` variables for pgbench, so the two clients run the same statements and their throughput can be compared.
 *
 * Query rules from pgvector-facts §2: the HNSW index serves only `ORDER BY column <op> constant LIMIT k`; a filtered
 * query uses `hnsw.iterative_scan = relaxed_order` so it still returns its LIMIT, and must then be re-sorted outside a
 * MATERIALIZED CTE (`ORDER BY distance + 0`: on PostgreSQL 17 the `+ 0` keeps the planner from trusting the CTE's
 * order). Per-query settings are `SET LOCAL` inside BEGIN … COMMIT because a session SET does not survive PgBouncer's
 * transaction pooling (facts §7).
 */
import type { IndexPlanEntry, VectorType } from "../configs/hnsw";
import { quoteIdent } from "../configs/sql";
import { filterValues } from "./vectors";

/** The vector table a run works on: the plan's table, or a scratch table of the same layout. */
export interface BenchTable {
  readonly table: string;
  readonly column: string;
  readonly type: VectorType;
  readonly dimensions: number;
  readonly distanceOperator: string;
  readonly indexName: string;
  readonly filterColumns: readonly string[];
  readonly efSearch: number;
  /** The table of pre-generated query and insert vectors (`<table>_pool`), used by the `stored` vector source. */
  readonly poolTable: string;
}

export function benchTable(plan: IndexPlanEntry, scratchTable?: string): BenchTable {
  const table = scratchTable ?? plan.table;
  return {
    table,
    column: plan.column,
    type: plan.type,
    dimensions: plan.dimensions,
    distanceOperator: plan.distanceOperator,
    indexName: scratchTable ? `${scratchTable}_${plan.column}_hnsw_idx` : plan.indexName,
    filterColumns: plan.filterColumns,
    efSearch: plan.efSearch,
    poolTable: `${table}_pool`,
  };
}

/**
 * Where a statement's vectors and filter values come from:
 * - `generated`: the client sends them as parameters (binary vectors) — how an application queries;
 * - `stored`: the client sends small integers and the SQL fetches the vector from the pool table and the filter value
 *   from a fixed list — the only way pgbench can run these queries (`\set` is numeric), so Node in this mode runs
 *   byte-for-byte the statements pgbench runs.
 */
export type VectorSource = "generated" | "stored";

export type OpKind = "search" | "hybrid" | "insert" | "update";

/** The parameters a statement takes, by name; the names are pgbench's variables. */
export type ParamName = "vector" | "filter" | "qid" | "tier" | "pool_id" | "row_id";

/** A statement with `{{name}}` markers where parameters go. */
export interface SqlTemplate {
  readonly kind: OpKind;
  readonly template: string;
  /** `SET LOCAL …` statements run before it in the same transaction; none means it runs alone (autocommit). */
  readonly setLocal: readonly string[];
}

export const recallK = 10;

/** `SET LOCAL` takes no bind parameters, so the value is inlined: validated here as an integer in pgvector's range. */
export function efSearchSetting(efSearch: number): string {
  if (!Number.isInteger(efSearch) || efSearch < 1 || efSearch > 1000) {
    throw new Error(`hnsw.ef_search ${efSearch} must be an integer from 1 to 1000 (pgvector's range)`);
  }
  return `SET LOCAL hnsw.ef_search = ${efSearch}`;
}

export const relaxedOrderSetting = "SET LOCAL hnsw.iterative_scan = relaxed_order";
/** Ground truth: with index scans off no HNSW index can be used (HNSW has no bitmap scan), so the top k is exact. */
export const exactSetting = "SET LOCAL enable_indexscan = off";

function vectorExpr(t: BenchTable, source: VectorSource, idParam: ParamName): string {
  return source === "generated"
    ? `{{vector}}::${t.type}`
    : `(SELECT ${quoteIdent(t.column)} FROM ${quoteIdent(t.poolTable)} WHERE id = {{${idParam}}})`;
}

function filterExpr(source: VectorSource): string {
  // Tiers are 1-based in the stored form because pgbench's random(1, n) and SQL arrays are.
  return source === "generated"
    ? "{{filter}}"
    : `(ARRAY[${filterValues.map((v) => `'${v}'`).join(", ")}])[{{tier}}]`;
}

/** `SELECT id, distance … ORDER BY distance LIMIT 10`: the ORDER BY names the output column so the vector appears once. */
export function searchSql(t: BenchTable, source: VectorSource): SqlTemplate {
  const c = quoteIdent(t.column);
  return {
    kind: "search",
    template: `SELECT id, ${c} ${t.distanceOperator} ${vectorExpr(t, source, "qid")} AS distance FROM ${quoteIdent(t.table)} ORDER BY distance LIMIT ${recallK}`,
    setLocal: [efSearchSetting(t.efSearch)],
  };
}

export function hybridSql(t: BenchTable, source: VectorSource): SqlTemplate | null {
  if (t.filterColumns.length === 0) return null;
  const c = quoteIdent(t.column);
  const f = quoteIdent(t.filterColumns[0]);
  return {
    kind: "hybrid",
    template:
      `WITH r AS MATERIALIZED (SELECT id, ${c} ${t.distanceOperator} ${vectorExpr(t, source, "qid")} AS distance ` +
      `FROM ${quoteIdent(t.table)} WHERE ${f} = ${filterExpr(source)} ORDER BY distance LIMIT ${recallK}) ` +
      `SELECT id, distance FROM r ORDER BY distance + 0`,
    setLocal: [efSearchSetting(t.efSearch), relaxedOrderSetting],
  };
}

export function insertSql(t: BenchTable, source: VectorSource): SqlTemplate {
  const columns = [...t.filterColumns, t.column].map(quoteIdent).join(", ");
  const values = [...t.filterColumns.map(() => filterExpr(source)), vectorExpr(t, source, "pool_id")].join(", ");
  return {
    kind: "insert",
    template: `INSERT INTO ${quoteIdent(t.table)} (${columns}) VALUES (${values})`,
    setLocal: [],
  };
}

export function updateSql(t: BenchTable, source: VectorSource): SqlTemplate {
  return {
    kind: "update",
    template: `UPDATE ${quoteIdent(t.table)} SET ${quoteIdent(t.column)} = ${vectorExpr(t, source, "pool_id")} WHERE id = {{row_id}}`,
    setLocal: [],
  };
}

/** The same query with index scans off: the exact top 10 that recall is measured against. */
export function exactSql(query: SqlTemplate): SqlTemplate {
  return { ...query, setLocal: [exactSetting] };
}

/** `$1, $2 …` in order of first appearance, and the parameter names in that order. */
export function toNodeSql(template: string): { text: string; params: ParamName[] } {
  const params: ParamName[] = [];
  const text = template.replace(/\{\{([a-z_]+)\}\}/g, (_, name: ParamName) => {
    let i = params.indexOf(name);
    if (i < 0) i = params.push(name) - 1;
    return `$${i + 1}`;
  });
  return { text, params };
}

/** pgbench's `:name` variables (in `-M prepared` pgbench turns them into bind parameters). */
export function toPgbenchSql(template: string): string {
  return template.replace(/\{\{([a-z_]+)\}\}/g, (_, name: string) => `:${name}`);
}

/** One line for people ("Limit > Index Scan using memories_embedding_hnsw_idx") and whether `indexName` is used. */
export interface PlanCheck {
  readonly shape: string;
  readonly usesIndex: boolean;
  /**
   * The generic plan (PostgreSQL 16+ `EXPLAIN (GENERIC_PLAN)`): a named prepared statement switches to it after five
   * executions when it looks no worse, so a generic plan without the HNSW index would slow every query that follows.
   */
  readonly generic?: { readonly shape: string; readonly usesIndex: boolean };
}

interface ExplainNode {
  "Node Type": string;
  "Index Name"?: string;
  "Relation Name"?: string;
  "CTE Name"?: string;
  "Parent Relationship"?: string;
  "Subplan Name"?: string;
  Plans?: ExplainNode[];
}

/**
 * Reads `EXPLAIN (FORMAT JSON)` output into one line: the main chain of nodes joined by " > ", siblings in brackets,
 * then each CTE or sub-plan after a semicolon under its name:
 * "Sort > CTE Scan on r; CTE r: Limit > Index Scan using memories_embedding_hnsw_idx".
 */
export function planShape(explain: unknown, indexName: string): PlanCheck {
  const root = extractPlan(explain);
  let usesIndex = false;
  const subplans: string[] = [];
  const isSubplan = (n: ExplainNode) =>
    (n["Parent Relationship"] === "InitPlan" || n["Parent Relationship"] === "SubPlan") && n["Subplan Name"] !== undefined;
  const describe = (node: ExplainNode): string => {
    let label = node["Node Type"];
    if (node["Index Name"]) {
      label += ` using ${node["Index Name"]}`;
      if (node["Index Name"] === indexName) usesIndex = true;
    } else if (node["Node Type"] === "CTE Scan" && node["CTE Name"]) {
      label += ` on ${node["CTE Name"]}`;
    } else if (node["Relation Name"]) {
      label += ` on ${node["Relation Name"]}`;
    }
    const all = node.Plans ?? [];
    for (const sub of all.filter(isSubplan)) subplans.push(`${sub["Subplan Name"]}: ${describe(sub)}`);
    const children = all.filter((n) => !isSubplan(n));
    if (children.length === 0) return label;
    if (children.length === 1) return `${label} > ${describe(children[0])}`;
    return `${label} > [${children.map(describe).join(", ")}]`;
  };
  const main = describe(root);
  return { shape: [main, ...subplans].join("; "), usesIndex };
}

function extractPlan(explain: unknown): ExplainNode {
  // node-postgres returns the json column parsed: [{ Plan: {...} }]; accept a JSON string too.
  const value = typeof explain === "string" ? (JSON.parse(explain) as unknown) : explain;
  const first = Array.isArray(value) ? (value[0] as unknown) : value;
  const plan = (first as { Plan?: ExplainNode } | null)?.Plan;
  if (!plan || typeof plan["Node Type"] !== "string") {
    throw new Error(`EXPLAIN (FORMAT JSON) output has no Plan: ${JSON.stringify(explain).slice(0, 200)}`);
  }
  return plan;
}
