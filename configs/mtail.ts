/**
 * The mtail program that turns PostgreSQL's slow-query log lines into metrics (job `mtail`): the counter the
 * slow-query alert reads (configs/alert-sources.ts) and a histogram of the logged durations for the dashboard; and
 * the logins PostgreSQL and PgBouncer refused, from both servers' logs (AuthenticationFailureBurst; PgBouncer's
 * logfile: configs/pgbouncer-log.ts). One program over both logs: each block matches one server's line prefix only.
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
import { authFailureReasons, mtailMetrics, type AuthFailureReason } from "./alert-sources";
import { containerPgbouncerLog } from "./pgbouncer-log";
import { logLinePrefix, postgresLogDirectory, postgresLogGlob, slowQueryMs } from "./postgresql";

export { mtailMetrics };

export interface MtailArgsInput {
  /** Directory holding the rendered program (`postgresql.mtail`), as mtail sees it. */
  readonly programsDir: string;
  /** PGDATA as mtail sees it: PostgreSQL's logging collector writes into its `log` directory. */
  readonly pgdata: string;
  /** PgBouncer's logfile as mtail sees it (configs/pgbouncer-log.ts). Defaults to `containerPgbouncerLog`. */
  readonly pgbouncerLog?: string;
}

/**
 * mtail's flags on every target, without the listen address (the target adds `--port`, and `--address` where it
 * must). The glob follows the collector's hourly files: mtail re-matches it every `--poll_log_interval`, so the
 * next hour's file (or the first, when mtail starts before PostgreSQL) is found. mtail reads every file from where
 * it finds it: a restart counts nothing twice, and what PostgreSQL writes into a new file in the ≤ 250 ms before
 * mtail finds it is not counted. Every file is polled every 250 ms, so a slow statement is counted well within a
 * scrape interval. `--logtostderr`: mtail (glog) would otherwise write its own log files under /tmp.
 * PgBouncer's logfile is one fixed path, followed the same way: found when it appears, read again from its start
 * when it is emptied in place (configs/pgbouncer-log.ts).
 */
export function mtailArgs(input: MtailArgsInput): string[] {
  const pgdata = input.pgdata.replace(/\/+$/, "");
  return [
    "--progs",
    input.programsDir,
    "--logs",
    `${pgdata}/${postgresLogDirectory}/${postgresLogGlob}`,
    "--logs",
    input.pgbouncerLog ?? containerPgbouncerLog,
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
  return [
    mtailMetrics.slowQueries.name,
    mtailMetrics.logLines.name,
    mtailMetrics.authFailures.name,
    mtailMetrics.pgbouncerLogLines.name,
    `${h}_bucket`,
    `${h}_count`,
    `${h}_sum`,
  ].sort();
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

/**
 * Refused logins in PostgreSQL 17's log: what follows the prefix of the one FATAL line a refused connection writes
 * (postmaster/auth.c, utils/init/postinit.c, storage/lmgr/proc.c; English messages: the stack leaves lc_messages at
 * initdb's C/en default). Each line checked against a real server by tests/real/auth-failures.test.ts. The user, database and
 * client in the line are the connecting client's words: they are matched as free text, never captured.
 *  - authentication: `password authentication failed for user "u"`, for a wrong password and for a role that does
 *    not exist alike (PostgreSQL does not say which, but in a DETAIL line); Peer, Ident, certificate … the same.
 *  - tls_required: `pg_hba.conf rejects connection for host "h", user "u", database "d", no encryption` (the stack's
 *    `hostnossl … reject`), or no entry at all for a client without TLS.
 *  - pg_hba: the same over TLS (`…, SSL encryption`): an address, user or database pg_hba.conf does not admit.
 *  - unknown_database: `database "d" does not exist`.
 *  - not_permitted: `role "u" is not permitted to log in` (NOLOGIN), `permission denied for database "d"` (no CONNECT).
 *  - too_many_connections: `sorry, too many clients already`, `remaining connection slots are reserved for …`,
 *    `too many connections for role "u"` / `for database "d"`.
 */
export const postgresAuthFailurePatterns: Readonly<Record<AuthFailureReason, string>> = {
  authentication: 'FATAL:  [A-Za-z]+ authentication failed for user "',
  tls_required: "FATAL:  (?:no pg_hba\\.conf entry for|pg_hba\\.conf rejects) .*, no encryption$",
  pg_hba: "FATAL:  (?:no pg_hba\\.conf entry for|pg_hba\\.conf rejects) .*, (?:SSL|GSS) encryption$",
  unknown_database: 'FATAL:  database ".*" does not exist$',
  not_permitted: 'FATAL:  (?:role ".*" is not permitted to log in$|permission denied for database ")',
  too_many_connections: 'FATAL:  (?:sorry, too many clients already$|remaining connection slots are reserved |too many connections for (?:role|database) ")',
};

/**
 * A PgBouncer 1.24 log line (libusual logging: `%Y-%m-%d %H:%M:%S.%03d %Z [pid] LEVEL `), and a client's line after
 * it: `C-0x…: db/user@address:port `. PgBouncer's time zone is the container's (UTC on every target).
 */
export const pgbouncerLinePrefix = "^\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{3} \\S+ \\[\\d+\\] ";

/**
 * Refused logins in PgBouncer 1.24's log: the `closing because: <reason> (age=…)` line it writes for a client it
 * disconnects (log_disconnections = 1, as rendered), one per refused connection (the `pooler error:` line of
 * log_pooler_errors says the same again and is not counted). `db/user@address:port` before it is free text: a user
 * name may hold spaces, and a pattern that stopped at one would let a guesser go uncounted. Checked against a real
 * PgBouncer by tests/real/auth-failures.test.ts.
 *  - authentication: `SASL authentication failed` (SCRAM: a wrong password and a user the auth_file lacks alike) or
 *    `password authentication failed`.
 *  - tls_required: `SSL required` (client_tls_sslmode = require, a client without TLS).
 *  - unknown_database: `no such database: d`.
 *  - too_many_connections: `no more connections allowed (max_client_conn)`.
 */
export const pgbouncerAuthFailurePatterns: Readonly<Partial<Record<AuthFailureReason, string>>> = {
  authentication: "LOG C-0x[0-9a-f]+: .* closing because: (?:SASL|password) authentication failed \\(age=",
  tls_required: "LOG C-0x[0-9a-f]+: .* closing because: SSL required \\(age=",
  unknown_database: "LOG C-0x[0-9a-f]+: .* closing because: no such database: .* \\(age=",
  too_many_connections: "LOG C-0x[0-9a-f]+: .* closing because: no more connections allowed \\(max_client_conn\\) \\(age=",
};

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
  const pgPrefix = logLinePrefixPattern(prefix);
  for (const [reason, p] of Object.entries(postgresAuthFailurePatterns)) {
    if ((pgPrefix + p).length > mtailMaxRegexpLength) throw new Error(`the ${reason} pattern is ${(pgPrefix + p).length} characters; mtail accepts ${mtailMaxRegexpLength}`);
  }
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
    ...authFailureProgram(pgPrefix),
  ].join("\n");
}

/**
 * The refused-logins part: one counter, `source` and `reason` from fixed sets (configs/alert-sources.ts). Every line
 * of a source sets that source's series to +0, so each exists from the first line read and its first failure is a step
 * `rate()` sees; `+= 0` changes no value.
 */
function authFailureProgram(pgPrefix: string): string[] {
  const failures = mtailMetrics.authFailures.name;
  const series = (source: string, reason: string) => `${failures}["${source}"]["${reason}"]`;
  const zeroes = (source: string, reasons: readonly string[]) => reasons.map((reason) => `  ${series(source, reason)} += 0`);
  const pgbouncerReasons = authFailureReasons.filter((r) => pgbouncerAuthFailurePatterns[r] !== undefined);
  return [
    "# Logins PostgreSQL and PgBouncer refused, by source and reason (read by AuthenticationFailureBurst). Labels",
    "# are fixed words; the user, database and address in the lines are never captured (anyone can choose them).",
    `counter ${failures} by source, reason`,
    "# PgBouncer log lines read (read by PgBouncerLogNotFollowed: PgBouncer logs its stats every minute).",
    `counter ${mtailMetrics.pgbouncerLogLines.name}`,
    "",
    `/${pgPrefix}/ {`,
    ...zeroes("postgresql", authFailureReasons),
    "}",
    "",
    `/${pgbouncerLinePrefix}/ {`,
    `  ${mtailMetrics.pgbouncerLogLines.name}++`,
    ...zeroes("pgbouncer", pgbouncerReasons),
    "}",
    "",
    ...authFailureReasons.flatMap((reason) => [`/${pgPrefix}${postgresAuthFailurePatterns[reason]}/ {`, `  ${series("postgresql", reason)}++`, "}", ""]),
    ...pgbouncerReasons.flatMap((reason) => [`/${pgbouncerLinePrefix}${pgbouncerAuthFailurePatterns[reason]}/ {`, `  ${series("pgbouncer", reason)}++`, "}", ""]),
  ];
}
