/**
 * The state file of a local perf cluster: `.cache/local/<cluster>/state.json`, mode 0600 in a 0700 directory.
 *
 * It is what lets `pgstack local down` in another process (or after the owner was SIGKILLed) end exactly what the
 * owner started and nothing else: every server by pid AND start time (a pid the kernel reused for someone else's
 * process is never signalled), every scratch directory, and the huge pages the cluster added. It is written at once
 * (write to a temporary file, then rename) each time something is started, so a crash at any point leaves a file that
 * lists everything alive. It also holds the cluster's generated passwords: the only place besides the owner's memory.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { readProcess } from "./runtime/processTable";

/** Where state files live unless told otherwise: the project's `.cache/local/`. */
export const defaultStateRoot = path.resolve(__dirname, "..", ".cache", "local");

export const stateFileName = "state.json";

/** Cluster names become directory names and the `--name` of `local down`: keep them plain. */
const clusterNamePattern = /^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$/;

/** A process as recorded: the pid alone is not an identity once the process is gone and the pid is reused. */
export interface ProcessIdentity {
  readonly pid: number;
  /** Field 22 of /proc/<pid>/stat: clock ticks since boot when it started. */
  readonly startTime: string;
}

export interface RecordedServer extends ProcessIdentity {
  readonly name: string;
  /**
   * The signal that shuts it down cleanly: SIGINT for PostgreSQL and PgBouncer, SIGTERM for the Go servers (exporters,
   * mtail, Prometheus) and the canary, a Node process of this host rather than the rootfs.
   */
  readonly stopSignal: NodeJS.Signals;
  readonly logFile: string;
}

export interface RecordedHugePages {
  /** Pages the plan asked for. */
  readonly requested: number;
  /** Pages this cluster added to /proc/sys/vm/nr_hugepages (what the kernel really gave): exactly what is given back. */
  readonly added: number;
  /** Set once they were given back, so two teardowns never give them back twice. */
  readonly released: boolean;
}

/** Which pgstack command owns the cluster; `local down` signals only owners that are pgstack commands. */
export type ClusterOwnerKind = "local up" | "local perf" | "library";

export interface ClusterState {
  readonly version: 1;
  readonly name: string;
  readonly stack: string;
  readonly createdAt: string;
  readonly owner: ProcessIdentity & { readonly kind: ClusterOwnerKind };
  readonly phase: "starting" | "up" | "stopping";
  /** The start's steps that finished, in order (local/cluster.ts `clusterSteps`): how far a start got. */
  readonly steps: readonly string[];
  /** Servers in start order (teardown goes newest first), the canary among them: every process the cluster runs. */
  readonly servers: readonly RecordedServer[];
  /** Host paths of the rig's scratch directories (data directory, configs, logs, TSDB). */
  readonly scratchDirs: readonly string[];
  readonly hugePages: RecordedHugePages | null;
  readonly ports: Readonly<Record<string, number>>;
  /** Connection strings (with passwords) and the Prometheus URL, once known. */
  readonly urls: Readonly<Record<string, string>>;
  /** Generated passwords by role: kept here so a person can reach a cluster that another process started. */
  readonly passwords: Readonly<Record<string, string>>;
}

export function checkClusterName(name: string): void {
  if (!clusterNamePattern.test(name)) {
    throw new Error(`cluster name "${name}" must be 1–40 letters, digits, _ or -, starting with a letter or digit`);
  }
}

export function clusterDir(root: string, name: string): string {
  checkClusterName(name);
  return path.join(root, name);
}

export function stateFilePath(root: string, name: string): string {
  return path.join(clusterDir(root, name), stateFileName);
}

/** The identity of a running process, or undefined when there is none with that pid. */
export function processIdentity(pid: number): ProcessIdentity | undefined {
  const entry = readProcess(pid);
  return entry === undefined || entry.zombie ? undefined : { pid, startTime: entry.startTime };
}

/** Whether the recorded process still runs: same pid, same start time, not a zombie. */
export function isRunning(recorded: ProcessIdentity): boolean {
  if (!Number.isInteger(recorded.pid) || recorded.pid <= 1) return false;
  const now = processIdentity(recorded.pid);
  return now !== undefined && now.startTime === recorded.startTime;
}

export function ownIdentity(): ProcessIdentity {
  const me = processIdentity(process.pid);
  if (me === undefined) throw new Error(`cannot read /proc/${process.pid}/stat: the local cluster needs Linux's /proc`);
  return me;
}

export function readState(root: string, name: string): ClusterState | undefined {
  const file = stateFilePath(root, name);
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  try {
    const state = JSON.parse(text) as ClusterState;
    if (state.version !== 1 || state.name !== name) throw new Error(`version ${String(state.version)}, name ${String(state.name)}`);
    return state;
  } catch (error) {
    throw new Error(`${file} is not a pgstack cluster state file (${(error as Error).message}); move it away and look for leftovers by hand`);
  }
}

/** Clusters that have a state file under `root`, by name. */
export function listClusters(root: string): string[] {
  let entries: string[];
  try {
    entries = fs.readdirSync(root);
  } catch {
    return [];
  }
  return entries.filter((n) => clusterNamePattern.test(n) && fs.existsSync(path.join(root, n, stateFileName))).sort();
}

/** Thrown when a cluster of that name already has a state file. */
export class ClusterExistsError extends Error {
  override readonly name = "ClusterExistsError";
}

function writeAtomically(file: string, state: ClusterState): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  fs.chmodSync(tmp, 0o600);
  fs.renameSync(tmp, file);
}

/**
 * Creates the state file of a new cluster, refusing when one exists: a running cluster of that name, or the
 * leftovers of one whose owner died (then `local down --name` must clean up first, so nothing is forgotten).
 */
export function createState(root: string, state: ClusterState): void {
  const dir = clusterDir(root, state.name);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(dir, 0o700);
  const file = path.join(dir, stateFileName);
  let fd: number;
  try {
    fd = fs.openSync(file, "wx", 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    const existing = readState(root, state.name);
    const owner = existing?.owner;
    const alive = owner !== undefined && isRunning(owner);
    throw new ClusterExistsError(
      alive
        ? `a cluster named "${state.name}" is already running (owned by pid ${owner.pid}, ${owner.kind}); pick another --name, or stop it with: pgstack local down --name ${state.name}`
        : `a cluster named "${state.name}" was left behind by pid ${owner?.pid ?? "?"}, which is gone; remove its leftovers first with: pgstack local down --name ${state.name}`,
    );
  }
  fs.closeSync(fd);
  writeAtomically(file, state);
}

export function writeState(root: string, state: ClusterState): void {
  writeAtomically(stateFilePath(root, state.name), state);
}

/** Reads, changes and writes the state file; returns the new state, or undefined when there is no file. */
export function updateState(root: string, name: string, change: (state: ClusterState) => ClusterState): ClusterState | undefined {
  const state = readState(root, name);
  if (state === undefined) return undefined;
  const next = change(state);
  writeState(root, next);
  return next;
}

/** Removes the state file and the cluster's directory (only those: nothing else is ever put there). */
export function removeState(root: string, name: string): void {
  const dir = clusterDir(root, name);
  fs.rmSync(path.join(dir, stateFileName), { force: true });
  for (const leftover of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    if (leftover.startsWith(`${stateFileName}.`) && leftover.endsWith(".tmp")) fs.rmSync(path.join(dir, leftover), { force: true });
  }
  try {
    fs.rmdirSync(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
}

/**
 * Whether a recorded directory is one of the rig's scratch directories (`…/tmp/pgstack/<label>-XXXXXX`, see
 * local/runtime/scratch.ts). Teardown deletes only such paths, so an edited or corrupt state file cannot make it
 * delete anything else.
 */
export function isScratchDirPath(dir: string): boolean {
  if (!path.isAbsolute(dir) || path.normalize(dir) !== dir) return false;
  const parent = path.dirname(dir);
  const underRigTmp = parent.endsWith(`${path.sep}tmp${path.sep}pgstack`) || parent === path.join(os.tmpdir(), "pgstack");
  return underRigTmp && /^[A-Za-z0-9_-]+-[A-Za-z0-9]{6}$/.test(path.basename(dir));
}
