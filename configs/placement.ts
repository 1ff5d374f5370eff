/**
 * Placement: where one target runs the stack's programs — the ports they share a network namespace on, the address
 * the metric servers bind, the paths of the files they read, how often the monitoring looks. It is the only input
 * besides the StackSpec that renderStack takes, so every port, path and address a target uses is decided here, once,
 * and comes back in Rendered (the exporters' command lines, pgbouncer.ini, prometheus.yml); no target derives one.
 *
 * Docker and Kubernetes have a fixed placement: everything in one network namespace (the database container's, the
 * pod's), at the programs' usual ports. The perf cluster's ports and paths are its own (free loopback ports, a
 * scratch directory per run): it builds a Placement with `localPlacement` and renders with it.
 */
import { canaryPort } from "./canary";
import { nodeExporterPort, pgbouncerExporterPort, postgresExporterPort } from "./exporters";
import { mtailPort } from "./mtail";
import { pgbouncerAuthFile, pgbouncerPort, type ClientTlsMode } from "./pgbouncer";
import { containerPgbouncerLog } from "./pgbouncer-log";
import { postgresPort, unixSocketDirectory, type PostgresServerPlacement } from "./postgresql";
import { prometheusPort } from "./scrape";
import { containerTls, type TlsFiles } from "./tls";
import type { Target } from "./stack-spec";

/** Every server of a stack, as Placement.ports names them. */
export interface PlacementPorts {
  readonly postgres: number;
  readonly pgbouncer: number;
  readonly postgresExporter: number;
  readonly pgbouncerExporter: number;
  readonly nodeExporter: number;
  readonly mtail: number;
  readonly canary: number;
  readonly prometheus: number;
}

export interface PlacementPaths {
  /** PGDATA as PostgreSQL sees it, and mtail (read-only): the logging collector writes under `<pgdata>/log`. */
  readonly pgdata: string;
  /**
   * PostgreSQL's unix_socket_directories: where it puts its Unix socket and the socket's lock file. A directory that
   * exists before the server starts and that it may write.
   */
  readonly postgresSocketDir: string;
  /** postgres_exporter's `--extend.query-path`: the rendered postgres-exporter-queries.yaml. */
  readonly postgresExporterQueries: string;
  /**
   * The server certificate (PEM, chain from the server's up to below the CA) PostgreSQL and PgBouncer present, its
   * private key (owned by the server's user, mode 0600 or root-owned 0640: PostgreSQL refuses anything wider) and the
   * CA certificate every client verifies them with (sslmode=verify-full). cert-manager's Secret keys name them.
   */
  readonly tlsCertificate: string;
  readonly tlsKey: string;
  readonly tlsCa: string;
  /** mtail's `--progs`: a directory holding the rendered postgresql.mtail and nothing else. */
  readonly mtailPrograms: string;
  /** PgBouncer's auth_file (SCRAM verifiers). */
  readonly pgbouncerAuthFile: string;
  /**
   * PgBouncer's `logfile`, which mtail follows for failed logins (configs/pgbouncer-log.ts): written by PgBouncer,
   * read-only to mtail. Its directory must exist and be writable by PgBouncer's uid.
   */
  readonly pgbouncerLog: string;
  /** Where Prometheus reads prometheus.yml, the alert rules, and keeps its data (targets that run Prometheus). */
  readonly prometheusConfig: string;
  readonly alertRules: string;
  readonly prometheusData: string;
}

/** How often the monitoring looks, in milliseconds. */
export interface MonitoringIntervals {
  /** Prometheus's scrape interval; each scrape may take 80 % of it. */
  readonly scrapeMs: number;
  /** Prometheus's rule evaluation interval. */
  readonly evaluationMs: number;
  /** How often the canary runs its scenarios (`pgstack canary --interval`). */
  readonly canaryMs: number;
}

export interface Placement {
  readonly target: Target;
  /** Ports inside the shared network namespace; the programs reach each other on 127.0.0.1 at these. */
  readonly ports: PlacementPorts;
  /**
   * Address the metric servers (exporters, mtail, the canary) bind: 127.0.0.1 where Prometheus shares their
   * namespace and nothing else should reach them (Docker, the perf cluster); "" (every address) where Prometheus
   * scrapes the pod IP (Kubernetes).
   */
  readonly metricsBind: string;
  /** PgBouncer's listen_addr: "*" where clients come over the container network, 127.0.0.1 on the perf host. */
  readonly pgbouncerListen: string;
  /** Address Prometheus binds, where the target runs it ("" = every address: Docker publishes it from the namespace). */
  readonly prometheusBind: string;
  readonly paths: PlacementPaths;
  /**
   * Where the data volume is mounted (in PostgreSQL's container and read-only in node_exporter's): the one filesystem
   * the disk alert watches. null on the perf host, where every real filesystem is watched.
   */
  readonly dataVolumeMount: string | null;
  readonly intervals: MonitoringIntervals;
  /** Whether the target runs Prometheus itself (Docker, perf cluster) or leaves it to the Prometheus Operator. */
  readonly runsPrometheus: boolean;
  /**
   * PgBouncer's client_tls_sslmode: "require" on every placement. A perf cluster started for `pgstack local perf
   * --compare-tls` has "allow" (`localPlacement({ clientTls: "allow" })`), so one PgBouncer serves plain-text and TLS
   * clients side by side; no stack file key reaches it, and `placementProblems` refuses it on any other target.
   */
  readonly clientTls: ClientTlsMode;
}

/**
 * Where both container targets mount the data volume: in the postgres container, and read-only in node_exporter's and
 * mtail's. The disk alert watches this mount only: node_exporter in a container also sees /etc/hosts and the like,
 * bind mounts from the machine's root disk.
 */
export const containerDataMount = "/var/lib/postgresql/data";

/** The ports every container target uses: each program's own default. */
export const defaultPorts: PlacementPorts = {
  postgres: postgresPort,
  pgbouncer: pgbouncerPort,
  postgresExporter: postgresExporterPort,
  pgbouncerExporter: pgbouncerExporterPort,
  nodeExporter: nodeExporterPort,
  mtail: mtailPort,
  canary: canaryPort,
  prometheus: prometheusPort,
};

/** Production monitoring: a 15 s scrape and evaluation (the rules' smallest `for` is 1m), the canary every 10 s. */
export const productionIntervals: MonitoringIntervals = { scrapeMs: 15_000, evaluationMs: 15_000, canaryMs: 10_000 };

/**
 * The perf cluster scrapes and evaluates every 5 s: a run lasts minutes, and its graphs and `up` checks should not
 * wait a quarter of a minute for the first sample. The canary keeps 10 s, so the rules' 5-minute windows see 30
 * rounds as in production.
 */
export const localIntervals: MonitoringIntervals = { scrapeMs: 5_000, evaluationMs: 5_000, canaryMs: 10_000 };

const containerPaths = {
  postgresSocketDir: unixSocketDirectory,
  postgresExporterQueries: "/etc/pgstack/postgres-exporter-queries.yaml",
  tlsCertificate: containerTls.certificate,
  tlsKey: containerTls.key,
  tlsCa: containerTls.ca,
  mtailPrograms: "/etc/mtail",
  pgbouncerAuthFile,
  pgbouncerLog: containerPgbouncerLog,
  prometheusConfig: "/etc/prometheus/prometheus.yml",
  alertRules: "/etc/prometheus/rules/alert-rules.yaml",
  prometheusData: "/prometheus",
} as const;

const docker: Placement = {
  target: "docker",
  ports: defaultPorts,
  metricsBind: "127.0.0.1",
  pgbouncerListen: "*",
  prometheusBind: "",
  // The postgres image's PGDATA is the volume's root.
  paths: { pgdata: containerDataMount, ...containerPaths },
  dataVolumeMount: containerDataMount,
  intervals: productionIntervals,
  runsPrometheus: true,
  clientTls: "require",
};

const kubernetes: Placement = {
  target: "kubernetes",
  ports: defaultPorts,
  metricsBind: "",
  pgbouncerListen: "*",
  prometheusBind: "",
  // A subdirectory of the volume, so the volume root's lost+found never bothers initdb.
  paths: { pgdata: `${containerDataMount}/pgdata`, ...containerPaths },
  dataVolumeMount: containerDataMount,
  intervals: productionIntervals,
  runsPrometheus: false,
  clientTls: "require",
};

/** The perf cluster at its reference placement (what `pgstack render` shows); a running cluster passes its own. */
const local: Placement = {
  target: "local",
  ports: defaultPorts,
  metricsBind: "127.0.0.1",
  pgbouncerListen: "127.0.0.1",
  prometheusBind: "127.0.0.1",
  paths: {
    pgdata: "/var/lib/pgstack/data",
    // A native PostgreSQL's own (Debian's) socket directory; a running cluster uses its scratch directory.
    postgresSocketDir: unixSocketDirectory,
    postgresExporterQueries: "/var/lib/pgstack/files/postgres-exporter-queries.yaml",
    tlsCertificate: "/var/lib/pgstack/tls/tls.crt",
    tlsKey: "/var/lib/pgstack/tls/tls.key",
    tlsCa: "/var/lib/pgstack/tls/ca.crt",
    mtailPrograms: "/var/lib/pgstack/mtail",
    pgbouncerAuthFile: "/var/lib/pgstack/pgbouncer/userlist.txt",
    pgbouncerLog: "/var/lib/pgstack/pgbouncer/pgbouncer.log",
    prometheusConfig: "/var/lib/pgstack/prometheus/prometheus.yml",
    alertRules: "/var/lib/pgstack/prometheus/alert-rules.yaml",
    prometheusData: "/var/lib/pgstack/prometheus/data",
  },
  dataVolumeMount: null,
  intervals: localIntervals,
  runsPrometheus: true,
  clientTls: "require",
};

const placements: Readonly<Record<Target, Placement>> = { docker, kubernetes, local };

/** The placement a target uses unless told otherwise (the perf cluster's is its reference one). */
export function placementFor(target: Target): Placement {
  return placements[target];
}

/**
 * The perf cluster's placement for one run: its own ports, paths and intervals over the reference one, and PgBouncer's
 * client_tls_sslmode ("require" unless the run compares TLS with plain text).
 */
export function localPlacement(over: {
  readonly ports?: Partial<PlacementPorts>;
  readonly paths?: Partial<PlacementPaths>;
  readonly intervals?: Partial<MonitoringIntervals>;
  readonly clientTls?: ClientTlsMode;
}): Placement {
  return {
    ...local,
    ports: { ...local.ports, ...over.ports },
    paths: { ...local.paths, ...over.paths },
    intervals: { ...local.intervals, ...over.intervals },
    clientTls: over.clientTls ?? local.clientTls,
  };
}

/** The PostgreSQL server's part of a placement, as configs/postgresql.ts takes it. */
export function serverPlacement(p: Placement): PostgresServerPlacement {
  return { port: p.ports.postgres, socketDirectory: p.paths.postgresSocketDir, tls: { certificate: p.paths.tlsCertificate, key: p.paths.tlsKey } };
}

/** The TLS files of a placement: what the servers present and what their clients trust. */
export function tlsFiles(p: Placement): TlsFiles {
  return { certificate: p.paths.tlsCertificate, key: p.paths.tlsKey, ca: p.paths.tlsCa };
}

/** `host:port` for a bind address; "" binds every address (`:9187`, as the Go servers spell it). */
export function bindAddress(host: string, port: number): string {
  return `${host}:${port}`;
}

/** Problems that would make a placement unusable, each naming the field and value; empty when usable. */
export function placementProblems(p: Placement): string[] {
  const problems: string[] = [];
  const entries = Object.entries(p.ports) as [keyof PlacementPorts, number][];
  for (const [name, port] of entries) {
    if (!Number.isInteger(port) || port < 1 || port > 65535) problems.push(`ports.${name} ${port} is not a TCP port (1–65535)`);
  }
  entries.forEach(([a, pa], i) =>
    entries.slice(i + 1).forEach(([b, pb]) => {
      if (pa === pb) problems.push(`ports.${a} and ports.${b} are both ${pa}; they share one network namespace`);
    }),
  );
  for (const [name, path] of Object.entries(p.paths)) if (!path.startsWith("/")) problems.push(`paths.${name} "${path}" is not an absolute path`);
  const { scrapeMs, evaluationMs, canaryMs } = p.intervals;
  // Below 1 s postgres_exporter's scrape (dozens of queries) overlaps the next one on a small host.
  if (!Number.isInteger(scrapeMs) || scrapeMs < 1_000) problems.push(`intervals.scrapeMs ${scrapeMs} must be a whole number ≥ 1000`);
  if (!Number.isInteger(evaluationMs) || evaluationMs < 100) problems.push(`intervals.evaluationMs ${evaluationMs} must be a whole number ≥ 100`);
  // configs/canary.ts accepts intervals from 100 ms.
  if (!Number.isInteger(canaryMs) || canaryMs < 100) problems.push(`intervals.canaryMs ${canaryMs} must be a whole number ≥ 100`);
  if (p.clientTls !== "require" && p.clientTls !== "allow") problems.push(`clientTls "${String(p.clientTls)}" must be require or allow`);
  // Plain text to the pooler is a measuring aid of the throw-away perf cluster, never something a deployed stack serves.
  if (p.clientTls === "allow" && p.target !== "local") problems.push(`clientTls "allow" is for the perf cluster's TLS cost comparison only; target ${p.target} requires TLS of every client`);
  return problems;
}

/** Milliseconds as a Prometheus (and `pgstack canary`) duration: whole seconds as `5s`, anything else as `1500ms`. */
export function promDuration(ms: number): string {
  if (!Number.isInteger(ms) || ms < 1) throw new Error(`interval ${ms} ms must be a whole number of milliseconds ≥ 1`);
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}
