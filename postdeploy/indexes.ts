/**
 * Applies the HNSW index plan (configs/hnsw.ts) to a live database: the post-deploy hook's first job.
 *
 * Every build is CREATE INDEX CONCURRENTLY on a dedicated direct session (it cannot run in a transaction block, and the
 * session SETs of maintenance_work_mem and max_parallel_maintenance_workers must reach the backend that builds), watched
 * from a second session through pg_stat_progress_create_index. The run is idempotent and repairs what an earlier run
 * left behind: an INVALID index from a failed or cancelled build, or the spare index of an interrupted rebuild.
 */
import { performance } from "node:perf_hooks";
import { DatabaseError, type Client } from "pg";
import type { IndexPlanEntry, VectorStorage } from "../configs/hnsw";
import type { Progress } from "../configs/progress";
import { quoteIdent, quoteLiteral } from "../configs/sql";
import { connect } from "../pgclient/connect";
import { indexCatalogColumns, observedIndexOf, type IndexCatalogRow } from "./index-catalog";
import {
  type AppliedStorage,
  type ObservedIndex,
  buildProgress,
  createIndexSqlNamed,
  formatBytes,
  indexDifferences,
  parseBuildNotice,
  parseReloptions,
  rebuildIndexName,
  storageDecision,
  truncateIdentifier,
  versionAtLeast,
} from "./index-decisions";

export type IndexStatus =
  /** Built now; there was no index of that name. */
  | "created"
  /** Present, valid and as planned: nothing done. */
  | "unchanged"
  /** Was INVALID (a failed concurrent build) or half-way through a rebuild; dropped and built again, or finished. */
  | "repaired"
  /** Present and valid but built differently from the plan; reported, left in place (rebuildMismatched is off). */
  | "mismatch"
  /** Was built differently; a planned one was built beside it and swapped in. */
  | "rebuilt"
  /** The table does not exist and this run does not create it. */
  | "table-missing";

export interface StorageOutcome {
  /** What the plan wants for the vector column (configs/hnsw.ts `vectorStorage`). */
  readonly planned: VectorStorage;
  /** What this run changed; null when nothing needed changing, or the application owns the table. */
  readonly applied: AppliedStorage | null;
  /** The statement run, or the one the table owner could run. */
  readonly sql: string | null;
  /** Bytes of out-of-line (TOAST) data the table held before the build. */
  readonly toastBytes: number;
  readonly note: string;
}

export interface ParallelWorkers {
  /** Workers PostgreSQL planned for the build (index_build's DEBUG1 message, PostgreSQL 17+); null if not reported. */
  readonly planned: number | null;
  /** Workers launched: pgvector's DEBUG1 "using N parallel workers", else the most seen in pg_stat_activity; null if unknown. */
  readonly launched: number | null;
}

export interface IndexResult {
  readonly table: string;
  readonly indexName: string;
  readonly status: IndexStatus;
  /** Wall time of the whole entry, milliseconds. */
  readonly durationMs: number;
  /** Wall time of CREATE INDEX CONCURRENTLY alone; null when nothing was built. */
  readonly buildMs: number | null;
  /** Null when nothing was built. */
  readonly parallelWorkers: ParallelWorkers | null;
  /** This run created the table (createTables). */
  readonly tableCreated: boolean;
  /** Null when the table is missing. */
  readonly storage: StorageOutcome | null;
  /** How the existing index differed from the plan (mismatch, rebuilt). */
  readonly differences: readonly string[];
  /** What happened, in order, for people. */
  readonly messages: readonly string[];
}

export interface EnsureIndexesReport {
  /** pgvector's installed version (pg_extension.extversion). */
  readonly extensionVersion: string;
  readonly serverVersion: string;
  readonly results: readonly IndexResult[];
  readonly durationMs: number;
  /** Things to read even when nothing failed (an old pgvector, a serial build). */
  readonly warnings: readonly string[];
}

export interface EnsureIndexesOptions {
  /** A direct connection (port 5432), never PgBouncer in transaction mode: CONCURRENTLY cannot run in a transaction block and the build's SETs must stay on its backend. */
  readonly directUrl: string;
  readonly progress: Progress;
  /** Create missing tables whose entry has createTableSql (with their filter B-trees), and set the vector storage of those tables. Defaults to false: the application owns its tables. */
  readonly createTables?: boolean;
  /** Rebuild an index whose parameters differ from the plan (a new one concurrently, then a swap). Defaults to false: report only. */
  readonly rebuildMismatched?: boolean;
  /** Cancels the running build (pg_cancel_backend) and stops before the next entry. Defaults to none. */
  readonly signal?: AbortSignal;
  /** How often the monitor session polls pg_stat_progress_create_index. Defaults to 250 ms. */
  readonly pollIntervalMs?: number;
}

/** A build or check failed; names the index and carries the server's message and the results of entries done before. */
export class IndexBuildError extends Error {
  override readonly name = "IndexBuildError";
  /** Results of the entries finished before this one. */
  results: readonly IndexResult[] = [];

  constructor(
    message: string,
    readonly indexName: string,
    readonly table: string,
    /** The server's error text ("ERROR 57014: canceling statement due to user request"), null when the check was ours. */
    readonly serverMessage: string | null = null,
    /** SQLSTATE, when the server reported one. */
    readonly sqlState: string | null = null,
  ) {
    super(message);
  }
}

/** pg_try_advisory_lock key held for a run, so two hooks never build the same index at once ("pgvs"). */
const runLockKey = 0x70677673;

/** pgvector 0.8.2 fixed a buffer overflow in parallel HNSW builds (#959). */
const parallelBuildFixVersion = "0.8.2";

interface TableInfo {
  readonly oid: number;
  readonly schema: string;
  readonly name: string;
  readonly kind: string;
  readonly heapBytes: number;
  readonly toastBytes: number;
  readonly reloptions: readonly string[] | null;
  readonly columnType: string | null;
  readonly attstorage: string | null;
}

interface FoundIndex extends ObservedIndex {
  readonly oid: number;
  readonly kind: string;
  /** pg_stat_progress_create_index has a build of this index running right now. */
  readonly buildingPid: number | null;
}

interface Session {
  readonly client: Client;
  readonly pid: number;
  onNotice: ((severity: string, message: string) => void) | null;
}

interface RunContext {
  readonly session: Session;
  readonly monitor: Client;
  readonly progress: Progress;
  readonly createTables: boolean;
  readonly rebuildMismatched: boolean;
  readonly signal: AbortSignal | undefined;
  readonly pollIntervalMs: number;
}

/**
 * Ensures each planned HNSW index exists, is valid and is as planned. Returns one result per entry; throws
 * IndexBuildError (with the earlier results) when a build fails, after leaving nothing a later run cannot repair.
 */
export async function ensureIndexes(plan: readonly IndexPlanEntry[], opts: EnsureIndexesOptions): Promise<EnsureIndexesReport> {
  const started = performance.now();
  const warnings: string[] = [];
  const results: IndexResult[] = [];
  const sessionClient = await connect(opts.directUrl, "pgvector-stack index build");
  let monitor: Client | null = null;
  try {
    monitor = await connect(opts.directUrl, "pgvector-stack index monitor");
    const pid = Number((await sessionClient.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid);
    const session: Session = { client: sessionClient, pid, onNotice: null };
    sessionClient.on("notice", (notice) => session.onNotice?.(notice.severity ?? "NOTICE", notice.message ?? ""));
    await takeRunLock(session);

    const { extensionVersion, serverVersion } = await ensureExtension(sessionClient);
    opts.progress.step(`pgvector ${extensionVersion} on PostgreSQL ${serverVersion}`);
    if (!versionAtLeast(extensionVersion, parallelBuildFixVersion)) {
      const warning = `pgvector ${extensionVersion} predates ${parallelBuildFixVersion}, which fixed a buffer overflow in parallel HNSW builds (pgvector #959)`;
      warnings.push(warning);
      opts.progress.warn(warning);
    }

    const ctx: RunContext = {
      session,
      monitor,
      progress: opts.progress,
      createTables: opts.createTables ?? false,
      rebuildMismatched: opts.rebuildMismatched ?? false,
      signal: opts.signal,
      pollIntervalMs: opts.pollIntervalMs ?? 250,
    };
    for (const entry of plan) {
      throwIfAborted(opts.signal, entry);
      try {
        results.push(await ensureIndex(ctx, entry));
      } catch (error) {
        if (error instanceof IndexBuildError) error.results = [...results];
        throw error;
      }
    }
    return { extensionVersion, serverVersion, results, durationMs: performance.now() - started, warnings };
  } finally {
    await Promise.allSettled([sessionClient.end(), monitor?.end()]);
  }
}

function throwIfAborted(signal: AbortSignal | undefined, entry: IndexPlanEntry): void {
  if (signal?.aborted) {
    throw new IndexBuildError(`stopped before ${entry.indexName}: the run was aborted`, entry.indexName, entry.table);
  }
}

async function takeRunLock(session: Session): Promise<void> {
  const got = await session.client.query<{ locked: boolean }>("SELECT pg_try_advisory_lock($1::bigint) AS locked", [runLockKey]);
  if (got.rows[0]?.locked) return;
  const holders = await session.client.query<{ pid: number }>(
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 AND objid = $1::oid AND objsubid = 1 AND granted",
    [runLockKey],
  );
  const pids = holders.rows.map((r) => r.pid).join(", ") || "unknown";
  throw new Error(
    `another index run holds advisory lock ${runLockKey} (backend pid ${pids}); wait for it to finish, or end that session`,
  );
}

async function ensureExtension(client: Client): Promise<{ extensionVersion: string; serverVersion: string }> {
  try {
    await client.query("CREATE EXTENSION IF NOT EXISTS vector");
  } catch (error) {
    throw new Error(
      `CREATE EXTENSION IF NOT EXISTS vector failed: ${describeServerError(error)}; the server needs pgvector installed and the role needs CREATE on the database`,
    );
  }
  const row = (
    await client.query<{ extversion: string; server: string }>(
      "SELECT extversion, current_setting('server_version') AS server FROM pg_extension WHERE extname = 'vector'",
    )
  ).rows[0]!;
  return { extensionVersion: row.extversion, serverVersion: row.server };
}

function describeServerError(error: unknown): string {
  if (error instanceof DatabaseError) {
    const parts = [`${error.severity ?? "ERROR"} ${error.code ?? ""}: ${error.message}`.replace(/ :/, ":")];
    if (error.detail) parts.push(`DETAIL: ${error.detail}`);
    if (error.hint) parts.push(`HINT: ${error.hint}`);
    return parts.join(" ");
  }
  return error instanceof Error ? error.message : String(error);
}

async function findTable(client: Client, entry: IndexPlanEntry): Promise<TableInfo | null> {
  const { rows } = await client.query<{
    oid: string;
    schema: string;
    name: string;
    kind: string;
    heap_bytes: string;
    toast_bytes: string;
    reloptions: string[] | null;
    column_type: string | null;
    attstorage: string | null;
  }>(
    `SELECT c.oid::int8 AS oid, n.nspname AS schema, c.relname AS name, c.relkind AS kind,
            pg_relation_size(c.oid)::int8 AS heap_bytes,
            coalesce(pg_relation_size(NULLIF(c.reltoastrelid, 0)), 0)::int8 AS toast_bytes,
            c.reloptions, format_type(a.atttypid, a.atttypmod) AS column_type, a.attstorage::text AS attstorage
       FROM pg_class c
       JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped
      WHERE c.oid = to_regclass($1)`,
    [quoteIdent(entry.table), entry.column],
  );
  const r = rows[0];
  if (!r) return null;
  return {
    oid: Number(r.oid),
    schema: r.schema,
    name: r.name,
    kind: r.kind,
    heapBytes: Number(r.heap_bytes),
    toastBytes: Number(r.toast_bytes),
    reloptions: r.reloptions,
    columnType: r.column_type,
    attstorage: r.attstorage,
  };
}

async function findIndex(client: Client, schema: string, name: string): Promise<FoundIndex | null> {
  const { rows } = await client.query<IndexCatalogRow & { oid: string; kind: string; building_pid: number | null }>(
    `SELECT c.oid::int8 AS oid, c.relname AS name, c.relkind AS kind, ${indexCatalogColumns},
            (SELECT p.pid FROM pg_stat_progress_create_index p WHERE p.index_relid = c.oid LIMIT 1) AS building_pid
       FROM pg_class c
       JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_index i ON i.indexrelid = c.oid
       LEFT JOIN pg_class t ON t.oid = i.indrelid
       LEFT JOIN pg_am am ON am.oid = c.relam
      WHERE n.nspname = $1 AND c.relname = $2`,
    [schema, name],
  );
  const r = rows[0];
  if (!r) return null;
  return { ...observedIndexOf(r), oid: Number(r.oid), kind: r.kind, buildingPid: r.building_pid };
}

function qualified(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`;
}

/** One entry's run: collects messages and shows them as progress steps. */
class EntryLog {
  readonly messages: string[] = [];
  constructor(private readonly progress: Progress) {}
  step(message: string): void {
    this.messages.push(message);
    this.progress.step(message);
  }
  warn(message: string): void {
    this.messages.push(message);
    this.progress.warn(message);
  }
}

async function ensureIndex(ctx: RunContext, entry: IndexPlanEntry): Promise<IndexResult> {
  const started = performance.now();
  const log = new EntryLog(ctx.progress);
  const client = ctx.session.client;
  const indexName = truncateIdentifier(entry.indexName);
  const fail = (message: string, error?: unknown): IndexBuildError =>
    error === undefined
      ? new IndexBuildError(message, indexName, entry.table)
      : new IndexBuildError(
          `${message}: ${describeServerError(error)}`,
          indexName,
          entry.table,
          describeServerError(error),
          error instanceof DatabaseError ? (error.code ?? null) : null,
        );
  const finish = (
    status: IndexStatus,
    extra: Partial<Pick<IndexResult, "buildMs" | "parallelWorkers" | "differences" | "storage" | "tableCreated">>,
  ): IndexResult => ({
    table: entry.table,
    indexName,
    status,
    durationMs: performance.now() - started,
    buildMs: extra.buildMs ?? null,
    parallelWorkers: extra.parallelWorkers ?? null,
    tableCreated: extra.tableCreated ?? false,
    storage: extra.storage ?? null,
    differences: extra.differences ?? [],
    messages: log.messages,
  });

  // 1. The table: created only when this run owns it (createTables and the plan carries its DDL), and only when it
  // is missing. On an existing table even CREATE INDEX IF NOT EXISTS takes a SHARE lock (blocking writes) before it
  // finds the B-tree already there, so a second run must not run the DDL at all.
  const ownsTable = ctx.createTables && entry.createTableSql !== null;
  let table = await findTable(client, entry);
  let tableCreated = false;
  if (!table && ownsTable && entry.createTableSql) {
    try {
      await client.query("BEGIN");
      for (const sql of entry.createTableSql) await client.query(sql);
      await client.query("COMMIT");
    } catch (error) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw fail(`creating table ${entry.table} for ${indexName} failed`, error);
    }
    tableCreated = true;
    log.step(`created table ${entry.table} (${entry.type}(${entry.dimensions}), B-trees on ${entry.filterColumns.join(", ") || "no filter columns"})`);
    table = await findTable(client, entry);
  }
  if (!table) {
    const why =
      ctx.createTables && entry.createTableSql === null
        ? "the application owns it (createTable is false for this table); create it, then run the hook again"
        : "this run creates tables only with createTables (dev and perf stacks); the application must create it first";
    log.warn(`table ${entry.table} does not exist, so ${indexName} was not built: ${why}`);
    return finish("table-missing", {});
  }
  if (table.kind !== "r") {
    throw fail(
      `${entry.table} is not a plain table (relkind ${table.kind}); CREATE INDEX CONCURRENTLY for ${indexName} needs one (a partitioned table needs an index per partition)`,
    );
  }
  const expectedType = `${entry.type}(${entry.dimensions})`;
  if (table.columnType === null) {
    throw fail(`table ${entry.table} has no column ${entry.column}; the plan indexes ${entry.column} ${expectedType} with ${indexName}`);
  }
  if (table.columnType !== expectedType) {
    throw fail(`${entry.table}.${entry.column} is ${table.columnType}; the plan indexes ${expectedType} with ${indexName} (${entry.opclass})`);
  }

  // 2. Storage, so the build is parallel: applied to tables this run owns, reported for the others.
  const storage = await settleStorage(ctx, entry, table, ownsTable, log, fail);

  // 3. The index.
  const rebuildName = rebuildIndexName(indexName);
  let existing = await findIndex(client, table.schema, indexName);
  const spare = await findIndex(client, table.schema, rebuildName);
  let finishedRebuild = false;
  if (spare) {
    if (spare.buildingPid !== null) {
      throw fail(`index ${rebuildName} on ${entry.table} is being built by backend ${spare.buildingPid} right now; let it finish first`);
    }
    // An earlier rebuild stopped after its build: before dropping the old index, or between the drop and the rename.
    // A valid, planned spare is finished rather than built again (on a large table that build took hours).
    const spareIsPlanned = spare.kind === "i" && spare.valid && spare.ready && indexDifferences(entry, spare).length === 0;
    const existingIsReplaceable =
      existing !== null &&
      existing.kind === "i" &&
      existing.table === table.name &&
      existing.buildingPid === null &&
      (!existing.valid || !existing.ready || (ctx.rebuildMismatched && indexDifferences(entry, existing).length > 0));
    if (spareIsPlanned && (existing === null || existingIsReplaceable)) {
      if (existing) await dropIndexConcurrently(ctx, table, existing, `replaced by ${rebuildName}, which an interrupted rebuild left`, log, fail);
      try {
        await client.query(`ALTER INDEX ${qualified(table.schema, rebuildName)} RENAME TO ${quoteIdent(indexName)}`);
      } catch (error) {
        throw fail(`renaming ${rebuildName} to ${indexName} failed (the next run retries the rename)`, error);
      }
      log.step(`finished an interrupted rebuild: renamed ${rebuildName} to ${indexName}`);
      finishedRebuild = true;
      existing = await findIndex(client, table.schema, indexName);
    } else {
      await dropIndexConcurrently(ctx, table, spare, `left over from an interrupted rebuild (${stateOf(spare)})`, log, fail);
    }
  }

  if (!existing) {
    const built = await buildIndex(ctx, entry, table, indexName, "building", log, fail);
    log.step(`created ${indexName} in ${seconds(built.buildMs)}${workersText(built.parallelWorkers)}`);
    return finish("created", { ...built, storage, tableCreated });
  }
  if (existing.kind !== "i" || existing.table !== table.name) {
    throw fail(
      existing.kind !== "i"
        ? `the name ${indexName} is taken by a relation of kind ${existing.kind} in schema ${table.schema}; the plan needs it for the HNSW index on ${entry.table}`
        : `the name ${indexName} is taken by an index on table ${existing.table}; the plan needs it for ${entry.table}. Rename or drop that index`,
    );
  }
  if (existing.buildingPid !== null) {
    throw fail(`index ${indexName} on ${entry.table} is being built by backend ${existing.buildingPid} right now; let it finish first`);
  }
  if (!existing.valid || !existing.ready) {
    await dropIndexConcurrently(ctx, table, existing, "INVALID, left by a failed or cancelled concurrent build", log, fail);
    const built = await buildIndex(ctx, entry, table, indexName, "rebuilding", log, fail);
    log.step(`repaired ${indexName}: rebuilt in ${seconds(built.buildMs)}${workersText(built.parallelWorkers)}`);
    return finish("repaired", { ...built, storage, tableCreated });
  }

  const differences = indexDifferences(entry, existing);
  if (differences.length === 0) {
    if (finishedRebuild) return finish("repaired", { storage, tableCreated });
    log.step(`${indexName} is valid and as planned (hnsw ${entry.opclass}, m ${entry.m}, ef_construction ${entry.efConstruction}); nothing to do`);
    return finish("unchanged", { storage, tableCreated });
  }
  if (!ctx.rebuildMismatched) {
    log.warn(`${indexName} differs from the plan: ${differences.join("; ")}. Left as it is (${existing.definition}); rebuild with rebuildMismatched`);
    return finish("mismatch", { differences, storage, tableCreated });
  }

  // A planned index beside the old one, then the swap. Queries use either index until the old one is gone: both are
  // valid and on the same column. DROP INDEX CONCURRENTLY never takes the ACCESS EXCLUSIVE lock a plain DROP needs,
  // and ALTER INDEX … RENAME takes only SHARE UPDATE EXCLUSIVE (PostgreSQL 12+). Stopped in between, the next run
  // finds the spare under its fixed name and finishes the rename.
  log.step(`${indexName} differs from the plan (${differences.join("; ")}): building ${rebuildName} beside it`);
  const built = await buildIndex(ctx, entry, table, rebuildName, "building", log, fail);
  await dropIndexConcurrently(ctx, table, existing, "replaced by a planned build", log, fail);
  try {
    await client.query(`ALTER INDEX ${qualified(table.schema, rebuildName)} RENAME TO ${quoteIdent(indexName)}`);
  } catch (error) {
    throw fail(`renaming ${rebuildName} to ${indexName} failed (the next run retries the rename)`, error);
  }
  const swapped = await findIndex(client, table.schema, indexName);
  if (!swapped || !swapped.valid || indexDifferences(entry, swapped).length > 0) {
    throw fail(`after the swap ${indexName} is ${swapped ? stateOf(swapped) : "missing"}; expected a valid index as planned`);
  }
  log.step(`rebuilt ${indexName} in ${seconds(built.buildMs)}${workersText(built.parallelWorkers)} and swapped it in`);
  return finish("rebuilt", { ...built, differences, storage, tableCreated });
}

function stateOf(index: FoundIndex): string {
  if (index.kind !== "i") return `a relation of kind ${index.kind}`;
  return index.valid && index.ready ? "valid" : "INVALID";
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function workersText(workers: ParallelWorkers): string {
  if (workers.launched === null) return workers.planned === null ? "" : `, ${workers.planned} parallel workers planned`;
  return workers.launched === 0 ? ", serial build" : `, ${workers.launched} parallel workers`;
}

async function settleStorage(
  ctx: RunContext,
  entry: IndexPlanEntry,
  table: TableInfo,
  ownsTable: boolean,
  log: EntryLog,
  fail: (message: string, error?: unknown) => IndexBuildError,
): Promise<StorageOutcome> {
  const workersOption = parseReloptions(table.reloptions).get("parallel_workers");
  const decision = storageDecision(entry, {
    attstorage: table.attstorage ?? "",
    toastBytes: table.toastBytes,
    parallelWorkers: workersOption === undefined ? null : Number(workersOption),
  });
  const outcome = (applied: AppliedStorage | null, note: string): StorageOutcome => ({
    planned: entry.storage,
    applied,
    sql: decision.sql,
    toastBytes: table.toastBytes,
    note,
  });
  if (decision.sql === null) return outcome(null, decision.note);
  if (!ownsTable) {
    if (decision.apply === "parallel-workers-reloption" && table.toastBytes > 0) {
      log.warn(
        `${entry.table} keeps ${formatBytes(table.toastBytes)} of vectors out of line and has ${formatBytes(table.heapBytes)} of heap, so PostgreSQL plans the ${truncateIdentifier(entry.indexName)} build serially; the table's owner can run: ${decision.sql}`,
      );
    }
    return outcome(null, `not applied: the application owns ${entry.table} (${decision.note})`);
  }
  try {
    await ctx.session.client.query(decision.sql);
  } catch (error) {
    throw fail(`setting storage for ${entry.table} before building ${truncateIdentifier(entry.indexName)} failed (${decision.sql})`, error);
  }
  log.step(`${entry.table}: ${decision.note}`);
  return outcome(decision.apply, decision.note);
}

async function dropIndexConcurrently(
  ctx: RunContext,
  table: TableInfo,
  index: FoundIndex,
  why: string,
  log: EntryLog,
  fail: (message: string, error?: unknown) => IndexBuildError,
): Promise<void> {
  try {
    await ctx.session.client.query(`DROP INDEX CONCURRENTLY IF EXISTS ${qualified(table.schema, index.name)}`);
  } catch (error) {
    throw fail(`DROP INDEX CONCURRENTLY ${index.name} (${why}) failed`, error);
  }
  log.step(`dropped ${index.name} concurrently: ${why}`);
}

interface BuildOutcome {
  readonly buildMs: number;
  readonly parallelWorkers: ParallelWorkers;
}

/**
 * CREATE INDEX CONCURRENTLY `name` on the build session, with the plan's build settings, watched from the monitor
 * session; then the catalog must show it valid and as planned (pgvector #925: indisvalid = false without an error).
 * On failure the INVALID leftover is dropped (an INVALID HNSW index is still maintained on every write).
 */
async function buildIndex(
  ctx: RunContext,
  entry: IndexPlanEntry,
  table: TableInfo,
  name: string,
  verb: string,
  log: EntryLog,
  fail: (message: string, error?: unknown) => IndexBuildError,
): Promise<BuildOutcome> {
  const { session, monitor } = ctx;
  const client = session.client;
  const workers = entry.build.maxParallelMaintenanceWorkers;
  if (!Number.isInteger(workers) || workers < 0) {
    throw fail(`build.maxParallelMaintenanceWorkers ${workers} for ${name} is not a whole number ≥ 0`);
  }
  try {
    await client.query(`SET maintenance_work_mem = ${quoteLiteral(entry.build.maintenanceWorkMem)}`);
    await client.query(`SET max_parallel_maintenance_workers = ${workers}`);
    // A role or database statement_timeout must not cut a build that takes hours (pgvector facts §4).
    await client.query("SET statement_timeout = 0");
  } catch (error) {
    throw fail(`setting build options for ${name} (maintenance_work_mem ${entry.build.maintenanceWorkMem}) failed`, error);
  }
  await assertSessionSettings(ctx, name, fail);

  log.step(
    `${verb} ${name} on ${entry.table}: hnsw ${entry.opclass}, m ${entry.m}, ef_construction ${entry.efConstruction}; maintenance_work_mem ${entry.build.maintenanceWorkMem}, up to ${workers} parallel workers`,
  );
  let planned: number | null = null;
  let launched: number | null = null;
  session.onNotice = (_severity, message) => {
    const notice = parseBuildNotice(message);
    if (!notice) return;
    if (notice.kind === "workers-planned") planned = notice.workers;
    else if (notice.kind === "workers-launched") launched = notice.workers;
    else log.warn(`${name}: ${notice.message}; the build continues on disk, much slower (raise build.maintenanceWorkMem)`);
  };
  const cancel = (): void => {
    void monitor.query("SELECT pg_cancel_backend($1)", [session.pid]).catch(() => undefined);
  };
  // client_min_messages = debug1 brings PostgreSQL's and pgvector's worker counts to this session as notices.
  await client.query("SET client_min_messages = debug1");
  const watch = watchBuild(monitor, session.pid, ctx.progress, ctx.pollIntervalMs);
  ctx.signal?.addEventListener("abort", cancel, { once: true });
  const started = performance.now();
  let failure: unknown = null;
  try {
    if (ctx.signal?.aborted) throw new Error("the run was aborted before the build started");
    await client.query(createIndexSqlNamed(entry, name));
  } catch (error) {
    failure = error;
  } finally {
    ctx.signal?.removeEventListener("abort", cancel);
    session.onNotice = null;
  }
  const buildMs = performance.now() - started;
  const seenWorkers = await watch.stop();
  await client.query("RESET client_min_messages").catch(() => undefined);

  if (failure !== null) {
    const aborted = ctx.signal?.aborted ?? false;
    const leftover = await findIndex(client, table.schema, name).catch(() => null);
    let aftermath = "no index was left behind";
    if (leftover && leftover.kind === "i" && !(leftover.valid && leftover.ready)) {
      if (aborted) {
        aftermath = `the INVALID index ${name} is left; the next run drops and rebuilds it`;
      } else {
        try {
          await client.query(`DROP INDEX CONCURRENTLY IF EXISTS ${qualified(table.schema, name)}`);
          aftermath = `the INVALID index ${name} it left was dropped; the next run builds it again`;
        } catch (dropError) {
          aftermath = `the INVALID index ${name} it left could not be dropped (${describeServerError(dropError)}); the next run drops and rebuilds it`;
        }
      }
    }
    const what = aborted ? `building ${name} on ${entry.table} was cancelled (run aborted)` : `building ${name} on ${entry.table} failed`;
    const error = fail(`${what} after ${seconds(buildMs)}`, failure);
    error.message += `. ${aftermath}`;
    throw error;
  }

  const built = await findIndex(client, table.schema, name);
  if (!built || built.kind !== "i") {
    throw fail(`CREATE INDEX CONCURRENTLY for ${name} returned without error, yet ${built ? `${name} is a relation of kind ${built.kind}` : `no index ${name} exists`}`);
  }
  if (!built.valid || !built.ready) {
    let aftermath: string;
    try {
      await client.query(`DROP INDEX CONCURRENTLY IF EXISTS ${qualified(table.schema, name)}`);
      aftermath = "it was dropped; the next run builds it again";
    } catch (dropError) {
      aftermath = `dropping it failed (${describeServerError(dropError)}); the next run drops and rebuilds it`;
    }
    throw fail(
      `index ${name} on ${entry.table} is INVALID (indisvalid ${built.valid}, indisready ${built.ready}) although CREATE INDEX CONCURRENTLY reported no error (cf. pgvector #925); ${aftermath}`,
    );
  }
  const differences = indexDifferences(entry, built);
  if (differences.length > 0) {
    throw fail(`the index ${name} found after the build is not the planned one: ${differences.join("; ")} (${built.definition})`);
  }
  ctx.progress.advance(1, "valid");
  const launchedWorkers: number | null = launched ?? (seenWorkers > 0 ? seenWorkers : planned === 0 ? 0 : null);
  return { buildMs, parallelWorkers: { planned, launched: launchedWorkers } };
}

/** Through a transaction pooler the SETs land on one backend and the build on another; pg_settings.source tells. */
async function assertSessionSettings(
  ctx: RunContext,
  name: string,
  fail: (message: string, error?: unknown) => IndexBuildError,
): Promise<void> {
  const { rows } = await ctx.session.client.query<{ name: string; source: string; pid: number }>(
    `SELECT name, source, pg_backend_pid() AS pid FROM pg_settings
      WHERE name IN ('maintenance_work_mem', 'max_parallel_maintenance_workers')`,
  );
  const notSession = rows.filter((r) => r.source !== "session").map((r) => `${r.name} (source ${r.source})`);
  const pids = new Set(rows.map((r) => r.pid));
  if (notSession.length > 0 || !pids.has(ctx.session.pid)) {
    throw fail(
      `the build session for ${name} lost its SETs: ${notSession.join(", ") || `backend ${[...pids].join(", ")} is not ${ctx.session.pid}`}. directUrl must reach PostgreSQL directly (port 5432), not through PgBouncer`,
    );
  }
}

/** Polls pg_stat_progress_create_index and the build's parallel workers until stopped; returns the most workers seen. */
function watchBuild(
  monitor: Client,
  pid: number,
  progress: Progress,
  intervalMs: number,
): { stop(): Promise<number> } {
  let stopped = false;
  let mostWorkers = 0;
  let shown = 0;
  let wake: (() => void) | null = null;
  const loop = (async () => {
    while (!stopped) {
      try {
        const { rows } = await monitor.query<{
          phase: string | null;
          blocks_done: string | null;
          blocks_total: string | null;
          tuples_done: string | null;
          tuples_total: string | null;
          workers: number;
        }>(
          `SELECT p.phase, p.blocks_done, p.blocks_total, p.tuples_done, p.tuples_total,
                  (SELECT count(*) FROM pg_stat_activity a WHERE a.leader_pid = $1 AND a.pid <> $1)::int AS workers
             FROM (SELECT 1) AS one LEFT JOIN pg_stat_progress_create_index p ON p.pid = $1`,
          [pid],
        );
        const row = rows[0];
        if (row) {
          mostWorkers = Math.max(mostWorkers, row.workers);
          if (row.phase !== null) {
            const step = buildProgress({
              phase: row.phase,
              blocksDone: Number(row.blocks_done ?? 0),
              blocksTotal: Number(row.blocks_total ?? 0),
              tuplesDone: Number(row.tuples_done ?? 0),
              tuplesTotal: Number(row.tuples_total ?? 0),
            });
            // Validation scans restart their counters; the bar only moves forward.
            shown = Math.max(shown, step.fraction);
            const workers = row.workers > 0 ? `, ${row.workers} parallel workers` : "";
            progress.advance(shown, `${step.detail}${workers}`);
          }
        }
      } catch {
        // Watching is best effort: the build's own result decides.
      }
      if (stopped) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, intervalMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  })();
  return {
    async stop(): Promise<number> {
      stopped = true;
      (wake as (() => void) | null)?.();
      await loop;
      return mostWorkers;
    },
  };
}
