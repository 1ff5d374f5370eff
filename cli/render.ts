/**
 * `pgstack render [stack…|--all] [--out DIR]`: the rendered files of each stack, written deterministically.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { renderStack } from "../configs/render";
import type { Rendered } from "../configs/rendered";
import { bytes, pgMemory } from "../configs/units";
import { parseArgs } from "./args";
import { UsageError } from "./errors";
import type { Command } from "./main";
import { recordStacks } from "./offline-program";
import { listStacks, loadStackSpec, projectRoot } from "./stack-file";

/**
 * `memory: auto` stacks are sized to the machine that runs them; offline renders use this reference host instead,
 * so the committed snapshot is the same on every machine. `local up|perf` re-renders for the real host.
 */
export const referenceHost = { memoryBytes: 16 * bytes.GiB, cpus: 4 };

/** The files of one stack, by relative path: the rendered files plus a memory summary. */
export function renderedFiles(rendered: Rendered): Record<string, string> {
  const m = rendered.memory;
  const summary = [
    `# Memory plan for stack "${rendered.spec.stack}" (${rendered.spec.target})${rendered.spec.node.memoryAuto ? `, memory: auto rendered for a reference host of ${referenceHost.memoryBytes / bytes.GiB}Gi / ${referenceHost.cpus} cpus` : ""}`,
    `node_memory: ${pgMemory(m.nodeMemoryBytes)}`,
    `shared_buffers: ${pgMemory(m.sharedBuffersBytes)}`,
    `effective_cache_size: ${pgMemory(m.effectiveCacheSizeBytes)}`,
    `work_mem: ${pgMemory(m.workMemBytes)}`,
    `maintenance_work_mem: ${pgMemory(m.maintenanceWorkMemBytes)}`,
    `shared_memory_estimate: ${Math.ceil(m.sharedMemoryBytes / bytes.MiB)}MB`,
    `huge_pages: ${m.hugePagesSetting}`,
    `huge_pages_2MiB: ${m.hugePages}`,
    `worst_case: ${pgMemory(Math.ceil(m.worstCaseBytes / bytes.MiB) * bytes.MiB)}`,
    ...rendered.warnings.map((w) => `# warning: ${w}`),
    "",
  ].join("\n");
  return { ...rendered.files, "memory-plan.yaml": summary };
}

export function writeFiles(dir: string, files: Record<string, string>): void {
  fs.rmSync(dir, { recursive: true, force: true });
  for (const [rel, text] of Object.entries(files).sort()) {
    const file = path.join(dir, rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
  }
}

/** The file every rendered stack directory has; a directory without it is not ours to remove. */
const stackMarkerFile = "memory-plan.yaml";

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
 * The Pulumi program runs once per stack under mocks (cli/offline-program.ts); if it fails for any stack, this
 * throws and nothing is written.
 */
export async function renderStackFiles(stacks: readonly string[], root = projectRoot(), opts: { program?: string } = {}): Promise<RenderAll> {
  // Specs first: a stack file error is reported as such, before any program runs.
  const renders = stacks.map((stack) => renderStack(loadStackSpec(stack, root, referenceHost)));
  const offline = await recordStacks(stacks, { root, program: opts.program });
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
 * Writes each stack's files under `out/<stack>/`. With `pruneOthers`, directories of stacks that no longer exist
 * (a rendered stack directory whose Pulumi.<stack>.yaml is gone) are removed, so `render --all` leaves no stale stack.
 */
export function writeStacks(out: string, stacks: readonly StackFiles[], pruneOthers: boolean): void {
  for (const { stack, files } of stacks) writeFiles(path.join(out, stack), files);
  if (!pruneOthers || !fs.existsSync(out)) return;
  const keep = new Set(stacks.map((s) => s.stack));
  for (const entry of fs.readdirSync(out, { withFileTypes: true })) {
    if (entry.isDirectory() && !keep.has(entry.name) && fs.existsSync(path.join(out, entry.name, stackMarkerFile))) {
      fs.rmSync(path.join(out, entry.name), { recursive: true, force: true });
    }
  }
}

export const renderCommand: Command = {
  summary: "render stacks' postgresql.conf, pg_hba.conf, pgbouncer.ini, exporter queries, alert rules, HNSW plan and Pulumi resources to files",
  usage: "usage: pgstack render [stack…] [--all] [--out DIR]   (default DIR: rendered/)",
  async run(args) {
    const { positionals, flags } = parseArgs(args, { values: ["out"], booleans: ["all"] });
    const stacks = flags.all ? listStacks() : positionals;
    if (stacks.length === 0) throw new UsageError("name at least one stack, or --all");
    const out = path.resolve(typeof flags.out === "string" ? flags.out : path.join(projectRoot(), "rendered"));
    const all = await renderStackFiles(stacks);
    writeStacks(out, all.stacks, flags.all === true);
    for (const note of all.notes) console.error(`note: ${note}`);
    for (const { stack, files, warnings } of all.stacks) {
      console.log(`${stack}: ${Object.keys(files).length} files → ${path.relative(process.cwd(), path.join(out, stack)) || "."}`);
      for (const w of warnings) console.error(`warning (${stack}): ${w}`);
    }
    return 0;
  },
};
