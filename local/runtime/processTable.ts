import * as fs from "node:fs";

/**
 * What /proc says about one process. `startTime` (clock ticks since boot) tells a process apart from a
 * later one that got the same pid, so a pid remembered earlier is only signalled while it is the same process.
 */
export interface ProcessEntry {
  readonly pid: number;
  readonly ppid: number;
  readonly pgrp: number;
  readonly startTime: string;
  readonly zombie: boolean;
}

export function readProcess(pid: number): ProcessEntry | undefined {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined; // gone
  }
  // The command name is in parentheses and may contain spaces or ')'; the fields after it start with state.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { pid, ppid: Number(fields[1]), pgrp: Number(fields[2]), startTime: fields[19], zombie: fields[0] === "Z" };
}

export function allProcesses(): ProcessEntry[] {
  const entries: ProcessEntry[] = [];
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const entry = readProcess(Number(name));
    if (entry !== undefined) entries.push(entry);
  }
  return entries;
}

/** Live (non-zombie) processes whose process group is `pgid`. */
export function processesInGroup(pgid: number): number[] {
  return allProcesses()
    .filter((entry) => entry.pgrp === pgid && !entry.zombie)
    .map((entry) => entry.pid);
}

/**
 * Every live descendant of `pid`. Needed besides the process group because PostgreSQL's backends and
 * auxiliary processes call setsid(): each leads its own group, and a killed postmaster's children are
 * reparented away from it, so they must be listed while the postmaster is still their parent.
 */
export function descendantsOf(pid: number): ProcessEntry[] {
  const children = new Map<number, ProcessEntry[]>();
  for (const entry of allProcesses()) {
    if (entry.zombie) continue;
    const siblings = children.get(entry.ppid) ?? [];
    siblings.push(entry);
    children.set(entry.ppid, siblings);
  }
  const found: ProcessEntry[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift() as number) ?? []) {
      found.push(child);
      queue.push(child.pid);
    }
  }
  return found;
}

/** Whether the remembered process still runs (same pid AND same start time, not a zombie). */
export function stillRunning(entry: ProcessEntry): boolean {
  const now = readProcess(entry.pid);
  return now !== undefined && !now.zombie && now.startTime === entry.startTime;
}

/** Signals a remembered process, only while it is still that same process. */
export function signalIfStillRunning(entry: ProcessEntry, signal: NodeJS.Signals): void {
  if (entry.pid <= 1 || !stillRunning(entry)) return;
  try {
    process.kill(entry.pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
  }
}
