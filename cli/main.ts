/**
 * `pgstack`: the only place that parses arguments, prints and chooses exit codes.
 * Commands are loaded lazily, so `pgstack render` does not load the pg driver or the runtime.
 */

export interface Command {
  readonly summary: string;
  readonly usage: string;
  run(args: string[]): Promise<number>;
}

export type Loader = () => Command;

const allCommands: Readonly<Record<string, Loader>> = {
  render: () => require("./render").renderCommand,
  drift: () => require("./drift").driftCommand,
  diff: () => require("./diff").diffCommand,
  local: () => require("./local").localCommand,
  canary: () => require("./canary").canaryCommand,
  postdeploy: () => require("./postdeploy").postdeployCommand,
  runtime: () => require("./runtime").runtimeCommand,
};

function help(commands: Readonly<Record<string, Loader>>): string {
  const lines = ["usage: pgstack <command> [options]", "", "commands:"];
  for (const [name, load] of Object.entries(commands)) lines.push(`  ${name.padEnd(11)} ${load().summary}`);
  lines.push("", "`pgstack <command> --help` shows a command's options.");
  return lines.join("\n");
}

export function main(argv: string[]): Promise<number> {
  return runCommand(allCommands, argv);
}

/** Runs one command of a table; the hook bundle (cli/hook-entry.ts) passes a smaller table. */
export async function runCommand(commands: Readonly<Record<string, Loader>>, argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    console.log(help(commands));
    return name === undefined ? 2 : 0;
  }
  const load = commands[name];
  if (!load) {
    console.error(`pgstack: unknown command "${name}"\n\n${help(commands)}`);
    return 2;
  }
  const command = load();
  if (rest.includes("--help") || rest.includes("-h")) {
    console.log(`${command.usage}\n\n${command.summary}`);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (e) {
    // Errors meant for people print as they are; anything else keeps its stack for bug reports.
    const err = e as Error;
    if (err?.name === "UsageError") {
      console.error(`pgstack ${name}: ${err.message}\n\n${command.usage}`);
      return 2;
    }
    if (err?.name === "SpecError" || err?.name === "UserFacingError") {
      console.error(`pgstack ${name}: ${err.message}`);
      return 1;
    }
    console.error(`pgstack ${name}: ${err?.stack ?? String(e)}`);
    return 1;
  }
}
