/**
 * Every command's options, read by node:util's parseArgs (`--name value`, `--name=value`, short flags like `-h`,
 * `--` ends the options) and then checked here, so every command reports a bad command line the same way: an
 * unknown option with a "did you mean", a missing value naming the option and what it takes.
 *
 * The same table prints the command's `--help` (commandHelp), so the help lists exactly the options that parse,
 * each with what it does and its default.
 */
import { parseArgs } from "node:util";
import { closest } from "../configs/spec-reader";
import { HelpRequested, UsageError } from "./errors";

export interface OptionSpec {
  readonly type: "string" | "boolean";
  /** One letter: `-o` for `--out`. */
  readonly short?: string;
  /** The value's placeholder in help and errors (DIR, 10s, text|json); string options only. */
  readonly value?: string;
  /** What the option does. A "\n" continues on the next line of help. */
  readonly help: string;
  /** The default as help shows it; the command applies it (`values.out ?? "rendered"`). */
  readonly default?: string;
  /** A string option that may be given more than once; its value is every one given, in order. */
  readonly multiple?: boolean;
}

export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

/**
 * Parsed values, typed by the table: a string for string options (every one given, for `multiple`), `true` for
 * booleans, absent when not given.
 */
export type OptionValues<O extends OptionSpecs> = {
  readonly [K in keyof O]?: O[K]["type"] extends "string" ? (O[K] extends { readonly multiple: true } ? readonly string[] : string) : true;
};

export interface ParsedOptions<O extends OptionSpecs> {
  readonly values: OptionValues<O>;
  readonly positionals: string[];
}

/** Every command takes -h/--help; commandHelp lists it, parseOptions turns it into HelpRequested. */
const helpOption: OptionSpec = { type: "boolean", short: "h", help: "show this help and exit" };

type Token = NonNullable<ReturnType<typeof parseArgs>["tokens"]>[number];
type OptionToken = Extract<Token, { kind: "option" }>;

function withHelp(options: OptionSpecs): OptionSpecs {
  return { ...options, help: helpOption };
}

function nodeOptions(options: OptionSpecs): Record<string, { type: "string" | "boolean"; short?: string }> {
  return Object.fromEntries(
    Object.entries(options).map(([name, o]) => [name, o.short === undefined ? { type: o.type } : { type: o.type, short: o.short }]),
  );
}

/** `-h`/`--help` anywhere before `--`, also where a string option would swallow it as its value (`--out --help`). */
function asksForHelp(tokens: readonly Token[]): boolean {
  return tokens.some(
    (t) => t.kind === "option" && (t.name === "help" || (t.inlineValue === false && (t.value === "--help" || t.value === "-h"))),
  );
}

/** The options a command takes, for an error message: `--out, --all, -h/--help`. */
export function optionList(options: OptionSpecs): string {
  return Object.entries(withHelp(options))
    .map(([name, o]) => (o.short ? `-${o.short}/--${name}` : `--${name}`))
    .join(", ");
}

/**
 * `unknown option --outt; did you mean --out?`. A single-dash long option (`-json`) reaches parseArgs as the short
 * flags -j -s -o -n; the original argument says what was meant.
 */
function unknownOption(token: OptionToken, original: string, options: OptionSpecs): UsageError {
  const names = Object.keys(withHelp(options));
  const given = token.rawName.startsWith("--") ? token.rawName : original.split("=")[0];
  // As with git, kubectl and pulumi, the version is the program's, not a command's: say where it is.
  if (given === "--version") return new UsageError("unknown option --version: the version is pgstack's own; run pgstack --version (or pgstack version)");
  const guess = closest(given.replace(/^-+/, ""), names);
  if (guess !== undefined) return new UsageError(`unknown option ${given}; did you mean --${guess}?`);
  return new UsageError(`unknown option ${given} (options: ${optionList(options)})`);
}

/** The checked value of one known option: a boolean takes none, a string option needs one. */
function optionValue(token: OptionToken, spec: OptionSpec, long: string): string | true {
  if (spec.type === "boolean") {
    if (token.value !== undefined) throw new UsageError(`${token.rawName} takes no value (got ${token.rawName}=${token.value})`);
    return true;
  }
  const wanted = spec.value ?? "VALUE";
  if (token.value === undefined) throw new UsageError(`${token.rawName} needs a value (${wanted})`);
  if (token.value === "") throw new UsageError(`${token.rawName} needs a value (${wanted}), not an empty string`);
  // `--out --all` would otherwise take "--all" as the directory: almost always a forgotten value.
  if (!token.inlineValue && token.value.startsWith("-") && token.value.length > 1) {
    throw new UsageError(`${token.rawName} needs a value (${wanted}), not the option ${token.value}; write ${long}=${token.value} if that is the value`);
  }
  return token.value;
}

/**
 * Parses `args` against `options` (help is always known). Throws HelpRequested for -h/--help, UsageError for an
 * unknown option, a missing value or a value given to a boolean. The last of a repeated option wins, except for a
 * `multiple` one, which keeps them all.
 */
export function parseOptions<O extends OptionSpecs>(args: readonly string[], options: O): ParsedOptions<O> {
  const all = withHelp(options);
  const { tokens, positionals } = parseArgs({ args: [...args], options: nodeOptions(all), strict: false, allowPositionals: true, tokens: true });
  if (asksForHelp(tokens)) throw new HelpRequested();
  const values: Record<string, string | true | string[]> = {};
  for (const token of tokens) {
    if (token.kind !== "option") continue;
    const spec = Object.hasOwn(all, token.name) ? all[token.name] : undefined;
    if (spec === undefined) throw unknownOption(token, args[token.index], options);
    const value = optionValue(token, spec, `--${token.name}`);
    const earlier = values[token.name];
    values[token.name] = spec.multiple && typeof value === "string" ? [...(Array.isArray(earlier) ? earlier : []), value] : value;
  }
  return { values: values as OptionValues<O>, positionals };
}

/**
 * Whether a command line asks for JSON (`--json`, `--format json`, `--format=json`; the last --format counts), read
 * off the raw arguments before `--`, so it is known even for a command line that does not parse: the dispatcher
 * prints a failure as a JSON document then too.
 */
export function jsonRequested(args: readonly string[]): boolean {
  let json = false;
  let format: string | undefined;
  for (let i = 0; i < args.length && args[i] !== "--"; i++) {
    const arg = args[i];
    if (arg === "--json") json = true;
    else if (arg === "--format") format = args[++i];
    else if (arg.startsWith("--format=")) format = arg.slice("--format=".length);
  }
  return json || format === "json";
}

/** What every --help says under "exit status" about a failure asked for JSON (commandHelp adds it). */
export const jsonFailureHelp = [
  'with --format json (--json), a failure also prints {"error": {"command", "message", "exitCode"}} on stdout,',
  "beside the line on stderr: stdout holds one JSON document, result or error",
];

/** `--format` and its `--json` alias, for a command that prints results. The first format is the default. */
export function formatOptions<const F extends readonly string[]>(formats: F, help: string) {
  return {
    format: { type: "string", value: formats.join("|"), default: formats[0], help },
    json: { type: "boolean", help: "the same as --format json: one JSON document on stdout, nothing else there" },
  } as const;
}

/** The chosen output format: `--format F`, or json for `--json`; the two must agree when both are given. */
export function chosenFormat<F extends string>(values: { readonly format?: string; readonly json?: true }, formats: readonly F[]): F {
  if (values.json && values.format !== undefined && values.format !== "json") {
    throw new UsageError(`--json and --format ${values.format} contradict each other; give one of them`);
  }
  const format = values.format ?? (values.json ? "json" : formats[0]);
  if (!formats.includes(format as F)) throw new UsageError(`--format must be one of ${formats.join(", ")}, not ${JSON.stringify(format)}`);
  return format as F;
}

/** No positional arguments allowed: `unexpected argument "x"`. */
export function noPositionals(positionals: readonly string[], what = ""): void {
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"${what ? `; ${what}` : ""}`);
}

// ------------------------------------------------------------------------------------------------------ help

export type HelpSection =
  | { readonly title: string; readonly lines: readonly string[] }
  | { readonly title: string; readonly options: OptionSpecs };

export interface HelpText {
  /** The usage lines, each a whole `pgstack …` invocation. */
  readonly usage: readonly string[];
  /** What the command does, a few lines. */
  readonly description: readonly string[];
  /** Options tables (the first one also gets -h/--help), environment, exit status… in order. */
  readonly sections: readonly HelpSection[];
}

/** An option's help lines, the default after the last one, or on a line of its own when that line is long already. */
function withDefault(o: OptionSpec): string[] {
  const lines = o.help.split("\n");
  if (o.default === undefined) return lines;
  const note = `(default: ${o.default})`;
  const last = lines[lines.length - 1];
  if (last.length + note.length < 90) lines[lines.length - 1] = `${last} ${note}`;
  else lines.push(note);
  return lines;
}

function optionLines(options: OptionSpecs): string[] {
  const left = Object.entries(options).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : "    "}--${name}${o.type === "string" ? ` ${o.value ?? "VALUE"}` : ""}`;
    return { flag, o };
  });
  const width = Math.min(32, Math.max(...left.map((l) => l.flag.length)));
  const lines: string[] = [];
  for (const { flag, o } of left) {
    const text = withDefault(o);
    const pad = " ".repeat(width + 4);
    if (flag.length > width) lines.push(`  ${flag}`, ...text.map((t) => `${pad}${t}`));
    else lines.push(`  ${flag.padEnd(width)}  ${text[0]}`, ...text.slice(1).map((t) => `${pad}${t}`));
  }
  return lines;
}

/**
 * The `--help` text of a command, every option from the same table parseOptions reads. A command that takes
 * `--format json` (formatOptions) gets jsonFailureHelp under its exit status.
 */
export function commandHelp(help: HelpText): string {
  const out = [help.usage.map((u, i) => `${i === 0 ? "usage: " : "       "}${u}`).join("\n"), "", ...help.description];
  let helpListed = false;
  const sections = help.sections.some((s) => "options" in s) ? help.sections : [{ title: "options", options: {} }, ...help.sections];
  const takesJson = sections.some((s) => "options" in s && Object.hasOwn(s.options, "json"));
  let jsonFailureListed = false;
  for (const section of sections) {
    out.push("", `${section.title}:`);
    if ("options" in section) {
      out.push(...optionLines(helpListed ? section.options : withHelp(section.options)));
      helpListed = true;
    } else {
      const lines = takesJson && section.title === "exit status" ? [...section.lines, ...jsonFailureHelp] : section.lines;
      jsonFailureListed ||= lines !== section.lines;
      out.push(...lines.map((l) => (l === "" ? "" : `  ${l}`)));
    }
  }
  if (takesJson && !jsonFailureListed) out.push("", "exit status:", ...jsonFailureHelp.map((l) => `  ${l}`));
  return `${out.join("\n")}\n`;
}
