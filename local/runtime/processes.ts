import { spawn as spawnChild } from "node:child_process";
import * as fs from "node:fs";
import {
  descendantsOf,
  processesInGroup,
  readProcess,
  signalIfStillRunning,
  stillRunning,
  type ProcessEntry,
} from "./processTable";

/** How a run-to-completion command ended, with everything it printed. */
export interface ExecResult {
  /** Exit code, or null when the process was ended by a signal. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** True when the timeout ran out and the command was killed. */
  readonly timedOut: boolean;
}

/** How a server process ended. */
export interface ProcessExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface LaunchOptions {
  readonly env: NodeJS.ProcessEnv;
  readonly cwd?: string;
  readonly uid?: number;
  readonly gid?: number;
}

export interface RunOptions extends LaunchOptions {
  /** Written to the command's standard input, which is then closed. Defaults to nothing (stdin ignored). */
  readonly input?: string;
  /** Defaults to 10 minutes: no command of the rig should take longer, and a hang must not hold CI. */
  readonly timeoutMs?: number;
}

const DEFAULT_EXEC_TIMEOUT_MS = 10 * 60_000;

/**
 * Runs a command to completion and collects its output. The child gets its own process group so that a
 * timeout can end it together with whatever it started (initdb starts postgres in single-user mode).
 */
export function runCommand(command: string, args: readonly string[], opts: RunOptions): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawnChild(command, [...args], {
      env: opts.env,
      cwd: opts.cwd,
      uid: opts.uid,
      gid: opts.gid,
      detached: true,
      stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let timedOut = false;
    child.stdout?.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr?.on("data", (chunk: Buffer) => stderr.push(chunk));
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) killOwnGroup(child.pid, "SIGKILL");
    }, opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(new Error(`could not run ${command}: ${error.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(stdout).toString("utf8"),
        stderr: Buffer.concat(stderr).toString("utf8"),
        timedOut,
      });
    });
    if (opts.input !== undefined && child.stdin) {
      // A command that exits without reading all its input must not crash us with EPIPE.
      child.stdin.on("error", () => undefined);
      child.stdin.end(opts.input);
    }
  });
}

/** A long-running program started by the rig, stopped by its own pid and process group only. */
export interface ServerProcess {
  readonly name: string;
  readonly pid: number;
  /** Host path of the file that receives the program's stdout and stderr. */
  readonly logFile: string;
  /** Settles when the program exits; never rejects. */
  readonly exited: Promise<ProcessExit>;
  /** The exit, once it happened. */
  exitStatus(): ProcessExit | undefined;
  /**
   * Sends `signal` to the program, waits up to `timeoutMs` for it to exit, then SIGKILLs its process group
   * and every descendant. Resolves once nothing of it is left.
   */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<ProcessExit>;
  /** The last lines of the log file, for error messages. */
  logTail(lines?: number): string;
}

export interface ServerLaunch extends LaunchOptions {
  readonly name: string;
  readonly logFile: string;
  /** The signal `stop()` sends first when given none. Defaults to SIGTERM. */
  readonly stopSignal?: NodeJS.Signals;
  /** Called once the process has exited and its group is gone. */
  readonly onGone?: (server: ServerProcess) => void;
}

const DEFAULT_STOP_TIMEOUT_MS = 10_000;
const KILL_WAIT_MS = 5_000;

/**
 * Starts a server detached in its own process group (so its children can be found and ended with it), stdin
 * ignored and stdout/stderr appended to a log file: a server that inherited our stdout would keep a CI step
 * waiting for the pipe to close long after we are gone.
 */
export async function spawnServer(command: string, args: readonly string[], opts: ServerLaunch): Promise<ServerProcess> {
  const logFd = fs.openSync(opts.logFile, "a");
  let child;
  try {
    child = spawnChild(command, [...args], {
      env: opts.env,
      cwd: opts.cwd,
      uid: opts.uid,
      gid: opts.gid,
      detached: true,
      stdio: ["ignore", logFd, logFd],
    });
  } finally {
    fs.closeSync(logFd);
  }
  let status: ProcessExit | undefined;
  const exited = new Promise<ProcessExit>((resolve) => {
    child.once("exit", (code, signal) => {
      status = { code, signal };
      resolve(status);
    });
  });
  await new Promise<void>((resolve, reject) => {
    child.once("spawn", resolve);
    child.once("error", (error) => reject(new Error(`could not start ${opts.name} (${command}): ${error.message}`)));
  });
  const pid = child.pid;
  if (pid === undefined || pid <= 1) throw new Error(`${opts.name} started without a usable pid (${String(pid)})`);
  // A forgotten server must not keep this Node process alive; the registry ends it when we exit.
  child.unref();
  const leader = readProcess(pid);

  const server: ServerProcess = {
    name: opts.name,
    pid,
    logFile: opts.logFile,
    exited,
    exitStatus: () => status,
    logTail: (lines = 40) => logTail(opts.logFile, lines),
    async stop(signal = opts.stopSignal ?? "SIGTERM", timeoutMs = DEFAULT_STOP_TIMEOUT_MS) {
      // Remembered before signalling: once the leader is gone its children no longer point at it. Only
      // while it runs: after it exited the pid may belong to someone else.
      const family = status === undefined ? descendantsOf(pid) : [];
      if (status === undefined) {
        signalPid(pid, signal);
        if ((await within(exited, timeoutMs)) === undefined) {
          family.push(...killTree(pid));
          if ((await within(exited, KILL_WAIT_MS)) === undefined) {
            throw new Error(`${opts.name} (pid ${pid}) did not exit after SIGKILL`);
          }
        }
      }
      await endLeftovers(opts.name, pid, leader, family);
      opts.onGone?.(server);
      return (status ?? (await exited));
    },
  };
  return server;
}

/** Signals exactly one process that we started. */
function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
  }
}

/**
 * Signals the process group led by a child that WE spawned with `detached: true` (so its pgid is its pid).
 * Guarded so that a bad value can never turn into kill(0) or kill(-1), which would hit our own group or
 * every process we may signal.
 */
export function killOwnGroup(pid: number, signal: NodeJS.Signals): void {
  if (!Number.isInteger(pid) || pid <= 1) throw new Error(`refusing to signal process group of pid ${pid}`);
  try {
    process.kill(-pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
  }
}

/**
 * SIGKILLs a server we started: its process group and every descendant (PostgreSQL's children lead groups
 * of their own). Synchronous, so the exit hook can use it. Returns the descendants it signalled.
 */
export function killTree(pid: number): ProcessEntry[] {
  const family = descendantsOf(pid);
  killOwnGroup(pid, "SIGKILL");
  for (const entry of family) signalIfStillRunning(entry, "SIGKILL");
  return family;
}

/**
 * Waits until nothing of the server is left, SIGKILLing stragglers: members of its process group and
 * remembered descendants. Linux does not hand out a pid while a process group still carries it, so when
 * the leader's pid now belongs to another process, the group is empty and is left alone.
 */
async function endLeftovers(
  name: string,
  pgid: number,
  leader: ProcessEntry | undefined,
  family: readonly ProcessEntry[],
): Promise<void> {
  const groupIsOurs = (): boolean => {
    const now = readProcess(pgid);
    return now === undefined || (leader !== undefined && now.startTime === leader.startTime);
  };
  const groupMembers = (): number[] => (groupIsOurs() ? processesInGroup(pgid) : []);
  const left = (): number[] => [...groupMembers(), ...family.filter(stillRunning).map((entry) => entry.pid)];
  for (let attempt = 0; attempt < 50 && left().length > 0; attempt++) {
    if (groupMembers().length > 0) killOwnGroup(pgid, "SIGKILL");
    for (const entry of family) signalIfStillRunning(entry, "SIGKILL");
    await delay(100);
  }
  if (left().length > 0) throw new Error(`processes ${left().join(", ")} of ${name} survived SIGKILL`);
}

export function logTail(file: string, lines: number): string {
  let text: string;
  try {
    const fd = fs.openSync(file, "r");
    try {
      const size = fs.fstatSync(fd).size;
      const length = Math.min(size, 64 * 1024);
      const buffer = Buffer.alloc(length);
      fs.readSync(fd, buffer, 0, length, size - length);
      text = buffer.toString("utf8");
    } finally {
      fs.closeSync(fd);
    }
  } catch (error) {
    return `(no log: ${(error as Error).message})`;
  }
  const all = text.trimEnd().split("\n");
  return all.slice(-lines).join("\n");
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The promise's value if it settles within `ms`, otherwise undefined. */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
