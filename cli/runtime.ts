/**
 * `pgstack runtime`: find the real programs or build the Debian 13 root filesystem, and print what was found.
 * `--check-clean`: after a test run, prove nothing of ours outlived it (processes, scratch dirs, local clusters).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { defaultRootfsDir, getRuntime } from "../local/runtime";
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

export const runtimeCommand: Command = {
  summary: "make PostgreSQL 17 + pgvector, PgBouncer, the exporters and Prometheus available (native or Debian 13 rootfs)",
  usage: "usage: pgstack runtime [--check-clean]",
  async run(args) {
    const { flags } = parseArgs(args, { booleans: ["check-clean"] });
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
