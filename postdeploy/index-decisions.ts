/**
 * The pure decisions behind `ensureIndexes`: what an existing index is (reloptions, parameters), whether it matches the
 * plan, how the vector column should be stored before a build, how far a build has come. Plain data in, plain data
 * out, so each rule is unit-tested without a server; `postdeploy/indexes.ts` does the I/O.
 */
import type { IndexPlanEntry, VectorStorage } from "../configs/hnsw";
import { quoteIdent } from "../configs/sql";

/** pgvector's HNSW defaults, used when an index carries no reloptions (pgvector README: m 16, ef_construction 64). */
export const hnswDefaults = { m: 16, efConstruction: 64 } as const;

/** NAMEDATALEN - 1: PostgreSQL silently truncates longer identifiers (with a NOTICE), so look names up truncated. */
const maxIdentifierBytes = 63;

/** Suffix of the index built beside a mismatched one before the swap. Fixed, so a later run finds a leftover. */
const rebuildSuffix = "_rebuild";

/** The name as PostgreSQL stores it: cut to 63 bytes on a character boundary. */
export function truncateIdentifier(name: string): string {
  if (Buffer.byteLength(name, "utf8") <= maxIdentifierBytes) return name;
  let out = "";
  let bytes = 0;
  for (const ch of name) {
    const b = Buffer.byteLength(ch, "utf8");
    if (bytes + b > maxIdentifierBytes) break;
    out += ch;
    bytes += b;
  }
  return out;
}

/** `memories_embedding_hnsw_idx` → `memories_embedding_hnsw_idx_rebuild`, shortening the base so the suffix survives truncation. */
export function rebuildIndexName(indexName: string): string {
  const base = truncateIdentifier(indexName);
  let cut = base;
  while (Buffer.byteLength(cut + rebuildSuffix, "utf8") > maxIdentifierBytes) cut = Array.from(cut).slice(0, -1).join("");
  return cut + rebuildSuffix;
}

/** The plan's own `CREATE INDEX CONCURRENTLY …` with the index named `name` (the reviewed DDL, not a re-derivation). */
export function createIndexSqlNamed(entry: IndexPlanEntry, name: string): string {
  const planned = quoteIdent(entry.indexName);
  const at = entry.createIndexSql.indexOf(planned);
  if (at < 0) {
    throw new Error(`the plan's createIndexSql for ${entry.indexName} does not contain the index name ${planned}: ${entry.createIndexSql}`);
  }
  return entry.createIndexSql.slice(0, at) + quoteIdent(name) + entry.createIndexSql.slice(at + planned.length);
}

/** `pg_class.reloptions` (`{m=8,ef_construction=64}`) as a map; null (no options) gives an empty map. */
export function parseReloptions(reloptions: readonly string[] | null): ReadonlyMap<string, string> {
  const options = new Map<string, string>();
  for (const option of reloptions ?? []) {
    const eq = option.indexOf("=");
    if (eq < 0) options.set(option.toLowerCase(), "");
    else options.set(option.slice(0, eq).toLowerCase(), option.slice(eq + 1));
  }
  return options;
}

function integerOption(options: ReadonlyMap<string, string>, key: string, fallback: number): number {
  const raw = options.get(key);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value)) throw new Error(`reloption ${key}=${raw} is not an integer`);
  return value;
}

/** The HNSW parameters an index was built with; pgvector's defaults where the reloption is absent. */
export function hnswParameters(reloptions: readonly string[] | null): { m: number; efConstruction: number } {
  const options = parseReloptions(reloptions);
  return {
    m: integerOption(options, "m", hnswDefaults.m),
    efConstruction: integerOption(options, "ef_construction", hnswDefaults.efConstruction),
  };
}

/** What the catalog says about one existing index (pg_class, pg_index, pg_am, pg_opclass). */
export interface ObservedIndex {
  readonly name: string;
  /** The table the index is on (`pg_index.indrelid`'s relname). */
  readonly table: string;
  readonly accessMethod: string;
  /** Indexed column names in order; "" for an expression. */
  readonly columns: readonly string[];
  readonly opclasses: readonly string[];
  readonly reloptions: readonly string[] | null;
  /** pg_index.indisvalid: false after a failed or cancelled CREATE INDEX CONCURRENTLY. */
  readonly valid: boolean;
  /** pg_index.indisready: false while a concurrent build has not reached its first commit. */
  readonly ready: boolean;
  /** A WHERE predicate: a partial index does not serve every query the plan expects. */
  readonly partial: boolean;
  /** pg_get_indexdef, for messages. */
  readonly definition: string;
}

/** Every way `observed` differs from the plan, as "what it is, what the plan wants"; empty when it matches. */
export function indexDifferences(entry: IndexPlanEntry, observed: ObservedIndex): string[] {
  const differences: string[] = [];
  if (observed.table !== entry.table) differences.push(`is on table ${observed.table}, plan ${entry.table}`);
  if (observed.accessMethod !== "hnsw") differences.push(`access method ${observed.accessMethod}, plan hnsw`);
  const columns = observed.columns.map((c) => (c === "" ? "(expression)" : c)).join(", ");
  if (observed.columns.length !== 1 || observed.columns[0] !== entry.column) {
    differences.push(`columns (${columns}), plan (${entry.column})`);
  }
  if (observed.opclasses.length !== 1 || observed.opclasses[0] !== entry.opclass) {
    differences.push(`operator class ${observed.opclasses.join(", ") || "(none)"}, plan ${entry.opclass}`);
  }
  if (observed.partial) differences.push("is partial (has a WHERE clause), plan indexes every row");
  if (observed.accessMethod === "hnsw") {
    const actual = hnswParameters(observed.reloptions);
    if (actual.m !== entry.m) differences.push(`m ${actual.m}, plan ${entry.m}`);
    if (actual.efConstruction !== entry.efConstruction) {
      differences.push(`ef_construction ${actual.efConstruction}, plan ${entry.efConstruction}`);
    }
  }
  return differences;
}

/** What the catalog says about the vector column's storage (pg_attribute.attstorage, TOAST size, reloptions). */
export interface ObservedStorage {
  /** pg_attribute.attstorage: p plain, e external, m main, x extended. pgvector's types default to e. */
  readonly attstorage: string;
  /** pg_relation_size of the TOAST table: > 0 means rows already hold out-of-line values. */
  readonly toastBytes: number;
  /** The table's parallel_workers reloption, null when unset. */
  readonly parallelWorkers: number | null;
}

export type AppliedStorage = Exclude<VectorStorage, "default">;

export interface StorageDecision {
  /** What to apply: null when nothing needs doing (or it is already in place). */
  readonly apply: AppliedStorage | null;
  readonly sql: string | null;
  /** Why, for the report. */
  readonly note: string;
}

function parallelWorkersSql(entry: IndexPlanEntry): string {
  return `ALTER TABLE ${quoteIdent(entry.table)} SET (parallel_workers = ${entry.build.maxParallelMaintenanceWorkers})`;
}

/**
 * How to keep the build parallel. SET STORAGE PLAIN changes only rows written afterwards (pgvector README), so once the
 * TOAST table holds vectors the heap stays tiny and PostgreSQL plans 0 workers; the `parallel_workers` reloption makes
 * `plan_create_index_workers()` take that count without looking at the heap size, which restores the parallel build.
 */
export function storageDecision(entry: IndexPlanEntry, observed: ObservedStorage): StorageDecision {
  const workers = entry.build.maxParallelMaintenanceWorkers;
  if (entry.storage === "default") {
    return { apply: null, sql: null, note: `${entry.vectorBytes}-byte vectors stay in the heap row under the default storage` };
  }
  if (workers < 1) {
    return { apply: null, sql: null, note: "max_parallel_maintenance_workers is 0: the build is serial whatever the storage" };
  }
  if (observed.toastBytes > 0) {
    const held = `the TOAST table already holds ${formatBytes(observed.toastBytes)} of out-of-line vectors`;
    if (observed.parallelWorkers === workers) {
      return { apply: null, sql: null, note: `${held}; parallel_workers = ${workers} is already set, so the build stays parallel` };
    }
    const why = entry.storage === "plain" ? "SET STORAGE PLAIN would only affect rows written afterwards" : "as planned";
    return {
      apply: "parallel-workers-reloption",
      sql: parallelWorkersSql(entry),
      note: `${held}; ${why}: set parallel_workers = ${workers} so the build is parallel`,
    };
  }
  if (entry.storage === "plain") {
    if (observed.attstorage === "p") return { apply: null, sql: null, note: "column storage is already PLAIN" };
    return {
      apply: "plain",
      sql: entry.storageSql ?? `ALTER TABLE ${quoteIdent(entry.table)} ALTER COLUMN ${quoteIdent(entry.column)} SET STORAGE PLAIN`,
      note: `${entry.vectorBytes}-byte vectors kept in the heap row (SET STORAGE PLAIN) so the build is parallel and the planner costs them`,
    };
  }
  if (observed.parallelWorkers === workers) {
    return { apply: null, sql: null, note: `parallel_workers = ${workers} is already set` };
  }
  return {
    apply: "parallel-workers-reloption",
    sql: entry.storageSql ?? parallelWorkersSql(entry),
    note: `${entry.vectorBytes}-byte vectors do not fit a heap row with PLAIN; set parallel_workers = ${workers} so the build is parallel`,
  };
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** One row of pg_stat_progress_create_index, numbers already parsed. */
export interface BuildProgressRow {
  readonly phase: string;
  readonly blocksDone: number;
  readonly blocksTotal: number;
  readonly tuplesDone: number;
  readonly tuplesTotal: number;
}

/**
 * The build's place in CREATE INDEX CONCURRENTLY as 0..1. pgvector's HNSW build ("building index: initializing",
 * "building index: loading tuples") counts main-heap blocks and leaves tuples_total at 0, and it dominates the run:
 * it gets 0..0.9. The validation scans that follow restart their counters; they get 0.9..1.
 */
export function buildProgress(row: BuildProgressRow): { fraction: number; detail: string } {
  const part =
    row.blocksTotal > 0 ? row.blocksDone / row.blocksTotal : row.tuplesTotal > 0 ? row.tuplesDone / row.tuplesTotal : 0;
  const within = Math.min(1, Math.max(0, part));
  const phase = row.phase;
  let fraction: number;
  if (phase.startsWith("building index")) fraction = 0.9 * within;
  else if (phase.startsWith("index validation")) fraction = 0.9 + 0.1 * within;
  else if (phase === "waiting for writers before validation") fraction = 0.9;
  else if (phase.startsWith("waiting for old snapshots") || phase.startsWith("waiting for readers")) fraction = 1;
  else fraction = 0;
  const shortPhase = phase.replace(/^building index: /, "");
  const detail = part > 0 ? `${shortPhase} ${Math.floor(within * 100)} %` : shortPhase;
  return { fraction, detail };
}

/** What a server message during a build tells us (the build session runs with client_min_messages = debug1). */
export type BuildNotice =
  | { readonly kind: "workers-planned"; readonly workers: number }
  | { readonly kind: "workers-launched"; readonly workers: number }
  | { readonly kind: "out-of-memory"; readonly message: string };

export function parseBuildNotice(message: string): BuildNotice | null {
  // index_build() (PostgreSQL 17 with amcanbuildparallel): "building index … with request for N parallel workers" / "… serially".
  const requested = /with request for (\d+) parallel workers/.exec(message);
  if (requested) return { kind: "workers-planned", workers: Number(requested[1]) };
  if (/^building index ".*" on table ".*" serially$/.test(message)) return { kind: "workers-planned", workers: 0 };
  // pgvector's HnswBeginParallel: "using N parallel workers" once the workers are launched.
  const launched = /^using (\d+) parallel workers$/.exec(message);
  if (launched) return { kind: "workers-launched", workers: Number(launched[1]) };
  if (message.startsWith("hnsw graph no longer fits into maintenance_work_mem")) return { kind: "out-of-memory", message };
  return null;
}

/** "0.8.1" < "0.8.2"; non-numeric parts compare as 0. */
export function versionAtLeast(version: string, minimum: string): boolean {
  const a = version.split(".").map((p) => Number.parseInt(p, 10) || 0);
  const b = minimum.split(".").map((p) => Number.parseInt(p, 10) || 0);
  for (let i = 0; i < Math.max(a.length, b.length); i += 1) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x > y;
  }
  return true;
}
