/**
 * The HNSW index plan: one entry per vector table, with pgvector parameters, operator class, stable names and DDL.
 * Pure data; `postdeploy/indexes.ts` applies it to a live database.
 */
import { quoteIdent } from "./sql";

export type VectorMetric = "cosine" | "l2" | "inner_product";
export type VectorType = "vector" | "halfvec";

/** pgvector 0.8: HNSW indexes `vector` up to 2,000 dimensions and `halfvec` up to 4,000. */
export const hnswMaxDimensions: Readonly<Record<VectorType, number>> = { vector: 2000, halfvec: 4000 };

export interface VectorTableSpec {
  readonly table: string;
  readonly column: string;
  readonly dimensions: number;
  readonly metric: VectorMetric;
  /** `halfvec` halves the row and allows up to 4,000 dimensions. Defaults to `vector` up to 2,000, `halfvec` above. */
  readonly type: VectorType;
  /** Text columns used as filters by hybrid queries (the guide filters on `tier`). Each gets a B-tree when the stack creates the table. */
  readonly filterColumns: readonly string[];
  /** HNSW `m`; when absent, from the guide's table by dimensions (see `guideParameters`). */
  readonly m?: number;
  /** HNSW `ef_construction`; when absent, from the guide's table by dimensions. */
  readonly efConstruction?: number;
  /** `hnsw.ef_search` set per query with SET LOCAL. pgvector's default is 40. */
  readonly efSearch: number;
  /** Create the table itself (dev and perf stacks); otherwise the application owns it. */
  readonly createTable: boolean;
}

export interface IndexBuildSettings {
  /** Session maintenance_work_mem for the build, in PostgreSQL units ("2GB"). */
  readonly maintenanceWorkMem: string;
  /** Session max_parallel_maintenance_workers for the build. */
  readonly maxParallelMaintenanceWorkers: number;
}

/** How the vector column is kept so PostgreSQL can build the index in parallel and the planner costs it right. */
export type VectorStorage = "plain" | "parallel-workers-reloption" | "default";

export interface IndexPlanEntry {
  readonly table: string;
  readonly column: string;
  readonly dimensions: number;
  readonly type: VectorType;
  readonly metric: VectorMetric;
  readonly opclass: string;
  /** The SQL distance operator that uses this index (`<=>` for cosine). */
  readonly distanceOperator: string;
  readonly indexName: string;
  readonly m: number;
  readonly efConstruction: number;
  readonly efSearch: number;
  readonly filterColumns: readonly string[];
  /** Bytes of one stored vector: 4 per dimension (2 for halfvec) plus an 8-byte header. */
  readonly vectorBytes: number;
  readonly storage: VectorStorage;
  readonly build: IndexBuildSettings;
  /** `CREATE TABLE IF NOT EXISTS …` plus filter B-trees, or null when the application owns the table. */
  readonly createTableSql: readonly string[] | null;
  /** `ALTER TABLE … SET STORAGE PLAIN` or `… SET (parallel_workers = n)`, or null (also when no parallel worker is allowed: 0 would turn off parallel scans too). */
  readonly storageSql: string | null;
  readonly createIndexSql: string;
}

/**
 * The guide's "Index Configuration": 384 → m 16 / ef_construction 64, 768 → 16 / 128, 1536 → 48 / 200.
 * Between and beyond, the step containing the size: up to 512 dimensions as 384, up to 1,024 as 768, above as 1536
 * (larger vectors need more links per node to keep recall, and a wider candidate list while building).
 */
export function guideParameters(dimensions: number): { m: number; efConstruction: number } {
  if (dimensions <= 512) return { m: 16, efConstruction: 64 };
  if (dimensions <= 1024) return { m: 16, efConstruction: 128 };
  return { m: 48, efConstruction: 200 };
}

const operatorClassSuffix: Readonly<Record<VectorMetric, string>> = {
  cosine: "cosine_ops",
  l2: "l2_ops",
  inner_product: "ip_ops",
};

const distanceOperators: Readonly<Record<VectorMetric, string>> = {
  cosine: "<=>",
  l2: "<->",
  inner_product: "<#>",
};

export function vectorBytes(type: VectorType, dimensions: number): number {
  return (type === "halfvec" ? 2 : 4) * dimensions + 8;
}

/**
 * pgvector stores vectors EXTERNAL, so one larger than TOAST_TUPLE_THRESHOLD (~2 kB; a 768-dim vector is 3,080 bytes)
 * goes out of line. Then PostgreSQL plans the HNSW build with zero parallel workers (it sizes workers from the heap,
 * which holds only TOAST pointers), and the planner under-costs heap access so a filter's B-tree can win over HNSW.
 * PLAIN keeps the vector in the heap row; that is possible while the row fits an 8 kB page, so we leave 1 kB for the
 * other columns. Above that the `parallel_workers` reloption at least restores the parallel build.
 */
const toastThresholdBytes = 2032;
const plainRowBudgetBytes = 8160 - 1024;

export function vectorStorage(bytes: number): VectorStorage {
  if (bytes <= toastThresholdBytes) return "default";
  return bytes <= plainRowBudgetBytes ? "plain" : "parallel-workers-reloption";
}

/** PostgreSQL truncates identifiers to 63 bytes silently; a stable name must survive that, so long ones are refused. */
export const maxIdentifierBytes = 63;

export function indexName(table: string, column: string): string {
  const name = `${table}_${column}_hnsw_idx`;
  if (Buffer.byteLength(name) > maxIdentifierBytes) {
    throw new Error(`index name ${name} is longer than PostgreSQL's ${maxIdentifierBytes} bytes; shorten the table or column name`);
  }
  return name;
}

/** pgvector's own limits, checked here so a bad plan fails when rendered instead of when the build starts. */
function planProblems(table: VectorTableSpec, m: number, efConstruction: number): string[] {
  const problems: string[] = [];
  if (m < 2 || m > 100) problems.push(`m ${m} is outside 2–100`);
  if (efConstruction < 2 * m || efConstruction > 1000) problems.push(`ef_construction ${efConstruction} must be from 2 × m = ${2 * m} to 1000`);
  if (table.dimensions > hnswMaxDimensions[table.type]) {
    problems.push(`${table.dimensions} dimensions exceed HNSW's ${hnswMaxDimensions[table.type]} for ${table.type}`);
  }
  return problems;
}

export function planIndex(table: VectorTableSpec, build: IndexBuildSettings): IndexPlanEntry {
  const guide = guideParameters(table.dimensions);
  const m = table.m ?? guide.m;
  const efConstruction = table.efConstruction ?? guide.efConstruction;
  const problems = planProblems(table, m, efConstruction);
  if (problems.length > 0) throw new Error(`${table.table}.${table.column}: ${problems.join("; ")}`);
  const bytes = vectorBytes(table.type, table.dimensions);
  const storage = vectorStorage(bytes);
  const name = indexName(table.table, table.column);
  const opclass = `${table.type}_${operatorClassSuffix[table.metric]}`;
  const t = quoteIdent(table.table);
  const c = quoteIdent(table.column);
  const createTableSql = table.createTable
    ? [
        `CREATE TABLE IF NOT EXISTS ${t} (id bigserial PRIMARY KEY, ${table.filterColumns
          .map((f) => `${quoteIdent(f)} text NOT NULL`)
          .join(", ")}${table.filterColumns.length > 0 ? ", " : ""}${c} ${table.type}(${table.dimensions}) NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`,
        ...table.filterColumns.map(
          (f) => `CREATE INDEX IF NOT EXISTS ${quoteIdent(`${table.table}_${f}_btree_idx`)} ON ${t} (${quoteIdent(f)})`,
        ),
      ]
    : null;
  const storageSql =
    storage === "plain"
      ? `ALTER TABLE ${t} ALTER COLUMN ${c} SET STORAGE PLAIN`
      : storage === "parallel-workers-reloption" && build.maxParallelMaintenanceWorkers > 0
        ? `ALTER TABLE ${t} SET (parallel_workers = ${build.maxParallelMaintenanceWorkers})`
        : null;
  return {
    table: table.table,
    column: table.column,
    dimensions: table.dimensions,
    type: table.type,
    metric: table.metric,
    opclass,
    distanceOperator: distanceOperators[table.metric],
    indexName: name,
    m,
    efConstruction,
    efSearch: table.efSearch,
    filterColumns: table.filterColumns,
    vectorBytes: bytes,
    storage,
    build,
    createTableSql,
    storageSql,
    createIndexSql: `CREATE INDEX CONCURRENTLY IF NOT EXISTS ${quoteIdent(name)} ON ${t} USING hnsw (${c} ${opclass}) WITH (m = ${m}, ef_construction = ${efConstruction})`,
  };
}

export function planIndexes(tables: readonly VectorTableSpec[], build: IndexBuildSettings): IndexPlanEntry[] {
  return tables.map((t) => planIndex(t, build));
}

/** The plan as one SQL file a reviewer can read (`rendered/<stack>/hnsw-plan.sql`). */
export function renderIndexPlanSql(plan: readonly IndexPlanEntry[]): string {
  const lines = ["-- HNSW index plan rendered by pgvector-stack; applied by the post-deploy hook (postdeploy/indexes.ts)."];
  for (const e of plan) {
    lines.push(
      "",
      `-- ${e.table}.${e.column}: ${e.type}(${e.dimensions}) ${e.metric}, ${e.vectorBytes} bytes per vector, storage ${e.storage}`,
      `-- build with maintenance_work_mem = ${e.build.maintenanceWorkMem}, max_parallel_maintenance_workers = ${e.build.maxParallelMaintenanceWorkers}; queries SET LOCAL hnsw.ef_search = ${e.efSearch}`,
    );
    for (const s of e.createTableSql ?? []) lines.push(`${s};`);
    if (e.storageSql) lines.push(`${e.storageSql};`);
    lines.push(`${e.createIndexSql};`);
  }
  return `${lines.join("\n")}\n`;
}
