/**
 * The Grafana dashboard shipped with the stack (a ConfigMap labelled `grafana_dashboard` on Kubernetes, a
 * provisioned file elsewhere): PgBouncer pools and waits, throughput, connections against their limits, the canary's
 * latency quantiles and failures, cache and index hit ratios, HNSW index sizes, the host's CPU, memory and data
 * volume, and PostgreSQL's slow-query count.
 *
 * Every query reads metrics that exist: those the alert rules read (proven against the real exporters by
 * tests/real/exporter-metrics.test.ts), the custom queries of configs/exporters.ts, the canary's and mtail's
 * contracts (configs/canary.ts, configs/mtail.ts), and the few exporter metrics listed in
 * `dashboardOnlyExporterMetrics`. tests/unit/grafana-dashboard.test.ts parses every query with PromQL's grammar
 * and checks each name against those lists.
 *
 * The data source and the stack are template variables, so one dashboard serves every stack in one Grafana; every
 * selector matches `stack="$stack"`, the label configs/scrape.ts puts on every target.
 */
import { createHash } from "node:crypto";
import { authFailureBurstPerMinute, defaultAlertThresholds, diskMatchers, type AlertThresholds } from "./alerts";
import { canaryExtraMetrics, canaryMetrics } from "./canary";
import { postgresExporterQueries } from "./exporters";
import { mtailExtraMetrics, mtailMetrics } from "./mtail";

/**
 * Exporter metrics the dashboard reads that no alert rule reads (so the rules' real-exporter test does not cover
 * them yet); each is in shared/reference/monitoring-facts.md for the pinned exporter versions.
 */
export const dashboardOnlyExporterMetrics: readonly string[] = [
  // pgbouncer_exporter 0.10.2, SHOW STATS: queries per second per database alias.
  "pgbouncer_stats_queries_pooled_total",
  // pgbouncer_exporter 0.10.2, SHOW POOLS: the longest current wait in a pool (whole seconds, see the facts).
  "pgbouncer_pools_client_maxwait_seconds",
  // postgres_exporter 0.17.1, stat_database collector: transactions committed / rolled back per database.
  "pg_stat_database_xact_commit",
  "pg_stat_database_xact_rollback",
];

/** `<query>_<column>` for every GAUGE/COUNTER column of the custom queries (postgres_exporter's naming). */
export function customQueryMetricNames(): string[] {
  const names: string[] = [];
  for (const [namespace, query] of Object.entries(postgresExporterQueries())) {
    for (const column of query.metrics) {
      for (const [name, { usage }] of Object.entries(column)) if (usage !== "LABEL") names.push(`${namespace}_${name}`);
    }
  }
  return names.sort();
}

/** The uid when no stack is given (a dashboard for every stack of one Prometheus). */
export const grafanaDashboardUid = "pgstack-overview";

/** Grafana's uid: at most 40 characters of letters, digits, - and _. */
const uidLimit = 40;

/**
 * The dashboard's uid for one stack: unique per stack, so staging's and prod's dashboards can live in one Grafana
 * (the uid is the dashboard's identity there; the same uid twice means one overwrites the other). A stack name that
 * does not fit Grafana's uid alphabet or length keeps a readable prefix and a hash that tells it apart.
 */
export function grafanaDashboardUidFor(stack: string | undefined): string {
  if (stack === undefined) return grafanaDashboardUid;
  const plain = `pgstack-${stack}`;
  if (/^[A-Za-z0-9_-]+$/.test(plain) && plain.length <= uidLimit) return plain;
  const hash = createHash("sha256").update(stack, "utf8").digest("hex").slice(0, 8);
  return `pgstack-${stack.replace(/[^A-Za-z0-9_-]/g, "-").slice(0, uidLimit - 17)}-${hash}`;
}

export interface GrafanaDashboardInput {
  /** Stack preselected in the `stack` variable. Defaults to none (Grafana picks the first). */
  readonly stack?: string;
  /** Thresholds drawn on the panels. Defaults to the guide's (defaultAlertThresholds); pass the stack's own. */
  readonly thresholds?: AlertThresholds;
  /** The filesystems the disk alert watches (configs/render.ts diskMountpointsFor). Defaults to every real one. */
  readonly diskMountpoints?: readonly string[];
}

interface Target {
  readonly refId: string;
  readonly expr: string;
  readonly legendFormat: string;
  readonly datasource: DataSourceRef;
}

interface DataSourceRef {
  readonly type: "prometheus";
  readonly uid: string;
}

interface GridPos {
  readonly h: number;
  readonly w: number;
  readonly x: number;
  readonly y: number;
}

export interface GrafanaPanel {
  readonly id: number;
  readonly type: "row" | "timeseries" | "stat";
  readonly title: string;
  readonly gridPos: GridPos;
  readonly description?: string;
  readonly datasource?: DataSourceRef;
  readonly targets?: readonly Target[];
  readonly fieldConfig?: unknown;
  readonly options?: unknown;
  readonly collapsed?: boolean;
  readonly panels?: readonly GrafanaPanel[];
}

export interface GrafanaDashboard {
  readonly uid: string;
  readonly title: string;
  readonly panels: readonly GrafanaPanel[];
  readonly templating: { readonly list: readonly unknown[] };
  readonly [key: string]: unknown;
}

const datasource: DataSourceRef = { type: "prometheus", uid: "${datasource}" };
const stackMatcher = 'stack="$stack"';
const rate = "$__rate_interval";

/** `metric{matchers…,stack="$stack"}`. */
function sel(metric: string, ...matchers: string[]): string {
  return `${metric}{${[...matchers, stackMatcher].join(",")}}`;
}

type Unit = "s" | "percentunit" | "bytes" | "short" | "reqps" | "ops" | "none";

interface PanelSpec {
  readonly title: string;
  readonly description: string;
  readonly unit: Unit;
  readonly queries: readonly (readonly [expr: string, legend: string])[];
  /** Warning / critical lines, drawn on the graph. */
  readonly thresholds?: readonly number[];
  readonly min?: number;
  readonly max?: number;
  readonly type?: "timeseries" | "stat";
}

const thresholdColors = ["orange", "red"];

function panel(id: number, gridPos: GridPos, spec: PanelSpec): GrafanaPanel {
  const steps = [{ color: "green", value: null }, ...(spec.thresholds ?? []).map((value, i) => ({ color: thresholdColors[Math.min(i, 1)], value }))];
  const type = spec.type ?? "timeseries";
  return {
    id,
    type,
    title: spec.title,
    description: spec.description,
    gridPos,
    datasource,
    targets: spec.queries.map(([expr, legendFormat], i) => ({ refId: String.fromCharCode(65 + i), expr, legendFormat, datasource })),
    fieldConfig: {
      defaults: {
        unit: spec.unit,
        ...(spec.min !== undefined ? { min: spec.min } : {}),
        ...(spec.max !== undefined ? { max: spec.max } : {}),
        thresholds: { mode: "absolute", steps },
        ...(type === "timeseries" ? { custom: { thresholdsStyle: { mode: spec.thresholds ? "line" : "off" }, fillOpacity: 10 } } : {}),
      },
      overrides: [],
    },
    options:
      type === "timeseries"
        ? { legend: { displayMode: "list", placement: "bottom", showLegend: true }, tooltip: { mode: "multi", sort: "desc" } }
        : { colorMode: "background", graphMode: "none", reduceOptions: { calcs: ["lastNotNull"], fields: "", values: false }, textMode: "value_and_name" },
  };
}

function quantiles(bucket: string, by: string, label: string): (readonly [string, string])[] {
  return ([[0.5, "P50"], [0.95, "P95"], [0.99, "P99"]] as const).map(
    ([q, name]) => [`histogram_quantile(${q}, sum by (${by}le) (rate(${sel(bucket)}[${rate}])))`, `${name}${label}`] as const,
  );
}

function ratio(hit: string, read: string, by: string, ...matchers: string[]): string {
  const h = `sum by (${by}) (rate(${sel(hit, ...matchers)}[${rate}]))`;
  const r = `sum by (${by}) (rate(${sel(read, ...matchers)}[${rate}]))`;
  return `${h}\n/ (${h} + ${r})`;
}

/** The rows of the dashboard: a title and its panels, two per line. */
function sections(t: AlertThresholds, disk: { readonly mountpoints?: readonly string[] }): readonly (readonly [string, readonly PanelSpec[]])[] {
  const notAdmin = 'database!="pgbouncer"';
  const userDatabases = 'datname!~"template0|template1"';
  const histogram = `${canaryMetrics.queryDuration.name}_bucket`;
  const slowHistogram = `${mtailExtraMetrics.slowQueryDuration.name}_bucket`;
  return [
    [
      "Canary: its own queries through PgBouncer, not the application's",
      [
        {
          title: "Canary latency by scenario",
          description: `P50/P95/P99 of the canary's search, hybrid and insert transactions (BEGIN to COMMIT) through PgBouncer. Alerts: P95 of a vector scenario > ${t.vectorQueryP95Seconds} s (warning), P99 > ${t.queryP99Seconds} s (critical).`,
          unit: "s",
          min: 0,
          thresholds: [t.vectorQueryP95Seconds, t.queryP99Seconds],
          queries: quantiles(histogram, "scenario, ", " {{scenario}}"),
        },
        {
          title: "Canary connection failures",
          description: `Share of the canary's new connections (connect, authenticate, SELECT 1) that failed, per target. Alert: > ${t.connectionFailureRatio * 100} % (critical).`,
          unit: "percentunit",
          min: 0,
          thresholds: [t.connectionFailureRatio],
          queries: [
            [
              `sum by (target) (rate(${sel(canaryMetrics.connectionFailures.name)}[${rate}]))\n/ sum by (target) (rate(${sel(canaryMetrics.connectionAttempts.name)}[${rate}]))`,
              "{{target}}",
            ],
          ],
        },
        {
          title: "Canary scenarios that did not complete",
          description: "Per second, by scenario and reason: timeout (also counted in the latency), error (answered with an error), no_connection (the round could not connect or set up its table).",
          unit: "ops",
          min: 0,
          queries: [[`sum by (scenario, reason) (rate(${sel(canaryExtraMetrics.queryFailures.name)}[${rate}])) > 0`, "{{scenario}} {{reason}}"]],
        },
        {
          title: "TLS certificate: time left",
          description: `Until the certificate each target presents expires, as the canary's handshakes read it. Certificates are renewed well before; alerts (CertificateExpiresSoon): below ${t.certificateExpiryWarning} warning, ${t.certificateExpiryCritical} critical.`,
          unit: "s",
          type: "stat",
          queries: [[`min by (target) (${sel(canaryMetrics.certificateNotAfter.name)}) - time()`, "{{target}}"]],
        },
        {
          title: "Scrape targets up",
          description: "1 when Prometheus scraped the source at its last attempt. A source that is down silences every alert built on it (ScrapeTargetDown).",
          unit: "none",
          type: "stat",
          min: 0,
          max: 1,
          queries: [[`min by (job) (${sel("up")})`, "{{job}}"]],
        },
      ],
    ],
    [
      "PgBouncer",
      [
        {
          title: "Pool utilization",
          description: `Server connections in use per (database, user) pool / the database's pool_size. Alerts: > ${t.poolUtilizationWarning * 100} % for ${t.poolUtilizationWarningFor} (warning), > ${t.poolUtilizationCritical * 100} % for ${t.poolUtilizationCriticalFor} (critical).`,
          unit: "percentunit",
          min: 0,
          thresholds: [t.poolUtilizationWarning, t.poolUtilizationCritical],
          queries: [
            [
              [
                `sum by (instance, database, user) (${sel("pgbouncer_pools_server_active_connections", notAdmin)})`,
                "/ on (instance, database) group_left ()",
                `max by (instance, database) (label_replace(${sel("pgbouncer_databases_pool_size", 'name!="pgbouncer"')}, "database", "$1", "name", "(.+)"))`,
              ].join("\n"),
              "{{database}}/{{user}} {{instance}}",
            ],
          ],
        },
        {
          title: "Client waits",
          description: `Average time a client waited for a server connection per transaction (alert: > ${t.clientWaitSeconds} s), and the longest current wait (whole seconds only, pgbouncer_exporter 0.10).`,
          unit: "s",
          min: 0,
          thresholds: [t.clientWaitSeconds],
          queries: [
            [
              `sum by (instance, database) (rate(${sel("pgbouncer_stats_client_wait_seconds_total", notAdmin)}[${rate}]))\n/ sum by (instance, database) (rate(${sel("pgbouncer_stats_sql_transactions_pooled_total", notAdmin)}[${rate}]))`,
              "mean wait {{database}} {{instance}}",
            ],
            [`max by (instance, database) (${sel("pgbouncer_pools_client_maxwait_seconds", notAdmin)})`, "max wait {{database}} {{instance}}"],
          ],
        },
        {
          title: "Clients waiting",
          description: "Clients queued for a server connection (cl_waiting): every server connection of the pool is busy.",
          unit: "short",
          min: 0,
          queries: [[`sum by (instance, database, user) (${sel("pgbouncer_pools_client_waiting_connections", notAdmin)})`, "{{database}}/{{user}} {{instance}}"]],
        },
        {
          title: "Queries and transactions per second (PgBouncer)",
          description: "Queries and transactions PgBouncer passed to PostgreSQL, per database alias.",
          unit: "reqps",
          min: 0,
          queries: [
            [`sum by (database) (rate(${sel("pgbouncer_stats_queries_pooled_total", notAdmin)}[${rate}]))`, "queries {{database}}"],
            [`sum by (database) (rate(${sel("pgbouncer_stats_sql_transactions_pooled_total", notAdmin)}[${rate}]))`, "transactions {{database}}"],
          ],
        },
        {
          title: "PgBouncer client connections vs max_client_conn",
          description: `Client connections to PgBouncer and its max_client_conn; at the limit PgBouncer refuses new clients (alerts at ${t.clientConnectionsWarning * 100} % and ${t.clientConnectionsCritical * 100} %).`,
          unit: "short",
          min: 0,
          queries: [
            [`sum by (instance) (${sel("pgbouncer_used_clients")})`, "clients {{instance}}"],
            [`max by (instance) (${sel("pgbouncer_config_max_client_connections")})`, "max_client_conn {{instance}}"],
          ],
        },
      ],
    ],
    [
      "PostgreSQL",
      [
        {
          title: "PostgreSQL connections vs max_connections",
          description: `Client backends and max_connections (alerts at ${t.pgConnectionsWarning * 100} % and ${t.pgConnectionsCritical * 100} %). PgBouncer's pools are sized to stay below it.`,
          unit: "short",
          min: 0,
          queries: [
            [`sum by (instance) (${sel("pg_stat_activity_count", 'backend_type="client backend"')})`, "client backends {{instance}}"],
            [`max by (instance) (${sel("pg_settings_max_connections")})`, "max_connections {{instance}}"],
          ],
        },
        {
          title: "Transactions per second (PostgreSQL)",
          description: "Commits and rollbacks per database, as PostgreSQL counts them (pg_stat_database).",
          unit: "ops",
          min: 0,
          queries: [
            [`sum by (datname) (rate(${sel("pg_stat_database_xact_commit", userDatabases)}[${rate}]))`, "commit {{datname}}"],
            [`sum by (datname) (rate(${sel("pg_stat_database_xact_rollback", userDatabases)}[${rate}]))`, "rollback {{datname}}"],
          ],
        },
        {
          title: "Cache hit ratio",
          description: `Share of block reads served from shared_buffers, per database. Alert: < ${t.cacheHitRatioMin * 100} % for ${t.cacheHitRatioFor} (after a restart's warm-up).`,
          unit: "percentunit",
          max: 1,
          thresholds: [t.cacheHitRatioMin],
          queries: [[ratio("pg_stat_database_blks_hit", "pg_stat_database_blks_read", "datname", userDatabases), "{{datname}}"]],
        },
        {
          title: "Index hit ratio",
          description: `Share of index block reads served from shared_buffers, in the application database. Alert: < ${t.indexHitRatioMin * 100} % for ${t.indexHitRatioFor}.`,
          unit: "percentunit",
          max: 1,
          thresholds: [t.indexHitRatioMin],
          queries: [[ratio("pg_statio_user_tables_idx_blocks_hit", "pg_statio_user_tables_idx_blocks_read", "datname"), "{{datname}}"]],
        },
        {
          title: "HNSW index sizes",
          description: "Size of every HNSW index of the application database, from pg_class.relpages (as of its last build, VACUUM or ANALYZE).",
          unit: "bytes",
          min: 0,
          queries: [[`max by (schemaname, relname, indexrelname) (${sel("pgstack_hnsw_index_size_bytes")})`, "{{schemaname}}.{{indexrelname}} on {{relname}}"]],
        },
        {
          title: "HNSW indexes valid",
          description: "1 when the planner may use the index (pg_index.indisvalid); 0 while CREATE INDEX CONCURRENTLY runs or after it failed.",
          unit: "none",
          type: "stat",
          min: 0,
          max: 1,
          queries: [[`min by (schemaname, indexrelname) (${sel("pgstack_hnsw_index_valid")})`, "{{schemaname}}.{{indexrelname}}"]],
        },
      ],
    ],
    [
      "Host (node_exporter beside PostgreSQL): the machine's CPU and memory, the data volume's filesystem",
      [
        {
          title: "CPU busy",
          description: `Share of the machine's CPU time not idle (all cores), as node_exporter reads /proc/stat. Alert: > ${t.cpuWarning * 100} % for ${t.cpuWarningFor}.`,
          unit: "percentunit",
          min: 0,
          max: 1,
          thresholds: [t.cpuWarning],
          queries: [[`1 - avg by (instance) (rate(${sel("node_cpu_seconds_total", 'mode="idle"')}[${rate}]))`, "{{instance}}"]],
        },
        {
          title: "Memory in use",
          description: `1 − MemAvailable/MemTotal of the machine; reserved huge pages count as used. Alerts: > ${t.memoryWarning * 100} % (warning), > ${t.memoryCritical * 100} % (critical).`,
          unit: "percentunit",
          min: 0,
          max: 1,
          thresholds: [t.memoryWarning, t.memoryCritical],
          queries: [[`1 - ${sel("node_memory_MemAvailable_bytes")} / ${sel("node_memory_MemTotal_bytes")}`, "{{instance}}"]],
        },
        {
          title: "Filesystems full",
          description: `Used share of ${disk.mountpoints?.length ? disk.mountpoints.join(", ") : "every filesystem node_exporter sees (pseudo filesystems left out)"}, the filesystems the disk alert watches. Alert: > ${t.diskCritical * 100} % (critical).`,
          unit: "percentunit",
          min: 0,
          max: 1,
          thresholds: [t.diskCritical],
          queries: [
            [
              `1 - ${sel("node_filesystem_avail_bytes", ...diskMatchers(disk.mountpoints))} / ${sel("node_filesystem_size_bytes", ...diskMatchers(disk.mountpoints))}`,
              "{{mountpoint}} ({{instance}})",
            ],
          ],
        },
      ],
    ],
    [
      "Slow queries (PostgreSQL's log, through mtail): every client, statements over log_min_duration_statement",
      [
        {
          title: "Slow queries per minute",
          description: `Statements PostgreSQL logged for running longer than log_min_duration_statement, counted by mtail. Alert: > ${t.slowQueriesPerMinute} per minute for ${t.slowQueriesFor}.`,
          unit: "short",
          min: 0,
          thresholds: [t.slowQueriesPerMinute],
          queries: [[`sum by (instance) (rate(${sel(mtailMetrics.slowQueries.name)}[${rate}])) * 60`, "{{instance}}"]],
        },
        {
          title: "Slow query durations",
          description: "Quantiles of the durations PostgreSQL logged for slow statements (only statements over the threshold are logged, so these are quantiles of the slow ones).",
          unit: "s",
          min: 0,
          queries: quantiles(slowHistogram, "", ""),
        },
      ],
    ],
    [
      "Refused logins (PostgreSQL's and PgBouncer's logs, through mtail): guide, Security: unusual connection patterns",
      [
        {
          title: "Refused logins per minute",
          description: `Logins PostgreSQL and PgBouncer refused, by source and reason (authentication = wrong password or unknown user), counted by mtail from their logs. Alert: every reason but too_many_connections, > ${authFailureBurstPerMinute} per minute for ${t.connectionFailureFor}.`,
          unit: "short",
          min: 0,
          thresholds: [authFailureBurstPerMinute],
          queries: [[`sum by (instance, source, reason) (rate(${sel(mtailMetrics.authFailures.name)}[${rate}])) * 60`, "{{source}} {{reason}} ({{instance}})"]],
        },
      ],
    ],
  ];
}

function templating(stack: string | undefined): { list: unknown[] } {
  const stackQuery = "label_values(up, stack)";
  return {
    list: [
      { name: "datasource", label: "Data source", type: "datasource", query: "prometheus", hide: 0, current: {} },
      {
        name: "stack",
        label: "Stack",
        type: "query",
        datasource,
        definition: stackQuery,
        query: { query: stackQuery, refId: "StackVariable" },
        refresh: 2,
        sort: 1,
        includeAll: false,
        multi: false,
        hide: 0,
        current: stack === undefined ? {} : { selected: true, text: stack, value: stack },
      },
    ],
  };
}

export function renderGrafanaDashboard(input: GrafanaDashboardInput = {}): GrafanaDashboard {
  const t = input.thresholds ?? defaultAlertThresholds;
  const panels: GrafanaPanel[] = [];
  let id = 1;
  let y = 0;
  const width = 12;
  const height = 8;
  for (const [title, specs] of sections(t, { mountpoints: input.diskMountpoints })) {
    panels.push({ id: id++, type: "row", title, gridPos: { h: 1, w: 24, x: 0, y }, collapsed: false, panels: [] });
    y += 1;
    specs.forEach((spec, i) => {
      panels.push(panel(id++, { h: height, w: width, x: (i % 2) * width, y: y + Math.floor(i / 2) * height }, spec));
    });
    y += Math.ceil(specs.length / 2) * height;
  }
  return {
    uid: grafanaDashboardUidFor(input.stack),
    // Grafana requires titles to be unique within a folder, as uids are within an instance.
    title: input.stack === undefined ? "pgvector-stack" : `pgvector-stack ${input.stack}`,
    description: "PostgreSQL + pgvector behind PgBouncer: pools, waits, throughput, the canary's latency, hit ratios, HNSW indexes, slow queries.",
    tags: ["pgvector-stack", "postgresql", "pgbouncer", "pgvector"],
    timezone: "utc",
    editable: true,
    graphTooltip: 1,
    refresh: "30s",
    schemaVersion: 39,
    version: 1,
    time: { from: "now-3h", to: "now" },
    annotations: { list: [] },
    links: [],
    templating: templating(input.stack),
    panels,
  };
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

/** The dashboard file: sorted keys, two-space indent, same input → same bytes. */
export function renderGrafanaDashboardJson(input: GrafanaDashboardInput = {}): string {
  return `${JSON.stringify(sortKeys(renderGrafanaDashboard(input)), null, 2)}\n`;
}

/** Every PromQL query of the dashboard with the panel it belongs to (for tests and reviews). */
export function dashboardQueries(dashboard: GrafanaDashboard): { panel: string; refId: string; expr: string }[] {
  return dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, refId: t.refId, expr: t.expr })));
}
