/**
 * How much main shared memory PostgreSQL 17 allocates, and so how many 2 MiB huge pages it needs.
 *
 * shared_buffers is most of it, not all of it. PostgreSQL sizes the segment in `CalculateShmemSize()` (ipci.c) as the
 * sum of every subsystem's request; this file models the ones that matter, each from the settings that size it:
 *
 *   buffer pool     shared_buffers blocks + per-buffer descriptor, I/O condition variable, checkpoint sort item,
 *                   checkpointer request slot and buffer-mapping hash entry
 *   WAL buffers     wal_buffers + one xlblocks pointer per page
 *   SLRU caches     PostgreSQL 17 sizes the transaction-status, subtransaction and commit-timestamp caches
 *                   from shared_buffers (shared_buffers/512 blocks, 16 … 1024, in banks of 16)
 *   lock tables     max_locks_per_transaction × (MaxBackends + max_prepared_transactions) LOCK entries and twice as
 *                   many PROCLOCK entries, +10 %; the predicate-lock tables the same way with
 *                   max_pred_locks_per_transaction, plus the serializable-transaction pools
 *   per process     PGPROC, semaphore, backend status (+ track_activity_query_size), proc array, signal slots …
 *                   for every slot of MaxBackends = max_connections + autovacuum_max_workers + 1 +
 *                   max_worker_processes + max_wal_senders, plus the auxiliary processes
 *   extensions      pg_stat_statements' hash table (pg_stat_statements.max entries)
 *   fixed           everything else: 100000 bytes of slack, the shmem index, LWLocks, statistics, sinval queue …
 *
 * Hash tables are sized with dynahash's own `hash_estimate_size()` (power-of-two bucket arrays, elements allocated
 * in batches), reproduced below. The structure sizes are PostgreSQL 17 on 64-bit Linux; the per-process, per-prepared
 * transaction, per-worker and fixed remainders were calibrated on the real 17.12 server, varying one setting at a time
 * (shared_buffers 128MB … 64GB, max_connections 20 … 10000, workers, lock and statement table sizes) and reading the
 * exact segment size with `postgres -C shared_memory_size_in_huge_pages -c huge_page_size=1kB` (size/1024 + 1).
 * The model lands within 80 kB of PostgreSQL's figure on every calibration point (tests/unit/hugepages.test.ts keeps
 * the record; tests/real/hugepages.test.ts re-checks the stack's renderings against the live binary). A margin of
 * 1 MiB + 0.2 % on top keeps the estimate at or above PostgreSQL's own figure.
 */
import type { StackSpec } from "./stack-spec";
import { bytes } from "./units";

const { MiB } = bytes;

/** The settings, besides shared_buffers and wal_buffers, that size PostgreSQL's shared memory. */
export interface SharedMemorySettings {
  readonly maxConnections: number;
  readonly autovacuumMaxWorkers: number;
  readonly maxWorkerProcesses: number;
  readonly maxWalSenders: number;
  readonly maxPreparedTransactions: number;
  readonly maxLocksPerTransaction: number;
  readonly maxPredLocksPerTransaction: number;
  /** Bytes of query text kept per backend for pg_stat_activity. */
  readonly trackActivityQuerySize: number;
  readonly pgStatStatementsMax: number;
}

export interface SharedMemoryInputs extends SharedMemorySettings {
  readonly sharedBuffersBytes: number;
  readonly walBuffersBytes: number;
}

/**
 * PostgreSQL's defaults for these, kept: 3 autovacuum workers, 10 WAL senders (room for a CloudNativePG replica
 * later), no prepared transactions, 64 locks per transaction. max_worker_processes is the one sized from cpus:
 * parallel query and parallel HNSW builds take their workers from it, so it is max_parallel_workers (= cpus) plus
 * room for the logical replication launcher and extension workers, never below the default 8.
 */
export function sharedMemorySettings(spec: StackSpec): SharedMemorySettings {
  const user = (name: string, fallback: number): number => {
    const text = userSetting(spec, name);
    const value = text === undefined ? NaN : parseCountOrBytes(text);
    return Number.isFinite(value) ? value : fallback;
  };
  return {
    maxConnections: spec.postgres.maxConnections,
    autovacuumMaxWorkers: 3,
    maxWorkerProcesses: Math.max(8, spec.node.cpus + 4),
    maxWalSenders: 10,
    maxPreparedTransactions: 0,
    maxLocksPerTransaction: 64,
    maxPredLocksPerTransaction: 64,
    trackActivityQuerySize: user("track_activity_query_size", 4096),
    pgStatStatementsMax: user("pg_stat_statements.max", 5000),
  };
}

/**
 * A postgres.settings value as PostgreSQL reads it, without postgresql.conf quoting (`'x'` → `x`, `''` → `'`);
 * undefined when the user did not set it. Settings the user sets win over the stack's, so sizing follows them.
 */
export function userSetting(spec: StackSpec, name: string): string | undefined {
  const value = spec.postgres.settings[name];
  if (value === undefined) return undefined;
  const quoted = /^'(.*)'$/s.exec(value.trim());
  return quoted ? quoted[1].replace(/''/g, "'") : value.trim();
}

/** "4096", "4kB", "1MB" → bytes (track_activity_query_size's unit is bytes); "5000" → 5000 (pg_stat_statements.max). */
function parseCountOrBytes(text: string): number {
  const match = /^(\d+)\s*(B|kB|MB)?$/.exec(text);
  if (!match) return NaN;
  return Number(match[1]) * ({ B: 1, kB: 1024, MB: MiB } as Record<string, number>)[match[2] ?? "B"];
}

// ---- dynahash ------------------------------------------------------------------------------------------------

const maxAlign = (n: number): number => Math.ceil(n / 8) * 8;

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** dynahash's DEF_SEGSIZE and DEF_DIRSIZE; HASHHDR with its 32 free lists; HASHELEMENT (next pointer + hash). */
const segmentSize = 256;
const directorySize = 256;
const hashHeaderBytes = 896;
const hashElementBytes = 16;

/** `choose_nelem_alloc()`: elements are allocated in batches of at least 32, in power-of-two byte chunks. */
function elementsPerAlloc(entryBytes: number): number {
  const elementBytes = hashElementBytes + maxAlign(entryBytes);
  let allocBytes = 32 * 4;
  let n: number;
  do {
    allocBytes *= 2;
    n = Math.floor(allocBytes / elementBytes);
  } while (n < 32);
  return n;
}

/** dynahash's `hash_estimate_size(num_entries, entrysize)`. */
export function hashEstimateSize(entries: number, entryBytes: number): number {
  const buckets = nextPow2(entries);
  const segments = nextPow2(Math.floor((buckets - 1) / segmentSize) + 1);
  let dirEntries = directorySize;
  while (dirEntries < segments) dirEntries *= 2;
  const perAlloc = elementsPerAlloc(entryBytes);
  const allocs = Math.floor((entries - 1) / perAlloc) + 1;
  return (
    maxAlign(hashHeaderBytes) +
    dirEntries * 8 +
    segments * maxAlign(segmentSize * 8) +
    allocs * perAlloc * (hashElementBytes + maxAlign(entryBytes))
  );
}

// ---- PostgreSQL 17 structure sizes (64-bit) -------------------------------------------------------------------

const blockBytes = 8192;
const pg17 = {
  /** NUM_AUXILIARY_PROCS: startup, bgwriter, checkpointer, walwriter, walreceiver, walsummarizer (archiver has none). */
  auxiliaryProcs: 6,
  /** NUM_BUFFER_PARTITIONS extra buffer-mapping entries. */
  bufferPartitions: 128,
  /** BufferLookupEnt: BufferTag (20) + buffer id. */
  bufferLookupEntry: 24,
  /** BufferDescPadded 64 + ConditionVariableMinimallyPadded 16 + CkptSortItem 20 + CheckpointerRequest 32. */
  perBuffer: 64 + 16 + 20 + 32,
  /** LOCK and PROCLOCK hash entries. */
  lockEntry: 152,
  procLockEntry: 64,
  /** PREDICATELOCKTARGET and PREDICATELOCK hash entries; SERIALIZABLEXACT, SERIALIZABLEXID, RWConflictData. */
  predLockTargetEntry: 32,
  predLockEntry: 56,
  serializableXact: 256,
  serializableXid: 16,
  rwConflict: 48,
  /** pgssEntry of pg_stat_statements 1.11. */
  pgssEntry: 408,
  /** One SLRU slot besides its 8 kB page: pointer, status, dirty flag, page number, LRU count, padded LWLock. */
  slruSlot: 8 + 4 + 1 + 8 + 4 + 128,
  /** CLOG keeps 1024 group LSNs (8 bytes each) per page. */
  clogLsnsPerPage: 1024,
  /**
   * Calibrated remainders, see the file comment: per MaxBackends slot (PGPROC, semaphore, backend status without
   * the query text, proc array and known-assigned xids, sinval/procsignal/pmsignal/async slots …), per prepared
   * transaction (a PGPROC and its two-phase state, no backend status), per background worker slot
   * (BackgroundWorkerSlot), and fixed.
   */
  perProcess: 1590,
  perPreparedTransaction: 640,
  perWorker: 1500,
  fixed: 590_000,
} as const;

/** PostgreSQL 17's SLRU autotuning: shared_buffers/512 blocks, rounded down to a bank of 16, from 16 to 1024. */
function slruAutoBuffers(sharedBufferBlocks: number): number {
  const n = Math.floor(sharedBufferBlocks / 512);
  return Math.min(1024, Math.max(16, n - (n % 16)));
}

function slruBytes(slots: number, lsnsPerPage = 0): number {
  return slots * (blockBytes + pg17.slruSlot + lsnsPerPage * 8) + Math.ceil(slots / 16) * (128 + 4) + 1024;
}

/** Margin on top of the model: PostgreSQL's own figure must never be above the estimate. */
const marginFraction = 0.002;
const marginBytes = MiB;

/** The model alone, without margin: PostgreSQL 17's main shared memory segment, bytes. */
export function sharedMemoryModel(s: SharedMemoryInputs): number {
  const buffers = Math.floor(s.sharedBuffersBytes / blockBytes);
  const walPages = Math.floor(s.walBuffersBytes / blockBytes);
  const maxBackends = s.maxConnections + s.autovacuumMaxWorkers + 1 + s.maxWorkerProcesses + s.maxWalSenders;
  const lockSlots = maxBackends + s.maxPreparedTransactions;
  const processes = maxBackends + pg17.auxiliaryProcs;

  const bufferPool =
    buffers * (blockBytes + pg17.perBuffer) + hashEstimateSize(buffers + pg17.bufferPartitions, pg17.bufferLookupEntry);
  const wal = walPages * (blockBytes + 8);
  const slruAuto = slruAutoBuffers(buffers);
  const slru =
    slruBytes(slruAuto, pg17.clogLsnsPerPage) + // transaction status (CLOG)
    slruBytes(slruAuto) + // subtransactions
    slruBytes(slruAuto) + // commit timestamps
    slruBytes(16) + // multixact offsets
    slruBytes(32) + // multixact members
    slruBytes(16) + // LISTEN/NOTIFY
    slruBytes(32); // serializable xids
  const locks = Math.floor(
    (hashEstimateSize(s.maxLocksPerTransaction * lockSlots, pg17.lockEntry) +
      hashEstimateSize(2 * s.maxLocksPerTransaction * lockSlots, pg17.procLockEntry)) *
      1.1,
  );
  const serializableSlots = 10 * lockSlots;
  const predicateLocks =
    Math.floor(
      (hashEstimateSize(s.maxPredLocksPerTransaction * lockSlots, pg17.predLockTargetEntry) +
        hashEstimateSize(2 * s.maxPredLocksPerTransaction * lockSlots, pg17.predLockEntry)) *
        1.1,
    ) +
    serializableSlots * pg17.serializableXact +
    hashEstimateSize(serializableSlots, pg17.serializableXid) +
    5 * serializableSlots * pg17.rwConflict;
  const perProcess =
    processes * (pg17.perProcess + s.trackActivityQuerySize) +
    s.maxPreparedTransactions * pg17.perPreparedTransaction +
    s.maxWorkerProcesses * pg17.perWorker;
  const pgStatStatements = hashEstimateSize(s.pgStatStatementsMax, pg17.pgssEntry);

  return pg17.fixed + bufferPool + wal + slru + locks + predicateLocks + perProcess + pgStatStatements;
}

/** PostgreSQL 17's main shared memory segment, bytes, for these settings: the model plus a margin, at or just above it. */
export function sharedMemoryEstimate(s: SharedMemoryInputs): number {
  return Math.ceil(sharedMemoryModel(s) * (1 + marginFraction) + marginBytes);
}

/** Huge page size the stack plans for: x86-64 and arm64 default 2 MiB pages (Kubernetes `hugepages-2Mi`). */
export const hugePageBytes = 2 * MiB;

/**
 * Pages for a segment, as PostgreSQL computes `shared_memory_size_in_huge_pages`: size / page size + 1
 * (it rounds up by adding one page, even when the size is an exact multiple).
 */
export function hugePagesFor(sharedMemoryBytes: number, pageBytes = hugePageBytes): number {
  return Math.floor(sharedMemoryBytes / pageBytes) + 1;
}
