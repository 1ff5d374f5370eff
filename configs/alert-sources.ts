/**
 * The metric contract of the two synthetic sources the alert rules read, which this project builds itself:
 * the canary (prom-client, job `canary`) and mtail over PostgreSQL's and PgBouncer's logs (job `mtail`).
 * docs/runbooks.md ("Metric sources") says the same in prose; whoever builds a source imports these names.
 */

/** Canary scenarios that are vector operations: the P95 rule watches these. */
export const canaryVectorScenarios = ["search", "hybrid", "insert"] as const;
export type CanaryScenario = (typeof canaryVectorScenarios)[number];

/** Where the canary opens its probe connections. */
export const canaryTargets = ["pgbouncer", "postgres"] as const;
export type CanaryTarget = (typeof canaryTargets)[number];

export const canaryMetrics = {
  /**
   * Histogram of one canary scenario's wall time, seconds: its whole pipelined BEGIN … COMMIT, sent → last row
   * received, through PgBouncer, on an already open connection (connecting is measured by the counters below).
   * Label `scenario`: `search` (ORDER BY distance LIMIT 10 over the HNSW index), `hybrid` (the same with a metadata
   * filter), `insert` (one row with a vector); other scenarios may be added and count for the P99 rule only.
   * A query that times out is observed at the moment the canary gave up: counting successes only would leave the
   * latency alerts quiet exactly when the database hangs.
   */
  queryDuration: {
    name: "pgstack_canary_query_duration_seconds",
    labels: ["scenario"],
    /** Must contain the alert thresholds (0.2 s P95, 0.5 s P99) as bucket bounds, and 0.1 s (the guide's P95 target). */
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10],
  },
  /** Counter: new connections the canary tried to open (a fresh connect + authentication, not a pooled one). */
  connectionAttempts: { name: "pgstack_canary_connection_attempts_total", labels: ["target"] },
  /**
   * Counter: attempts that failed (refused, authentication or TLS error, or no ready connection within 10 s, the
   * guide's connection timeout). Both counters are created at 0 for every `target` when the canary starts, so the
   * first failure is a step in an existing series and `rate()` sees it.
   */
  connectionFailures: { name: "pgstack_canary_connection_failures_total", labels: ["target"] },
  /**
   * Gauge: the notAfter of the certificate `target` presents (Unix seconds), read from the TLS handshake of each
   * connection probe, whether or not the certificate verifies (an expired one is reported, not hidden behind a
   * failed connect). Absent until the first handshake with that target; when a later one yields no certificate
   * (refused, TLS declined, timed out) it keeps the last one read, and the connection failures tell the outage.
   */
  certificateNotAfter: { name: "pgstack_canary_tls_certificate_not_after_seconds", labels: ["target"] },
} as const;

export const mtailMetrics = {
  /**
   * Counter: statements PostgreSQL logged because they ran longer than `log_min_duration_statement` (the guide's
   * 100 ms), i.e. log lines `duration: <ms> ms  statement: …` or `duration: <ms> ms  execute <name>: …`.
   * No labels required; the scrape adds job, instance and stack.
   */
  slowQueries: { name: "pgstack_slow_queries_total", labels: [] as readonly string[] },
  /**
   * Counter: log entries mtail has read (lines that start with the rendered log_line_prefix; continuation lines of
   * multi-line statements are not entries). Its rate going to 0 means mtail reads nothing (PostgresLogNotFollowed).
   */
  logLines: { name: "pgstack_log_lines_total", labels: [] as readonly string[] },
  /**
   * Counter: logins refused by PostgreSQL or PgBouncer, one per refused connection, from their logs (configs/mtail.ts
   * says which line is which reason). Labels from fixed sets only, never text of the line: `source` (`authFailureSources`)
   * and `reason` (`authFailureReasons`). The user name, database and client address in the line are chosen by
   * whoever connects; as labels they would let anyone create series without bound. Every pair starts at 0 with the
   * first line mtail reads from that source, so the first failure is a step that `rate()` sees.
   */
  authFailures: { name: "pgstack_auth_failures_total", labels: ["source", "reason"] as readonly string[] },
  /**
   * Counter: PgBouncer log lines mtail has read (PgBouncer writes its stats line every stats_period, 60 s, even when
   * idle). Its rate going to 0 means mtail does not follow PgBouncer's logfile (PgBouncerLogNotFollowed), and the
   * PgBouncer half of pgstack_auth_failures_total is blind.
   */
  pgbouncerLogLines: { name: "pgstack_pgbouncer_log_lines_total", labels: [] as readonly string[] },
} as const;

/** Which log a refused login was counted from. */
export const authFailureSources = ["postgresql", "pgbouncer"] as const;

/**
 * Why a login was refused (the `reason` label). `too_many_connections` is capacity, not a suspicious client: the
 * saturation alerts watch it; AuthenticationFailureBurst counts every other reason.
 */
export const authFailureReasons = ["authentication", "pg_hba", "tls_required", "unknown_database", "not_permitted", "too_many_connections"] as const;
export type AuthFailureReason = (typeof authFailureReasons)[number];

/** node_exporter metrics the rules read (collectors cpu, meminfo, filesystem: configs/exporters.ts nodeExporterCollectors). */
export const nodeMetricNames = [
  "node_cpu_seconds_total",
  "node_filesystem_avail_bytes",
  "node_filesystem_size_bytes",
  "node_memory_MemAvailable_bytes",
  "node_memory_MemTotal_bytes",
] as const;
