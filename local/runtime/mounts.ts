import * as fs from "node:fs";
import * as path from "node:path";
import { runCommand } from "./processes";

/**
 * The kernel file systems programs in the rootfs need: /proc (PostgreSQL, node_exporter), /sys
 * (node_exporter) and a large /dev/shm (PostgreSQL's dynamic shared memory, which parallel HNSW builds
 * fill with up to maintenance_work_mem).
 *
 * Each is a FRESH mount of its file system type, never a bind of the host's /proc, /sys or /dev: under
 * shared mount propagation, unmounting a recursive bind later unmounts the host's own mounts with it.
 */
const KERNEL_MOUNTS: ReadonlyArray<{ readonly target: string; readonly args: readonly string[] }> = [
  { target: "proc", args: ["-t", "proc", "proc"] },
  { target: "sys", args: ["-t", "sysfs", "sysfs"] },
  // tmpfs takes memory only as it is used, so the limit is set to all of RAM rather than tmpfs's default half.
  { target: "dev/shm", args: ["-t", "tmpfs", "-o", "mode=1777,size=100%", "tmpfs"] },
];

/** Character devices programs open; debootstrap creates them with mknod, checked again in case it could not. */
const DEVICE_NODES: ReadonlyArray<{ readonly name: string; readonly major: number; readonly minor: number }> = [
  { name: "null", major: 1, minor: 3 },
  { name: "zero", major: 1, minor: 5 },
  { name: "full", major: 1, minor: 7 },
  { name: "random", major: 1, minor: 8 },
  { name: "urandom", major: 1, minor: 9 },
];

/** Mount points listed in /proc/mounts, decoded (the kernel writes a space in a path as \040). */
export function mountPoints(): string[] {
  return fs
    .readFileSync("/proc/mounts", "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => line.split(" ")[1].replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))));
}

/**
 * Mount points at or below `dir`, deepest first (the order they must be unmounted in). A path mounted
 * twice (two processes mounting at once) is listed twice: each umount removes one layer.
 */
export function mountsUnder(dir: string): string[] {
  const root = fs.existsSync(dir) ? fs.realpathSync(dir) : path.resolve(dir);
  return mountPoints()
    .filter((mount) => mount === root || mount.startsWith(`${root}/`))
    .sort((a, b) => b.split("/").length - a.split("/").length || b.length - a.length);
}

/** Mounts /proc, /sys and /dev/shm in the rootfs if they are not yet there, and makes the device nodes. */
export async function ensureRootfsMounts(rootDir: string): Promise<void> {
  const root = fs.realpathSync(rootDir);
  const mounted = new Set(mountPoints());
  for (const { target, args } of KERNEL_MOUNTS) {
    const mountPoint = path.join(root, target);
    if (mounted.has(mountPoint)) continue;
    fs.mkdirSync(mountPoint, { recursive: true });
    await runHostTool("mount", [...args, mountPoint]);
  }
  for (const { name, major, minor } of DEVICE_NODES) {
    const node = path.join(root, "dev", name);
    if (fs.existsSync(node) && fs.statSync(node).isCharacterDevice()) continue;
    fs.rmSync(node, { force: true });
    await runHostTool("mknod", ["-m", "666", node, "c", String(major), String(minor)]);
  }
}

/**
 * Unmounts every mount point inside `dir`, deepest first, one at a time and without --recursive or --lazy:
 * the mounts there are the fresh ones made above (or by debootstrap), and unmounting exactly those touches
 * nothing of the host. Returns what was unmounted.
 */
export async function unmountAllUnder(dir: string): Promise<string[]> {
  const mounts = mountsUnder(dir);
  for (const mountPoint of mounts) await runHostTool("umount", [mountPoint]);
  const left = mountsUnder(dir);
  if (left.length > 0) throw new Error(`still mounted after umount: ${left.join(", ")}`);
  return mounts;
}

/** Deletes a directory tree, refusing when anything is mounted inside it (rm would descend into the mount). */
export function removeTreeWithoutMounts(dir: string): void {
  if (!fs.existsSync(dir)) return;
  const mounts = mountsUnder(dir);
  if (mounts.length > 0) throw new Error(`refusing to delete ${dir}: still mounted inside it: ${mounts.join(", ")}`);
  fs.rmSync(dir, { recursive: true, force: true });
}

async function runHostTool(tool: string, args: readonly string[]): Promise<void> {
  const result = await runCommand(tool, args, { env: process.env, timeoutMs: 60_000 });
  if (result.code !== 0) {
    throw new Error(`${tool} ${args.join(" ")} failed (exit ${result.code ?? result.signal}): ${result.stderr.trim()}`);
  }
}
