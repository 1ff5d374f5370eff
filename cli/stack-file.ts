/**
 * Reads Pulumi.<stack>.yaml the way Pulumi would, without the Pulumi CLI: js-yaml, the `pgvector-stack:` namespace
 * stripped, `secure:` values replaced by a redaction marker (their ciphertext is never needed offline).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as yaml from "js-yaml";
import { otherNamespaceKeys, parseStackSpec, stackConfigFromFile, type HostFacts } from "../configs/spec";
import { closest } from "../configs/spec-reader";
import type { StackSpec } from "../configs/stack-spec";
import { isPeopleError, isUsageError, UsageError, UserFacingError } from "./errors";

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

/** A path as a person would type it from here: relative when under the current directory, absolute otherwise. */
export function shownPath(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel === "" ? "." : rel.startsWith("..") || path.isAbsolute(rel) ? file : rel;
}

/** `no stack "prdo"; did you mean prod? (stacks: dev, perf, prod, staging)`, as a usage error (exit 2). */
export function unknownStackError(stack: string, root = projectRoot()): UsageError {
  const known = listStacks(root);
  const guess = closest(stack, known);
  const stacks = `stacks: ${known.join(", ") || `none (no Pulumi.<stack>.yaml in ${shownPath(root)})`}`;
  return new UsageError(`no stack "${stack}"${guess !== undefined ? `; did you mean ${guess}? (${stacks})` : ` (${stacks})`}`);
}

/**
 * The unknown names among `stacks`, all of them in one usage error, each with its "did you mean" when there is one:
 * `no stacks "prdo" (did you mean prod?), "zzz" (stacks: dev, perf, prod, staging)`. Undefined when all are known.
 */
function unknownStacksError(stacks: readonly string[], root: string): UsageError | undefined {
  const known = listStacks(root);
  const unknown = [...new Set(stacks.filter((s) => !known.includes(s)))];
  if (unknown.length === 0) return undefined;
  if (unknown.length === 1) return unknownStackError(unknown[0], root);
  const named = unknown.map((s) => {
    const guess = closest(s, known);
    return guess === undefined ? `"${s}"` : `"${s}" (did you mean ${guess}?)`;
  });
  return new UsageError(`no stacks ${named.join(", ")} (stacks: ${known.join(", ") || `none (no Pulumi.<stack>.yaml in ${shownPath(root)})`})`);
}

/** Refuses unknown stack names, all of them in one error, before any slow work starts. */
export function checkStacks(stacks: readonly string[], root = projectRoot()): void {
  const error = unknownStacksError(stacks, root);
  if (error !== undefined) throw error;
}

/** A js-yaml error as `Pulumi.prod.yaml:3:7: bad indentation of a mapping entry` (1-based line and column). */
function yamlError(file: string, error: unknown): UserFacingError {
  const e = error as { name?: string; reason?: string; message?: string; mark?: { line: number; column: number } };
  if (e?.name === "YAMLException" && e.mark) {
    return new UserFacingError(`${shownPath(file)}:${e.mark.line + 1}:${e.mark.column + 1}: ${e.reason ?? "invalid YAML"}`);
  }
  return new UserFacingError(`${shownPath(file)}: ${e?.message ?? String(error)}`);
}

/** The parsed stack file; a file that is not YAML, or not a mapping with a `config:` mapping, is a person's error. */
function readStackDocument(file: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = yaml.load(fs.readFileSync(file, "utf8"));
  } catch (error) {
    throw yamlError(file, error);
  }
  if (doc === undefined || doc === null) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) throw new UserFacingError(`${shownPath(file)}: a stack file is a mapping with a config: key, not ${Array.isArray(doc) ? "a list" : JSON.stringify(doc)}`);
  const config = (doc as Record<string, unknown>).config;
  if (config !== undefined && config !== null && (typeof config !== "object" || Array.isArray(config))) {
    throw new UserFacingError(`${shownPath(file)}: config must be a mapping of keys to values, not ${Array.isArray(config) ? "a list" : JSON.stringify(config)}`);
  }
  return (config ?? {}) as Record<string, unknown>;
}

/** A stack file as the gate reads it: this namespace's keys (secrets redacted) and every other key, as written. */
export interface StackFileConfig {
  readonly config: Record<string, unknown>;
  /** Keys of other namespaces (`kubernetes:context`): the gate refuses a misspelling of ours among them. */
  readonly otherKeys: readonly string[];
}

export function readStackFile(stack: string, root = projectRoot()): StackFileConfig {
  const file = stackFilePath(stack, root);
  if (!listStacks(root).includes(stack) || !fs.existsSync(file)) throw unknownStackError(stack, root);
  const document = readStackDocument(file);
  return { config: redact(stackConfigFromFile(document)) as Record<string, unknown>, otherKeys: otherNamespaceKeys(document) };
}

/** The stack file's config with namespaces stripped and secrets redacted. */
export function readStackConfig(stack: string, root = projectRoot()): Record<string, unknown> {
  return readStackFile(stack, root).config;
}

/** This machine's RAM and cores, for stacks that say `memory: auto`. */
export function thisHost(): HostFacts {
  return { memoryBytes: os.totalmem(), cpus: os.cpus().length };
}

/**
 * Keys whose value the stack file holds encrypted (`secure:`), read off the redaction marker readStackConfig puts in
 * their place: the spec refuses a secret key that is not among them (a password in plain text).
 */
export function secretKeysOf(config: Readonly<Record<string, unknown>>): string[] {
  return Object.keys(config).filter((key) => config[key] === redacted);
}

export function loadStackSpec(stack: string, root = projectRoot(), host: HostFacts = thisHost()): StackSpec {
  const { config, otherKeys } = readStackFile(stack, root);
  return parseStackSpec(stack, config, { host, secretKeys: secretKeysOf(config), otherKeys });
}

/**
 * Every named stack's spec, in order, or one error with every stack's problem at once: the unknown names (one line
 * for all), each malformed stack file, each stack's configuration errors. One problem is thrown as it is; several
 * become one error, `3 stacks have problems:` and each problem indented below, a usage error (exit 2) when a name is
 * unknown, a failure (exit 1) otherwise. An error that is not a person's (a bug) is thrown as it is, first.
 */
export function loadStackSpecs(stacks: readonly string[], root = projectRoot(), host: HostFacts = thisHost()): StackSpec[] {
  const known = new Set(listStacks(root));
  const unknown = unknownStacksError(stacks, root);
  const problems: Error[] = unknown === undefined ? [] : [unknown];
  let stacksWithProblems = new Set(stacks.filter((s) => !known.has(s))).size;
  const specs = new Map<string, StackSpec>();
  for (const stack of new Set(stacks)) {
    if (!known.has(stack)) continue;
    try {
      specs.set(stack, loadStackSpec(stack, root, host));
    } catch (error) {
      if (!isPeopleError(error)) throw error;
      problems.push(error as Error);
      stacksWithProblems += 1;
    }
  }
  if (problems.length === 1) throw problems[0];
  if (problems.length > 1) {
    const message = `${stacksWithProblems} stacks have problems:\n${problems.map((p) => p.message.replace(/^/gm, "  ")).join("\n")}`;
    throw problems.some(isUsageError) ? new UsageError(message) : new UserFacingError(message);
  }
  return stacks.map((stack) => specs.get(stack)!);
}
