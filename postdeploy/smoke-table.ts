/**
 * The table a smoke run measures, made ready over the DIRECT connection before the first scenario (see
 * smoke-options.ts `TableSource`): a scratch table is created, loaded and indexed; the plan's own table is created
 * and loaded when missing or empty; a given table is only checked. Then the pool table of stored vectors, when the
 * run owns its table. What the scenarios need to know about the table comes back as one frozen `PreparedTable`.
 */
import type { Client } from "pg";
import { quoteIdent, quoteLiteral } from "../configs/sql";
import { copyRows, loadBenchmarkRows, type LoadResult } from "./load";
import type { ResolvedSmokeOptions } from "./smoke-options";
import { encodeVectorParam } from "./vector-binary";
import { filterValues, type ClusteredVectors } from "./vectors";

export interface PreparedTable {
  /** Filter values the hybrid query and inserts use: the generator's tiers, or the values a given table holds. */
  readonly filters: readonly string[];
  /** Ids of the rows present before the run: updates and pgbench pick from this range. */
  readonly rowIds: { readonly min: number; readonly max: number };
  /** Rows when the run started (an estimate for a table the run did not load). */
  readonly startRows: number;
  readonly load: LoadResult;
  /** Seconds the HNSW build took when this run built the index, else null. */
  readonly indexBuildSeconds: number | null;
}

/** What creating a table left behind: the rows loaded and the index build, when there were any. */
interface Created {
  readonly load: LoadResult;
  readonly indexBuildSeconds: number | null;
}

const nothingLoaded: LoadResult = { rows: 0, seconds: 0, rowsPerSec: 0 };

/**
 * Makes the run's table ready and reads back what the scenarios need. `vectors` loads the rows; `stored` is every
 * query and insert vector, in that order, for the pool table (ids from 1, as pgbench's statements expect).
 */
export async function prepareTable(
  direct: Client,
  options: ResolvedSmokeOptions,
  vectors: ClusteredVectors,
  stored: readonly Float32Array[],
): Promise<PreparedTable> {
  const steps = new TableSteps(direct, options);
  let created: Created = { load: nothingLoaded, indexBuildSeconds: null };
  let filters = filterValues;
  switch (options.tableSource) {
    case "scratch":
      created = await steps.createScratch(vectors);
      break;
    case "create":
      created = await steps.createPlanTable(vectors);
      break;
    case "given":
      await steps.checkGivenTable();
      filters = await steps.filterValuesInUse();
      break;
  }
  if (options.hasPool) await steps.createPool(stored);
  const rowIds = await steps.rowIds();
  const startRows = created.load.rows > 0 ? created.load.rows : await steps.estimatedRows();
  return Object.freeze({ filters, rowIds: Object.freeze(rowIds), startRows, ...created });
}

/** Drops what the run created (the scratch table, the pool table) unless `keepTables`; a given table is never touched. */
export async function dropRunTables(direct: Client, options: ResolvedSmokeOptions): Promise<void> {
  if (options.keepTables) return;
  const { table, poolTable } = options.table;
  if (options.tableSource === "scratch") await direct.query(`DROP TABLE IF EXISTS ${quoteIdent(table)}, ${quoteIdent(poolTable)}`);
  else if (options.hasPool) await direct.query(`DROP TABLE IF EXISTS ${quoteIdent(poolTable)}`);
}

/** The SQL steps, each on the direct connection. */
class TableSteps {
  constructor(
    private readonly direct: Client,
    private readonly options: ResolvedSmokeOptions,
  ) {}

  async createScratch(vectors: ClusteredVectors): Promise<Created> {
    const { table: t, plan } = this.options;
    const q = quoteIdent;
    this.options.progress.step(`smoke: creating scratch table ${t.table}`);
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
    const load = await this.loadRows(vectors);
    for (const f of t.filterColumns) {
      await this.direct.query(`CREATE INDEX ${q(`${t.table}_${f}_btree_idx`)} ON ${q(t.table)} (${q(f)})`);
    }
    const indexBuildSeconds = await this.buildIndex(
      `CREATE INDEX ${q(t.indexName)} ON ${q(t.table)} USING hnsw (${q(t.column)} ${plan.opclass}) WITH (m = ${plan.m}, ef_construction = ${plan.efConstruction})`,
    );
    return { load, indexBuildSeconds };
  }

  /** The plan's own table (resolveSmokeOptions made sure the plan has its createTableSql). */
  async createPlanTable(vectors: ClusteredVectors): Promise<Created> {
    const { table: t, plan } = this.options;
    this.options.progress.step(`smoke: creating ${t.table} when missing`);
    for (const sql of plan.createTableSql ?? []) await this.direct.query(sql);
    let load = nothingLoaded;
    const empty = await this.direct.query(`SELECT 1 FROM ${quoteIdent(t.table)} LIMIT 1`);
    if (empty.rowCount === 0) {
      if (plan.storageSql) await this.direct.query(plan.storageSql);
      load = await this.loadRows(vectors);
    }
    const existing = await this.direct.query(`SELECT 1 FROM pg_indexes WHERE indexname = $1`, [t.indexName]);
    if (existing.rowCount !== 0) {
      await this.direct.query(`ANALYZE ${quoteIdent(t.table)}`);
      return { load, indexBuildSeconds: null };
    }
    return { load, indexBuildSeconds: await this.buildIndex(plan.createIndexSql) };
  }

  async checkGivenTable(): Promise<void> {
    const { table: t } = this.options;
    const found = await this.direct.query(`SELECT 1 FROM pg_indexes WHERE tablename = $1 AND indexname = $2`, [t.table, t.indexName]);
    if (found.rowCount === 0) {
      throw new Error(`table ${t.table} has no index ${t.indexName}: build the plan's indexes first, or pass scratchTable / createTables`);
    }
  }

  /**
   * A filter value the table does not hold would make every hybrid query an unsatisfiable filter, which an iterative
   * scan walks to hnsw.max_scan_tuples (pgvector-facts §2: 183 ms instead of 5 ms). So for a table the run did not
   * fill, filter on its most common values (the planner's statistics; a sample when there are none).
   */
  async filterValuesInUse(): Promise<readonly string[]> {
    const { table: t, progress } = this.options;
    if (t.filterColumns.length === 0) return filterValues;
    const column = t.filterColumns[0];
    const stats = await this.direct.query<{ values: string[] | null }>(
      `SELECT most_common_vals::text::text[] AS values FROM pg_stats WHERE tablename = $1 AND attname = $2 LIMIT 1`,
      [t.table, column],
    );
    const common = stats.rows[0]?.values ?? [];
    if (common.length > 0) return common.slice(0, filterValues.length);
    const c = quoteIdent(column);
    const sample = await this.direct.query<{ v: string }>(
      `SELECT DISTINCT ${c}::text AS v FROM (SELECT ${c} FROM ${quoteIdent(t.table)} LIMIT 10000) s WHERE ${c} IS NOT NULL ORDER BY 1 LIMIT ${filterValues.length}`,
    );
    if (sample.rows.length === 0) {
      progress.warn(`smoke: ${t.table}.${column} holds no values; hybrid queries filter on the generator's tiers and may find nothing`);
      return filterValues;
    }
    return sample.rows.map((r) => r.v);
  }

  private async loadRows(vectors: ClusteredVectors): Promise<LoadResult> {
    const { table: t, spec, progress } = this.options;
    progress.step(`smoke: loading ${spec.rows} rows into ${t.table} (binary COPY, direct connection)`);
    return loadBenchmarkRows(this.direct, t, vectors, spec.rows, progress);
  }

  /** Builds with the plan's session settings, as the index manager does (pgvector-facts §3–4); returns the seconds. */
  private async buildIndex(createIndexSql: string): Promise<number> {
    const { table: t, plan, progress } = this.options;
    await this.direct.query(`SET maintenance_work_mem = ${quoteLiteral(plan.build.maintenanceWorkMem)}`);
    await this.direct.query(`SET max_parallel_maintenance_workers = ${Math.trunc(plan.build.maxParallelMaintenanceWorkers)}`);
    progress.step(`smoke: building ${t.indexName}`);
    const started = performance.now();
    await this.direct.query(createIndexSql);
    const seconds = (performance.now() - started) / 1000;
    await this.direct.query("RESET maintenance_work_mem");
    await this.direct.query("RESET max_parallel_maintenance_workers");
    await this.direct.query(`ANALYZE ${quoteIdent(t.table)}`);
    return seconds;
  }

  async createPool(stored: readonly Float32Array[]): Promise<void> {
    const { table: t } = this.options;
    const q = quoteIdent;
    await this.direct.query(`DROP TABLE IF EXISTS ${q(t.poolTable)}`);
    await this.direct.query(`CREATE TABLE ${q(t.poolTable)} (id integer PRIMARY KEY, ${q(t.column)} ${t.type}(${t.dimensions}) NOT NULL)`);
    await this.direct.query(`ALTER TABLE ${q(t.poolTable)} ALTER COLUMN ${q(t.column)} SET STORAGE PLAIN`);
    const rows = function* () {
      for (let i = 0; i < stored.length; i++) {
        const id = Buffer.allocUnsafe(4);
        id.writeInt32BE(i + 1, 0);
        yield [id, encodeVectorParam(t.type, stored[i])];
      }
    };
    await copyRows(this.direct, { table: t.poolTable, columns: ["id", t.column] }, rows(), stored.length);
    await this.direct.query(`ANALYZE ${q(t.poolTable)}`);
  }

  async rowIds(): Promise<{ min: number; max: number }> {
    const range = await this.direct.query<{ min: string | null; max: string | null }>(
      `SELECT min(id)::text AS min, max(id)::text AS max FROM ${quoteIdent(this.options.table.table)}`,
    );
    return { min: Number(range.rows[0].min ?? 1), max: Number(range.rows[0].max ?? 1) };
  }

  /** The planner's row count (pg_class.reltuples, -1 before the first ANALYZE): cheap on a table of any size. */
  async estimatedRows(): Promise<number> {
    const estimate = await this.direct.query<{ n: string }>(
      `SELECT greatest(reltuples, 0)::bigint::text AS n FROM pg_class WHERE oid = $1::regclass`,
      [quoteIdent(this.options.table.table)],
    );
    return Number(estimate.rows[0]?.n ?? 0);
  }
}
