/**
 * The memory plan: PostgreSQL's memory settings sized from node RAM, PGTune style (one small function per setting),
 * reproducing the tuning guide's "Memory Sizing Guidelines" table exactly for 16/32/64/128 GB and the same fractions,
 * rounded down to whole MB, for every other size. Floors keep tiny nodes at PostgreSQL's own defaults; caps keep huge
 * nodes from sizing one setting past the point where it helps.
 *
 * The guide's table is in binary units (its "32GB" node is 32 GiB and PostgreSQL's "8GB" is 8 GiB), so the rule is
 * exact for those rows.
 */
import { hugePageBytes, hugePagesFor, sharedMemoryEstimate, sharedMemorySettings, userSetting } from "./hugepages";
import type { HugePagesMode, StackSpec } from "./stack-spec";
import { bytes, humanBytes, parseBytes, pgMemory } from "./units";

const { KiB, MiB, GiB } = bytes;

/** Round down to whole MiB, the unit the guide's rule is stated in. */
function wholeMiB(value: number): number {
  return Math.floor(value / MiB) * MiB;
}

function clamp(value: number, floor: number, cap: number): number {
  return Math.min(cap, Math.max(floor, value));
}

/**
 * Guide row "shared_buffers = 8GB -- 25% of total RAM" (16→4GB, 32→8GB, 64→16GB, 128→32GB).
 * Floor 128MB: PostgreSQL's own default. Cap 64GB (reached at 256 GiB): beyond it the OS page cache (counted in
 * effective_cache_size) serves reads as well without double buffering, while a bigger pool makes every
 * DROP/TRUNCATE scan more buffers, every checkpoint write more, and the exact huge page reservation larger.
 */
export function sharedBuffers(ram: number): number {
  return clamp(wholeMiB(ram / 4), 128 * MiB, 64 * GiB);
}

/**
 * Guide row "effective_cache_size = 24GB -- 75% of total RAM" (16→12GB, 32→24GB, 64→48GB, 128→96GB).
 * It is only a planner estimate of shared_buffers plus the OS cache, so it is never capped; it is never below
 * shared_buffers (which would claim the cache is smaller than the buffer pool).
 */
export function effectiveCacheSize(ram: number): number {
  return Math.max(wholeMiB((ram * 3) / 4), sharedBuffers(ram));
}

/**
 * Guide row "work_mem = 256MB -- For vector operations": 1/128 of RAM (16→128MB, 32→256MB, 64→512MB, 128→1GB).
 * Floor 4MB: PostgreSQL's default. Cap 1GB (the 128GB row): work_mem is per sort or hash node of every query
 * (× hash_mem_multiplier for hashes), so past 1GB the worst case grows faster than any single vector query gains;
 * an ORDER BY … LIMIT k nearest-neighbour query keeps only k rows in its sort.
 */
export function workMem(ram: number): number {
  return clamp(wholeMiB(ram / 128), 4 * MiB, GiB);
}

/**
 * Guide row "maintenance_work_mem = 2GB -- Critical for vector index builds": 1/16 of RAM
 * (16→1GB, 32→2GB, 64→4GB, 128→8GB). Floor 64MB: PostgreSQL's default. Cap 16GB (reached at 256 GiB): an HNSW
 * graph needs rows × (4·d + 8) × 1.3 bytes (pgvector #745), so 16GB keeps ~3M 1536-d or ~5M 768-d vectors in memory
 * during a build; a parallel build also places that much in /dev/shm, which counts against the pod's memory limit.
 */
export function maintenanceWorkMem(ram: number): number {
  return clamp(wholeMiB(ram / 16), 64 * MiB, 16 * GiB);
}

/**
 * Not in the guide. PostgreSQL 17 removed vacuum's silent 1GB limit on dead-tuple memory, so with the default
 * autovacuum_work_mem = -1 each of the 3 autovacuum workers may take all of maintenance_work_mem (8GB on the 128GB
 * row, 24GB together). 1GB keeps the pre-17 bound; PostgreSQL 17's TID store fits far more dead tuples in it.
 */
export function autovacuumWorkMem(maintenanceWorkMemBytes: number): number {
  return Math.min(maintenanceWorkMemBytes, GiB);
}

/**
 * WAL buffers: PostgreSQL's own automatic rule (wal_buffers = -1) is 1/32 of shared_buffers, at least 64kB and at
 * most one 16MB WAL segment; written out explicitly so it is visible and counted in the huge page estimate.
 * Every node of 1 GiB or more (shared_buffers ≥ 256MB) gets 8–16MB, which bulk vector inserts fill quickly.
 */
export function walBuffers(sharedBuffersBytes: number): number {
  return clamp(Math.floor(sharedBuffersBytes / 32 / 8192) * 8192, 64 * 1024, 16 * MiB);
}

/** Guide: "temp_buffers = 128MB -- Temporary operations" (per session, only used by temporary tables). */
export const tempBuffersBytes = 128 * MiB;
/** Guide: "hash_mem_multiplier = 2.0 -- Increase hash table memory". */
export const hashMemMultiplier = 2.0;
/** Guide: "dynamic_shared_memory_type = posix -- Optimize shared memory" (parallel HNSW builds keep the graph there). */
export const dynamicSharedMemoryType = "posix";

/**
 * Guide: "huge_pages = try". The stack key postgres.hugePages chooses; where the pages are known to exist — a
 * Kubernetes pod requesting them, a Docker host that has reserved them (docker.hostHugePages) — `try` becomes `on`,
 * so a shortfall fails at start instead of silently using 4 kB pages.
 */
export function hugePagesSetting(spec: StackSpec): HugePagesMode {
  const mode = spec.postgres.hugePages;
  if (mode !== "try") return mode;
  // Kubernetes requests exactly the computed hugepages-2Mi, so the pod either gets them or is not scheduled:
  // `try` there could only hide a mistake (PostgreSQL bug #17757: pages visible on the node but not granted).
  if (spec.target === "kubernetes") return "on";
  return spec.target === "docker" && spec.docker.hostHugePages ? "on" : mode;
}

/** The memory settings as they will be written in postgresql.conf, in PostgreSQL's own units. */
export interface RenderedMemorySettings {
  readonly shared_buffers: string;
  readonly effective_cache_size: string;
  readonly work_mem: string;
  readonly maintenance_work_mem: string;
  readonly autovacuum_work_mem: string;
  readonly temp_buffers: string;
  readonly wal_buffers: string;
  readonly hash_mem_multiplier: string;
  readonly dynamic_shared_memory_type: string;
  readonly huge_pages: HugePagesMode;
}

export interface MemoryPlan {
  readonly ramBytes: number;
  readonly sharedBuffersBytes: number;
  readonly effectiveCacheSizeBytes: number;
  readonly workMemBytes: number;
  readonly maintenanceWorkMemBytes: number;
  readonly autovacuumWorkMemBytes: number;
  readonly tempBuffersBytes: number;
  readonly walBuffersBytes: number;
  readonly hashMemMultiplier: number;
  readonly hugePagesMode: HugePagesMode;
  /** PostgreSQL's whole main shared memory segment (buffers, WAL buffers, SLRUs, lock tables, per-backend state …). */
  readonly sharedMemoryBytes: number;
  /** 2 MiB huge pages the server needs for that segment (PostgreSQL's `shared_memory_size_in_huge_pages`). */
  readonly hugePagesNeeded: number;
  /** Pages to reserve (Kubernetes `hugepages-2Mi` request = limit): hugePagesNeeded, or 0 when huge_pages = off. */
  readonly hugePages: number;
  readonly hugePagesBytes: number;
  /** shared_buffers + max_connections × work_mem × hash_mem_multiplier + maintenance_work_mem. */
  readonly worstCaseBytes: number;
  /** The same with only PgBouncer's pool (default_pool_size + reserve_pool_size) running queries at once. */
  readonly pooledWorstCaseBytes: number;
  readonly rendered: RenderedMemorySettings;
  readonly warnings: readonly string[];
}

/**
 * A memory setting the user overrode in postgres.settings wins, so the plan describes the server that will run.
 * A bare number is in the setting's own unit, as PostgreSQL reads it (kB for work_mem, 8kB blocks for temp_buffers).
 */
function userBytes(spec: StackSpec, name: string, fallback: number, bareUnit: number): number {
  const text = userSetting(spec, name);
  if (text === undefined) return fallback;
  if (/^\d+$/.test(text)) return Number(text) * bareUnit;
  const parsed = parseBytes(text);
  return parsed.ok ? parsed.value : fallback;
}

function userNumber(spec: StackSpec, name: string, fallback: number): number {
  const text = userSetting(spec, name);
  const value = text === undefined ? NaN : Number(text);
  return Number.isFinite(value) ? value : fallback;
}

/** Render a real number the way postgresql.conf shows it: 2 → "2.0", 1.5 → "1.5". */
function pgReal(value: number): string {
  return Number.isInteger(value) ? value.toFixed(1) : String(value);
}

function worstCaseWarning(spec: StackSpec, plan: Omit<MemoryPlan, "warnings" | "rendered">): string {
  const conns = spec.postgres.maxConnections;
  const pool = spec.pgbouncer.defaultPoolSize + spec.pgbouncer.reservePoolSize;
  const room = plan.ramBytes - plan.sharedBuffersBytes - plan.maintenanceWorkMemBytes;
  const fittingWorkMem = Math.max(0, Math.floor(room / (conns * plan.hashMemMultiplier) / MiB) * MiB);
  const guideRow = [16, 32, 64, 128].some((g) => plan.ramBytes === g * GiB);
  const pooledFits = plan.pooledWorstCaseBytes <= plan.ramBytes;
  return [
    `memory worst case ${humanBytes(plan.worstCaseBytes)} exceeds node RAM ${humanBytes(plan.ramBytes)}:`,
    `shared_buffers ${pgMemory(plan.sharedBuffersBytes)} + max_connections ${conns} × work_mem ${pgMemory(plan.workMemBytes)}`,
    `× hash_mem_multiplier ${pgReal(plan.hashMemMultiplier)} + maintenance_work_mem ${pgMemory(plan.maintenanceWorkMemBytes)}.`,
    guideRow
      ? `These are the tuning guide's own values for a ${plan.ramBytes / GiB}GB node; the stack keeps them as the guide gives them.`
      : `These follow the tuning guide's fractions of RAM.`,
    `PgBouncer's pool bounds how many queries run at once (default_pool_size ${spec.pgbouncer.defaultPoolSize} + reserve_pool_size`,
    `${spec.pgbouncer.reservePoolSize} = ${pool} server connections), which gives ${humanBytes(plan.pooledWorstCaseBytes)}`,
    pooledFits ? `and fits;` : `and still does not fit;`,
    `the rest of max_connections is kept for maintenance and monitoring. It is a bound, not the usual case: a`,
    `nearest-neighbour query sorts only LIMIT k rows and uses a small part of work_mem, but one large sort or hash`,
    `per connection at once would exhaust RAM. To make the worst case fit, lower work_mem to ${pgMemory(fittingWorkMem)}`,
    `(postgres.settings.work_mem) or lower postgres.maxConnections and pgbouncer.defaultPoolSize.`,
  ].join(" ");
}

/** The memory plan for a stack: settings, shared memory and huge pages, worst case and its warning. */
export function memoryPlan(spec: StackSpec): MemoryPlan {
  const ram = spec.node.memoryBytes;
  const sharedBuffersBytes = sharedBuffers(ram);
  const walBuffersBytes = walBuffers(sharedBuffersBytes);
  const workMemBytes = userBytes(spec, "work_mem", workMem(ram), KiB);
  const maintenanceWorkMemBytes = userBytes(spec, "maintenance_work_mem", maintenanceWorkMem(ram), KiB);
  const autovacuumWorkMemBytes =
    userSetting(spec, "autovacuum_work_mem") === "-1" ? maintenanceWorkMemBytes : userBytes(spec, "autovacuum_work_mem", autovacuumWorkMem(maintenanceWorkMemBytes), KiB);
  const multiplier = userNumber(spec, "hash_mem_multiplier", hashMemMultiplier);
  const sharedMemoryBytes = sharedMemoryEstimate({
    sharedBuffersBytes,
    walBuffersBytes,
    ...sharedMemorySettings(spec),
  });
  const hugePagesNeeded = hugePagesFor(sharedMemoryBytes);
  const hugePagesMode = hugePagesSetting(spec);
  const hugePages = hugePagesMode === "off" ? 0 : hugePagesNeeded;
  const pool = spec.pgbouncer.defaultPoolSize + spec.pgbouncer.reservePoolSize;
  const base = {
    ramBytes: ram,
    sharedBuffersBytes,
    effectiveCacheSizeBytes: userBytes(spec, "effective_cache_size", effectiveCacheSize(ram), 8 * KiB),
    workMemBytes,
    maintenanceWorkMemBytes,
    autovacuumWorkMemBytes,
    tempBuffersBytes: userBytes(spec, "temp_buffers", tempBuffersBytes, 8 * KiB),
    walBuffersBytes,
    hashMemMultiplier: multiplier,
    hugePagesMode,
    sharedMemoryBytes,
    hugePagesNeeded,
    hugePages,
    hugePagesBytes: hugePages * hugePageBytes,
    worstCaseBytes: sharedBuffersBytes + spec.postgres.maxConnections * workMemBytes * multiplier + maintenanceWorkMemBytes,
    pooledWorstCaseBytes: sharedBuffersBytes + Math.min(pool, spec.postgres.maxConnections) * workMemBytes * multiplier + maintenanceWorkMemBytes,
  };
  const warnings = base.worstCaseBytes > ram ? [worstCaseWarning(spec, base)] : [];
  return {
    ...base,
    rendered: {
      shared_buffers: pgMemory(base.sharedBuffersBytes),
      effective_cache_size: pgMemory(base.effectiveCacheSizeBytes),
      work_mem: pgMemory(base.workMemBytes),
      maintenance_work_mem: pgMemory(base.maintenanceWorkMemBytes),
      autovacuum_work_mem: pgMemory(base.autovacuumWorkMemBytes),
      temp_buffers: pgMemory(base.tempBuffersBytes),
      wal_buffers: pgMemory(base.walBuffersBytes),
      hash_mem_multiplier: pgReal(base.hashMemMultiplier),
      dynamic_shared_memory_type: dynamicSharedMemoryType,
      huge_pages: base.hugePagesMode,
    },
    warnings,
  };
}
