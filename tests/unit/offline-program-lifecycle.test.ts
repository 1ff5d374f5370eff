/**
 * Nothing the offline runner starts outlives the command: not after a failure, not after a hung program is stopped,
 * not after Ctrl-C. Each case runs recordStacks in a process of its own, in a process group of its own, so every
 * process it starts (the worker is a thread; esbuild's service is a process) can be found afterwards by group.
 * When recordStacks settles, the process that called it has no child left at all, not even a zombie: a zombie
 * nobody reaps any more outlives the command, handed to PID 1 when the command exits.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

const recorder = path.resolve(__dirname, "../../cli/offline-program.ts");

/**
 * A program that uses esbuild both ways the real one and tsx do (the synchronous API, and the asynchronous one,
 * whose service process stays up for the next call), then misbehaves as told ("ok": not at all).
 */
function fixtureProgram(): string {
  return `
const fs = require("node:fs");
const pulumi = require(${JSON.stringify(require.resolve("@pulumi/pulumi"))});
const esbuild = require(${JSON.stringify(require.resolve("esbuild"))});
const config = new pulumi.Config("pgvector-stack");
esbuild.transformSync("let started = 1");
esbuild.transform("let service = 1").catch(() => {});
fs.writeFileSync(process.env.PGSTACK_TEST_MARKER, "started");
const mode = config.require("mode");
if (mode === "throw") throw new Error("boom from the program");
if (mode === "spin") for (;;) {}
// "hang" waits for something that never comes while keeping the thread busy with a timer; "stall" leaves nothing
// running, so the thread runs out of work with the program unfinished.
if (mode === "hang") setInterval(() => {}, 1000);
module.exports = mode === "ok" ? { done: true } : { never: new Promise(() => {}) };
`;
}

/** Pids of every live process in a process group (Linux /proc). */
function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // gone meanwhile
    }
    // pid (comm) state ppid pgrp …; comm may hold spaces and parentheses, so read after the last ")".
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(pgrp) === pgid && state !== "Z") members.push(Number(entry));
  }
  return members;
}

async function until(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Run {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output(): string;
}

describe("the offline runner leaves nothing running", () => {
  let root: string;
  const runs: Run[] = [];

  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-offline-lifecycle-"));
    fs.writeFileSync(path.join(root, "Pulumi.yaml"), "name: pgvector-stack\nruntime: nodejs\n");
    fs.writeFileSync(path.join(root, "index.ts"), fixtureProgram());
    for (const mode of ["ok", "throw", "spin", "hang", "stall"]) {
      fs.writeFileSync(path.join(root, `Pulumi.${mode}.yaml`), `config:\n  pgvector-stack:target: docker\n  pgvector-stack:mode: ${mode}\n`);
    }
  });

  afterEach(() => {
    // A failed assertion must not leave its process group behind either.
    for (const run of runs.splice(0)) {
      for (const pid of groupMembers(run.child.pid!)) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    }
  });

  afterAll(() => {
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  /**
   * `recordStacks([stack])` in a new process group; the script neither exits nor kills anything itself. Once the
   * call settles, it prints `children: […]`, every process whose parent it is, zombies included.
   *
   * tsx is registered with esbuild's synchronous API running esbuild once per call: otherwise, with the transform
   * cache cold, this script's own compiling would leave a service process of its main thread (as the pgstack
   * command's would), which is not what is tested here. The worker gets the caller's environment without it.
   */
  function record(stack: string, marker: string, stackTimeoutMs?: number): Run {
    const script = [
      `const fs = require("node:fs");`,
      `process.env.ESBUILD_WORKER_THREADS = "0";`,
      `require(${JSON.stringify(require.resolve("tsx/cjs"))});`,
      `delete process.env.ESBUILD_WORKER_THREADS;`,
      `const children = () => fs.readdirSync("/proc").filter((e) => /^\\d+$/.test(e)).flatMap((e) => {`,
      `  let stat; try { stat = fs.readFileSync("/proc/" + e + "/stat", "utf8"); } catch { return []; }`,
      `  const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");`,
      `  return Number(ppid) === process.pid ? [e + " " + stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")) + " " + state] : [];`,
      `});`,
      `require(${JSON.stringify(recorder)})`,
      `.recordStacks([${JSON.stringify(stack)}], { root: ${JSON.stringify(root)}, stackTimeoutMs: ${stackTimeoutMs ?? "undefined"} })`,
      `.then(() => console.log("recorded"), (e) => { console.log("failed: " + e.message); process.exitCode = 1; })`,
      `.then(() => console.log("children: " + JSON.stringify(children())));`,
    ].join("\n");
    const child = spawn(process.execPath, ["-e", script], {
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, PGSTACK_TEST_MARKER: marker },
    });
    let text = "";
    child.stdout!.on("data", (d: Buffer) => (text += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (text += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
    const run = { child, exited, output: () => text };
    runs.push(run);
    return run;
  }

  async function exitsWithin(run: Run, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`still running after ${ms} ms:\n${run.output()}`)), ms);
    });
    try {
      return await Promise.race([run.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  it("records a stack with no child process left, not even a zombie, once recordStacks resolves", async () => {
    const run = record("ok", path.join(root, "ok.marker"));
    const exit = await exitsWithin(run, 60_000);
    expect(exit.code, run.output()).toBe(0);
    expect(run.output()).toMatch(/^recorded\nchildren: \[\]\n/m);
    await until("the process group to be empty", () => groupMembers(run.child.pid!).length === 0, 5_000);
  }, 90_000);

  it("exits by itself after a stack fails, with no process of its group left", async () => {
    const run = record("throw", path.join(root, "throw.marker"));
    const exit = await exitsWithin(run, 60_000);
    expect(exit.code).toBe(1);
    expect(run.output()).toMatch(/failed: the Pulumi program index\.ts failed under mocks for stack "throw"[\s\S]*boom from the program/);
    // Nothing left to reap either when the call rejects: esbuild's services were stopped and waited for first.
    expect(run.output()).toMatch(/^children: \[\]$/m);
    await until("the process group to be empty", () => groupMembers(run.child.pid!).length === 0, 5_000);
  }, 90_000);

  it("stops a program stuck in a synchronous loop once its time is up, and exits", async () => {
    const run = record("spin", path.join(root, "spin.marker"), 1_000);
    const exit = await exitsWithin(run, 60_000);
    expect(exit.code).toBe(1);
    expect(run.output()).toMatch(/for stack "spin"[\s\S]*still running after 6 s; stopped/);
    await until("the process group to be empty", () => groupMembers(run.child.pid!).length === 0, 5_000);
  }, 90_000);

  it("fails a program that stops without finishing (a promise that never settles), and exits", async () => {
    const run = record("stall", path.join(root, "stall.marker"));
    const exit = await exitsWithin(run, 60_000);
    expect(exit.code).toBe(1);
    expect(run.output()).toMatch(/for stack "stall"[\s\S]*the program stopped without finishing/);
    await until("the process group to be empty", () => groupMembers(run.child.pid!).length === 0, 5_000);
  }, 90_000);

  it("leaves no process behind on Ctrl-C while a program runs", async () => {
    const marker = path.join(root, "hang.marker");
    const run = record("hang", marker);
    await until("the program to start", () => fs.existsSync(marker), 60_000);
    // The group holds more than the recorder's own process (esbuild's service), or this test would prove nothing.
    expect(groupMembers(run.child.pid!).length).toBeGreaterThan(1);
    process.kill(run.child.pid!, "SIGINT");
    const exit = await exitsWithin(run, 10_000);
    expect(exit.signal).toBe("SIGINT");
    await until("the process group to be empty", () => groupMembers(run.child.pid!).length === 0, 5_000);
  }, 90_000);
});
