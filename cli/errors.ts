/**
 * The errors a command throws and what the dispatcher (cli/command.ts) makes of them: one line on stderr,
 * `pgstack <command>: …`, and the same exit code everywhere — 2 for a usage error, 1 for a failure, 0 for success.
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

export interface ErrorReport {
  readonly code: number;
  /** What to print on stderr, already prefixed with `pgstack <command>: `. */
  readonly text: string;
}

/**
 * What a command's error prints and exits with. Usage and people errors are their message alone; anything else is a
 * bug, so its stack follows the first line for the bug report.
 */
export function describeError(command: string, error: unknown, mask: (text: string) => string = (t) => t): ErrorReport {
  const prefix = command === "" ? "pgstack" : `pgstack ${command}`;
  const err = error instanceof Error ? error : undefined;
  if (err?.name === "UsageError") return { code: exitCodes.usage, text: `${prefix}: ${mask(err.message)}` };
  if (err !== undefined && peopleErrorNames.has(err.name)) return { code: exitCodes.failure, text: `${prefix}: ${mask(err.message)}` };
  const first = err?.message ?? String(error);
  const stack = err?.stack?.split("\n").slice(1).join("\n");
  return { code: exitCodes.failure, text: mask(`${prefix}: unexpected error: ${first}${stack ? `\n${stack}` : ""}`) };
}
