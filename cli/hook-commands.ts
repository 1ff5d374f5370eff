/**
 * The commands that run inside a deployed target (the post-deploy hook and the canary): the bundled hook
 * (cli/hook-entry.ts) carries these only. Apart from cli/command.ts, so that the commands, which import the Command
 * type from there, are not imported back by it (no import cycle).
 */
import type { CommandTable } from "./command";

export const hookCommands = {
  canary: {
    summary: "the synthetic canary: search, hybrid and insert through PgBouncer plus connection probes, as Prometheus metrics",
    load: () => (require("./canary") as typeof import("./canary")).canaryCommand,
  },
  postdeploy: {
    summary: "the post-deploy hook: create/repair the HNSW indexes, run the smoke benchmark, print the report",
    load: () => (require("./postdeploy") as typeof import("./postdeploy")).postdeployCommand,
  },
} satisfies CommandTable;
