/**
 * `pgstack local up|down|perf`: the ephemeral perf cluster (local/cluster.ts) from the command line.
 *
 * Teardown always happens: Ctrl-C (SIGINT), SIGTERM (what `local down` sends a running `local up`), SIGHUP, an
 * uncaught exception or a failed step all stop every server, delete the data and scratch directories, give back the
 * huge pages and remove the state file before the process ends. The handlers exist only while a command runs; after
 * the teardown they are removed and a signal is raised again, so the exit status says what ended us (130 for SIGINT).
 */
import * as os from "node:os";
import * as path from "node:path";
import { renderStack } from "../configs/render";
import type { Rendered } from "../configs/rendered";
import { parseStackSpec } from "../configs/spec";
import type { StackSpec } from "../configs/stack-spec";
import { humanBytes, parseBytes, parseDuration } from "../configs/units";
import { LocalCluster, type ClusterInfo } from "../local/cluster";
import { describeHugePages } from "../local/hugepages";
import { runPerf, type PerfOutcome } from "../local/perf";
import { defaultStateRoot, listClusters, readState } from "../local/state";
import { teardownFromState, type TeardownReport } from "../local/teardown";
import { parseArgs } from "./args";
import { UsageError, UserFacingError } from "./errors";
import type { Command } from "./main";
import { terminalProgress } from "./progress";
import { projectRoot, readStackConfig, thisHost } from "./stack-file";

const usage = `usage: pgstack local up   [--stack perf] [--name NAME] [--memory 8Gi] [--no-huge-pages] [--json]
       pgstack local down [--name NAME] [--json]
       pgstack local perf [--stack perf] [--name NAME] [--memory 8Gi] [--no-huge-pages]
                          [--rows N] [--duration 15s] [--warmup 10s] [--sustained 60s] [--concurrency N]
                          [--report-dir reports/perf] [--against-pgbench [--pgbench-rounds 3]] [--keep] [--json]

  up     Start the stack's rendered files as real processes on loopback ports: PostgreSQL 17 + pgvector, PgBouncer
         (SCRAM), postgres_exporter, pgbouncer_exporter, node_exporter, the canary, mtail on PostgreSQL's log, and
         Prometheus with the stack's alert rules.
         Stays in the foreground and prints the pooled and direct connection strings and the Prometheus URL;
         Ctrl-C, or \`local down\` from another shell, tears everything down.
  down   Tear down the cluster NAME from its state file (.cache/local/NAME/state.json): asks the \`local up\` or
         \`local perf\` that owns it to stop (SIGTERM to that pid), or, if that process is gone (killed), stops the
         servers itself, deletes their directories and gives back the huge pages the cluster added.
  perf   up → HNSW indexes (postdeploy/indexes.ts, tables created) → smoke benchmark through PgBouncer
         (postdeploy/smoke.ts) → report (report.json, report.md, report.html in --report-dir) → down.
         Exits 1 when a step fails, or when benchmark.enforce is set and a target is missed.

options:
  --stack S          stack file Pulumi.S.yaml (default perf). memory: auto sizes the node to this host's RAM.
  --name NAME        cluster name (default: the stack); two clusters with different names run side by side.
  --memory SIZE      size the node as SIZE (e.g. 8Gi) instead of what the stack says: PostgreSQL shares this host
                     with PgBouncer, the exporters, Prometheus and the benchmark client.
  --no-huge-pages    start with huge_pages = off and reserve nothing. Otherwise, as root, exactly the computed
                     2 MiB pages are added to /proc/sys/vm/nr_hugepages and given back afterwards; when that is
                     impossible (not root, the kernel gives fewer) the cluster runs without them and says why.
  --rows N, --duration D, --warmup D, --sustained D, --concurrency N
                     override the stack's benchmark.* for this run (e.g. --rows 5000 --duration 2s).
  --report-dir DIR   where perf writes its report (default reports/perf).
  --against-pgbench  after the benchmark, run search, hybrid, insert and mixed with "pgbench -M prepared" on the same
                     statements, table, concurrency and PgBouncer, alternating with Node (--pgbench-rounds, default 3,
                     best of each side kept): the report shows Node ops/s ÷ pgbench tps per scenario.
  --keep             perf: keep the cluster up after the report, in the foreground, until Ctrl-C or \`local down\`.
  --json             machine-readable output on stdout (one JSON document); progress stays on stderr.

environment:
  PGSTACK_RUNTIME=native|chroot    programs from this host's PATH, or from the Debian 13 rootfs (needs root);
                                   unset: native when every program is there at the right version.
  PGSTACK_LOCAL_FAIL_AFTER=STEP    for teardown tests: fail right after huge-pages, postgres, bootstrap, pgbouncer,
                                   exporters (which includes mtail and the canary) or prometheus, with everything started so far running.

Ctrl-C, SIGTERM, SIGHUP, an uncaught error or a failed step tears the cluster down before pgstack exits.`;

/** Exit status of a process ended by a signal, as shells report it. */
const signalExitCodes: Readonly<Record<string, number>> = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 };
const handledSignals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/** Options of `up` and `perf` that shape the cluster. */
export interface ClusterFlags {
  readonly stack: string;
  readonly name: string;
  readonly memory: string | undefined;
  readonly hugePages: boolean;
  readonly json: boolean;
}

export interface PerfFlags extends ClusterFlags {
  readonly reportDir: string;
  readonly keep: boolean;
  /** 0: no pgbench comparison; otherwise the rounds per scenario (--against-pgbench [--pgbench-rounds N]). */
  readonly againstPgbenchRounds: number;
  /** benchmark.* keys to override, as a stack file would write them. */
  readonly benchmark: Readonly<Record<string, string | number>>;
}

function stringFlag(flags: Record<string, string | true>, name: string): string | undefined {
  const value = flags[name];
  return typeof value === "string" ? value : undefined;
}

function positiveInteger(flags: Record<string, string | true>, name: string): number | undefined {
  const text = stringFlag(flags, name);
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new UsageError(`--${name} "${text}" must be a whole number above 0`);
  return Number(text);
}

function durationFlag(flags: Record<string, string | true>, name: string): string | undefined {
  const text = stringFlag(flags, name);
  if (text === undefined) return undefined;
  const parsed = parseDuration(text);
  if (!parsed.ok) throw new UsageError(`--${name} "${text}" ${parsed.error}`);
  return text.trim();
}

const clusterValueFlags = ["stack", "name", "memory"] as const;
const clusterBooleanFlags = ["no-huge-pages", "json"] as const;

export function parseClusterFlags(args: string[], extra: { values?: readonly string[]; booleans?: readonly string[] } = {}) {
  const parsed = parseArgs(args, {
    values: [...clusterValueFlags, ...(extra.values ?? [])],
    booleans: [...clusterBooleanFlags, ...(extra.booleans ?? [])],
  });
  if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument "${parsed.positionals[0]}"`);
  const stack = stringFlag(parsed.flags, "stack") ?? "perf";
  const memory = stringFlag(parsed.flags, "memory");
  if (memory !== undefined) {
    const bytes = parseBytes(memory);
    if (!bytes.ok) throw new UsageError(`--memory "${memory}" ${bytes.error}`);
  }
  const flags: ClusterFlags = {
    stack,
    name: stringFlag(parsed.flags, "name") ?? stack,
    memory: memory?.trim(),
    hugePages: parsed.flags["no-huge-pages"] !== true,
    json: parsed.flags.json === true,
  };
  return { flags, raw: parsed.flags };
}

export function parsePerfFlags(args: string[]): PerfFlags {
  const { flags, raw } = parseClusterFlags(args, {
    values: ["rows", "duration", "warmup", "sustained", "concurrency", "report-dir", "pgbench-rounds"],
    booleans: ["keep", "against-pgbench"],
  });
  const benchmark: Record<string, string | number> = {};
  const rows = positiveInteger(raw, "rows");
  const concurrency = positiveInteger(raw, "concurrency");
  if (rows !== undefined) benchmark.rows = rows;
  if (concurrency !== undefined) benchmark.concurrency = concurrency;
  for (const key of ["duration", "warmup", "sustained"] as const) {
    const value = durationFlag(raw, key);
    if (value !== undefined) benchmark[key] = value;
  }
  return {
    ...flags,
    reportDir: stringFlag(raw, "report-dir") ?? path.join("reports", "perf"),
    keep: raw.keep === true,
    againstPgbenchRounds: raw["against-pgbench"] === true ? (positiveInteger(raw, "pgbench-rounds") ?? 3) : 0,
    benchmark,
  };
}

/**
 * The stack's config with the command line's overrides applied, validated by configs/spec.ts like a stack file
 * (so `--memory 512Mi` gets the same error as `node.memory: 512Mi`), and rendered for this host.
 */
export function clusterSpec(
  flags: ClusterFlags,
  benchmark: Readonly<Record<string, string | number>> = {},
  config: Record<string, unknown> = readStackConfig(flags.stack),
  host = thisHost(),
): { spec: StackSpec; sizing: string } {
  const node = (config.node ?? {}) as Record<string, unknown>;
  const withOverrides: Record<string, unknown> = {
    ...config,
    ...(flags.memory === undefined ? {} : { node: { ...node, memory: flags.memory } }),
    ...(Object.keys(benchmark).length === 0 ? {} : { benchmark: { ...((config.benchmark ?? {}) as object), ...benchmark } }),
  };
  const spec = parseStackSpec(flags.stack, withOverrides, host);
  const size = humanBytes(spec.node.memoryBytes);
  const sizing =
    flags.memory !== undefined
      ? `${size} (--memory ${flags.memory}; this host has ${humanBytes(host.memoryBytes)})`
      : spec.node.memoryAuto
        ? `${size} (memory: auto, all of this host's RAM)`
        : `${size} (node.memory of stack ${flags.stack})`;
  return { spec, sizing };
}

/**
 * Guards one command run: on SIGINT/SIGTERM/SIGHUP or an uncaught error it calls `stop` at once (so a start or a
 * benchmark in flight fails fast) and makes `race` reject. `release()` removes every handler.
 */
class RunGuard {
  signal: NodeJS.Signals | undefined;
  private crash: unknown;
  private interrupt: (reason: Error) => void = () => undefined;
  private readonly interrupted = new Promise<never>((_, reject) => {
    this.interrupt = reject;
  });
  private readonly handlers = new Map<string, (...args: unknown[]) => void>();

  constructor(
    private readonly stop: () => Promise<unknown>,
    private readonly warn: (message: string) => void,
  ) {
    this.interrupted.catch(() => undefined);
    for (const sig of handledSignals) this.on(sig, () => this.onSignal(sig));
    this.on("uncaughtException", (error) => this.onCrash(error));
    this.on("unhandledRejection", (error) => this.onCrash(error));
  }

  /** `work`'s result, or a rejection as soon as a signal or crash stops the run. */
  race<T>(work: Promise<T>): Promise<T> {
    work.catch(() => undefined); // once interrupted, its own failure (servers gone) is expected and not news
    return Promise.race([work, this.interrupted]);
  }

  /** Resolves when interrupted (never rejects): for `local up`, which just waits. */
  get stopped(): Promise<void> {
    return this.interrupted.catch(() => undefined);
  }

  /** The error to report for an uncaught exception, if that is what ended the run. */
  get crashed(): unknown {
    return this.crash;
  }

  release(): void {
    for (const [event, handler] of this.handlers) process.removeListener(event, handler);
    this.handlers.clear();
  }

  private on(event: string, handler: (...args: unknown[]) => void): void {
    this.handlers.set(event, handler);
    process.on(event as NodeJS.Signals, handler);
  }

  private onSignal(sig: NodeJS.Signals): void {
    if (this.signal !== undefined || this.crash !== undefined) {
      this.warn(`${sig}: already tearing down; waiting for it to finish so nothing is left behind`);
      return;
    }
    this.signal = sig;
    this.warn(`${sig}: tearing down`);
    this.interrupt(new Error(`interrupted by ${sig}`));
    void this.stop().catch(() => undefined);
  }

  private onCrash(error: unknown): void {
    if (this.signal !== undefined || this.crash !== undefined) return;
    // Writing to a closed stdout (`| head`) fails with EPIPE; there is nobody left to print to, so just tear down.
    this.crash = error;
    this.interrupt(error instanceof Error ? error : new Error(String(error)));
    void this.stop().catch(() => undefined);
  }
}

/** Ends the process with the signal that interrupted it, as a shell expects from an interrupted program. */
function raiseAgain(sig: NodeJS.Signals): number {
  process.kill(process.pid, sig);
  return signalExitCodes[sig] ?? 1;
}

function connectionTable(info: ClusterInfo, sizing: string): string {
  const p = info.ports;
  const rows: [string, string][] = [
    ["pooled (PgBouncer)", info.pooledUrl],
    ["direct (PostgreSQL)", info.directUrl],
    ["Prometheus", info.prometheusUrl],
    ["exporters", `postgres 127.0.0.1:${p.postgresExporter}, pgbouncer 127.0.0.1:${p.pgbouncerExporter}, node 127.0.0.1:${p.nodeExporter}`],
    ["metric sources", `canary 127.0.0.1:${p.canary}, mtail 127.0.0.1:${p.mtail}`],
    ["huge pages", describeHugePages(info.hugePages)],
    ["node sized for", sizing],
    ["runtime", `${info.runtime.kind}: PostgreSQL ${info.runtime.versions.postgres}, pgvector ${info.runtime.versions.pgvector}, PgBouncer ${info.runtime.versions.pgbouncer}`],
    ["state file", `${path.relative(process.cwd(), info.stateFile) || info.stateFile} (superuser password inside, mode 0600)`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return [`cluster ${info.name} (stack ${info.stack}) is up`, ...rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`)].join("\n");
}

function upJson(info: ClusterInfo, sizing: string): string {
  return JSON.stringify({
    name: info.name,
    stack: info.stack,
    pooledUrl: info.pooledUrl,
    directUrl: info.directUrl,
    prometheusUrl: info.prometheusUrl,
    ports: info.ports,
    hugePages: { ...info.hugePages, text: describeHugePages(info.hugePages) },
    sizing,
    stateFile: info.stateFile,
    runtime: info.runtime,
  });
}

/** The person-readable end of `local perf`: the report's path first, then one line per scenario. */
export function perfTable(outcome: PerfOutcome, sizing: string): string {
  const rel = (f: string) => {
    const r = path.relative(process.cwd(), f);
    return r === "" || r.startsWith("..") ? f : r;
  };
  const r = outcome.result;
  const lines = [
    `report: ${rel(outcome.files.html)}  (also ${rel(outcome.files.markdown)}, ${rel(outcome.files.json)})`,
    "",
    `${"scenario".padEnd(10)} ${"ops/s".padStart(9)} ${"target".padStart(8)} ${"p50 ms".padStart(8)} ${"p95 ms".padStart(8)} ${"p99 ms".padStart(8)} ${"errors".padStart(7)} ${"recall@10".padStart(9)}  result`,
  ];
  for (const s of r.scenarios) {
    lines.push(
      `${s.name.padEnd(10)} ${s.opsPerSec.toFixed(1).padStart(9)} ${s.target.opsPerSec.toFixed(0).padStart(8)} ${s.p50Ms.toFixed(2).padStart(8)} ` +
        `${s.p95Ms.toFixed(2).padStart(8)} ${s.p99Ms.toFixed(2).padStart(8)} ${String(s.errors).padStart(7)} ` +
        `${(s.recallAt10 === undefined ? "–" : s.recallAt10.toFixed(3)).padStart(9)}  ${s.pass ? "pass" : `MISSED: ${s.failures.join("; ")}`}`,
    );
  }
  for (const s of r.skipped) lines.push(`${s.name.padEnd(10)} skipped: ${s.reason}`);
  if (outcome.comparison.length > 0) {
    lines.push("", `${"Node vs pgbench -M prepared (same statements, table, concurrency, PgBouncer; best of each side)".padEnd(10)}`);
    for (const c of outcome.comparison) {
      lines.push(`${c.scenario.padEnd(10)} Node ${c.nodeOpsPerSec.toFixed(1).padStart(8)} ops/s   pgbench ${c.pgbenchTps.toFixed(1).padStart(8)} tps   ratio ${(c.ratio * 100).toFixed(0)} %`);
    }
  }
  lines.push(
    "",
    `machine       ${r.machine.cores} cores, ${humanBytes(r.machine.memoryBytes)} RAM; node sized for ${sizing}`,
    `table         ${r.table.name}: ${r.table.rows} rows of ${r.table.type}(${r.table.dimensions}), loaded at ${Math.round(r.load.rowsPerSec)} rows/s`,
    `HNSW build    ${outcome.indexBuildSeconds === null ? "not built by this run" : `${outcome.indexBuildSeconds.toFixed(1)} s`} (${r.table.indexName})`,
    `huge pages    ${outcome.hugePages}`,
    `settings      shared_buffers ${outcome.settings.shared_buffers}, work_mem ${outcome.settings.work_mem}, maintenance_work_mem ${outcome.settings.maintenance_work_mem}, max_parallel_maintenance_workers ${outcome.settings.max_parallel_maintenance_workers}`,
    `targets       ${r.pass ? "all met" : `missed: ${r.scenarios.filter((s) => !s.pass).map((s) => s.name).join(", ")}`}${outcome.exitCode === 0 && !r.pass ? " (benchmark.enforce is off: exit 0)" : ""}`,
  );
  return lines.join("\n");
}

/** Errors whose message is complete for a person: printed without a stack trace. */
const peopleErrors = new Set(["SpecError", "UserFacingError", "StopRequested", "ClusterExistsError", "IndexBuildError"]);

function printError(error: unknown, secrets: readonly string[]): void {
  const mask = (t: string) => secrets.reduce((out, s) => (s ? out.split(s).join("***").split(encodeURIComponent(s)).join("***") : out), t);
  const err = error as Error;
  const text = peopleErrors.has(err?.name) ? err.message : (err?.stack ?? String(error));
  console.error(`pgstack local: ${mask(text)}`);
}

/** Runs a command body with a cluster guarded by signal handlers; tears the cluster down whatever happens. */
async function guarded(
  cluster: LocalCluster,
  progress: ReturnType<typeof terminalProgress>,
  body: (guard: RunGuard) => Promise<number>,
): Promise<number> {
  const guard = new RunGuard(() => cluster.stop(), (m) => progress.warn(m));
  let code: number;
  try {
    code = await guard.race(body(guard));
  } catch (error) {
    if (guard.signal === undefined) printError(guard.crashed ?? error, cluster.secrets);
    code = 1;
  }
  try {
    const report = await cluster.stop();
    progress.step(
      `cluster ${cluster.name} is down: ${report.stopped.length} servers stopped, ${report.removedDirs.length} directories deleted` +
        (report.hugePagesGivenBack > 0 ? `, ${report.hugePagesGivenBack} huge pages given back` : ""),
    );
  } catch (error) {
    printError(error, cluster.secrets);
    code = 1;
  } finally {
    guard.release();
  }
  if (guard.signal !== undefined) return raiseAgain(guard.signal);
  return code;
}

async function up(args: string[]): Promise<number> {
  const { flags } = parseClusterFlags(args);
  const { spec, sizing } = clusterSpec(flags);
  const rendered = renderStack(spec);
  const progress = terminalProgress();
  warnRendered(rendered, progress.warn);
  const cluster = new LocalCluster({ name: flags.name, rendered, progress, hugePages: flags.hugePages, owner: "local up" });
  return guarded(cluster, progress, async (guard) => {
    const info = await guard.race(cluster.start());
    // The one place passwords are printed: connection strings are what `local up` is asked for.
    console.log(flags.json ? upJson(info, sizing) : connectionTable(info, sizing));
    if (!flags.json) console.log(`\nStop with Ctrl-C, or from another shell: pgstack local down --name ${info.name}`);
    return waitUntilStopped(cluster, guard, progress);
  });
}

/** Foreground until a signal, or a server dying on its own (then exit 1 after the teardown). */
async function waitUntilStopped(cluster: LocalCluster, guard: RunGuard, progress: ReturnType<typeof terminalProgress>): Promise<number> {
  // The servers are unref'd children and nothing else is pending: without a timer Node would simply exit here.
  const keepAlive = setInterval(() => undefined, 2 ** 30);
  const died = await Promise.race([cluster.unexpectedExit, guard.stopped.then(() => undefined)]).finally(() => clearInterval(keepAlive));
  if (died === undefined) return 0;
  progress.warn(`${died}\ntearing the cluster down`);
  return 1;
}

async function perf(args: string[]): Promise<number> {
  const flags = parsePerfFlags(args);
  const { spec, sizing } = clusterSpec(flags, flags.benchmark);
  const rendered = renderStack(spec);
  const progress = terminalProgress();
  warnRendered(rendered, progress.warn);
  const reportDir = path.resolve(flags.reportDir);
  const cluster = new LocalCluster({ name: flags.name, rendered, progress, hugePages: flags.hugePages, owner: "local perf" });
  return guarded(cluster, progress, async (guard) => {
    await guard.race(cluster.start());
    const outcome = await guard.race(runPerf({ cluster, progress, reportDir, sizing, againstPgbenchRounds: flags.againstPgbenchRounds }));
    console.log(flags.json ? perfJson(outcome, sizing) : perfTable(outcome, sizing));
    if (flags.keep) {
      if (!flags.json) console.log(`\n${connectionTable(cluster.info, sizing)}\n\nKept up (--keep). Stop with Ctrl-C, or: pgstack local down --name ${cluster.name}`);
      await waitUntilStopped(cluster, guard, progress);
    }
    return outcome.exitCode;
  });
}

function perfJson(outcome: PerfOutcome, sizing: string): string {
  return JSON.stringify({
    report: outcome.files,
    pass: outcome.result.pass,
    exitCode: outcome.exitCode,
    hugePages: outcome.hugePages,
    indexBuildSeconds: outcome.indexBuildSeconds,
    sizing,
    scenarios: outcome.result.scenarios.map((s) => ({
      name: s.name,
      opsPerSec: s.opsPerSec,
      targetOpsPerSec: s.target.opsPerSec,
      p50Ms: s.p50Ms,
      p95Ms: s.p95Ms,
      p99Ms: s.p99Ms,
      errors: s.errors,
      recallAt10: s.recallAt10 ?? null,
      pass: s.pass,
      failures: s.failures,
    })),
  });
}

async function down(args: string[]): Promise<number> {
  const parsed = parseArgs(args, { values: ["name"], booleans: ["json"] });
  if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument "${parsed.positionals[0]}"`);
  const name = stringFlag(parsed.flags, "name") ?? "perf";
  const json = parsed.flags.json === true;
  const progress = terminalProgress();
  const state = readState(defaultStateRoot, name);
  if (state === undefined) {
    const others = listClusters(defaultStateRoot);
    const text = `no cluster named "${name}" (no ${path.relative(projectRoot(), path.join(defaultStateRoot, name, "state.json"))})` +
      (others.length > 0 ? `; clusters here: ${others.join(", ")}` : "; nothing to tear down");
    if (json) console.log(JSON.stringify({ name, found: false, message: text }));
    else console.log(text);
    return 0;
  }
  let report: TeardownReport;
  try {
    report = await teardownFromState(defaultStateRoot, name, { progress });
  } catch (error) {
    throw new UserFacingError((error as Error).message);
  }
  if (json) {
    console.log(JSON.stringify(report));
  } else if (report.ownerTornDown) {
    console.log(`cluster ${name} is down: its ${state.owner.kind} (pid ${state.owner.pid}) tore it down`);
  } else {
    console.log(
      [
        `cluster ${name} is down`,
        `  stopped        ${report.stopped.join(", ") || "none (all were already gone)"}`,
        ...(report.alreadyGone.length > 0 ? [`  already gone   ${report.alreadyGone.join(", ")}`] : []),
        `  deleted        ${report.removedDirs.length} scratch directories`,
        `  huge pages     ${report.hugePagesGivenBack > 0 ? `${report.hugePagesGivenBack} given back` : "none to give back"}`,
      ].join("\n"),
    );
  }
  return 0;
}

function warnRendered(rendered: Rendered, warn: (m: string) => void): void {
  if (rendered.spec.target !== "local") warn(`stack ${rendered.spec.stack} targets ${rendered.spec.target}; running its rendered files locally anyway`);
  for (const w of rendered.warnings) warn(w);
}

export const localCommand: Command = {
  summary: "the ephemeral perf cluster: local up (stay up), local down, local perf (indexes, smoke benchmark, report)",
  usage,
  async run(args) {
    const [sub, ...rest] = args;
    if (os.platform() !== "linux") throw new UserFacingError(`local clusters need Linux (/proc, huge pages); this is ${os.platform()}`);
    switch (sub) {
      case "up":
        return up(rest);
      case "down":
        return down(rest);
      case "perf":
        return perf(rest);
      default:
        throw new UsageError(sub === undefined ? "say up, down or perf" : `unknown subcommand "${sub}"; say up, down or perf`);
    }
  },
};
