/**
 * The mtail program that turns PostgreSQL's slow-query log lines into metrics (job `mtail`): the counter the
 * slow-query alert reads (configs/alert-sources.ts) and a histogram of the logged durations for the dashboard.
 *
 * PostgreSQL logs a statement that ran at least `log_min_duration_statement` (the guide's 100 ms) as
 *   <log_line_prefix>LOG:  duration: 150.123 ms  statement: SELECT …           (simple query protocol)
 *   <log_line_prefix>LOG:  duration: 150.123 ms  execute <unnamed>: SELECT …   (extended protocol)
 * Parse and bind steps over the threshold are logged as `parse …:` / `bind …:` lines; they are steps of a
 * statement, not statements, and are not counted. Multi-line statements continue on lines without the prefix,
 * which the program ignores. The prefix pattern is derived from the rendered `log_line_prefix`, so changing the
 * prefix changes the program with it.
 *
 * mtail 3.0 syntax (Debian 13 ships 3.0.9): RE2 regular expressions, `(?P<name>…)` captures read as `$name`,
 * nested conditions on captured values.
 */
import { mtailMetrics } from "./alert-sources";
import { logLinePrefix, postgresLogDirectory, postgresLogGlob, slowQueryMs } from "./postgresql";

export { mtailMetrics };

export interface MtailArgsInput {
  /** Directory holding the rendered program (`postgresql.mtail`), as mtail sees it. */
  readonly programsDir: string;
  /** PGDATA as mtail sees it: PostgreSQL's logging collector writes into its `log` directory. */
  readonly pgdata: string;
}

/**
 * mtail's flags on every target, without the listen address (the target adds `--port`, and `--address` where it
 * must). The glob follows the collector's hourly files: mtail re-matches it every `--poll_log_interval`, so the
 * next hour's file (or the first, when mtail starts before PostgreSQL) is found. mtail reads every file from where
 * it finds it: a restart counts nothing twice, and what PostgreSQL writes into a new file in the ≤ 250 ms before
 * mtail finds it is not counted. Every file is polled every 250 ms, so a slow statement is counted well within a
 * scrape interval. `--logtostderr`: mtail (glog) would otherwise write its own log files under /tmp.
 */
export function mtailArgs(input: MtailArgsInput): string[] {
  const pgdata = input.pgdata.replace(/\/+$/, "");
  return [
    "--progs",
    input.programsDir,
    "--logs",
    `${pgdata}/${postgresLogDirectory}/${postgresLogGlob}`,
    "--logtostderr",
    "--poll_interval",
    "250ms",
    "--poll_log_interval",
    "250ms",
  ];
}

/** mtail's default HTTP port; /metrics there is what Prometheus scrapes. */
export const mtailPort = 3903;

/** The file name the program is deployed under; mtail exports it as the `prog` label of every metric. */
export const mtailProgramFile = "postgresql.mtail";

/**
 * Histogram of the durations PostgreSQL logged, seconds. Only statements over the slow-query threshold are logged,
 * so the first bucket is the threshold itself; 0.2 and 0.5 are the latency alerts' thresholds, 300 s the guide's
 * statement_timeout.
 */
export const mtailExtraMetrics = {
  slowQueryDuration: {
    name: "pgstack_slow_query_duration_seconds",
    labels: [] as readonly string[],
    buckets: [0.1, 0.2, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
  },
} as const;

/** Every metric name mtail serves with this program (histogram series included), for the dashboard's name check. */
export function mtailMetricNames(): string[] {
  const h = mtailExtraMetrics.slowQueryDuration.name;
  return [mtailMetrics.slowQueries.name, mtailMetrics.logLines.name, `${h}_bucket`, `${h}_count`, `${h}_sum`].sort();
}

/** Free text: user, database, application, host and port, backend type, command tag. Lazy, so the literal after it decides. */
const freeText = ".*?";

/**
 * What each log_line_prefix escape prints (PostgreSQL 17, "log_line_prefix"), as an RE2 pattern that is also a
 * valid JavaScript pattern (the unit tests run it). `%q` prints nothing in session processes, and every
 * duration line comes from a session, so it matches the empty string.
 */
const prefixEscapes: Readonly<Record<string, string>> = {
  a: freeText,
  u: freeText,
  d: freeText,
  r: freeText,
  h: "\\S*",
  L: "\\S*",
  b: freeText,
  p: "\\d*",
  P: "\\d*",
  t: "\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d \\S+",
  m: "\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{3} \\S+",
  n: "\\d+\\.\\d{3}",
  i: freeText,
  e: "[0-9A-Z]{5}",
  c: "[0-9a-f]+\\.[0-9a-f]+",
  l: "\\d+",
  s: "\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d \\S+",
  v: "\\S*",
  x: "\\d+",
  q: "",
  Q: "-?\\d+",
};

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

/**
 * log_line_prefix → a pattern matching it from the start of a line, without capture groups.
 * Throws on an escape PostgreSQL does not know or on padding (`%-10a`), which would make fields fixed-width.
 */
export function logLinePrefixPattern(prefix: string): string {
  let out = "^";
  for (let i = 0; i < prefix.length; i++) {
    const ch = prefix[i];
    if (ch !== "%") {
      out += escapeRegex(ch);
      continue;
    }
    const next = prefix[++i];
    if (next === undefined) throw new Error(`log_line_prefix "${prefix}" ends with a lone %; write %% for a percent sign`);
    if (next === "%") {
      out += "%";
      continue;
    }
    if (/[-0-9]/.test(next)) {
      throw new Error(`log_line_prefix "${prefix}": padded escapes (%${next}…) are not supported by the log pipeline; write the escape without a width`);
    }
    const pattern = prefixEscapes[next];
    if (pattern === undefined) throw new Error(`log_line_prefix "${prefix}": unknown escape %${next} (PostgreSQL 17 knows %${Object.keys(prefixEscapes).join(", %")})`);
    out += pattern;
  }
  return out;
}

/** The part after the prefix: level, duration in ms captured as `duration_ms`, and statement or execute. */
export const slowStatementPattern = "LOG:  duration: (?P<duration_ms>\\d+(?:\\.\\d+)?) ms  (?:statement|execute [^:]*): ";

export interface MtailProgramInput {
  /** PostgreSQL's log_line_prefix. Defaults to the stack's (configs/postgresql.ts). */
  readonly logLinePrefix?: string;
  /** Statements from this many ms on are counted. Defaults to the stack's log_min_duration_statement (100). */
  readonly slowQueryMs?: number;
}

/** The whole-line pattern the program matches (RE2; `(?P<` is the only part JavaScript spells differently). */
export function slowStatementLinePattern(input: MtailProgramInput = {}): string {
  return logLinePrefixPattern(input.logLinePrefix ?? logLinePrefix) + slowStatementPattern;
}

/** mtail limits a regular expression to 1024 characters by default (--max_regexp_length). */
const mtailMaxRegexpLength = 1024;

/** The program text. Same input, same bytes. */
export function renderMtailProgram(input: MtailProgramInput = {}): string {
  const prefix = input.logLinePrefix ?? logLinePrefix;
  const threshold = input.slowQueryMs ?? slowQueryMs;
  if (!Number.isInteger(threshold) || threshold < 1) throw new Error(`slowQueryMs ${threshold} must be a whole number of milliseconds ≥ 1`);
  if (/[\n\r]/.test(prefix)) throw new Error(`log_line_prefix ${JSON.stringify(prefix)} contains a line break; PostgreSQL writes one line per entry`);
  const pattern = slowStatementLinePattern({ logLinePrefix: prefix });
  if (pattern.length > mtailMaxRegexpLength) throw new Error(`the slow-statement pattern is ${pattern.length} characters; mtail accepts ${mtailMaxRegexpLength}`);
  // mtail delimits a regex with slashes; a slash inside it is escaped by escapeRegex.
  const counter = mtailMetrics.slowQueries.name;
  const histogram = mtailExtraMetrics.slowQueryDuration;
  return [
    "# Rendered by pgvector-stack (configs/mtail.ts); do not edit, re-render.",
    "# PostgreSQL slow-query log → metrics. Source lines:",
    `#   log_line_prefix = '${prefix}'`,
    `#   log_min_duration_statement = ${threshold}ms, log_duration = off`,
    "# Counts `duration: N ms  statement:` and `duration: N ms  execute <name>:` lines (not parse/bind steps) of",
    `# statements that ran ${threshold} ms or longer, whoever sent them.`,
    "",
    "# Every log entry read (read by the PostgresLogNotFollowed alert: none at all means mtail reads nothing).",
    `counter ${mtailMetrics.logLines.name}`,
    `# Statements of ${threshold} ms or longer (read by the PostgresSlowQueries alert).`,
    `counter ${counter}`,
    "# Their durations, seconds.",
    `histogram ${histogram.name} buckets ${histogram.buckets.join(", ")}`,
    "",
    `/${logLinePrefixPattern(prefix)}/ {`,
    `  ${mtailMetrics.logLines.name}++`,
    "}",
    "",
    `/${pattern}/ {`,
    // A lower log_min_duration_statement (or log_min_duration_sample) logs faster statements in the same form;
    // they are not slow by the guide's definition.
    `  $duration_ms >= ${threshold} {`,
    `    ${counter}++`,
    `    ${histogram.name} = $duration_ms / 1000.0`,
    "  }",
    "}",
    "",
  ].join("\n");
}
