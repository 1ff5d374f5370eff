/**
 * How the rendered stack is laid out on one Docker host: object names, paths inside the images that the placement
 * does not decide, the uid mtail runs as, published ports, the /dev/shm size, the health check, the
 * post-deploy hook's re-run trigger, and how a rendered launch becomes a container's command and environment.
 * Ports, placement paths, command lines and role names come from Rendered as they are; nothing here re-derives them.
 * Plain data in, plain data out; the components in this folder only wire resources from it, and tests check it
 * without Pulumi.
 */
import { createHash } from "node:crypto";
import path from "node:path";
import { shmSizeBytes } from "../../configs/kubernetes-resources";
import type { Launch, LaunchProgram, SecretInput } from "../../configs/launches";
import { mtailProgramFile } from "../../configs/mtail";
import type { Placement } from "../../configs/placement";
import type { Rendered, RenderedMemory } from "../../configs/rendered";
import type { DockerSpec } from "../../configs/stack-spec";
import type { ServerNames } from "../../configs/tls";
import { bytes } from "../../configs/units";
import { mergeServerNames } from "../stack-certificates";

const { MiB } = bytes;

/** Names the database container answers to on the stack's network; PgBouncer listens in the same namespace. */
export const networkAliases = { postgres: "postgres", pgbouncer: "pgbouncer" } as const;

/** Where files go inside the images, where the placement does not say (it says the rest: configs/placement.ts). */
export const paths = {
  postgresConf: "/etc/postgresql/postgresql.conf",
  pgHbaConf: "/etc/postgresql/pg_hba.conf",
  pgIdentConf: "/etc/postgresql/pg_ident.conf",
  /** The roles container's bootstrap SQL (roles.ts). */
  rolesSql: "/etc/pgstack/roles-bootstrap.sql",
  /**
   * The postgres image's PGDATA (its Dockerfile's ENV). The container does not override it, so the placement's pgdata
   * must be this path (stackProblems).
   */
  imagePgdata: "/var/lib/postgresql/data",
  /** The edoburu/pgbouncer entrypoint leaves an existing pgbouncer.ini alone and runs `pgbouncer` on this path. */
  pgbouncerIni: "/etc/pgbouncer/pgbouncer.ini",
  hookBundle: "/hook/pgstack.js",
  hookPlan: "/etc/pgstack/plan.json",
} as const;

/** The rendered postgresql.mtail, uploaded into mtail's programs directory (mtail exports the name as `prog`). */
export function mtailProgramPath(placement: Placement): string {
  return path.posix.join(placement.paths.mtailPrograms, mtailProgramFile);
}

/**
 * uid:gid of the postgres image's `postgres` user (the Debian-based images create it as 999:999), which owns PGDATA
 * (0700) and the collector's log files (log_file_mode 0600). Numeric, because mtail's image is FROM scratch and has
 * no /etc/passwd to look a name up in.
 */
export const postgresOwner = "999:999";

/** Docker object names: fixed, so a second stack on the same host gets its own set and `docker ps` reads well. */
export interface DockerNames {
  readonly network: string;
  /** The container holding the stack's network namespace (namespace.ts). */
  readonly namespace: string;
  /** PostgreSQL's socket directory, shared with the roles container (roles.ts). */
  readonly socketVolume: string;
  /** The run-to-completion container that applies the roles and passwords (roles.ts). */
  readonly roles: string;
  readonly dataVolume: string;
  /** PgBouncer's logfile, shared with mtail (configs/pgbouncer-log.ts). */
  readonly pgbouncerLogVolume: string;
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
    namespace: `${prefix}-netns`,
    socketVolume: `${prefix}-socket`,
    roles: `${prefix}-roles`,
    dataVolume: `${prefix}-data`,
    pgbouncerLogVolume: `${prefix}-pgbouncer-log`,
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
 * such a build with "could not resize shared memory segment … No space left on device" (pgvector #453). Every index
 * build of the plan runs with the server's maintenance_work_mem, so that is the size; the Kubernetes pod sizes its
 * memory-backed /dev/shm by the same rule (configs/kubernetes-resources.ts shmSizeBytes).
 */
export function shmSizeMiB(memory: RenderedMemory): number {
  return shmSizeBytes(memory.maintenanceWorkMemBytes) / MiB;
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

/**
 * Published ports: all on the namespace holder (namespace.ts), which owns the shared network namespace, bound to publishAddress:
 * PostgreSQL, PgBouncer and Prometheus at their ports in the namespace (the placement's), on docker.ports outside.
 */
export function publishedPorts(rendered: Rendered): { internal: number; external: number; ip: string; protocol: string }[] {
  const inside = rendered.placement.ports;
  const { ports: outside, publishAddress } = rendered.spec.docker;
  return [
    { internal: inside.postgres, external: outside.postgres, ip: publishAddress, protocol: "tcp" },
    { internal: inside.pgbouncer, external: outside.pgbouncer, ip: publishAddress, protocol: "tcp" },
    { internal: inside.prometheus, external: outside.prometheus, ip: publishAddress, protocol: "tcp" },
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

/**
 * A libpq URL; user and password are percent-encoded, so any generated or configured password works. `tlsQuery`
 * makes the client verify the server: rendered.tls.clientQuery inside the containers, hostTlsQuery on the host.
 */
export function connectionUrl(user: string, password: string, hostPort: string, database: string, tlsQuery: string): string {
  return `postgresql://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${hostPort}/${encodeURIComponent(database)}?${tlsQuery}`;
}

/**
 * Where a client on the Docker host keeps the CA by default: a file named after the stack, relative to the directory
 * the client runs in (libpq and node-postgres open a relative sslrootcert from there):
 * `pulumi stack output caCertificate > pgstack-<stack>-ca.crt`.
 */
export function defaultHostCaPath(stack: string): string {
  return `pgstack-${stack}-ca.crt`;
}

/**
 * The names of the server certificate on Docker: the network aliases the hook connects to, rendered.tls.serverNames
 * (loopback: the programs in the database's network namespace and PgBouncer's server leg), and the address the ports
 * are published on, which clients on the host connect to (a wildcard bind is reached through 127.0.0.1, already there).
 */
export function dockerServerNames(rendered: Rendered): ServerNames {
  return mergeServerNames(rendered.tls.serverNames, {
    dns: [networkAliases.postgres, networkAliases.pgbouncer],
    ips: [connectHost(rendered.spec.docker.publishAddress)],
  });
}

/** The server certificate's subject common name: the database's network alias (verifiers go by the names above). */
export const tlsCommonName = networkAliases.postgres;

/**
 * The database container's entrypoint. The provider uploads every file as root:root 0644 (terraform-provider-docker
 * writes each upload as a tar entry with mode 0644 and uid/gid 0 and copies it without CopyUIDGID), and PostgreSQL
 * refuses a key others may read. The container starts as root (the image's entrypoint drops to postgres with gosu),
 * so the key is made the postgres user's, mode 0600, before the image's own entrypoint runs with the same arguments.
 * Idempotent: a restarted container does it again on the same file.
 */
export function postgresEntrypoint(keyPath: string): string[] {
  const key = `'${keyPath.replace(/'/g, `'\\''`)}'`;
  return ["/bin/sh", "-c", `chown postgres:postgres ${key} && chmod 0600 ${key} && exec docker-entrypoint.sh "$@"`, "pgstack-postgres"];
}

/**
 * The server's command line: the rendered postgresql.conf as config_file, pg_hba.conf beside it (hba_file is a
 * setting the stack owns, so the rendered file never names another). The image's entrypoint passes the same
 * arguments to the temporary server it starts for initdb's follow-up, so even that one runs under the rendered
 * pg_hba.conf. The roles and passwords come later, from the roles job (roles.ts).
 */
export const postgresCommand: readonly string[] = [
  "postgres",
  "-c",
  `config_file=${paths.postgresConf}`,
  "-c",
  `hba_file=${paths.pgHbaConf}`,
  "-c",
  `ident_file=${paths.pgIdentConf}`,
];

/**
 * A rendered launch as a container's command. Each exporter's, mtail's and Prometheus' image has its program as
 * ENTRYPOINT, so the command is the launch's arguments; `pgstack` is the bundled CLI, which the node image runs as
 * `node /hook/pgstack.js`.
 */
export function containerCommand(launch: Launch): string[] {
  return launch.program === "pgstack" ? ["node", paths.hookBundle, ...launch.args] : [...launch.args];
}

/**
 * Where secrets reach a container: one uploaded file per variable, never the environment. A container's env is
 * `Config.Env`, which `docker inspect` prints to anyone who may use Docker on the host (and tools that collect it);
 * a file is read by the one program it is for. The provider uploads every file root:root 0644 (it can set no owner or
 * mode, see postgresEntrypoint): readable inside that container, whose one program is the reader.
 */
export const secretsDirectory = "/etc/pgstack/secrets";

/** The file a secret variable's value is uploaded to. */
export function secretFile(variable: string): string {
  return path.posix.join(secretsDirectory, variable);
}

/**
 * `<VAR>_FILE`: the variable naming the file that holds VAR's value, as the official images' entrypoints read it
 * (postgres: POSTGRES_PASSWORD_FILE), postgres_exporter (DATA_SOURCE_PASS_FILE) and pgstack (cli/secret-env.ts).
 */
export function fileVariable(variable: string): string {
  return `${variable}_FILE`;
}

/**
 * Programs that read `<VAR>_FILE` themselves for every secret variable of their launch. The others (pgbouncer_exporter
 * 0.10: lib/pq reads PGPASSWORD, and its PGPASSFILE ignores a file with group or other bits, which every upload has)
 * get `fileSecretShim` as entrypoint.
 */
const readsFileVariables: ReadonlySet<LaunchProgram> = new Set<LaunchProgram>(["postgres_exporter", "pgstack"]);

/** The program each image runs as ENTRYPOINT, for a shim to exec (prometheus-community's Dockerfiles: /bin/<name>). */
const imagePrograms: Partial<Record<LaunchProgram, string>> = { pgbouncer_exporter: "/bin/pgbouncer_exporter" };

/**
 * A launch's environment as Docker's `KEY=value` list: the non-secret variables, then for each secret variable
 * `<VAR>_FILE=<its file>` (the value is uploaded there, `containerSecretFiles`), each group in name order so a preview
 * never shows a reordering. No secret value is ever in it.
 */
export function containerEnvs(launch: Launch): string[] {
  const plain = Object.keys(launch.env)
    .sort()
    .map((name) => `${name}=${launch.env[name]}`);
  const files = Object.keys(launch.secretEnv)
    .sort()
    .map((name) => `${fileVariable(name)}=${secretFile(name)}`);
  return [...plain, ...files];
}

/**
 * The uploads holding a launch's secrets, filled from `secrets`, in name order. Throws when the launch needs a secret
 * the caller does not hold (a programming error: every container is given what its launch names).
 */
export function containerSecretFiles(launch: Launch, secrets: Readonly<Partial<Record<SecretInput, string>>>): { file: string; content: string }[] {
  return Object.keys(launch.secretEnv)
    .sort()
    .map((name) => {
      const input = launch.secretEnv[name];
      const value = secrets[input];
      if (value === undefined) throw new Error(`${launch.program} needs ${input} in ${name}, but its container is not given it`);
      return { file: secretFile(name), content: value };
    });
}

/**
 * The entrypoint of a launch whose program cannot read `<VAR>_FILE`: a POSIX shell (busybox in the exporters' images)
 * reads each file into its variable and execs the image's program with the command as arguments. The value is then in
 * that one process's environment (/proc/<pid>/environ: its own uid and root only), not in `docker inspect`. A missing
 * file stops the container with cat's error. undefined when the image's own entrypoint runs (nothing to read).
 */
export function fileSecretShim(launch: Launch): string[] | undefined {
  const variables = Object.keys(launch.secretEnv).sort();
  if (variables.length === 0 || readsFileVariables.has(launch.program)) return undefined;
  const program = imagePrograms[launch.program];
  if (program === undefined) throw new Error(`${launch.program} reads no <VAR>_FILE and its image's program is not known here; add it to imagePrograms`);
  const reads = variables.map((v) => `${v}="$(cat "$${fileVariable(v)}")" && export ${v} && unset ${fileVariable(v)}`);
  return ["/bin/sh", "-c", `${reads.join(" && ")} && exec ${program} "$@"`, launch.program];
}

/** The postgres image's entrypoint reads the superuser's password from `POSTGRES_PASSWORD_FILE` (its file_env). */
export const superuserPasswordVariable = "POSTGRES_PASSWORD";

/**
 * The roles container's command: psql on PostgreSQL's socket as the superuser (peer authentication, no password), the
 * bootstrap SQL in one transaction-free run that stops at the first error.
 */
export function rolesCommand(rendered: Rendered): string[] {
  const { placement, roles } = rendered;
  return [
    "psql",
    "--no-psqlrc",
    "-v",
    "ON_ERROR_STOP=1",
    `--host=${placement.paths.postgresSocketDir}`,
    `--port=${placement.ports.postgres}`,
    `--username=${roles.superuser}`,
    "--dbname=postgres",
    `--file=${paths.rolesSql}`,
  ];
}

/**
 * A run-to-completion container (the roles job, the post-deploy hook): `pulumi up` attaches until it exits and keeps
 * its output (`exitCode`, `containerLogs`). mustRun false: exited is its normal state; with mustRun the provider would
 * delete it on the next refresh and run it again. Never restarted.
 */
export const runToCompletion = { attach: true, logs: true, mustRun: false, restart: "no" } as const;

/** What the namespace holder runs: nothing, forever (coreutils sleep; every image the stack's postgres comes from has it). */
export const namespaceHolderCommand: readonly string[] = ["sleep", "infinity"];

/** Every role a container of the Docker target plays. */
export type ContainerRole =
  | "namespace"
  | "roles"
  | "postgres"
  | "pgbouncer"
  | "postgresExporter"
  | "pgbouncerExporter"
  | "nodeExporter"
  | "mtail"
  | "prometheus"
  | "canary"
  | "hook";

/** What docker.Container takes for a role's privileges and root filesystem. */
export interface ContainerHardening {
  /** Docker's default capabilities all dropped, only `adds` kept. */
  readonly capabilities: { readonly drops: string[]; readonly adds?: string[] };
  readonly securityOpts: string[];
  readonly readOnly: boolean;
}

/**
 * Capabilities the postgres container keeps, each for what its entrypoint does as root before gosu drops to the
 * postgres user (docker-library/postgres 17 docker-entrypoint.sh, and postgresEntrypoint here). PostgreSQL itself
 * runs as postgres with none: gosu's setuid from root clears the effective and permitted sets.
 */
export const postgresCapabilities: Readonly<Record<string, string>> = {
  CHOWN: "postgresEntrypoint gives the uploaded key to postgres; the image's entrypoint chowns whatever in PGDATA and /var/run/postgresql is not postgres's",
  // Not DAC_READ_SEARCH, which would do for the walk but also allows open_by_handle_at (the "shocker" escape).
  DAC_OVERRIDE: "that chown walk (find $PGDATA) runs as root through postgres's 0700 directories, which root may not enter without it",
  FOWNER: "chmod on files root does not own: the key after its chown (0600), PGDATA (0700) and /var/run/postgresql (3775), postgres's",
  SETGID: "gosu sets the postgres group and drops root's supplementary groups (setgroups) before exec",
  SETUID: "gosu switches to the postgres user",
  // FSETID left out: chmod 03775 then drops the socket directory's setgid bit, which decides only the group of the
  // socket PostgreSQL creates there (postgres's own either way).
};

/**
 * Hardening of each role (issue 12, Hardening). Every container: Docker's default capabilities dropped, postgres's
 * entrypoint keeping only `postgresCapabilities`, every other image running as a non-root user (PgBouncer, the
 * exporters, Prometheus: the images' USER; mtail: postgresOwner; the canary and hook: node) that no capability
 * would serve; `no-new-privileges`, so no setuid binary in an image can raise a process above where it started
 * (gosu only lowers, which the flag allows).
 *
 * Read-only root filesystem only where nothing is uploaded (node_exporter, the namespace holder): the provider writes `uploads` with
 * Docker's archive API to "/" (terraform-provider-docker's create), and Docker refuses that on a container with a
 * read-only root filesystem ("container rootfs is marked read-only", moby daemon/archive.go; a tmpfs or volume at
 * the file's path does not help, the check is on "/"). Every other container gets its files that way. What each
 * would need writable once files come another way: postgres PGDATA (volume) and /var/run/postgresql (tmpfs);
 * PgBouncer its log volume (no pidfile, no Unix socket: the rendered pgbouncer.ini); Prometheus /prometheus (the
 * image's VOLUME); the exporters, mtail (--logtostderr), the canary and the hook nothing.
 */
export function containerHardening(role: ContainerRole): ContainerHardening {
  return {
    capabilities: role === "postgres" ? { drops: ["ALL"], adds: Object.keys(postgresCapabilities).sort() } : { drops: ["ALL"] },
    securityOpts: ["no-new-privileges:true"],
    readOnly: role === "nodeExporter" || role === "namespace",
  };
}

/** Where the programs in the database's namespace reach PgBouncer and PostgreSQL: loopback, at the placement's ports. */
export function loopbackAddresses(placement: Placement): { readonly pooled: string; readonly direct: string } {
  return { pooled: `127.0.0.1:${placement.ports.pgbouncer}`, direct: `127.0.0.1:${placement.ports.postgres}` };
}

/**
 * The data volume as node_exporter and mtail mount it: read-only (neither writes; a bug in either cannot touch the
 * database's files) and where PostgreSQL has it, so node_exporter reports it under the mountpoint the disk alert
 * selects and mtail reads the log where PostgreSQL writes it.
 */
export function metricSourceVolumes(dataVolumeName: string, mount: string): { volumeName: string; containerPath: string; readOnly: boolean }[] {
  return [{ volumeName: dataVolumeName, containerPath: mount, readOnly: true }];
}

/** Health check: ready on TCP, which the entrypoint's temporary init server (socket only) never is. */
export function postgresHealthcheck(rendered: Rendered): { tests: string[]; interval: string; timeout: string; retries: number; startPeriod: string } {
  return {
    tests: ["CMD", "pg_isready", "--host=127.0.0.1", `--port=${rendered.placement.ports.postgres}`, `--username=${rendered.roles.superuser}`],
    // Durations as Go prints them ("2m0s", not "120s"): the provider reads them back that way, and any other
    // spelling would show as a change, which replaces the container, on every run.
    interval: "5s",
    timeout: "3s",
    retries: 6,
    // initdb and the bootstrap scripts of a fresh volume take a while; failures during this period do not count.
    startPeriod: "2m0s",
  };
}

function isWithin(child: string, parent: string): boolean {
  const relative = path.posix.relative(parent, child);
  return relative === "" || (!relative.startsWith("..") && !path.posix.isAbsolute(relative));
}

/**
 * What this layout cannot deploy from a Rendered, in words a person can act on; empty when all is well. Only what
 * ties Rendered to this target: user input was checked by the spec, the placement by renderStack. None of these can
 * follow from a stack file the spec accepts (tests/unit/components/docker-layout.test.ts renders a range of them).
 */
export function stackProblems(rendered: Rendered): string[] {
  const { spec, placement } = rendered;
  const problems: string[] = [];
  if (spec.target !== "docker") problems.push(`target is "${spec.target}"; the Docker components deploy stacks with target: docker`);
  if (rendered.launches.prometheus === null || rendered.files["prometheus.yml"] === undefined) {
    problems.push(`Rendered has no Prometheus launch or prometheus.yml (placement.runsPrometheus is false); the Docker target runs Prometheus itself`);
  }
  const mount = placement.dataVolumeMount;
  if (mount === null) {
    problems.push(`placement.dataVolumeMount is null; the Docker target mounts the data volume there, and node_exporter and mtail read it there`);
  } else if (!isWithin(placement.paths.pgdata, mount)) {
    problems.push(`placement.paths.pgdata ${placement.paths.pgdata} is not on the data volume (mounted at ${mount}); the data would be lost with the container`);
  }
  if (placement.paths.pgdata !== paths.imagePgdata) {
    problems.push(`placement.paths.pgdata is ${placement.paths.pgdata}, but the postgres image keeps PGDATA at ${paths.imagePgdata} and the container does not override it`);
  }
  return problems;
}
