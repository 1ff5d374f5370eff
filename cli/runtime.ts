/**
 * `pgstack runtime`: find the real programs or build the Debian 13 root filesystem, and print what was found.
 * `--check-clean`: after a test run, prove nothing of ours outlived it (processes, scratch dirs, local clusters).
 * `--unmount`: unmount what the rig mounted inside the rootfs (/proc, /sys, /dev/shm), so that whatever archives or
 * deletes the checkout afterwards (a CI runner) never walks into the host's /proc or /sys through them.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { defaultRootfsDir, getRuntime, unmountRootfs } from "../local/runtime";
import { spawnSync } from "node:child_process";
import { mountsUnder } from "../local/runtime/mounts";
import { processesRootedIn } from "../local/runtime/rootfs";
import { parseArgs } from "./args";
import type { Command } from "./main";
import { terminalProgress } from "./progress";
import { projectRoot } from "./stack-file";

function leftovers(): string[] {
  const found: string[] = [];
  const rootfs = defaultRootfsDir();
  const pids = processesRootedIn(rootfs);
  if (pids.length > 0) found.push(`processes still running in ${rootfs}: ${pids.join(", ")}`);
  for (const base of [path.join(rootfs, "tmp/pgstack"), path.join(os.tmpdir(), "pgstack")]) {
    const entries = fs.existsSync(base) ? fs.readdirSync(base) : [];
    if (entries.length > 0) found.push(`scratch directories left in ${base}: ${entries.join(", ")}`);
  }
  const clusters = path.join(projectRoot(), ".cache/local");
  const states = fs.existsSync(clusters) ? fs.readdirSync(clusters) : [];
  if (states.length > 0) found.push(`local cluster state left in ${clusters}: ${states.join(", ")}`);
  return found;
}

/**
 * Normally a plain unmount. When servers of a failed run still live in the rootfs, a lazy unmount (`umount -l`):
 * they keep their view, but the mounts leave the checkout's tree, so deleting or archiving it stays out of /proc.
 */
async function unmount(): Promise<number> {
  const dir = defaultRootfsDir();
  const users = processesRootedIn(dir);
  if (users.length === 0) {
    const unmounted = await unmountRootfs(dir);
    console.log(unmounted.length === 0 ? "nothing mounted in the rootfs" : `unmounted: ${unmounted.join(", ")}`);
    return 0;
  }
  console.error(`processes still run in ${dir} (pids ${users.join(", ")}): detaching its mounts lazily`);
  let failed = 0;
  for (const mount of mountsUnder(dir)) {
    const r = spawnSync("umount", ["-l", mount], { encoding: "utf8" });
    if (r.status === 0) console.log(`detached: ${mount}`);
    else {
      failed++;
      console.error(`umount -l ${mount} failed: ${r.stderr.trim()}`);
    }
  }
  return failed === 0 ? 0 : 1;
}

export const runtimeCommand: Command = {
  summary: "make PostgreSQL 17 + pgvector, PgBouncer, the exporters and Prometheus available (native or Debian 13 rootfs)",
  usage: "usage: pgstack runtime [--check-clean] [--unmount]",
  async run(args) {
    const { flags } = parseArgs(args, { booleans: ["check-clean", "unmount"] });
    if (flags.unmount) return unmount();
    if (flags["check-clean"]) {
      const found = leftovers();
      for (const f of found) console.error(`left behind: ${f}`);
      console.log(found.length === 0 ? "nothing left behind: no process, scratch directory or cluster state" : "");
      console.log(`huge pages reserved now: ${fs.readFileSync("/proc/sys/vm/nr_hugepages", "utf8").trim()}`);
      return found.length === 0 ? 0 : 1;
    }
    const started = Date.now();
    const runtime = await getRuntime({ progress: terminalProgress() });
    console.log(`${runtime.kind} runtime at ${runtime.rootDir}, ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    for (const [name, version] of Object.entries(runtime.versions).sort()) console.log(`  ${name.padEnd(22)} ${version}`);
    return 0;
  },
};
