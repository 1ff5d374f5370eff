/**
 * postgresql.conf from the StackSpec and its memory plan: every setting with the one-line reason it has its value
 * (citing the tuning guide where the guide gives it), the users' `postgres.settings` last. Also the same settings as
 * a structured list, for drift checks and alert rules.
 */
import { memoryPlan, type MemoryPlan } from "./memory";
import { sharedMemorySettings, userSetting } from "./hugepages";
import type { StackSpec, StorageClass } from "./stack-spec";
import { containerTls, minimumTlsVersion, type TlsFiles } from "./tls";
import { bytes, pgDuration, pgMemory } from "./units";

const { MiB, GiB } = bytes;

export interface PostgresSetting {
  readonly name: string;
  /** The value as PostgreSQL reads it, without postgresql.conf quoting: `8GB`, `scram-sha-256`, `5min`. */
  readonly value: string;
  /** One line: why the stack sets it so (the rendered file's comment). */
  readonly reason: string;
  readonly section: string;
  /** `stack` when computed here; `user` when it comes from postgres.settings. */
  readonly source: "stack" | "user";
}

/** The port every target wires PgBouncer, the exporters and the Services to. */
export const postgresPort = 5432;

/** Where the server puts its Unix socket: the Debian/official-image location. */
export const unixSocketDirectory = "/var/run/postgresql";

/**
 * One line per log entry that a parser can split without guessing (pgBadger's stderr layout): time with
 * milliseconds, pid, then user, database, application and client, empty for background processes.
 */
export const logLinePrefix = "%m [%p]: user=%u,db=%d,app=%a,client=%h ";

/** Matches a line written with `logLinePrefix` (log_timezone UTC); the slow-query lines carry `duration: N ms`. */
export const logLinePattern =
  /^(?<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC) \[(?<pid>\d+)\]: user=(?<user>[^,]*),db=(?<database>[^,]*),app=(?<application>.*?),client=(?<client>\S*) (?<level>[A-Z]+[0-9]?):  (?<message>.*)$/;

/**
 * PostgreSQL's log files (logging_collector): `log_directory` relative to PGDATA and the hourly `log_filename`.
 * mtail follows `<PGDATA>/${postgresLogDirectory}/${postgresLogGlob}` (configs/mtail.ts mtailArgs).
 */
export const postgresLogDirectory = "log";
export const postgresLogFilename = "postgresql-%H.log";
export const postgresLogGlob = "postgresql-*.log";

/** The slow-query threshold: guide, Query Performance: "Slow Queries: Queries >100ms (log and investigate)". */
export const slowQueryMs = 100;

/** Random-page cost and prefetch depth by storage class (PGTune's values, prior-art §2). */
const storageCosts: Readonly<Record<StorageClass, { randomPageCost: string; effectiveIoConcurrency: number }>> = {
  ssd: { randomPageCost: "1.1", effectiveIoConcurrency: 200 },
  nvme: { randomPageCost: "1.1", effectiveIoConcurrency: 1000 },
  hdd: { randomPageCost: "4.0", effectiveIoConcurrency: 2 },
};

export interface Parallelism {
  readonly maxWorkerProcesses: number;
  readonly maxParallelWorkers: number;
  readonly maxParallelWorkersPerGather: number;
  readonly maxParallelMaintenanceWorkers: number;
}

/**
 * Parallel workers from cpus. HNSW builds take max_parallel_maintenance_workers plus the leader: half the cpus
 * (Supabase's advice, pgvector-facts §3), at most 8 (pgvector #500: 10 workers built no faster than 20 on 104 cores),
 * so a build leaves the other half to queries. Queries get half the cpus per Gather, at most 4 (PGTune); in all at
 * most cpus workers at once.
 */
export function parallelism(spec: StackSpec): Parallelism {
  const half = Math.floor(spec.node.cpus / 2);
  return {
    maxWorkerProcesses: sharedMemorySettings(spec).maxWorkerProcesses,
    maxParallelWorkers: spec.node.cpus,
    maxParallelWorkersPerGather: Math.min(4, half),
    maxParallelMaintenanceWorkers: Math.min(8, half),
  };
}

/**
 * WAL kept between checkpoints. Bulk vector loads and HNSW builds (which WAL-log every index page at the end) write
 * WAL fast; 8GB is PGTune's OLTP value and spaces checkpoints out. On Kubernetes the data volume is sized, so never
 * more than a quarter of it (at least 1GB). min_wal_size keeps a quarter of that recycled instead of re-created.
 */
export function maxWalSize(spec: StackSpec): number {
  const cap = 8 * GiB;
  if (spec.target !== "kubernetes") return cap;
  return Math.min(cap, Math.max(GiB, Math.floor(spec.kubernetes.storageSizeBytes / 4 / GiB) * GiB));
}

type Entry = readonly [name: string, value: string, reason: string];

/**
 * Where one server listens and which files it reads, as its target's placement says (configs/placement.ts maps a
 * Placement onto this; it is declared here so this file needs nothing of placement.ts, which imports it).
 */
export interface PostgresServerPlacement {
  readonly port: number;
  readonly socketDirectory: string;
  readonly tls: Pick<TlsFiles, "certificate" | "key">;
}

/** Every container target's: port 5432, the image's socket directory, the mounted certificate Secret. */
export const containerServer: PostgresServerPlacement = { port: postgresPort, socketDirectory: unixSocketDirectory, tls: containerTls };

function stackSettings(spec: StackSpec, plan: MemoryPlan, server: PostgresServerPlacement): readonly (readonly [section: string, entries: readonly Entry[]])[] {
  const { port, socketDirectory } = server;
  const m = plan.rendered;
  const shm = sharedMemorySettings(spec);
  const par = parallelism(spec);
  const storage = storageCosts[spec.node.storage];
  const { maintenance, monitoring } = spec.postgres.reservedConnections;
  const walMax = maxWalSize(spec);
  return [
    [
      "Connections",
      [
        ["listen_addresses", spec.target === "local" ? "127.0.0.1" : "*", spec.target === "local" ? "the perf cluster is reached on loopback only" : "reachable on the pod/container network; pg_hba.conf admits only the allowed networks, by SCRAM"],
        ["port", String(port), port === postgresPort ? "PgBouncer, the exporters and the Services are wired to 5432" : "the perf cluster's loopback port for this run"],
        [
          "unix_socket_directories",
          socketDirectory,
          socketDirectory === unixSocketDirectory ? "the image's socket directory, used by local maintenance (peer auth)" : "the perf cluster's socket directory for this run, beside its data directory",
        ],
        ["max_connections", String(spec.postgres.maxConnections), "guide: max_connections 200 (pool + maintenance connections)"],
        ["superuser_reserved_connections", String(maintenance), "kept for superuser maintenance (the hook, admins) when the pool fills the rest"],
        ["reserved_connections", String(monitoring), "kept for pg_use_reserved_connections members (the exporter) so metrics survive a full pool"],
        ["tcp_keepalives_idle", "60", "find clients that vanished (pod deleted) within minutes, not the kernel's 2 hours, freeing their slots"],
        ["tcp_keepalives_interval", "10", "probe every 10 s once idle"],
        ["tcp_keepalives_count", "6", "drop after 6 unanswered probes"],
        ["cluster_name", spec.stack, "names the stack in process titles and logs"],
      ],
    ],
    [
      "Security",
      [
        ["password_encryption", "scram-sha-256", "guide, Security: strong authentication (SCRAM-SHA-256); pg_hba.conf accepts nothing else"],
        ["ssl", "on", "guide, Security: SSL/TLS for all connections; pg_hba.conf admits TCP clients over TLS only"],
        ["ssl_cert_file", server.tls.certificate, "the server certificate, signed by the stack's CA; re-read on reload, so renewing needs no restart"],
        ["ssl_key_file", server.tls.key, "its key: the server's own file, mode 0600 (or root's with 0640), else PostgreSQL refuses it"],
        ["ssl_min_protocol_version", minimumTlsVersion, "guide, Security: TLS 1.2 at least (PostgreSQL's default since 13, stated)"],
        ["allow_alter_system", "off", "the rendered file is the configuration; ALTER SYSTEM would drift from it unseen"],
      ],
    ],
    [
      "Memory",
      [
        ["shared_buffers", m.shared_buffers, "guide: 25% of total RAM (memory sizing table)"],
        ["effective_cache_size", m.effective_cache_size, "guide: 75% of total RAM (planner estimate of shared_buffers + OS cache)"],
        ["work_mem", m.work_mem, "guide: 256MB on 32GB for vector operations, i.e. RAM/128"],
        ["maintenance_work_mem", m.maintenance_work_mem, "guide: critical for vector index builds, RAM/16"],
        ["autovacuum_work_mem", m.autovacuum_work_mem, "PG17 lets each autovacuum worker use all of maintenance_work_mem; keep the old 1GB bound"],
        ["temp_buffers", m.temp_buffers, "guide: temporary operations"],
        ["hash_mem_multiplier", m.hash_mem_multiplier, "guide: increase hash table memory"],
        ["dynamic_shared_memory_type", m.dynamic_shared_memory_type, "guide: optimize shared memory (parallel HNSW builds keep the graph here)"],
        ["huge_pages", m.huge_pages, `guide: huge_pages = try; postgres.hugePages; needs ${plan.hugePagesNeeded} 2MiB pages`],
      ],
    ],
    [
      "Timeouts",
      [
        ["statement_timeout", pgDuration(spec.postgres.statementTimeoutMs), "guide: statement timeout 5 minutes for vector operations (index builds lift it per session)"],
        ["idle_in_transaction_session_timeout", pgDuration(60_000), "an idle open transaction pins one of PgBouncer's pooled connections and holds back vacuum"],
        ["lock_timeout", "0", "statement_timeout bounds lock waits; a global lock_timeout would cancel CREATE INDEX CONCURRENTLY's waits"],
      ],
    ],
    [
      "Planner and I/O",
      [
        ["random_page_cost", storage.randomPageCost, `node.storage ${spec.node.storage}: random reads cost ${spec.node.storage === "hdd" ? "4× a sequential read" : "about a sequential read"} (PGTune)`],
        ["effective_io_concurrency", String(storage.effectiveIoConcurrency), `node.storage ${spec.node.storage}: concurrent prefetch requests the device serves (PGTune)`],
        ["jit", "off", "JIT compiles for 10s of ms on costly plans; short vector queries (guide: P99 < 200ms) never gain it back"],
      ],
    ],
    [
      "Parallelism",
      [
        ["max_worker_processes", String(par.maxWorkerProcesses), `node.cpus ${spec.node.cpus}: parallel workers + launcher/extension room, at least 8`],
        ["max_parallel_workers", String(par.maxParallelWorkers), `node.cpus ${spec.node.cpus}: at most one parallel worker per cpu`],
        ["max_parallel_workers_per_gather", String(par.maxParallelWorkersPerGather), "half the cpus per query, at most 4 (PGTune)"],
        ["max_parallel_maintenance_workers", String(par.maxParallelMaintenanceWorkers), "parallel HNSW builds: half the cpus, at most 8 (pgvector #500)"],
      ],
    ],
    [
      "WAL and checkpoints",
      [
        ["wal_level", "replica", "room for a streaming replica or CloudNativePG later; the default, stated"],
        ["wal_buffers", m.wal_buffers, "shared_buffers/32 up to one 16MB WAL segment; bulk vector inserts fill it fast"],
        ["wal_compression", "lz4", "full-page images of index pages after each checkpoint shrink cheaply (PGTune, PG ≥ 15)"],
        ["max_wal_size", pgMemory(walMax), "bulk vector writes and HNSW builds: fewer forced checkpoints (PGTune OLTP 8GB)"],
        ["min_wal_size", pgMemory(Math.max(256 * MiB, Math.floor(walMax / 4 / MiB) * MiB)), "keep a quarter of max_wal_size recycled"],
        ["checkpoint_timeout", "15min", "fewer full-page images during bulk vector loads than the 5min default"],
        ["checkpoint_completion_target", "0.9", "spread checkpoint writes over the interval (PGTune)"],
      ],
    ],
    [
      "Shared memory sizing",
      [
        ["max_wal_senders", String(shm.maxWalSenders), "room for replicas; counted in the huge page estimate"],
        ["max_prepared_transactions", String(shm.maxPreparedTransactions), "no two-phase commit; counted in the huge page estimate"],
        ["max_locks_per_transaction", String(shm.maxLocksPerTransaction), "PostgreSQL's default; counted in the huge page estimate"],
        ["max_pred_locks_per_transaction", String(shm.maxPredLocksPerTransaction), "PostgreSQL's default; counted in the huge page estimate"],
        ["autovacuum_max_workers", String(shm.autovacuumMaxWorkers), "PostgreSQL's default; each may use autovacuum_work_mem"],
      ],
    ],
    [
      "Statistics",
      [
        spec.postgres.audit.enabled
          ? ["shared_preload_libraries", "pg_stat_statements,pgaudit", "per-query statistics for the exporter; pgaudit for postgres.audit (guide, Security: audit logs)"]
          : ["shared_preload_libraries", "pg_stat_statements", "per-query statistics for the exporter and the slow-query review"],
        ["pg_stat_statements.max", String(shm.pgStatStatementsMax), "distinct statements tracked"],
        ["pg_stat_statements.track", "top", "statements sent by clients, not those run inside functions"],
        ["pg_stat_statements.track_utility", "off", "SET LOCAL hnsw.ef_search per transaction would crowd out the queries"],
        ["track_io_timing", "on", "guide, System Resources: I/O wait; read/write times in pg_stat_* and EXPLAIN (BUFFERS)"],
        ["track_activity_query_size", String(shm.trackActivityQuerySize), "guide's long-running-query check shows the SQL; 1kB cuts most vector queries"],
      ],
    ],
    [
      "Logging",
      [
        ["logging_collector", "on", "the log is a file mtail can follow on every target (a container's stderr is not)"],
        ["log_destination", "stderr", "one stream for the log pipeline, in the log_line_prefix format"],
        ["log_directory", postgresLogDirectory, "inside PGDATA: on the data volume, beside what it logs, watched by the disk alert"],
        ["log_filename", postgresLogFilename, "one file per hour of the day: a day of history, then reused"],
        ["log_rotation_age", "1h", "a new file every hour, matching log_filename"],
        ["log_rotation_size", "0", "no size rotation: it would append to the same hourly name anyway"],
        ["log_truncate_on_rotation", "on", "an hour's file is emptied when its name comes round the next day: 24 files at most"],
        ["log_line_prefix", logLinePrefix, "a prefix the log pipeline can split: time, pid, user, database, application, client"],
        ["log_timezone", "UTC", "timestamps compare across nodes and with Prometheus"],
        ["log_min_duration_statement", `${slowQueryMs}ms`, "guide, Query Performance: queries > 100ms: log and investigate"],
        ["log_connections", "on", "guide, Network Security: log all connection attempts"],
        ["log_disconnections", "on", "with log_connections: session lengths and failures"],
        ["log_lock_waits", "on", "guide, Troubleshooting: check for database locks"],
        ["log_temp_files", "0", "guide, Memory Issues: a spill to disk means work_mem is too small for that query"],
      ],
    ],
    ...auditSection(spec),
  ];
}

/** Every setting the stack renders, in file order, users' last, for the server's placement (containers': the default). */
export function postgresqlSettings(spec: StackSpec, plan: MemoryPlan = memoryPlan(spec), server: PostgresServerPlacement = containerServer): readonly PostgresSetting[] {
  const user = spec.postgres.settings;
  const settings: PostgresSetting[] = [];
  for (const [section, entries] of stackSettings(spec, plan, server)) {
    for (const [name, value, reason] of entries) {
      if (user[name] === undefined) settings.push({ name, value, reason, section, source: "stack" });
    }
  }
  for (const name of Object.keys(user).sort()) {
    settings.push({ name, value: userSetting(spec, name) ?? "", reason: "postgres.settings", section: "postgres.settings", source: "user" });
  }
  return settings;
}

/** name → value, sorted by name: what drift checks and alert rules compare with pg_settings. */
export function postgresqlSettingValues(spec: StackSpec, plan?: MemoryPlan): Readonly<Record<string, string>> {
  const entries = postgresqlSettings(spec, plan).map((s) => [s.name, s.value] as const);
  return Object.fromEntries([...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** A value as postgresql.conf must spell it: numbers, units and plain words bare, anything else single-quoted. */
export function confValue(value: string): string {
  if (/[\n\r]/.test(value)) throw new Error(`postgresql.conf value ${JSON.stringify(value)} contains a line break; settings are one line`);
  if (/^-?\d+(\.\d+)?[A-Za-z]*$/.test(value) || /^[A-Za-z_][A-Za-z0-9_]*$/.test(value)) return value;
  return `'${value.replace(/\\/g, "\\\\").replace(/'/g, "''")}'`;
}

function wrap(text: string, width: number, prefix: string): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line !== "" && prefix.length + line.length + 1 + word.length > width) {
      lines.push(prefix + line);
      line = word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  if (line !== "") lines.push(prefix + line);
  return lines;
}

/**
 * The complete postgresql.conf for the server's placement: 5432, /var/run/postgresql and the mounted certificate on
 * every container target; the perf cluster's own port, socket and certificate directories.
 */
export function renderPostgresqlConf(spec: StackSpec, plan: MemoryPlan = memoryPlan(spec), server: PostgresServerPlacement = containerServer): string {
  const settings = postgresqlSettings(spec, plan, server);
  const gib = (spec.node.memoryBytes / GiB).toFixed(spec.node.memoryBytes % GiB === 0 ? 0 : 1);
  const lines = [
    `# postgresql.conf for stack "${spec.stack}" (${spec.target}), rendered by pgvector-stack: do not edit, change the stack config.`,
    `# Node: ${gib} GiB RAM, ${spec.node.cpus} cpus, ${spec.node.storage}. "guide" = the database performance tuning guide (HIGH-004).`,
    `# Shared memory: about ${Math.ceil(plan.sharedMemoryBytes / MiB)}MB, ${plan.hugePagesNeeded} huge pages of 2MiB.`,
  ];
  for (const warning of plan.warnings) lines.push(...wrap(`WARNING: ${warning}`, 118, "# "));
  const width = Math.max(...settings.map((s) => s.name.length + 3 + confValue(s.value).length));
  let section = "";
  for (const s of settings) {
    if (s.section !== section) {
      section = s.section;
      lines.push("", `# --- ${section} ${"-".repeat(Math.max(3, 110 - section.length))}`);
      if (section === "postgres.settings") lines.push("# The stack's own value of a setting listed here is left out above.");
    }
    const assignment = `${s.name} = ${confValue(s.value)}`;
    lines.push(s.source === "user" ? assignment : `${assignment.padEnd(width)}  # ${s.reason}`);
  }
  return `${lines.join("\n")}\n`;
}

/** pgaudit's settings when postgres.audit is on (guide, Security: audit logs); nothing otherwise. */
function auditSection(spec: StackSpec): [string, [string, string, string][]][] {
  const { audit } = spec.postgres;
  if (!audit.enabled) return [];
  return [
    [
      "Audit (pgaudit)",
      [
        ["pgaudit.log", audit.log.join(", "), "postgres.audit.log: the statement classes every session's statements are logged for"],
        ["pgaudit.log_catalog", "off", "statements touching only pg_catalog (drivers' type lookups, psql's \\d) would drown the audit trail"],
        ["pgaudit.log_parameter", "off", "bind parameters are embeddings (kilobytes each) and may carry secrets: the statement text is logged, not its values"],
        ["pgaudit.log_relation", "off", "one line per statement, not one per table it touches"],
      ],
    ],
  ];
}
