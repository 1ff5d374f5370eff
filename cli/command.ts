/**
 * What a pgstack command is, the table of commands and the dispatcher that runs one of them.
 *
 * Commands are loaded lazily and typed: `() => (require("./render") as typeof import("./render")).renderCommand`
 * runs the require only when the command runs, so `pgstack render` never loads the pg driver or the local runtime,
 * and `typeof import()` is a type, not a load. (A dynamic `import()` would be the ESM loader under tsx's CommonJS
 * hook, which does not resolve our extension-less .ts paths.) Commands import only this file's types, never
 * cli/main.ts: no import cycle. The bundled hook (cli/hook-entry.ts) runs the dispatcher with `hookCommands`
 * (cli/hook-commands.ts) alone, so esbuild bundles canary and postdeploy and nothing else.
 */
import { version } from "../package.json";
import { closest } from "../configs/spec-reader";
import { describeError, exitCodes } from "./errors";

export interface Command {
  /** The whole `--help` text: usage, what the command does, every option with its default (args.ts commandHelp). */
  readonly help: string;
  /** Runs with the arguments after the command's name; resolves to the exit code. Throws UsageError & co. */
  run(args: string[]): Promise<number>;
}

export interface CommandEntry {
  /** One line for `pgstack --help`, known without loading the command. */
  readonly summary: string;
  readonly load: () => Command;
}

export type CommandTable = Readonly<Record<string, CommandEntry>>;


export const packageVersion: string = version;

export function programHelp(commands: CommandTable): string {
  const width = Math.max(...Object.keys(commands).map((n) => n.length));
  return [
    "usage: pgstack <command> [options]",
    "       pgstack <command> --help",
    "       pgstack --version",
    "",
    "commands:",
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    "",
    "options:",
    "  -h, --help     show this help (with a command: that command's options) and exit",
    "  -v, --version  print pgstack's version and exit",
    "",
    "exit status: 0 success, 1 failure (drift: drift found), 2 usage error",
    "",
  ].join("\n");
}

/** `pgstack: unknown command "rendr"; did you mean render?` */
function unknownCommand(name: string, commands: CommandTable): string {
  const guess = closest(name, Object.keys(commands));
  if (guess !== undefined) return `pgstack: unknown command "${name}"; did you mean ${guess}?`;
  return `pgstack: unknown command "${name}" (commands: ${Object.keys(commands).join(", ")})`;
}

/** Loads, runs and reports one command: errors become one line on stderr and the shared exit codes. */
async function runOne(name: string, entry: CommandEntry, args: string[]): Promise<number> {
  let command: Command | undefined;
  try {
    command = entry.load();
    return await command.run(args);
  } catch (error) {
    if ((error as Error)?.name === "HelpRequested" && command !== undefined) {
      process.stdout.write(command.help);
      return exitCodes.ok;
    }
    const report = describeError(name, error);
    console.error(report.text);
    return report.code;
  }
}

/** `pgstack help [command]`: the program's help, or one command's. */
function helpCommand(commands: CommandTable, topic: string | undefined): number {
  if (topic === undefined) {
    process.stdout.write(programHelp(commands));
    return exitCodes.ok;
  }
  const entry = Object.hasOwn(commands, topic) ? commands[topic] : undefined;
  if (entry === undefined) {
    console.error(unknownCommand(topic, commands));
    return exitCodes.usage;
  }
  try {
    process.stdout.write(entry.load().help);
    return exitCodes.ok;
  } catch (error) {
    const report = describeError(topic, error);
    console.error(report.text);
    return report.code;
  }
}

/**
 * Runs `pgstack <command> [args]` against a table of commands. Options before the command are pgstack's own
 * (--help, --version); everything after the command's name is the command's.
 */
export async function runCommand(commands: CommandTable, argv: readonly string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    process.stderr.write(programHelp(commands));
    return exitCodes.usage;
  }
  if (first === "-h" || first === "--help") return helpCommand(commands, undefined);
  if (first === "help") return helpCommand(commands, rest[0]);
  if (first === "-v" || first === "--version") {
    console.log(packageVersion);
    return exitCodes.ok;
  }
  if (first.startsWith("-")) {
    const guess = closest(first.replace(/^-+/, ""), ["help", "version"]);
    console.error(`pgstack: unknown option ${first}${guess ? `; did you mean --${guess}?` : ""} (name a command first: pgstack <command> ${first})`);
    return exitCodes.usage;
  }
  const entry = Object.hasOwn(commands, first) ? commands[first] : undefined;
  if (entry === undefined) {
    console.error(unknownCommand(first, commands));
    return exitCodes.usage;
  }
  return runOne(first, entry, rest);
}
