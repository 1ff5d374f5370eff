/**
 * Rendered: the desired state of one stack, computed once from its StackSpec by configs/render.ts.
 * Every target deploys exactly these files and numbers; only where they go differs.
 */
import type { BenchmarkSpec } from "./benchmark";
import type { IndexPlanEntry } from "./hnsw";
import type { PodResourcePlan } from "./kubernetes-resources";
import type { RolePlan, RoleSetting } from "./roles";
import type { Launches } from "./launches";
import type { Placement } from "./placement";
import type { MetricSource } from "./scrape";
import type { StackSpec } from "./stack-spec";
import type { ServerNames, TlsFiles } from "./tls";

/** The files every target deploys, byte for byte. */
export type RenderedFileName =
  | "postgresql.conf"
  | "pg_hba.conf"
  | "pg_ident.conf"
  | "roles.sql"
  | "pgbouncer.ini"
  | "postgres-exporter-queries.yaml"
  | "alert-rules.yaml"
  | "hnsw-plan.sql"
  | "plan.json"
  | "postgresql.mtail"
  | "grafana-dashboard.json"
  | "memory-plan.yaml"
  | "launches.yaml";

/** Rendered only where the target runs Prometheus itself (Docker, the perf cluster); Kubernetes has PodMonitors. */
export type OptionalFileName = "prometheus.yml";

export type RenderedFiles = Readonly<Record<RenderedFileName, string>> & Readonly<Partial<Record<OptionalFileName, string>>>;

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

/** The roles and users every target creates and wires, by what they are for (configs/roles.ts). */
export interface RenderedRoles {
  /** initdb's superuser: on the Unix socket only (peer), never over TCP. */
  readonly superuser: string;
  /** Owns the database and its tables: migrations, the post-deploy hook. Direct to PostgreSQL only. */
  readonly owner: string;
  /** The application's login role: DML on the owner's tables. */
  readonly app: string;
  /** SELECT on the owner's tables. */
  readonly readOnly: string;
  /** The canary's role: its own schema only. */
  readonly canary: string;
  /** postgres_exporter's role (member of pg_monitor). */
  readonly monitor: string;
  /** pgbouncer_exporter's user on PgBouncer's admin console (stats_users); a PgBouncer user only. */
  readonly stats: string;
  /** PgBouncer's admin console user (admin_users); a PgBouncer user only. */
  readonly pgbouncerAdmin: string;
  /** Users PgBouncer's auth_file lists, sorted. */
  readonly pgbouncerUsers: readonly string[];
  /** Every role and user by kind, and the database roles with their limits (what roles.sql creates). */
  readonly plan: RolePlan;
}

/** TLS as the target sets it up: the files, the names the server certificate must carry, how long it lives. */
export interface RenderedTls {
  /** Where the servers read their certificate and key and every client the CA (the placement's paths). */
  readonly files: TlsFiles;
  /** Loopback names; a target adds its own (Services, network aliases, the published address). */
  readonly serverNames: ServerNames;
  /** Query of every client URL the stack builds: verify-full against the CA at files.ca. */
  readonly clientQuery: string;
  readonly certificateValidityMs: number;
  readonly renewBeforeMs: number;
}

/** One Prometheus scrape job: the job name the alert rules guard and the program it scrapes. */
export interface ScrapeJob {
  readonly job: string;
  readonly source: MetricSource;
  /** The port in the shared network namespace (the pod's container port on Kubernetes). */
  readonly port: number;
}

export interface Rendered {
  readonly spec: StackSpec;
  readonly memory: RenderedMemory;
  /** Where this target runs things: ports, binds, paths, intervals (configs/placement.ts). */
  readonly placement: Placement;
  readonly files: RenderedFiles;
  readonly indexPlan: readonly IndexPlanEntry[];
  /** The alert rule groups as a plain object: the `spec` of a PrometheusRule, the body of alert-rules.yaml. */
  readonly alertRuleGroups: { readonly groups: readonly unknown[] };
  /** The programs beside PostgreSQL and PgBouncer, as every target runs them. */
  readonly launches: Launches;
  /** The metric sources Prometheus scrapes, each guarded by the alert rules' up/absent rules. */
  readonly scrapeJobs: readonly ScrapeJob[];
  readonly roles: RenderedRoles;
  readonly tls: RenderedTls;
  /** The database pod's requests and limits on its node (configs/kubernetes-resources.ts); null off Kubernetes. */
  readonly kubernetesPod: PodResourcePlan | null;
  /** Things a person should read before deploying, one line each (e.g. worst-case memory above RAM). */
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
  /** The extensions roles.sql installs in the database: what drift --live expects to find. */
  readonly extensions: readonly string[];
  /** The role-level settings roles.sql makes: drift --live expects exactly these in pg_db_role_setting. */
  readonly roleSettings: readonly RoleSetting[];
  readonly indexPlan: readonly IndexPlanEntry[];
  readonly benchmark: BenchmarkSpec;
}
