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
import { chosenFormat, commandHelp, formatOptions, jsonRequested, noPositionals, parseOptions } from "./args";
import { describeError, errorDocument, exitCodes } from "./errors";

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

const versionOptions = formatOptions(["text", "json"], 'text: the version alone; json: {"version": "…"}');

/**
 * `pgstack version`, also `pgstack --version` and `-v`: the version is the program's, as git, kubectl and pulumi
 * have it (`git version`, `kubectl version`, `pulumi version`; `git --version`), not an option of each command.
 * Built into the dispatcher, so the hook bundle's pgstack has it too.
 */
export const versionCommand: Command = {
  help: commandHelp({
    usage: ["pgstack version [--format text|json]", "pgstack --version [--format text|json]"],
    description: ["Prints pgstack's version (package.json). `pgstack --version` and `pgstack -v` are the same command."],
    sections: [
      { title: "options", options: versionOptions },
      { title: "exit status", lines: ["0 printed, 2 usage error"] },
    ],
  }),
  async run(args) {
    const { values, positionals } = parseOptions(args, versionOptions);
    noPositionals(positionals);
    const json = chosenFormat(values, ["text", "json"] as const) === "json";
    process.stdout.write(json ? `${JSON.stringify({ version: packageVersion })}\n` : `${packageVersion}\n`);
    return exitCodes.ok;
  },
};

const versionEntry: CommandEntry = { summary: "print pgstack's version (also: pgstack --version)", load: () => versionCommand };

export function programHelp(commands: CommandTable): string {
  const width = Math.max(...[...Object.keys(commands), "version"].map((n) => n.length));
  return [
    "usage: pgstack <command> [options]",
    "       pgstack <command> --help",
    "       pgstack version",
    "",
    "commands:",
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    `  ${"version".padEnd(width)}  ${versionEntry.summary}`,
    "",
    "options:",
    "  -h, --help     show this help (with a command: that command's options) and exit",
    "  -v, --version  print pgstack's version and exit (pgstack version)",
    "",
    "exit status: 0 success, 1 failure (drift: drift found), 2 usage error; every command's --help says more",
    "",
  ].join("\n");
}

/** `pgstack: unknown command "rendr"; did you mean render?` */
function unknownCommand(name: string, commands: CommandTable): string {
  const names = [...Object.keys(commands), "version"];
  const guess = closest(name, names);
  if (guess !== undefined) return `pgstack: unknown command "${name}"; did you mean ${guess}?`;
  return `pgstack: unknown command "${name}" (commands: ${names.join(", ")})`;
}

/**
 * Loads, runs and reports one command: errors become one line on stderr and the shared exit codes, and, when the
 * command line asks for JSON, also a JSON error document on stdout (errors.ts errorDocument).
 */
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
    if (jsonRequested(args)) process.stdout.write(errorDocument(name, report));
    return report.code;
  }
}

/** A command of the table, or one built into the dispatcher (version). */
function entryOf(commands: CommandTable, name: string): CommandEntry | undefined {
  if (Object.hasOwn(commands, name)) return commands[name];
  return name === "version" ? versionEntry : undefined;
}

/** `pgstack help [command]`: the program's help, or one command's. */
function helpCommand(commands: CommandTable, topic: string | undefined): number {
  if (topic === undefined) {
    process.stdout.write(programHelp(commands));
    return exitCodes.ok;
  }
  const entry = entryOf(commands, topic);
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
 * (--help, --version: `pgstack --version [--json]` is `pgstack version [--json]`); everything after the command's
 * name is the command's.
 */
export async function runCommand(commands: CommandTable, argv: readonly string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    process.stderr.write(programHelp(commands));
    return exitCodes.usage;
  }
  if (first === "-h" || first === "--help") return helpCommand(commands, undefined);
  if (first === "help") return helpCommand(commands, rest[0]);
  if (first === "-v" || first === "--version") return runOne("version", versionEntry, rest);
  if (first.startsWith("-")) {
    const guess = closest(first.replace(/^-+/, ""), ["help", "version"]);
    console.error(`pgstack: unknown option ${first}${guess ? `; did you mean --${guess}?` : ""} (name a command first: pgstack <command> ${first})`);
    return exitCodes.usage;
  }
  const entry = entryOf(commands, first);
  if (entry === undefined) {
    console.error(unknownCommand(first, commands));
    return exitCodes.usage;
  }
  return runOne(first, entry, rest);
}
