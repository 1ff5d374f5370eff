/**
 * `pgstack`: the table of every command and the entry point bin/pgstack.js calls. The dispatcher, the Command type
 * and the error handling are in cli/command.ts, which the commands import; this file is imported by nobody but the
 * bin script, so there is no cycle between it and the commands.
 */
import { runCommand, type CommandTable } from "./command";
import { hookCommands } from "./hook-commands";

/** Every command, in the order `pgstack --help` lists them; each module is loaded only when its command runs. */
export const allCommands: CommandTable = {
  render: {
    summary: "write each stack's rendered files (configs, alert rules, HNSW plan, Pulumi resources) to rendered/<stack>/",
    load: () => (require("./render") as typeof import("./render")).renderCommand,
  },
  drift: {
    summary: "compare rendered/ with what this commit renders (exit 1 on drift); --live compares a running server with its stack",
    load: () => (require("./drift") as typeof import("./drift")).driftCommand,
  },
  diff: {
    summary: "every setting that differs between two stacks, side by side and grouped",
    load: () => (require("./diff") as typeof import("./diff")).diffCommand,
  },
  local: {
    summary: "the ephemeral perf cluster: local up (stay up), local down, local perf (indexes, smoke benchmark, report)",
    load: () => (require("./local") as typeof import("./local")).localCommand,
  },
  ...hookCommands,
  runtime: {
    summary: "make PostgreSQL 17 + pgvector, PgBouncer, the exporters and Prometheus available (native or Debian 13 rootfs)",
    load: () => (require("./runtime") as typeof import("./runtime")).runtimeCommand,
  },
  images: {
    summary: "build the container images under images/ from the pinned Debian 13 packages (images build)",
    load: () => (require("./images") as typeof import("./images")).imagesCommand,
  },
};

export function main(argv: readonly string[]): Promise<number> {
  return runCommand(allCommands, argv);
}
