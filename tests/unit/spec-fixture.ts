/**
 * StackSpecs for tests, built by the real validation (configs/spec.ts) from a staging-like stack config:
 * a 32Gi, 8-cpu SSD node on Kubernetes with every other key at its default. `specFor` deep-merges overrides.
 */
import { parseStackSpec } from "../../configs/spec";
import type { StackSpec } from "../../configs/stack-spec";

export const stagingConfig = { target: "kubernetes", node: { memory: "32Gi", cpus: 8, storage: "ssd" } } as const;

type Config = Record<string, unknown>;

function merge(base: Config, over: Config): Config {
  const out: Config = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const prev = out[key];
    out[key] =
      value && typeof value === "object" && !Array.isArray(value) && prev && typeof prev === "object" && !Array.isArray(prev)
        ? merge(prev as Config, value as Config)
        : value;
  }
  return out;
}

/** The staging-like spec with `overrides` merged into its stack config, validated like a real stack file. */
export function specFor(overrides: Config = {}, stack = "staging"): StackSpec {
  return parseStackSpec(stack, merge(stagingConfig as unknown as Config, overrides));
}

export const stagingSpec: StackSpec = specFor();
