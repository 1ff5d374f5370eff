/**
 * `pgstack diff <a> <b>`: every value that differs between two stacks, grouped and side by side; resources of the
 * same target compared per input path with each stack's own name taken out; text, Markdown and JSON.
 */
import { describe, expect, it, vi } from "vitest";
import { diffCommand } from "../../cli/diff";
import { UsageError } from "../../cli/errors";
import { renderedFiles } from "../../cli/render";
import { renderStack } from "../../configs/render";
import { redactionMarker, type RecordedResource } from "../../drift/resources";
import { diffStacks, formatStackDiff, type StackSide } from "../../drift/stack-diff";
import { specFor } from "./spec-fixture";

function side(stack: string, overrides: Record<string, unknown>, resources?: RecordedResource[]): StackSide {
  const rendered = renderStack(specFor(overrides, stack));
  return { rendered, memoryPlan: renderedFiles(rendered)["memory-plan.yaml"], resources };
}

const statefulSet = (stack: string, hugePages: string): RecordedResource => ({
  type: "kubernetes:apps/v1:StatefulSet",
  name: `${stack}-database-statefulset`,
  inputs: {
    metadata: { namespace: `pgvector-${stack}`, labels: { "pgvector-stack/stack": stack } },
    spec: { template: { spec: { containers: [{ name: "postgres", resources: { limits: { "hugepages-2Mi": hugePages } } }] } } },
  },
});

describe("stack-to-stack comparison", () => {
  const staging = side("staging", {}, [statefulSet("staging", "8462Mi"), { type: "kubernetes:core/v1:Secret", name: "staging-credentials", inputs: { stringData: redactionMarker } }]);
  const prod = side("prod", { node: { memory: "64Gi", cpus: 16, storage: "nvme" }, pgbouncer: { defaultPoolSize: 150 }, alerts: { poolUtilizationWarning: 0.8 } }, [
    statefulSet("prod", "16860Mi"),
    { type: "kubernetes:core/v1:Secret", name: "prod-credentials", inputs: { stringData: redactionMarker } },
  ]);
  const d = diffStacks(staging, prod);
  const group = (title: string) => d.groups.find((g) => g.title.startsWith(title));

  it("groups what differs: node and memory, PostgreSQL, PgBouncer, HNSW plan, alerts, resources", () => {
    expect(d.groups.map((g) => g.title)).toEqual([
      "Node and memory",
      "PostgreSQL (postgresql.conf)",
      "PgBouncer (pgbouncer.ini)",
      "HNSW index plan",
      "Alert thresholds",
      "Resources",
    ]);
    expect(group("Node")?.rows).toEqual(expect.arrayContaining([{ name: "node.cpus", a: "8", b: "16" }, { name: "shared_buffers", a: "8GB", b: "16GB" }]));
    expect(group("PostgreSQL")?.rows).toEqual(expect.arrayContaining([{ name: "work_mem", a: "256MB", b: "512MB" }, { name: "effective_io_concurrency", a: "200", b: "1000" }]));
    expect(group("PgBouncer")?.rows).toEqual([{ name: "default_pool_size", a: "100", b: "150" }]);
    expect(group("HNSW")?.rows).toContainEqual({ name: "memories.embedding build maintenance_work_mem", a: "2GB", b: "4GB" });
    expect(group("Alert")?.rows).toEqual([{ name: "poolUtilizationWarning", a: "0.7", b: "0.8" }]);
    expect(d.same).toBeGreaterThan(100);
  });

  it("compares resources of the same target by input path, without differences that are only the stack's name", () => {
    expect(group("Resources")?.rows).toEqual([
      {
        name: "kubernetes:apps/v1:StatefulSet <stack>-database-statefulset: spec.template.spec.containers[name=postgres].resources.limits.hugepages-2Mi",
        a: "8462Mi",
        b: "16860Mi",
      },
    ]);
  });

  it("does not compare resources input by input across targets", () => {
    const dev = side("dev", { target: "docker", node: { memory: "8Gi", cpus: 4 } }, [{ type: "docker:index/container:Container", name: "dev-postgres", inputs: {} }]);
    expect(diffStacks(dev, prod).groups.find((g) => g.title === "Resources")).toEqual({
      title: "Resources",
      rows: [{ name: "resources", a: "1 resources", b: "2 resources" }],
      note: "targets differ (docker vs kubernetes): their resources are not compared input by input",
    });
  });

  it("prints side by side (text), as tables (Markdown) and as data (JSON)", () => {
    const text = formatStackDiff(d, "text");
    expect(text).toMatch(/^staging vs prod: \d+ values differ, \d+ are the same\n/);
    expect(text).toMatch(/\n {2}shared_buffers +8GB +16GB\n/);
    const md = formatStackDiff(d, "markdown");
    expect(md).toContain("|  | `staging` | `prod` |");
    expect(md).toContain("| `default_pool_size` | `100` | `150` |");
    expect(JSON.parse(formatStackDiff(d, "json", ["a note"]))).toMatchObject({ a: "staging", b: "prod", notes: ["a note"] });
  });

  it("the command: two stacks, or a usage error", async () => {
    let stdout = "";
    const out = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
      stdout += String(chunk);
      return true;
    });
    try {
      expect(await diffCommand.run(["staging", "prod", "--no-resources", "--format", "json"])).toBe(0);
    } finally {
      out.mockRestore();
    }
    const parsed = JSON.parse(stdout) as { groups: { title: string; rows: { name: string; a?: string; b?: string }[] }[] };
    expect(parsed.groups.find((g) => g.title === "Node and memory")?.rows).toContainEqual({ name: "node_memory", a: "32GB", b: "64GB" });
    await expect(diffCommand.run(["staging"])).rejects.toThrow(new UsageError("name exactly two stacks, not 1 (stacks: dev, perf, prod, staging)"));
    await expect(diffCommand.run(["staging", "nope"])).rejects.toThrow(new UsageError('no stack "nope" (stacks: dev, perf, prod, staging)'));
    await expect(diffCommand.run(["staging", "prod", "--no-resource"])).rejects.toThrow(new UsageError("unknown option --no-resource; did you mean --no-resources?"));
    await expect(diffCommand.run(["staging", "prod", "--format", "yaml"])).rejects.toThrow(new UsageError('--format must be one of text, markdown, json, not "yaml"'));
  });
});
