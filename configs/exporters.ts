/**
 * postgres_exporter and pgbouncer_exporter: versions, command lines, the custom queries the alert rules need, and the
 * least-privilege roles they log in as. Plain data; the targets decide where the files and secrets go.
 * Facts checked against postgres_exporter v0.17.1 and pgbouncer_exporter v0.10.2 (shared/reference/monitoring-facts.md).
 */
import yaml from "js-yaml";
import { pgbouncerPort } from "./pgbouncer";
import { postgresPort } from "./postgresql";
import { monitorRole, statsUser } from "./roles";
import { quoteLiteral } from "./sql";
import { verifyFullQuery } from "./tls";

/**
 * The PostgreSQL role postgres_exporter logs in as (a member of `pg_monitor`, nothing more) and the PgBouncer
 * admin-console user pgbouncer_exporter logs in as (listed in `stats_users`). configs/roles.ts owns the names and
 * creates the role (`bootstrapSql`, which also installs pg_stat_statements and grants pg_use_reserved_connections).
 */
export { monitorRole, statsUser };

/**
 * The monitoring set, upgraded as one. PgBouncer and both exporters move together: pgbouncer_exporter reads
 * SHOW POOLS/STATS/DATABASES/CONFIG columns by name, and PgBouncer releases rename them (1.24 renamed
 * `reserve_pool` → `reserve_pool_size`, so `pgbouncer_databases_reserve_pool` vanished until exporter 0.12.1);
 * exporter releases rename metrics the alert rules use (pgbouncer_exporter 0.11 `pgbouncer_stats_*` →
 * `pgbouncer_stats_totals_*`; postgres_exporter 0.20 `pg_replication_slot_*` → `pg_replication_slots_*` and drops
 * the `server` label). Bump one only with the others, after `tests/real/exporter-metrics.test.ts` passes.
 */
export const monitoringVersions = {
  pgbouncer: { version: "1.24.1", image: "edoburu/pgbouncer:v1.24.1-p1" /* tag unconfirmed */ },
  postgresExporter: { version: "0.17.1", image: "prometheuscommunity/postgres-exporter:v0.17.1" },
  pgbouncerExporter: { version: "0.10.2", image: "prometheuscommunity/pgbouncer-exporter:v0.10.2" },
  /** promtool of the same release checks the rules (tests/real/promtool.test.ts). */
  prometheus: { version: "2.53", image: "prom/prometheus:v2.53.4" },
  nodeExporter: { version: "1.9", image: "prom/node-exporter:v1.9.1" },
  /**
   * mtail over PostgreSQL's log. Debian 13's 3.0.9 runs the tests; 3.0.8 is the newest tag of Google's image seen
   * in public use (3.0.9's is unconfirmed). The program uses nothing newer than 3.0.0.
   */
  mtail: { version: "3.0", image: "ghcr.io/google/mtail:3.0.8" },
} as const;

export const postgresExporterPort = 9187;
export const pgbouncerExporterPort = 9127;
export const nodeExporterPort = 9100;

/**
 * node_exporter collectors, all others off: CPU, memory and the data volume's filesystem for the host alerts, the
 * rest for the runbooks' "is it the machine?" questions. It runs beside PostgreSQL (a container in the pod or the
 * database's network namespace, a process on the perf cluster) without host mounts: /proc/stat and /proc/meminfo
 * are the machine's in any container, and the filesystems it sees are the ones mounted into it, the data volume
 * among them. Network counters would be the container's own, so netdev stays off.
 */
export const nodeExporterCollectors: Readonly<Record<string, string>> = {
  cpu: "node_cpu_seconds_total: HostCpuUsageHigh",
  meminfo: "node_memory_MemAvailable_bytes, node_memory_MemTotal_bytes: HostMemoryUsageHigh; HugePages_* beside them",
  filesystem: "node_filesystem_{avail,size}_bytes: HostDiskUsageHigh",
  diskstats: "I/O time per device: the runbooks' I/O wait check",
  loadavg: "load next to the CPU alert",
  pressure: "CPU, memory and I/O stall time (PSI), where the kernel provides it",
};

/** node_exporter's flags without the listen address: exactly `nodeExporterCollectors`. */
export function nodeExporterArgs(): string[] {
  return [
    "--collector.disable-defaults",
    ...Object.keys(nodeExporterCollectors)
      .sort()
      .map((c) => `--collector.${c}`),
    "--log.level=info",
  ];
}

/**
 * postgres_exporter collectors turned on explicitly, with what needs them. Collectors that are on by default are
 * named too, so a changed default in a later release cannot silently remove a metric an alert depends on.
 */
export const postgresExporterCollectors: Readonly<Record<string, string>> = {
  database: "default on; pg_database_size_bytes for dashboards",
  stat_database: "default on; pg_stat_database_blks_{hit,read}: PostgresCacheHitRatioLow",
  statio_user_tables: "default on; pg_statio_user_tables_idx_blocks_{hit,read}: PostgresIndexHitRatioLow",
  postmaster: "default off; pg_postmaster_start_time_seconds: hit-ratio grace after a restart",
  long_running_transactions: "default off; pg_long_running_transactions_*: the oldest transaction, for the runbook",
  stat_statements: "default off; pg_stat_statements_*: the slow-query runbook's top statements (needs the extension)",
};

/**
 * Settings the custom query `pgstack_settings` reports, and so the settings the drift rule can compare.
 * huge_pages_status (PostgreSQL 17) says whether huge pages are really in use, which `huge_pages = try` hides.
 */
export const watchedSettings: readonly string[] = [
  "effective_cache_size",
  "hash_mem_multiplier",
  "huge_pages",
  "huge_pages_status",
  "log_min_duration_statement",
  "maintenance_work_mem",
  "max_connections",
  "max_parallel_maintenance_workers",
  "max_parallel_workers",
  "max_parallel_workers_per_gather",
  "max_wal_size",
  "max_worker_processes",
  "min_wal_size",
  "reserved_connections",
  "shared_buffers",
  "shared_preload_libraries",
  "statement_timeout",
  "superuser_reserved_connections",
  "temp_buffers",
  "wal_buffers",
  "work_mem",
];


/**
 * The custom queries (`--extend.query-path`; deprecated in 0.17 but working). Each becomes `<name>_<column>` with a
 * `server` label. Every query returns at least one row where there is something to report, and never blocks:
 * index sizes come from pg_class.relpages, not pg_relation_size(), which would wait behind a REINDEX's lock.
 */
export interface CustomQuery {
  readonly query: string;
  readonly master: boolean;
  readonly metrics: readonly Readonly<Record<string, { readonly usage: "LABEL" | "GAUGE" | "COUNTER"; readonly description: string }>>[];
}

export function postgresExporterQueries(): Readonly<Record<string, CustomQuery>> {
  return {
    // pgstack_settings_info{name, value} 1. Memory in bytes, time in milliseconds, everything else as pg_settings
    // shows it, so the drift rule compares exact strings that configs/ renders the same way. pg_settings is the
    // exporter's own session: never `ALTER ROLE pgstack_monitor SET` a watched setting, or it reads as drift.
    pgstack_settings: {
      query: [
        "SELECT name,",
        "  CASE WHEN unit IS NULL OR setting = '-1' OR vartype NOT IN ('integer', 'real') THEN setting",
        "       ELSE COALESCE(trim_scale(setting::numeric * CASE unit WHEN 'B' THEN 1 WHEN 'kB' THEN 1024 WHEN '8kB' THEN 8192",
        "            WHEN 'MB' THEN 1048576 WHEN 'ms' THEN 1 WHEN 's' THEN 1000 WHEN 'min' THEN 60000 END)::text, setting || unit)",
        "  END AS value,",
        "  1 AS info",
        "FROM pg_settings",
        `WHERE name IN (${watchedSettings.map(quoteLiteral).join(", ")})`,
      ].join("\n"),
      master: true,
      metrics: [
        { name: { usage: "LABEL", description: "Setting name" } },
        { value: { usage: "LABEL", description: "Live value: memory in bytes, time in milliseconds, otherwise as pg_settings shows it" } },
        { info: { usage: "GAUGE", description: "Always 1; the live value is the value label" } },
      ],
    },
    // pgstack_pending_restart_settings: settings changed in the file that only a restart applies.
    pgstack_pending_restart: {
      query: "SELECT count(*) FILTER (WHERE pending_restart) AS settings FROM pg_settings",
      master: true,
      metrics: [{ settings: { usage: "GAUGE", description: "Number of settings changed in the configuration that wait for a restart" } }],
    },
    // One row per HNSW index of the exporter's database. An index is INVALID while CREATE INDEX CONCURRENTLY runs;
    // `building` tells that case apart from a build that failed and left the INVALID index behind.
    pgstack_hnsw_index: {
      query: [
        "SELECT current_database() AS datname, n.nspname AS schemaname, t.relname AS relname, c.relname AS indexrelname,",
        "  CASE WHEN i.indisvalid THEN 1 ELSE 0 END AS valid,",
        "  CASE WHEN EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = i.indexrelid) THEN 1 ELSE 0 END AS building,",
        "  c.relpages::bigint * current_setting('block_size')::bigint AS size_bytes",
        "FROM pg_index i",
        "JOIN pg_class c ON c.oid = i.indexrelid",
        "JOIN pg_class t ON t.oid = i.indrelid",
        "JOIN pg_namespace n ON n.oid = c.relnamespace",
        "JOIN pg_am a ON a.oid = c.relam",
        "WHERE a.amname = 'hnsw'",
      ].join("\n"),
      master: true,
      metrics: [
        { datname: { usage: "LABEL", description: "Database" } },
        { schemaname: { usage: "LABEL", description: "Schema of the index" } },
        { relname: { usage: "LABEL", description: "Indexed table" } },
        { indexrelname: { usage: "LABEL", description: "Index" } },
        { valid: { usage: "GAUGE", description: "1 when pg_index.indisvalid, 0 when the planner ignores the index" } },
        { building: { usage: "GAUGE", description: "1 while CREATE INDEX / REINDEX is building this index" } },
        { size_bytes: { usage: "GAUGE", description: "Index size from pg_class.relpages (as of the last build, VACUUM or ANALYZE)" } },
      ],
    },
  };
}

/** The queries file for `--extend.query-path`: sorted keys, no folding, same bytes every time. */
export function postgresExporterQueriesYaml(): string {
  return yaml.dump(postgresExporterQueries(), { sortKeys: true, lineWidth: -1, noRefs: true });
}

export interface PostgresExporterInput {
  /** Host PostgreSQL listens on, as seen from the exporter. Defaults to 127.0.0.1 (same pod / network namespace). */
  readonly host?: string;
  /** Defaults to 5432. */
  readonly port?: number;
  /** The application database: collector and custom-query metrics about tables and indexes cover this one only. */
  readonly database: string;
  /** Where the caller puts `postgresExporterQueriesYaml()`. */
  readonly queriesPath: string;
  /** Defaults to `:9187`. */
  readonly listenAddress?: string;
  /** The CA the exporter verifies PostgreSQL's certificate with (sslmode=verify-full; pg_hba.conf admits TLS only). */
  readonly caPath: string;
  /**
   * Turn on `--collector.stat_statements`. It needs `pg_stat_statements` in shared_preload_libraries and
   * `CREATE EXTENSION pg_stat_statements` in `database`; without them the collector fails every scrape.
   * Defaults to true.
   */
  readonly statStatements?: boolean;
}

/** A process to run: its arguments and non-secret environment, and the variable the caller fills with the secret. */
export interface ExporterCommand {
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** Environment variable that must carry the password (from a secret, never rendered). */
  readonly passwordEnv: string;
  /** The same as a file path variable, for targets that mount secrets as files; null when the exporter has none. */
  readonly passwordFileEnv: string | null;
}

/** postgres_exporter 0.17 as `pgstack_monitor`; the password goes into DATA_SOURCE_PASS or DATA_SOURCE_PASS_FILE. */
export function postgresExporterCommand(input: PostgresExporterInput): ExporterCommand {
  const host = input.host ?? "127.0.0.1";
  const port = input.port ?? postgresPort;
  const statStatements = input.statStatements ?? true;
  const collectors = Object.keys(postgresExporterCollectors)
    .filter((c) => statStatements || c !== "stat_statements")
    .sort();
  return {
    args: [
      `--web.listen-address=${input.listenAddress ?? `:${postgresExporterPort}`}`,
      `--extend.query-path=${input.queriesPath}`,
      ...collectors.map((c) => `--collector.${c}`),
      "--log.level=info",
    ],
    env: {
      DATA_SOURCE_URI: `${host}:${port}/${input.database}?${verifyFullQuery(input.caPath)}&application_name=pgstack-postgres-exporter`,
      DATA_SOURCE_USER: monitorRole,
    },
    passwordEnv: "DATA_SOURCE_PASS",
    passwordFileEnv: "DATA_SOURCE_PASS_FILE",
  };
}

export interface PgbouncerExporterInput {
  /** Host PgBouncer listens on, as seen from the exporter. Defaults to 127.0.0.1. */
  readonly host?: string;
  /** Defaults to 6432. */
  readonly port?: number;
  /** Defaults to `:9127`. */
  readonly listenAddress?: string;
  /** The CA the exporter verifies PgBouncer's certificate with (PgBouncer requires TLS of every client). */
  readonly caPath: string;
}

/**
 * pgbouncer_exporter 0.10 as `pgstack_stats` on PgBouncer's admin database. The password is not in the connection
 * string: lib/pq reads PGPASSWORD. 0.10 exits at start-up when PgBouncer is unreachable (#140), so targets start it
 * after PgBouncer accepts connections and restart it on failure.
 */
export function pgbouncerExporterCommand(input: PgbouncerExporterInput): ExporterCommand {
  const host = input.host ?? "127.0.0.1";
  const port = input.port ?? pgbouncerPort;
  return {
    args: [
      `--web.listen-address=${input.listenAddress ?? `:${pgbouncerExporterPort}`}`,
      `--pgBouncer.connectionString=postgres://${statsUser}@${host}:${port}/pgbouncer?${verifyFullQuery(input.caPath)}&application_name=pgstack-pgbouncer-exporter`,
      "--log.level=info",
    ],
    env: {},
    passwordEnv: "PGPASSWORD",
    passwordFileEnv: null,
  };
}

/**
 * What pgbouncer.ini must hold for the exporter: the stats user, and `extra_float_digits` ignored because lib/pq
 * sends it at login and PgBouncer otherwise refuses the connection (pgbouncer_exporter #53, #99).
 * `statsUser` must also be in the auth_file with its password.
 */
export const pgbouncerIniForExporter: Readonly<Record<string, string>> = {
  stats_users: statsUser,
  ignore_startup_parameters: "extra_float_digits",
};
