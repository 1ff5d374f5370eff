/**
 * Huge pages for the local perf cluster: reserve EXACTLY the pages the memory plan computed, on top of what the host
 * already has reserved, check that the kernel really has them free, and later give back exactly what was added.
 *
 * The kernel may grant fewer pages than asked when memory is fragmented; /proc/sys/vm/nr_hugepages then reads back
 * lower, and we never start PostgreSQL with `huge_pages = on` on a short pool: it would fail at start, or (with
 * `try`) silently run on 4 kB pages. Pages are added and given back by difference, never by setting an absolute
 * value, so two clusters side by side each give back only their own. A lock file serialises the read-modify-write
 * of nr_hugepages between pgstack processes.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { hugePageBytes } from "../configs/hugepages";
import type { HugePagesMode } from "../configs/stack-spec";
import { humanBytes } from "../configs/units";
import { isRunning, ownIdentity, type ProcessIdentity } from "./state";

export const nrHugePagesPath = "/proc/sys/vm/nr_hugepages";
export const meminfoPath = "/proc/meminfo";
/** Machine-wide, like the pool it guards: every checkout and every cluster on this host shares it. */
export const defaultHugePagesLock = path.join(os.tmpdir(), "pgstack-hugepages.lock");

/** The HugePages_* lines of /proc/meminfo. */
export interface HugePagesMeminfo {
  readonly total: number;
  readonly free: number;
  /** Promised to a mapping (PostgreSQL's shared memory) but not yet touched: counted in `free`, yet not available. */
  readonly reserved: number;
  readonly surplus: number;
  /** Default huge page size (Hugepagesize), bytes. */
  readonly pageBytes: number;
}

export function parseMeminfo(text: string): HugePagesMeminfo {
  const field = (name: string): number => {
    const match = new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(text);
    if (!match) throw new Error(`/proc/meminfo has no ${name} line; this kernel has no huge page support`);
    return Number(match[1]);
  };
  return {
    total: field("HugePages_Total"),
    free: field("HugePages_Free"),
    reserved: field("HugePages_Rsvd"),
    surplus: field("HugePages_Surp"),
    pageBytes: field("Hugepagesize") * 1024,
  };
}

/** Free pages nobody has a claim on. */
export function availablePages(m: HugePagesMeminfo): number {
  return Math.max(0, m.free - m.reserved);
}

/**
 * The kernel's huge page pool as this module uses it: nr_hugepages, meminfo and the machine-wide lock file.
 * `kernelHugePages()` is the real one; tests pass a fake kernel.
 */
export interface HugePagesPool {
  /** /proc/sys/vm/nr_hugepages: the persistent pool size, as the kernel reads it back. */
  readNr(): number;
  /** Asks the kernel for a pool of `pages`; it may grant fewer (read it back). Throws when not permitted. */
  writeNr(pages: number): void;
  meminfo(): HugePagesMeminfo;
  /** Path of the lock file that serialises pool changes between pgstack processes. */
  readonly lockFile: string;
}

export function kernelHugePages(lockFile = defaultHugePagesLock): HugePagesPool {
  return {
    readNr() {
      const text = fs.readFileSync(nrHugePagesPath, "utf8").trim();
      const value = Number(text);
      if (!Number.isInteger(value) || value < 0) throw new Error(`${nrHugePagesPath} holds "${text}", not a page count`);
      return value;
    },
    writeNr(pages) {
      fs.writeFileSync(nrHugePagesPath, `${pages}\n`);
    },
    meminfo: () => parseMeminfo(fs.readFileSync(meminfoPath, "utf8")),
    lockFile,
  };
}

/** What to do about huge pages before touching the kernel. */
export type HugePagesIntent =
  | { readonly reserve: true; readonly pages: number }
  | { readonly reserve: false; readonly pages: number; readonly reason: string };

export interface HugePagesIntentInput {
  /** huge_pages as rendered for the stack. */
  readonly setting: HugePagesMode;
  /** Pages the memory plan computed (rendered.memory.hugePages). */
  readonly pages: number;
  /** `--no-huge-pages`. */
  readonly disabled: boolean;
  /** Effective uid of this process. */
  readonly uid: number;
  /** This host's default huge page size, bytes (undefined: the kernel has none). */
  readonly hostPageBytes: number | undefined;
}

/** Whether to try at all, and if not, why, in words for the report. */
export function hugePagesIntent(input: HugePagesIntentInput): HugePagesIntent {
  const { pages } = input;
  const no = (reason: string): HugePagesIntent => ({ reserve: false, pages, reason });
  if (input.setting === "off" || pages === 0) return no("the stack sets postgres.hugePages: off");
  if (input.disabled) return no("turned off with --no-huge-pages");
  if (input.hostPageBytes === undefined) return no("this kernel has no huge page support (no HugePages lines in /proc/meminfo)");
  if (input.hostPageBytes !== hugePageBytes) {
    return no(`this host's default huge page size is ${humanBytes(input.hostPageBytes)}; the plan counts ${humanBytes(hugePageBytes)} pages`);
  }
  if (input.uid !== 0) return no(`reserving ${pages} pages needs root (writing ${nrHugePagesPath}); running as uid ${input.uid}`);
  return { reserve: true, pages };
}

/** How a reservation went. `added` pages are in the pool until `giveBackHugePages(added)`. */
export type HugePagesReservation =
  | { readonly ok: true; readonly requested: number; readonly added: number; readonly before: number; readonly available: number }
  | { readonly ok: false; readonly requested: number; readonly added: 0; readonly before: number; readonly available: number; readonly reason: string };

export function shortfallReason(requested: number, available: number): string {
  return `only ${available} of ${requested} pages could be reserved`;
}

/**
 * Adds `pages` to nr_hugepages and checks the kernel has them free. `record(added)` is called synchronously right
 * after the kernel answered, before anything else can happen, so a state file holds the count before this returns.
 * On a shortfall whatever was added is given back at once and the result says how many pages there were.
 */
export async function reserveHugePages(
  pages: number,
  record: (added: number) => void,
  pool: HugePagesPool = kernelHugePages(),
): Promise<HugePagesReservation> {
  if (!Number.isInteger(pages) || pages <= 0) throw new Error(`huge page count ${pages} must be a positive integer`);
  return withHugePagesLock(pool, () => {
    const before = pool.readNr();
    const availableBefore = availablePages(pool.meminfo());
    try {
      pool.writeNr(before + pages);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      return {
        ok: false as const,
        requested: pages,
        added: 0 as const,
        before,
        available: availableBefore,
        reason: `${nrHugePagesPath} cannot be written here (${code ?? (error as Error).message}), so no pages could be reserved`,
      };
    }
    const after = pool.readNr();
    const added = Math.max(0, after - before);
    record(added);
    const available = availablePages(pool.meminfo());
    if (added >= pages && available >= pages) return { ok: true as const, requested: pages, added, before, available };
    // Fewer than asked: give back what we got, now, and say how many there were.
    if (added > 0) pool.writeNr(Math.max(0, pool.readNr() - added));
    record(0);
    return { ok: false as const, requested: pages, added: 0 as const, before, available, reason: shortfallReason(pages, Math.min(added, available)) };
  });
}

/** Takes `pages` back out of nr_hugepages (never below 0); returns the pool size before and after. */
export async function giveBackHugePages(pages: number, pool: HugePagesPool = kernelHugePages()): Promise<{ before: number; after: number }> {
  return withHugePagesLock(pool, () => giveBackHugePagesLocked(pages, pool));
}

/**
 * The same, for a caller that already holds the lock. Pages still mapped by a process that is ending become
 * "surplus" and return to the kernel when it exits, so this may run before or after PostgreSQL is gone.
 */
export function giveBackHugePagesLocked(pages: number, pool: HugePagesPool): { before: number; after: number } {
  const before = pool.readNr();
  if (pages <= 0) return { before, after: before };
  pool.writeNr(Math.max(0, before - pages));
  return { before, after: pool.readNr() };
}

const lockWaitMs = 30_000;

/**
 * Runs `critical` (synchronous, so nothing interleaves) while holding the machine-wide huge pages lock: a file created
 * with O_EXCL holding the owner's pid and start time. A lock whose owner is gone is taken over.
 */
export async function withHugePagesLock<T>(pool: Pick<HugePagesPool, "lockFile">, critical: () => T): Promise<T> {
  const lock = pool.lockFile;
  const me = ownIdentity();
  const deadline = Date.now() + lockWaitMs;
  while (!tryTakeLock(lock, me)) {
    if (Date.now() > deadline) throw lockTimeout(lock);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  try {
    return critical();
  } finally {
    fs.rmSync(lock, { force: true });
  }
}

/**
 * The same without the event loop, for an `exit` listener: waits at most `waitMs` (blocking), then runs `critical`
 * without the lock rather than leave pages reserved, because the process is ending either way.
 */
export function withHugePagesLockSync<T>(pool: Pick<HugePagesPool, "lockFile">, critical: () => T, waitMs = 2_000): T {
  const lock = pool.lockFile;
  const me = ownIdentity();
  const deadline = Date.now() + waitMs;
  let held = tryTakeLock(lock, me);
  while (!held && Date.now() < deadline) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    held = tryTakeLock(lock, me);
  }
  try {
    return critical();
  } finally {
    if (held) fs.rmSync(lock, { force: true });
  }
}

function tryTakeLock(lock: string, me: ProcessIdentity): boolean {
  try {
    fs.writeFileSync(lock, JSON.stringify(me), { flag: "wx", mode: 0o644 });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  const holder = readLockHolder(lock);
  // An unreadable lock is being written this instant, unless it has been unreadable for seconds (its writer died).
  if (holder === undefined ? lockAgeMs(lock) > 5_000 : !isRunning(holder)) fs.rmSync(lock, { force: true });
  return false;
}

function lockTimeout(lock: string): Error {
  const holder = readLockHolder(lock);
  return new Error(`pid ${holder?.pid ?? "?"} has held ${lock} for over ${lockWaitMs / 1000} s; is another pgstack stuck reserving huge pages?`);
}

function lockAgeMs(lock: string): number {
  try {
    return Date.now() - fs.statSync(lock).mtimeMs;
  } catch {
    return 0;
  }
}

function readLockHolder(lock: string): ProcessIdentity | undefined {
  try {
    const holder = JSON.parse(fs.readFileSync(lock, "utf8")) as ProcessIdentity;
    return typeof holder.pid === "number" && typeof holder.startTime === "string" ? holder : undefined;
  } catch {
    return undefined; // being written right now, or gone
  }
}

/** How the cluster's PostgreSQL ended up with huge pages, for the final table and the report. */
export interface HugePagesStatus {
  /** Started with huge_pages = on on pages reserved for it. */
  readonly used: boolean;
  /** Pages the memory plan computed (0 when the stack says off). */
  readonly requested: number;
  /** Pages added to the pool for this cluster (given back at teardown). */
  readonly reserved: number;
  /** Why huge pages are not used; null when they are. */
  readonly reason: string | null;
  /** `SHOW huge_pages_status` of the running server (PostgreSQL 17), once it runs. */
  readonly serverStatus: string | null;
  /** `SHOW shared_memory_size_in_huge_pages`: what the server itself needs. */
  readonly serverPages: number | null;
}

/** "on — 281 pages (562 MiB) reserved, the server maps 276" or "not used — only 812 of 3113 pages could be reserved". */
export function describeHugePages(s: HugePagesStatus): string {
  if (!s.used) return `not used — ${s.reason ?? "unknown reason"}`;
  const mapped = s.serverPages === null ? "" : `; PostgreSQL needs ${s.serverPages}`;
  return `on — ${s.reserved} pages (${humanBytes(s.reserved * hugePageBytes)}) reserved for this cluster${mapped} (huge_pages_status = ${s.serverStatus ?? "unknown"})`;
}
