/** A tiny flag parser: `--name value`, `--name=value`, boolean `--flag`, positionals. Unknown flags are usage errors. */
import { UsageError } from "./errors";

export interface ParsedArgs {
  readonly positionals: string[];
  readonly flags: Record<string, string | true>;
}

export function parseArgs(args: string[], known: { values?: readonly string[]; booleans?: readonly string[] }): ParsedArgs {
  const values = new Set(known.values ?? []);
  const booleans = new Set(known.booleans ?? []);
  const positionals: string[] = [];
  const flags: Record<string, string | true> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith("--")) {
      positionals.push(arg);
      continue;
    }
    const [name, inline] = arg.slice(2).split(/=(.*)/s, 2);
    if (booleans.has(name) && inline === undefined) flags[name] = true;
    else if (values.has(name)) {
      const value = inline ?? args[++i];
      if (value === undefined) throw new UsageError(`--${name} needs a value`);
      flags[name] = value;
    } else {
      const all = [...values, ...booleans].map((f) => `--${f}`).join(", ");
      throw new UsageError(`unknown option --${name} (options: ${all || "none"})`);
    }
  }
  return { positionals, flags };
}
