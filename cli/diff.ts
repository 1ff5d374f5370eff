/**
 * `pgstack diff <stackA> <stackB>`: every value that differs between two stacks' desired state, side by side and
 * grouped (node and memory, PostgreSQL, PgBouncer, HNSW plan, alert thresholds, benchmark, resources).
 */
import { renderStack } from "../configs/render";
import { bytes } from "../configs/units";
import { formats } from "../drift/format";
import { diffStacks, formatStackDiff, type StackSide } from "../drift/stack-diff";
import { chosenFormat, commandHelp, formatOptions, parseOptions } from "./args";
import type { Command } from "./command";
import { UsageError } from "./errors";
import { ttyProgress, type LineProgress } from "./progress";
import { recordResources, referenceHost, renderedFiles } from "./render";
import { listStacks, loadStackSpecs, projectRoot } from "./stack-file";

const options = {
  "no-resources": { type: "boolean", help: "do not run the Pulumi program: compare everything but resources (saves a few seconds\nper stack)" },
  ...formatOptions(formats, "text: side by side; markdown: tables for a pull request; json: the groups as data"),
} as const;

const help = commandHelp({
  usage: ["pgstack diff <stackA> <stackB> [--no-resources] [--format text|markdown|json]"],
  description: [
    "Every value that differs between two stacks' desired state, grouped: node and memory, PostgreSQL, PgBouncer, HNSW",
    `plan, alert thresholds, benchmark and resources. Both stacks are rendered as \`pgstack render\` does (memory: auto`,
    `for the reference host of ${referenceHost.memoryBytes / bytes.GiB}Gi / ${referenceHost.cpus} cpus); resources come from running index.ts under Pulumi's mocks.`,
    "A progress line is drawn on stderr when it is a terminal.",
  ],
  sections: [
    { title: "options", options },
    { title: "exit status", lines: ["0 compared (two stacks differing is not an error), 1 a stack file or the program failed, 2 usage error"] },
  ],
});

/** Both stacks rendered for the reference host, with their resources unless `withResources` is off. */
async function stackSides(stacks: readonly [string, string], withResources: boolean, progress: LineProgress): Promise<{ sides: StackSide[]; notes: string[] }> {
  const root = projectRoot();
  const notes: string[] = [];
  // Both stacks' names and files are checked before either renders: every problem is reported at once.
  const sides: StackSide[] = loadStackSpecs(stacks, root, referenceHost).map((spec, i) => {
    progress.step(`rendering ${spec.stack} (${i + 1}/2)`);
    const rendered = renderStack(spec);
    return { rendered, memoryPlan: renderedFiles(rendered)["memory-plan.yaml"] };
  });
  if (withResources) {
    const offline = await recordResources(stacks, { root }, progress);
    if (offline.status === "recorded") {
      sides.forEach((side, i) => Object.assign(side, { resources: offline.stacks.get(stacks[i])?.resources }));
    } else notes.push(`${offline.message}; resources are not compared`);
  }
  return { sides, notes };
}

export const diffCommand: Command = {
  help,
  async run(args) {
    const { values, positionals } = parseOptions(args, options);
    const format = chosenFormat(values, formats);
    if (positionals.length !== 2) {
      throw new UsageError(`name exactly two stacks, not ${positionals.length} (stacks: ${listStacks().join(", ")})`);
    }
    const progress = ttyProgress();
    try {
      const { sides, notes } = await stackSides([positionals[0], positionals[1]], values["no-resources"] !== true, progress);
      progress.end();
      process.stdout.write(formatStackDiff(diffStacks(sides[0], sides[1]), format, notes));
    } finally {
      progress.end();
    }
    return 0;
  },
};
