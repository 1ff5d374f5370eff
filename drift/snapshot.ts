/**
 * Two renders of every stack compared file by file, each file the way a reviewer reads it: settings files as
 * settings (`shared_buffers: 8GB → 16GB`), resources per input path, data files (plan.json, alert rules) per path,
 * anything else as a short unified diff.
 */
import * as yaml from "js-yaml";
import { parseKeyValueLines, parsePgBouncerIni, parsePostgresqlConf, type Settings } from "./config-files";
import { parseResourcesYaml, resourceChanges, type ResourceChange } from "./resources";
import { unifiedDiff } from "./text-diff";
import { treeChanges, type PathChange } from "./tree-diff";
import { sameSetting } from "./values";

/** stack → relative file path → content. */
export type RenderedTree = Readonly<Record<string, Readonly<Record<string, string>>>>;

export interface SettingChange {
  readonly name: string;
  /** Absent when the setting was added. */
  readonly old?: string;
  /** Absent when the setting was removed. */
  readonly new?: string;
}

export type FileDrift =
  | { readonly file: string; readonly change: "added" | "removed"; readonly summary: string; readonly items: readonly string[] }
  | {
      readonly file: string;
      readonly change: "changed";
      readonly kind: "settings";
      readonly settings: readonly SettingChange[];
      /** When no setting changed: the lines (comments, layout) that did. */
      readonly diff: readonly string[];
    }
  | { readonly file: string; readonly change: "changed"; readonly kind: "resources"; readonly resources: readonly ResourceChange[] }
  | { readonly file: string; readonly change: "changed"; readonly kind: "data"; readonly paths: readonly PathChange[] }
  | { readonly file: string; readonly change: "changed"; readonly kind: "text"; readonly diff: readonly string[] };

export interface StackDrift {
  readonly stack: string;
  readonly change: "added" | "removed" | "changed" | "unchanged";
  readonly files: readonly FileDrift[];
}

export interface SnapshotDrift {
  readonly drift: boolean;
  /** What the old side is (`rendered/`, a base branch's snapshot) and the new side (`this commit`). */
  readonly before: string;
  readonly after: string;
  readonly stacks: readonly StackDrift[];
}

const settingsParsers: Readonly<Record<string, (text: string) => Settings>> = {
  "postgresql.conf": parsePostgresqlConf,
  "pgbouncer.ini": parsePgBouncerIni,
  "memory-plan.yaml": parseKeyValueLines,
};

function baseName(file: string): string {
  return file.slice(file.lastIndexOf("/") + 1);
}

function dataOf(file: string, text: string): unknown {
  if (file.endsWith(".json")) return JSON.parse(text);
  return yaml.load(text);
}

export function settingChanges(before: Settings, after: Settings): SettingChange[] {
  const out: SettingChange[] = [];
  for (const [name, old] of before) {
    const next = after.get(name);
    if (next === undefined) out.push({ name, old });
    else if (!sameSetting(old, next)) out.push({ name, old, new: next });
  }
  for (const [name, next] of after) if (!before.has(name)) out.push({ name, new: next });
  return out;
}

/** A one-line summary and the list of what a whole added or removed file holds. */
function contents(file: string, text: string): { summary: string; items: string[] } {
  const name = baseName(file);
  try {
    if (name === "resources.yaml") {
      const resources = parseResourcesYaml(text);
      return { summary: `${resources.length} resource${resources.length === 1 ? "" : "s"}`, items: resources.map((r) => `${r.type} ${r.name}`) };
    }
    const parse = settingsParsers[name];
    if (parse) {
      const settings = parse(text);
      return { summary: `${settings.size} settings`, items: [...settings].map(([k, v]) => `${k} = ${v}`) };
    }
  } catch {
    // Unreadable as its kind: fall through to lines.
  }
  const lines = text.split("\n").length - (text.endsWith("\n") ? 1 : 0);
  return { summary: `${lines} line${lines === 1 ? "" : "s"}`, items: [] };
}

/** How one file changed; undefined when the bytes are equal. */
export function fileDrift(file: string, before: string | undefined, after: string | undefined): FileDrift | undefined {
  if (before === after) return undefined;
  if (before === undefined) return { file, change: "added", ...contents(file, after as string) };
  if (after === undefined) return { file, change: "removed", ...contents(file, before) };
  const name = baseName(file);
  try {
    const parse = settingsParsers[name];
    if (parse) {
      const settings = settingChanges(parse(before), parse(after));
      return { file, change: "changed", kind: "settings", settings, diff: settings.length === 0 ? unifiedDiff(before, after) : [] };
    }
    if (name === "resources.yaml") {
      const resources = resourceChanges(parseResourcesYaml(before), parseResourcesYaml(after)).map((r) => ({
        ...r,
        inputs: r.inputs.flatMap(expandEmbeddedFile),
      }));
      return { file, change: "changed", kind: "resources", resources };
    }
    if (/\.(json|ya?ml)$/.test(name)) {
      const paths = treeChanges(dataOf(file, before), dataOf(file, after));
      if (paths.length > 0) return { file, change: "changed", kind: "data", paths };
    }
  } catch {
    // A file that no longer parses as its kind is still compared, as text.
  }
  return { file, change: "changed", kind: "text", diff: unifiedDiff(before, after) };
}

/** A rendered file named in an input path: `data["postgresql.conf"]`, `uploads[file=/etc/pgstack/pgbouncer.ini].content`. */
const embeddedFileName = /([\w-]+(?:\.[\w-]+)*\.(?:conf|ini|json|ya?ml))\b/g;

/**
 * A resource input that holds a whole rendered file (a ConfigMap key, a container upload) compared the way the file
 * itself is: `data["postgresql.conf"] › shared_buffers: 16GB → 32GB` instead of a diff of the text.
 */
export function expandEmbeddedFile(change: PathChange): PathChange[] {
  if (typeof change.old !== "string" || typeof change.new !== "string" || !change.old.includes("\n")) return [change];
  const names = [...change.path.matchAll(embeddedFileName)].map((m) => m[1]);
  const name = names.at(-1);
  if (!name) return [change];
  const drift = fileDrift(name, change.old, change.new);
  if (!drift || drift.change !== "changed") return [change];
  if (drift.kind === "settings" && drift.settings.length > 0) {
    return drift.settings.map((s) => ({ path: `${change.path} › ${s.name}`, old: s.old, new: s.new }));
  }
  if (drift.kind === "data") return drift.paths.map((p) => ({ ...p, path: `${change.path} › ${p.path}` }));
  return [change];
}

/** Stack names and file names in a stable order: rendered files first in the order people read them. */
const fileOrder = ["memory-plan.yaml", "postgresql.conf", "pgbouncer.ini", "resources.yaml", "hnsw-plan.sql", "plan.json", "alert-rules.yaml"];

function fileRank(file: string): number {
  const i = fileOrder.indexOf(file);
  return i < 0 ? fileOrder.length : i;
}

export function sortFiles(files: readonly string[]): string[] {
  return [...files].sort((a, b) => fileRank(a) - fileRank(b) || (a < b ? -1 : a > b ? 1 : 0));
}

export function compareRendered(before: RenderedTree, after: RenderedTree, labels = { before: "rendered/", after: "this commit" }): SnapshotDrift {
  const stacks = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
  const out: StackDrift[] = stacks.map((stack) => {
    const a = before[stack];
    const b = after[stack];
    const files = sortFiles([...new Set([...Object.keys(a ?? {}), ...Object.keys(b ?? {})])]);
    const drift = files.map((f) => fileDrift(f, a?.[f], b?.[f])).filter((d): d is FileDrift => d !== undefined);
    const change = a === undefined ? "added" : b === undefined ? "removed" : drift.length > 0 ? "changed" : "unchanged";
    return { stack, change, files: drift };
  });
  return { drift: out.some((s) => s.change !== "unchanged"), before: labels.before, after: labels.after, stacks: out };
}
