/**
 * `pgstack postdeploy`: the post-deploy hook every target runs once the database is up (a Kubernetes Job, a
 * run-to-completion Docker container, `local perf`): HNSW indexes from plan.json, then the smoke benchmark on a
 * scratch table (never the application's rows), then the report on stdout.
 */
import * as fs from "node:fs";
import type { HookPlan } from "../configs/rendered";
import { maskSecrets, urlPasswords } from "../configs/secrets";
import { newClient } from "../pgclient/connect";
import { ensureIndexes, IndexBuildError, type EnsureIndexesReport } from "../postdeploy/indexes";
import { renderReportJson, renderReportMarkdown } from "../postdeploy/report";
import { runSmoke, smokeExitCode } from "../postdeploy/smoke";
import { chosenFormat, commandHelp, formatOptions, noPositionals, parseOptions } from "./args";
import type { Command } from "./command";
import { UsageError, UserFacingError } from "./errors";
import { secretFromEnv } from "./secret-env";
import { terminalProgress } from "./progress";

/** The scratch table the smoke benchmark creates, loads, measures and drops. */
export const smokeTable = "pgstack_smoke";

/** The report's last line starts with this marker, so `docker logs` / `kubectl logs` readers can pick the JSON out. */
export const reportMarker = "PGSTACK_REPORT ";

const defaultWaitSeconds = 300;

const options = {
  plan: { type: "string", value: "FILE", help: "the stack's rendered plan.json: index plan and benchmark (required)" },
  wait: { type: "string", value: "SECONDS", default: String(defaultWaitSeconds), help: "how long to wait for the database to answer before giving up" },
  "no-bench": { type: "boolean", help: "indexes only: skip the smoke benchmark (PGSTACK_POOLED_URL is then not needed)" },
  "rebuild-mismatched": { type: "boolean", help: "rebuild an index whose parameters differ from the plan (default: report it only)" },
  ...formatOptions(["text", "json"], "text: index summary, Markdown report and the PGSTACK_REPORT line (what the hook's\nlogs show); json: one document with the index report and the benchmark report"),
} as const;

const help = commandHelp({
  usage: ["pgstack postdeploy --plan plan.json [--wait SECONDS] [--no-bench] [--rebuild-mismatched] [--format text|json]"],
  description: [
    "The post-deploy hook every target runs once the database is up: creates or repairs the HNSW indexes of the plan",
    "(concurrently, idempotent, INVALID ones rebuilt, mismatches reported), then runs the smoke benchmark on a scratch",
    `table (${smokeTable}, never the application's rows) and prints the report. Progress goes to stderr.`,
  ],
  sections: [
    { title: "options", options },
    {
      title: "environment",
      lines: [
        "PGSTACK_DIRECT_URL   postgresql:// URL of PostgreSQL itself: index builds, loads (required)",
        "PGSTACK_POOLED_URL   postgresql:// URL through PgBouncer: the benchmark's queries (required unless --no-bench)",
        "<NAME>_FILE          instead of either: a file holding it (how the Docker target passes them)",
      ],
    },
    {
      title: "exit status",
      lines: ["0 done, 1 an index cannot be built, the database did not answer, or benchmark.enforce is set and a target", "is missed; 2 usage error"],
    },
  ],
});

function waitSeconds(value: string | undefined): number {
  if (value === undefined) return defaultWaitSeconds;
  if (!/^\d+$/.test(value)) throw new UsageError(`--wait "${value}" is not a whole number of seconds; write e.g. --wait 300`);
  return Number(value);
}

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
    const client = newClient({ connectionString: url, connectionTimeoutMillis: 5000 }, "pgstack-postdeploy");
    try {
      await client.connect();
      await client.query("SELECT 1");
      await client.end();
      return;
    } catch (e) {
      last = maskSecrets((e as Error).message, urlPasswords([url]));
      await client.end().catch(() => undefined);
    }
    if (Date.now() > deadline) throw new UserFacingError(`the database did not answer within ${seconds} s: ${last}`);
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function env(name: string): string {
  // Or from the file ${name}_FILE names, as the Docker target passes it.
  const value = secretFromEnv(name);
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
  help,
  async run(args) {
    const { values: flags, positionals } = parseOptions(args, options);
    noPositionals(positionals);
    const json = chosenFormat(flags, ["text", "json"] as const) === "json";
    if (flags.plan === undefined) throw new UsageError("--plan FILE is required (the stack's rendered plan.json)");
    const wait = waitSeconds(flags.wait);
    const plan = readHookPlan(flags.plan);
    const directUrl = env("PGSTACK_DIRECT_URL");
    const pooledUrl = flags["no-bench"] ? "" : env("PGSTACK_POOLED_URL");
    const progress = terminalProgress();
    await waitForDatabase(directUrl, wait, progress);

    let indexes: EnsureIndexesReport;
    try {
      indexes = await ensureIndexes(plan.indexPlan, {
        directUrl,
        progress,
        createTables: plan.indexPlan.some((e) => e.createTableSql !== null),
        rebuildMismatched: flags["rebuild-mismatched"] === true,
      });
    } catch (e) {
      if (e instanceof IndexBuildError) throw new UserFacingError(maskSecrets(e.message, urlPasswords([directUrl])));
      throw e;
    }
    if (!json) console.log(indexSummary(indexes));
    if (flags["no-bench"] || plan.indexPlan.length === 0) {
      if (json) console.log(JSON.stringify({ stack: plan.stack, indexes, benchmark: null, exitCode: 0 }, null, 2));
      return 0;
    }

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
    const exitCode = smokeExitCode(result, plan.benchmark);
    if (json) {
      console.log(JSON.stringify({ stack: plan.stack, indexes, benchmark: JSON.parse(renderReportJson(input)) as unknown, exitCode }, null, 2));
      return exitCode;
    }
    console.log(renderReportMarkdown(input));
    console.log(`${reportMarker}${renderReportJson(input).replace(/\n\s*/g, "")}`);
    return exitCode;
  },
};
