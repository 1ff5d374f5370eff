/**
 * Requests and limits of the database pod on Kubernetes, derived from the memory plan. Pure data.
 *
 * The rule, in one paragraph: the memory plan sizes PostgreSQL from the node's RAM (shared_buffers 25 %,
 * effective_cache_size 75 % …), so the pod is meant to have the node to itself. PostgreSQL therefore gets the node's
 * share: what the kubelet leaves allocatable, minus an allowance for DaemonSets, minus the pre-allocated huge pages,
 * minus the sidecars, which are budgeted on their own and never taken out of PostgreSQL's share afterwards.
 * Memory request = limit for every container (a database is never overcommitted, and huge pages require a memory
 * or CPU request beside them anyway). CPU is requested, never limited: CFS throttling turns CPU bursts into
 * latency spikes, the opposite of what the P99 target asks for, and PostgreSQL already bounds its parallelism
 * with max_worker_processes.
 *
 * Why a node share and not "shared memory + a computed headroom": the memory cgroup also charges the page cache
 * of every file the pod reads. effective_cache_size = 75 % of RAM tells the planner that the OS caches the data
 * files; a limit sized to PostgreSQL's own allocations would cap that cache and make the planner's assumption false.
 * The share must still cover what PostgreSQL needs unconditionally; `postgresMemoryFloor` says what that is, and a
 * node too small for it is refused with the numbers.
 */
import { hugePageBytes } from "./hugepages";
import { bytes, humanBytes } from "./units";

const { KiB, MiB, GiB } = bytes;

/**
 * Bytes as a Kubernetes quantity in the form the API server prints back (its canonical binary-SI form): the largest
 * of Ti, Gi, Mi that divides exactly, so 200Gi stays 200Gi and 19776Mi stays 19776Mi. Sizes that are not whole MiB
 * are rounded up to the next MiB: a limit is never smaller than what was computed.
 */
export function k8sQuantity(value: number): string {
  if (!Number.isFinite(value) || value < 0) throw new Error(`cannot express ${value} bytes as a Kubernetes quantity`);
  const mib = Math.ceil(value / MiB);
  if (mib > 0 && mib % (1024 * 1024) === 0) return `${mib / (1024 * 1024)}Ti`;
  if (mib > 0 && mib % 1024 === 0) return `${mib / 1024}Gi`;
  return `${mib}Mi`;
}

/** Kubernetes' name for 2 MiB huge pages; `hugePages` in the memory plan counts pages of this size. */
export const hugePages2Mi = "hugepages-2Mi";

/**
 * Memory the kubelet keeps for the system (kube-reserved), GKE's published rule, which AKS used too before 1.29:
 * 25 % of the first 4 GiB, 20 % of the next 4, 10 % of the next 8, 6 % of the next 112, 2 % above 128 GiB.
 * EKS reserves less (255 MiB + 11 MiB per pod), so the pod fits there as well. Source: GKE "Node allocatable
 * resources" (cloud.google.com/kubernetes-engine/docs/concepts/plan-node-sizes).
 */
export function kubeReservedMemory(nodeMemoryBytes: number): number {
  const bands: ReadonlyArray<readonly [number, number]> = [
    [4 * GiB, 0.25],
    [4 * GiB, 0.2],
    [8 * GiB, 0.1],
    [112 * GiB, 0.06],
    [Infinity, 0.02],
  ];
  let left = nodeMemoryBytes;
  let reserved = 0;
  for (const [size, fraction] of bands) {
    const part = Math.min(left, size);
    reserved += part * fraction;
    left -= part;
    if (left <= 0) break;
  }
  return Math.ceil(reserved / MiB) * MiB;
}

/** The kubelet's default hard eviction threshold `memory.available<100Mi`, also subtracted from allocatable. */
export const evictionThresholdBytes = 100 * MiB;

/**
 * CPU the kubelet keeps for the system, in millicores, same GKE rule: 6 % of the first core, 1 % of the second,
 * 0.5 % of the next two, 0.25 % of every core above four.
 */
export function kubeReservedCpuMillis(cpus: number): number {
  const bands: ReadonlyArray<readonly [number, number]> = [
    [1, 60],
    [1, 10],
    [2, 5],
    [Infinity, 2.5],
  ];
  let left = cpus;
  let reserved = 0;
  for (const [count, perCore] of bands) {
    const part = Math.min(left, count);
    reserved += part * perCore;
    left -= part;
    if (left <= 0) break;
  }
  return Math.ceil(reserved);
}

/**
 * Room for the DaemonSets every node runs besides our pod (kube-proxy, the CNI agent, a log shipper, the cluster's
 * own node_exporter if it runs one): together typically 300–500 MiB and a few hundred millicores. The stack's own
 * node_exporter runs in the database pod and is budgeted with the sidecars below, not here. Overridable per cluster.
 */
export const defaultDaemonSetMemoryBytes = 512 * MiB;
export const defaultDaemonSetCpuMillis = 300;

/**
 * /dev/shm for PostgreSQL's dynamic shared memory (dynamic_shared_memory_type = posix). A parallel HNSW build keeps
 * its whole graph there, up to maintenance_work_mem (pgvector #453: "could not resize shared memory segment … No
 * space left on device" when /dev/shm is smaller); parallel queries add their own short-lived segments, which ran
 * fine in Docker's default 64 MB, so that much comes on top.
 */
export function shmSizeBytes(maintenanceWorkMemBytes: number): number {
  return Math.ceil(maintenanceWorkMemBytes / MiB) * MiB + 64 * MiB;
}

/**
 * Private memory of one PostgreSQL backend before it sorts or hashes anything (catalog and plan caches, its stack):
 * about 2 MiB with huge pages (Andres Freund, "Measuring the Memory Overhead of a Postgres Connection", 2020).
 */
export const backendBaselineBytes = 2 * MiB;

/**
 * PgBouncer: a fixed 24 MiB (libevent, TLS contexts, DNS cache, the admin console: 11.7 MiB measured with no client)
 * plus 32 KiB per client slot of max_client_conn. Every client speaks TLS (client_tls_sslmode = require), and a TLS client costs PgBouncer 1.24.1
 * about 24 KiB (OpenSSL's per-connection state and buffers) against about 1.2 KiB in plain text — measured on the perf
 * cluster: 11.7 MiB with no client, 58.4 MiB with 2,000 idle verify-full clients (tests/real/pgbouncer-tls-memory
 * .test.ts). 32 KiB leaves room for a packet in flight (pkt_buf, 4 KiB) and the prepared statements tracked per
 * client; PgBouncer's memory cannot grow past max_client_conn clients. At the default 2,000 slots: 86.5 MiB, about
 * 50 % above the measured 58.4 MiB.
 */
export function pgbouncerMemoryBytes(maxClientConn: number): number {
  return Math.ceil((24 * MiB + maxClientConn * 32 * KiB) / MiB) * MiB;
}

/**
 * postgres_exporter 0.17 runs at 20–40 MiB; a scrape holds the stat_statements top 100 and the custom queries'
 * rows in memory at once, so the limit leaves three times that.
 */
export const postgresExporterMemoryBytes = 128 * MiB;
/** pgbouncer_exporter 0.10 runs at 10–20 MiB: a handful of SHOW commands per scrape. */
export const pgbouncerExporterMemoryBytes = 64 * MiB;
/**
 * node_exporter 1.9 with the six collectors of configs/exporters.ts: 20 MiB resident on the perf cluster while
 * Prometheus scraped it every second (Debian 13's 1.9.0). A scrape reads a few /proc files and statfs()es the mounts
 * it sees, nothing that grows with the database; twice the measurement is the limit.
 */
export const nodeExporterMemoryBytes = 40 * MiB;
/**
 * mtail 3.0 with the rendered program (one regular expression, a counter and a histogram without labels): 19 MiB
 * resident on the perf cluster (Debian 13's 3.0.9). Lines are streamed, so memory does not grow with the log;
 * the rest is room for the Go runtime and a burst of slow-statement lines.
 */
export const mtailMemoryBytes = 48 * MiB;
/**
 * The TLS reloader (components/kubernetes/tls-spec.ts): a shell loop from the postgres image that hashes the mounted
 * certificate every 30 s and, when it changed, runs psql twice (pg_reload_conf() on the socket, RELOAD on PgBouncer's
 * console). dash idles at about 1 MiB; psql with libpq and OpenSSL loaded peaks near 10 MiB. Not measured yet.
 */
export const tlsReloaderMemoryBytes = 32 * MiB;

/**
 * CPU requests of the sidecars (never limited). PgBouncer is single-threaded: it cannot use more than one core.
 * node_exporter works only when scraped; mtail runs one regex per log line, and only slow statements are logged.
 */
export const sidecarCpuMillis = { pgbouncer: 250, postgresExporter: 50, pgbouncerExporter: 50, nodeExporter: 50, mtail: 50, tlsReloader: 10 } as const;

/** PostgreSQL's own CPU request never goes below this, however small the node. */
const minimumPostgresCpuMillis = 250;

/**
 * The memory plan's numbers the pod sizing reads (a RenderedMemory has them all; declared here so this file does
 * not import rendered.ts, which holds the pod plan this file computes).
 */
export interface SizingMemory {
  readonly nodeMemoryBytes: number;
  readonly maintenanceWorkMemBytes: number;
  /** PostgreSQL's whole shared memory, in the pod's cgroup when huge pages are off. */
  readonly sharedMemoryBytes: number;
  /** 2 MiB huge pages the pod requests (= limit); 0 when huge_pages = off. */
  readonly hugePages: number;
}

export interface SizingInput {
  readonly memory: SizingMemory;
  readonly cpus: number;
  readonly maxConnections: number;
  readonly maxClientConn: number;
  /**
   * The largest maintenance_work_mem an index build SETs for its session (the index plan's build settings): the
   * graph of a parallel build of that size goes to /dev/shm. Defaults to memory.maintenanceWorkMemBytes.
   */
  readonly buildMemoryBytes?: number;
  /** Defaults to `defaultDaemonSetMemoryBytes`. */
  readonly daemonSetMemoryBytes?: number;
  /** Defaults to `defaultDaemonSetCpuMillis`. */
  readonly daemonSetCpuMillis?: number;
}

/** A container's `resources`, quantities as Kubernetes writes them. */
export interface ContainerResources {
  readonly requests: Readonly<Record<string, string>>;
  readonly limits: Readonly<Record<string, string>>;
}

export interface PodResourcePlan {
  readonly postgres: ContainerResources;
  readonly pgbouncer: ContainerResources;
  readonly postgresExporter: ContainerResources;
  readonly pgbouncerExporter: ContainerResources;
  readonly nodeExporter: ContainerResources;
  readonly mtail: ContainerResources;
  /** The native sidecar that reloads PostgreSQL and PgBouncer when the mounted certificate changes. */
  readonly tlsReloader: ContainerResources;
  /** sizeLimit of the memory-backed /dev/shm, bytes and as a quantity. */
  readonly shmBytes: number;
  readonly shmSizeLimit: string;
  /** Bytes of huge pages requested (= limit); 0 when huge_pages = off. */
  readonly hugePagesBytes: number;
  /** The numbers behind PostgreSQL's memory limit, for the stack outputs and for people. */
  readonly budget: MemoryBudget;
}

export interface MemoryBudget {
  readonly nodeMemoryBytes: number;
  readonly kubeReservedBytes: number;
  readonly evictionThresholdBytes: number;
  readonly daemonSetBytes: number;
  readonly hugePagesBytes: number;
  readonly sidecarBytes: number;
  /** PostgreSQL container memory request = limit. */
  readonly postgresBytes: number;
  /** What PostgreSQL needs inside that limit whatever the load (see `postgresMemoryFloor`). */
  readonly postgresFloorBytes: number;
  /** postgresBytes − floor: room for work_mem allocations and the page cache. */
  readonly workHeadroomBytes: number;
  readonly postgresCpuMillis: number;
}

/**
 * What must fit inside PostgreSQL's memory limit whatever the load: shared memory when it is not on huge pages
 * (huge pages are charged to the hugetlb cgroup instead), the /dev/shm of a parallel HNSW build (tmpfs pages are
 * charged to the writer's memory cgroup), one maintenance_work_mem for a serial build or VACUUM in process memory,
 * and the baseline of every allowed connection.
 */
export function postgresMemoryFloor(memory: SizingMemory, maxConnections: number, buildMemoryBytes = memory.maintenanceWorkMemBytes): number {
  const sharedInCgroup = memory.hugePages > 0 ? 0 : memory.sharedMemoryBytes;
  const maintenance = Math.max(memory.maintenanceWorkMemBytes, buildMemoryBytes);
  return sharedInCgroup + shmSizeBytes(maintenance) + maintenance + maxConnections * backendBaselineBytes;
}

function memoryOnly(bytesValue: number): ContainerResources {
  const quantity = k8sQuantity(bytesValue);
  return { requests: { memory: quantity }, limits: { memory: quantity } };
}

function withCpu(resources: ContainerResources, millis: number): ContainerResources {
  return { requests: { cpu: `${millis}m`, ...resources.requests }, limits: resources.limits };
}

/** What the pod's memory is made of on a node: what the node keeps, the sidecars, and PostgreSQL's share. */
interface MemoryShare {
  readonly daemonSetBytes: number;
  readonly hugePagesBytes: number;
  readonly pgbouncerBytes: number;
  readonly sidecarBytes: number;
  readonly kubeReservedBytes: number;
  readonly postgresBytes: number;
  readonly maintenanceBytes: number;
  readonly shmBytes: number;
  readonly floor: number;
}

function memoryShare(input: SizingInput): MemoryShare {
  const { memory } = input;
  const daemonSetBytes = input.daemonSetMemoryBytes ?? defaultDaemonSetMemoryBytes;
  const hugePagesBytes = memory.hugePages * hugePageBytes;
  const pgbouncerBytes = pgbouncerMemoryBytes(input.maxClientConn);
  const sidecarBytes =
    pgbouncerBytes + postgresExporterMemoryBytes + pgbouncerExporterMemoryBytes + nodeExporterMemoryBytes + mtailMemoryBytes + tlsReloaderMemoryBytes;
  const kubeReservedBytes = kubeReservedMemory(memory.nodeMemoryBytes);
  // The kubelet subtracts pre-allocated huge pages from the node's allocatable memory.
  const share = memory.nodeMemoryBytes - kubeReservedBytes - evictionThresholdBytes - daemonSetBytes - hugePagesBytes - sidecarBytes;
  const maintenanceBytes = Math.max(memory.maintenanceWorkMemBytes, input.buildMemoryBytes ?? 0);
  return {
    daemonSetBytes,
    hugePagesBytes,
    pgbouncerBytes,
    sidecarBytes,
    kubeReservedBytes,
    postgresBytes: Math.floor(share / MiB) * MiB,
    maintenanceBytes,
    shmBytes: shmSizeBytes(maintenanceBytes),
    floor: postgresMemoryFloor(memory, input.maxConnections, maintenanceBytes),
  };
}

/**
 * Why the node cannot hold PostgreSQL's floor next to everything else, in words naming node.memory; undefined when it
 * can. configs/spec.ts asks this for every Kubernetes stack, so `podResources` never refuses an accepted stack.
 */
export function podResourcesProblem(input: SizingInput): string | undefined {
  const { memory } = input;
  if (!Number.isInteger(memory.hugePages) || memory.hugePages < 0) return `memory.hugePages is ${memory.hugePages}; it must be a whole number of 2 MiB pages, 0 or more`;
  const m = memoryShare(input);
  if (m.postgresBytes >= m.floor) return undefined;
  const needs = [
    `/dev/shm ${humanBytes(m.shmBytes)} for parallel index builds`,
    `maintenance_work_mem ${humanBytes(m.maintenanceBytes)}`,
    `${input.maxConnections} connections × ${humanBytes(backendBaselineBytes)}`,
    ...(memory.hugePages > 0 ? [] : [`shared memory ${humanBytes(memory.sharedMemoryBytes)} (huge_pages = off)`]),
  ];
  return (
    `node.memory ${humanBytes(memory.nodeMemoryBytes)} leaves PostgreSQL ${humanBytes(Math.max(0, m.postgresBytes))} on Kubernetes ` +
    `(after ${humanBytes(m.kubeReservedBytes)} kube-reserved, ${humanBytes(evictionThresholdBytes)} eviction threshold, ` +
    `${humanBytes(m.daemonSetBytes)} for DaemonSets, ${humanBytes(m.hugePagesBytes)} of huge pages and ${humanBytes(m.sidecarBytes)} for the sidecars), ` +
    `below the ${humanBytes(m.floor)} it needs (${needs.join(", ")}); use a larger node or lower maintenance_work_mem or max_connections`
  );
}

/** The pod's requests and limits; throws when the node cannot hold PostgreSQL's floor (`podResourcesProblem`). */
export function podResources(input: SizingInput): PodResourcePlan {
  const problem = podResourcesProblem(input);
  if (problem !== undefined) throw new Error(problem);
  const { memory } = input;
  const daemonSetCpu = input.daemonSetCpuMillis ?? defaultDaemonSetCpuMillis;
  const { hugePagesBytes, pgbouncerBytes, postgresBytes, shmBytes, kubeReservedBytes, daemonSetBytes, sidecarBytes, floor } = memoryShare(input);
  const sidecarCpu = Object.values(sidecarCpuMillis).reduce((a, b) => a + b, 0);
  const postgresCpuMillis = Math.max(minimumPostgresCpuMillis, input.cpus * 1000 - kubeReservedCpuMillis(input.cpus) - daemonSetCpu - sidecarCpu);

  const postgresMemory = memoryOnly(postgresBytes);
  const postgres: ContainerResources =
    hugePagesBytes > 0
      ? {
          // Kubernetes requires hugepages request = limit, and a memory (or CPU) request beside them.
          requests: { cpu: `${postgresCpuMillis}m`, ...postgresMemory.requests, [hugePages2Mi]: k8sQuantity(hugePagesBytes) },
          limits: { ...postgresMemory.limits, [hugePages2Mi]: k8sQuantity(hugePagesBytes) },
        }
      : withCpu(postgresMemory, postgresCpuMillis);
  return {
    postgres,
    pgbouncer: withCpu(memoryOnly(pgbouncerBytes), sidecarCpuMillis.pgbouncer),
    postgresExporter: withCpu(memoryOnly(postgresExporterMemoryBytes), sidecarCpuMillis.postgresExporter),
    pgbouncerExporter: withCpu(memoryOnly(pgbouncerExporterMemoryBytes), sidecarCpuMillis.pgbouncerExporter),
    nodeExporter: withCpu(memoryOnly(nodeExporterMemoryBytes), sidecarCpuMillis.nodeExporter),
    mtail: withCpu(memoryOnly(mtailMemoryBytes), sidecarCpuMillis.mtail),
    tlsReloader: withCpu(memoryOnly(tlsReloaderMemoryBytes), sidecarCpuMillis.tlsReloader),
    shmBytes,
    shmSizeLimit: k8sQuantity(shmBytes),
    hugePagesBytes,
    budget: {
      nodeMemoryBytes: memory.nodeMemoryBytes,
      kubeReservedBytes,
      evictionThresholdBytes,
      daemonSetBytes,
      hugePagesBytes,
      sidecarBytes,
      postgresBytes,
      postgresFloorBytes: floor,
      workHeadroomBytes: postgresBytes - floor,
      postgresCpuMillis,
    },
  };
}
