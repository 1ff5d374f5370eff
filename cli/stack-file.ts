/**
 * Reads Pulumi.<stack>.yaml the way Pulumi would, without the Pulumi CLI: js-yaml, the `pgvector-stack:` namespace
 * stripped, `secure:` values replaced by a redaction marker (their ciphertext is never needed offline).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as yaml from "js-yaml";
import { parseStackSpec, stackConfigFromFile, type HostFacts } from "../configs/spec";
import type { StackSpec } from "../configs/stack-spec";

export const redacted = "[secret]";

export function projectRoot(): string {
  return path.resolve(__dirname, "..");
}

export function stackFilePath(stack: string, root = projectRoot()): string {
  return path.join(root, `Pulumi.${stack}.yaml`);
}

export function listStacks(root = projectRoot()): string[] {
  return fs
    .readdirSync(root)
    .map((f) => /^Pulumi\.([A-Za-z0-9_-]+)\.yaml$/.exec(f)?.[1])
    .filter((s): s is string => s !== undefined)
    .sort();
}

function redact(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redact);
  if (value && typeof value === "object") {
    const o = value as Record<string, unknown>;
    if (Object.keys(o).length === 1 && "secure" in o) return redacted;
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, redact(v)]));
  }
  return value;
}

/** The stack file's config with namespaces stripped and secrets redacted. */
export function readStackConfig(stack: string, root = projectRoot()): Record<string, unknown> {
  const file = stackFilePath(stack, root);
  if (!fs.existsSync(file)) {
    const known = listStacks(root);
    throw new Error(`no stack "${stack}": ${file} does not exist (stacks here: ${known.join(", ") || "none"})`);
  }
  const doc = (yaml.load(fs.readFileSync(file, "utf8")) ?? {}) as { config?: Record<string, unknown> };
  return redact(stackConfigFromFile(doc.config ?? {})) as Record<string, unknown>;
}

/** This machine's RAM and cores, for stacks that say `memory: auto`. */
export function thisHost(): HostFacts {
  return { memoryBytes: os.totalmem(), cpus: os.cpus().length };
}

export function loadStackSpec(stack: string, root = projectRoot(), host: HostFacts = thisHost()): StackSpec {
  return parseStackSpec(stack, readStackConfig(stack, root), host);
}
