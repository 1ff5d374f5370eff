/**
 * The database StatefulSet's spec: one pod with PostgreSQL + pgvector, PgBouncer as a native sidecar, the two
 * exporters, node_exporter and mtail. Plain data in (the Rendered stack, object names, the resource plan), plain
 * data out; no Pulumi calls.
 */
import { imageUsers } from "../../configs/image-packages";
import type { ImageReferences } from "../../configs/stack-spec";
import type * as k8s from "@pulumi/kubernetes";
import path from "node:path";
import { k8sQuantity, type PodResourcePlan } from "../../configs/kubernetes-resources";
import type { Launch } from "../../configs/launches";
import { mtailProgramFile } from "../../configs/mtail";
import { pgbouncerContainerCommand } from "../../configs/pgbouncer-log";
import type { Rendered } from "../../configs/rendered";
import {
  configChecksum,
  containerEnv,
  containerLaunch,
  containerNames,
  databaseSecretRefs,
  type KubernetesNames,
  objectLabels,
  paths,
  portNames,
  postgresUid,
  secretKeys,
  selectorLabels,
  sortedRecord,
  tlsDirectory,
} from "./layout";
import { caProjection, caVolume, caVolumeMount, serverTlsVolume, tlsReloaderContainer, tlsReloadIntervalSeconds, tlsVolumes } from "./tls-spec";

type Container = k8s.types.input.core.v1.Container;
type EnvVar = k8s.types.input.core.v1.EnvVar;
type PodSecurityContext = k8s.types.input.core.v1.PodSecurityContext;
type SecurityContext = k8s.types.input.core.v1.SecurityContext;
type Volume = k8s.types.input.core.v1.Volume;

/** Files from ConfigMaps and Secrets: read-only to their owner and group (fsGroup), nothing for others. */
const readOnlyFileMode = 0o440;

/** uid `nobody`, which the node_exporter image runs as: it reads no file that anyone owns. */
const nobodyUid = imageUsers["node-exporter"].uid;
/** The exporters' images' user (nobody). */
const exporterUid = imageUsers["postgres-exporter"].uid;

/**
 * The restricted Pod Security Standard, per container: no privilege escalation, no capabilities, the runtime's
 * seccomp profile, a non-root uid, and a read-only root filesystem (every path a program writes is a volume).
 */
export function restrictedSecurityContext(uid: number): SecurityContext {
  return {
    allowPrivilegeEscalation: false,
    capabilities: { drop: ["ALL"] },
    readOnlyRootFilesystem: true,
    runAsGroup: uid,
    runAsNonRoot: true,
    runAsUser: uid,
    seccompProfile: { type: "RuntimeDefault" },
  };
}

/**
 * The restricted Pod Security Standard at pod level: every container as `uid`, non-root, the runtime's seccomp
 * profile, and volumes group-owned by `uid` (fsGroup) so files mounted 0440 are readable.
 */
export function restrictedPodSecurityContext(uid: number): PodSecurityContext {
  return { fsGroup: uid, runAsGroup: uid, runAsNonRoot: true, runAsUser: uid, seccompProfile: { type: "RuntimeDefault" } };
}

function secretEnv(name: string, secret: string, key: string): EnvVar {
  return { name, valueFrom: { secretKeyRef: { key, name: secret } } };
}

/** A metric source's container port, named as the PodMonitor scrapes it, at the port its launch listens on. */
function metricsPort(name: string, launch: Launch): k8s.types.input.core.v1.ContainerPort {
  return { containerPort: launch.port, name, protocol: "TCP" };
}

/**
 * The data volume's mount point (placement.dataVolumeMount); kubernetesProblems refuses a Rendered without one before
 * any resource exists.
 */
function dataMount(rendered: Rendered): string {
  const mount = rendered.placement.dataVolumeMount;
  if (mount === null) throw new Error("rendered.placement.dataVolumeMount is null; the pod has nowhere to mount the data volume");
  return mount;
}

/** The directory the TLS Secret is mounted at; kubernetesProblems refuses a placement without one before any resource exists. */
function tlsMount(rendered: Rendered): string {
  const dir = tlsDirectory(rendered.tls.files);
  if (dir === null) throw new Error("rendered.tls.files are not tls.crt, tls.key and ca.crt in one directory; the pod cannot mount the TLS Secret there");
  return dir;
}

/** The whole TLS Secret, for the two servers (and the reloader): read-only, no subPath, so renewals reach the files. */
function serverTlsMount(rendered: Rendered) {
  return { mountPath: tlsMount(rendered), name: tlsVolumes.server, readOnly: true } as const;
}

/** Where the exporters' queries volume is mounted: the CA is projected into it when its path lies below. */
function queriesDir(rendered: Rendered): string {
  return path.posix.dirname(rendered.placement.paths.postgresExporterQueries);
}

function postgresContainer(rendered: Rendered, images: ImageReferences, names: KubernetesNames, resources: PodResourcePlan): Container {
  const hugePages = resources.hugePagesBytes > 0;
  const { placement } = rendered;
  // pg_isready over TCP: the entrypoint's temporary init server listens on the socket only, so TCP readiness means the
  // real server is up. Exit 0 = accepting connections, 1 = rejecting (starting up, recovering, shutting down),
  // 2 = no response.
  const pgIsReady = ["pg_isready", "--host=127.0.0.1", `--port=${placement.ports.postgres}`, `--username=${rendered.roles.superuser}`, "--timeout=5"];
  return {
    name: containerNames.postgres,
    image: images.postgres,
    // The image's entrypoint initialises an empty PGDATA (initdb, then the /docker-entrypoint-initdb.d scripts, run
    // by a temporary server started with these same arguments, so under the rendered pg_hba.conf) and then execs
    // the server with them.
    args: ["postgres", "-c", `config_file=${paths.postgresConf}`, "-c", `hba_file=${paths.pgHbaConf}`, "-c", `ident_file=${paths.pgIdentConf}`],
    env: [
      { name: "PGDATA", value: placement.paths.pgdata },
      // initdb runs before the rendered postgresql.conf is in use, with PostgreSQL's default huge_pages = try: on a
      // node with free huge pages but none granted to the pod, that SIGBUSes (PostgreSQL bug #17757,
      // docker-library/postgres #451). initdb (≥ 16) --set applies the rendered setting to its own run too.
      { name: "POSTGRES_INITDB_ARGS", value: `--set=huge_pages=${rendered.memory.hugePagesSetting}` },
      // The superuser's SCRAM verifier, not a password: initdb stores it as it is (as on Docker).
      secretEnv("POSTGRES_PASSWORD", names.credentials, secretKeys.superuserVerifier),
    ],
    ports: [{ containerPort: placement.ports.postgres, name: portNames.postgres, protocol: "TCP" }],
    resources: { limits: sortedRecord(resources.postgres.limits), requests: sortedRecord(resources.postgres.requests) },
    volumeMounts: [
      { mountPath: dataMount(rendered), name: "data" },
      { mountPath: paths.configDir, name: "config", readOnly: true },
      { mountPath: paths.initdbDir, name: "bootstrap", readOnly: true },
      { mountPath: paths.shm, name: "shm" },
      ...(hugePages ? [{ mountPath: paths.hugepages, name: "hugepages" }] : []),
      // The server's socket and lock file: a writable directory where the rendered unix_socket_directories says.
      { mountPath: placement.paths.postgresSocketDir, name: "run" },
      { mountPath: paths.tmp, name: "tmp" },
      serverTlsMount(rendered),
    ],
    // Up to an hour for initdb on a fresh volume or crash recovery of a large WAL; liveness starts only after it.
    startupProbe: { exec: { command: pgIsReady }, failureThreshold: 360, periodSeconds: 10, timeoutSeconds: 6 },
    readinessProbe: { exec: { command: pgIsReady }, failureThreshold: 3, periodSeconds: 10, timeoutSeconds: 6 },
    // Alive = the postmaster answers at all. "Rejecting connections" (exit 1) while it recovers from a backend crash
    // is alive: restarting it then would only start the recovery over.
    livenessProbe: {
      exec: { command: ["sh", "-c", `${pgIsReady.join(" ")}; [ $? -le 1 ]`] },
      failureThreshold: 8,
      periodSeconds: 15,
      timeoutSeconds: 10,
    },
    // Kubernetes sends SIGTERM, PostgreSQL's "smart" shutdown, which waits for every client to leave; PgBouncer's
    // server connections never do, and the grace period would end in SIGKILL and crash recovery. Fast shutdown
    // disconnects them and writes a shutdown checkpoint.
    lifecycle: { preStop: { exec: { command: ["pg_ctl", "stop", "-D", placement.paths.pgdata, "-m", "fast", "-w", "-t", "100"] } } },
    securityContext: restrictedSecurityContext(postgresUid),
  };
}

function pgbouncerContainer(rendered: Rendered, images: ImageReferences, resources: PodResourcePlan): Container {
  const port = rendered.placement.ports.pgbouncer;
  const tcp = { tcpSocket: { port: portNames.pgbouncer } };
  return {
    name: containerNames.pgbouncer,
    image: images.pgbouncer,
    // Not the image's entrypoint: it writes a pgbouncer.ini and userlist from environment variables when they are
    // missing; ours are mounted read-only, and the binary reads exactly them. PgBouncer is exec'd by a shell that
    // first starts the loop keeping its logfile (mtail's feed) under its cap (configs/pgbouncer-log.ts).
    command: pgbouncerContainerCommand(paths.pgbouncerIni, rendered.placement.paths.pgbouncerLog),
    // A native sidecar (Kubernetes ≥ 1.29): started before the regular containers and kept running beside them,
    // restarted on exit, stopped after them, so clients never meet a pod whose pooler is gone.
    restartPolicy: "Always",
    ports: [{ containerPort: port, name: portNames.pgbouncer, protocol: "TCP" }],
    resources: { limits: sortedRecord(resources.pgbouncer.limits), requests: sortedRecord(resources.pgbouncer.requests) },
    volumeMounts: [
      { mountPath: paths.pgbouncerDir, name: "pgbouncer-config", readOnly: true },
      serverTlsMount(rendered),
      { mountPath: pgbouncerLogDir(rendered), name: pgbouncerLogVolume },
    ],
    // The regular containers start once this passes: pgbouncer_exporter then finds the admin console listening.
    startupProbe: { ...tcp, failureThreshold: 30, periodSeconds: 1 },
    readinessProbe: { ...tcp, failureThreshold: 3, periodSeconds: 10 },
    livenessProbe: { ...tcp, failureThreshold: 6, periodSeconds: 10 },
    securityContext: restrictedSecurityContext(postgresUid),
  };
}

function postgresExporterContainer(rendered: Rendered, images: ImageReferences, names: KubernetesNames, resources: PodResourcePlan): Container {
  const launch = rendered.launches.postgresExporter;
  return {
    name: containerNames.postgresExporter,
    image: images.postgresExporter,
    ...containerLaunch(launch),
    env: containerEnv(launch, databaseSecretRefs(names)),
    ports: [metricsPort(portNames.postgresMetrics, launch)],
    resources: { limits: sortedRecord(resources.postgresExporter.limits), requests: sortedRecord(resources.postgresExporter.requests) },
    // The queries, and the CA projected beside them when its path is below theirs (the containers' placement:
    // /etc/pgstack and /etc/pgstack/tls); else the CA volume of its own.
    volumeMounts: [
      { mountPath: queriesDir(rendered), name: "exporter-queries", readOnly: true },
      ...(caProjection(queriesDir(rendered), rendered.tls.files.ca, names.tls) === null ? [caVolumeMount(rendered.tls.files.ca)] : []),
    ],
    // Liveness only, on the landing page (no database query). No readiness probe: a pod is Ready only when every
    // container is, and a slow scrape must never take the database out of its Services.
    livenessProbe: { failureThreshold: 6, httpGet: { path: "/", port: portNames.postgresMetrics }, periodSeconds: 20, timeoutSeconds: 5 },
    // The image's user (images/, configs/image-packages.ts imageUsers; nobody in prometheus-community's too). Its
    // 0440 files (queries, CA) are readable through the pod's fsGroup.
    securityContext: restrictedSecurityContext(exporterUid),
  };
}

function pgbouncerExporterContainer(rendered: Rendered, images: ImageReferences, names: KubernetesNames, resources: PodResourcePlan): Container {
  const launch = rendered.launches.pgbouncerExporter;
  return {
    name: containerNames.pgbouncerExporter,
    image: images.pgbouncerExporter,
    // pgbouncer_exporter 0.10 exits at start-up when PgBouncer does not answer (#140). As a regular container it is
    // simply restarted by the kubelet, and PgBouncer, a native sidecar with a startup probe, is already listening
    // before any regular container starts; so in practice the first start succeeds.
    ...containerLaunch(launch),
    env: containerEnv(launch, databaseSecretRefs(names)),
    ports: [metricsPort(portNames.pgbouncerMetrics, launch)],
    resources: { limits: sortedRecord(resources.pgbouncerExporter.limits), requests: sortedRecord(resources.pgbouncerExporter.requests) },
    // The CA it verifies PgBouncer with (its launch's sslrootcert).
    volumeMounts: [caVolumeMount(rendered.tls.files.ca)],
    livenessProbe: { failureThreshold: 6, httpGet: { path: "/", port: portNames.pgbouncerMetrics }, periodSeconds: 20, timeoutSeconds: 5 },
    // The image's user (images/, configs/image-packages.ts imageUsers; nobody in prometheus-community's too). Its
    // 0440 files (queries, CA) are readable through the pod's fsGroup.
    securityContext: restrictedSecurityContext(exporterUid),
  };
}

/**
 * Reloads PostgreSQL and PgBouncer when the mounted certificate changes (tls-spec.ts tlsReloadScript: why a sidecar,
 * why these two commands). The postgres image: sh, sha256sum and psql, run as the postgres uid.
 */
function reloaderContainer(rendered: Rendered, images: ImageReferences, names: KubernetesNames, resources: PodResourcePlan): Container {
  const { placement } = rendered;
  return tlsReloaderContainer({
    reload: {
      tlsDir: tlsMount(rendered),
      socketDir: placement.paths.postgresSocketDir,
      postgresPort: placement.ports.postgres,
      pgbouncerPort: placement.ports.pgbouncer,
      superuser: rendered.roles.superuser,
      pgbouncerAdmin: rendered.roles.pgbouncerAdmin,
      bootstrapFile: path.posix.join(paths.initdbDir, paths.bootstrapFile),
      userlistFile: placement.paths.pgbouncerAuthFile,
      intervalSeconds: tlsReloadIntervalSeconds,
    },
    image: images.postgres,
    credentialsSecret: names.credentials,
    bootstrapVolume: "bootstrap",
    userlistVolume: "pgbouncer-config",
    resources: resources.tlsReloader,
    securityContext: restrictedSecurityContext(postgresUid),
  });
}

/** The emptyDir holding PgBouncer's logfile: PgBouncer writes it, mtail reads it (mtail's args name the file). */
const pgbouncerLogVolume = "pgbouncer-log";

function pgbouncerLogDir(rendered: Rendered): string {
  return path.posix.dirname(rendered.placement.paths.pgbouncerLog);
}

/** The data volume for the containers that only look at it: they can never write to PostgreSQL's files. */
function dataReadOnly(rendered: Rendered) {
  return { mountPath: dataMount(rendered), name: "data", readOnly: true } as const;
}

/**
 * node_exporter without any host access (no hostPath, host PID or host network), so the pod stays within the
 * restricted Pod Security Standard. It needs none for what the alerts ask: /proc/stat and /proc/meminfo are the
 * node's in any container, and the filesystem collector reports the mounts of its own container (it reads
 * /proc/1/mountinfo, which is its own process while the pod does not share a process namespace), so the data volume
 * is mounted into it, read-only, for node_filesystem_* of exactly the disk the disk alert watches. statfs() of the
 * mount point needs no access to PGDATA (0700, uid 999), so it runs as nobody.
 */
function nodeExporterContainer(rendered: Rendered, images: ImageReferences, resources: PodResourcePlan): Container {
  return {
    name: containerNames.nodeExporter,
    image: images.nodeExporter,
    ...containerLaunch(rendered.launches.nodeExporter),
    ports: [metricsPort(portNames.nodeMetrics, rendered.launches.nodeExporter)],
    resources: { limits: sortedRecord(resources.nodeExporter.limits), requests: sortedRecord(resources.nodeExporter.requests) },
    volumeMounts: [dataReadOnly(rendered)],
    livenessProbe: { failureThreshold: 6, httpGet: { path: "/", port: portNames.nodeMetrics }, periodSeconds: 20, timeoutSeconds: 5 },
    securityContext: restrictedSecurityContext(nobodyUid),
  };
}

/**
 * mtail follows PostgreSQL's own log files: the logging collector writes them below PGDATA, mode 0600 in a 0700
 * directory owned by the postgres uid, so mtail runs as that uid with the data volume mounted read-only; and
 * PgBouncer's logfile, from the emptyDir it shares with PgBouncer, read-only too. It writes
 * nothing itself (`--logtostderr`), so the root filesystem stays read-only. Started before PostgreSQL has written a
 * file, it re-matches the glob every poll and picks the file up when it appears.
 */
function mtailContainer(rendered: Rendered, images: ImageReferences, resources: PodResourcePlan): Container {
  return {
    name: containerNames.mtail,
    // FROM scratch, ENTRYPOINT /usr/bin/mtail: only args are given.
    image: images.mtail,
    ...containerLaunch(rendered.launches.mtail),
    ports: [metricsPort(portNames.mtailMetrics, rendered.launches.mtail)],
    resources: { limits: sortedRecord(resources.mtail.limits), requests: sortedRecord(resources.mtail.requests) },
    // The ConfigMap volume's own entries (..data, ..<timestamp>) are hidden files, which mtail's loader skips.
    volumeMounts: [
      dataReadOnly(rendered),
      { mountPath: rendered.placement.paths.mtailPrograms, name: "mtail-program", readOnly: true },
      { mountPath: pgbouncerLogDir(rendered), name: pgbouncerLogVolume, readOnly: true },
    ],
    // mtail has no health endpoint; its status page at / answers while the HTTP server runs.
    livenessProbe: { failureThreshold: 6, httpGet: { path: "/", port: portNames.mtailMetrics }, periodSeconds: 20, timeoutSeconds: 5 },
    securityContext: restrictedSecurityContext(postgresUid),
  };
}

function volumes(rendered: Rendered, names: KubernetesNames, resources: PodResourcePlan): Volume[] {
  const { paths: placed } = rendered.placement;
  return [
    {
      configMap: {
        defaultMode: readOnlyFileMode,
        items: [
          { key: "pg_hba.conf", path: path.posix.basename(paths.pgHbaConf) },
          { key: "pg_ident.conf", path: path.posix.basename(paths.pgIdentConf) },
          { key: "postgresql.conf", path: path.posix.basename(paths.postgresConf) },
        ],
        name: names.config,
      },
      name: "config",
    },
    {
      name: "bootstrap",
      secret: { defaultMode: readOnlyFileMode, items: [{ key: secretKeys.bootstrap, path: paths.bootstrapFile }], secretName: names.bootstrap },
    },
    {
      name: "pgbouncer-config",
      projected: {
        defaultMode: readOnlyFileMode,
        sources: [
          { configMap: { items: [{ key: "pgbouncer.ini", path: path.posix.basename(paths.pgbouncerIni) }], name: names.config } },
          { secret: { items: [{ key: secretKeys.userlist, path: path.posix.basename(placed.pgbouncerAuthFile) }], name: names.pgbouncerAuth } },
        ],
      },
    },
    exporterQueriesVolume(rendered, names),
    {
      configMap: { defaultMode: readOnlyFileMode, items: [{ key: mtailProgramFile, path: mtailProgramFile }], name: names.config },
      name: "mtail-program",
    },
    // Memory-backed: tmpfs pages count against the postgres container's memory limit, which budgets for them.
    { emptyDir: { medium: "Memory", sizeLimit: resources.shmSizeLimit }, name: "shm" },
    ...(resources.hugePagesBytes > 0 ? [{ emptyDir: { medium: "HugePages" }, name: "hugepages" }] : []),
    { emptyDir: {}, name: "run" },
    { emptyDir: {}, name: "tmp" },
    // PgBouncer's logfile, written by PgBouncer and read by mtail: node disk, kept under its cap by the loop beside
    // PgBouncer (configs/pgbouncer-log.ts). No sizeLimit: exceeding one evicts the whole pod.
    { emptyDir: {}, name: pgbouncerLogVolume },
    // Not in checksum/config: a renewed certificate reaches these files in place and is reloaded (tls-reloader), the
    // pod is not restarted.
    serverTlsVolume(names.tls),
    caVolume(names.tls, rendered.tls.files.ca),
  ];
}

/** postgres_exporter's queries file, with the CA projected beside it when the CA's path is below the queries' directory. */
function exporterQueriesVolume(rendered: Rendered, names: KubernetesNames): Volume {
  const queries = { key: "postgres-exporter-queries.yaml", path: path.posix.basename(rendered.placement.paths.postgresExporterQueries) };
  const ca = caProjection(queriesDir(rendered), rendered.tls.files.ca, names.tls);
  if (ca === null) return { configMap: { defaultMode: readOnlyFileMode, items: [queries], name: names.config }, name: "exporter-queries" };
  return { name: "exporter-queries", projected: { defaultMode: readOnlyFileMode, sources: [{ configMap: { items: [queries], name: names.config } }, ca] } };
}

export interface DatabaseWorkloadInput {
  readonly rendered: Rendered;
  readonly names: KubernetesNames;
  /** `app.kubernetes.io/instance` of every object. */
  readonly instance: string;
  readonly resources: PodResourcePlan;
  /** What each container runs (components/stack-images.ts, resolved). */
  readonly images: ImageReferences;
}

/** The StatefulSet's spec. Deterministic: the same input gives the same object, key order included. */
export function databaseStatefulSetSpec(input: DatabaseWorkloadInput): k8s.types.input.apps.v1.StatefulSetSpec {
  const { rendered, names, instance, resources, images } = input;
  const { spec } = rendered;
  const selector = selectorLabels(instance, "database");
  return {
    persistentVolumeClaimRetentionPolicy: { whenDeleted: "Retain", whenScaled: "Retain" },
    podManagementPolicy: "OrderedReady",
    // One instance: high availability is a job for an operator that does failover well (CloudNativePG), fed by the
    // same rendered settings; see ARCHITECTURE.md.
    replicas: 1,
    selector: { matchLabels: selector },
    serviceName: names.headless,
    template: {
      metadata: {
        annotations: sortedRecord({
          "checksum/config": configChecksum(rendered.files),
          "kubectl.kubernetes.io/default-container": containerNames.postgres,
        }),
        labels: objectLabels(instance, "database", spec.stack),
      },
      spec: {
        automountServiceAccountToken: false,
        containers: [
          postgresContainer(rendered, images, names, resources),
          postgresExporterContainer(rendered, images, names, resources),
          pgbouncerExporterContainer(rendered, images, names, resources),
          nodeExporterContainer(rendered, images, resources),
          mtailContainer(rendered, images, resources),
        ],
        // Service environment variables would only add noise (and names like PGBOUNCER_PORT) to every container.
        enableServiceLinks: false,
        // Native sidecars, started in this order before the regular containers: PgBouncer, then the TLS reloader.
        initContainers: [pgbouncerContainer(rendered, images, resources), reloaderContainer(rendered, images, names, resources)],
        securityContext: { ...restrictedPodSecurityContext(postgresUid), fsGroupChangePolicy: "OnRootMismatch" },
        // The preStop fast shutdown gets 100 s to write its shutdown checkpoint; SIGKILL comes after 120 s.
        terminationGracePeriodSeconds: 120,
        volumes: volumes(rendered, names, resources),
      },
    },
    updateStrategy: { type: "RollingUpdate" },
    // The claim template is immutable on a live StatefulSet: only the stable selector labels go on it.
    volumeClaimTemplates: [
      {
        metadata: { labels: selector, name: "data" },
        spec: {
          accessModes: ["ReadWriteOnce"],
          resources: { requests: { storage: k8sQuantity(spec.kubernetes.storageSizeBytes) } },
          ...(spec.kubernetes.storageClassName === null ? {} : { storageClassName: spec.kubernetes.storageClassName }),
        },
      },
    ],
  };
}
