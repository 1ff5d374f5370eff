/**
 * The Pulumi program as a function: stack config → StackSpec → Rendered → the components for spec.target.
 * index.ts calls it; the offline renderer (cli/offline-program.ts) calls it under recording mocks.
 */
import * as os from "node:os";
import * as pulumi from "@pulumi/pulumi";
import { buildHookBundle } from "./components/hook-bundle";
import { DockerVectorStack } from "./components/docker/vector-stack";
import { VectorStack } from "./components/kubernetes/vector-stack";
import { renderStack } from "./configs/render";
import { parseStackSpec, secretConfigKeys } from "./configs/spec";

/** Config keys arrive as strings; structured values are JSON. */
function readConfig(config: pulumi.Config, keys: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of keys) {
    const text = config.get(key);
    if (text === undefined) continue;
    try {
      out[key] = JSON.parse(text);
    } catch {
      out[key] = text;
    }
  }
  return out;
}

const specKeys = ["target", "node", "postgres", "pgbouncer", "vectorTables", "benchmark", "alerts", "images", "kubernetes", "docker"];

export function program(): Record<string, unknown> {
  const config = new pulumi.Config("pgvector-stack");
  const stack = pulumi.getStack();
  // `memory: auto` (the perf stack) is sized to the machine running the program, as `pgstack local` does.
  const spec = parseStackSpec(stack, readConfig(config, specKeys), { memoryBytes: os.totalmem(), cpus: os.cpus().length });
  const rendered = renderStack(spec);
  for (const warning of rendered.warnings) void pulumi.log.warn(warning);
  const passwords = Object.fromEntries(secretConfigKeys.map((k) => [k, config.getSecret(k)]));

  switch (spec.target) {
    case "kubernetes": {
      const db = new VectorStack(stack, { rendered, hookBundle: buildHookBundle(), ...passwords });
      return {
        target: spec.target,
        endpoints: db.endpoints,
        connectionString: db.connectionString,
        memoryPlan: db.memoryPlan,
        hookJob: db.hookJobName,
        warnings: rendered.warnings,
      };
    }
    case "docker": {
      const db = new DockerVectorStack(stack, { rendered, hookBundle: buildHookBundle(), ...passwords });
      return {
        target: spec.target,
        endpoints: db.endpoints,
        connectionString: db.connectionString,
        directConnectionString: db.directConnectionString,
        memoryPlan: db.memoryPlan,
        hugePages: db.hugePages,
        hookReport: db.hookReport,
        warnings: rendered.warnings,
      };
    }
    case "local":
      // The perf cluster is real processes on the machine that runs `pgstack local perf`, not cloud resources.
      return { target: spec.target, memoryPlan: rendered.memory, note: "target local deploys nothing: run `pgstack local up|perf`", warnings: rendered.warnings };
  }
}
