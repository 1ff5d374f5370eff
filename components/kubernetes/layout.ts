/**
 * How the rendered stack is laid out on Kubernetes: object names, labels, container and port names, paths inside the
 * images that the placement does not decide, uids, Secret keys, the config checksum, how a rendered launch becomes a
 * container's command and env, and what ties a Rendered to this target. Ports, placement paths, command lines and
 * role names come from Rendered as they are; nothing here re-derives them. Plain data in, plain data out; the
 * components in this folder only wire resources from it, and tests check it without Pulumi.
 */
import { imageUsers } from "../../configs/image-packages";
import { createHash } from "node:crypto";
import path from "node:path";
import type { MemoryBudget } from "../../configs/kubernetes-resources";
import type { Launch, SecretInput } from "../../configs/launches";
import { mtailProgramFile } from "../../configs/mtail";
import type { Rendered, RenderedFileName, RenderedMemory } from "../../configs/rendered";
import type { Placement } from "../../configs/placement";
import type { MetricSource } from "../../configs/scrape";
import type { TlsFiles } from "../../configs/tls";

/** uid/gid of `postgres` in this repository's postgres image and in the official postgres (and pgvector/pgvector) images. */
export const postgresUid = imageUsers.postgres.uid;
/** uid of `node` in this repository's node image and in the official node images. */
export const nodeUid = imageUsers.node.uid;

/**
 * Where files go inside the images, where the placement does not say (it says the data volume's mount, PGDATA, the
 * exporter queries, mtail's programs and PgBouncer's auth_file: configs/placement.ts).
 */
export const paths = {
  configDir: "/etc/postgresql",
  postgresConf: "/etc/postgresql/postgresql.conf",
  pgHbaConf: "/etc/postgresql/pg_hba.conf",
  pgIdentConf: "/etc/postgresql/pg_ident.conf",
  /** The postgres image runs *.sql here once, when it initialises an empty data directory. */
  initdbDir: "/docker-entrypoint-initdb.d",
  bootstrapFile: "10-pgstack-roles.sql",
  shm: "/dev/shm",
  hugepages: "/dev/hugepages",
  tmp: "/tmp",
  /** PgBouncer reads its config here; the placement's auth_file must be beside it (one projected volume holds both). */
  pgbouncerDir: "/etc/pgbouncer",
  pgbouncerIni: "/etc/pgbouncer/pgbouncer.ini",
  hookDir: "/hook",
  hookBundle: "/hook/pgstack.js",
  planDir: "/etc/pgstack",
  plan: "/etc/pgstack/plan.json",
} as const;

/** Container port names: what Services target and what the PodMonitors scrape. At most 15 characters each. */
export const portNames = {
  postgres: "postgres",
  pgbouncer: "pgbouncer",
  postgresMetrics: "pg-metrics",
  pgbouncerMetrics: "pgb-metrics",
  nodeMetrics: "node-metrics",
  mtailMetrics: "mtail-metrics",
  canaryMetrics: "canary-metrics",
} as const;

/** The named container port each metric source (rendered.scrapeJobs' `source`) serves /metrics on. */
export const metricsPortNames: Readonly<Record<MetricSource, string>> = {
  postgresExporter: portNames.postgresMetrics,
  pgbouncerExporter: portNames.pgbouncerMetrics,
  nodeExporter: portNames.nodeMetrics,
  mtail: portNames.mtailMetrics,
  canary: portNames.canaryMetrics,
};

/** The metric source that runs in its own pod (a Deployment); every other one is a container of the database pod. */
export const canarySource: MetricSource = "canary";

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
  tlsReloader: "tls-reloader",
} as const;

/** The files the database pod reads: the checksum annotation covers exactly these. */
export const podFiles: readonly RenderedFileName[] = [
  "pg_hba.conf",
  "pg_ident.conf",
  "pgbouncer.ini",
  "postgres-exporter-queries.yaml",
  "postgresql.conf",
  mtailProgramFile,
];

/** Keys of the Secrets. */
export const secretKeys = {
  /** The superuser's SCRAM verifier (POSTGRES_PASSWORD): initdb stores it as it is. */
  superuserVerifier: "superuser-verifier",
  /** PgBouncer's admin user (the tls-reloader's RELOAD). */
  pgbouncerAdminPassword: "pgbouncer-admin-password",
  monitorPassword: "monitor-password",
  statsPassword: "stats-password",
  bootstrap: "bootstrap.sql",
  userlist: "userlist.txt",
  hookDirectUrl: "direct-url",
  hookPooledUrl: "pooled-url",
  /** The application Secret's copy of the CA (the TLS Secret's key name too), for the application to mount. */
  appCa: "ca.crt",
} as const;

/** The TLS Secret's keys (cert-manager's; `tls.crt` and `tls.key` are what type kubernetes.io/tls requires). */
export const tlsSecretKeys = { certificate: "tls.crt", key: "tls.key", ca: "ca.crt" } as const;

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
  /** For applications: uri, host, port, database, username, password (pooled), and ca.crt. */
  readonly app: string;
  /** The server certificate, its key and the CA (type kubernetes.io/tls; written by the program or by cert-manager). */
  readonly tls: string;
  /** For the post-deploy hook: direct-url, pooled-url. */
  readonly hookCredentials: string;
  readonly canaryCredentials: string;
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
    tls: `${base}-tls`,
    hookCredentials: `${base}-hook`,
    canaryCredentials: `${base}-canary-credentials`,
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

/** Where a Secret holds a value: the Secret's name and key. */
export interface SecretKeySelector {
  readonly name: string;
  readonly key: string;
}

type EnvVar = { name: string; value?: string; valueFrom?: { secretKeyRef: { key: string; name: string } } };

/**
 * A rendered launch as a container's command and args. The exporters', node_exporter's and mtail's images have their
 * program as ENTRYPOINT, so only args are given; `pgstack` is the bundled CLI, which the node image runs as
 * `node /hook/pgstack.js`.
 */
export function containerLaunch(launch: Launch): { command?: string[]; args?: string[] } {
  return launch.program === "pgstack" ? { command: ["node", paths.hookBundle, ...launch.args] } : { args: [...launch.args] };
}

/**
 * A launch's environment: its non-secret variables as values, then each secret variable from the Secret key that
 * holds it (secretKeyRef, never a literal), each group in name order. Throws when the launch needs a value none of
 * `secrets` holds (a programming error: every container is given what its launch names).
 */
export function containerEnv(launch: Launch, secrets: Readonly<Partial<Record<SecretInput, SecretKeySelector>>>): EnvVar[] {
  const plain = Object.keys(launch.env)
    .sort()
    .map((name) => ({ name, value: launch.env[name] }));
  const secret = Object.keys(launch.secretEnv)
    .sort()
    .map((name) => {
      const input = launch.secretEnv[name];
      const ref = secrets[input];
      if (ref === undefined) throw new Error(`${launch.program} needs ${input} in ${name}, but its pod is given no Secret holding it`);
      return { name, valueFrom: { secretKeyRef: { key: ref.key, name: ref.name } } };
    });
  return [...plain, ...secret];
}

/** Which Secret key holds each secret a database pod's launch needs. */
export function databaseSecretRefs(names: KubernetesNames): Readonly<Partial<Record<SecretInput, SecretKeySelector>>> {
  return {
    monitorPassword: { name: names.credentials, key: secretKeys.monitorPassword },
    statsPassword: { name: names.credentials, key: secretKeys.statsPassword },
  };
}

/** Which keys of the hook's Secret (`credentialsSecret`) hold the application's URLs, for the canary's launch. */
export function urlSecretRefs(credentialsSecret: string): Readonly<Partial<Record<SecretInput, SecretKeySelector>>> {
  return {
    directUrl: { name: credentialsSecret, key: secretKeys.hookDirectUrl },
    pooledUrl: { name: credentialsSecret, key: secretKeys.hookPooledUrl },
  };
}

/** The scrape jobs whose source is a container of the database pod, in rendered order. */
export function databaseScrapeJobs(rendered: Rendered): Rendered["scrapeJobs"] {
  return rendered.scrapeJobs.filter((j) => j.source !== canarySource);
}

/** The canary's scrape jobs (one), in rendered order. */
export function canaryScrapeJobs(rendered: Rendered): Rendered["scrapeJobs"] {
  return rendered.scrapeJobs.filter((j) => j.source === canarySource);
}

function isStrictlyWithin(child: string, parent: string): boolean {
  const relative = path.posix.relative(parent, child);
  return relative !== "" && !relative.startsWith("..") && !path.posix.isAbsolute(relative);
}

/**
 * The directory the placement keeps the TLS files in, when the pod can mount the Secret there: the three files in one
 * directory under the Secret's key names. Null otherwise (kubernetesProblems says why).
 */
export function tlsDirectory(files: TlsFiles): string | null {
  const dir = path.posix.dirname(files.certificate);
  const named = (file: string, key: string) => path.posix.dirname(file) === dir && path.posix.basename(file) === key;
  if (!named(files.certificate, tlsSecretKeys.certificate) || !named(files.key, tlsSecretKeys.key) || !named(files.ca, tlsSecretKeys.ca)) return null;
  return dir;
}

function isWithin(child: string, parent: string): boolean {
  const relative = path.posix.relative(parent, child);
  return relative === "" || (!relative.startsWith("..") && !path.posix.isAbsolute(relative));
}

/**
 * What keeps the pod from mounting the TLS Secret where the placement says; empty when nothing does. The files must
 * sit in one directory under the Secret's keys, and that directory must hold no other mount: Secret volumes are
 * read-only, and the container runtime cannot create a mount point inside one.
 */
export function tlsPlacementProblems(placement: Placement, otherMountDirs: readonly string[]): string[] {
  const { tlsCertificate, tlsKey, tlsCa } = placement.paths;
  const dir = tlsDirectory({ certificate: tlsCertificate, key: tlsKey, ca: tlsCa });
  if (dir === null) {
    return [
      `placement.paths.tlsCertificate, tlsKey and tlsCa are ${tlsCertificate}, ${tlsKey} and ${tlsCa}; the pod mounts the TLS Secret as one directory, ` +
        `so they must be ${Object.values(tlsSecretKeys).join(", ")} in the same directory`,
    ];
  }
  if (dir === "/") return [`placement.paths.tlsCertificate is ${tlsCertificate}; the TLS Secret cannot be mounted over the root directory`];
  return otherMountDirs
    .filter((other) => isWithin(other, dir))
    .map((other) => `the pod mounts ${other} inside the TLS directory ${dir}, a read-only Secret volume that cannot hold a mount point`);
}

/**
 * What this layout cannot deploy from a Rendered, in words a person can act on; empty when all is well. Only what
 * ties Rendered to this target: user input was checked by the spec, the placement by renderStack. None of these can
 * follow from a stack file the spec accepts (tests/unit/components/kubernetes-layout.test.ts renders a range of them).
 */
export function kubernetesProblems(rendered: Rendered): string[] {
  const { spec, memory, placement } = rendered;
  const problems: string[] = [];
  if (spec.target !== "kubernetes") problems.push(`target is "${spec.target}"; the Kubernetes components deploy stacks with target: kubernetes`);

  // Huge pages: the pod requests exactly rendered.memory.hugePages pages. `on` makes a shortfall fail at start;
  // `try` would fall back to 4 kB pages unseen (and can SIGBUS on hugepage nodes, PostgreSQL bug #17757). Nothing
  // is re-decided here: the rendered setting and the page count must simply agree.
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

  // PGDATA below the claim's mount point, not at it: a fresh filesystem's root holds lost+found, and initdb refuses a
  // directory that is not empty.
  const mount = placement.dataVolumeMount;
  if (mount === null) problems.push(`placement.dataVolumeMount is null; the pod mounts the data volume's claim there`);
  else if (!isStrictlyWithin(placement.paths.pgdata, mount)) {
    problems.push(`placement.paths.pgdata ${placement.paths.pgdata} is not a directory below the data volume's mount ${mount}; initdb needs an empty directory on the volume`);
  }
  // One projected volume at PgBouncer's config directory holds pgbouncer.ini and the auth_file.
  if (path.posix.dirname(placement.paths.pgbouncerAuthFile) !== paths.pgbouncerDir) {
    problems.push(`placement.paths.pgbouncerAuthFile is ${placement.paths.pgbouncerAuthFile}; the pod mounts the auth_file beside pgbouncer.ini, in ${paths.pgbouncerDir}`);
  }
  // PgBouncer's logfile lives on an emptyDir of its own, mounted at the file's directory in PgBouncer and mtail.
  const pgbouncerLogDir = path.posix.dirname(placement.paths.pgbouncerLog);
  if ([paths.pgbouncerDir, "/", path.posix.dirname(placement.paths.tlsCertificate), placement.paths.mtailPrograms].includes(pgbouncerLogDir)) {
    problems.push(`placement.paths.pgbouncerLog is ${placement.paths.pgbouncerLog}; the pod mounts PgBouncer's log volume at its directory, which must hold no other mount`);
  }
  // The TLS Secret is mounted as one directory, holding no other mount.
  problems.push(
    ...tlsPlacementProblems(placement, [
      paths.configDir,
      paths.initdbDir,
      paths.shm,
      paths.hugepages,
      paths.tmp,
      paths.pgbouncerDir,
      paths.hookDir,
      paths.planDir,
      ...(mount === null ? [] : [mount]),
      placement.paths.postgresSocketDir,
      path.posix.dirname(placement.paths.postgresExporterQueries),
      placement.paths.mtailPrograms,
    ]),
  );
  // Prometheus scrapes the pod's IP, not its loopback.
  if (placement.metricsBind !== "" && placement.metricsBind !== "0.0.0.0") {
    problems.push(`placement.metricsBind is "${placement.metricsBind}"; Prometheus scrapes the pod's IP, so the metric sources must listen on every address`);
  }
  return problems;
}
