/**
 * `pgstack diff <stackA> <stackB>`: every value that differs between two stacks' desired state, side by side and
 * grouped (node and memory, PostgreSQL, PgBouncer, HNSW plan, alert thresholds, benchmark, resources).
 */
import { renderStack } from "../configs/render";
import { formats, type Format } from "../drift/format";
import { diffStacks, formatStackDiff, type StackSide } from "../drift/stack-diff";
import { parseArgs } from "./args";
import { UsageError } from "./errors";
import type { Command } from "./main";
import { recordStacks } from "./offline-program";
import { referenceHost, renderedFiles } from "./render";
import { listStacks, loadStackSpec, projectRoot } from "./stack-file";

export const diffCommand: Command = {
  summary: "show every setting that differs between two stacks, side by side and grouped",
  usage: [
    "usage: pgstack diff <stackA> <stackB> [--format text|markdown|json] [--no-resources]",
    "",
    "  Both stacks are rendered as `pgstack render` does (memory: auto for the reference host). Resources come from",
    "  running the Pulumi program under mocks; --no-resources skips that (it takes a few seconds per stack).",
    "  exit: 0 (a difference between two stacks is not an error), 2 on usage errors",
  ].join("\n"),
  async run(args) {
    const { positionals, flags } = parseArgs(args, { values: ["format"], booleans: ["no-resources"] });
    const format = (flags.format ?? "text") as Format;
    if (!formats.includes(format)) throw new UsageError(`--format must be one of ${formats.join(", ")}`);
    if (positionals.length !== 2) throw new UsageError("name exactly two stacks");
    const root = projectRoot();
    const known = listStacks(root);
    for (const s of positionals) if (!known.includes(s)) throw new UsageError(`no stack "${s}" (stacks: ${known.join(", ")})`);
    const [a, b] = positionals;
    const notes: string[] = [];
    const sides: StackSide[] = positionals.map((stack) => {
      const rendered = renderStack(loadStackSpec(stack, root, referenceHost));
      return { rendered, memoryPlan: renderedFiles(rendered)["memory-plan.yaml"] };
    });
    if (!flags["no-resources"]) {
      const offline = await recordStacks([a, b], { root });
      if (offline.status === "recorded") {
        sides.forEach((side, i) => Object.assign(side, { resources: offline.stacks.get(positionals[i])?.resources }));
      } else notes.push(`${offline.message}; resources are not compared`);
    }
    process.stdout.write(formatStackDiff(diffStacks(sides[0], sides[1]), format, notes));
    return 0;
  },
};
