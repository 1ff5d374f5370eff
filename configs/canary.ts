/**
 * The synthetic canary's settings and metric contract: plain data, read by the canary itself (canary/), the CLI
 * (`pgstack canary`), the targets that run it and the Grafana dashboard.
 *
 * The names the alert rules read come from configs/alert-sources.ts (the rules' side of the contract); this file
 * adds what the canary needs besides: HELP texts, the failure counter, defaults and their reasons.
 */
import { canaryMetrics, canaryTargets, canaryVectorScenarios, type CanaryScenario, type CanaryTarget } from "./alert-sources";

export { canaryMetrics, canaryTargets, canaryVectorScenarios, type CanaryScenario, type CanaryTarget };

/** The canary's /metrics port (postgres_exporter has 9187, so the canary sits next to it). */
export const canaryPort = 9188;

/** Why a scenario did not complete: the `reason` label of `pgstack_canary_query_failures_total`. */
export const canaryFailureReasons = ["timeout", "error", "no_connection"] as const;
export type CanaryFailureReason = (typeof canaryFailureReasons)[number];

/**
 * Metrics the canary exports besides those in configs/alert-sources.ts. No rule reads them; the dashboard and the
 * runbook do. Every series is created at 0 when the canary starts, so `rate()` sees the first failure.
 */
export const canaryExtraMetrics = {
  /**
   * Counter: scenarios that did not complete, by `scenario` and `reason`: `timeout` (no answer within the query
   * timeout: also observed in the histogram, see below), `error` (the server or PgBouncer answered with an error),
   * `no_connection` (the round's connection or the canary table's setup failed, so the scenario did not run).
   */
  queryFailures: { name: "pgstack_canary_query_failures_total", labels: ["scenario", "reason"] },
} as const;

/** HELP lines of the exported metrics. */
export const canaryMetricHelp: Readonly<Record<string, string>> = {
  [canaryMetrics.queryDuration.name]:
    "Wall time of one canary scenario through PgBouncer on an open connection, BEGIN to COMMIT, in seconds; timed-out scenarios are observed at the time the canary gave up",
  [canaryMetrics.connectionAttempts.name]: "New connections the canary tried to open (connect, authenticate, SELECT 1)",
  [canaryMetrics.connectionFailures.name]:
    "Connection attempts that failed: refused, authentication error, or not answering SELECT 1 within the connect timeout",
  [canaryExtraMetrics.queryFailures.name]: "Canary scenarios that did not complete, by reason (timeout, error, no_connection)",
  [canaryMetrics.certificateNotAfter.name]:
    "notAfter of the TLS certificate the target presented in the canary's last handshake with it, as Unix seconds; read whether or not the certificate verifies",
};

/** Every metric name the canary serves (histogram series included), for the dashboard's name check. */
export function canaryMetricNames(): string[] {
  const h = canaryMetrics.queryDuration.name;
  return [
    `${h}_bucket`,
    `${h}_count`,
    `${h}_sum`,
    canaryMetrics.connectionAttempts.name,
    canaryMetrics.connectionFailures.name,
    canaryMetrics.certificateNotAfter.name,
    canaryExtraMetrics.queryFailures.name,
  ].sort();
}

export interface CanarySettings {
  /** Address of the /metrics endpoint. Defaults to 127.0.0.1:9188; containers pass 0.0.0.0:9188. */
  readonly listen: { readonly host: string; readonly port: number };
  /** How often the three scenarios run, in ms. Defaults to 10 s. */
  readonly intervalMs: number;
  /**
   * How often a new connection is opened to each target, in ms. Defaults to 1 s: the failure rule looks at 5-minute
   * windows with a 1 % threshold, and one failure among the 30 attempts a 10 s interval would give is already 3 %.
   */
  readonly connectIntervalMs: number;
  /** A connection not answering SELECT 1 within this counts as failed, in ms. Defaults to 10 s (the guide's connection timeout). */
  readonly connectTimeoutMs: number;
  /**
   * A scenario not done within this is abandoned (the server cancels it by statement_timeout, the canary closes the
   * connection) and counted as a timeout, in ms. Defaults to 10 s, far above the 0.5 s P99 threshold.
   */
  readonly queryTimeoutMs: number;
  /** The canary's own table, created if missing. Defaults to pgstack_canary. */
  readonly table: string;
  /** Dimensions of the canary's vectors. Defaults to 768, the guide's middle row. */
  readonly dimensions: number;
  /** Rows the table is seeded with and trimmed back to after each insert. Defaults to 1,000. */
  readonly maxRows: number;
  /** `hnsw.ef_search` of the canary's queries. Defaults to 40, pgvector's default. */
  readonly efSearch: number;
  /** application_name of the canary's sessions, so they can be told apart in pg_stat_activity and the logs. */
  readonly applicationName: string;
}

export const defaultCanarySettings: CanarySettings = {
  listen: { host: "127.0.0.1", port: canaryPort },
  intervalMs: 10_000,
  connectIntervalMs: 1_000,
  connectTimeoutMs: 10_000,
  queryTimeoutMs: 10_000,
  table: "pgstack_canary",
  dimensions: 768,
  maxRows: 1_000,
  efSearch: 40,
  applicationName: "pgstack-canary",
};

/** Environment variable holding the pooled (PgBouncer) connection URL, with the app user's password. */
export const pooledUrlEnv = "PGSTACK_POOLED_URL";
/** Optional: the direct PostgreSQL URL; when set, connections to PostgreSQL itself are probed too (target `postgres`). */
export const directUrlEnv = "PGSTACK_DIRECT_URL";

/** pgvector's HNSW limit for `vector`; the canary's table is indexed, so it must fit. */
const maxDimensions = 2000;

/** Problems with settings, each naming the setting, the value and what would be right; empty when usable. */
export function canarySettingsProblems(s: CanarySettings): string[] {
  const problems: string[] = [];
  const wholeMs = (key: keyof CanarySettings, min: number): void => {
    const v = s[key] as number;
    if (!Number.isInteger(v) || v < min) problems.push(`${key} ${v} must be a whole number of milliseconds ≥ ${min}`);
  };
  wholeMs("intervalMs", 100);
  wholeMs("connectIntervalMs", 100);
  wholeMs("connectTimeoutMs", 100);
  wholeMs("queryTimeoutMs", 100);
  if (!/^[a-z_][a-z0-9_]{0,40}$/.test(s.table)) problems.push(`table "${s.table}" must be a lower-case SQL identifier of at most 41 characters`);
  if (!Number.isInteger(s.dimensions) || s.dimensions < 1 || s.dimensions > maxDimensions) {
    problems.push(`dimensions ${s.dimensions} must be a whole number from 1 to ${maxDimensions} (pgvector's HNSW limit for vector)`);
  }
  if (!Number.isInteger(s.maxRows) || s.maxRows < 100 || s.maxRows > 100_000) {
    problems.push(`maxRows ${s.maxRows} must be a whole number from 100 (enough for the HNSW index to be used) to 100000`);
  }
  if (!Number.isInteger(s.efSearch) || s.efSearch < 1 || s.efSearch > 1000) problems.push(`efSearch ${s.efSearch} must be from 1 to 1000 (pgvector's range)`);
  if (!Number.isInteger(s.listen.port) || s.listen.port < 0 || s.listen.port > 65535) problems.push(`listen port ${s.listen.port} is not a TCP port`);
  if (s.listen.host === "") problems.push("listen host is empty; write 127.0.0.1 or 0.0.0.0");
  if (!/^[\x20-\x7e]{1,63}$/.test(s.applicationName)) problems.push(`applicationName "${s.applicationName}" must be 1 to 63 printable ASCII characters`);
  return problems;
}

/** "127.0.0.1:9188", ":9188", "[::1]:9188" → host and port; null when it is not host:port. */
export function parseListenAddress(text: string): { host: string; port: number } | null {
  const m = /^(?:\[([^\]]+)\]|([^:\s]*)):(\d{1,5})$/.exec(text.trim());
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65535) return null;
  return { host: m[1] ?? (m[2] === "" ? "0.0.0.0" : m[2]), port };
}
