import { describe, expect, it } from "vitest";
import {
  backendBaselineBytes,
  type ContainerResources,
  defaultDaemonSetCpuMillis,
  defaultDaemonSetMemoryBytes,
  evictionThresholdBytes,
  hugePages2Mi,
  k8sQuantity,
  kubeReservedCpuMillis,
  kubeReservedMemory,
  mtailMemoryBytes,
  nodeExporterMemoryBytes,
  pgbouncerExporterMemoryBytes,
  pgbouncerMemoryBytes,
  type PodResourcePlan,
  podResources,
  postgresExporterMemoryBytes,
  postgresMemoryFloor,
  shmSizeBytes,
  sidecarCpuMillis,
  type SizingInput,
} from "../../configs/kubernetes-resources";
import { renderStack } from "../../configs/render";
import type { RenderedMemory } from "../../configs/rendered";
import { parseStackSpec } from "../../configs/spec";
import { bytes } from "../../configs/units";

const { MiB, GiB } = bytes;

/** The memory plan of a Kubernetes stack of this size, as configs/render.ts computes it. */
function memoryFor(memory: string, hugePages: "on" | "off" = "on", cpus = 8): RenderedMemory {
  return renderStack(parseStackSpec("t", { target: "kubernetes", node: { memory, cpus }, postgres: { hugePages } })).memory;
}

function sizing(memory: RenderedMemory, overrides: Partial<SizingInput> = {}): SizingInput {
  return { memory, cpus: 8, maxConnections: 200, maxClientConn: 2000, ...overrides };
}

/** Every container beside PostgreSQL, as the pod runs them. */
function sidecarsOf(plan: PodResourcePlan): ContainerResources[] {
  return [plan.pgbouncer, plan.postgresExporter, plan.pgbouncerExporter, plan.nodeExporter, plan.mtail, plan.tlsReloader];
}

function cpuMillis(resources: ContainerResources): number {
  const m = /^(\d+)m$/.exec(resources.requests.cpu);
  if (!m) throw new Error(`unexpected CPU request ${resources.requests.cpu}`);
  return Number(m[1]);
}

/** Kubernetes quantity → bytes, for the quantities k8sQuantity writes. */
function quantityBytes(q: string): number {
  const m = /^(\d+)(Mi|Gi|Ti)$/.exec(q);
  if (!m) throw new Error(`unexpected quantity ${q}`);
  return Number(m[1]) * { Mi: MiB, Gi: GiB, Ti: 1024 * GiB }[m[2] as "Mi" | "Gi" | "Ti"];
}

describe("kubeReservedMemory: GKE's kube-reserved rule", () => {
  // 25 % of the first 4 GiB, 20 % of the next 4, 10 % of the next 8, 6 % of the next 112, 2 % above 128 GiB.
  it.each([
    { node: 4, reservedMiB: 1024 },
    { node: 8, reservedMiB: Math.ceil(1024 + 819.2) },
    { node: 16, reservedMiB: Math.ceil(1024 + 819.2 + 819.2) },
    { node: 32, reservedMiB: Math.ceil(2662.4 + 16 * 1024 * 0.06) },
    { node: 64, reservedMiB: Math.ceil(2662.4 + 48 * 1024 * 0.06) },
    { node: 128, reservedMiB: Math.ceil(2662.4 + 112 * 1024 * 0.06) },
    { node: 256, reservedMiB: Math.ceil(2662.4 + 112 * 1024 * 0.06 + 128 * 1024 * 0.02) },
  ])("$node GiB → $reservedMiB MiB", ({ node, reservedMiB }) => {
    expect(kubeReservedMemory(node * GiB)).toBe(reservedMiB * MiB);
  });
});

describe("kubeReservedCpuMillis: GKE's rule", () => {
  it.each([
    { cpus: 1, millis: 60 },
    { cpus: 2, millis: 70 },
    { cpus: 4, millis: 80 },
    { cpus: 8, millis: 90 },
    { cpus: 16, millis: 110 },
  ])("$cpus cpus → $millis m", ({ cpus, millis }) => {
    expect(kubeReservedCpuMillis(cpus)).toBe(millis);
  });
});

describe("k8sQuantity", () => {
  it.each([
    [200 * GiB, "200Gi"],
    [19776 * MiB, "19776Mi"],
    [2 * 1024 * GiB, "2Ti"],
    [MiB + 1, "2Mi"],
    [0, "0Mi"],
  ])("%d bytes → %s", (value, quantity) => {
    expect(k8sQuantity(value)).toBe(quantity);
  });
});

describe("podResources: huge pages", () => {
  it.each(["8Gi", "16Gi", "32Gi", "64Gi", "128Gi"])("%s node: hugepages-2Mi request = limit = pages × 2Mi, with memory beside it", (node) => {
    const memory = memoryFor(node);
    expect(memory.hugePages).toBeGreaterThan(0);
    const plan = podResources(sizing(memory));
    expect(plan.postgres.requests[hugePages2Mi]).toBe(k8sQuantity(memory.hugePages * 2 * MiB));
    expect(quantityBytes(plan.postgres.requests[hugePages2Mi])).toBe(memory.hugePages * 2 * MiB);
    expect(plan.postgres.limits[hugePages2Mi]).toBe(plan.postgres.requests[hugePages2Mi]);
    // Kubernetes refuses hugepages without a memory (or CPU) request; a database is never overcommitted.
    expect(plan.postgres.requests.memory).toBeDefined();
    expect(plan.postgres.limits.memory).toBe(plan.postgres.requests.memory);
    expect(plan.hugePagesBytes).toBe(memory.hugePages * 2 * MiB);
  });

  it("huge_pages = off: no hugepages at all, and shared memory counts inside the memory limit", () => {
    const memory = memoryFor("32Gi", "off");
    expect(memory.hugePages).toBe(0);
    const plan = podResources(sizing(memory));
    expect(Object.keys(plan.postgres.requests)).not.toContain(hugePages2Mi);
    expect(Object.keys(plan.postgres.limits)).not.toContain(hugePages2Mi);
    expect(plan.hugePagesBytes).toBe(0);
    expect(postgresMemoryFloor(memory, 200) - postgresMemoryFloor(memoryFor("32Gi", "on"), 200)).toBe(memory.sharedMemoryBytes);
    expect(plan.budget.postgresBytes).toBeGreaterThanOrEqual(memory.sharedMemoryBytes + plan.shmBytes);
  });

  it("refuses a fractional page count", () => {
    expect(() => podResources(sizing({ ...memoryFor("32Gi"), hugePages: 1.5 }))).toThrow("whole number of 2 MiB pages");
  });
});

describe("podResources: PostgreSQL gets the node's share; sidecars are budgeted on their own", () => {
  it.each(["5Gi", "8Gi", "16Gi", "32Gi", "64Gi", "128Gi", "256Gi"])("%s node: everything adds up to the node, nothing twice", (node) => {
    const memory = memoryFor(node);
    const plan = podResources(sizing(memory));
    const containerMemory = [plan.postgres, ...sidecarsOf(plan)].map((c) => quantityBytes(c.limits.memory));
    const total =
      containerMemory.reduce((a, b) => a + b, 0) + plan.hugePagesBytes + kubeReservedMemory(memory.nodeMemoryBytes) + evictionThresholdBytes + defaultDaemonSetMemoryBytes;
    expect(total).toBeLessThanOrEqual(memory.nodeMemoryBytes);
    expect(memory.nodeMemoryBytes - total).toBeLessThan(MiB); // the rest is rounding to whole MiB
    expect(plan.budget.postgresBytes).toBe(quantityBytes(plan.postgres.limits.memory));
    expect(plan.budget.workHeadroomBytes).toBeGreaterThanOrEqual(0);
    expect(plan.budget.postgresBytes).toBeGreaterThanOrEqual(plan.budget.postgresFloorBytes);
  });

  it("each sidecar has its own request = limit; none has a CPU limit", () => {
    const plan = podResources(sizing(memoryFor("32Gi")));
    expect(plan.pgbouncer).toEqual({ requests: { cpu: "250m", memory: k8sQuantity(pgbouncerMemoryBytes(2000)) }, limits: { memory: k8sQuantity(pgbouncerMemoryBytes(2000)) } });
    expect(plan.postgresExporter.limits.memory).toBe(k8sQuantity(postgresExporterMemoryBytes));
    expect(plan.pgbouncerExporter.limits.memory).toBe(k8sQuantity(pgbouncerExporterMemoryBytes));
    expect(plan.nodeExporter).toEqual({
      requests: { cpu: `${sidecarCpuMillis.nodeExporter}m`, memory: k8sQuantity(nodeExporterMemoryBytes) },
      limits: { memory: k8sQuantity(nodeExporterMemoryBytes) },
    });
    expect(plan.mtail).toEqual({ requests: { cpu: `${sidecarCpuMillis.mtail}m`, memory: k8sQuantity(mtailMemoryBytes) }, limits: { memory: k8sQuantity(mtailMemoryBytes) } });
    for (const c of [plan.postgres, ...sidecarsOf(plan)]) {
      expect(c.limits.cpu).toBeUndefined();
      expect(c.requests.cpu).toMatch(/^\d+m$/);
      expect(c.requests.memory).toBe(c.limits.memory);
    }
  });

  it("a bigger PgBouncer comes out of the node's share, visibly in its own budget", () => {
    const memory = memoryFor("32Gi");
    const small = podResources(sizing(memory, { maxClientConn: 100 }));
    const large = podResources(sizing(memory, { maxClientConn: 10_000 }));
    const grown = pgbouncerMemoryBytes(10_000) - pgbouncerMemoryBytes(100);
    expect(quantityBytes(large.pgbouncer.limits.memory) - quantityBytes(small.pgbouncer.limits.memory)).toBe(grown);
    expect(small.budget.postgresBytes - large.budget.postgresBytes).toBe(grown);
  });

  it("the DaemonSet allowance is a parameter", () => {
    const memory = memoryFor("32Gi");
    const plan = podResources(sizing(memory, { daemonSetMemoryBytes: GiB }));
    expect(podResources(sizing(memory)).budget.postgresBytes - plan.budget.postgresBytes).toBe(GiB - defaultDaemonSetMemoryBytes);
  });

  it("32 GiB, 8 cpus: the numbers; every sidecar's memory and CPU is taken out of PostgreSQL's share exactly once", () => {
    const memory = memoryFor("32Gi");
    const plan = podResources(sizing(memory));
    const sidecars = sidecarsOf(plan);
    const sidecarCpu = sidecars.reduce((sum, c) => sum + cpuMillis(c), 0);
    const sidecarBytes = sidecars.reduce((sum, c) => sum + quantityBytes(c.limits.memory), 0);
    // Six sidecars; sidecarCpuMillis names each once.
    expect(Object.keys(sidecarCpuMillis).sort()).toEqual(["mtail", "nodeExporter", "pgbouncer", "pgbouncerExporter", "postgresExporter", "tlsReloader"]);
    expect(sidecarCpu).toBe(Object.values(sidecarCpuMillis).reduce((a, b) => a + b, 0));
    expect(plan.budget.sidecarBytes).toBe(sidecarBytes);
    const postgresCpuMillis = 8000 - kubeReservedCpuMillis(8) - defaultDaemonSetCpuMillis - sidecarCpu;
    expect(plan.budget).toMatchObject({ nodeMemoryBytes: 32 * GiB, kubeReservedBytes: 3646 * MiB, postgresCpuMillis });
    expect(plan.postgres.requests.cpu).toBe(`${postgresCpuMillis}m`);
    expect(plan.budget.postgresBytes).toBe(
      Math.floor((32 * GiB - 3646 * MiB - evictionThresholdBytes - defaultDaemonSetMemoryBytes - plan.hugePagesBytes - sidecarBytes) / MiB) * MiB,
    );
  });

  // 4 GiB no longer holds it since every client speaks TLS (PgBouncer's budget, 32 KiB a slot) and the TLS reloader
  // joined the pod: the gate refuses a 4 GiB Kubernetes node at 200 connections with huge pages, with the numbers.
  it("5 GiB node: the monitoring sidecars still leave PostgreSQL its floor at the default 200 connections", () => {
    const memory = memoryFor("5Gi");
    const plan = podResources(sizing(memory));
    expect(plan.budget.postgresBytes).toBeGreaterThanOrEqual(postgresMemoryFloor(memory, 200));
  });

  it("refuses a node too small for PostgreSQL's floor, with the numbers", () => {
    expect(() => podResources(sizing(memoryFor("2Gi")))).toThrow(/node\.memory 2 GiB leaves PostgreSQL .* below the .* it needs \(\/dev\/shm .*maintenance_work_mem .*200 connections × 2 MiB\); use a larger node/);
  });
});

describe("/dev/shm", () => {
  it.each(["5Gi", "32Gi", "128Gi"])("%s node: at least maintenance_work_mem (+64 MiB for parallel queries)", (node) => {
    const memory = memoryFor(node);
    const plan = podResources(sizing(memory));
    expect(plan.shmBytes).toBeGreaterThanOrEqual(memory.maintenanceWorkMemBytes);
    expect(plan.shmBytes).toBe(shmSizeBytes(memory.maintenanceWorkMemBytes));
    expect(quantityBytes(plan.shmSizeLimit)).toBe(plan.shmBytes);
  });

  it("follows an index build that SETs a larger maintenance_work_mem, and the floor with it", () => {
    const memory = memoryFor("32Gi");
    const plan = podResources(sizing(memory, { buildMemoryBytes: 4 * GiB }));
    expect(plan.shmBytes).toBe(4 * GiB + 64 * MiB);
    expect(plan.budget.postgresFloorBytes).toBe(postgresMemoryFloor(memory, 200, 4 * GiB));
    expect(postgresMemoryFloor(memory, 200, 4 * GiB)).toBe(4 * GiB + 64 * MiB + 4 * GiB + 200 * backendBaselineBytes);
  });
});
