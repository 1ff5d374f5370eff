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

export const renderCommand: Command = {
  summary: "render stacks' postgresql.conf, pg_hba.conf, pgbouncer.ini, exporter queries, alert rules and HNSW plan to files",
  usage: "usage: pgstack render [stack…] [--all] [--out DIR]   (default DIR: rendered/)",
  async run(args) {
    const { positionals, flags } = parseArgs(args, { values: ["out"], booleans: ["all"] });
    const stacks = flags.all ? listStacks() : positionals;
    if (stacks.length === 0) throw new UsageError("name at least one stack, or --all");
    const out = path.resolve(typeof flags.out === "string" ? flags.out : path.join(projectRoot(), "rendered"));
    for (const stack of stacks) {
      const rendered = renderStack(loadStackSpec(stack, projectRoot(), referenceHost));
      const files = renderedFiles(rendered);
      writeFiles(path.join(out, stack), files);
      console.log(`${stack}: ${Object.keys(files).length} files → ${path.relative(process.cwd(), path.join(out, stack)) || "."}`);
      for (const w of rendered.warnings) console.error(`warning (${stack}): ${w}`);
    }
    return 0;
  },
};
