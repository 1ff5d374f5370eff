/**
 * `pgstack postdeploy`: the post-deploy hook every target runs once the database is up (a Kubernetes Job, a
 * run-to-completion Docker container, `local perf`): HNSW indexes from plan.json, then the smoke benchmark on a
 * scratch table (never the application's rows), then the report on stdout.
 */
import * as fs from "node:fs";
import { Client } from "pg";
import type { HookPlan } from "../configs/rendered";
import { ensureIndexes, IndexBuildError, type EnsureIndexesReport } from "../postdeploy/indexes";
import { renderReportJson, renderReportMarkdown } from "../postdeploy/report";
import { maskSecrets } from "../postdeploy/smoke-pg";
import { runSmoke, smokeExitCode } from "../postdeploy/smoke";
import { parseArgs } from "./args";
import { UsageError, UserFacingError } from "./errors";
import type { Command } from "./main";
import { terminalProgress } from "./progress";

/** The scratch table the smoke benchmark creates, loads, measures and drops. */
export const smokeTable = "pgstack_smoke";

/** The report's last line starts with this marker, so `docker logs` / `kubectl logs` readers can pick the JSON out. */
export const reportMarker = "PGSTACK_REPORT ";

export function readHookPlan(file: string): HookPlan {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new UserFacingError(`cannot read the hook plan ${file}: ${(e as Error).message}`);
  }
  const plan = parsed as Partial<HookPlan>;
  if (!Array.isArray(plan.indexPlan) || typeof plan.benchmark !== "object" || plan.benchmark === null) {
    throw new UserFacingError(`${file} is not a pgvector-stack plan.json (no indexPlan / benchmark)`);
  }
  return plan as HookPlan;
}

/** The database may still be starting (a Job scheduled beside a new StatefulSet): retry until it answers. */
async function waitForDatabase(url: string, seconds: number, progress: ReturnType<typeof terminalProgress>): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  let last = "";
  progress.step(`waiting up to ${seconds} s for the database`);
  for (;;) {
    const client = new Client({ connectionString: url, application_name: "pgstack-postdeploy", connectionTimeoutMillis: 5000 });
    client.on("error", () => undefined);
    try {
      await client.connect();
      await client.query("SELECT 1");
      await client.end();
      return;
    } catch (e) {
      last = maskSecrets((e as Error).message, [url]);
      await client.end().catch(() => undefined);
    }
    if (Date.now() > deadline) throw new UserFacingError(`the database did not answer within ${seconds} s: ${last}`);
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new UsageError(`${name} is not set: the target passes the connection string from a Secret`);
  return value;
}

function indexSummary(report: EnsureIndexesReport): string {
  const lines = [`pgvector ${report.extensionVersion} on PostgreSQL ${report.serverVersion}`];
  for (const r of report.results) {
    const build = r.buildMs === null ? "" : `, built in ${(r.buildMs / 1000).toFixed(1)} s`;
    const workers = r.parallelWorkers ? `, ${r.parallelWorkers.launched ?? "?"} parallel workers` : "";
    lines.push(`  ${r.indexName} on ${r.table}: ${r.status}${build}${workers}${r.differences.length ? ` (${r.differences.join("; ")})` : ""}`);
    for (const m of r.messages) lines.push(`    ${m}`);
  }
  for (const w of report.warnings) lines.push(`  warning: ${w}`);
  return lines.join("\n");
}

export const postdeployCommand: Command = {
  summary: "post-deploy hook: create/repair the HNSW indexes, then run the smoke benchmark and print the report",
  usage: [
    "usage: pgstack postdeploy --plan plan.json [--wait SECONDS] [--no-bench] [--rebuild-mismatched]",
    "  connection strings from the environment: PGSTACK_DIRECT_URL (PostgreSQL itself: index builds, loads)",
    "  and PGSTACK_POOLED_URL (through PgBouncer: the benchmark's queries)",
    "  exit 1 when an index cannot be built, or when benchmark.enforce is set and a target is missed",
  ].join("\n"),
  async run(args) {
    const { flags } = parseArgs(args, { values: ["plan", "wait"], booleans: ["no-bench", "rebuild-mismatched"] });
    if (typeof flags.plan !== "string") throw new UsageError("--plan FILE is required");
    const plan = readHookPlan(flags.plan);
    const directUrl = env("PGSTACK_DIRECT_URL");
    const pooledUrl = flags["no-bench"] ? "" : env("PGSTACK_POOLED_URL");
    const progress = terminalProgress();
    await waitForDatabase(directUrl, Number(flags.wait ?? 300), progress);

    let indexes: EnsureIndexesReport;
    try {
      indexes = await ensureIndexes(plan.indexPlan, {
        directUrl,
        progress,
        createTables: plan.indexPlan.some((e) => e.createTableSql !== null),
        rebuildMismatched: flags["rebuild-mismatched"] === true,
      });
    } catch (e) {
      if (e instanceof IndexBuildError) throw new UserFacingError(maskSecrets(e.message, [directUrl]));
      throw e;
    }
    console.log(indexSummary(indexes));
    if (flags["no-bench"] || plan.indexPlan.length === 0) return 0;

    const result = await runSmoke({
      pooledUrl,
      directUrl,
      plan: plan.indexPlan[0],
      spec: plan.benchmark,
      progress,
      scratchTable: smokeTable,
    });
    const buildMs = indexes.results[0]?.buildMs ?? null;
    const input = { result, title: `post-deploy smoke benchmark, stack ${plan.stack}`, indexBuildSeconds: buildMs === null ? null : buildMs / 1000 };
    console.log(renderReportMarkdown(input));
    console.log(`${reportMarker}${renderReportJson(input).replace(/\n\s*/g, "")}`);
    return smokeExitCode(result, plan.benchmark);
  },
};
