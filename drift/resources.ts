/**
 * The resources a Pulumi program registers, as deterministic plain data: `resources.yaml` of a rendered stack.
 * Recorded by cli/offline-program.ts under Pulumi's mocks; normalised here (sorted keys, secrets as the redaction
 * marker, machine paths made relative, huge strings as digests) so the same commit gives the same bytes anywhere.
 */
import { createHash } from "node:crypto";
import * as yaml from "js-yaml";
import { treeChanges, type PathChange } from "./tree-diff";

/** The marker every secret is replaced by (cli/stack-file.ts uses the same for `secure:` config values). */
export const redactionMarker = "[secret]";

/** How Pulumi's RPC layer marks a secret value inside resource inputs (sdk/nodejs/runtime/rpc.ts). */
export const pulumiSigKey = "4dabf18193072939515e22adb298388d";
export const pulumiSecretSig = "1b47061264138c4ac30d75fd1eb44270";

/** Strings longer than this (bundled programs, archives) are recorded as their digest: a review cannot read them anyway. */
export const maxInlineStringBytes = 64 * 1024;

export interface RecordedResource {
  readonly type: string;
  readonly name: string;
  readonly inputs: Record<string, unknown>;
}

export interface NormaliseOptions {
  /** Absolute path of the project: replaced by `<project>` so snapshots do not depend on the checkout's place. */
  readonly projectRoot?: string;
  /**
   * Values that must never appear (the fake passwords handed to the program, planted test secrets): replaced by the
   * redaction marker wherever they reach a non-secret input, and reported through `onLeak`.
   */
  readonly secretValues?: readonly string[];
  readonly onLeak?: (resource: string, path: string) => void;
}

export function isPulumiSecret(value: unknown): boolean {
  return typeof value === "object" && value !== null && (value as Record<string, unknown>)[pulumiSigKey] === pulumiSecretSig;
}

function digest(text: string): string {
  return `[sha256:${createHash("sha256").update(text).digest("hex")}, ${Buffer.byteLength(text)} bytes]`;
}

/** Sorted keys, no undefined, secrets replaced, strings cleaned. Arrays keep their order (it is meaningful). */
export function normaliseValue(value: unknown, opts: NormaliseOptions = {}, where = { resource: "", path: "" }): unknown {
  if (isPulumiSecret(value)) return redactionMarker;
  if (typeof value === "string") {
    let text = value;
    for (const secret of opts.secretValues ?? []) {
      if (secret !== "" && text.includes(secret)) {
        text = text.split(secret).join(redactionMarker);
        opts.onLeak?.(where.resource, where.path);
      }
    }
    if (opts.projectRoot) text = text.split(opts.projectRoot).join("<project>");
    return Buffer.byteLength(text) > maxInlineStringBytes ? digest(text) : text;
  }
  if (Array.isArray(value)) {
    return value.map((v, i) => normaliseValue(v === undefined ? null : v, opts, { ...where, path: `${where.path}[${i}]` }));
  }
  if (typeof value === "object" && value !== null) {
    const o = value as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(o).sort()) {
      if (o[key] === undefined) continue;
      out[key] = normaliseValue(o[key], opts, { ...where, path: where.path ? `${where.path}.${key}` : key });
    }
    return out;
  }
  if (typeof value === "number" && !Number.isFinite(value)) return String(value);
  if (typeof value === "function" || typeof value === "symbol") return String(value);
  if (typeof value === "bigint") return value.toString();
  return value;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Resources in a stable order (name, then type, then inputs), each normalised. */
export function normaliseResources(recorded: readonly RecordedResource[], opts: NormaliseOptions = {}): RecordedResource[] {
  const normalised = recorded.map((r) => ({
    type: r.type,
    name: r.name,
    inputs: normaliseValue(r.inputs ?? {}, opts, { resource: `${r.type} ${r.name}`, path: "" }) as Record<string, unknown>,
  }));
  return normalised.sort(
    (a, b) => compare(a.name, b.name) || compare(a.type, b.type) || compare(JSON.stringify(a.inputs), JSON.stringify(b.inputs)),
  );
}

export interface ResourcesFileHeader {
  readonly stack: string;
  readonly target: string;
}

/** resources.yaml: a comment, then the list. An empty list says why it is empty. */
export function resourcesYaml(resources: readonly RecordedResource[], header: ResourcesFileHeader): string {
  const lines = [
    `# Resources the Pulumi program (index.ts) registers for stack "${header.stack}" (target ${header.target}), recorded`,
    `# offline under Pulumi's mocks by \`pgstack render\`: type, name and inputs. Secrets appear as ${redactionMarker}.`,
  ];
  if (resources.length === 0) {
    lines.push(
      header.target === "local"
        ? `# Target local registers no resources: \`pgstack local\` runs the same rendered files as processes on this host.`
        : `# The program registers no resources for this stack.`,
      "[]",
    );
    return `${lines.join("\n")}\n`;
  }
  const body = yaml.dump(
    resources.map((r) => ({ type: r.type, name: r.name, inputs: r.inputs })),
    { sortKeys: false, lineWidth: -1, noRefs: true, quotingType: '"' },
  );
  return `${lines.join("\n")}\n${body}`;
}

export function parseResourcesYaml(text: string): RecordedResource[] {
  const doc = yaml.load(text);
  if (doc === null || doc === undefined) return [];
  if (!Array.isArray(doc)) throw new Error("resources.yaml is not a list of resources");
  return doc.map((r, i) => {
    const o = r as Record<string, unknown>;
    if (typeof o?.type !== "string" || typeof o?.name !== "string") throw new Error(`resources.yaml entry ${i + 1} has no type or name`);
    return { type: o.type, name: o.name, inputs: (o.inputs ?? {}) as Record<string, unknown> };
  });
}

export interface ResourceChange {
  readonly type: string;
  readonly name: string;
  readonly change: "added" | "removed" | "changed";
  /** Input paths that changed (for `changed`); empty otherwise. */
  readonly inputs: readonly PathChange[];
}

/** `type name`, with `#2`… for a repeated pair (legal under different parents). */
function identities(resources: readonly RecordedResource[]): Map<string, RecordedResource> {
  const out = new Map<string, RecordedResource>();
  for (const r of resources) {
    let id = `${r.type} ${r.name}`;
    for (let n = 2; out.has(id); n++) id = `${r.type} ${r.name}#${n}`;
    out.set(id, r);
  }
  return out;
}

/** What changes between two recordings of the same stack: resources added, removed, and changed per input path. */
export function resourceChanges(before: readonly RecordedResource[], after: readonly RecordedResource[]): ResourceChange[] {
  const a = identities(before);
  const b = identities(after);
  const out: ResourceChange[] = [];
  for (const [id, r] of a) {
    const next = b.get(id);
    if (!next) out.push({ type: r.type, name: r.name, change: "removed", inputs: [] });
    else {
      const inputs = treeChanges(r.inputs, next.inputs);
      if (inputs.length > 0) out.push({ type: r.type, name: r.name, change: "changed", inputs });
    }
  }
  for (const [id, r] of b) if (!a.has(id)) out.push({ type: r.type, name: r.name, change: "added", inputs: [] });
  const rank = { removed: 0, changed: 1, added: 2 } as const;
  return out.sort((x, y) => compare(x.name, y.name) || compare(x.type, y.type) || rank[x.change] - rank[y.change]);
}
