/**
 * `pgstack drift`: is the committed rendered/ what this commit renders? And with `--live`: is a running
 * PostgreSQL/PgBouncer what its stack renders?
 *
 * Exit codes: 0 no drift, 1 drift (the report says what), 2 the comparison could not be made (usage, connection,
 * a stack file or the program failing). Unlike other commands, a failure is 2 here: 1 already means "drift found".
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { renderStack } from "../configs/render";
import { maskSecrets } from "../configs/secrets";
import { bytes } from "../configs/units";
import { ConnectionError, parseConnectionUrl, type ConnectionTarget } from "../drift/connection";
import { desiredFromFiles } from "../drift/desired";
import { formats, type Format } from "../drift/format";
import { compareLive } from "../drift/live";
import { readPgBouncer, readPostgres } from "../drift/live-query";
import { formatLiveDrift, type LiveDrift } from "../drift/live-report";
import { formatSnapshotDrift } from "../drift/report";
import { compareRendered, type RenderedTree } from "../drift/snapshot";
import { chosenFormat, commandHelp, formatOptions, parseOptions, type OptionValues } from "./args";
import type { Command } from "./command";
import { isUsageError, printFailure, UsageError, UserFacingError } from "./errors";
import { ttyProgress } from "./progress";
import { renderedFiles, renderStackFiles, writeStacks } from "./render";
import { manifestFile } from "./rendered-dir";
import { checkStacks, listStacks, loadStackSpec, projectRoot, shownPath, thisHost } from "./stack-file";

const options = {
  against: { type: "string", value: "DIR", default: "rendered/ of this project", help: "snapshots: the rendered tree to compare with, e.g. a base branch's rendered/" },
  live: { type: "boolean", help: "compare a running PostgreSQL (and PgBouncer) with its stack instead of snapshots" },
  stack: { type: "string", value: "NAME", help: "--live: the stack the server runs" },
  url: { type: "string", value: "URL", help: "--live: postgresql://user@host:port/database of PostgreSQL itself (required)" },
  "pgbouncer-url": { type: "string", value: "URL", help: "--live: postgresql://user@host:port/pgbouncer, PgBouncer's admin console\n(SHOW CONFIG); without it PgBouncer is not compared" },
  rendered: { type: "string", value: "DIR", help: "--live: the stack's rendered files (e.g. rendered/prod) instead of a fresh render\nsized to this host" },
  ...formatOptions(formats, "text for a terminal, markdown for a pull request comment, json for machines"),
} as const;

type DriftValues = OptionValues<typeof options>;

/** Drift's exit status when the comparison could not be made (also what the dispatcher gives a usage error). */
const couldNotCompare = 2;

const help = commandHelp({
  usage: [
    "pgstack drift [stack…] [--against DIR] [--format text|markdown|json]",
    "pgstack drift --live --stack NAME --url URL [--pgbouncer-url URL] [--rendered DIR] [--format text|markdown|json]",
  ],
  description: [
    "Snapshots (default): renders every stack (or the named ones) into a temporary directory, as `pgstack render --all`",
    "does, and compares with rendered/ (or --against DIR): settings with units, resources per input path, other files",
    "as a short diff. Without stack names, a committed stack directory whose stack file is gone is drift too.",
    "A progress line is drawn on stderr when it is a terminal.",
    "",
    "--live: compares a running server with the stack's rendered state (pg_settings with sources, pending restarts,",
    "ALTER SYSTEM and per-role/database overrides, extensions, HNSW indexes; PgBouncer's SHOW CONFIG). It reads, it",
    "never changes anything. Passwords come from the URL or PGPASSWORD and are never printed.",
  ],
  sections: [
    { title: "options", options },
    { title: "environment", lines: ["PGPASSWORD   --live: the password when the URLs carry none"] },
    { title: "exit status", lines: ["0 no drift, 1 drift, 2 could not compare (usage error, connection, a stack file or the program failing)"] },
  ],
});

/** Every file under `dir`, by path relative to it (forward slashes), in sorted order; not render's manifest. */
export function readFiles(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (sub: string) => {
    for (const entry of fs.readdirSync(path.join(dir, sub), { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const rel = sub ? `${sub}/${entry.name}` : entry.name;
      // The manifest records what pgstack wrote, not what a stack renders: never drift.
      if (rel === manifestFile) continue;
      if (entry.isDirectory()) walk(rel);
      else if (entry.isFile()) out[rel] = fs.readFileSync(path.join(dir, rel), "utf8");
    }
  };
  walk("");
  return out;
}

/** The rendered stacks under `dir`: sub-directories, limited to `stacks` when given. A missing dir is empty. */
export function readTree(dir: string, stacks?: readonly string[]): RenderedTree {
  if (!fs.existsSync(dir)) return {};
  const names = fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .filter((n) => !stacks || stacks.includes(n))
    .sort();
  return Object.fromEntries(names.map((n) => [n, readFiles(path.join(dir, n))]));
}

async function snapshotDrift(positionals: string[], flags: DriftValues, format: Format): Promise<number> {
  for (const f of ["stack", "url", "pgbouncer-url", "rendered"] as const) {
    if (flags[f] !== undefined) throw new UsageError(`--${f} belongs to --live`);
  }
  const root = projectRoot();
  // renderStackFiles checks every name and stack file, and reports all their problems at once.
  const stacks = positionals.length > 0 ? [...new Set(positionals)] : listStacks(root);
  const committedDir = path.resolve(flags.against ?? path.join(root, "rendered"));
  if (flags.against !== undefined && !fs.existsSync(committedDir)) throw new UsageError(`--against ${flags.against} does not exist`);

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-drift-"));
  const progress = ttyProgress();
  try {
    const all = await renderStackFiles(stacks, root, { progress });
    progress.end();
    writeStacks(tmp, all.stacks, false);
    for (const note of all.notes) console.error(`note: ${note}`);
    // Without stack names, a stack directory that is committed but has no stack file any more is drift too.
    const before = readTree(committedDir, positionals.length > 0 ? positionals : undefined);
    const after = readTree(tmp, stacks);
    const label = path.relative(process.cwd(), committedDir) || ".";
    const report = compareRendered(before, after, { before: `${label}/`, after: "this commit" });
    process.stdout.write(formatSnapshotDrift(report, format));
    return report.drift ? 1 : 0;
  } finally {
    progress.end();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** The stack's rendered files: from --rendered DIR, or a fresh render sized to this host for `memory: auto`. */
function desiredFilesFor(stack: string, flags: DriftValues): { files: Record<string, string>; from: string } {
  if (flags.rendered !== undefined) {
    const dir = path.resolve(flags.rendered);
    if (!fs.existsSync(dir)) throw new UsageError(`--rendered ${flags.rendered} does not exist`);
    return { files: readFiles(dir), from: `the files in ${shownPath(dir)}` };
  }
  const host = thisHost();
  const spec = loadStackSpec(stack, projectRoot(), host);
  const sized = spec.node.memoryAuto ? `, memory: auto sized to this host (${Math.round(host.memoryBytes / bytes.GiB)}Gi, ${host.cpus} cpus)` : "";
  return { files: renderedFiles(renderStack(spec)), from: `a fresh render of Pulumi.${stack}.yaml${sized}` };
}

async function liveDrift(positionals: string[], flags: DriftValues, format: Format): Promise<number> {
  if (positionals.length > 0) throw new UsageError(`--live takes the stack as --stack NAME, not ${positionals.join(" ")}`);
  if (flags.against !== undefined) throw new UsageError("--against compares snapshots; it does not go with --live");
  if (flags.stack === undefined) throw new UsageError("--live needs --stack NAME");
  if (flags.url === undefined) throw new UsageError("--live needs --url postgresql://user@host:port/database");
  const stack = flags.stack;
  if (flags.rendered === undefined) checkStacks([stack]);
  const secrets: (string | undefined)[] = [process.env.PGPASSWORD];
  let pgTarget: ConnectionTarget;
  let bouncerTarget: ConnectionTarget | undefined;
  try {
    pgTarget = parseConnectionUrl(flags.url, process.env.PGPASSWORD, "--url");
    secrets.push(pgTarget.password);
    if (flags["pgbouncer-url"] !== undefined) {
      bouncerTarget = parseConnectionUrl(flags["pgbouncer-url"], process.env.PGPASSWORD, "--pgbouncer-url");
      secrets.push(bouncerTarget.password);
    }
  } catch (e) {
    if (e instanceof ConnectionError) throw new UserFacingError(maskSecrets(e.message, secrets));
    throw e;
  }
  const { files, from } = desiredFilesFor(stack, flags);
  const desired = desiredFromFiles(stack, files);
  try {
    const postgres = await readPostgres(pgTarget, desired);
    const pgbouncer = bouncerTarget ? await readPgBouncer(bouncerTarget) : undefined;
    const { findings, checked } = compareLive(desired, postgres, pgbouncer);
    const report: LiveDrift = {
      drift: findings.some((f) => f.drift),
      stack,
      desiredFrom: from,
      postgres: { url: pgTarget.display, version: postgres.version },
      pgbouncer: bouncerTarget ? { url: bouncerTarget.display } : null,
      findings,
      checked,
    };
    process.stdout.write(maskSecrets(formatLiveDrift(report, format), secrets));
    return report.drift ? 1 : 0;
  } catch (e) {
    const message = e instanceof ConnectionError ? e.message : `live drift failed: ${(e as Error)?.message ?? String(e)}`;
    throw new UserFacingError(maskSecrets(message.split("\n")[0], secrets));
  }
}

export const driftCommand: Command = {
  help,
  async run(args) {
    const { positionals, values } = parseOptions(args, options);
    const format = chosenFormat(values, formats);
    try {
      return await (values.live ? liveDrift(positionals, values, format) : snapshotDrift(positionals, values, format));
    } catch (error) {
      if (isUsageError(error)) throw error;
      // 1 means "drift found": a comparison that could not be made must not look like one. Printed as the
      // dispatcher prints a failure (with --format json, the error document on stdout too), with drift's code.
      return printFailure("drift", error, { json: format === "json", failureCode: couldNotCompare });
    }
  },
};
