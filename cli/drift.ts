/**
 * `pgstack drift`: is the committed rendered/ what this commit renders? And with `--live`: is a running
 * PostgreSQL/PgBouncer what its stack renders?
 *
 * Exit codes: 0 no drift, 1 drift (the report says what), 2 the comparison could not be made (usage, connection).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { renderStack } from "../configs/render";
import { bytes } from "../configs/units";
import { ConnectionError, maskSecrets, parseConnectionUrl, type ConnectionTarget } from "../drift/connection";
import { desiredFromFiles } from "../drift/desired";
import { formats, type Format } from "../drift/format";
import { compareLive } from "../drift/live";
import { readPgBouncer, readPostgres } from "../drift/live-query";
import { formatLiveDrift, type LiveDrift } from "../drift/live-report";
import { formatSnapshotDrift } from "../drift/report";
import { compareRendered, type RenderedTree } from "../drift/snapshot";
import { parseArgs, type ParsedArgs } from "./args";
import { UsageError } from "./errors";
import type { Command } from "./main";
import { renderedFiles, renderStackFiles, writeStacks } from "./render";
import { listStacks, loadStackSpec, projectRoot, thisHost } from "./stack-file";

const usage = [
  "usage: pgstack drift [stack…] [--format text|markdown|json] [--against DIR]",
  "       pgstack drift --live --stack NAME --url postgresql://user@host:port/db [--pgbouncer-url postgresql://user@host:port/pgbouncer]",
  "                     [--rendered DIR] [--format text|markdown|json]",
  "",
  "  Without --live: renders every stack (or the named ones) into a temporary folder, as `pgstack render --all`",
  "  does, and compares with rendered/ (or --against DIR, e.g. a base branch's rendered/).",
  "  --live: compares a running server with the stack's rendered state (a fresh render, or --rendered DIR holding",
  "  that stack's files). Passwords come from the URL or PGPASSWORD and are never printed.",
  "  exit: 0 no drift, 1 drift, 2 could not compare (usage, connection)",
].join("\n");

function formatFlag(flags: ParsedArgs["flags"]): Format {
  const value = flags.format ?? "text";
  if (typeof value !== "string" || !formats.includes(value as Format)) {
    throw new UsageError(`--format must be one of ${formats.join(", ")}, not ${JSON.stringify(value)}`);
  }
  return value as Format;
}

/** Every file under `dir`, by path relative to it (forward slashes), in sorted order. */
export function readFiles(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (sub: string) => {
    for (const entry of fs.readdirSync(path.join(dir, sub), { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const rel = sub ? `${sub}/${entry.name}` : entry.name;
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

async function snapshotDrift(positionals: string[], flags: ParsedArgs["flags"], format: Format): Promise<number> {
  for (const f of ["stack", "url", "pgbouncer-url", "rendered"]) {
    if (flags[f] !== undefined) throw new UsageError(`--${f} belongs to --live`);
  }
  const root = projectRoot();
  const known = listStacks(root);
  const unknown = positionals.filter((s) => !known.includes(s));
  if (unknown.length > 0) throw new UsageError(`no stack ${unknown.map((s) => `"${s}"`).join(", ")} (stacks: ${known.join(", ")})`);
  const stacks = positionals.length > 0 ? positionals : known;
  const committedDir = path.resolve(typeof flags.against === "string" ? flags.against : path.join(root, "rendered"));
  if (typeof flags.against === "string" && !fs.existsSync(committedDir)) throw new UsageError(`--against ${flags.against} does not exist`);

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-drift-"));
  try {
    const all = await renderStackFiles(stacks, root);
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
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** The stack's rendered files: from --rendered DIR, or a fresh render sized to this host for `memory: auto`. */
function desiredFilesFor(stack: string, flags: ParsedArgs["flags"]): { files: Record<string, string>; from: string } {
  if (typeof flags.rendered === "string") {
    const dir = path.resolve(flags.rendered);
    if (!fs.existsSync(dir)) throw new UsageError(`--rendered ${flags.rendered} does not exist`);
    const shown = path.relative(process.cwd(), dir);
    return { files: readFiles(dir), from: `the files in ${shown === "" ? "." : shown.startsWith("..") ? dir : shown}` };
  }
  const host = thisHost();
  const spec = loadStackSpec(stack, projectRoot(), host);
  const sized = spec.node.memoryAuto ? `, memory: auto sized to this host (${Math.round(host.memoryBytes / bytes.GiB)}Gi, ${host.cpus} cpus)` : "";
  return { files: renderedFiles(renderStack(spec)), from: `a fresh render of Pulumi.${stack}.yaml${sized}` };
}

async function liveDrift(positionals: string[], flags: ParsedArgs["flags"], format: Format): Promise<number> {
  if (positionals.length > 0) throw new UsageError(`--live takes the stack as --stack NAME, not ${positionals.join(" ")}`);
  if (flags.against !== undefined) throw new UsageError("--against compares snapshots; it does not go with --live");
  if (typeof flags.stack !== "string") throw new UsageError("--live needs --stack NAME");
  if (typeof flags.url !== "string") throw new UsageError("--live needs --url postgresql://user@host:port/database");
  const stack = flags.stack;
  if (typeof flags.rendered !== "string" && !listStacks().includes(stack)) {
    throw new UsageError(`no stack "${stack}" (stacks: ${listStacks().join(", ")})`);
  }
  const secrets: (string | undefined)[] = [process.env.PGPASSWORD];
  let pgTarget: ConnectionTarget;
  let bouncerTarget: ConnectionTarget | undefined;
  try {
    pgTarget = parseConnectionUrl(flags.url, process.env.PGPASSWORD, "--url");
    secrets.push(pgTarget.password);
    if (typeof flags["pgbouncer-url"] === "string") {
      bouncerTarget = parseConnectionUrl(flags["pgbouncer-url"], process.env.PGPASSWORD, "--pgbouncer-url");
      secrets.push(bouncerTarget.password);
    }
  } catch (e) {
    if (e instanceof ConnectionError) {
      console.error(`pgstack drift: ${maskSecrets(e.message, secrets)}`);
      return 2;
    }
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
    console.error(`pgstack drift: ${maskSecrets(message.split("\n")[0], secrets)}`);
    return 2;
  }
}

export const driftCommand: Command = {
  summary: "compare rendered/ with what this commit renders (exit 1 on drift); --live compares a running server with its stack",
  usage,
  async run(args) {
    const { positionals, flags } = parseArgs(args, {
      values: ["format", "against", "stack", "url", "pgbouncer-url", "rendered"],
      booleans: ["live"],
    });
    const format = formatFlag(flags);
    return flags.live ? liveDrift(positionals, flags, format) : snapshotDrift(positionals, flags, format);
  },
};
