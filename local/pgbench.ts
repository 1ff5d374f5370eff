/**
 * pgbench against the pooler, and the Node-vs-pgbench comparison the issue "the client must not be the bottleneck"
 * asks for: the same statements (postdeploy/pgbench-scripts.ts), the same concurrency and duration, one after the
 * other on the same table, Node first so both run on a warmed-up server.
 */
import * as fs from "node:fs";
import { silentProgress, type Progress } from "../configs/progress";
import { maskSecrets, urlPasswords } from "../configs/secrets";
import {
  comparisonRow,
  parsePgbenchOutput,
  renderPgbenchScripts,
  scriptWeights,
  type PgbenchComparison,
  type PgbenchScripts,
  type PgbenchSummary,
} from "../postdeploy/pgbench-scripts";
import type { ScenarioName, ScenarioResult, SmokeSession } from "../postdeploy/smoke";
import type { Runtime } from "./runtime";

export interface PgbenchOptions {
  readonly runtime: Runtime;
  /**
   * postgresql:// URL, normally through PgBouncer; the password goes to pgbench as PGPASSWORD, never on its command
   * line. Its sslmode and sslrootcert (a host path) go to pgbench as PGSSLMODE and PGSSLROOTCERT, the CA copied where
   * pgbench sees it (inside the rootfs under chroot).
   */
  readonly url: string;
  readonly scripts: PgbenchScripts;
  readonly scenario: ScenarioName;
  readonly concurrency: number;
  readonly seconds: number;
  /** PGAPPNAME, which PgBouncer's SHOW CLIENTS shows. Defaults to "pgstack-pgbench". */
  readonly applicationName?: string;
}

export interface PgbenchRun extends PgbenchSummary {
  /** The command line, for the report (no password in it). */
  readonly command: string;
}

/** `pgbench -M prepared -n -c N -j N -T secs -f script@weight …` through the rig's runtime. */
export async function runPgbench(opts: PgbenchOptions): Promise<PgbenchRun> {
  return execPgbench(opts, ["-M", "prepared"], (dir) =>
    scriptWeights(opts.scenario).map(({ kind, weight }) => {
      const text = opts.scripts[kind];
      if (!text) throw new Error(`no pgbench script for ${kind} (scenario ${opts.scenario}): the table has no filter column?`);
      return `${dir.writeFile(`${kind}.sql`, text, 0o644)}@${weight}`;
    }),
  );
}

export interface PgbenchReconnectOptions {
  readonly runtime: Runtime;
  /** As PgbenchOptions.url: its sslmode decides whether each new connection makes a TLS handshake. */
  readonly url: string;
  readonly concurrency: number;
  readonly seconds: number;
  /** PGAPPNAME. Defaults to "pgstack-pgbench". */
  readonly applicationName?: string;
}

/** The reconnect case's whole transaction: the cheapest statement there is, so the connection is what is measured. */
export const reconnectScript = "-- pgvector-stack: a new connection per transaction (pgbench -C)\nSELECT 1;\n";

/**
 * `pgbench -C -n -c N -j N -T secs -f select1.sql`: every transaction on a new connection (TCP connect, the TLS
 * handshake when the URL asks for TLS, SCRAM, startup), simple query protocol (preparing a statement used once would
 * only add a round trip). tps includes the reconnections; averageConnectionMs is pgbench's average connection time.
 */
export async function runPgbenchReconnect(opts: PgbenchReconnectOptions): Promise<PgbenchRun> {
  const run = await execPgbench(opts, ["-C"], (dir) => [dir.writeFile("select1.sql", reconnectScript, 0o644)]);
  if (run.averageConnectionMs === undefined) throw new Error(`pgbench -C printed no "average connection time" (${run.command})`);
  return run;
}

/** pgbench through the rig's runtime with `modeArgs`, the scripts `scripts` writes, and the URL's server and TLS. */
async function execPgbench(
  opts: { readonly runtime: Runtime; readonly url: string; readonly concurrency: number; readonly seconds: number; readonly applicationName?: string },
  modeArgs: readonly string[],
  scripts: (dir: ReturnType<Runtime["scratchDir"]>) => string[],
): Promise<PgbenchRun> {
  const { runtime } = opts;
  const url = new URL(opts.url);
  const dir = runtime.scratchDir("pgbench");
  try {
    const files = scripts(dir);
    const args = [
      ...modeArgs,
      "-n",
      "-c", String(opts.concurrency),
      "-j", String(opts.concurrency),
      "-T", String(Math.max(1, Math.round(opts.seconds))),
      ...files.flatMap((f) => ["-f", f]),
      "-h", url.hostname.replace(/^\[(.*)\]$/, "$1"),
      "-p", url.port || "5432",
      "-U", decodeURIComponent(url.username),
      decodeURIComponent(url.pathname.replace(/^\//, "")) || "postgres",
    ];
    const result = await runtime.exec("pgbench", args, {
      env: { PGPASSWORD: decodeURIComponent(url.password), PGAPPNAME: opts.applicationName ?? "pgstack-pgbench", ...pgbenchTlsEnv(url, dir) },
      timeoutMs: (opts.seconds + 120) * 1000,
    });
    const output = maskSecrets(`${result.stdout}\n${result.stderr}`, urlPasswords([opts.url]));
    if (result.code !== 0) throw new Error(`pgbench exited with ${result.code ?? result.signal}:\n${output.slice(-2000)}`);
    return { ...parsePgbenchOutput(output), command: `pgbench ${args.join(" ")}` };
  } finally {
    dir.remove();
  }
}

/**
 * libpq's TLS settings from the URL's query: what node-postgres reads from it, pgbench reads from its environment.
 * A CA without an sslmode is verify-full, as node-postgres reads that URL: libpq's default (prefer) would check the
 * chain but not the name, and fall back to plaintext when the handshake fails, so pgbench would verify less than the
 * Node clients it is compared with. An empty sslrootcert is no CA, for both.
 */
export function pgbenchTlsEnv(url: URL, dir: Pick<ReturnType<Runtime["scratchDir"]>, "writeFile">): Record<string, string> {
  const env: Record<string, string> = {};
  const sslmode = url.searchParams.get("sslmode");
  const rootcert = url.searchParams.get("sslrootcert") || null;
  if (sslmode !== null) env.PGSSLMODE = sslmode;
  else if (rootcert !== null) env.PGSSLMODE = "verify-full";
  if (rootcert !== null) env.PGSSLROOTCERT = dir.writeFile("ca.crt", fs.readFileSync(rootcert, "utf8"), 0o644);
  return env;
}

export interface CompareOptions {
  readonly runtime: Runtime;
  /** A session opened with a scratch table (or createTables): pgbench needs its pool table. */
  readonly session: SmokeSession;
  /** Defaults to search, hybrid, insert, mixed. */
  readonly scenarios?: readonly ScenarioName[];
  /** Seconds per measured run, each side. Defaults to the session spec's durationSeconds. */
  readonly seconds?: number;
  /** Also run Node with generated binary vectors (as an application would), for the report. Defaults to true. */
  readonly includeGenerated?: boolean;
  /**
   * Alternating Node/pgbench rounds per scenario; each side keeps its best (ann-benchmarks reports the best of 5).
   * On a shared 2-core machine one round swings ±30 %. Defaults to 1.
   */
  readonly rounds?: number;
  readonly progress?: Progress;
}

/** Per scenario: Node ops/s on pgbench's statements, pgbench tps, and their ratio (the issue wants ≥ 0.9). */
export async function compareWithPgbench(opts: CompareOptions): Promise<PgbenchComparison[]> {
  const { session, runtime } = opts;
  const progress = opts.progress ?? silentProgress;
  const spec = session.options.spec;
  const seconds = opts.seconds ?? spec.durationSeconds;
  const scripts = renderPgbenchScripts(
    session.table,
    { queries: session.queryPoolSize, inserts: session.insertPoolSize, rowIds: session.rowIds },
    session.pipeline,
  );
  const rows: PgbenchComparison[] = [];
  const rounds = Math.max(1, Math.trunc(opts.rounds ?? 1));
  for (const scenario of opts.scenarios ?? (["search", "hybrid", "insert", "mixed"] as const)) {
    if (scenario === "hybrid" && !scripts.hybrid) continue;
    let node: ScenarioResult | null = null;
    let bench: PgbenchRun | null = null;
    let generated: ScenarioResult | null = null;
    for (let round = 0; round < rounds; round++) {
      // Warm-up only before the first Node run: the server is warm for the runs after it.
      const nodeRun = await session.runScenario(scenario, {
        vectorSource: "stored",
        durationSeconds: seconds,
        measureRecall: false,
        ...(round > 0 ? { warmupSeconds: 0 } : {}),
      });
      if (!nodeRun) break;
      if (!node || nodeRun.opsPerSec > node.opsPerSec) node = nodeRun;
      progress.step(`pgbench: ${scenario} for ${seconds} s at concurrency ${spec.concurrency} (round ${round + 1} of ${rounds})`);
      const benchRun = await runPgbench({ runtime, url: session.options.pooledUrl, scripts, scenario, concurrency: spec.concurrency, seconds });
      if (!bench || benchRun.tps > bench.tps) bench = benchRun;
      if (opts.includeGenerated !== false) {
        const g = await session.runScenario(scenario, { vectorSource: "generated", durationSeconds: seconds, measureRecall: false, warmupSeconds: 0 });
        if (g && (!generated || g.opsPerSec > generated.opsPerSec)) generated = g;
      }
    }
    if (!node || !bench) continue;
    rows.push(
      comparisonRow({
        scenario,
        concurrency: spec.concurrency,
        seconds,
        nodeOpsPerSec: node.opsPerSec,
        pgbenchTps: Math.round(bench.tps * 10) / 10,
        ...(generated ? { nodeGeneratedOpsPerSec: generated.opsPerSec } : {}),
        pgbenchFailed: bench.failed,
        nodeErrors: node.errors,
        nodeClientCpuCores: node.clientCpuCores,
      }),
    );
  }
  return rows;
}
