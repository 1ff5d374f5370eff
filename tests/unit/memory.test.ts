import { describe, expect, it } from "vitest";
import {
  autovacuumWorkMem,
  dynamicSharedMemoryType,
  effectiveCacheSize,
  hashMemMultiplier,
  maintenanceWorkMem,
  memoryPlan,
  sharedBuffers,
  tempBuffersBytes,
  walBuffers,
  workMem,
} from "../../configs/memory";
import { bytes, pgMemory } from "../../configs/units";
import { specFor, stagingSpec } from "./spec-fixture";

const { MiB, GiB } = bytes;

function row(ram: number): string[] {
  return [sharedBuffers(ram), effectiveCacheSize(ram), workMem(ram), maintenanceWorkMem(ram)].map(pgMemory);
}

describe("memory sizing: the tuning guide's table (golden)", () => {
  // | System RAM | shared_buffers | effective_cache_size | work_mem | maintenance_work_mem |
  it.each([
    [16, ["4GB", "12GB", "128MB", "1GB"]],
    [32, ["8GB", "24GB", "256MB", "2GB"]],
    [64, ["16GB", "48GB", "512MB", "4GB"]],
    [128, ["32GB", "96GB", "1GB", "8GB"]],
  ])("%i GB node", (ramGiB, expected) => {
    expect(row(ramGiB * GiB)).toEqual(expected);
  });
});

describe("memory sizing: the same fractions for other sizes, rounded down to whole MB", () => {
  it.each([
    ["1 GiB", 1 * GiB, ["256MB", "768MB", "8MB", "64MB"]],
    ["4 GiB", 4 * GiB, ["1GB", "3GB", "32MB", "256MB"]],
    ["24 GiB", 24 * GiB, ["6GB", "18GB", "192MB", "1536MB"]],
    ["48 GiB", 48 * GiB, ["12GB", "36GB", "384MB", "3GB"]],
    ["96 GiB", 96 * GiB, ["24GB", "72GB", "768MB", "6GB"]],
    // 15.5 GiB: 3.875 GiB = 3968MB; 11.625 GiB = 11904MB; 124MB; 992MB
    ["15.5 GiB", 15.5 * GiB, ["3968MB", "11904MB", "124MB", "992MB"]],
    // 3000 MiB: 750MB, 2250MB, 23.4 → 23MB, 187.5 → 187MB
    ["3000 MiB", 3000 * MiB, ["750MB", "2250MB", "23MB", "187MB"]],
  ])("%s", (_name, ram, expected) => {
    expect(row(ram)).toEqual(expected);
  });

  it("never renders a fraction of a MB", () => {
    for (let ram = 1 * GiB; ram <= 200 * GiB; ram += 777 * MiB + 12345) {
      for (const v of [sharedBuffers(ram), effectiveCacheSize(ram), workMem(ram), maintenanceWorkMem(ram)]) {
        expect(v % MiB).toBe(0);
      }
    }
  });
});

describe("memory sizing: floors for tiny nodes, caps for huge ones", () => {
  it("floors at PostgreSQL's own defaults (128MB, 4MB, 64MB)", () => {
    expect(row(256 * MiB)).toEqual(["128MB", "192MB", "4MB", "64MB"]);
  });

  it("caps shared_buffers at 64GB, work_mem at 1GB, maintenance_work_mem at 16GB; effective_cache_size is never capped", () => {
    expect(row(256 * GiB)).toEqual(["64GB", "192GB", "1GB", "16GB"]);
    expect(row(1024 * GiB)).toEqual(["64GB", "768GB", "1GB", "16GB"]);
  });

  it("keeps autovacuum_work_mem at the pre-17 1GB bound", () => {
    expect(autovacuumWorkMem(maintenanceWorkMem(16 * GiB))).toBe(1 * GiB);
    expect(autovacuumWorkMem(maintenanceWorkMem(128 * GiB))).toBe(1 * GiB);
    expect(autovacuumWorkMem(maintenanceWorkMem(4 * GiB))).toBe(256 * MiB);
  });

  it("sizes wal_buffers like PostgreSQL's automatic rule: shared_buffers/32, at most 16MB", () => {
    expect(walBuffers(128 * MiB)).toBe(4 * MiB);
    expect(walBuffers(256 * MiB)).toBe(8 * MiB);
    expect(walBuffers(8 * GiB)).toBe(16 * MiB);
  });
});

describe("memoryPlan", () => {
  it("renders the guide's other memory settings", () => {
    const plan = memoryPlan(stagingSpec);
    expect(plan.rendered).toEqual({
      shared_buffers: "8GB",
      effective_cache_size: "24GB",
      work_mem: "256MB",
      maintenance_work_mem: "2GB",
      autovacuum_work_mem: "1GB",
      temp_buffers: "128MB",
      wal_buffers: "16MB",
      hash_mem_multiplier: "2.0",
      dynamic_shared_memory_type: "posix",
      // staging is a Kubernetes stack: the pod requests its pages, so the guide's `try` becomes `on`.
      huge_pages: "on",
    });
    expect([tempBuffersBytes, hashMemMultiplier, dynamicSharedMemoryType]).toEqual([128 * MiB, 2.0, "posix"]);
  });

  it("computes the worst case of the guide's 32GB row: 8GB + 200 × 256MB × 2 + 2GB = 110GB", () => {
    const plan = memoryPlan(stagingSpec);
    expect(plan.worstCaseBytes).toBe(110 * GiB);
    expect(plan.pooledWorstCaseBytes).toBe(8 * GiB + 110 * 512 * MiB + 2 * GiB);
  });

  it("warns that the guide's own 32GB row exceeds RAM, and says what bounds it and what to lower", () => {
    const [warning, ...rest] = memoryPlan(stagingSpec).warnings;
    expect(rest).toEqual([]);
    expect(warning).toBe(
      "memory worst case 110 GiB exceeds node RAM 32 GiB: shared_buffers 8GB + max_connections 200 × work_mem 256MB " +
        "× hash_mem_multiplier 2.0 + maintenance_work_mem 2GB. These are the tuning guide's own values for a 32GB node; " +
        "the stack keeps them as the guide gives them. PgBouncer's pool bounds how many queries run at once " +
        "(default_pool_size 100 + reserve_pool_size 10 = 110 server connections), which gives 65 GiB and still does not fit; " +
        "the rest of max_connections is kept for maintenance and monitoring. It is a bound, not the usual case: a " +
        "nearest-neighbour query sorts only LIMIT k rows and uses a small part of work_mem, but one large sort or hash " +
        "per connection at once would exhaust RAM. To make the worst case fit, lower work_mem to 56MB " +
        "(postgres.settings.work_mem) or lower postgres.maxConnections and pgbouncer.defaultPoolSize.",
    );
  });

  it.each([16, 64, 128])("warns for the guide's %i GB row too", (ramGiB) => {
    const plan = memoryPlan(specFor({ node: { memory: `${ramGiB}Gi` } }));
    expect(plan.warnings).toHaveLength(1);
    expect(plan.warnings[0]).toContain(`tuning guide's own values for a ${ramGiB}GB node`);
  });

  it("does not warn when the worst case fits", () => {
    const spec = specFor({
      node: { memory: "16Gi" },
      postgres: { maxConnections: 20, reservedConnections: { maintenance: 3, monitoring: 1 } },
      pgbouncer: { defaultPoolSize: 10, reservePoolSize: 0 },
    });
    const plan = memoryPlan(spec);
    expect(plan.worstCaseBytes).toBe(4 * GiB + 20 * 256 * MiB + 1 * GiB);
    expect(plan.warnings).toEqual([]);
  });

  it("follows a work_mem the user set, so the worst case describes the server that runs", () => {
    const plan = memoryPlan(specFor({ postgres: { settings: { work_mem: "56MB" } } }));
    expect(plan.workMemBytes).toBe(56 * MiB);
    expect(plan.worstCaseBytes).toBe(8 * GiB + 200 * 56 * 2 * MiB + 2 * GiB);
    expect(plan.worstCaseBytes).toBeLessThanOrEqual(32 * GiB);
    expect(plan.warnings).toEqual([]);
    // A bare number is kB, as PostgreSQL reads it.
    expect(memoryPlan(specFor({ postgres: { settings: { work_mem: "65536" } } })).workMemBytes).toBe(64 * MiB);
  });

  it("counts huge pages for the whole shared memory, reserves none when huge_pages = off", () => {
    const plan = memoryPlan(stagingSpec);
    expect(plan.sharedMemoryBytes).toBeGreaterThan(plan.sharedBuffersBytes + plan.walBuffersBytes);
    expect(plan.hugePages).toBe(plan.hugePagesNeeded);
    expect(plan.hugePagesBytes).toBeGreaterThanOrEqual(plan.sharedMemoryBytes);
    const off = memoryPlan(specFor({ postgres: { hugePages: "off" } }));
    expect(off.rendered.huge_pages).toBe("off");
    expect(off.hugePages).toBe(0);
    expect(off.hugePagesNeeded).toBe(plan.hugePagesNeeded);
  });

  it("turns try into on for a Docker host with huge pages reserved", () => {
    const spec = specFor({ target: "docker", docker: { hostHugePages: true } });
    expect(memoryPlan(spec).rendered.huge_pages).toBe("on");
    expect(memoryPlan(specFor({ target: "docker" })).rendered.huge_pages).toBe("try");
  });
});
