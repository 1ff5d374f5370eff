import { describe, expect, it } from "vitest";
import {
  hashEstimateSize,
  hugePagesFor,
  sharedMemoryEstimate,
  sharedMemoryModel,
  sharedMemorySettings,
  type SharedMemoryInputs,
} from "../../configs/hugepages";
import { memoryPlan } from "../../configs/memory";
import { bytes } from "../../configs/units";
import { specFor, stagingSpec } from "./spec-fixture";

const { MiB, GiB } = bytes;

/** PostgreSQL's defaults with pg_stat_statements loaded: the base the calibration varied one setting from. */
const pgDefaults: SharedMemoryInputs = {
  sharedBuffersBytes: 128 * MiB,
  walBuffersBytes: 4 * MiB,
  maxConnections: 100,
  autovacuumMaxWorkers: 3,
  maxWorkerProcesses: 8,
  maxWalSenders: 10,
  maxPreparedTransactions: 0,
  maxLocksPerTransaction: 64,
  maxPredLocksPerTransaction: 64,
  trackActivityQuerySize: 1024,
  pgStatStatementsMax: 5000,
};

/**
 * The calibration record: PostgreSQL 17.12 (Debian 13 package, x86-64), shared_preload_libraries = pg_stat_statements,
 * exact segment bytes read with `postgres -C shared_memory_size_in_huge_pages -c huge_page_size=1kB` (size/1024 + 1).
 * tests/real/hugepages.test.ts re-measures the stack's own renderings against the live binary.
 */
const measured: readonly (readonly [string, Partial<SharedMemoryInputs>, number])[] = [
  ["defaults", {}, 152092672],
  ["shared_buffers 256MB", { sharedBuffersBytes: 256 * MiB, walBuffersBytes: 16 * MiB }, 303054848],
  ["shared_buffers 1GB", { sharedBuffersBytes: 1 * GiB, walBuffersBytes: 16 * MiB }, 1133232128],
  ["shared_buffers 4GB", { sharedBuffersBytes: 4 * GiB, walBuffersBytes: 16 * MiB }, 4453941248],
  ["shared_buffers 8GB", { sharedBuffersBytes: 8 * GiB, walBuffersBytes: 16 * MiB }, 8847507456],
  ["shared_buffers 16GB", { sharedBuffersBytes: 16 * GiB, walBuffersBytes: 16 * MiB }, 17634639872],
  ["shared_buffers 32GB", { sharedBuffersBytes: 32 * GiB, walBuffersBytes: 16 * MiB }, 35208904704],
  ["shared_buffers 64GB", { sharedBuffersBytes: 64 * GiB, walBuffersBytes: 16 * MiB }, 70357434368],
  ["max_connections 20", { maxConnections: 20 }, 148307968],
  ["max_connections 1000", { maxConnections: 1000 }, 195297280],
  ["max_connections 5000", { maxConnections: 5000 }, 398024704],
  ["max_connections 10000", { maxConnections: 10000 }, 648847360],
  ["max_worker_processes 64", { maxWorkerProcesses: 64 }, 155107328],
  ["track_activity_query_size 4096", { trackActivityQuerySize: 4096 }, 152494080],
  ["pg_stat_statements.max 100", { pgStatStatementsMax: 100 }, 149954560],
  ["pg_stat_statements.max 20000", { pgStatStatementsMax: 20000 }, 158654464],
  ["max_locks_per_transaction 256", { maxLocksPerTransaction: 256 }, 161267712],
  ["max_pred_locks_per_transaction 256", { maxPredLocksPerTransaction: 256 }, 157728768],
  ["max_wal_senders 0", { maxWalSenders: 0 }, 151650304],
  ["autovacuum_max_workers 10", { autovacuumMaxWorkers: 10 }, 152846336],
  ["max_prepared_transactions 100", { maxPreparedTransactions: 100 }, 156794880],
  ["wal_buffers 16MB", { walBuffersBytes: 16 * MiB }, 164691968],
];

describe("shared memory model vs PostgreSQL 17's own figure (calibration record)", () => {
  it.each(measured)("%s", (_name, delta, pgBytes) => {
    const inputs = { ...pgDefaults, ...delta };
    // The model itself is within 128 kB of PostgreSQL's segment …
    expect(Math.abs(sharedMemoryModel(inputs) - pgBytes)).toBeLessThan(128 * 1024);
    // … and the estimate, with its margin, is never below it and at most 5 % above, in pages as in bytes.
    const estimate = sharedMemoryEstimate(inputs);
    expect(estimate).toBeGreaterThanOrEqual(pgBytes);
    const pgPages = hugePagesFor(pgBytes);
    expect(hugePagesFor(estimate)).toBeGreaterThanOrEqual(pgPages);
    expect(hugePagesFor(estimate)).toBeLessThanOrEqual(Math.ceil(pgPages * 1.05));
  });
});

describe("hugePagesFor", () => {
  it("adds one page to size / 2MiB, as PostgreSQL does", () => {
    expect(hugePagesFor(152092672)).toBe(73);
    expect(hugePagesFor(2 * MiB)).toBe(2);
    expect(hugePagesFor(2 * MiB - 1)).toBe(1);
    expect(hugePagesFor(8847507456)).toBe(4219);
  });
});

describe("hashEstimateSize (dynahash's hash_estimate_size)", () => {
  it("grows with entries and power-of-two bucket arrays", () => {
    expect(hashEstimateSize(1000, 24)).toBeLessThan(hashEstimateSize(2000, 24));
    // Elements: 40 bytes each for a 24-byte entry, allocated in batches.
    const a = hashEstimateSize(1 << 20, 24);
    const b = hashEstimateSize(1 << 21, 24);
    expect(b - a).toBeGreaterThan((1 << 20) * 40);
    expect(b - a).toBeLessThan((1 << 20) * 50);
  });
});

describe("shared memory for the stack's own settings", () => {
  it("reads the settings that size shared memory from the spec", () => {
    expect(sharedMemorySettings(stagingSpec)).toEqual({
      maxConnections: 200,
      autovacuumMaxWorkers: 3,
      maxWorkerProcesses: 12,
      maxWalSenders: 10,
      maxPreparedTransactions: 0,
      maxLocksPerTransaction: 64,
      maxPredLocksPerTransaction: 64,
      trackActivityQuerySize: 4096,
      pgStatStatementsMax: 5000,
    });
    const spec = specFor({ postgres: { settings: { "pg_stat_statements.max": "10000", track_activity_query_size: "2kB" } } });
    expect(sharedMemorySettings(spec)).toMatchObject({ pgStatStatementsMax: 10000, trackActivityQuerySize: 2048 });
  });

  it("is more than shared_buffers: 8GB of buffers need about 8.26GiB on the guide's 32GB node", () => {
    const plan = memoryPlan(stagingSpec);
    expect(plan.sharedMemoryBytes / GiB).toBeGreaterThan(8.2);
    expect(plan.sharedMemoryBytes / GiB).toBeLessThan(8.3);
    expect(plan.hugePagesNeeded).toBe(hugePagesFor(plan.sharedMemoryBytes));
  });

  it("grows with max_connections", () => {
    const few = memoryPlan(specFor({ postgres: { maxConnections: 200 } })).sharedMemoryBytes;
    const many = memoryPlan(specFor({ postgres: { maxConnections: 1000 } })).sharedMemoryBytes;
    expect(many - few).toBeGreaterThan(800 * 40 * 1024);
  });
});
