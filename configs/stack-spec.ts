/**
 * StackSpec: every key a stack file (Pulumi.<stack>.yaml) may hold, validated and with defaults filled in.
 * `configs/spec.ts` builds it; everything else reads it. Sizes are bytes, durations milliseconds.
 */
import type { AlertThresholds } from "./alerts";
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

export interface PostgresSpec {
  readonly version: 17;
  readonly maxConnections: number;
  readonly statementTimeoutMs: number;
  readonly hugePages: HugePagesMode;
  /** Connections kept outside PgBouncer's pool: superuser/maintenance (the hook, admins) and the exporters. */
  readonly reservedConnections: { readonly maintenance: number; readonly monitoring: number };
  readonly database: string;
  readonly appUser: string;
  /** Extra postgresql.conf settings; names checked against PostgreSQL 17, owned settings refused. */
  readonly settings: Readonly<Record<string, string>>;
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

export interface Images {
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

export interface KubernetesSpec {
  readonly namespace: string;
  readonly storageSizeBytes: number;
  /** Kubernetes StorageClass name of the data volume; null = the cluster default. */
  readonly storageClassName: string | null;
  /** Prometheus Operator CRDs (PodMonitor, PrometheusRule) are assumed installed when true. */
  readonly prometheusOperator: boolean;
  readonly grafanaDashboard: boolean;
}

export interface DockerSpec {
  /** The Docker host has huge pages reserved: render huge_pages = on instead of try. */
  readonly hostHugePages: boolean;
  /** Address published ports bind to. */
  readonly publishAddress: string;
  readonly ports: { readonly postgres: number; readonly pgbouncer: number; readonly prometheus: number };
}

export interface StackSpec {
  readonly stack: string;
  readonly target: Target;
  readonly node: NodeSpec;
  readonly postgres: PostgresSpec;
  readonly pgbouncer: PgBouncerSpec;
  readonly vectorTables: readonly VectorTableSpec[];
  readonly benchmark: BenchmarkSpec;
  /** Alert thresholds and `for` durations; defaults are the tuning guide's alert policy. */
  readonly alerts: AlertThresholds;
  readonly images: Images;
  readonly kubernetes: KubernetesSpec;
  readonly docker: DockerSpec;
}
