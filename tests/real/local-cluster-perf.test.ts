/**
 * A short `pgstack local perf` end to end, as the README's main command runs it but small (3,000 rows, about a second
 * per scenario): the cluster comes up, the HNSW index is built by postdeploy/indexes.ts, the smoke benchmark runs
 * through PgBouncer, and the report has non-zero numbers, a computed recall, the machine, the settings, the huge
 * pages status and the index build time — and nothing is left running afterwards.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { defaultStateRoot, isRunning, readState, type RecordedServer } from "../../local/state";
import { teardownFromState } from "../../local/teardown";

const root = path.resolve(__dirname, "..", "..");
const pgstack = path.join(root, "bin", "pgstack.js");
const name = `perf-${process.pid}`;
const reportDir = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-perf-report-"));
const nrHugePages = (): number => Number(fs.readFileSync("/proc/sys/vm/nr_hugepages", "utf8"));

afterAll(async () => {
  await teardownFromState(defaultStateRoot, name).catch(() => undefined);
  fs.rmSync(reportDir, { recursive: true, force: true });
});

interface ReportScenario {
  name: string;
  opsPerSec: number;
  ops: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  recallAt10?: number;
  target: { opsPerSec: number };
}

describe("pgstack local perf", () => {
  it("brings the cluster up, builds the index, benchmarks, reports, and tears down", async () => {
    const before = nrHugePages();
    const servers = new Map<number, RecordedServer>();
    const dirs = new Set<string>();
    const watch = setInterval(() => {
      try {
        const s = readState(defaultStateRoot, name);
        for (const server of s?.servers ?? []) servers.set(server.pid, server);
        for (const d of s?.scratchDirs ?? []) dirs.add(d);
      } catch {
        // being rewritten
      }
    }, 50);
    const started = Date.now();
    const child = spawn(
      process.execPath,
      [
        pgstack, "local", "perf", "--stack", "perf", "--name", name, "--memory", "2Gi",
        "--rows", "3000", "--duration", "1s", "--warmup", "0s", "--sustained", "2s", "--concurrency", "4",
        "--report-dir", reportDir, "--json",
      ],
      { cwd: root, stdio: ["ignore", "pipe", "pipe"], detached: false },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
    clearInterval(watch);
    console.log(`local perf took ${((Date.now() - started) / 1000).toFixed(1)} s`);
    // benchmark.enforce is off in the perf stack: missed targets are reported, not an exit code.
    expect(code, stderr).toBe(0);

    const summary = JSON.parse(stdout) as { report: { json: string; markdown: string; html: string }; exitCode: number; hugePages: string };
    expect(summary.report.json).toBe(path.join(reportDir, "report.json"));
    expect(summary.exitCode).toBe(0);

    const report = JSON.parse(fs.readFileSync(summary.report.json, "utf8")) as {
      hugePages: string;
      indexBuildSeconds: number;
      settings: Record<string, string>;
      result: {
        machine: { cores: number; memoryBytes: number };
        load: { rows: number; rowsPerSec: number };
        table: { rows: number; indexName: string };
        indexBuildSeconds: number;
        scenarios: ReportScenario[];
      };
    };
    const r = report.result;
    expect(r.machine.cores).toBe(os.cpus().length);
    expect(r.machine.memoryBytes).toBe(os.totalmem());
    expect(r.load.rows).toBe(3000);
    expect(r.load.rowsPerSec).toBeGreaterThan(0);
    expect(report.indexBuildSeconds).toBeGreaterThan(0);
    expect(r.indexBuildSeconds).toBe(report.indexBuildSeconds);
    expect(report.hugePages).toBe(summary.hugePages);
    expect(report.hugePages).toMatch(process.getuid?.() === 0 ? /^on — \d+ pages/ : /^not used — /);
    expect(report.settings).toMatchObject({
      shared_buffers: "512MB",
      huge_pages_status: process.getuid?.() === 0 ? "on" : "off",
      pgvector: expect.stringMatching(/^0\.8\./),
      "pgbouncer pool_mode": "transaction",
      "node memory (sized for)": expect.stringMatching(/^2 GiB \(--memory 2Gi/),
      [`index ${r.table.indexName}`]: expect.stringMatching(/^created, built in \d+\.\d s/),
    });

    expect(r.scenarios.map((s) => s.name)).toEqual(["insert", "search", "hybrid", "mixed", "sustained"]);
    for (const s of r.scenarios) {
      expect(s.ops, s.name).toBeGreaterThan(0);
      expect(s.opsPerSec, s.name).toBeGreaterThan(0);
      expect(s.p50Ms, s.name).toBeGreaterThan(0);
      expect(s.p99Ms, s.name).toBeGreaterThanOrEqual(s.p50Ms);
      expect(s.errors, s.name).toBe(0);
      expect(s.target.opsPerSec, s.name).toBeGreaterThan(0);
    }
    for (const s of r.scenarios.filter((x) => x.name === "search" || x.name === "hybrid")) {
      expect(s.recallAt10, s.name).toBeGreaterThan(0.5);
      expect(s.recallAt10, s.name).toBeLessThanOrEqual(1);
    }
    expect(fs.readFileSync(summary.report.markdown, "utf8")).toMatch(/\| search \| [\d,.]+ \|/);
    expect(fs.readFileSync(summary.report.html, "utf8")).toContain("<svg");

    // Down afterwards: every process and directory the run had, the state file, the huge pages.
    expect(servers.size).toBe(8);
    expect([...servers.values()].filter(isRunning)).toEqual([]);
    expect([...dirs].filter((d) => fs.existsSync(d))).toEqual([]);
    expect(fs.existsSync(path.join(defaultStateRoot, name))).toBe(false);
    expect(nrHugePages()).toBe(before);
  });
});
