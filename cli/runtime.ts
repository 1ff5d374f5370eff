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
import { chosenFormat, commandHelp, formatOptions, noPositionals, parseOptions } from "./args";
import type { Command } from "./command";
import { UsageError } from "./errors";
import { terminalProgress } from "./progress";
import { dockerAnswers, dockerRequest } from "../local/docker/engine";
import { projectRoot } from "./stack-file";

const options = {
  "check-clean": { type: "boolean", help: "check that nothing of ours outlived a test run: processes in the rootfs, scratch\ndirectories, local cluster state, Docker objects the tests labelled (exit 1 if something did)" },
  unmount: { type: "boolean", help: "unmount /proc, /sys and /dev/shm inside the rootfs (lazily when processes still use it)" },
  ...formatOptions(["text", "json"], "text for people; json: one document with what was found or done"),
} as const;

const help = commandHelp({
  usage: ["pgstack runtime [--format text|json]", "pgstack runtime --check-clean [--format text|json]", "pgstack runtime --unmount [--format text|json]"],
  description: [
    "Finds PostgreSQL 17 + pgvector, PgBouncer, postgres_exporter, pgbouncer_exporter, Prometheus/promtool,",
    "node_exporter and mtail on this host at the right versions, or builds the Debian 13 root filesystem",
    "(.cache/debian13-rootfs, needs root) and runs them from there; prints the runtime and every program's version.",
    "Progress goes to stderr.",
  ],
  sections: [
    { title: "options", options },
    {
      title: "environment",
      lines: ["PGSTACK_RUNTIME=native|chroot   programs from PATH, or from the rootfs; unset: native when all are there"],
    },
    { title: "exit status", lines: ["0 ready / clean / unmounted, 1 failure or leftovers found, 2 usage error"] },
  ],
});

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
async function unmount(json: boolean): Promise<number> {
  const dir = defaultRootfsDir();
  const users = processesRootedIn(dir);
  if (users.length === 0) {
    const unmounted = await unmountRootfs(dir);
    if (json) console.log(JSON.stringify({ rootfs: dir, unmounted, detached: [], failed: [] }));
    else console.log(unmounted.length === 0 ? "nothing mounted in the rootfs" : `unmounted: ${unmounted.join(", ")}`);
    return 0;
  }
  console.error(`processes still run in ${dir} (pids ${users.join(", ")}): detaching its mounts lazily`);
  const detached: string[] = [];
  const failed: { mount: string; error: string }[] = [];
  for (const mount of mountsUnder(dir)) {
    const r = spawnSync("umount", ["-l", mount], { encoding: "utf8" });
    if (r.status === 0) {
      detached.push(mount);
      if (!json) console.log(`detached: ${mount}`);
    } else {
      failed.push({ mount, error: r.stderr.trim() });
      console.error(`umount -l ${mount} failed: ${r.stderr.trim()}`);
    }
  }
  if (json) console.log(JSON.stringify({ rootfs: dir, unmounted: [], detached, failed, processes: users }));
  return failed.length === 0 ? 0 : 1;
}

/** Labels the tests put on every Docker object they make (the engine mocks' run label, the images test's). */
const testObjectLabels = ["pgvector-stack.engine-run", "pgvector-stack.test"] as const;

/** Containers, networks and volumes a test made and left on the engine, when one answers (none does once CI stopped it). */
async function dockerLeftovers(): Promise<string[]> {
  if (!(await dockerAnswers())) return [];
  const found: string[] = [];
  for (const label of testObjectLabels) {
    const filters = JSON.stringify({ label: [label] });
    for (const [kind, apiPath] of [["containers", "/containers/json?all=1&"], ["networks", "/networks?"], ["volumes", "/volumes?"]] as const) {
      const response = await dockerRequest("GET", `${apiPath}filters=${encodeURIComponent(filters)}`);
      const body = JSON.parse(response.body.toString("utf8")) as { Names?: string[]; Name?: string }[] | { Volumes: { Name: string }[] | null };
      const names = (Array.isArray(body) ? body.map((o) => o.Names?.[0]?.replace(/^\//, "") ?? o.Name ?? "?") : (body.Volumes ?? []).map((v) => v.Name));
      if (names.length > 0) found.push(`Docker ${kind} labelled ${label} left on the engine: ${names.join(", ")}`);
    }
  }
  return found;
}

async function checkClean(json: boolean): Promise<number> {
  const found = [...leftovers(), ...(await dockerLeftovers())];
  const hugePages = Number(fs.readFileSync("/proc/sys/vm/nr_hugepages", "utf8").trim());
  if (json) {
    console.log(JSON.stringify({ clean: found.length === 0, leftovers: found, hugePagesReserved: hugePages }));
  } else {
    for (const f of found) console.error(`left behind: ${f}`);
    if (found.length === 0) console.log("nothing left behind: no process, scratch directory, cluster state or test container, network or volume");
    console.log(`huge pages reserved now: ${hugePages}`);
  }
  return found.length === 0 ? 0 : 1;
}

export const runtimeCommand: Command = {
  help,
  async run(args) {
    const { values, positionals } = parseOptions(args, options);
    noPositionals(positionals);
    const json = chosenFormat(values, ["text", "json"] as const) === "json";
    if (values.unmount && values["check-clean"]) throw new UsageError("--unmount and --check-clean are separate steps; give one of them");
    if (values.unmount) return unmount(json);
    if (values["check-clean"]) return checkClean(json);
    const started = Date.now();
    // Progress is on stderr in both formats: only stdout is reserved for the JSON document.
    const runtime = await getRuntime({ progress: terminalProgress() });
    const seconds = (Date.now() - started) / 1000;
    if (json) {
      console.log(JSON.stringify({ kind: runtime.kind, rootDir: runtime.rootDir, seconds, versions: runtime.versions }));
      return 0;
    }
    console.log(`${runtime.kind} runtime at ${runtime.rootDir}, ready in ${seconds.toFixed(1)} s`);
    for (const [name, version] of Object.entries(runtime.versions).sort()) console.log(`  ${name.padEnd(22)} ${version}`);
    return 0;
  },
};
