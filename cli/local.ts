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
import { maskSecrets } from "../configs/secrets";
import { parseStackSpec } from "../configs/spec";
import type { StackSpec } from "../configs/stack-spec";
import { humanBytes, parseBytes, parseDuration } from "../configs/units";
import { LocalCluster, type ClusterInfo } from "../local/cluster";
import { describeHugePages } from "../local/hugepages";
import { runPerf, type PerfOutcome } from "../local/perf";
import { defaultStateRoot, listClusters, readState } from "../local/state";
import { teardownFromState, type TeardownReport } from "../local/teardown";
import { closest } from "../configs/spec-reader";
import { chosenFormat, commandHelp, formatOptions, noPositionals, parseOptions, type OptionValues } from "./args";
import type { Command } from "./command";
import { HelpRequested, printFailure, UsageError, UserFacingError } from "./errors";
import { terminalProgress } from "./progress";
import { projectRoot, readStackFile, secretKeysOf, thisHost } from "./stack-file";

/** Options of `up` and `perf`: which stack, how the cluster is sized, how results are printed. */
const clusterOptions = {
  stack: { type: "string", value: "S", default: "perf", help: "the stack file Pulumi.S.yaml; memory: auto sizes the node to this host's RAM" },
  name: { type: "string", value: "NAME", default: "the stack's name", help: "cluster name; two clusters with different names run side by side" },
  memory: {
    type: "string",
    value: "SIZE",
    default: "the stack's node.memory",
    help: "size the node as SIZE (e.g. 8Gi): PostgreSQL shares this host with PgBouncer, the\nexporters, Prometheus and the benchmark client",
  },
  "no-huge-pages": {
    type: "boolean",
    help: "start with huge_pages = off and reserve nothing. Otherwise, as root, exactly the computed\n2 MiB pages are added to /proc/sys/vm/nr_hugepages and given back afterwards; when that\nis impossible (not root, the kernel gives fewer) the cluster runs without them and says why",
  },
  ...formatOptions(["text", "json"], "json: one JSON document on stdout (up: the connection strings; perf: the results);\nprogress stays on stderr"),
} as const;

/** Options `perf` adds: the benchmark overrides, the report and the pgbench comparison. */
const perfOptions = {
  rows: { type: "string", value: "N", default: "the stack's benchmark.rows", help: "rows of the benchmark table" },
  duration: { type: "string", value: "DURATION", default: "benchmark.duration", help: "measured time per scenario (e.g. 15s)" },
  warmup: { type: "string", value: "DURATION", default: "benchmark.warmup", help: "unmeasured warm-up before each scenario" },
  sustained: { type: "string", value: "DURATION", default: "benchmark.sustained", help: "length of the sustained mixed run" },
  concurrency: { type: "string", value: "N", default: "benchmark.concurrency", help: "clients through PgBouncer" },
  "report-dir": { type: "string", value: "DIR", default: "reports/perf", help: "where report.json, report.md and report.html go" },
  "against-pgbench": {
    type: "boolean",
    help: 'after the benchmark, run search, hybrid, insert and mixed with "pgbench -M prepared" on the\nsame statements, table, concurrency and PgBouncer, alternating with Node; the report shows\nNode ops/s ÷ pgbench tps per scenario',
  },
  "pgbench-rounds": { type: "string", value: "N", default: "3", help: "with --against-pgbench: rounds per scenario, the best of each side kept" },
  "compare-tls": {
    type: "boolean",
    help: "measure what TLS costs: after the benchmark, run search, hybrid, insert and mixed through\nPgBouncer over plain text (sslmode=disable) and over verify-full TLS in alternating rounds,\nand pgbench -C (a new connection per SELECT 1) both ways; the report shows TLS ÷ plain per\nscenario against the goal (≥ 90 % in steady state). For this, PgBouncer runs with\nclient_tls_sslmode = allow instead of require; PostgreSQL stays TLS-only",
  },
  "tls-rounds": { type: "string", value: "N", default: "3", help: "with --compare-tls: rounds per scenario and leg, the median of each leg kept" },
  keep: { type: "boolean", help: "keep the cluster up after the report, in the foreground, until Ctrl-C or `local down`" },
} as const;

const downOptions = {
  name: { type: "string", value: "NAME", default: "perf", help: "the cluster to tear down" },
  ...formatOptions(["text", "json"], "json: the teardown report as one JSON document"),
} as const;

const subcommands = ["up", "down", "perf"] as const;

const help = commandHelp({
  usage: [
    "pgstack local up   [--stack S] [--name NAME] [--memory SIZE] [--no-huge-pages] [--format text|json]",
    "pgstack local down [--name NAME] [--format text|json]",
    "pgstack local perf [--stack S] [--name NAME] [--memory SIZE] [--no-huge-pages] [--rows N] [--duration D]",
    "                   [--warmup D] [--sustained D] [--concurrency N] [--report-dir DIR]",
    "                   [--against-pgbench [--pgbench-rounds N]] [--compare-tls [--tls-rounds N]] [--keep]",
    "                   [--format text|json]",
  ],
  description: [
    "up     Start the stack's rendered files as real processes on loopback ports: PostgreSQL 17 + pgvector, PgBouncer",
    "       (SCRAM), postgres_exporter, pgbouncer_exporter, node_exporter, the canary, mtail on PostgreSQL's log, and",
    "       Prometheus with the stack's alert rules. Stays in the foreground and prints the pooled and direct connection",
    "       strings and the Prometheus URL; Ctrl-C, or `local down` from another shell, tears everything down.",
    "down   Tear down the cluster NAME from its state file (.cache/local/NAME/state.json): asks the `local up` or",
    "       `local perf` that owns it to stop (SIGTERM to that pid), or, if that process is gone (killed), stops the",
    "       servers itself, deletes their directories and gives back the huge pages the cluster added.",
    "perf   up → HNSW indexes (postdeploy/indexes.ts, tables created) → smoke benchmark through PgBouncer",
    "       (postdeploy/smoke.ts) → report (report.json, report.md, report.html in --report-dir) → down.",
    "       --compare-tls adds plain text vs TLS through PgBouncer to the report (PgBouncer then admits both).",
    "",
    "Ctrl-C, SIGTERM, SIGHUP, an uncaught error or a failed step tears the cluster down before pgstack exits.",
  ],
  sections: [
    { title: "options of up and perf", options: clusterOptions },
    { title: "options of perf only (the benchmark ones override the stack's benchmark.* for this run)", options: perfOptions },
    { title: "options of down", options: downOptions },
    {
      title: "environment",
      lines: [
        "PGSTACK_RUNTIME=native|chroot    programs from this host's PATH, or from the Debian 13 rootfs (needs root);",
        "                                 unset: native when every program is there at the right version.",
        "PGSTACK_LOCAL_FAIL_AFTER=STEP    for teardown tests: fail right after placement, certificates, huge-pages,",
        "                                 postgres, bootstrap, pgbouncer, exporters, mtail, canary or prometheus, with",
        "                                 everything started so far running.",
      ],
    },
    {
      title: "exit status",
      lines: [
        "0 done; 1 a step failed, or (perf) benchmark.enforce is set and a target is missed; 2 usage error;",
        "129/130/143 ended by SIGHUP/SIGINT/SIGTERM after the teardown",
      ],
    },
  ],
});

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
  /** 0: no TLS comparison; otherwise the rounds per scenario and leg (--compare-tls [--tls-rounds N]). */
  readonly compareTlsRounds: number;
  /** benchmark.* keys to override, as a stack file would write them. */
  readonly benchmark: Readonly<Record<string, string | number>>;
}

function positiveInteger(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new UsageError(`--${name} "${value}" must be a whole number above 0`);
  return Number(value);
}

function durationFlag(value: string | undefined, name: string): string | undefined {
  if (value === undefined) return undefined;
  const parsed = parseDuration(value);
  if (!parsed.ok) throw new UsageError(`--${name} "${value}" ${parsed.error}`);
  return value.trim();
}

function clusterFlags(values: OptionValues<typeof clusterOptions>, positionals: readonly string[]): ClusterFlags {
  noPositionals(positionals);
  const stack = values.stack ?? "perf";
  if (values.memory !== undefined) {
    const bytes = parseBytes(values.memory);
    if (!bytes.ok) throw new UsageError(`--memory "${values.memory}" ${bytes.error}`);
  }
  return {
    stack,
    name: values.name ?? stack,
    memory: values.memory?.trim(),
    hugePages: values["no-huge-pages"] !== true,
    json: chosenFormat(values, ["text", "json"] as const) === "json",
  };
}

export function parseClusterFlags(args: string[]): { flags: ClusterFlags } {
  const { values, positionals } = parseOptions(args, clusterOptions);
  return { flags: clusterFlags(values, positionals) };
}

export function parsePerfFlags(args: string[]): PerfFlags {
  const { values, positionals } = parseOptions(args, { ...clusterOptions, ...perfOptions });
  const flags = clusterFlags(values, positionals);
  const benchmark: Record<string, string | number> = {};
  const rows = positiveInteger(values.rows, "rows");
  const concurrency = positiveInteger(values.concurrency, "concurrency");
  if (rows !== undefined) benchmark.rows = rows;
  if (concurrency !== undefined) benchmark.concurrency = concurrency;
  for (const key of ["duration", "warmup", "sustained"] as const) {
    const value = durationFlag(values[key], key);
    if (value !== undefined) benchmark[key] = value;
  }
  const rounds = positiveInteger(values["pgbench-rounds"], "pgbench-rounds");
  if (rounds !== undefined && values["against-pgbench"] !== true) throw new UsageError("--pgbench-rounds goes with --against-pgbench");
  const tlsRounds = positiveInteger(values["tls-rounds"], "tls-rounds");
  if (tlsRounds !== undefined && values["compare-tls"] !== true) throw new UsageError("--tls-rounds goes with --compare-tls");
  return {
    ...flags,
    reportDir: values["report-dir"] ?? path.join("reports", "perf"),
    keep: values.keep === true,
    againstPgbenchRounds: values["against-pgbench"] === true ? (rounds ?? 3) : 0,
    compareTlsRounds: values["compare-tls"] === true ? (tlsRounds ?? 3) : 0,
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
  given?: Record<string, unknown>,
  host = thisHost(),
): { spec: StackSpec; sizing: string } {
  // A config given by a caller (tests) stands for this namespace alone; the stack file has other namespaces too.
  const { config, otherKeys } = given === undefined ? readStackFile(flags.stack) : { config: given, otherKeys: [] };
  const node = (config.node ?? {}) as Record<string, unknown>;
  const withOverrides: Record<string, unknown> = {
    ...config,
    ...(flags.memory === undefined ? {} : { node: { ...node, memory: flags.memory } }),
    ...(Object.keys(benchmark).length === 0 ? {} : { benchmark: { ...((config.benchmark ?? {}) as object), ...benchmark } }),
  };
  const spec = parseStackSpec(flags.stack, withOverrides, { host, secretKeys: secretKeysOf(config), otherKeys });
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
    ["pooled (PgBouncer)", `${info.pooledUrl}  (the application role: DML)`],
    ["read-only", `${info.readOnlyUrl}  (through PgBouncer: SELECT only)`],
    ["owner (PostgreSQL)", `${info.directUrl}  (DDL, loads, index builds)`],
    ["superuser", `${info.superuserUrl}  (Unix socket only, as root: never over TCP)`],
    ["Prometheus", info.prometheusUrl],
    ["TLS", `every connection verify-full against this cluster's CA ${path.relative(process.cwd(), info.caPath) || info.caPath} (sslrootcert of the URLs)`],
    ["exporters", `postgres 127.0.0.1:${p.postgresExporter}, pgbouncer 127.0.0.1:${p.pgbouncerExporter}, node 127.0.0.1:${p.nodeExporter}`],
    ["metric sources", `canary 127.0.0.1:${p.canary}, mtail 127.0.0.1:${p.mtail}`],
    ["huge pages", describeHugePages(info.hugePages)],
    ["node sized for", sizing],
    ["runtime", `${info.runtime.kind}: PostgreSQL ${info.runtime.versions.postgres}, pgvector ${info.runtime.versions.pgvector}, PgBouncer ${info.runtime.versions.pgbouncer}`],
    ["state file", `${path.relative(process.cwd(), info.stateFile) || info.stateFile} (the passwords inside, mode 0600)`],
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
    readOnlyUrl: info.readOnlyUrl,
    superuserUrl: info.superuserUrl,
    prometheusUrl: info.prometheusUrl,
    caPath: info.caPath,
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
  const t = outcome.tlsCost;
  if (t !== null) {
    lines.push(
      "",
      `TLS cost through PgBouncer: plain text vs verify-full TLS, median of ${t.rounds} alternating rounds of ${t.seconds} s; goal TLS ≥ ${Math.round(t.goal * 100)} % of plain in steady state: ${t.meetsGoal ? "met" : "MISSED"}`,
    );
    for (const row of t.rows) {
      const unit = row.steadyState ? "ops/s" : "tps  ";
      const connect = row.plain.connectionMs !== undefined && row.tls.connectionMs !== undefined ? `   connect ${row.plain.connectionMs.toFixed(2)} → ${row.tls.connectionMs.toFixed(2)} ms` : "";
      lines.push(
        `${row.scenario.padEnd(10)} plain ${row.plain.opsPerSec.toFixed(1).padStart(8)} ${unit}   TLS ${row.tls.opsPerSec.toFixed(1).padStart(8)} ${unit}   ratio ${(row.ratio * 100).toFixed(1).padStart(5)} %` +
          `${row.meetsGoal === null ? connect : row.meetsGoal ? "" : "   MISSED"}`,
      );
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

/**
 * Runs a command body with a cluster guarded by signal handlers; tears the cluster down whatever happens. A failure
 * is printed as the dispatcher prints one (cli/errors.ts), with the cluster's passwords masked: with `json`, also as
 * the JSON error document on stdout, unless a document is there already (the body's result, via `printResult`).
 */
export async function guarded(
  cluster: Pick<LocalCluster, "name" | "secrets" | "stop">,
  progress: ReturnType<typeof terminalProgress>,
  json: boolean,
  body: (guard: RunGuard, printResult: (text: string) => void) => Promise<number>,
): Promise<number> {
  const guard = new RunGuard(() => cluster.stop(), (m) => progress.warn(m));
  // stdout holds one JSON document: the result, or the first failure.
  let documentPrinted = false;
  const printResult = (text: string) => {
    console.log(text);
    documentPrinted = true;
  };
  const printError = (error: unknown) => {
    printFailure("local", error, { mask: (text) => maskSecrets(text, cluster.secrets), json: json && !documentPrinted });
    documentPrinted ||= json;
  };
  let code: number;
  try {
    code = await guard.race(body(guard, printResult));
  } catch (error) {
    if (guard.signal === undefined) printError(guard.crashed ?? error);
    code = 1;
  }
  try {
    const report = await cluster.stop();
    progress.step(
      `cluster ${cluster.name} is down: ${report.stopped.length} servers stopped, ${report.removedDirs.length} directories deleted` +
        (report.hugePagesGivenBack > 0 ? `, ${report.hugePagesGivenBack} huge pages given back` : ""),
    );
  } catch (error) {
    printError(error);
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
  const cluster = new LocalCluster({ name: flags.name, spec, progress, hugePages: flags.hugePages, owner: "local up" });
  return guarded(cluster, progress, flags.json, async (guard, printResult) => {
    const info = await guard.race(cluster.start());
    // The one place passwords are printed: connection strings are what `local up` is asked for.
    printResult(flags.json ? upJson(info, sizing) : connectionTable(info, sizing));
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
  const cluster = new LocalCluster({
    name: flags.name,
    spec,
    progress,
    hugePages: flags.hugePages,
    owner: "local perf",
    // Plain-text clients are admitted only for the comparison that measures them; every other run requires TLS.
    clientTls: flags.compareTlsRounds > 0 ? "allow" : "require",
  });
  return guarded(cluster, progress, flags.json, async (guard, printResult) => {
    await guard.race(cluster.start());
    const outcome = await guard.race(
      runPerf({ cluster, progress, reportDir, sizing, againstPgbenchRounds: flags.againstPgbenchRounds, compareTlsRounds: flags.compareTlsRounds }),
    );
    printResult(flags.json ? perfJson(outcome, sizing) : perfTable(outcome, sizing));
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
    tlsCost: outcome.tlsCost,
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
  const { values, positionals } = parseOptions(args, downOptions);
  noPositionals(positionals);
  const name = values.name ?? "perf";
  const json = chosenFormat(values, ["text", "json"] as const) === "json";
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
  // A stack of another target is refused by LocalCluster: the perf cluster renders only `target: local` for its placement.
  for (const w of rendered.warnings) warn(w);
}

/** `unknown subcommand "pref"; did you mean perf?` */
function unknownSubcommand(sub: string | undefined): UsageError {
  if (sub === undefined) return new UsageError("name a subcommand: up, down or perf");
  const guess = closest(sub, subcommands);
  return new UsageError(`unknown subcommand "${sub}"; ${guess !== undefined ? `did you mean ${guess}?` : "say up, down or perf"}`);
}

export const localCommand: Command = {
  help,
  async run(args) {
    const [sub, ...rest] = args;
    if (sub === "-h" || sub === "--help") throw new HelpRequested();
    if (sub !== "up" && sub !== "down" && sub !== "perf") throw unknownSubcommand(sub);
    if (os.platform() !== "linux") throw new UserFacingError(`local clusters need Linux (/proc, huge pages); this is ${os.platform()}`);
    if (sub === "up") return up(rest);
    if (sub === "down") return down(rest);
    return perf(rest);
  },
};
