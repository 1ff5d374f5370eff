/**
 * `pgstack render [stack…|--all] [--out DIR]`: the rendered files of each stack, written deterministically.
 * Only files pgstack wrote are ever replaced or removed (cli/rendered-dir.ts).
 */
import * as path from "node:path";
import { silentProgress, type Progress } from "../configs/progress";
import { renderStack } from "../configs/render";
import type { Rendered } from "../configs/rendered";
import { bytes } from "../configs/units";
import { chosenFormat, commandHelp, formatOptions, parseOptions } from "./args";
import type { Command } from "./command";
import { UsageError } from "./errors";
import { recordStacks, type OfflineRender } from "./offline-program";
import { ttyProgress } from "./progress";
import { checkOutputDir, manifestFile, pruneStaleStacks, writeStackDir, type PruneReport, type StackDirReport } from "./rendered-dir";
import { listStacks, loadStackSpecs, projectRoot, shownPath } from "./stack-file";

/**
 * `memory: auto` stacks are sized to the machine that runs them; offline renders use this reference host instead,
 * so the committed snapshot is the same on every machine. `local up|perf` re-renders for the real host.
 */
export const referenceHost = { memoryBytes: 16 * bytes.GiB, cpus: 4 };

/** The files of one stack, by relative path: exactly what configs/ rendered (memory-plan.yaml among them). */
export function renderedFiles(rendered: Rendered): Record<string, string> {
  return { ...rendered.files };
}

export interface StackFiles {
  readonly stack: string;
  /** Relative path → content: the rendered files, the memory plan and (when index.ts exists) resources.yaml. */
  readonly files: Record<string, string>;
  /** Things a person should read: memory warnings, secrets that reached non-secret resource inputs. */
  readonly warnings: readonly string[];
}

export interface RenderAll {
  readonly stacks: readonly StackFiles[];
  /** Why a part was skipped (only: index.ts does not exist yet, so there is no resources.yaml). */
  readonly notes: readonly string[];
}

/**
 * Every file of each stack, resources.yaml included: what `pgstack render` writes and `pgstack drift` compares.
 * Every stack's name and stack file are checked first, and all their problems are thrown at once (loadStackSpecs)
 * before any program runs. The Pulumi program runs once per stack under mocks (cli/offline-program.ts); if it fails
 * for any stack, this throws and nothing is written.
 */
export async function renderStackFiles(
  stacks: readonly string[],
  root = projectRoot(),
  opts: { program?: string; progress?: Progress } = {},
): Promise<RenderAll> {
  const progress = opts.progress ?? silentProgress;
  const specs = loadStackSpecs(stacks, root, referenceHost);
  const renders = specs.map((spec, i) => {
    progress.step(`rendering ${spec.stack} (${i + 1}/${stacks.length})`);
    return renderStack(spec);
  });
  const offline = await recordResources(stacks, { root, program: opts.program }, progress);
  const out = stacks.map((stack, i): StackFiles => {
    const rendered = renders[i];
    const files = renderedFiles(rendered);
    const warnings = [...rendered.warnings];
    if (offline.status === "recorded") {
      const recorded = offline.stacks.get(stack);
      if (recorded) {
        files["resources.yaml"] = recorded.yaml;
        for (const leak of recorded.leaks) {
          warnings.push(`a secret reaches a non-secret input: ${leak} (redacted in resources.yaml; a real deployment would store it in plain text)`);
        }
      }
    }
    return { stack, files, warnings };
  });
  return { stacks: out, notes: offline.status === "no-program" ? [offline.message] : [] };
}

/**
 * The Pulumi program of every stack under mocks (cli/offline-program.ts), the slow part of a render: the progress
 * line names the stacks and counts the seconds, so a terminal shows it is still working.
 */
export async function recordResources(stacks: readonly string[], opts: { root: string; program?: string }, progress: Progress): Promise<OfflineRender> {
  const started = Date.now();
  const say = () => progress.step(`recording Pulumi resources of ${stacks.join(", ")} (index.ts under mocks), ${Math.round((Date.now() - started) / 1000)} s`);
  say();
  const ticker = setInterval(say, 1000);
  ticker.unref();
  try {
    return await recordStacks(stacks, opts);
  } finally {
    clearInterval(ticker);
  }
}

export interface WriteReport {
  readonly stacks: readonly StackDirReport[];
  /** `render --all` only: directories of stacks that no longer exist, removed when provably ours. */
  readonly pruned: readonly PruneReport[];
}

/**
 * Writes each stack's files under `out/<stack>/`, replacing and removing only what pgstack wrote there. With
 * `pruneOthers`, directories of stacks that no longer exist (a rendered stack directory whose Pulumi.<stack>.yaml is
 * gone) are removed when provably ours, so `render --all` leaves no stale stack and no one else's file is lost.
 */
export function writeStacks(out: string, stacks: readonly StackFiles[], pruneOthers: boolean): WriteReport {
  const written = stacks.map(({ stack, files }) => writeStackDir(path.join(out, stack), stack, files));
  const pruned = pruneOthers ? pruneStaleStacks(out, new Set(stacks.map((s) => s.stack))) : [];
  return { stacks: written, pruned };
}

const options = {
  all: { type: "boolean", short: "a", help: "render every stack (each Pulumi.<stack>.yaml here) and remove the directories of\nstacks that no longer exist, when pgstack provably wrote them" },
  out: { type: "string", short: "o", value: "DIR", default: "rendered/ of this project", help: "write each stack to DIR/<stack>/" },
  ...formatOptions(["text", "json"], "text: a line per stack; json: what was written, removed and left, per stack"),
} as const;

const help = commandHelp({
  usage: ["pgstack render <stack>… [--out DIR] [--format text|json]", "pgstack render --all [--out DIR] [--format text|json]"],
  description: [
    "Writes every file a stack renders (postgresql.conf, pg_hba.conf, pgbouncer.ini, exporter queries, alert rules, the",
    "HNSW and hook plans, the mtail program, the Grafana dashboard…), its memory-plan.yaml and its resources.yaml (every",
    "resource index.ts registers, recorded under Pulumi's mocks) to DIR/<stack>/. The same commit gives the same bytes;",
    `secrets appear as [secret]. \`memory: auto\` stacks are rendered for a reference host of ${referenceHost.memoryBytes / bytes.GiB}Gi / ${referenceHost.cpus} cpus.`,
    "",
    `DIR/<stack>/${manifestFile} lists the files pgstack wrote there. A render replaces those and removes the`,
    "ones it no longer writes; any other file in the directory is left alone and named on stderr.",
    "A progress line is drawn on stderr when it is a terminal.",
  ],
  sections: [
    { title: "options", options },
    {
      title: "exit status",
      lines: [
        "0 written, 1 a stack file or the Pulumi program failed, or DIR cannot be written (nothing is written then),",
        "2 usage error. Every named stack is checked first, and every stack's problem is reported at once.",
      ],
    },
  ],
});

/** `prod: 12 files → rendered/prod`, then what was removed; foreign files and pruning are notes on stderr. */
function textReport(report: WriteReport): { out: string[]; notes: string[] } {
  const out: string[] = [];
  const notes: string[] = [];
  for (const s of report.stacks) {
    out.push(`${s.stack}: ${s.written.length} files → ${shownPath(s.dir)}`);
    if (s.removed.length > 0) out.push(`  removed ${s.removed.join(", ")} (an earlier render wrote them; this one does not)`);
    for (const f of s.foreign) notes.push(`${shownPath(path.join(s.dir, f))} was not written by pgstack; left as it is`);
  }
  for (const p of report.pruned) {
    const dir = shownPath(p.dir);
    if (!p.ours) notes.push(`${dir} has no stack file and no ${manifestFile}: not written by pgstack, left as it is`);
    else if (p.foreign.length === 0) out.push(`${p.stack}: stack removed (no Pulumi.${p.stack}.yaml); deleted ${dir}`);
    else {
      out.push(`${p.stack}: stack removed (no Pulumi.${p.stack}.yaml); deleted its ${p.removed.length} rendered files from ${dir}`);
      notes.push(`${dir} kept: it holds ${p.foreign.join(", ")}, which pgstack did not write`);
    }
  }
  return { out, notes };
}

function jsonReport(out: string, all: RenderAll, report: WriteReport): string {
  return `${JSON.stringify(
    {
      out,
      stacks: report.stacks.map((s, i) => ({
        stack: s.stack,
        dir: s.dir,
        files: s.written,
        removed: s.removed,
        foreign: s.foreign,
        warnings: all.stacks[i].warnings,
      })),
      pruned: report.pruned,
      notes: all.notes,
    },
    null,
    2,
  )}\n`;
}

/** The stacks to render: the named ones (no duplicates; renderStackFiles checks them all), or every stack with --all. */
function stacksToRender(positionals: readonly string[], all: boolean): string[] {
  if (all && positionals.length > 0) throw new UsageError(`name stacks or give --all, not both (got --all and ${positionals.join(" ")})`);
  if (all) return listStacks();
  if (positionals.length === 0) throw new UsageError(`name at least one stack, or --all (stacks: ${listStacks().join(", ")})`);
  return [...new Set(positionals)];
}

export const renderCommand: Command = {
  help,
  async run(args) {
    const { values, positionals } = parseOptions(args, options);
    const format = chosenFormat(values, ["text", "json"] as const);
    const stacks = stacksToRender(positionals, values.all === true);
    const out = path.resolve(values.out ?? path.join(projectRoot(), "rendered"));
    // Before the seconds the Pulumi program takes: a --out that cannot be written is known now.
    checkOutputDir(out);
    const progress = ttyProgress();
    let all: RenderAll;
    try {
      all = await renderStackFiles(stacks, projectRoot(), { progress });
    } finally {
      progress.end();
    }
    const report = writeStacks(out, all.stacks, values.all === true);
    for (const note of all.notes) console.error(`note: ${note}`);
    const text = textReport(report);
    for (const note of text.notes) console.error(`note: ${note}`);
    all.stacks.forEach(({ stack, warnings }) => warnings.forEach((w) => console.error(`warning (${stack}): ${w}`)));
    process.stdout.write(format === "json" ? jsonReport(out, all, report) : `${text.out.join("\n")}\n`);
    return 0;
  },
};
