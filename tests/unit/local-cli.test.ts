/**
 * `pgstack local` flags: defaults, overrides validated by the stack rules (configs/spec.ts), usage errors for nonsense.
 */
import { describe, expect, it, vi } from "vitest";
import { bytes } from "../../configs/units";
import { UserFacingError } from "../../cli/errors";
import { clusterSpec, guarded, localCommand, parseClusterFlags, parsePerfFlags } from "../../cli/local";
import { terminalProgress } from "../../cli/progress";
import { readStackConfig } from "../../cli/stack-file";

const host = { memoryBytes: 24 * bytes.GiB, cpus: 2 };
const perfConfig = readStackConfig("perf");

describe("parseClusterFlags", () => {
  it("defaults to the perf stack, a cluster named after it, huge pages on", () => {
    expect(parseClusterFlags([]).flags).toEqual({ stack: "perf", name: "perf", memory: undefined, hugePages: true, json: false });
  });
  it("reads every flag", () => {
    expect(parseClusterFlags(["--stack", "dev", "--name=a", "--memory", "8Gi", "--no-huge-pages", "--json"]).flags).toEqual({
      stack: "dev",
      name: "a",
      memory: "8Gi",
      hugePages: false,
      json: true,
    });
  });
  it.each([
    [["--memory", "8"], /--memory "8" has no unit; write 8Gi/],
    [["--memory", "lots"], /--memory "lots" is not a size/],
    [["extra"], /unexpected argument "extra"/],
    [["--rows", "5"], /unknown option --rows/],
  ])("refuses %j", (args, message) => {
    expect(() => parseClusterFlags(args)).toThrow(message);
  });
});

describe("parsePerfFlags", () => {
  it("turns benchmark flags into stack keys and keeps the report dir", () => {
    const flags = parsePerfFlags(["--rows", "3000", "--duration", "1s", "--warmup", "0s", "--sustained", "2s", "--concurrency", "4", "--keep"]);
    expect(flags.benchmark).toEqual({ rows: 3000, duration: "1s", warmup: "0s", sustained: "2s", concurrency: 4 });
    expect(flags.keep).toBe(true);
    expect(flags.reportDir).toBe("reports/perf");
  });
  it.each([
    [["--rows", "1e5"], /--rows "1e5" must be a whole number/],
    [["--rows", "0"], /--rows "0" must be a whole number above 0/],
    [["--duration", "15"], /--duration "15" has no unit/],
  ])("refuses %j", (args, message) => {
    expect(() => parsePerfFlags(args)).toThrow(message);
  });
});

describe("clusterSpec", () => {
  const flags = parseClusterFlags(["--memory", "2Gi"]).flags;

  it("sizes memory: auto to this host, and says so", () => {
    const { spec, sizing } = clusterSpec(parseClusterFlags([]).flags, {}, perfConfig, host);
    expect(spec.node.memoryBytes).toBe(24 * bytes.GiB);
    expect(sizing).toBe("24 GiB (memory: auto, all of this host's RAM)");
  });

  it("re-parses the stack with --memory as the node's RAM", () => {
    const { spec, sizing } = clusterSpec(flags, {}, perfConfig, host);
    expect(spec.node.memoryBytes).toBe(2 * bytes.GiB);
    expect(sizing).toBe("2 GiB (--memory 2Gi; this host has 24 GiB)");
  });

  it("applies benchmark overrides through the stack's own validation", () => {
    const { spec } = clusterSpec(flags, { rows: 3000, duration: "1s", sustained: "2s", warmup: "0s" }, perfConfig, host);
    expect(spec.benchmark).toMatchObject({ rows: 3000, durationSeconds: 1, sustainedSeconds: 2, warmupSeconds: 0, concurrency: 8 });
  });

  it("rejects a node too small for the guide, naming the key", () => {
    expect(() => clusterSpec(parseClusterFlags(["--memory", "512Mi"]).flags, {}, perfConfig, host)).toThrow(/node\.memory/);
    expect(() => clusterSpec(flags, { rows: 10 }, perfConfig, host)).toThrow(/benchmark\.rows/);
  });
});

describe("localCommand", () => {
  it("names its subcommands and documents every flag in its help, with defaults", () => {
    expect(localCommand.help).toMatch(/^usage: pgstack local up /);
    for (const flag of [
      "--stack S",
      "--name NAME",
      "--memory SIZE",
      "--no-huge-pages",
      "--rows N",
      "--duration DURATION",
      "--warmup DURATION",
      "--sustained DURATION",
      "--concurrency N",
      "--report-dir DIR",
      "--against-pgbench",
      "--pgbench-rounds N",
      "--compare-tls",
      "--tls-rounds N",
      "--keep",
      "--format text|json",
      "--json",
      "-h, --help",
    ]) {
      expect(localCommand.help).toContain(flag);
    }
    expect(localCommand.help).toMatch(/--report-dir DIR +where report\.json, report\.md and report\.html go \(default: reports\/perf\)/);
  });
  it.each([
    [["sideways"], 'unknown subcommand "sideways"; say up, down or perf'],
    [["pref"], 'unknown subcommand "pref"; did you mean perf?'],
    [[], "name a subcommand: up, down or perf"],
  ])("refuses the subcommand of %j", async (args, message) => {
    await expect(localCommand.run(args)).rejects.toThrow(message);
  });
  it("--format json and --json mean the same; a contradiction is an error", () => {
    expect(parseClusterFlags(["--format", "json"]).flags.json).toBe(true);
    expect(() => parseClusterFlags(["--json", "--format", "text"])).toThrow("--json and --format text contradict each other; give one of them");
    expect(() => parsePerfFlags(["--pgbench-rounds", "2"])).toThrow("--pgbench-rounds goes with --against-pgbench");
    expect(parsePerfFlags(["--against-pgbench"]).againstPgbenchRounds).toBe(3);
  });
  it("--compare-tls runs 3 rounds unless --tls-rounds says otherwise; a run without it compares nothing", () => {
    expect(parsePerfFlags([]).compareTlsRounds).toBe(0);
    expect(parsePerfFlags(["--compare-tls"]).compareTlsRounds).toBe(3);
    expect(parsePerfFlags(["--compare-tls", "--tls-rounds", "5"]).compareTlsRounds).toBe(5);
    expect(() => parsePerfFlags(["--tls-rounds", "2"])).toThrow("--tls-rounds goes with --compare-tls");
    expect(() => parsePerfFlags(["--compare-tls", "--tls-rounds", "0"])).toThrow('--tls-rounds "0" must be a whole number above 0');
    expect(localCommand.help).toMatch(/--compare-tls +measure what TLS costs/);
    expect(localCommand.help).toContain("client_tls_sslmode = allow instead of require");
  });
});

describe("guarded: a local up/perf run's failure", () => {
  const teardown = { stopped: [], alreadyGone: [], removedDirs: [], hugePagesGivenBack: 0 };
  const quiet = Object.assign(Object.create(process.stderr) as NodeJS.WriteStream, { isTTY: false, write: () => true });

  /** Runs `body` under guarded() with a stand-in cluster whose password is hunter2; stdout and stderr captured. */
  async function run(json: boolean, body: (printResult: (text: string) => void) => Promise<number>, stop = async () => teardown) {
    let stdout = "";
    let stderr = "";
    const spies = [
      vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => ((stdout += String(chunk)), true)),
      vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => ((stderr += String(chunk)), true)),
      vi.spyOn(console, "log").mockImplementation((...parts: unknown[]) => void (stdout += `${parts.join(" ")}\n`)),
      vi.spyOn(console, "error").mockImplementation((...parts: unknown[]) => void (stderr += `${parts.join(" ")}\n`)),
    ];
    try {
      const cluster = { name: "t", secrets: ["hunter2"], stop } as unknown as Parameters<typeof guarded>[0];
      const code = await guarded(cluster, terminalProgress(quiet), json, (_guard, printResult) => body(printResult));
      return { code, stdout, stderr };
    } finally {
      for (const s of spies) s.mockRestore();
    }
  }

  it("is one line on stderr, masked; asked for JSON, also the JSON error document on stdout", async () => {
    const fail = () => Promise.reject(new UserFacingError("cannot connect as app:hunter2@127.0.0.1"));
    const text = await run(false, fail);
    expect(text).toEqual({ code: 1, stdout: "", stderr: "pgstack local: cannot connect as app:***@127.0.0.1\n" });
    const json = await run(true, fail);
    expect(json.code).toBe(1);
    expect(json.stderr).toBe("pgstack local: cannot connect as app:***@127.0.0.1\n");
    expect(JSON.parse(json.stdout)).toEqual({ error: { command: "local", message: "cannot connect as app:***@127.0.0.1", exitCode: 1 } });
  });

  it("keeps stdout to one document: no error document after the result, nor a second one for a failed teardown", async () => {
    const afterResult = await run(true, async (printResult) => {
      printResult(JSON.stringify({ up: true }));
      throw new UserFacingError("postgres exited");
    });
    expect([afterResult.code, JSON.parse(afterResult.stdout)]).toEqual([1, { up: true }]);
    expect(afterResult.stderr).toBe("pgstack local: postgres exited\n");
    const twice = await run(
      true,
      () => Promise.reject(new UserFacingError("start failed")),
      () => Promise.reject(new UserFacingError("teardown failed")),
    );
    expect(JSON.parse(twice.stdout)).toEqual({ error: { command: "local", message: "start failed", exitCode: 1 } });
    expect(twice.stderr).toBe("pgstack local: start failed\npgstack local: teardown failed\n");
  });
});
