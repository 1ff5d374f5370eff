/**
 * Nothing outlives a local cluster, however it ends: a step that throws after PostgreSQL started (through the CLI and
 * through the library), Ctrl-C once it is up, Ctrl-C while it is still starting, and SIGKILL of `local up` followed by
 * `local down`. Each case watches the cluster's state file while it runs, so it knows every process and directory
 * that existed, and then checks that none is left — nor the state file, nor a reserved huge page.
 * The `local up` children are spawned attached (detached: false) and signalled by their own pid only.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterSpec, parseClusterFlags } from "../../cli/local";
import { clusterSteps, LocalCluster } from "../../local/cluster";
import { defaultStateRoot, isRunning, readState, type ClusterState, type RecordedServer } from "../../local/state";
import { teardownFromState } from "../../local/teardown";

const root = path.resolve(__dirname, "..", "..");
const pgstack = path.join(root, "bin", "pgstack.js");
const tag = `td-${process.pid}`;
const children: ChildProcess[] = [];
const usedNames: { root: string; name: string }[] = [];
const nrHugePages = (): number => Number(fs.readFileSync("/proc/sys/vm/nr_hugepages", "utf8"));

/** Everything the state file of `name` ever listed, collected by polling it every 20 ms until stopped. */
function watchState(stateRoot: string, name: string) {
  usedNames.push({ root: stateRoot, name });
  const servers = new Map<number, RecordedServer>();
  const dirs = new Set<string>();
  let steps: readonly string[] = [];
  let hugePagesAdded = 0;
  const look = () => {
    let state: ClusterState | undefined;
    try {
      state = readState(stateRoot, name);
    } catch {
      return; // replaced while we read it
    }
    for (const s of state?.servers ?? []) servers.set(s.pid, s);
    for (const d of state?.scratchDirs ?? []) dirs.add(d);
    if ((state?.steps.length ?? 0) > steps.length) steps = state?.steps ?? steps;
    hugePagesAdded = Math.max(hugePagesAdded, state?.hugePages?.added ?? 0);
  };
  const timer = setInterval(look, 20);
  return {
    seen: () => ({ servers: [...servers.values()], dirs: [...dirs], steps, hugePagesAdded }),
    stop: () => {
      look();
      clearInterval(timer);
    },
    /** Resolves once the state file lists a server called `server`. */
    until: async (server: string, timeoutMs = 120_000) => {
      const deadline = Date.now() + timeoutMs;
      while (![...servers.values()].some((s) => s.name === server)) {
        if (Date.now() > deadline) throw new Error(`${name}: no ${server} in the state file after ${timeoutMs / 1000} s`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}

function leftovers(stateRoot: string, name: string, seen: { servers: RecordedServer[]; dirs: string[] }): string[] {
  return [
    ...seen.servers.filter(isRunning).map((s) => `process ${s.name} (pid ${s.pid})`),
    ...seen.dirs.filter((d) => fs.existsSync(d)).map((d) => `directory ${d}`),
    ...(fs.existsSync(path.join(stateRoot, name, "state.json")) ? ["state file"] : []),
  ];
}

interface Child {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output(): { stdout: string; stderr: string };
  /** Resolves when stdout has a line (the --json connection strings of `local up`). */
  readonly up: Promise<void>;
}

function pgstackChild(args: string[], env: Record<string, string> = {}): Child {
  const child = spawn(process.execPath, [pgstack, ...args], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: false,
  });
  children.push(child);
  let stdout = "";
  let stderr = "";
  let markUp: () => void = () => undefined;
  const up = new Promise<void>((resolve) => (markUp = resolve));
  child.stdout?.on("data", (d: Buffer) => {
    stdout += d.toString();
    if (stdout.includes("\n")) markUp();
  });
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  return { child, exited, output: () => ({ stdout, stderr }), up };
}

/** What a cluster runs, in start order: the rig's servers and the canary (a host process). */
const allServers = ["postgres", "pgbouncer", "postgres_exporter", "pgbouncer_exporter", "node_exporter", "mtail", "canary", "prometheus"];

const upArgs = (name: string) => ["local", "up", "--stack", "perf", "--name", name, "--memory", "1Gi", "--json"];

let hugePagesBefore = 0;
beforeAll(() => {
  hugePagesBefore = nrHugePages();
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null && child.pid) child.kill("SIGKILL");
  for (const { root: stateRoot, name } of usedNames) await teardownFromState(stateRoot, name).catch(() => undefined);
});

describe("teardown of a local cluster", () => {
  it("after a step fails with PostgreSQL and PgBouncer running (PGSTACK_LOCAL_FAIL_AFTER=pgbouncer)", async () => {
    const name = `${tag}-fail`;
    const watch = watchState(defaultStateRoot, name);
    const run = pgstackChild(upArgs(name), { PGSTACK_LOCAL_FAIL_AFTER: "pgbouncer" });
    const exit = await run.exited;
    watch.stop();
    expect(exit.code, run.output().stderr).toBe(1);
    expect(run.output().stderr).toContain('failing after step "pgbouncer"');
    const seen = watch.seen();
    expect(seen.servers.map((s) => s.name)).toEqual(["postgres", "pgbouncer"]);
    // The loop recorded each step as it finished, up to the one that failed.
    expect(seen.steps).toEqual(clusterSteps.slice(0, clusterSteps.indexOf("pgbouncer") + 1));
    expect(leftovers(defaultStateRoot, name, seen)).toEqual([]);
    expect(nrHugePages()).toBe(hugePagesBefore);
  });

  it("after a step fails in the library (failAfter: prometheus, everything started)", async () => {
    const stateRoot = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-teardown-"));
    const name = `${tag}-lib`;
    const watch = watchState(stateRoot, name);
    const { spec } = clusterSpec(parseClusterFlags(["--memory", "1Gi"]).flags);
    const cluster = new LocalCluster({ name, spec, stateRoot, failAfter: "prometheus" });
    await expect(cluster.start()).rejects.toThrow(/failing after step "prometheus"/);
    watch.stop();
    const seen = watch.seen();
    expect(seen.servers.map((s) => s.name)).toEqual(allServers);
    expect(seen.steps).toEqual(clusterSteps);
    expect(leftovers(stateRoot, name, seen)).toEqual([]);
    expect(nrHugePages()).toBe(hugePagesBefore);
    fs.rmSync(stateRoot, { recursive: true, force: true });
  });

  it("after Ctrl-C (SIGINT) to a running `local up`, which then exits as interrupted", async () => {
    const name = `${tag}-int`;
    const watch = watchState(defaultStateRoot, name);
    const run = pgstackChild(upArgs(name));
    await Promise.race([run.up, run.exited]);
    if (process.getuid?.() === 0) expect(nrHugePages()).toBeGreaterThan(hugePagesBefore);
    run.child.kill("SIGINT");
    const exit = await run.exited;
    watch.stop();
    // Re-raised after the teardown: the status of a process ended by SIGINT (a shell shows 130).
    expect(exit, run.output().stderr).toEqual({ code: null, signal: "SIGINT" });
    expect(run.output().stderr).toContain("SIGINT: tearing down");
    expect(watch.seen().servers.map((s) => s.name)).toEqual(allServers);
    expect(leftovers(defaultStateRoot, name, watch.seen())).toEqual([]);
    expect(nrHugePages()).toBe(hugePagesBefore);
  });

  it("after Ctrl-C while it is still starting (PostgreSQL up, the rest not yet)", async () => {
    const name = `${tag}-early`;
    const watch = watchState(defaultStateRoot, name);
    const run = pgstackChild(upArgs(name));
    await watch.until("postgres");
    run.child.kill("SIGINT");
    const exit = await run.exited;
    watch.stop();
    expect(exit, run.output().stderr).toEqual({ code: null, signal: "SIGINT" });
    expect(run.output().stdout).toBe(""); // never got as far as printing connection strings
    expect(leftovers(defaultStateRoot, name, watch.seen())).toEqual([]);
    expect(nrHugePages()).toBe(hugePagesBefore);
  });

  it("after SIGKILL of `local up`: the servers outlive it, and `local down` ends them", async () => {
    const name = `${tag}-kill`;
    const watch = watchState(defaultStateRoot, name);
    const run = pgstackChild(upArgs(name));
    await Promise.race([run.up, run.exited]);
    run.child.kill("SIGKILL");
    await run.exited;
    watch.stop();
    const seen = watch.seen();
    // Nothing could run in the killed process: everything is still there, listed in the state file — the canary, a
    // Node process of its own, included.
    expect(seen.servers.filter(isRunning).map((s) => s.name)).toEqual(allServers);
    expect(readState(defaultStateRoot, name)?.owner.pid).toBe(run.child.pid);

    const down = pgstackChild(["local", "down", "--name", name]);
    const downExit = await down.exited;
    expect(downExit.code, down.output().stderr).toBe(0);
    expect(down.output().stdout).toMatch(new RegExp(`cluster ${name} is down\\n  stopped +prometheus`));
    expect(leftovers(defaultStateRoot, name, seen)).toEqual([]);
    expect(nrHugePages()).toBe(hugePagesBefore);
  });
});
