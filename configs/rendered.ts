/**
 * Rendered: the desired state of one stack, computed once from its StackSpec by configs/render.ts.
 * Every target deploys exactly these files and numbers; only where they go differs.
 */
import type { BenchmarkSpec } from "./benchmark";
import type { IndexPlanEntry } from "./hnsw";
import type { StackSpec } from "./stack-spec";

/** The files every target deploys, byte for byte. */
export type RenderedFileName =
  | "postgresql.conf"
  | "pg_hba.conf"
  | "pgbouncer.ini"
  | "postgres-exporter-queries.yaml"
  | "alert-rules.yaml"
  | "hnsw-plan.sql"
  | "plan.json"
  | "postgresql.mtail"
  | "grafana-dashboard.json";

export interface RenderedMemory {
  readonly nodeMemoryBytes: number;
  readonly sharedBuffersBytes: number;
  readonly effectiveCacheSizeBytes: number;
  readonly workMemBytes: number;
  readonly maintenanceWorkMemBytes: number;
  /** PostgreSQL's whole shared memory (buffers, WAL buffers, locks, SLRUs, per-backend state), as estimated. */
  readonly sharedMemoryBytes: number;
  /** 2 MiB huge pages to reserve: covers sharedMemoryBytes. 0 when huge_pages = off. */
  readonly hugePages: number;
  /** huge_pages as rendered into postgresql.conf. */
  readonly hugePagesSetting: "on" | "try" | "off";
  /** shared_buffers + max_connections × work_mem × hash_mem_multiplier + maintenance_work_mem. */
  readonly worstCaseBytes: number;
}

/** What a target needs to run the exporters with the rendered configuration. */
export interface RenderedExporters {
  /** postgres_exporter flags (without the listen address, which the target owns). */
  readonly postgresExporterArgs: readonly string[];
  /** pgbouncer_exporter flags (without the listen address and connection string). */
  readonly pgbouncerExporterArgs: readonly string[];
  readonly postgresExporterPort: number;
  readonly pgbouncerExporterPort: number;
}

export interface Rendered {
  readonly spec: StackSpec;
  readonly memory: RenderedMemory;
  readonly files: Readonly<Record<RenderedFileName, string>>;
  readonly indexPlan: readonly IndexPlanEntry[];
  /** The alert rule groups as a plain object: the `spec` of a PrometheusRule, the body of alert-rules.yaml. */
  readonly alertRuleGroups: { readonly groups: readonly unknown[] };
  readonly exporters: RenderedExporters;
  /** Things a person should read before deploying (e.g. worst-case memory above RAM). */
  readonly warnings: readonly string[];
}

/**
 * plan.json: what the post-deploy hook needs, and only that. It carries no secret: the hook reads its connection
 * strings from the environment (PGSTACK_DIRECT_URL, PGSTACK_POOLED_URL), filled from Secrets by the target.
 */
export interface HookPlan {
  readonly stack: string;
  readonly database: string;
  readonly appUser: string;
  readonly indexPlan: readonly IndexPlanEntry[];
  readonly benchmark: BenchmarkSpec;
}
