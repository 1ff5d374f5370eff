/**
 * Writing `<out>/<stack>/` without touching what pgstack did not write.
 *
 * Each stack directory gets a manifest (`.pgstack-manifest.json`) that lists the files pgstack wrote there. A later
 * render overwrites its own files and removes only those the manifest lists and this render no longer writes;
 * anything else in the directory is left where it is and reported. `render --all` removes the directory of a stack
 * that no longer exists only when it is provably ours: its manifest says which files are, and the directory itself
 * goes only when nothing else is left in it.
 *
 * `pgstack drift` reads these directories (cli/drift.ts readFiles) and skips the manifest, so writing it creates no
 * drift against a snapshot that has none.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { UserFacingError } from "./errors";
import { shownPath } from "./stack-file";

export const manifestFile = ".pgstack-manifest.json";

/** The nearest of `target` and its parents that exists (`/` at worst). */
function nearestExisting(target: string): string {
  let at = path.resolve(target);
  while (!fs.existsSync(at) && path.dirname(at) !== at) at = path.dirname(at);
  return at;
}

/** Why `dir` cannot be written into, as a person reads it, or undefined when it can (or could be created). */
function whyNotWritable(dir: string): string | undefined {
  const existing = nearestExisting(dir);
  const where = existing === path.resolve(dir) ? "it" : shownPath(existing);
  if (!fs.statSync(existing).isDirectory()) return `${where} is a file, not a directory`;
  try {
    // Writing needs w (create entries) and x (reach them); root passes this unless the file system is read-only.
    fs.accessSync(existing, fs.constants.W_OK | fs.constants.X_OK);
  } catch (error) {
    return `${where === "it" ? "" : `${where}: `}${systemReason(error)}`;
  }
  return undefined;
}

/** `permission denied`, `read-only file system`…: the system's words for a file system error, without the call. */
function systemReason(error: unknown): string {
  const message = (error as Error)?.message ?? String(error);
  // Node's form: `EACCES: permission denied, mkdir '/x/y'`.
  return /^[A-Z0-9]+: ([^,]+)/.exec(message)?.[1] ?? message;
}

/**
 * Refuses, before any work, an output directory pgstack cannot write: one line naming the path and the reason
 * (`cannot write to /etc/passwd: it is a file, not a directory`). A directory that does not exist yet is fine when
 * the nearest one that does can be written into.
 */
export function checkOutputDir(out: string): void {
  const why = whyNotWritable(out);
  if (why !== undefined) throw new UserFacingError(`cannot write to ${shownPath(out)}: ${why}`);
}

/**
 * A file system error while writing under `dir` as one line for a person, naming the path it happened at and the
 * system's reason; any other error as it is.
 */
function writeError(error: unknown, dir: string): unknown {
  const e = error as NodeJS.ErrnoException;
  if (typeof e?.code !== "string" || typeof e.syscall !== "string") return error;
  const at = typeof e.path === "string" ? e.path : dir;
  // ENOTDIR: some parent is a file; name it rather than "not a directory" of a path that does not exist.
  const reason = e.code === "ENOTDIR" ? (whyNotWritable(at) ?? systemReason(e)) : systemReason(e);
  return new UserFacingError(`cannot write to ${shownPath(at)}: ${reason}`);
}

/**
 * The files every rendered stack directory held before manifests existed, recognised by the memory plan's header
 * (`# Memory plan for stack "…"`): such a directory is ours, but only these names in it are.
 */
const preManifestFiles: readonly string[] = [
  "alert-rules.yaml",
  "grafana-dashboard.json",
  "hnsw-plan.sql",
  "memory-plan.yaml",
  "pg_hba.conf",
  "pgbouncer.ini",
  "plan.json",
  "postgres-exporter-queries.yaml",
  "postgresql.conf",
  "postgresql.mtail",
  "resources.yaml",
];
const memoryPlanHeader = '# Memory plan for stack "';

interface Manifest {
  readonly comment: string;
  readonly stack: string;
  readonly files: readonly string[];
}

export interface StackDirReport {
  readonly stack: string;
  readonly dir: string;
  /** Every file written, sorted (the manifest not counted). */
  readonly written: readonly string[];
  /** Files an earlier render wrote that this one does not: removed. */
  readonly removed: readonly string[];
  /** Files pgstack did not write: left as they are. */
  readonly foreign: readonly string[];
}

export interface PruneReport {
  /** The directory's name: a stack that has no stack file any more, or a directory that is not ours. */
  readonly stack: string;
  readonly dir: string;
  /** False when the directory carries no proof that pgstack wrote it: nothing was removed. */
  readonly ours: boolean;
  readonly removed: readonly string[];
  /** What is left because pgstack did not write it; the directory stays when this is not empty. */
  readonly foreign: readonly string[];
}

/** Every file under `dir` by relative path (forward slashes), sorted; symlinks are listed, never followed. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (sub: string) => {
    for (const entry of fs.readdirSync(path.join(dir, sub), { withFileTypes: true })) {
      const rel = sub ? `${sub}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(rel);
      else out.push(rel);
    }
  };
  if (fs.existsSync(dir)) walk("");
  return out.sort();
}

function readManifest(dir: string): Manifest | undefined {
  const file = path.join(dir, manifestFile);
  if (!fs.existsSync(file)) return undefined;
  try {
    const parsed = JSON.parse(fs.readFileSync(file, "utf8")) as Partial<Manifest>;
    if (Array.isArray(parsed.files) && parsed.files.every((f) => typeof f === "string")) return parsed as Manifest;
  } catch {
    // A manifest that is not JSON proves nothing: treated as absent.
  }
  return undefined;
}

function hasPreManifestPlan(dir: string): boolean {
  const plan = path.join(dir, "memory-plan.yaml");
  if (!fs.existsSync(plan) || !fs.statSync(plan).isFile()) return false;
  return fs.readFileSync(plan, "utf8").startsWith(memoryPlanHeader);
}

/** The files of `dir` pgstack can prove it wrote: its manifest's list, or the pre-manifest names; else none. */
function ownedFiles(dir: string): ReadonlySet<string> | undefined {
  const manifest = readManifest(dir);
  if (manifest !== undefined) return new Set([...manifest.files, manifestFile]);
  if (hasPreManifestPlan(dir)) return new Set(preManifestFiles);
  return undefined;
}

/** Removes `rel` under `dir`, then each directory between them that this leaves empty (never `dir` itself). */
function removeFile(dir: string, rel: string): void {
  fs.rmSync(path.join(dir, rel), { force: true });
  for (let parent = path.dirname(rel); parent !== "."; parent = path.dirname(parent)) {
    const abs = path.join(dir, parent);
    if (fs.readdirSync(abs).length > 0) break;
    fs.rmdirSync(abs);
  }
}

function manifestText(stack: string, files: readonly string[]): string {
  const manifest: Manifest = {
    comment: "Written by pgstack render: the files it wrote here. It removes only these; anything else is left alone.",
    stack,
    files,
  };
  return `${JSON.stringify(manifest, null, 2)}\n`;
}

/**
 * Writes one stack's files into `dir` (created when missing) and its manifest last, so an interrupted write still
 * leaves the earlier manifest, which lists what the earlier render wrote. Removes only files an earlier render of
 * pgstack wrote there and this one does not.
 */
export function writeStackDir(dir: string, stack: string, files: Readonly<Record<string, string>>): StackDirReport {
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory()) {
    throw new UserFacingError(`${shownPath(dir)} is a file, not a directory; pgstack render writes stack ${stack}'s files into a directory there`);
  }
  try {
    return writeStackFiles(dir, stack, files);
  } catch (error) {
    throw writeError(error, dir);
  }
}

function writeStackFiles(dir: string, stack: string, files: Readonly<Record<string, string>>): StackDirReport {
  const written = Object.keys(files).sort();
  const writing = new Set(written);
  const owned = ownedFiles(dir) ?? new Set<string>();
  const existing = filesUnder(dir).filter((f) => f !== manifestFile && !writing.has(f));
  const removed = existing.filter((f) => owned.has(f));
  const foreign = existing.filter((f) => !owned.has(f));
  for (const rel of removed) removeFile(dir, rel);
  for (const rel of written) {
    const file = path.join(dir, rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, files[rel]);
  }
  fs.writeFileSync(path.join(dir, manifestFile), manifestText(stack, written));
  return { stack, dir, written, removed, foreign };
}

/**
 * Removes, under `out`, the directories of stacks not in `keep` that are provably ours (a manifest, or a
 * pre-manifest memory plan): only the files pgstack wrote, then the directory if that left it empty. Directories
 * that are not ours are reported and left alone. Hidden entries (`.git`, editors' state) are not looked at.
 */
export function pruneStaleStacks(out: string, keep: ReadonlySet<string>): PruneReport[] {
  try {
    return pruneStacks(out, keep);
  } catch (error) {
    throw writeError(error, out);
  }
}

function pruneStacks(out: string, keep: ReadonlySet<string>): PruneReport[] {
  if (!fs.existsSync(out)) return [];
  const reports: PruneReport[] = [];
  const entries = fs.readdirSync(out, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const entry of entries) {
    if (!entry.isDirectory() || keep.has(entry.name) || entry.name.startsWith(".")) continue;
    const dir = path.join(out, entry.name);
    const owned = ownedFiles(dir);
    const present = filesUnder(dir);
    if (owned === undefined) {
      reports.push({ stack: entry.name, dir, ours: false, removed: [], foreign: present });
      continue;
    }
    const removed = present.filter((f) => owned.has(f));
    const foreign = present.filter((f) => !owned.has(f));
    for (const rel of removed) removeFile(dir, rel);
    if (fs.readdirSync(dir).length === 0) fs.rmdirSync(dir);
    reports.push({ stack: entry.name, dir, ours: true, removed: removed.filter((f) => f !== manifestFile), foreign });
  }
  return reports;
}
