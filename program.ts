/**
 * The Pulumi program as a function: stack config → StackSpec → Rendered → the components for spec.target.
 * index.ts calls it; the offline renderer (cli/offline-program.ts) calls it under recording mocks.
 *
 * It reads the whole `pgvector-stack:` namespace and hands it to the same gate `pgstack` uses (configs/spec.ts
 * parseStackSpec): an unknown key, a bad value or a password in plain text stops `pulumi preview` / `pulumi up`
 * before any resource is registered, with every problem listed once and no stack trace (pulumi.RunError).
 */
import * as os from "node:os";
import * as pulumi from "@pulumi/pulumi";
import { buildHookBundle } from "./components/hook-bundle";
import { DockerVectorStack } from "./components/docker/vector-stack";
import { deployedOutput, deployedRecord, guardDeploy } from "./components/deploy-guard";
import { VectorStack } from "./components/kubernetes/vector-stack";
import { renderStack } from "./configs/render";
import { configNamespace, parseStackSpec, secretConfigKeys, SpecError, type StackSpec } from "./configs/spec";

/** The namespace's keys (without `pgvector-stack:`) as the stack file holds them, and which were set with --secret. */
export interface NamespaceConfig {
  readonly values: Record<string, unknown>;
  readonly secretKeys: readonly string[];
  /** Every other config key, as written (`kubernetes:context`): checked for a misspelt namespace of ours. */
  readonly otherKeys: readonly string[];
}

/**
 * `isConfigSecret` tells which keys were set with `pulumi config set --secret`. @pulumi/pulumi exports it from
 * `runtime` (runtime/config.js) but leaves it out of its typings, so it is looked up here and its absence is an error
 * rather than a silent "nothing is secret".
 */
function configIsSecret(key: string): boolean {
  const isConfigSecret = (pulumi.runtime as unknown as { isConfigSecret?: (k: string) => boolean }).isConfigSecret;
  if (typeof isConfigSecret !== "function") {
    throw new Error("@pulumi/pulumi no longer exports runtime.isConfigSecret; program.ts cannot tell secret config from plain text");
  }
  return isConfigSecret(key);
}

/**
 * Every key of the namespace. Values arrive as strings; structured values (mappings, lists) and numbers are JSON,
 * as the Pulumi CLI passes them. Keys of other namespaces (`kubernetes:context`, `docker:host`) are other tools'.
 */
export function readNamespaceConfig(namespace = configNamespace): NamespaceConfig {
  const values: Record<string, unknown> = {};
  const secretKeys: string[] = [];
  const otherKeys: string[] = [];
  for (const [fullKey, text] of Object.entries(pulumi.runtime.allConfig())) {
    if (!fullKey.startsWith(`${namespace}:`)) {
      otherKeys.push(fullKey);
      continue;
    }
    const key = fullKey.slice(namespace.length + 1);
    try {
      values[key] = JSON.parse(text);
    } catch {
      values[key] = text;
    }
    if (configIsSecret(fullKey)) secretKeys.push(key);
  }
  return { values, secretKeys: secretKeys.sort(), otherKeys: otherKeys.sort() };
}

/** The gate, with its verdict as Pulumi shows a program's own errors: one message, no stack trace. */
export function stackSpecFromConfig(stack: string, config: NamespaceConfig): StackSpec {
  try {
    // Only a `target: local` stack may size itself from this machine (`memory: auto`); the spec refuses it elsewhere.
    return parseStackSpec(stack, config.values, {
      secretKeys: config.secretKeys,
      otherKeys: config.otherKeys,
      host: { memoryBytes: os.totalmem(), cpus: os.cpus().length },
    });
  } catch (error) {
    if (error instanceof SpecError) throw new pulumi.RunError(error.message);
    throw error;
  }
}

/**
 * Runs the program and returns the stack outputs. Async because a Kubernetes or Docker stack first reads back what
 * its last deploy recorded (components/deploy-guard.ts): a change that cannot be applied (the data volume, the
 * namespace, the application database or role) must stop the program before the first resource is registered.
 */
export async function program(): Promise<Record<string, unknown>> {
  const stack = pulumi.getStack();
  const spec = stackSpecFromConfig(stack, readNamespaceConfig());
  if (spec.target !== "local") await guardDeploy(spec);
  const rendered = renderStack(spec);
  for (const warning of rendered.warnings) void pulumi.log.warn(warning);
  const config = new pulumi.Config(configNamespace);
  const passwords = Object.fromEntries(secretConfigKeys.map((k) => [k, config.getSecret(k)]));

  switch (spec.target) {
    case "kubernetes": {
      const db = new VectorStack(stack, { rendered, hookBundle: buildHookBundle(), ...passwords });
      return {
        target: spec.target,
        endpoints: db.endpoints,
        connectionString: db.connectionString,
        readOnlyConnectionString: db.readOnlyConnectionString,
        ownerConnectionString: db.ownerConnectionString,
        memoryPlan: db.memoryPlan,
        hookJob: db.hookJobName,
        // The CA clients verify the server with (sslmode=verify-full); absent with cert-manager, whose issuer owns it.
        ...(db.caCertificate === undefined ? {} : { caCertificate: db.caCertificate }),
        // Read back by the next deploy's guard.
        [deployedOutput]: deployedRecord(spec),
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
        readOnlyConnectionString: db.readOnlyConnectionString,
        ownerConnectionString: db.ownerConnectionString,
        memoryPlan: db.memoryPlan,
        hugePages: db.hugePages,
        hookReport: db.hookReport,
        caCertificate: db.caCertificate,
        [deployedOutput]: deployedRecord(spec),
        warnings: rendered.warnings,
      };
    }
    case "local":
      // The perf cluster is real processes on the machine that runs `pgstack local perf`, not cloud resources.
      return { target: spec.target, memoryPlan: rendered.memory, note: "target local deploys nothing: run `pgstack local up|perf`", warnings: rendered.warnings };
  }
}
