/**
 * Prometheus alerting and recording rules: the tuning guide's alert policy ("Alert Configuration") plus the guards
 * that keep it honest (a dead exporter, drifted settings, an INVALID HNSW index). Pure: plain data in, plain data out.
 *
 * Metric facts: shared/reference/monitoring-facts.md (postgres_exporter 0.17.1, pgbouncer_exporter 0.10.2);
 * the canary and mtail contracts: configs/alert-sources.ts. What each alert means and what to do: docs/runbooks.md,
 * one section per alert, linked from every alert's `runbook_url`.
 */
import yaml from "js-yaml";
import { canaryMetrics, canaryVectorScenarios, mtailMetrics } from "./alert-sources";
import { watchedSettings } from "./exporters";
import type { ScrapeJobNames } from "./scrape";
import type { AlertThresholds, HugePagesMode } from "./stack-spec";

export type { AlertThresholds } from "./stack-spec";

/** The tuning guide's policy; the rest (marked in AlertThresholds) are this project's choices. */
export const defaultAlertThresholds: AlertThresholds = {
  rateWindow: "5m",
  poolUtilizationWarning: 0.7,
  poolUtilizationWarningFor: "5m",
  poolUtilizationCritical: 0.9,
  poolUtilizationCriticalFor: "2m",
  clientWaitSeconds: 0.1,
  clientWaitFor: "5m",
  clientsWaiting: 0,
  clientsWaitingFor: "2m",
  clientConnectionsWarning: 0.8,
  clientConnectionsWarningFor: "5m",
  clientConnectionsCritical: 0.95,
  clientConnectionsCriticalFor: "2m",
  connectionFailureRatio: 0.01,
  connectionFailureFor: "2m",
  certificateExpiryWarning: "21d",
  certificateExpiryCritical: "7d",
  certificateExpiryFor: "10m",
  vectorQueryP95Seconds: 0.2,
  vectorQueryP95For: "5m",
  queryP99Seconds: 0.5,
  queryP99For: "2m",
  slowQueriesPerMinute: 10,
  slowQueriesFor: "5m",
  unavailableFor: "1m",
  memoryWarning: 0.8,
  memoryWarningFor: "5m",
  memoryCritical: 0.95,
  memoryCriticalFor: "2m",
  cpuWarning: 0.8,
  cpuWarningFor: "10m",
  diskCritical: 0.9,
  diskCriticalFor: "2m",
  cacheHitRatioMin: 0.99,
  cacheHitRatioFor: "15m",
  indexHitRatioMin: 0.95,
  indexHitRatioFor: "15m",
  hitRatioGraceAfterRestart: "30m",
  longTransactionAge: "5m",
  longTransactionFor: "1m",
  pgConnectionsWarning: 0.8,
  pgConnectionsWarningFor: "5m",
  pgConnectionsCritical: 0.95,
  pgConnectionsCriticalFor: "2m",
  pendingRestartFor: "15m",
  hugePagesNotInUseFor: "5m",
  settingsDriftFor: "10m",
  hnswIndexInvalidFor: "5m",
  exporterErrorsFor: "10m",
  targetDownFor: "2m",
  jobAbsentFor: "5m",
  logSilenceFor: "15m",
  diskUnwatchedFor: "10m",
};

export interface AlertRulesInput {
  /** Stack name: every selector matches `stack="<stack>"` (a target label set by configs/scrape.ts). */
  readonly stack: string;
  readonly thresholds: AlertThresholds;
  /** Scrape job names; a `null` source has no rules. Use `jobNamesFor()` from configs/scrape.ts. */
  readonly jobs: ScrapeJobNames;
  /** URL of docs/runbooks.md as people read it; each alert links `<url>#<alert name in lower case>`. */
  readonly runbookBaseUrl: string;
  /**
   * Settings as rendered into postgresql.conf, compared with the live ones: memory in bytes, time in milliseconds,
   * others as pg_settings spells them (`"on"`, `"pg_stat_statements"`). Names must be in `watchedSettings`.
   * huge_pages comes from `hugePages` below and must not be repeated here.
   */
  readonly expectedSettings: Readonly<Record<string, number | string>>;
  /** huge_pages as rendered; with `on` or `try` the huge-pages-not-in-use rule is added. */
  readonly hugePages: HugePagesMode;
  /** PgBouncer as rendered: compared with the live values (the saturation rules divide by the live ones). */
  readonly pgbouncer: { readonly maxClientConn: number; readonly defaultPoolSize: number };
  /**
   * application_name of maintenance sessions whose long transactions are expected (HNSW builds by the post-deploy
   * hook). Defaults to `["pgstack-postdeploy"]`.
   */
  readonly maintenanceApplications?: readonly string[];
  /** Mount points the disk rule watches. Defaults to every local filesystem (not tmpfs, overlay, squashfs, …). */
  readonly diskMountpoints?: readonly string[];
  /** Extra labels on every alert (Alertmanager routing, e.g. `team: search`). Defaults to none. */
  readonly labels?: Readonly<Record<string, string>>;
}

export interface RecordingRule {
  readonly record: string;
  readonly expr: string;
  readonly labels: Readonly<Record<string, string>>;
}

export interface AlertingRule {
  readonly alert: string;
  readonly expr: string;
  readonly for: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: { readonly summary: string; readonly description: string; readonly runbook_url: string };
}

export type Rule = RecordingRule | AlertingRule;

export interface RuleGroup {
  readonly name: string;
  readonly rules: readonly Rule[];
}

/** The rule file's content; also the `spec` of a PrometheusRule. */
export interface RuleGroups {
  readonly groups: readonly RuleGroup[];
}

export type Severity = "warning" | "critical";

export const defaultMaintenanceApplications: readonly string[] = ["pgstack-postdeploy"];

// ---------------------------------------------------------------------------------------------------------------
// Validation: every problem at once, each naming the key, the value and what would be right.

const ratioKeys = [
  "poolUtilizationWarning",
  "poolUtilizationCritical",
  "clientConnectionsWarning",
  "clientConnectionsCritical",
  "connectionFailureRatio",
  "memoryWarning",
  "memoryCritical",
  "cpuWarning",
  "diskCritical",
  "cacheHitRatioMin",
  "indexHitRatioMin",
  "pgConnectionsWarning",
  "pgConnectionsCritical",
] as const satisfies readonly (keyof AlertThresholds)[];

const orderedPairs = [
  ["poolUtilizationWarning", "poolUtilizationCritical"],
  ["clientConnectionsWarning", "clientConnectionsCritical"],
  ["memoryWarning", "memoryCritical"],
  ["pgConnectionsWarning", "pgConnectionsCritical"],
  ["vectorQueryP95Seconds", "queryP99Seconds"],
] as const satisfies readonly (readonly [keyof AlertThresholds, keyof AlertThresholds])[];

/** As configs/spec.ts reads them: a whole number and one unit. */
const durationPattern = /^(\d+)([smhd])$/;
const durationSeconds: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86400 };
const labelValue = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
/** What the drift rule can compare as a label value: the spec refuses other values of watched settings. */
export const plainSettingValue = /^[A-Za-z0-9_.,:\- ]*$/;

function seconds(duration: string): number {
  const m = durationPattern.exec(duration);
  return m ? Number(m[1]) * durationSeconds[m[2]] : NaN;
}

/** Problems with thresholds, as sentences naming key and value; empty when they are usable. */
export function alertThresholdProblems(t: AlertThresholds): string[] {
  const problems: string[] = [];
  for (const key of Object.keys(defaultAlertThresholds) as (keyof AlertThresholds)[]) {
    const value = t[key] as unknown;
    const expected = defaultAlertThresholds[key];
    if (typeof expected === "string") {
      if (typeof value !== "string" || !durationPattern.test(value) || seconds(value) === 0) {
        problems.push(`alerts.${key} ${JSON.stringify(value)} is not a duration; write a whole number and s, m, h or d, such as ${expected}`);
      }
    } else if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
      problems.push(`alerts.${key} ${JSON.stringify(value)} is not a number ≥ 0; the guide's value is ${expected}`);
    }
  }
  for (const key of ratioKeys) {
    const v = t[key];
    if (typeof v === "number" && !(v > 0 && v <= 1)) {
      problems.push(`alerts.${key} ${v} is not a fraction; write it between 0 and 1 (${defaultAlertThresholds[key]} = ${percent(defaultAlertThresholds[key])})`);
    }
  }
  for (const [low, high] of orderedPairs) {
    if (typeof t[low] === "number" && typeof t[high] === "number" && t[low] >= t[high]) {
      problems.push(`alerts.${low} ${t[low]} must be below alerts.${high} ${t[high]}`);
    }
  }
  if (!Number.isInteger(t.clientsWaiting)) problems.push(`alerts.clientsWaiting ${t.clientsWaiting} must be a whole number of clients`);
  if (seconds(t.certificateExpiryCritical) >= seconds(t.certificateExpiryWarning)) {
    problems.push(`alerts.certificateExpiryCritical ${t.certificateExpiryCritical} must be shorter than alerts.certificateExpiryWarning ${t.certificateExpiryWarning}`);
  }
  return problems;
}

function inputProblems(input: AlertRulesInput): string[] {
  const problems = alertThresholdProblems(input.thresholds);
  if (!labelValue.test(input.stack)) problems.push(`stack "${input.stack}" must be letters, digits, _ . - (it is matched as the stack label)`);
  if (!/^https?:\/\/[^\s#]+$/.test(input.runbookBaseUrl)) {
    problems.push(`runbookBaseUrl "${input.runbookBaseUrl}" must be an http(s) URL without a #fragment (the alert adds one)`);
  }
  for (const [source, job] of Object.entries(input.jobs)) {
    if (job !== null && !labelValue.test(job)) problems.push(`jobs.${source} "${job}" is not a plain job name`);
  }
  for (const [name, value] of Object.entries(input.expectedSettings)) {
    if (!watchedSettings.includes(name)) {
      problems.push(`expectedSettings.${name}: postgres_exporter does not report it; watch it in configs/exporters.ts watchedSettings or drop it`);
    } else if (name === "huge_pages" || name === "huge_pages_status") {
      problems.push(`expectedSettings.${name}: comes from hugePages ("${input.hugePages}"); do not repeat it`);
    } else if (typeof value === "number" ? !Number.isFinite(value) : !plainSettingValue.test(value)) {
      problems.push(`expectedSettings.${name} ${JSON.stringify(value)} is not a plain setting value`);
    }
  }
  for (const [key, value] of Object.entries(input.pgbouncer)) {
    if (!Number.isInteger(value) || value < 1) problems.push(`pgbouncer.${key} ${value} must be a whole number ≥ 1`);
  }
  for (const app of input.maintenanceApplications ?? []) {
    if (!/^[A-Za-z0-9_.-]+$/.test(app)) problems.push(`maintenanceApplications "${app}" must be letters, digits, _ . -`);
  }
  for (const mount of input.diskMountpoints ?? []) {
    if (!/^\/[^"\\]*$/.test(mount)) problems.push(`diskMountpoints "${mount}" must be an absolute path`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------------------------
// Text helpers. Numbers render with String(): 0.7 → "0.7", shortest round-trip form, the same on every run.

function percent(ratio: number): string {
  return `${Number((ratio * 100).toFixed(4))}%`;
}

function secondsText(s: number): string {
  return s < 1 ? `${Number((s * 1000).toFixed(3))}ms` : `${s}s`;
}

function regexAlternatives(values: readonly string[]): string {
  // Inside a PromQL string literal, so a regex backslash is written twice.
  return values.map((v) => v.replace(/[.*+?^${}()|[\]\\]/g, "\\\\$&")).join("|");
}

/** Builds selectors, rules and annotations for one stack. */
class RuleBuilder {
  readonly t: AlertThresholds;
  readonly w: string;

  constructor(readonly input: AlertRulesInput) {
    this.t = input.thresholds;
    this.w = input.thresholds.rateWindow;
  }

  /** `metric{matchers…,stack="<stack>"}`. */
  sel(metric: string, ...matchers: string[]): string {
    return `${metric}{${[...matchers, `stack="${this.input.stack}"`].join(",")}}`;
  }

  record(record: string, expr: string): RecordingRule {
    return { record, expr, labels: { stack: this.input.stack } };
  }

  alert(name: string, severity: Severity, expr: string, forDuration: string, summary: string, description: string): AlertingRule {
    return {
      alert: name,
      expr,
      for: forDuration,
      labels: { ...this.input.labels, severity, stack: this.input.stack },
      annotations: { summary, description, runbook_url: `${this.input.runbookBaseUrl}#${name.toLowerCase()}` },
    };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// PgBouncer (pgbouncer_exporter 0.10: `database` is PgBouncer's alias; the admin database `pgbouncer` is left out).

export const recordingRules = {
  poolUtilization: "pgbouncer:pool_utilization:ratio",
  clientWait: "pgbouncer:client_wait_seconds:mean_per_transaction",
  clientConnections: "pgbouncer:client_connections:utilization_ratio",
  cacheHit: "pg:cache_hit:ratio",
  indexHit: "pg:index_hit:ratio",
  pgConnections: "pg:connections:utilization_ratio",
  canaryP95: "pgstack_canary:query_duration_seconds:p95",
  canaryP99: "pgstack_canary:query_duration_seconds:p99",
  canaryConnectionFailures: "pgstack_canary:connection_failures:ratio",
  cpu: "instance:node_cpu_utilization:ratio",
  memory: "instance:node_memory_utilization:ratio",
} as const;

function pgbouncerRules(b: RuleBuilder): Rule[] {
  const { t, w } = b;
  const notAdmin = 'database!="pgbouncer"';
  const expectedMaxClientConn = b.input.pgbouncer.maxClientConn;
  const expectedPoolSize = b.input.pgbouncer.defaultPoolSize;
  const poolText = (ratio: number, d: string): string =>
    `Server connections in use by pool {{ $labels.database }}/{{ $labels.user }} on {{ $labels.instance }} have been above ${percent(ratio)} of its pool_size for ${d} (now {{ $value | humanizePercentage }}); once it is full, clients queue.`;
  const clientConnText = (ratio: number, d: string): string =>
    `Client connections to PgBouncer {{ $labels.instance }} have been above ${percent(ratio)} of max_client_conn for ${d} (now {{ $value | humanizePercentage }}); at 100% PgBouncer refuses new clients.`;
  const drift = (expr: string, setting: string, expected: number): string =>
    `label_replace(label_replace(${expr} != ${expected}, "setting", "${setting}", "", ""), "expected", "${expected}", "", "")`;
  return [
    // Pools are per (database, user); pool_size comes from SHOW DATABASES, whose alias label is `name`.
    b.record(
      recordingRules.poolUtilization,
      [
        `sum by (instance, database, user) (${b.sel("pgbouncer_pools_server_active_connections", notAdmin)})`,
        "/ on (instance, database) group_left ()",
        `max by (instance, database) (label_replace(${b.sel("pgbouncer_databases_pool_size", 'name!="pgbouncer"')}, "database", "$1", "name", "(.+)"))`,
      ].join("\n"),
    ),
    // In transaction mode a client waits for a server once per transaction; maxwait is whole seconds, so the
    // counter is the only sub-second signal.
    b.record(
      recordingRules.clientWait,
      [
        `sum by (instance, database) (rate(${b.sel("pgbouncer_stats_client_wait_seconds_total", notAdmin)}[${w}]))`,
        `/ sum by (instance, database) (rate(${b.sel("pgbouncer_stats_sql_transactions_pooled_total", notAdmin)}[${w}]))`,
      ].join("\n"),
    ),
    b.record(recordingRules.clientConnections, `${b.sel("pgbouncer_used_clients")} / ${b.sel("pgbouncer_config_max_client_connections")}`),
    b.alert(
      "PgBouncerPoolUtilizationHigh",
      "warning",
      `${b.sel(recordingRules.poolUtilization)} > ${t.poolUtilizationWarning}`,
      t.poolUtilizationWarningFor,
      "PgBouncer pool {{ $labels.database }}/{{ $labels.user }} is {{ $value | humanizePercentage }} used",
      poolText(t.poolUtilizationWarning, t.poolUtilizationWarningFor),
    ),
    b.alert(
      "PgBouncerPoolUtilizationHigh",
      "critical",
      `${b.sel(recordingRules.poolUtilization)} > ${t.poolUtilizationCritical}`,
      t.poolUtilizationCriticalFor,
      "PgBouncer pool {{ $labels.database }}/{{ $labels.user }} is {{ $value | humanizePercentage }} used",
      poolText(t.poolUtilizationCritical, t.poolUtilizationCriticalFor),
    ),
    b.alert(
      "PgBouncerClientWaitHigh",
      "warning",
      `${b.sel(recordingRules.clientWait)} > ${t.clientWaitSeconds}`,
      t.clientWaitFor,
      "Clients of {{ $labels.database }} wait {{ $value | humanizeDuration }} for a server connection",
      `The average time a client of {{ $labels.database }} on {{ $labels.instance }} waited for a server connection, per transaction over ${w}, has been above ${secondsText(t.clientWaitSeconds)} for ${t.clientWaitFor} (now {{ $value | humanizeDuration }}).`,
    ),
    b.alert(
      "PgBouncerClientsWaiting",
      "warning",
      `sum by (instance, database, user) (${b.sel("pgbouncer_pools_client_waiting_connections", notAdmin)}) > ${t.clientsWaiting}`,
      t.clientsWaitingFor,
      "{{ $value }} clients wait for a server connection in pool {{ $labels.database }}/{{ $labels.user }}",
      `Pool {{ $labels.database }}/{{ $labels.user }} on {{ $labels.instance }} has had more than ${t.clientsWaiting} clients waiting (cl_waiting) for ${t.clientsWaitingFor}, now {{ $value }}: every server connection of the pool is busy.`,
    ),
    b.alert(
      "PgBouncerClientConnectionsNearLimit",
      "warning",
      `${b.sel(recordingRules.clientConnections)} > ${t.clientConnectionsWarning}`,
      t.clientConnectionsWarningFor,
      "PgBouncer {{ $labels.instance }} uses {{ $value | humanizePercentage }} of max_client_conn",
      clientConnText(t.clientConnectionsWarning, t.clientConnectionsWarningFor),
    ),
    b.alert(
      "PgBouncerClientConnectionsNearLimit",
      "critical",
      `${b.sel(recordingRules.clientConnections)} > ${t.clientConnectionsCritical}`,
      t.clientConnectionsCriticalFor,
      "PgBouncer {{ $labels.instance }} uses {{ $value | humanizePercentage }} of max_client_conn",
      clientConnText(t.clientConnectionsCritical, t.clientConnectionsCriticalFor),
    ),
    b.alert(
      "PgBouncerDown",
      "critical",
      `${b.sel("pgbouncer_up")} == 0`,
      t.unavailableFor,
      "PgBouncer {{ $labels.instance }} is down",
      `pgbouncer_exporter on {{ $labels.instance }} has not been able to query PgBouncer's admin console for ${t.unavailableFor} (pgbouncer_up = {{ $value }}): the pooler is down or refuses the stats user.`,
    ),
    b.alert(
      "PgBouncerSettingsDrift",
      "warning",
      [
        drift(b.sel("pgbouncer_config_max_client_connections"), "max_client_conn", expectedMaxClientConn),
        `or ${drift(b.sel("pgbouncer_databases_pool_size", 'name!="pgbouncer"'), "default_pool_size", expectedPoolSize)}`,
      ].join("\n"),
      t.settingsDriftFor,
      "PgBouncer {{ $labels.setting }} is {{ $value }}, rendered {{ $labels.expected }}",
      `The live {{ $labels.setting }} of PgBouncer {{ $labels.instance }}{{ with $labels.name }} (database {{ . }}){{ end }} has differed from the rendered configuration for ${t.settingsDriftFor}: {{ $value }} live, {{ $labels.expected }} rendered.`,
    ),
  ];
}

// ---------------------------------------------------------------------------------------------------------------
// PostgreSQL (postgres_exporter 0.17: legacy metrics carry `server`, collector metrics do not; join by instance).

function postgresRules(b: RuleBuilder): Rule[] {
  const { t, w, input } = b;
  const userDatabases = 'datname!~"template0|template1"';
  const graceSeconds = seconds(t.hitRatioGraceAfterRestart);
  const afterWarmup = `unless on (instance) (time() - ${b.sel("pg_postmaster_start_time_seconds")} < ${graceSeconds})`;
  const ratio = (hit: string, read: string, by: string): string =>
    [`sum by (${by}) (rate(${hit}[${w}]))`, `/ (sum by (${by}) (rate(${hit}[${w}])) + sum by (${by}) (rate(${read}[${w}])))`].join("\n");
  const maintenance = input.maintenanceApplications ?? defaultMaintenanceApplications;
  const longTxMatchers = ['state=~"active|idle in transaction.*"'];
  if (maintenance.length > 0) longTxMatchers.push(`application_name!~"${regexAlternatives(maintenance)}"`);
  const connText = (ratio: number, d: string): string =>
    `Client backends on {{ $labels.instance }} have been above ${percent(ratio)} of max_connections for ${d} (now {{ $value | humanizePercentage }}). PgBouncer's pools are sized to stay below it, so something connects around the pooler or the pools were enlarged.`;
  const settingDrift = (name: string, expected: string): string =>
    `label_replace(${b.sel("pgstack_settings_info", `name="${name}"`, `value!="${expected}"`)}, "expected", "${expected}", "", "")`;
  const expected: [string, string][] = [
    ...Object.entries(input.expectedSettings).map(([name, v]): [string, string] => [name, String(v)]),
    ["huge_pages", input.hugePages],
  ];
  expected.sort(([a], [c]) => (a < c ? -1 : a > c ? 1 : 0));

  const rules: Rule[] = [
    b.record(
      recordingRules.cacheHit,
      ratio(b.sel("pg_stat_database_blks_hit", userDatabases), b.sel("pg_stat_database_blks_read", userDatabases), "instance, datname"),
    ),
    b.record(
      recordingRules.indexHit,
      ratio(b.sel("pg_statio_user_tables_idx_blocks_hit"), b.sel("pg_statio_user_tables_idx_blocks_read"), "instance, datname"),
    ),
    // max_connections bounds client backends; pg_stat_activity also lists autovacuum and background workers.
    b.record(
      recordingRules.pgConnections,
      [
        `sum by (instance) (${b.sel("pg_stat_activity_count", 'backend_type="client backend"')})`,
        `/ on (instance) max by (instance) (${b.sel("pg_settings_max_connections")})`,
      ].join("\n"),
    ),
    b.alert(
      "PostgresDown",
      "critical",
      `${b.sel("pg_up")} == 0`,
      t.unavailableFor,
      "PostgreSQL {{ $labels.instance }} is down",
      `postgres_exporter on {{ $labels.instance }} has not been able to connect to PostgreSQL for ${t.unavailableFor} (pg_up = {{ $value }}).`,
    ),
    b.alert(
      "PostgresConnectionsNearMax",
      "warning",
      `${b.sel(recordingRules.pgConnections)} > ${t.pgConnectionsWarning}`,
      t.pgConnectionsWarningFor,
      "PostgreSQL {{ $labels.instance }} uses {{ $value | humanizePercentage }} of max_connections",
      connText(t.pgConnectionsWarning, t.pgConnectionsWarningFor),
    ),
    b.alert(
      "PostgresConnectionsNearMax",
      "critical",
      `${b.sel(recordingRules.pgConnections)} > ${t.pgConnectionsCritical}`,
      t.pgConnectionsCriticalFor,
      "PostgreSQL {{ $labels.instance }} uses {{ $value | humanizePercentage }} of max_connections",
      connText(t.pgConnectionsCritical, t.pgConnectionsCriticalFor),
    ),
    b.alert(
      "PostgresCacheHitRatioLow",
      "warning",
      `${b.sel(recordingRules.cacheHit)} < ${t.cacheHitRatioMin}\n${afterWarmup}`,
      t.cacheHitRatioFor,
      "Buffer cache hit ratio of {{ $labels.datname }} is {{ $value | humanizePercentage }}",
      `Of the blocks {{ $labels.datname }} on {{ $labels.instance }} read over ${w}, fewer than ${percent(t.cacheHitRatioMin)} were found in shared_buffers, for ${t.cacheHitRatioFor} (now {{ $value | humanizePercentage }}). The first ${t.hitRatioGraceAfterRestart} after a restart are ignored.`,
    ),
    b.alert(
      "PostgresIndexHitRatioLow",
      "warning",
      `${b.sel(recordingRules.indexHit)} < ${t.indexHitRatioMin}\n${afterWarmup}`,
      t.indexHitRatioFor,
      "Index hit ratio of {{ $labels.datname }} is {{ $value | humanizePercentage }}",
      `Of the index blocks {{ $labels.datname }} on {{ $labels.instance }} read over ${w}, fewer than ${percent(t.indexHitRatioMin)} were found in shared_buffers, for ${t.indexHitRatioFor} (now {{ $value | humanizePercentage }}). The first ${t.hitRatioGraceAfterRestart} after a restart are ignored.`,
    ),
    b.alert(
      "PostgresLongRunningTransaction",
      "warning",
      `max by (instance, datname, usename, application_name) (${b.sel("pg_stat_activity_max_tx_duration", ...longTxMatchers)}) > ${seconds(t.longTransactionAge)}`,
      t.longTransactionFor,
      "A transaction in {{ $labels.datname }} has been open for {{ $value | humanizeDuration }}",
      `The oldest transaction of {{ $labels.usename }} ({{ $labels.application_name }}) in {{ $labels.datname }} on {{ $labels.instance }} has been open for more than ${t.longTransactionAge}: {{ $value | humanizeDuration }}. It holds its locks and keeps VACUUM from removing dead rows.`,
    ),
    b.alert(
      "PostgresPendingRestart",
      "warning",
      `${b.sel("pgstack_pending_restart_settings")} > 0`,
      t.pendingRestartFor,
      "{{ $value }} PostgreSQL settings on {{ $labels.instance }} wait for a restart",
      `{{ $value }} settings changed in the configuration of {{ $labels.instance }} have been waiting for a restart for ${t.pendingRestartFor} (pending_restart in pg_settings); the server still runs with the old values.`,
    ),
    b.alert(
      "PostgresSettingsDrift",
      "warning",
      expected.map(([name, value], i) => `${i === 0 ? "" : "or "}${settingDrift(name, value)}`).join("\n"),
      t.settingsDriftFor,
      "PostgreSQL {{ $labels.name }} is {{ $labels.value }}, rendered {{ $labels.expected }}",
      `The live {{ $labels.name }} on {{ $labels.instance }} has differed from the rendered configuration for ${t.settingsDriftFor}: {{ $labels.value }} live, {{ $labels.expected }} rendered (memory in bytes, time in milliseconds).`,
    ),
  ];
  if (input.hugePages !== "off") {
    rules.push(
      b.alert(
        "PostgresHugePagesNotInUse",
        "warning",
        b.sel("pgstack_settings_info", 'name="huge_pages_status"', 'value!="on"'),
        t.hugePagesNotInUseFor,
        "PostgreSQL {{ $labels.instance }} runs without huge pages",
        `huge_pages is ${input.hugePages} but huge_pages_status on {{ $labels.instance }} has been {{ $labels.value }} for ${t.hugePagesNotInUseFor}: shared memory is in 4 kB pages (too few huge pages reserved, or none granted to the container).`,
      ),
    );
  }
  rules.push(
    b.alert(
      "PostgresHnswIndexInvalid",
      "warning",
      `${b.sel("pgstack_hnsw_index_valid")} == 0\nand on (instance, datname, schemaname, indexrelname) ${b.sel("pgstack_hnsw_index_building")} == 0`,
      t.hnswIndexInvalidFor,
      "HNSW index {{ $labels.schemaname }}.{{ $labels.indexrelname }} is INVALID",
      `{{ $labels.schemaname }}.{{ $labels.indexrelname }} on {{ $labels.relname }} in {{ $labels.datname }} has been INVALID with no build running for ${t.hnswIndexInvalidFor} (valid = {{ $value }}): a CREATE INDEX CONCURRENTLY or REINDEX failed, and vector searches on {{ $labels.relname }} scan the table.`,
    ),
    b.alert(
      "PostgresExporterErrors",
      "warning",
      [
        `(${b.sel("pg_exporter_last_scrape_error")} == 1 or ${b.sel("pg_exporter_user_queries_load_error")} == 1 or ${b.sel("pg_scrape_collector_success")} == 0)`,
        `unless on (instance) ${b.sel("pg_up")} == 0`,
      ].join("\n"),
      t.exporterErrorsFor,
      "postgres_exporter {{ $labels.instance }} fails part of its scrape",
      `postgres_exporter on {{ $labels.instance }} has reported a failing {{ with $labels.collector }}collector {{ . }}{{ else }}custom query or settings query{{ end }} for ${t.exporterErrorsFor} (value {{ $value }}); alerts built on those metrics are blind.`,
    ),
  );
  return rules;
}

// ---------------------------------------------------------------------------------------------------------------
// Canary (job `canary`): sees its own probe queries and connections only, never the application's.

function canaryRules(b: RuleBuilder): Rule[] {
  const { t, w } = b;
  const bucket = `${canaryMetrics.queryDuration.name}_bucket`;
  const quantile = (q: number): string => `histogram_quantile(${q}, sum by (instance, scenario, le) (rate(${b.sel(bucket)}[${w}])))`;
  const vector = `scenario=~"${canaryVectorScenarios.join("|")}"`;
  return [
    b.record(recordingRules.canaryP95, quantile(0.95)),
    b.record(recordingRules.canaryP99, quantile(0.99)),
    b.record(
      recordingRules.canaryConnectionFailures,
      [
        `sum by (instance, target) (rate(${b.sel(canaryMetrics.connectionFailures.name)}[${w}]))`,
        `/ sum by (instance, target) (rate(${b.sel(canaryMetrics.connectionAttempts.name)}[${w}]))`,
      ].join("\n"),
    ),
    b.alert(
      "CanaryConnectionFailures",
      "critical",
      `${b.sel(recordingRules.canaryConnectionFailures)} > ${t.connectionFailureRatio}`,
      t.connectionFailureFor,
      "{{ $value | humanizePercentage }} of the canary's connections to {{ $labels.target }} fail",
      `More than ${percent(t.connectionFailureRatio)} of the canary's new connections to {{ $labels.target }} failed over ${w}, for ${t.connectionFailureFor} (now {{ $value | humanizePercentage }}). The canary connects like an application would; the application's own failures are not counted here.`,
    ),
    ...(["warning", "critical"] as const).map((severity) => {
      const within = severity === "warning" ? t.certificateExpiryWarning : t.certificateExpiryCritical;
      return b.alert(
        "CertificateExpiresSoon",
        severity,
        `min by (instance, target) (${b.sel(canaryMetrics.certificateNotAfter.name)}) - time() < ${seconds(within)}`,
        t.certificateExpiryFor,
        "The certificate {{ $labels.target }} serves expires in {{ $value | humanizeDuration }}",
        `The TLS certificate {{ $labels.target }} presents (seen by the canary on {{ $labels.instance }}) expires within ${within}, in {{ $value | humanizeDuration }}; once it has, every verifying client is refused. The stack renews certificates well before that, so a renewal has failed or a renewed certificate was not loaded.`,
      );
    }),
    b.alert(
      "VectorQueryLatencyP95High",
      "warning",
      `${b.sel(recordingRules.canaryP95, vector)} > ${t.vectorQueryP95Seconds}`,
      t.vectorQueryP95For,
      "Canary {{ $labels.scenario }} P95 latency is {{ $value | humanizeDuration }}",
      `The 95th percentile of the canary's {{ $labels.scenario }} queries over ${w} has been above ${secondsText(t.vectorQueryP95Seconds)} for ${t.vectorQueryP95For} (now {{ $value | humanizeDuration }}). The canary measures its own queries through PgBouncer, not the application's.`,
    ),
    b.alert(
      "QueryLatencyP99High",
      "critical",
      `${b.sel(recordingRules.canaryP99)} > ${t.queryP99Seconds}`,
      t.queryP99For,
      "Canary {{ $labels.scenario }} P99 latency is {{ $value | humanizeDuration }}",
      `The 99th percentile of the canary's {{ $labels.scenario }} queries over ${w} has been above ${secondsText(t.queryP99Seconds)} for ${t.queryP99For} (now {{ $value | humanizeDuration }}). The canary measures its own queries through PgBouncer, not the application's.`,
    ),
  ];
}

// ---------------------------------------------------------------------------------------------------------------
// mtail over PostgreSQL's log (every statement over log_min_duration_statement, whoever sent it) and over both
// servers' logs (refused logins).

/**
 * AuthenticationFailureBurst: refused logins (any reason but too_many_connections) per minute, averaged over the rate
 * window, above which a source alerts. Guide, Security: "monitor unusual connection patterns". 10 a minute over 5m is
 * 50 refusals: a person mistyping a password a few times stays far below; an application deployed with a stale
 * password retries every few seconds and passes it, and so does any password-guessing run (hundreds a minute). The
 * stack's own clients log in with the right passwords, and a password rotation refuses a handful at the switch.
 * Not a stack-file key: the spec's keys are fixed for this change; a constant here, beside the rule.
 */
export const authFailureBurstPerMinute = 10;

function mtailRules(b: RuleBuilder): Rule[] {
  const { t, w } = b;
  const authFailures = `sum by (instance, source) (rate(${b.sel(mtailMetrics.authFailures.name, 'reason!="too_many_connections"')}[${w}])) * 60`;
  return [
    // A burst of refused logins is a connection failure pattern too: it waits the guide's connection-failure time.
    b.alert(
      "AuthenticationFailureBurst",
      "warning",
      `${authFailures} > ${authFailureBurstPerMinute}`,
      t.connectionFailureFor,
      "{{ $labels.source }} refuses {{ $value | humanize }} logins per minute",
      `{{ $labels.source }} has refused more than ${authFailureBurstPerMinute} logins per minute (wrong password or unknown user, pg_hba.conf, no TLS, unknown database, no login right; averaged over ${w}) for ${t.connectionFailureFor}: now {{ $value | humanize }} per minute, counted by mtail on {{ $labels.instance }}. A client with a stale password, or someone guessing.`,
    ),
    b.alert(
      "PgBouncerLogNotFollowed",
      "warning",
      `sum by (instance) (rate(${b.sel(mtailMetrics.pgbouncerLogLines.name)}[${t.logSilenceFor}])) == 0`,
      t.logSilenceFor,
      "mtail on {{ $labels.instance }} reads no PgBouncer log line",
      `mtail on {{ $labels.instance }} has counted no line of PgBouncer's logfile for ${t.logSilenceFor} and more, although PgBouncer writes its stats line every minute: the file is not where mtail looks (logfile, the shared volume) or not readable, so AuthenticationFailureBurst cannot see logins PgBouncer refuses (lines per second: {{ $value }}).`,
    ),
    b.alert(
      "PostgresSlowQueries",
      "warning",
      `sum by (instance) (rate(${b.sel(mtailMetrics.slowQueries.name)}[${w}])) * 60 > ${t.slowQueriesPerMinute}`,
      t.slowQueriesFor,
      "PostgreSQL logs {{ $value | humanize }} slow queries per minute",
      `PostgreSQL has logged more than ${t.slowQueriesPerMinute} statements per minute over log_min_duration_statement (averaged over ${w}) for ${t.slowQueriesFor}: now {{ $value | humanize }} per minute, counted by mtail on {{ $labels.instance }}.`,
    ),
    // mtail up and serving, but reading nothing: the slow-query count would stay 0 whatever PostgreSQL logs.
    b.alert(
      "PostgresLogNotFollowed",
      "warning",
      `sum by (instance) (rate(${b.sel(mtailMetrics.logLines.name)}[${t.logSilenceFor}])) == 0`,
      t.logSilenceFor,
      "mtail on {{ $labels.instance }} reads no PostgreSQL log line",
      `mtail on {{ $labels.instance }} has counted no line of PostgreSQL's log for ${t.logSilenceFor} and more, although connections and checkpoints are logged every few seconds: it cannot find or read the files (path, uid, permissions), so PostgresSlowQueries is blind (lines per second: {{ $value }}).`,
    ),
  ];
}

// ---------------------------------------------------------------------------------------------------------------
// node_exporter: the host (on Kubernetes, the node; not the pod's cgroup).

const pseudoFilesystems = "tmpfs|ramfs|devtmpfs|overlay|squashfs|nsfs|fuse.lxcfs|autofs|proc|sysfs|cgroup2?";

/**
 * The filesystem matchers of the disk rule (and the dashboard's panel): the given mount points, else every
 * filesystem that is not a pseudo one.
 */
export function diskMatchers(mountpoints: readonly string[] | undefined): string[] {
  return mountpoints?.length ? [`mountpoint=~"${regexAlternatives(mountpoints)}"`] : [`fstype!~"${pseudoFilesystems}"`];
}

function nodeRules(b: RuleBuilder): Rule[] {
  const { t, w, input } = b;
  const fs = diskMatchers(input.diskMountpoints);
  const memText = (ratio: number, d: string): string =>
    `Memory in use on {{ $labels.instance }} (1 - MemAvailable/MemTotal; reserved huge pages count as used) has been above ${percent(ratio)} for ${d} (now {{ $value | humanizePercentage }}).`;
  return [
    b.record(recordingRules.cpu, `1 - avg by (instance) (rate(${b.sel("node_cpu_seconds_total", 'mode="idle"')}[${w}]))`),
    b.record(recordingRules.memory, `1 - ${b.sel("node_memory_MemAvailable_bytes")} / ${b.sel("node_memory_MemTotal_bytes")}`),
    b.alert(
      "HostCpuUsageHigh",
      "warning",
      `${b.sel(recordingRules.cpu)} > ${t.cpuWarning}`,
      t.cpuWarningFor,
      "CPU of {{ $labels.instance }} is {{ $value | humanizePercentage }} busy",
      `CPU use of {{ $labels.instance }}, averaged over ${w}, has been above ${percent(t.cpuWarning)} for ${t.cpuWarningFor} (now {{ $value | humanizePercentage }}).`,
    ),
    b.alert(
      "HostMemoryUsageHigh",
      "warning",
      `${b.sel(recordingRules.memory)} > ${t.memoryWarning}`,
      t.memoryWarningFor,
      "Memory of {{ $labels.instance }} is {{ $value | humanizePercentage }} used",
      memText(t.memoryWarning, t.memoryWarningFor),
    ),
    b.alert(
      "HostMemoryUsageHigh",
      "critical",
      `${b.sel(recordingRules.memory)} > ${t.memoryCritical}`,
      t.memoryCriticalFor,
      "Memory of {{ $labels.instance }} is {{ $value | humanizePercentage }} used",
      memText(t.memoryCritical, t.memoryCriticalFor),
    ),
    b.alert(
      "HostDiskUsageHigh",
      "critical",
      `1 - ${b.sel("node_filesystem_avail_bytes", ...fs)} / ${b.sel("node_filesystem_size_bytes", ...fs)} > ${t.diskCritical}`,
      t.diskCriticalFor,
      "Filesystem {{ $labels.mountpoint }} of {{ $labels.instance }} is {{ $value | humanizePercentage }} full",
      `Filesystem {{ $labels.mountpoint }} ({{ $labels.device }}) on {{ $labels.instance }} has been more than ${percent(t.diskCritical)} full for ${t.diskCriticalFor} (now {{ $value | humanizePercentage }}). PostgreSQL stops when it cannot write WAL.`,
    ),
    ...(input.diskMountpoints?.length
      ? [
          // The rule selects the data volume by mount point; if node_exporter does not report it, the rule is blind.
          b.alert(
            "HostDiskUnwatched",
            "warning",
            input.diskMountpoints
              .map((m, i) => `${i === 0 ? "" : "or "}absent(${b.sel("node_filesystem_size_bytes", `mountpoint="${m}"`)})`)
              .join("\n"),
            t.diskUnwatchedFor,
            "node_exporter reports no filesystem at {{ $labels.mountpoint }}",
            `No node_exporter of stack {{ $labels.stack }} has reported the filesystem mounted at {{ $labels.mountpoint }} for ${t.diskUnwatchedFor}: the volume is not mounted into it, or its filesystem type is excluded, and HostDiskUsageHigh cannot fire for it (absent = {{ $value }}).`,
          ),
        ]
      : []),
  ];
}

// ---------------------------------------------------------------------------------------------------------------
// Scrape guards: without them a dead exporter takes every alert built on it down silently.

function targetRules(b: RuleBuilder): Rule[] {
  const { t, input } = b;
  const core = [input.jobs.postgres, input.jobs.pgbouncer];
  const auxiliary = [input.jobs.node, input.jobs.canary, input.jobs.mtail].filter((j): j is string => j !== null);
  const down = (jobs: string[], severity: Severity): AlertingRule =>
    b.alert(
      "ScrapeTargetDown",
      severity,
      `${b.sel("up", `job=~"${jobs.join("|")}"`)} == 0`,
      t.targetDownFor,
      "{{ $labels.job }} target {{ $labels.instance }} is down",
      `Prometheus has failed to scrape {{ $labels.job }} at {{ $labels.instance }} for ${t.targetDownFor} (up = {{ $value }}); every alert built on its metrics is silent meanwhile.`,
    );
  const absent = (jobs: string[], severity: Severity): AlertingRule =>
    b.alert(
      "ScrapeJobAbsent",
      severity,
      jobs.map((j, i) => `${i === 0 ? "" : "or "}absent(${b.sel("up", `job="${j}"`)})`).join("\n"),
      t.jobAbsentFor,
      "No {{ $labels.job }} target is scraped",
      `Prometheus has had no {{ $labels.job }} target in stack {{ $labels.stack }} for ${t.jobAbsentFor} (absent = {{ $value }}): its service discovery or scrape configuration lost it, and every alert built on its metrics is silent.`,
    );
  const rules: Rule[] = [down(core, "critical"), absent(core, "critical")];
  if (auxiliary.length > 0) rules.push(down(auxiliary, "warning"), absent(auxiliary, "warning"));
  return rules;
}

/** The rule groups for one stack. Throws an Error listing every problem with the input. */
export function renderAlertRules(input: AlertRulesInput): RuleGroups {
  const problems = inputProblems(input);
  if (problems.length > 0) throw new Error(`Alert rules for stack "${input.stack}":\n  - ${problems.join("\n  - ")}`);
  const b = new RuleBuilder(input);
  const group = (source: string, rules: Rule[]): RuleGroup => ({ name: `pgstack-${input.stack}-${source}`, rules });
  const groups: RuleGroup[] = [group("pgbouncer", pgbouncerRules(b)), group("postgres", postgresRules(b))];
  if (input.jobs.canary !== null) groups.push(group("canary", canaryRules(b)));
  if (input.jobs.mtail !== null) groups.push(group("mtail", mtailRules(b)));
  if (input.jobs.node !== null) groups.push(group("node", nodeRules(b)));
  groups.push(group("targets", targetRules(b)));
  return { groups };
}

/** The rules file: sorted keys, literal blocks for multi-line expressions, same input → same bytes. */
export function renderAlertRulesYaml(input: AlertRulesInput): string {
  return yaml.dump(renderAlertRules(input), { sortKeys: true, lineWidth: -1, noRefs: true });
}

export function isAlertingRule(rule: Rule): rule is AlertingRule {
  return "alert" in rule;
}
