/**
 * Tears a local perf cluster down from its state file: what `pgstack local down` does in a process that did not start
 * the cluster, e.g. after the owner was SIGKILLed.
 *
 * Safety, because a teardown that signals the wrong thing can take a CI runner down with it:
 *  - only positive pids are signalled, one by one, and only while /proc shows the same start time as recorded (a pid
 *    reused by another process is left alone); never a process group, never 0 or -1;
 *  - a live owner that is a pgstack command is asked to tear down itself (SIGTERM to its pid), and only ended with
 *    SIGKILL when it does not within a minute; an owner that is some other program (a library user) is not touched;
 *  - only the rig's scratch directories (…/tmp/pgstack/<label>-XXXXXX) are deleted;
 *  - huge pages are given back once, under the machine-wide lock, by the count recorded as added.
 */
import * as fs from "node:fs";
import { silentProgress, type Progress } from "../configs/progress";
import { giveBackHugePagesLocked, kernelHugePages, withHugePagesLock, withHugePagesLockSync, type HugePagesPool } from "./hugepages";
import { descendantsOf, readProcess } from "./runtime/processTable";
import {
  isRunning,
  isScratchDirPath,
  readState,
  removeState,
  stateFilePath,
  updateState,
  type ClusterState,
  type ProcessIdentity,
  type RecordedHugePages,
  type RecordedServer,
} from "./state";

export interface TeardownReport {
  readonly name: string;
  /** False when there was no state file: nothing to do. */
  readonly found: boolean;
  /** The owner was alive and tore the cluster down itself after our SIGTERM. */
  readonly ownerTornDown: boolean;
  /** Servers we stopped (name and pid). */
  readonly stopped: readonly string[];
  /** Servers that were already gone. */
  readonly alreadyGone: readonly string[];
  readonly removedDirs: readonly string[];
  /** Pages given back to the kernel. */
  readonly hugePagesGivenBack: number;
}

export interface TeardownOptions {
  readonly progress?: Progress;
  /** How long a live owner may take to tear down itself after SIGTERM. Defaults to 60 s. */
  readonly ownerGraceMs?: number;
  /** Defaults to the kernel's pool. */
  readonly hugePagesPool?: HugePagesPool;
}

/**
 * Gives back the huge pages the state file says the cluster added, once: under the lock, re-reading the state so two
 * teardowns racing never both give them back. `fallback` is the caller's own record, for when the file is gone.
 */
export async function giveBackRecordedHugePages(
  root: string,
  name: string,
  fallback: RecordedHugePages | null,
  pool: HugePagesPool = kernelHugePages(),
): Promise<number> {
  return withHugePagesLock(pool, () => giveBackRecordedLocked(root, name, fallback, pool));
}

/** The same for an `exit` listener, which cannot wait for the event loop. */
export function giveBackRecordedHugePagesSync(
  root: string,
  name: string,
  fallback: RecordedHugePages | null,
  pool: HugePagesPool = kernelHugePages(),
): number {
  return withHugePagesLockSync(pool, () => giveBackRecordedLocked(root, name, fallback, pool));
}

function giveBackRecordedLocked(root: string, name: string, fallback: RecordedHugePages | null, pool: HugePagesPool): number {
  const onDisk = readState(root, name);
  const record = onDisk ? onDisk.hugePages : fallback;
  if (record === null || record.released || record.added <= 0) return 0;
  giveBackHugePagesLocked(record.added, pool);
  if (onDisk) updateState(root, name, (s) => ({ ...s, hugePages: { ...record, released: true } }));
  return record.added;
}

export async function teardownFromState(root: string, name: string, opts: TeardownOptions = {}): Promise<TeardownReport> {
  const progress = opts.progress ?? silentProgress;
  const empty: TeardownReport = { name, found: false, ownerTornDown: false, stopped: [], alreadyGone: [], removedDirs: [], hugePagesGivenBack: 0 };
  let state = readState(root, name);
  if (state === undefined) return empty;

  // 1. A live owner tears down itself: it holds the server objects and knows what it is in the middle of.
  if (state.owner.pid !== process.pid && isRunning(state.owner)) {
    if (state.owner.kind === "library") {
      throw new Error(
        `cluster "${name}" belongs to pid ${state.owner.pid}, a program using local/cluster.ts directly (not a pgstack command); stop it there`,
      );
    }
    progress.step(`asking pid ${state.owner.pid} (pgstack ${state.owner.kind}) to tear down cluster ${name}`);
    signalRecorded(state.owner, "SIGTERM");
    const gone = await waitFor(() => !isRunning(state!.owner), opts.ownerGraceMs ?? 60_000);
    if (!gone) {
      progress.warn(`pid ${state.owner.pid} did not finish within ${Math.round((opts.ownerGraceMs ?? 60_000) / 1000)} s; ending it with SIGKILL and tearing down here`);
      signalRecorded(state.owner, "SIGKILL");
      await waitFor(() => !isRunning(state!.owner), 5_000);
    }
    const after = readState(root, name);
    if (after === undefined) return { ...empty, found: true, ownerTornDown: true };
    state = after;
  }

  // 2. Servers, newest first (the exporters and PgBouncer before the PostgreSQL they talk to).
  updateState(root, name, (s) => ({ ...s, phase: "stopping" }));
  const stopped: string[] = [];
  const alreadyGone: string[] = [];
  const failures: string[] = [];
  for (const server of [...state.servers].reverse()) {
    const label = `${server.name} (pid ${server.pid})`;
    if (!isRunning(server)) {
      alreadyGone.push(label);
      continue;
    }
    progress.step(`stopping ${label} with ${server.stopSignal}`);
    try {
      await stopRecordedServer(server);
      stopped.push(label);
    } catch (error) {
      failures.push(`${label}: ${(error as Error).message}`);
    }
  }
  if (failures.length > 0) {
    // Directories and pages stay while a process may still use them; the state file stays so down can be re-run.
    throw new Error(`cluster "${name}": could not stop ${failures.join("; ")}; the state file ${stateFilePath(root, name)} is kept`);
  }

  // 3. Scratch directories, 4. huge pages, 5. the state file.
  const removedDirs = removeScratchDirs(state, progress);
  const hugePagesGivenBack = await giveBackRecordedHugePages(root, name, state.hugePages, opts.hugePagesPool);
  if (hugePagesGivenBack > 0) progress.step(`gave back ${hugePagesGivenBack} huge pages`);
  removeState(root, name);
  return { name, found: true, ownerTornDown: false, stopped, alreadyGone, removedDirs, hugePagesGivenBack };
}

/** Deletes the recorded scratch directories that look like the rig's; returns those removed. */
export function removeScratchDirs(state: Pick<ClusterState, "scratchDirs">, progress: Progress = silentProgress): string[] {
  const removed: string[] = [];
  for (const dir of state.scratchDirs) {
    if (!isScratchDirPath(dir)) {
      progress.warn(`not deleting ${dir}: it is not one of the rig's scratch directories (…/tmp/pgstack/<label>-XXXXXX)`);
      continue;
    }
    if (!fs.existsSync(dir)) continue;
    fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    removed.push(dir);
  }
  return removed;
}

const stopGraceMs = 30_000;

/**
 * Stops one recorded server: its own stop signal to its pid, then (after 30 s) SIGKILL to it and to every process it
 * had started (listed before signalling, while they are still its children). Each by pid; never a process group.
 */
async function stopRecordedServer(server: RecordedServer): Promise<void> {
  const family: ProcessIdentity[] = descendantsOf(server.pid).map((e) => ({ pid: e.pid, startTime: e.startTime }));
  const alive = (): ProcessIdentity[] => [server, ...family].filter((p) => isRunning(p));
  signalRecorded(server, server.stopSignal);
  if (await waitFor(() => alive().length === 0, stopGraceMs)) return;
  for (let round = 0; round < 20; round++) {
    const left = alive();
    if (left.length === 0) return;
    for (const p of left) signalRecorded(p, "SIGKILL");
    await delay(100);
  }
  const left = alive().map((p) => p.pid);
  if (left.length > 0) throw new Error(`processes ${left.join(", ")} survived SIGKILL`);
}

/** Signals one recorded process by its pid, only while it is still that process. */
function signalRecorded(p: ProcessIdentity, signal: NodeJS.Signals): void {
  if (!Number.isInteger(p.pid) || p.pid <= 1 || p.pid === process.pid) return;
  const now = readProcess(p.pid);
  if (now === undefined || now.zombie || now.startTime !== p.startTime) return;
  try {
    process.kill(p.pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
  }
}

async function waitFor(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) return false;
    await delay(100);
  }
  return true;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
