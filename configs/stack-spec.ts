/**
 * StackSpec: every key a stack file (Pulumi.<stack>.yaml) may hold, validated and with defaults filled in.
 * `configs/spec.ts` builds it; everything else reads it. Sizes are bytes, durations milliseconds.
 */
import type { BenchmarkSpec } from "./benchmark";
import type { VectorTableSpec } from "./hnsw";

export type Target = "kubernetes" | "docker" | "local";
export type StorageClass = "ssd" | "nvme" | "hdd";
export type HugePagesMode = "on" | "try" | "off";
export type PoolMode = "transaction" | "session" | "statement";

export interface NodeSpec {
  /** RAM of the node PostgreSQL runs on, bytes. For `memory: auto` (perf stacks), this host's RAM. */
  readonly memoryBytes: number;
  /** True when the stack said `memory: auto`: sized to the machine that runs it. */
  readonly memoryAuto: boolean;
  readonly cpus: number;
  readonly storage: StorageClass;
}

/** pgaudit's statement classes (pgaudit.log); `all` is every one of them. */
export const auditClasses = ["read", "write", "function", "role", "ddl", "misc", "misc_set", "all"] as const;
export type AuditClass = (typeof auditClasses)[number];

/** Audit logging with pgaudit (guide, Security: audit logs). Off unless asked for. */
export interface AuditSpec {
  readonly enabled: boolean;
  /** pgaudit.log: what a session's statements are logged for. Defaults to ddl and role. */
  readonly log: readonly AuditClass[];
}

export interface PostgresSpec {
  readonly version: 17;
  readonly maxConnections: number;
  readonly statementTimeoutMs: number;
  readonly hugePages: HugePagesMode;
  /** Connections kept outside PgBouncer's pool: superuser/maintenance (the hook, admins) and the exporters. */
  readonly reservedConnections: { readonly maintenance: number; readonly monitoring: number };
  readonly database: string;
  readonly appUser: string;
  /** pgaudit session logging (postgres.audit). */
  readonly audit: AuditSpec;
  /** Extra postgresql.conf settings; names checked against PostgreSQL 17, owned settings refused. */
  readonly settings: Readonly<Record<string, string>>;
  /**
   * The memory worst case (every connection using work_mem at once) exceeds node RAM and the stack's owner has read
   * why (memory-plan.yaml): the warning is no longer printed on every render. Defaults to false.
   */
  readonly acceptWorstCaseMemory: boolean;
}

export interface PgBouncerSpec {
  readonly poolMode: PoolMode;
  readonly maxClientConn: number;
  readonly defaultPoolSize: number;
  readonly reservePoolSize: number;
  readonly serverConnectTimeoutSeconds: number;
  readonly queryTimeoutSeconds: number;
  readonly serverIdleTimeoutSeconds: number;
  readonly clientIdleTimeoutSeconds: number;
  readonly maxPreparedStatements: number;
}

/** The eight images a stack runs, by the key `images:` names them with. */
export type ImageKey = "postgres" | "pgbouncer" | "postgresExporter" | "pgbouncerExporter" | "prometheus" | "nodeExporter" | "mtail" | "node";

/** A reference for each image key. */
export interface ImageReferences {
  readonly postgres: string;
  readonly pgbouncer: string;
  readonly postgresExporter: string;
  readonly pgbouncerExporter: string;
  readonly prometheus: string;
  readonly nodeExporter: string;
  /** mtail over PostgreSQL's log (configs/mtail.ts). */
  readonly mtail: string;
  /** Runs the post-deploy hook and the canary (the bundled pgstack CLI). */
  readonly node: string;
}

/**
 * Where the containers' images come from. `pgstack`: this repository's images/, built from the pinned Debian 13
 * packages the real-server tests run (images/packages.txt), so what ships is what was tested. `upstream`: the public
 * images of `upstream` (pgvector/pgvector, edoburu/pgbouncer, prometheus-community's, …), pinned by tag or digest.
 */
export type ImageSource = "pgstack" | "upstream";

export interface Images {
  readonly source: ImageSource;
  /**
   * Kubernetes with source pgstack: the registry repository prefix (`registry.example.com/team`) the images are pushed
   * to and the pod pulls them from. null otherwise (Docker builds on the engine it deploys to and pushes nowhere).
   */
  readonly registry: string | null;
  /** The public images, used when source is upstream (each overridable by its key under `images:`). */
  readonly upstream: ImageReferences;
}

/**
 * TLS on every connection (guide, Security: SSL/TLS for all connections). The certificates come from a CA the program
 * makes (@pulumi/tls on Docker and Kubernetes, a throw-away one per perf cluster) or, on Kubernetes, from cert-manager.
 */
export interface TlsSpec {
  /** Lifetime of the server certificate the stack issues. Defaults to 90 days. */
  readonly certificateValidityMs: number;
  /** Renew this long before it ends (cert-manager renewBefore; @pulumi/tls earlyRenewalHours). Defaults to 30 days. */
  readonly renewBeforeMs: number;
  /** Kubernetes: the cert-manager issuer of the server certificate; null = the CA the program generates. */
  readonly certManagerIssuer: { readonly name: string; readonly kind: "Issuer" | "ClusterIssuer" } | null;
}

/** Kubernetes label selector terms (`matchLabels`): keys and values checked as the API server checks them. */
export type Labels = Readonly<Record<string, string>>;

export interface KubernetesSpec {
  readonly namespace: string;
  readonly storageSizeBytes: number;
  /** Kubernetes StorageClass name of the data volume; null = the cluster default. */
  readonly storageClassName: string | null;
  /**
   * The data volume's size before its claim was expanded by hand (docs/runbooks.md, "Growing the data volume"):
   * lets `pulumi up` accept the larger storageSize of a deployed stack. null when no resize is being recorded.
   */
  readonly storageResizedFromBytes: number | null;
  /** Prometheus Operator CRDs (PodMonitor, PrometheusRule) are assumed installed when true. */
  readonly prometheusOperator: boolean;
  readonly grafanaDashboard: boolean;
  /**
   * Extra labels on the PodMonitors and the PrometheusRule, so the cluster's Prometheus selects them
   * (kube-prometheus-stack selects by `release: <its release name>`). Defaults to none.
   */
  readonly monitoringLabels: Labels;
  /** Namespaces whose pods may use the pooled and direct ports (NetworkPolicy). Defaults to the database's own. */
  readonly clientNamespaceSelector: Labels | null;
  /** Pods (in those namespaces) that may connect. Defaults to every pod there. */
  readonly clientPodSelector: Labels;
  /** Namespaces Prometheus runs in (NetworkPolicy for the metrics ports). Defaults to `kubernetes.io/metadata.name: monitoring`. */
  readonly prometheusNamespaceSelector: Labels;
  /** Prometheus pods. Defaults to `app.kubernetes.io/name: prometheus`. */
  readonly prometheusPodSelector: Labels;
  /** Memory the nodes keep for their DaemonSets (log shippers, CNI, CSI), outside the pod's share. Defaults to 512 MiB. */
  readonly daemonSetMemoryBytes: number;
  /** The cluster's DNS domain, in the Services' names. Defaults to `cluster.local`. */
  readonly clusterDomain: string;
}

export interface DockerSpec {
  /** The Docker host has huge pages reserved: render huge_pages = on instead of try. */
  readonly hostHugePages: boolean;
  /** Address published ports bind to. */
  readonly publishAddress: string;
  /** publishAddress may be other than loopback (127.0.0.0/8): the stack means to publish beyond the Docker host, and every render warns. */
  readonly exposeBeyondLoopback: boolean;
  readonly ports: { readonly postgres: number; readonly pgbouncer: number; readonly prometheus: number };
}

/**
 * Every threshold and `for` duration, tunable per stack (`alerts:` in Pulumi.<stack>.yaml). Ratios are fractions
 * (0.7 = 70 %), latencies seconds, durations Prometheus durations ("5m").
 * Where the guide gives no `for` and nothing is noted, warnings wait 5m and criticals 2m, as the guide's pool rules do.
 */
export interface AlertThresholds {
  /** Window of every rate() and latency quantile. */
  readonly rateWindow: string;
  /** Guide: pool utilization > 70 % for > 5 minutes, WARNING. Server connections in use / pool_size. */
  readonly poolUtilizationWarning: number;
  readonly poolUtilizationWarningFor: string;
  /** Guide: pool utilization > 90 % for > 2 minutes, CRITICAL. */
  readonly poolUtilizationCritical: number;
  readonly poolUtilizationCriticalFor: string;
  /** Guide: average connection wait > 100 ms, WARNING. Seconds a client waits for a server, per transaction. */
  readonly clientWaitSeconds: number;
  readonly clientWaitFor: string;
  /** Early signal before the wait average moves: more than this many clients queued in one pool. */
  readonly clientsWaiting: number;
  readonly clientsWaitingFor: string;
  /** Client connections / max_client_conn: at 100 % PgBouncer refuses new clients. */
  readonly clientConnectionsWarning: number;
  readonly clientConnectionsWarningFor: string;
  readonly clientConnectionsCritical: number;
  readonly clientConnectionsCriticalFor: string;
  /** Guide: connection failures > 1 % of requests, CRITICAL (measured by the canary). */
  readonly connectionFailureRatio: number;
  readonly connectionFailureFor: string;
  /**
   * TLS: the served certificate's notAfter is nearer than this (a renewal that should have happened did not: the
   * stack renews well before, tls.renewBefore), WARNING; and nearer than the critical one, CRITICAL.
   */
  readonly certificateExpiryWarning: string;
  readonly certificateExpiryCritical: string;
  readonly certificateExpiryFor: string;
  /** Guide: P95 latency > 200 ms for vector operations, WARNING (canary scenarios search, hybrid, insert). */
  readonly vectorQueryP95Seconds: number;
  readonly vectorQueryP95For: string;
  /** Guide: P99 latency > 500 ms for any operation, CRITICAL (every canary scenario). */
  readonly queryP99Seconds: number;
  readonly queryP99For: string;
  /** Guide: slow query count > 10/minute, WARNING (statements over log_min_duration_statement, counted by mtail). */
  readonly slowQueriesPerMinute: number;
  readonly slowQueriesFor: string;
  /** Guide: database unavailable, CRITICAL. How long pg_up / pgbouncer_up must be 0. */
  readonly unavailableFor: string;
  /** Guide: memory > 80 % WARNING / > 95 % CRITICAL; measured as host memory in use (see docs/runbooks.md). */
  readonly memoryWarning: number;
  readonly memoryWarningFor: string;
  readonly memoryCritical: number;
  readonly memoryCriticalFor: string;
  /** Guide: CPU > 80 % sustained for > 10 minutes, WARNING. */
  readonly cpuWarning: number;
  readonly cpuWarningFor: string;
  /** Guide: disk usage > 90 % of available space, CRITICAL. */
  readonly diskCritical: number;
  readonly diskCriticalFor: string;
  /** Guide: cache hit ratio target > 99 %; alert below. */
  readonly cacheHitRatioMin: number;
  readonly cacheHitRatioFor: string;
  /** Guide: index hit ratio target > 95 %; alert below. */
  readonly indexHitRatioMin: number;
  readonly indexHitRatioFor: string;
  /** After a restart the cache is cold and hit ratios are low by design: ignored for this long. */
  readonly hitRatioGraceAfterRestart: string;
  /** Guide's monitoring query: transactions running longer than 5 minutes. */
  readonly longTransactionAge: string;
  readonly longTransactionFor: string;
  /** PostgreSQL client backends / max_connections. */
  readonly pgConnectionsWarning: number;
  readonly pgConnectionsWarningFor: string;
  readonly pgConnectionsCritical: number;
  readonly pgConnectionsCriticalFor: string;
  /** A changed setting waits for a restart; a deploy restarts within minutes, so only a forgotten one alerts. */
  readonly pendingRestartFor: string;
  readonly hugePagesNotInUseFor: string;
  readonly settingsDriftFor: string;
  readonly hnswIndexInvalidFor: string;
  /** postgres_exporter reports a failing collector or custom query. */
  readonly exporterErrorsFor: string;
  /** `up == 0` for a scrape job. */
  readonly targetDownFor: string;
  /** No target at all for a scrape job (`absent(up{job=…})`); longer than targetDownFor to ride out restarts. */
  readonly jobAbsentFor: string;
  /**
   * mtail has counted no log line at all over this window, and as long again: it reads nothing (wrong path, uid or
   * permissions), so the slow-query alert is blind. A live stack logs every few seconds (log_connections and the
   * canary's connection probes), so silence is never normal.
   */
  readonly logSilenceFor: string;
  /** node_exporter reports no filesystem at the watched data volume mount: the disk alert is blind. */
  readonly diskUnwatchedFor: string;
}

/** The `alerts:` key: the thresholds above, where the runbooks are, and labels for routing. */
export interface AlertsSpec extends AlertThresholds {
  /** docs/runbooks.md as your people read it; every alert links `<url>#<alert name in lower case>`. */
  readonly runbookBaseUrl: string;
  /** Extra labels on every alert, for Alertmanager routing (e.g. `team: search`). Defaults to none. */
  readonly labels: Readonly<Record<string, string>>;
}

export interface StackSpec {
  readonly stack: string;
  readonly target: Target;
  readonly node: NodeSpec;
  readonly postgres: PostgresSpec;
  readonly pgbouncer: PgBouncerSpec;
  readonly vectorTables: readonly VectorTableSpec[];
  readonly benchmark: BenchmarkSpec;
  /** Alert thresholds and `for` durations (defaults: the tuning guide's alert policy), runbook URL, routing labels. */
  readonly alerts: AlertsSpec;
  readonly tls: TlsSpec;
  readonly images: Images;
  readonly kubernetes: KubernetesSpec;
  readonly docker: DockerSpec;
}
