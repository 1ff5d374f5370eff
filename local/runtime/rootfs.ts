import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { aptPin, imagePackagesFile, parseImagePackages, rootfsPackages, type PinnedPackage } from "../../configs/image-packages";
import type { Progress } from "../../configs/progress";
import { debianMirror } from "./debianMirror";
import { ensureRootfsMounts, removeTreeWithoutMounts, unmountAllUnder } from "./mounts";
import { delay, logTail, runCommand } from "./processes";

/** Debian 13: the first release that packages PostgreSQL 17, pgvector 0.8, PgBouncer 1.24 and Prometheus 2.53 together. */
export const ROOTFS_SUITE = "trixie";

/** images/packages.txt: the one list of pinned packages, which the images install too. */
export function imagePackagesPath(): string {
  return path.resolve(__dirname, "..", "..", imagePackagesFile);
}

/**
 * What the rootfs installs: every line of images/packages.txt (the images' packages and the rig's own tools), each at
 * its pinned version. Read when asked, so a broken list fails the command that needs it with the parser's message.
 */
export function rootfsPins(listFile = imagePackagesPath()): PinnedPackage[] {
  let text: string;
  try {
    text = fs.readFileSync(listFile, "utf8");
  } catch (error) {
    throw new Error(`cannot read the package list ${listFile}: ${(error as Error).message}`);
  }
  return rootfsPackages(parseImagePackages(text, listFile));
}

/**
 * debootstrap's arguments. `--include` takes names only (no `=version`), so it installs whatever the mirror serves;
 * buildRootfs compares that with the pins afterwards (pinMismatches).
 */
export function debootstrapArgs(pins: readonly PinnedPackage[], dir: string, mirror: string): string[] {
  return ["--variant=minbase", `--include=${pins.map((p) => p.name).join(",")}`, ROOTFS_SUITE, dir, mirror];
}

/** `dpkg-query -W -f '${Package} ${Version}\n'` output as name → version. */
export function parseDpkgVersions(output: string): Map<string, string> {
  const versions = new Map<string, string>();
  for (const line of output.split("\n")) {
    const [name, version] = line.trim().split(/\s+/);
    if (name && version) versions.set(name, version);
  }
  return versions;
}

/** One message per pin the rootfs does not hold at its version, saying what to do; empty when all match. */
export function pinMismatches(pins: readonly PinnedPackage[], installed: ReadonlyMap<string, string>, mirror: string): string[] {
  return pins.flatMap((p) => {
    const version = installed.get(p.name);
    if (version === p.version) return [];
    if (version === undefined) return [`debootstrap from ${mirror} did not install ${p.name} (images/packages.txt pins ${p.version}, line ${p.line})`];
    return [`the mirror ${mirror} serves ${p.name} ${version}; images/packages.txt pins ${p.version} (line ${p.line}): update the pin, which rebuilds the rootfs and the images`];
  });
}

/** Written inside the rootfs only after debootstrap succeeded with the pinned versions: without it the directory is a broken build. */
const MARKER = ".pgstack-rootfs.json";

/** `.cache/debian13-rootfs` at the project root (ignored by git). */
export function defaultRootfsDir(): string {
  return path.resolve(__dirname, "..", "..", ".cache", "debian13-rootfs");
}

interface Marker {
  readonly suite: string;
  /** `name=version` of every pin, sorted: a changed pin no longer matches, so the rootfs is built again. */
  readonly packages: readonly string[];
  readonly mirror?: string;
}

function markerPackages(pins: readonly PinnedPackage[]): string[] {
  return pins.map(aptPin).sort();
}

/** Whether `dir` holds a finished rootfs built from the current package list, at its pinned versions. */
export function rootfsIsReady(dir = defaultRootfsDir(), pins: readonly PinnedPackage[] = rootfsPins()): boolean {
  let marker: Marker;
  try {
    marker = JSON.parse(fs.readFileSync(path.join(dir, MARKER), "utf8")) as Marker;
  } catch {
    return false;
  }
  return marker.suite === ROOTFS_SUITE && Array.isArray(marker.packages) && [...marker.packages].sort().join(",") === markerPackages(pins).join(",");
}

/**
 * Returns a ready rootfs with its kernel mounts in place, building it first when it is missing, unfinished
 * or made from another package list. Builds take about a minute; a lock file keeps two processes from
 * building into the same directory.
 */
export async function ensureRootfs(progress: Progress, dir = defaultRootfsDir()): Promise<string> {
  // Read before the lock: a broken list fails at once, not after waiting for another build.
  const pins = rootfsPins();
  // Mounting happens under the lock as well, so that two processes do not both mount /proc.
  await withBuildLock(dir, progress, async (lockFile) => {
    if (!rootfsIsReady(dir, pins)) await buildRootfs(dir, pins, progress, lockFile);
    await ensureRootfsMounts(dir);
  });
  return dir;
}

/**
 * Unmounts what the rig (or an interrupted debootstrap) mounted inside the rootfs; for tools that delete
 * it. Refuses while a process runs chrooted in it: another test run's servers would lose /proc and /dev/shm.
 */
export async function unmountRootfs(dir = defaultRootfsDir()): Promise<string[]> {
  refuseWhileInUse(dir);
  return unmountAllUnder(dir);
}

/** Pids whose root directory (/proc/PID/root, set by chroot) is the rootfs or inside it. */
export function processesRootedIn(dir: string): number[] {
  if (!fs.existsSync(dir)) return [];
  const root = fs.realpathSync(dir);
  const pids: number[] = [];
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const processRoot = fs.readlinkSync(`/proc/${name}/root`);
      if (processRoot === root || processRoot.startsWith(`${root}/`)) pids.push(Number(name));
    } catch {
      // gone, or not ours to inspect
    }
  }
  return pids;
}

function refuseWhileInUse(dir: string): void {
  const users = processesRootedIn(dir);
  if (users.length > 0) {
    throw new Error(`the rootfs at ${dir} is in use by pids ${users.join(", ")} (servers of a running test or perf run); stop them first`);
  }
}

/** Unmounts and deletes the rootfs; the next `getRuntime()` in a new process builds it again. */
export async function removeRootfs(dir = defaultRootfsDir()): Promise<void> {
  await unmountRootfs(dir);
  removeTreeWithoutMounts(dir);
  fs.rmSync(`${dir}.log`, { force: true });
}

async function buildRootfs(dir: string, pins: readonly PinnedPackage[], progress: Progress, lockFile: string): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new Error(`building the Debian 13 rootfs at ${dir} needs root (debootstrap, mount, chroot); run as root`);
  }
  if (fs.existsSync(dir)) {
    progress.step(`removing the unfinished rootfs at ${dir}`);
    refuseWhileInUse(dir);
    await unmountAllUnder(dir);
    removeTreeWithoutMounts(dir);
  }
  await ensureDebootstrap(progress);
  const mirror = debianMirror();
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const logFile = `${dir}.log`;
  progress.step(`building the Debian 13 rootfs in ${dir} from ${mirror} (about a minute)`);
  const args = debootstrapArgs(pins, dir, mirror);
  const code = await runDebootstrap(args, logFile, progress, lockFile);
  if (code !== 0) {
    throw new Error(
      `debootstrap ${args.join(" ")} failed (exit ${code}); full log in ${logFile}, last lines:\n${logTail(logFile, 30)}`,
    );
  }
  await refuseUnpinnedVersions(dir, pins, mirror, progress);
  const marker: Marker = { suite: ROOTFS_SUITE, packages: markerPackages(pins), mirror };
  fs.writeFileSync(path.join(dir, MARKER), `${JSON.stringify(marker, null, 2)}\n`);
  progress.advance(1, "rootfs ready");
}

/**
 * The versions dpkg installed, against the pins. On a mismatch the rootfs stays without its marker, so every run
 * refuses again (and builds afresh) until the pin is updated: the rig never tests a version the images do not ship.
 */
export async function refuseUnpinnedVersions(dir: string, pins: readonly PinnedPackage[], mirror: string, progress: Progress): Promise<void> {
  progress.step(`checking the rootfs's package versions against ${imagePackagesFile}`);
  const query = await runCommand("chroot", [dir, "dpkg-query", "-W", "-f", "${Package} ${Version}\\n", ...pins.map((p) => p.name)], {
    env: withSbin(process.env),
  });
  // dpkg-query exits 1 when a name is not installed; the versions it did print still count, and the missing
  // name is reported below as such.
  if (query.code !== 0 && query.code !== 1) {
    throw new Error(`chroot ${dir} dpkg-query failed (exit ${query.code}): ${query.stderr.trim()}`);
  }
  const problems = pinMismatches(pins, parseDpkgVersions(query.stdout), mirror);
  if (problems.length > 0) {
    throw new Error(`the rootfs at ${dir} does not hold the pinned versions:\n  ${problems.join("\n  ")}`);
  }
}

/** debootstrap prints one line per step; its phases give a rough fraction for the progress bar. */
const PHASES: ReadonlyArray<readonly [RegExp, number]> = [
  [/^I: Retrieving Release/, 0.02],
  [/^I: Retrieving /, 0.1],
  [/^I: Extracting /, 0.35],
  [/^I: Installing core/, 0.45],
  [/^I: Unpacking /, 0.55],
  [/^I: Configuring /, 0.8],
  [/^I: Base system installed/, 1],
];

/**
 * Runs debootstrap with its output in `logFile` and its phases as progress; resolves to its exit code. With a
 * `lockFile`, debootstrap's pid is added to it (withBuildLock). Also builds the base image (local/docker/base-image.ts).
 */
export function runDebootstrap(args: readonly string[], logFile: string, progress: Progress, lockFile?: string): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const log = fs.createWriteStream(logFile);
    // Not detached: an interrupt of our terminal should stop debootstrap too; the missing marker then
    // makes the next run start over.
    const child = spawn("debootstrap", [...args], {
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    // Should we die and debootstrap live on, its pid in the lock keeps the next run from deleting under it.
    if (child.pid !== undefined && lockFile !== undefined) fs.appendFileSync(lockFile, ` ${child.pid}`);
    let fraction = 0;
    let partial = "";
    const onData = (chunk: Buffer): void => {
      log.write(chunk);
      partial += chunk.toString("utf8");
      const lines = partial.split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) {
        const phase = PHASES.find(([pattern]) => pattern.test(line));
        if (phase) fraction = Math.max(fraction, phase[1]);
        if (line.startsWith("I: ")) progress.advance(fraction, line.slice(3));
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("error", (error) => reject(new Error(`could not run debootstrap: ${error.message}`)));
    child.on("close", (code) => log.end(() => resolve(code)));
  });
}

/** Installs debootstrap with apt-get when it is missing (root only; the callers check). */
export async function ensureDebootstrap(progress: Progress): Promise<void> {
  const found = await runCommand("sh", ["-c", "command -v debootstrap"], { env: withSbin(process.env) });
  if (found.code === 0) return;
  progress.step("installing debootstrap with apt-get (needed once to build the rootfs)");
  const env = { ...withSbin(process.env), DEBIAN_FRONTEND: "noninteractive" };
  // A fresh machine has no package lists yet, so update first.
  for (const args of [["update"], ["install", "-y", "debootstrap"]]) {
    const result = await runCommand("apt-get", args, { env, timeoutMs: 10 * 60_000 });
    if (result.code !== 0) {
      throw new Error(
        `apt-get ${args.join(" ")} failed (exit ${result.code}) while installing debootstrap:\n${result.stderr.trim()}`,
      );
    }
  }
}

function withSbin(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...env, PATH: `${env.PATH ?? "/usr/bin:/bin"}:/usr/sbin:/sbin` };
}

const LOCK_WAIT_MS = 15 * 60_000;

/**
 * Holds `<dir>.lock` while `work` runs. The lock carries our pid and debootstrap's; a lock none of whose
 * pids is alive is left over from a killed run and is taken over.
 */
async function withBuildLock(dir: string, progress: Progress, work: (lockFile: string) => Promise<void>): Promise<void> {
  const lockFile = `${dir}.lock`;
  fs.mkdirSync(path.dirname(lockFile), { recursive: true });
  const deadline = Date.now() + LOCK_WAIT_MS;
  let told = false;
  for (;;) {
    try {
      fs.writeFileSync(lockFile, String(process.pid), { flag: "wx" });
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    let holders: number[];
    try {
      holders = fs.readFileSync(lockFile, "utf8").trim().split(/\s+/).map(Number);
    } catch {
      continue; // released between our attempt and the read
    }
    if (!holders.some(isAlive)) {
      fs.rmSync(lockFile, { force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`the rootfs at ${dir} is still locked by pids ${holders.join(", ")} (${lockFile})`);
    if (!told) progress.step(`waiting for pid ${holders[0]}, which is building the rootfs`);
    told = true;
    await delay(1000);
  }
  try {
    await work(lockFile);
  } finally {
    fs.rmSync(lockFile, { force: true });
  }
}

/** Signal 0 only asks whether a pid exists; it sends nothing. */
function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 1) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
