/**
 * How the rendered stack is laid out on one Docker host: paths inside the images, published ports, container names,
 * /dev/shm and memlock sizes, exporter and mtail command lines, the post-deploy hook's re-run trigger. Plain data in,
 * plain data out; the components in this folder only wire resources from it, and tests check it without Pulumi.
 */
import { createHash } from "node:crypto";
import { canaryPort } from "../../configs/canary";
import { nodeExporterArgs, nodeExporterPort, pgbouncerExporterCommand, postgresExporterCommand } from "../../configs/exporters";
import type { IndexPlanEntry } from "../../configs/hnsw";
import { mtailArgs, mtailPort, mtailProgramFile } from "../../configs/mtail";
import { pgbouncerAuthFile, pgbouncerPort } from "../../configs/pgbouncer";
import { exporterQueriesPath } from "../../configs/render";
import { monitorRole, statsUser } from "../../configs/roles";
import type { Rendered, RenderedExporters, RenderedMemory } from "../../configs/rendered";
import { type ScrapeTargets, renderPrometheusConfigYaml } from "../../configs/scrape";
import type { DockerSpec, StackSpec } from "../../configs/stack-spec";
import { bytes, parseBytes } from "../../configs/units";
import { confSetting, iniSetting } from "../../configs/file-settings";

const { MiB } = bytes;

/** PostgreSQL's port inside the shared network namespace (`port` is an owned setting: always 5432). */
export const postgresPort = 5432;
/** Prometheus' own port inside the namespace; published as docker.ports.prometheus. */
export const prometheusPort = 9090;
/** The superuser the postgres image's entrypoint creates (POSTGRES_USER unset). */
export const superuser = "postgres";

/** Names the database container answers to on the stack's network; PgBouncer listens in the same namespace. */
export const networkAliases = { postgres: "postgres", pgbouncer: "pgbouncer" } as const;

/** Where each file goes inside its image. */
export const paths = {
  postgresConf: "/etc/postgresql/postgresql.conf",
  /** Used unless the rendered postgresql.conf names its own hba_file. */
  pgHbaConf: "/etc/postgresql/pg_hba.conf",
  /** The postgres image runs *.sql here once, when it initialises an empty data directory. */
  bootstrapSql: "/docker-entrypoint-initdb.d/10-pgstack-roles.sql",
  /**
   * The postgres image's PGDATA, where the data volume is mounted. node_exporter and mtail mount the same volume at
   * the same path: the disk alert selects this mountpoint (configs/render.ts containerDataMount), and mtail follows
   * the log under it.
   */
  dataDirectory: "/var/lib/postgresql/data",
  /** The edoburu/pgbouncer entrypoint leaves an existing pgbouncer.ini alone and runs `pgbouncer` on this path. */
  pgbouncerIni: "/etc/pgbouncer/pgbouncer.ini",
  prometheusConfig: "/etc/prometheus/prometheus.yml",
  alertRules: "/etc/prometheus/rules/alert-rules.yaml",
  prometheusData: "/prometheus",
  hookBundle: "/hook/pgstack.js",
  hookPlan: "/etc/pgstack/plan.json",
  /** mtail's --progs directory: it loads every program in it, and exports the file name as the `prog` label. */
  mtailPrograms: "/etc/mtail",
} as const;

/** The rendered postgresql.mtail, uploaded into mtail's programs directory. */
export const mtailProgramPath = `${paths.mtailPrograms}/${mtailProgramFile}`;

/**
 * uid:gid of the postgres image's `postgres` user (the Debian-based images create it as 999:999), which owns PGDATA
 * (0700) and the collector's log files (log_file_mode 0600). Numeric, because mtail's image is FROM scratch and has
 * no /etc/passwd to look a name up in.
 */
export const postgresOwner = "999:999";

/** Docker object names: fixed, so a second stack on the same host gets its own set and `docker ps` reads well. */
export interface DockerNames {
  readonly network: string;
  readonly dataVolume: string;
  readonly postgres: string;
  readonly pgbouncer: string;
  readonly postgresExporter: string;
  readonly pgbouncerExporter: string;
  readonly nodeExporter: string;
  readonly mtail: string;
  readonly prometheus: string;
  readonly canary: string;
  /** The hook's name carries the plan hash: a new plan is a new container, visibly. */
  readonly hook: (planSha256: string) => string;
}

const dockerName = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export function dockerNames(prefix: string): DockerNames {
  if (!dockerName.test(prefix)) {
    throw new Error(`Docker name prefix "${prefix}" may only hold letters, digits, _ . - and must start with a letter or digit`);
  }
  return {
    network: prefix,
    dataVolume: `${prefix}-data`,
    postgres: `${prefix}-postgres`,
    pgbouncer: `${prefix}-pgbouncer`,
    postgresExporter: `${prefix}-postgres-exporter`,
    pgbouncerExporter: `${prefix}-pgbouncer-exporter`,
    nodeExporter: `${prefix}-node-exporter`,
    mtail: `${prefix}-mtail`,
    prometheus: `${prefix}-prometheus`,
    canary: `${prefix}-canary`,
    hook: (planSha256) => `${prefix}-hook-${planSha256.slice(0, 12)}`,
  };
}

export function sha256(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

/**
 * The hook's re-run trigger: plan.json holds the index plan and the benchmark settings, so its hash changes exactly
 * when one of them does. It goes into the hook container's name and a label, and Docker containers are immutable
 * (every input but restart/cpu/memory forces a replacement), so a new hash is a new container that runs again.
 */
export function hookTrigger(planJson: string): string {
  return sha256(planJson);
}

/** Labels in a stable order, so a preview never shows a reordering as a change. */
export function sortedLabels(labels: Readonly<Record<string, string>>): { label: string; value: string }[] {
  return Object.keys(labels)
    .sort()
    .map((label) => ({ label, value: labels[label] }));
}

/**
 * /dev/shm for the database container, in MiB (the unit of docker's `shmSize`). A parallel HNSW build keeps its graph
 * in dynamic shared memory of up to maintenance_work_mem (posix DSM lives in /dev/shm); Docker's 64 MiB default fails
 * such a build with "could not resize shared memory segment … No space left on device" (pgvector #453). The hook may
 * SET a larger maintenance_work_mem per build than the server default, so the largest of those counts. 64 MiB on top
 * keeps Docker's default room for parallel queries' own segments while a build runs.
 */
export function shmSizeMiB(memory: RenderedMemory, indexPlan: readonly IndexPlanEntry[]): number {
  const builds = indexPlan.map((e) => {
    const parsed = parseBytes(e.build.maintenanceWorkMem);
    if (!parsed.ok) throw new Error(`index plan ${e.indexName}: build.maintenanceWorkMem "${e.build.maintenanceWorkMem}" ${parsed.error}`);
    return parsed.value;
  });
  const largest = Math.max(memory.maintenanceWorkMemBytes, ...builds);
  return Math.ceil(largest / MiB) + 64;
}

/**
 * The memlock ulimit for huge pages, in bytes (soft = hard), or none when huge_pages = off. Docker's default memlock
 * (64 KiB; 8 MiB on recent daemons) is far below PostgreSQL's shared memory. Current Linux does not charge the
 * anonymous mmap(MAP_HUGETLB) segment PostgreSQL uses against RLIMIT_MEMLOCK (only SHM_HUGETLB outside
 * hugetlb_shm_group), so this is a guard, not a requirement: the usual huge pages advice, bounded to exactly the
 * pages the memory plan reserves rather than unlimited.
 */
export function memlockUlimit(memory: RenderedMemory): { name: string; soft: number; hard: number } | null {
  if (memory.hugePagesSetting === "off" || memory.hugePages === 0) return null;
  const limit = memory.hugePages * 2 * MiB;
  return { name: "memlock", soft: limit, hard: limit };
}

export interface HugePagesDecision {
  readonly mode: "on" | "try" | "off";
  readonly reason: string;
}

/** Which huge_pages the rendered postgresql.conf carries on this host, and why (configs/memory.ts decides). */
export function hugePagesDecision(rendered: Rendered): HugePagesDecision {
  const mode = rendered.memory.hugePagesSetting;
  const pages = rendered.memory.hugePages;
  const asked = rendered.spec.postgres.hugePages;
  if (mode === "off") return { mode, reason: `postgres.hugePages is off: PostgreSQL uses regular 4 kB pages` };
  if (mode === "on") {
    return {
      mode,
      reason: rendered.spec.docker.hostHugePages
        ? `docker.hostHugePages is true: the host reserves huge pages, so PostgreSQL must get ${pages} × 2 MiB of them or refuse to start instead of silently using 4 kB pages`
        : `postgres.hugePages is on: PostgreSQL needs ${pages} × 2 MiB huge pages reserved on the Docker host (vm.nr_hugepages) or refuses to start`,
    };
  }
  return {
    mode,
    reason: `postgres.hugePages is ${asked} and docker.hostHugePages is false: PostgreSQL uses ${pages} × 2 MiB huge pages if the Docker host has them reserved, else 4 kB pages (the huge_pages_status setting shows which)`,
  };
}

/** Published ports: all on the database container, which owns the shared network namespace, bound to publishAddress. */
export function publishedPorts(docker: DockerSpec, pgbouncerListenPort: number): { internal: number; external: number; ip: string; protocol: string }[] {
  return [
    { internal: postgresPort, external: docker.ports.postgres, ip: docker.publishAddress, protocol: "tcp" },
    { internal: pgbouncerListenPort, external: docker.ports.pgbouncer, ip: docker.publishAddress, protocol: "tcp" },
    { internal: prometheusPort, external: docker.ports.prometheus, ip: docker.publishAddress, protocol: "tcp" },
  ];
}

/** The address clients on the Docker host connect to: a wildcard bind is reached through loopback. */
export function connectHost(publishAddress: string): string {
  return publishAddress === "0.0.0.0" ? "127.0.0.1" : publishAddress;
}

export interface Endpoints {
  /** Through PgBouncer. */
  readonly pooled: string;
  /** PostgreSQL itself: index builds, admin work. */
  readonly direct: string;
  readonly prometheus: string;
}

export function endpoints(docker: DockerSpec): Endpoints {
  const host = connectHost(docker.publishAddress);
  return {
    pooled: `${host}:${docker.ports.pgbouncer}`,
    direct: `${host}:${docker.ports.postgres}`,
    prometheus: `${host}:${docker.ports.prometheus}`,
  };
}

/** A libpq URL; user and password are percent-encoded, so any generated or configured password works. */
export function connectionUrl(user: string, password: string, hostPort: string, database: string): string {
  return `postgresql://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${hostPort}/${encodeURIComponent(database)}?sslmode=disable`;
}

export interface PostgresLaunch {
  readonly command: string[];
  /** Where pg_hba.conf is uploaded: the rendered hba_file if postgresql.conf sets one. */
  readonly hbaPath: string;
}

/**
 * The server's command line: the rendered postgresql.conf as config_file. The image's entrypoint passes the same
 * arguments to the temporary server it runs the /docker-entrypoint-initdb.d scripts with, so bootstrap already
 * runs under the rendered pg_hba.conf.
 */
export function postgresLaunch(postgresqlConf: string): PostgresLaunch {
  const hbaFile = confSetting(postgresqlConf, "hba_file");
  const command = ["postgres", "-c", `config_file=${paths.postgresConf}`];
  if (hbaFile === undefined) command.push("-c", `hba_file=${paths.pgHbaConf}`);
  return { command, hbaPath: hbaFile ?? paths.pgHbaConf };
}

export interface PgBouncerLayout {
  readonly listenPort: number;
  readonly userlistPath: string;
}

export function pgbouncerLayout(pgbouncerIni: string): PgBouncerLayout {
  const port = iniSetting(pgbouncerIni, "pgbouncer", "listen_port");
  const listenPort = port === undefined ? pgbouncerPort : Number(port);
  if (!Number.isInteger(listenPort) || listenPort < 1 || listenPort > 65535) {
    throw new Error(`pgbouncer.ini listen_port "${port}" is not a port number (1–65535)`);
  }
  const authFile = iniSetting(pgbouncerIni, "pgbouncer", "auth_file");
  return { listenPort, userlistPath: authFile ?? pgbouncerAuthFile };
}

/** Flags the target owns: a rendered flag of the same name is dropped in favour of the target's. */
function withoutFlags(args: readonly string[], owned: readonly string[]): string[] {
  return args.filter((a) => !owned.some((flag) => a === flag || a.startsWith(`${flag}=`)));
}

function flagValue(args: readonly string[], flag: string): string | undefined {
  const found = args.find((a) => a.startsWith(`${flag}=`));
  return found?.slice(flag.length + 1);
}

export interface ExporterLaunch {
  readonly args: string[];
  /** Non-secret environment. */
  readonly env: Readonly<Record<string, string>>;
  /** The variable the component fills from the secret password. */
  readonly passwordEnv: string;
}

/**
 * postgres_exporter in the database's namespace: listens on loopback only (Prometheus shares the namespace; nothing
 * publishes the port), reaches PostgreSQL on 127.0.0.1:5432, loads the rendered custom queries from where the
 * rendered flags say.
 */
export function postgresExporterLaunch(spec: StackSpec, exporters: RenderedExporters): ExporterLaunch & { queriesPath: string } {
  const queriesPath = flagValue(exporters.postgresExporterArgs, "--extend.query-path") ?? exporterQueriesPath;
  const base = postgresExporterCommand({ database: spec.postgres.database, queriesPath, host: "127.0.0.1", port: postgresPort });
  const rest = withoutFlags(exporters.postgresExporterArgs, ["--web.listen-address", "--extend.query-path"]);
  return {
    args: [`--web.listen-address=127.0.0.1:${exporters.postgresExporterPort}`, `--extend.query-path=${queriesPath}`, ...rest],
    env: base.env,
    passwordEnv: base.passwordEnv,
    queriesPath,
  };
}

/** pgbouncer_exporter in the same namespace: PgBouncer's admin console on loopback; the password comes from env. */
export function pgbouncerExporterLaunch(exporters: RenderedExporters, pgbouncerListenPort: number): ExporterLaunch {
  const owned = ["--web.listen-address", "--pgBouncer.connectionString"];
  const base = pgbouncerExporterCommand({ host: "127.0.0.1", port: pgbouncerListenPort, listenAddress: `127.0.0.1:${exporters.pgbouncerExporterPort}` });
  const targetFlags = base.args.filter((a) => owned.some((flag) => a.startsWith(`${flag}=`)));
  return {
    args: [...targetFlags, ...withoutFlags(exporters.pgbouncerExporterArgs, owned)],
    env: base.env,
    passwordEnv: base.passwordEnv,
  };
}

/**
 * node_exporter in the database's namespace, on loopback only like the other exporters. It needs no host mounts,
 * host PID or host network: /proc/stat and /proc/meminfo are the machine's in any container, and the filesystem it
 * reports is the data volume mounted into it (see `metricSourceVolumes`).
 */
export function nodeExporterCommand(): string[] {
  return [...nodeExporterArgs(), `--web.listen-address=127.0.0.1:${nodeExporterPort}`];
}

/**
 * mtail in the database's namespace, on loopback only: the program from `paths.mtailPrograms`, the collector's log
 * files under PGDATA as mounted into it (read-only, at the postgres container's own path).
 */
export function mtailCommand(): string[] {
  return [...mtailArgs({ programsDir: paths.mtailPrograms, pgdata: paths.dataDirectory }), "--address", "127.0.0.1", "--port", String(mtailPort)];
}

/**
 * The data volume as node_exporter and mtail mount it: read-only (neither writes; a bug in either cannot touch the
 * database's files) and at PGDATA's own path, so node_exporter reports it under the mountpoint the disk alert
 * selects and mtail reads the log where PostgreSQL writes it.
 */
export function metricSourceVolumes(dataVolumeName: string): { volumeName: string; containerPath: string; readOnly: boolean }[] {
  return [{ volumeName: dataVolumeName, containerPath: paths.dataDirectory, readOnly: true }];
}

/**
 * The canary in the database's namespace: /metrics on loopback only, like the exporters (Prometheus shares the
 * namespace; nothing publishes the port). Interval, timeouts and table are configs/canary.ts' defaults.
 */
export function canaryCommand(): string[] {
  return ["node", paths.hookBundle, "canary", "--listen", `127.0.0.1:${canaryPort}`];
}

/** Where the canary connects, from inside the database's namespace: PgBouncer and PostgreSQL on loopback. */
export function canaryConnectAddresses(pgbouncerListenPort: number): { readonly pooled: string; readonly direct: string } {
  return { pooled: `127.0.0.1:${pgbouncerListenPort}`, direct: `127.0.0.1:${postgresPort}` };
}

/**
 * Scrape targets: the exporters, mtail and the canary on loopback, since Prometheus runs in the database container's
 * namespace too. Every source here has its rules in the rendered alert-rules.yaml (configs/render.ts scrapeJobsFor),
 * and every source with rules is here.
 */
export function scrapeTargets(exporters: RenderedExporters): ScrapeTargets {
  return {
    postgres: [`127.0.0.1:${exporters.postgresExporterPort}`],
    pgbouncer: [`127.0.0.1:${exporters.pgbouncerExporterPort}`],
    node: [`127.0.0.1:${nodeExporterPort}`],
    canary: [`127.0.0.1:${canaryPort}`],
    mtail: [`127.0.0.1:${mtailPort}`],
  };
}

/** prometheus.yml for this host: every metric source, the rendered alert rules, the stack label on every target. */
export function prometheusConfigYaml(rendered: Rendered): string {
  return renderPrometheusConfigYaml({
    stack: rendered.spec.stack,
    targets: scrapeTargets(rendered.exporters),
    ruleFiles: [paths.alertRules],
  });
}

/** Health check: ready on TCP, which the entrypoint's temporary init server (socket only) never is. */
export function postgresHealthcheck(): { tests: string[]; interval: string; timeout: string; retries: number; startPeriod: string } {
  return {
    tests: ["CMD", "pg_isready", "--host=127.0.0.1", `--port=${postgresPort}`, `--username=${superuser}`],
    // Durations as Go prints them ("2m0s", not "120s"): the provider reads them back that way, and any other
    // spelling would show as a change, which replaces the container, on every run.
    interval: "5s",
    timeout: "3s",
    retries: 6,
    // initdb and the bootstrap scripts of a fresh volume take a while; failures during this period do not count.
    startPeriod: "2m0s",
  };
}

/** What makes a Rendered undeployable on Docker, in words a person can act on; empty when all is well. */
export function stackProblems(rendered: Rendered): string[] {
  const { spec, memory, exporters } = rendered;
  const problems: string[] = [];
  if ([superuser, monitorRole, statsUser].includes(spec.postgres.appUser)) {
    problems.push(`postgres.appUser "${spec.postgres.appUser}" is one of the stack's own roles (${superuser}, ${monitorRole}, ${statsUser}); choose another name`);
  }
  if (spec.target !== "docker") problems.push(`target is "${spec.target}"; the Docker components deploy stacks with target: docker`);
  if (spec.docker.hostHugePages && spec.postgres.hugePages === "try" && memory.hugePagesSetting !== "on") {
    problems.push(`docker.hostHugePages is true but the rendered huge_pages is ${memory.hugePagesSetting}, not on; render the stack again`);
  }
  const peer = superuserSocketMethod(rendered.files["pg_hba.conf"]);
  if (peer !== "peer") {
    problems.push(
      `pg_hba.conf admits the superuser on the socket by ${peer ?? "no line at all"}, not peer: the postgres image runs the role bootstrap as the OS user postgres on the socket, and POSTGRES_PASSWORD carries a verifier, which cannot be sent as a password`,
    );
  }
  const inside: [string, number][] = [
    ["PostgreSQL", postgresPort],
    ["PgBouncer (pgbouncer.ini listen_port)", pgbouncerLayout(rendered.files["pgbouncer.ini"]).listenPort],
    ["Prometheus", prometheusPort],
    ["postgres_exporter", exporters.postgresExporterPort],
    ["pgbouncer_exporter", exporters.pgbouncerExporterPort],
    ["node_exporter", nodeExporterPort],
    ["mtail", mtailPort],
    ["the canary", canaryPort],
  ];
  const published: [string, number][] = [
    ["docker.ports.postgres", spec.docker.ports.postgres],
    ["docker.ports.pgbouncer", spec.docker.ports.pgbouncer],
    ["docker.ports.prometheus", spec.docker.ports.prometheus],
  ];
  for (const [what, ports] of [
    ["share the database container's network namespace", inside],
    ["are published on the same address", published],
  ] as const) {
    for (let i = 0; i < ports.length; i++) {
      for (let j = i + 1; j < ports.length; j++) {
        if (ports[i][1] === ports[j][1]) problems.push(`${ports[i][0]} and ${ports[j][0]} both use port ${ports[i][1]}, and they ${what}`);
      }
    }
  }
  return problems;
}

/** The method of the first pg_hba.conf `local` line that matches user postgres on every database, or undefined. */
export function superuserSocketMethod(pgHba: string): string | undefined {
  for (const raw of pgHba.split(/\r?\n/)) {
    const fields = raw.replace(/#.*$/, "").trim().split(/\s+/);
    if (fields[0] !== "local" || fields.length < 4) continue;
    const [, databases, users, method] = fields;
    const matches = (list: string, name: string) => list.split(",").some((item) => item === "all" || item === name);
    if (matches(databases, "postgres") && matches(users, superuser)) return method;
  }
  return undefined;
}

/** Sets the superuser's verifier, as initdb did from POSTGRES_PASSWORD; appended to the role bootstrap. */
export function superuserPasswordSql(verifier: string): string {
  return `ALTER ROLE "${superuser}" WITH PASSWORD '${verifier.replace(/'/g, "''")}';\n`;
}

export { confSetting, iniSetting };
