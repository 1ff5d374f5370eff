/**
 * The errors a command throws and what the dispatcher (cli/command.ts) makes of them: one line on stderr,
 * `pgstack <command>: …`, and the same exit code everywhere — 2 for a usage error, 1 for a failure, 0 for success.
 * Asked for JSON (`--format json`, `--json`), a failed command also prints the same as a JSON document on stdout
 * (errorDocument), so a program reading stdout always gets JSON.
 */

/** The exit codes every command shares (drift adds its own meaning for 1: drift found). */
export const exitCodes = { ok: 0, failure: 1, usage: 2 } as const;

/** An error about how pgstack was called (unknown option, unknown stack, missing value): no stack trace, exit 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** An error whose message is complete for a person (bad connection string, missing program): no stack trace, exit 1. */
export class UserFacingError extends Error {
  override readonly name = "UserFacingError";
}

/** `-h`/`--help` among a command's arguments: the dispatcher prints that command's help on stdout, exit 0. */
export class HelpRequested extends Error {
  override readonly name = "HelpRequested";
  constructor() {
    super("help requested");
  }
}

/**
 * Errors of other rooms whose message is already written for a person, matched by name so cli/ does not have to
 * import pg, the rig or the spec just to recognise them: SpecError lists every configuration error of a stack file.
 */
const peopleErrorNames: ReadonlySet<string> = new Set([
  "UserFacingError",
  "SpecError",
  "ConnectionError",
  "ClusterExistsError",
  "StopRequested",
  "IndexBuildError",
]);

/** A usage error, by name (an error of another copy of this module, in the hook bundle, is one too). */
export function isUsageError(error: unknown): error is Error {
  return error instanceof Error && error.name === "UsageError";
}

/** An error whose message is written for a person: a usage error or one of peopleErrorNames. Anything else is a bug. */
export function isPeopleError(error: unknown): boolean {
  return error instanceof Error && (error.name === "UsageError" || peopleErrorNames.has(error.name));
}

export interface ErrorReport {
  readonly code: number;
  /** What to print on stderr, already prefixed with `pgstack <command>: `. */
  readonly text: string;
  /** The message alone, masked: no prefix, and for a bug no stack trace (errorDocument's `message`). */
  readonly message: string;
}

export interface DescribeOptions {
  /** Masks secrets in everything printed. Defaults to none. */
  readonly mask?: (text: string) => string;
  /** The exit code of a failure that is not a usage error. Defaults to 1 (drift: 2, as 1 means drift found). */
  readonly failureCode?: number;
}

/**
 * What a command's error prints and exits with. Usage and people errors are their message alone; anything else is a
 * bug, so its stack follows the first line for the bug report.
 */
export function describeError(command: string, error: unknown, opts: DescribeOptions = {}): ErrorReport {
  const { mask = (t: string) => t, failureCode = exitCodes.failure } = opts;
  const prefix = command === "" ? "pgstack" : `pgstack ${command}`;
  const err = error instanceof Error ? error : undefined;
  if (err !== undefined && isPeopleError(err)) {
    const message = mask(err.message);
    return { code: isUsageError(err) ? exitCodes.usage : failureCode, text: `${prefix}: ${message}`, message };
  }
  const message = mask(`unexpected error: ${err?.message ?? String(error)}`);
  const stack = err?.stack?.split("\n").slice(1).join("\n");
  return { code: failureCode, text: `${prefix}: ${message}${stack ? `\n${mask(stack)}` : ""}`, message };
}

/**
 * The JSON document a command asked for JSON prints on stdout when it fails, beside the line on stderr:
 * `{"error": {"command": "render", "message": "…", "exitCode": 2}}`. The message is stderr's without the
 * `pgstack <command>: ` prefix (and without a bug's stack trace).
 */
export function errorDocument(command: string, report: ErrorReport): string {
  return `${JSON.stringify({ error: { command: command === "" ? "pgstack" : command, message: report.message, exitCode: report.code } }, null, 2)}\n`;
}

/**
 * Prints a command's failure: the line (a bug's stack after it) on stderr and, when the command was asked for JSON,
 * errorDocument on stdout. Returns the exit code. For a command that reports a failure itself (`local` tears its
 * cluster down first, drift exits 2); the dispatcher does the same for every other error a command throws.
 */
export function printFailure(command: string, error: unknown, opts: DescribeOptions & { readonly json: boolean }): number {
  const report = describeError(command, error, opts);
  console.error(report.text);
  if (opts.json) process.stdout.write(errorDocument(command, report));
  return report.code;
}
