/**
 * How the rendered stack is laid out on Kubernetes: object names, labels, paths inside the images, ports, the
 * exporters' command lines, the config checksum, and what makes a Rendered undeployable here. Plain data in, plain
 * data out; the components in this folder only wire resources from it, and tests check it without Pulumi.
 */
import { createHash } from "node:crypto";
import path from "node:path";
import { nodeExporterArgs, nodeExporterPort, pgbouncerExporterCommand, postgresExporterCommand } from "../../configs/exporters";
import { mtailArgs, mtailPort, mtailProgramFile } from "../../configs/mtail";
import { pgbouncerAuthFile, pgbouncerPort } from "../../configs/pgbouncer";
import type { MemoryBudget } from "../../configs/kubernetes-resources";
import type { Rendered, RenderedFileName, RenderedMemory } from "../../configs/rendered";
import { parseBytes } from "../../configs/units";
import { confSetting, iniSetting } from "../../configs/file-settings";

/** PostgreSQL's port (`port` is an owned setting: always 5432). */
export const postgresPort = 5432;
/** The superuser the postgres image's entrypoint creates (POSTGRES_USER unset). */
export const superuser = "postgres";
/** uid/gid of `postgres` in the official postgres (and pgvector/pgvector) Debian images. */
export const postgresUid = 999;
/** uid of `node` in the official node images. */
export const nodeUid = 1000;

/** Where each file goes inside its image. */
export const paths = {
  configDir: "/etc/postgresql",
  postgresConf: "/etc/postgresql/postgresql.conf",
  pgHbaConf: "/etc/postgresql/pg_hba.conf",
  /** The data volume's mount point; PGDATA is a subdirectory, so the volume root's lost+found never bothers initdb. */
  dataMount: "/var/lib/postgresql/data",
  pgdata: "/var/lib/postgresql/data/pgdata",
  /** The postgres image runs *.sql here once, when it initialises an empty data directory. */
  initdbDir: "/docker-entrypoint-initdb.d",
  bootstrapFile: "10-pgstack-roles.sql",
  /** The server's socket and lock file (unix_socket_directories, an owned setting). */
  socketDir: "/var/run/postgresql",
  shm: "/dev/shm",
  hugepages: "/dev/hugepages",
  tmp: "/tmp",
  /** PgBouncer reads its config here; the auth_file beside it (configs/pgbouncer.ts pgbouncerAuthFile). */
  pgbouncerDir: "/etc/pgbouncer",
  pgbouncerIni: "/etc/pgbouncer/pgbouncer.ini",
  /** Used unless the rendered postgres_exporter flags name their own --extend.query-path. */
  postgresExporterQueries: "/etc/postgres-exporter/queries.yaml",
  hookDir: "/hook",
  hookBundle: "/hook/pgstack.js",
  planDir: "/etc/pgstack",
  plan: "/etc/pgstack/plan.json",
  /** mtail loads every `*.mtail` file of this directory (`--progs`); the rendered program is the only one. */
  mtailProgramsDir: "/etc/mtail",
} as const;

/** Container port names: what Services target and what the PodMonitor scrapes. At most 15 characters each. */
export const portNames = {
  postgres: "postgres",
  pgbouncer: "pgbouncer",
  postgresMetrics: "pg-metrics",
  pgbouncerMetrics: "pgb-metrics",
  nodeMetrics: "node-metrics",
  mtailMetrics: "mtail-metrics",
  canaryMetrics: "canary-metrics",
} as const;

/** Container names; `kubectl logs <pod> -c <name>`. */
export const containerNames = {
  postgres: "postgres",
  pgbouncer: "pgbouncer",
  postgresExporter: "postgres-exporter",
  pgbouncerExporter: "pgbouncer-exporter",
  nodeExporter: "node-exporter",
  mtail: "mtail",
  hook: "postdeploy",
  waitForDatabase: "wait-for-database",
  canary: "canary",
} as const;

/** The files the database pod reads: the checksum annotation covers exactly these. */
export const podFiles: readonly RenderedFileName[] = [
  "pg_hba.conf",
  "pgbouncer.ini",
  "postgres-exporter-queries.yaml",
  "postgresql.conf",
  mtailProgramFile,
];

/** Keys of the Secrets. */
export const secretKeys = {
  superuserPassword: "superuser-password",
  monitorPassword: "monitor-password",
  statsPassword: "stats-password",
  bootstrap: "bootstrap.sql",
  userlist: path.basename(pgbouncerAuthFile),
  hookDirectUrl: "direct-url",
  hookPooledUrl: "pooled-url",
} as const;

/** Kubernetes object names of one stack; fixed (not auto-named), so Services have stable DNS names. */
export interface KubernetesNames {
  readonly statefulSet: string;
  /** Headless Service governing the StatefulSet: per-pod DNS, every port. */
  readonly headless: string;
  readonly pooled: string;
  readonly direct: string;
  readonly config: string;
  readonly credentials: string;
  readonly bootstrap: string;
  readonly pgbouncerAuth: string;
  /** For applications: uri, host, port, database, username, password (pooled). */
  readonly app: string;
  /** For the post-deploy hook: direct-url, pooled-url. */
  readonly hookCredentials: string;
  readonly disruptionBudget: string;
  readonly networkPolicy: string;
  readonly podMonitor: string;
  readonly prometheusRule: string;
  /** The hook's ConfigMap and Job carry the plan hash: a new plan is a new Job, which runs again. */
  readonly hookConfig: (planSha256: string) => string;
  readonly hookJob: (planSha256: string) => string;
  /** The canary's Deployment, its bundle ConfigMap, NetworkPolicy and PodMonitor (different kinds, one name). */
  readonly canary: string;
  /** The ConfigMap the Grafana sidecar loads the dashboard from. */
  readonly grafanaDashboard: string;
}

/** DNS-1035 label: Service names must start with a letter. */
const dnsLabel = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
/**
 * `<base>-postdeploy-<10 hex>` must stay a 63-character label (the Job controller copies it into a pod label), and
 * the StatefulSet's `controller-revision-hash` label is `<base>-<10 chars>`.
 */
export const maxBaseNameLength = 42;

export function kubernetesNames(base: string): KubernetesNames {
  if (!dnsLabel.test(base) || base.length > maxBaseNameLength) {
    throw new Error(
      `Kubernetes object name prefix "${base}" must be lower-case letters, digits and -, start with a letter, ` +
        `end with a letter or digit, and have at most ${maxBaseNameLength} characters`,
    );
  }
  return {
    statefulSet: base,
    headless: `${base}-headless`,
    pooled: `${base}-pooled`,
    direct: `${base}-direct`,
    config: `${base}-config`,
    credentials: `${base}-credentials`,
    bootstrap: `${base}-bootstrap`,
    pgbouncerAuth: `${base}-pgbouncer-auth`,
    app: `${base}-app`,
    hookCredentials: `${base}-hook`,
    disruptionBudget: base,
    networkPolicy: base,
    podMonitor: base,
    prometheusRule: base,
    hookConfig: (sha) => `${base}-hook-${shortHash(sha)}`,
    hookJob: (sha) => `${base}-postdeploy-${shortHash(sha)}`,
    canary: `${base}-canary`,
    grafanaDashboard: `${base}-grafana-dashboard`,
  };
}

/** Ten hex digits: 2^40 plans before a collision is even likely, short enough for a name. */
export function shortHash(sha256Hex: string): string {
  if (!/^[0-9a-f]{64}$/.test(sha256Hex)) throw new Error(`"${sha256Hex}" is not a sha256 in hex`);
  return sha256Hex.slice(0, 10);
}

export function sha256(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

export type Component = "database" | "postdeploy-hook" | "canary";

/** The memory plan as deployed on Kubernetes: the rendered settings and the pod's budget on the node. */
export interface KubernetesMemoryPlan extends RenderedMemory {
  readonly pod: MemoryBudget;
  /** sizeLimit of the memory-backed /dev/shm. */
  readonly shmBytes: number;
  /** hugepages-2Mi requested (= limit); 0 when huge_pages = off. */
  readonly hugePagesBytes: number;
}

/** The labels selectors match on: stable for the life of the StatefulSet (its selector is immutable). */
export function selectorLabels(instance: string, component: Component): Record<string, string> {
  return {
    "app.kubernetes.io/component": component,
    "app.kubernetes.io/instance": instance,
    "app.kubernetes.io/name": "pgvector-stack",
  };
}

/** Every object's labels: the selector labels plus ownership and the stack. Sorted keys. */
export function objectLabels(instance: string, component: Component, stack: string): Record<string, string> {
  return sortedRecord({
    ...selectorLabels(instance, component),
    "app.kubernetes.io/managed-by": "pulumi",
    "app.kubernetes.io/part-of": "pgvector-stack",
    "pgvector-stack/stack": stack,
  });
}

/** The same record with its keys in sorted order, so previews never show a reordering as a change. */
export function sortedRecord<T>(record: Readonly<Record<string, T>>): Record<string, T> {
  return Object.fromEntries(Object.keys(record)
    .sort()
    .map((k) => [k, record[k]]));
}

/**
 * `checksum/config`: sha256 over the files the pod reads, each as `name NUL content NUL` in name order. A change to
 * any of them changes the pod template, and the StatefulSet rolls the pod; nothing else does.
 */
export function configChecksum(files: Readonly<Record<RenderedFileName, string>>): string {
  const hash = createHash("sha256");
  for (const name of [...podFiles].sort()) hash.update(name, "utf8").update("\0").update(files[name], "utf8").update("\0");
  return hash.digest("hex");
}

/** Flags the target owns: a rendered flag of the same name is replaced by the target's. */
function withoutFlags(args: readonly string[], owned: readonly string[]): string[] {
  return args.filter((a) => !owned.some((flag) => a === flag || a.startsWith(`${flag}=`)));
}

function flagValue(args: readonly string[], flag: string): string | undefined {
  return args.find((a) => a.startsWith(`${flag}=`))?.slice(flag.length + 1);
}

export interface ExporterLaunch {
  readonly args: string[];
  /** Non-secret environment. */
  readonly env: Readonly<Record<string, string>>;
  /** The variable filled from the Secret (secretKeyRef), never a literal. */
  readonly passwordEnv: string;
}

/**
 * postgres_exporter beside the server: PostgreSQL on 127.0.0.1:5432, metrics on every pod address (Prometheus scrapes
 * the pod IP), the custom queries from the ConfigMap where the rendered flags say (or paths.postgresExporterQueries).
 */
export function postgresExporterLaunch(rendered: Rendered): ExporterLaunch & { queriesPath: string } {
  const { exporters, spec } = rendered;
  const queriesPath = flagValue(exporters.postgresExporterArgs, "--extend.query-path") ?? paths.postgresExporterQueries;
  const base = postgresExporterCommand({ database: spec.postgres.database, queriesPath, host: "127.0.0.1", port: postgresPort });
  const rest = withoutFlags(exporters.postgresExporterArgs, ["--web.listen-address", "--extend.query-path"]);
  return {
    args: [`--web.listen-address=:${exporters.postgresExporterPort}`, `--extend.query-path=${queriesPath}`, ...rest],
    env: base.env,
    passwordEnv: base.passwordEnv,
    queriesPath,
  };
}

/** pgbouncer_exporter beside PgBouncer: its admin console on 127.0.0.1 as the stats user; the password from env. */
export function pgbouncerExporterLaunch(rendered: Rendered): ExporterLaunch {
  const { exporters } = rendered;
  const owned = ["--web.listen-address", "--pgBouncer.connectionString"];
  const base = pgbouncerExporterCommand({ host: "127.0.0.1", port: pgbouncerListenPort(rendered), listenAddress: `:${exporters.pgbouncerExporterPort}` });
  const targetFlags = base.args.filter((a) => owned.some((flag) => a.startsWith(`${flag}=`)));
  return { args: [...targetFlags, ...withoutFlags(exporters.pgbouncerExporterArgs, owned)], env: base.env, passwordEnv: base.passwordEnv };
}

/** node_exporter beside PostgreSQL: the shared collector flags, metrics on every pod address. */
export function nodeExporterLaunchArgs(): string[] {
  return [...nodeExporterArgs(), `--web.listen-address=:${nodeExporterPort}`];
}

/**
 * mtail beside PostgreSQL: the rendered program from its ConfigMap directory, the collector's log files below PGDATA
 * on the read-only data mount, metrics on every pod address.
 */
export function mtailLaunchArgs(): string[] {
  return [...mtailArgs({ programsDir: paths.mtailProgramsDir, pgdata: paths.pgdata }), "--port", String(mtailPort)];
}

/** PgBouncer's listen_port as rendered (PgBouncer's own default is 6432 too). */
export function pgbouncerListenPort(rendered: Rendered): number {
  const text = iniSetting(rendered.files["pgbouncer.ini"], "pgbouncer", "listen_port");
  return text === undefined ? pgbouncerPort : Number(text);
}

/**
 * The largest maintenance_work_mem any session sets: the server's, or a larger one an index build of the plan SETs.
 * A parallel build keeps that much graph in /dev/shm.
 */
export function largestBuildMemory(memory: RenderedMemory, indexPlan: Rendered["indexPlan"]): number {
  const builds = indexPlan.map((e) => {
    const parsed = parseBytes(e.build.maintenanceWorkMem);
    if (!parsed.ok) throw new Error(`index plan ${e.indexName}: build.maintenanceWorkMem "${e.build.maintenanceWorkMem}" ${parsed.error}`);
    return parsed.value;
  });
  return Math.max(memory.maintenanceWorkMemBytes, ...builds);
}

/** What makes a Rendered undeployable on Kubernetes, in words a person can act on; empty when all is well. */
export function kubernetesProblems(rendered: Rendered): string[] {
  const { spec, memory, files, exporters } = rendered;
  const problems: string[] = [];
  if (spec.target !== "kubernetes") problems.push(`target is "${spec.target}"; the Kubernetes components deploy stacks with target: kubernetes`);

  // Huge pages: the pod requests exactly rendered.memory.hugePages pages. `on` makes a shortfall fail at start;
  // `try` would fall back to 4 kB pages unseen (and can SIGBUS on hugepage nodes, PostgreSQL bug #17757). Nothing
  // is re-decided here: the rendered setting, the page count and the file must simply agree.
  const setting = memory.hugePagesSetting;
  if (memory.hugePages > 0 && setting !== "on") {
    problems.push(
      `rendered.memory.hugePages is ${memory.hugePages} but rendered.memory.hugePagesSetting is "${setting}": on Kubernetes the pod requests ` +
        `exactly those pages, so huge_pages must be on (a shortfall then fails at start instead of running on 4 kB pages); set postgres.hugePages to on or off`,
    );
  }
  if (memory.hugePages === 0 && setting !== "off") {
    problems.push(
      `rendered.memory.hugePagesSetting is "${setting}" but rendered.memory.hugePages is 0: no hugepages-2Mi would be requested, and ` +
        `huge_pages = ${setting} without them fails (on) or can SIGBUS on hugepage nodes (try); set postgres.hugePages to on or off`,
    );
  }
  const inFile = confSetting(files["postgresql.conf"], "huge_pages");
  if (inFile !== setting) {
    problems.push(`postgresql.conf says huge_pages = ${inFile ?? "(unset)"} but rendered.memory.hugePagesSetting is "${setting}"; render the stack again`);
  }

  const port = confSetting(files["postgresql.conf"], "port");
  if (port !== undefined && Number(port) !== postgresPort) problems.push(`postgresql.conf sets port = ${port}; the pod, Services and PgBouncer use ${postgresPort}`);
  const hba = confSetting(files["postgresql.conf"], "hba_file");
  if (hba !== undefined && hba !== paths.pgHbaConf) problems.push(`postgresql.conf sets hba_file = ${hba}; the pod mounts pg_hba.conf at ${paths.pgHbaConf}`);
  const socketDir = confSetting(files["postgresql.conf"], "unix_socket_directories");
  if (socketDir !== undefined && socketDir !== paths.socketDir) {
    problems.push(`postgresql.conf sets unix_socket_directories = ${socketDir}; the pod gives the server a writable ${paths.socketDir} only`);
  }
  const authFile = iniSetting(files["pgbouncer.ini"], "pgbouncer", "auth_file");
  if (authFile !== pgbouncerAuthFile) problems.push(`pgbouncer.ini auth_file is ${authFile ?? "(unset)"}; the pod mounts the userlist Secret at ${pgbouncerAuthFile}`);
  const socket = iniSetting(files["pgbouncer.ini"], "pgbouncer", "unix_socket_dir");
  if (socket !== undefined && socket !== "") problems.push(`pgbouncer.ini unix_socket_dir is ${socket}; PgBouncer's root filesystem is read-only, so it must be empty (TCP only)`);

  const listen = pgbouncerListenPort(rendered);
  const ports: [string, number][] = [
    ["PostgreSQL", postgresPort],
    ["PgBouncer (pgbouncer.ini listen_port)", listen],
    ["postgres_exporter", exporters.postgresExporterPort],
    ["pgbouncer_exporter", exporters.pgbouncerExporterPort],
    ["node_exporter", nodeExporterPort],
    ["mtail", mtailPort],
  ];
  for (const [what, p] of ports) if (!Number.isInteger(p) || p < 1 || p > 65535) problems.push(`${what} port ${p} is not a port number (1–65535)`);
  for (let i = 0; i < ports.length; i++) {
    for (let j = i + 1; j < ports.length; j++) {
      if (ports[i][1] === ports[j][1]) problems.push(`${ports[i][0]} and ${ports[j][0]} both use port ${ports[i][1]} in one pod`);
    }
  }
  return problems;
}

export { confSetting, iniSetting };
