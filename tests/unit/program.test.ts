/**
 * The `pulumi up` door: program.ts run under Pulumi's mocks with stack config as the Pulumi CLI passes it
 * (`pgvector-stack:key` → string or JSON, secret keys listed apart). It must refuse exactly what `pgstack render`
 * refuses, as one pulumi.RunError listing every problem (Pulumi prints it without a stack trace), before any
 * resource is registered; and a Kubernetes stack must refuse a data-volume change it cannot apply.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { beforeEach, describe, expect, it } from "vitest";
import { runbookSection, selfReferenceName } from "../../components/deploy-guard";

interface Recorded {
  readonly type: string;
  readonly name: string;
  readonly inputs: Record<string, unknown>;
}

let recorded: Recorded[] = [];

/** Config as `pulumi config set` leaves it for the program: structured values as JSON text. */
function cliConfig(values: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [`pgvector-stack:${k}`, typeof v === "string" ? v : JSON.stringify(v)]));
}

/** Mocks as `pulumi up` of stack `stack` would see them, the previous deploy's outputs answering the StackReference. */
function deployWith(stack: string, values: Record<string, unknown>, opts: { secretKeys?: string[]; previousOutputs?: Record<string, unknown> } = {}): void {
  recorded = [];
  pulumi.runtime.setAllConfig(cliConfig(values), (opts.secretKeys ?? []).map((k) => `pgvector-stack:${k}`));
  pulumi.runtime.setMocks(
    {
      newResource(args) {
        recorded.push({ type: args.type, name: args.name, inputs: args.inputs });
        if (args.type === "pulumi:pulumi:StackReference") {
          return { id: String(args.inputs.name), state: { name: args.inputs.name, outputs: opts.previousOutputs ?? {}, secretOutputNames: [] } };
        }
        const state: Record<string, unknown> = { ...args.inputs };
        if (args.type === "random:index/randomPassword:RandomPassword") state.result = `mock-password-${args.name}`;
        return { id: `${args.name}-id`, state };
      },
      call: (args) => args.inputs,
    },
    "pgvector-stack",
    stack,
    false,
    "organization",
  );
}

/** Until the mocks have stopped registering resources: components register their children asynchronously. */
async function quiesce(): Promise<void> {
  let seen = -1;
  while (seen !== recorded.length) {
    seen = recorded.length;
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function runProgram(): Promise<Record<string, unknown>> {
  const { program } = await import("../../program");
  try {
    return await program();
  } finally {
    await quiesce();
  }
}

/** The program's rejection, which must be a RunError (printed by Pulumi as one clean message). */
async function refusal(): Promise<string> {
  const error = await runProgram().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, "the program should have refused").toBeDefined();
  expect(pulumi.RunError.isInstance(error), String(error)).toBe(true);
  return (error as Error).message;
}

const resources = () => recorded.filter((r) => r.type !== "pulumi:pulumi:StackReference");

const staging = { target: "kubernetes", node: { memory: "32Gi", cpus: 8 }, postgres: { hugePages: "on", acceptWorstCaseMemory: true }, kubernetes: { namespace: "pgvector-test" } };
const local = { target: "local", node: { memory: "auto", cpus: "auto" } };

describe("the program's gate is the CLI's gate", () => {
  beforeEach(() => {
    recorded = [];
  });

  it.each([
    ["an unknown key, with a suggestion", { ...local, pgbouncr: { poolMode: "session" } }, ["unknown key pgbouncr; did you mean pgbouncer?"]],
    [
      "efConstruction below 2 × the guide's m for 1,536 dimensions",
      { ...local, vectorTables: [{ table: "docs", dimensions: 1536, efConstruction: 50 }] },
      ["vectorTables[0].efConstruction is 50; pgvector requires at least 2 × m = 96 (m 48 is the tuning guide's for 1536 dimensions)"],
    ],
    ["an alert ratio written as a percentage", { ...local, alerts: { poolUtilizationWarning: 70 } }, ["alerts.poolUtilizationWarning 70 is not a fraction"]],
    ["memory: auto on a Kubernetes stack", { ...staging, node: { memory: "auto", cpus: 8 } }, ['node.memory is "auto", which sizes the database from the machine that runs the program; it is for target: local only']],
    [
      "every problem at once",
      { ...local, pgbouncr: {}, alerts: { poolUtilizationWarning: 70 }, postgres: { maxConnections: 5 } },
      ["unknown key pgbouncr", "alerts.poolUtilizationWarning 70", "postgres.maxConnections is 5"],
    ],
  ])("refuses %s before registering anything", async (_, values, expected) => {
    deployWith("perf", values);
    const message = await refusal();
    for (const text of expected) expect(message).toContain(text);
    expect(message).toMatch(/^stack "perf" has \d+ configuration errors?:/);
    expect(message).not.toMatch(/\n\s+at /); // no stack trace in what Pulumi prints
    expect(resources()).toEqual([]);
  });

  it("refuses a password in plain text, naming the command and never the value", async () => {
    deployWith("perf", { ...local, appPassword: "hunter2-plain" });
    const message = await refusal();
    expect(message).toContain("appPassword is in plain text in the stack file");
    expect(message).toContain("pulumi config set --secret pgvector-stack:appPassword <value>");
    expect(message).not.toContain("hunter2-plain");
  });

  it("accepts the same password set with --secret", async () => {
    deployWith("perf", { ...local, appPassword: "hunter2-secret" }, { secretKeys: ["appPassword"] });
    const outputs = await runProgram();
    expect(outputs.target).toBe("local");
  });

  it("ignores other namespaces (a provider's own config), but not a misspelling of its own", async () => {
    deployWith("perf", local);
    pulumi.runtime.setConfig("kubernetes:context", "prod-cluster");
    const outputs = await runProgram();
    expect(outputs.target).toBe("local");

    deployWith("perf", local);
    pulumi.runtime.setConfig("pgvector-stak:postgres", JSON.stringify({ maxConnections: 400 }));
    expect(await refusal()).toContain("unknown namespace in pgvector-stak:postgres; did you mean pgvector-stack:postgres?");
  });
});

describe("what pulumi up cannot change on a deployed stack", () => {
  const gi = 1024 ** 3;
  const deployed = (over: Record<string, unknown> = {}, storage: { size?: number; storageClassName?: string | null } = {}) => ({
    target: "kubernetes",
    deployed: {
      target: "kubernetes",
      database: "app",
      appUser: "app",
      namespace: "pgvector-test",
      storage: { sizeBytes: (storage.size ?? 100) * gi, storageClassName: storage.storageClassName ?? null },
      ...over,
    },
  });

  it("points at a runbook section that exists", () => {
    const [file, anchor] = runbookSection.split("#");
    const headings = fs
      .readFileSync(path.join(__dirname, "../..", file), "utf8")
      .split("\n")
      .filter((l) => l.startsWith("## "))
      .map((l) => l.slice(3).toLowerCase().replace(/[^a-z0-9 -]/g, "").replace(/ /g, "-"));
    expect(headings).toContain(anchor);
  });

  it("names its own stack as the backend resolves it", () => {
    expect(selfReferenceName(() => "acme", "pgvector-stack", "prod")).toBe("acme/pgvector-stack/prod");
    // A self-managed backend: its legacy layout refuses slashes, both layouts resolve the bare name.
    expect(selfReferenceName(() => "organization", "pgvector-stack", "prod")).toBe("prod");
    expect(
      selfReferenceName(() => {
        throw new Error("Missing organization name");
      }, "pgvector-stack", "prod"),
    ).toBe("prod");
  });

  it("deploys a first time and records what it deployed", async () => {
    deployWith("staging", { ...staging, kubernetes: { ...staging.kubernetes, storageSize: "100Gi" } });
    const outputs = await runProgram();
    expect(outputs.deployed).toEqual({ target: "kubernetes", database: "app", appUser: "app", namespace: "pgvector-test", storage: { sizeBytes: 100 * gi, storageClassName: null } });
    expect(resources().some((r) => r.type === "kubernetes:apps/v1:StatefulSet")).toBe(true);
    const reference = recorded.find((r) => r.type === "pulumi:pulumi:StackReference");
    expect(reference?.inputs.name).toBe("staging"); // the mocks' organization is the self-managed backend's
  });

  it("refuses a larger size with the runbook, before any resource, and accepts it once the resize is recorded", async () => {
    deployWith("staging", { ...staging, kubernetes: { ...staging.kubernetes, storageSize: "200Gi" } }, { previousOutputs: deployed() });
    const message = await refusal();
    expect(message).toContain("kubernetes.storageSize grew from 100Gi to 200Gi on a deployed stack");
    expect(message).toContain("docs/runbooks.md#growing-the-data-volume");
    expect(message).toContain("kubernetes.storageResizedFrom: 100Gi");
    expect(resources()).toEqual([]);

    deployWith("staging", { ...staging, kubernetes: { ...staging.kubernetes, storageSize: "200Gi", storageResizedFrom: "100Gi" } }, { previousOutputs: deployed() });
    const outputs = await runProgram();
    expect((outputs.deployed as { storage: unknown }).storage).toEqual({ sizeBytes: 200 * gi, storageClassName: null });
  });

  it.each([
    ["a smaller size", { storageSize: "50Gi" }, deployed(), "kubernetes.storageSize shrank from 100Gi to 50Gi"],
    ["another StorageClass", { storageSize: "100Gi", storageClassName: "fast-nvme" }, deployed(), `kubernetes.storageClassName changed from the cluster's default class to "fast-nvme"`],
    ["a resize recorded from the wrong size", { storageSize: "200Gi", storageResizedFrom: "150Gi" }, deployed(), "kubernetes.storageResizedFrom is 150Gi, but the deployed size is 100Gi"],
    ["another namespace", { namespace: "pgvector-other", storageSize: "100Gi" }, deployed(), "kubernetes.namespace changed from pgvector-test to pgvector-other"],
  ])("refuses %s", async (_, kubernetes, previousOutputs, expected) => {
    deployWith("staging", { ...staging, kubernetes: { ...staging.kubernetes, ...kubernetes } }, { previousOutputs });
    expect(await refusal()).toContain(expected);
    expect(resources()).toEqual([]);
  });

  it("refuses another application database and role together, and another target", async () => {
    deployWith("staging", { ...staging, postgres: { ...staging.postgres, database: "vectors", appUser: "search" } }, { previousOutputs: deployed() });
    const message = await refusal();
    expect(message).toContain("postgres.database changed from app to vectors");
    expect(message).toContain("postgres.appUser changed from app to search");
    expect(resources()).toEqual([]);

    deployWith("staging", { target: "docker", node: { memory: "8Gi", cpus: 4 }, postgres: { acceptWorstCaseMemory: true } }, { previousOutputs: deployed() });
    expect(await refusal()).toContain("target changed from kubernetes to docker on a deployed stack");
  });

  it("starts the record on a stack deployed before it existed, and says what to check", async () => {
    deployWith("staging", { ...staging, kubernetes: { ...staging.kubernetes, storageSize: "100Gi" } }, { previousOutputs: { target: "kubernetes" } });
    const warnings: string[] = [];
    const warn = pulumi.log.warn;
    pulumi.log.warn = (msg: string) => {
      warnings.push(msg);
      return Promise.resolve();
    };
    try {
      const outputs = await runProgram();
      expect((outputs.deployed as { storage: unknown }).storage).toEqual({ sizeBytes: 100 * gi, storageClassName: null });
    } finally {
      pulumi.log.warn = warn;
    }
    expect(warnings.join("\n")).toContain("deployed before pgvector-stack recorded what it deployed");
    expect(warnings.join("\n")).toContain("kubectl -n pgvector-test get pvc");
  });

  it("guards a Docker stack's database and role too", async () => {
    const dev = { target: "docker", node: { memory: "8Gi", cpus: 4 }, postgres: { acceptWorstCaseMemory: true, appUser: "svc" } };
    deployWith("dev", dev, { previousOutputs: { target: "docker", deployed: { target: "docker", database: "app", appUser: "app" } } });
    expect(await refusal()).toContain("postgres.appUser changed from app to svc");
    expect(resources()).toEqual([]);
  });
});
