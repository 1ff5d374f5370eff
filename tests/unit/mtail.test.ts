/**
 * The mtail program: rendered deterministically from the stack's log_line_prefix and slow-query threshold, its
 * pattern matching exactly the slow-statement lines PostgreSQL writes with that prefix. The pattern is RE2 for mtail
 * and, but for `(?P<`, JavaScript too, so it is exercised here; tests/real/mtail.test.ts runs the real mtail.
 */
import { describe, expect, it } from "vitest";
import { mtailMetrics as ruleSideContract } from "../../configs/alert-sources";
import { logLinePattern, logLinePrefix, postgresLogDirectory, postgresLogFilename, slowQueryMs } from "../../configs/postgresql";
import {
  logLinePrefixPattern,
  mtailExtraMetrics,
  mtailMetricNames,
  mtailArgs,
  mtailMetrics,
  renderMtailProgram,
  slowStatementLinePattern,
} from "../../configs/mtail";

/** RE2 `(?P<name>` → JavaScript `(?<name>`. */
const js = (re2: string): RegExp => new RegExp(re2.replace(/\(\?P</g, "(?<"));

const prefix = (fields: { user?: string; db?: string; app?: string; client?: string } = {}): string =>
  `2025-03-04 05:06:07.089 UTC [4242]: user=${fields.user ?? "app"},db=${fields.db ?? "app"},app=${fields.app ?? "psql"},client=${fields.client ?? "127.0.0.1"} `;

// [line, counted, duration in ms when counted]
const lines: [string, boolean, number?][] = [
  [`${prefix()}LOG:  duration: 150.123 ms  statement: select pg_sleep(0.15)`, true, 150.123],
  [`${prefix()}LOG:  duration: 2001.5 ms  execute <unnamed>: SELECT pg_sleep($1)`, true, 2001.5],
  [`${prefix()}LOG:  duration: 120.000 ms  execute S_1: SELECT 1`, true, 120],
  [`${prefix()}LOG:  duration: 100.000 ms  statement: select 1`, true, 100],
  [`${prefix({ app: "my app, v2", user: "", db: "" })}LOG:  duration: 300.1 ms  statement: vacuum`, true, 300.1],
  [`${prefix({ client: "[local]" })}LOG:  duration: 101.2 ms  execute fetch from S_2/C_3: select 1`, true, 101.2],
  // Not statements, or not slow, or not log lines of this prefix:
  [`${prefix()}LOG:  duration: 99.999 ms  statement: select 1`, false],
  [`${prefix()}LOG:  duration: 150.1 ms  parse <unnamed>: SELECT 1`, false],
  [`${prefix()}LOG:  duration: 150.1 ms  bind <unnamed>: SELECT 1`, false],
  [`${prefix()}LOG:  duration: 150.1 ms`, false],
  [`${prefix()}LOG:  statement: select pg_sleep(0.15)`, false],
  [`${prefix()}ERROR:  canceling statement due to statement timeout`, false],
  [`${prefix()}STATEMENT:  select 'LOG:  duration: 500 ms  statement: x'`, false],
  ["\tFROM items WHERE duration: 150 ms  statement: x", false],
  [`2025-03-04 05:06:07.089 UTC [17]: user=,db=,app=,client= LOG:  checkpoint starting: time`, false],
];

describe("mtail metric contract", () => {
  it("counts pgstack_slow_queries_total without labels, as the rules read it", () => {
    expect(mtailMetrics).toBe(ruleSideContract);
    expect(mtailMetrics.slowQueries).toEqual({ name: "pgstack_slow_queries_total", labels: [] });
  });

  it.each([0.1, 0.2, 0.5])("has a duration bucket at %s s", (bound) => {
    expect(mtailExtraMetrics.slowQueryDuration.buckets).toContain(bound);
  });

  it("names the histogram's series", () => {
    expect(mtailMetricNames()).toEqual([
      "pgstack_auth_failures_total",
      "pgstack_log_lines_total",
      "pgstack_pgbouncer_log_lines_total",
      "pgstack_slow_queries_total",
      "pgstack_slow_query_duration_seconds_bucket",
      "pgstack_slow_query_duration_seconds_count",
      "pgstack_slow_query_duration_seconds_sum",
    ]);
  });
});

describe("the rendered program", () => {
  const program = renderMtailProgram();

  it("is the same bytes every time and names its sources", () => {
    expect(renderMtailProgram()).toBe(program);
    expect(renderMtailProgram({ logLinePrefix, slowQueryMs })).toBe(program);
    expect(program).toContain(`#   log_line_prefix = '${logLinePrefix}'`);
    expect(program).toContain("counter pgstack_slow_queries_total\n");
    expect(program).toContain("histogram pgstack_slow_query_duration_seconds buckets 0.1, 0.2, 0.5, 1, 2.5, 5, 10, 30, 60, 300\n");
    expect(program).toContain(`/${slowStatementLinePattern()}/ {\n  $duration_ms >= 100 {\n    pgstack_slow_queries_total++\n`);
    expect(program).toContain("pgstack_slow_query_duration_seconds = $duration_ms / 1000.0");
    expect(program.endsWith("}\n")).toBe(true);
  });

  it("follows the threshold", () => {
    expect(renderMtailProgram({ slowQueryMs: 250 })).toContain("$duration_ms >= 250 {");
    expect(() => renderMtailProgram({ slowQueryMs: 0 })).toThrow(/slowQueryMs 0/);
  });

  it.each(lines)("%s → counted %s", (line, counted, ms) => {
    const match = js(slowStatementLinePattern()).exec(line);
    // The program's own condition: the regex, then the threshold.
    const isCounted = match !== null && Number(match.groups!.duration_ms) >= slowQueryMs;
    expect(isCounted).toBe(counted);
    if (counted) expect(Number(match!.groups!.duration_ms)).toBe(ms);
  });

  it("reads every log line as configs/postgresql.ts's logLinePattern does", () => {
    const prefixRe = js(logLinePrefixPattern(logLinePrefix));
    for (const [line] of lines.filter(([l]) => !l.startsWith("\t"))) {
      expect(prefixRe.test(line), line).toBe(logLinePattern.test(line));
    }
  });
});

describe("log_line_prefix → pattern", () => {
  it("renders the stack's prefix", () => {
    expect(logLinePrefixPattern(logLinePrefix)).toBe(
      "^\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{3} \\S+ \\[\\d*\\]: user=.*?,db=.*?,app=.*?,client=\\S* ",
    );
  });

  it.each([
    ["%t [%p-%l] %q%u@%d ", "2025-03-04 05:06:07 UTC [12-3] app@appdb "],
    ["%m %c %x %v %e %Q %n %b %% ", "2025-03-04 05:06:07.089 CET 65c1d2e3.1f2a 0 3/45 00000 -123456789 1709528767.089 client backend % "],
    ["%s %r %h %L %i %P|", "2025-03-04 05:06:07 UTC 10.0.0.1(5432) 10.0.0.1 10.0.0.2 SELECT |"],
  ])("renders %s so that it matches a line written with it", (p, sample) => {
    expect(js(`${logLinePrefixPattern(p)}$`).test(sample)).toBe(true);
  });

  it.each([
    ["%y ", "unknown escape %y"],
    ["%-10a ", "padded escapes"],
    ["%5p ", "padded escapes"],
    ["user=%", "ends with a lone %"],
  ])("refuses %s", (p, message) => {
    expect(() => logLinePrefixPattern(p)).toThrow(message);
  });

  it("escapes regex characters of literal text, slashes included (mtail delimits with /)", () => {
    expect(logLinePrefixPattern("(%p) a.b/c [x] ")).toBe("^\\(\\d*\\) a\\.b\\/c \\[x\\] ");
    expect(() => renderMtailProgram({ logLinePrefix: "%m\n" })).toThrow(/line break/);
  });
});

describe("mtailArgs: the same flags on every target", () => {
  it("follows the logging collector's hourly files in PGDATA, re-matching the glob, logging to stderr", () => {
    expect(mtailArgs({ programsDir: "/etc/mtail", pgdata: "/var/lib/postgresql/data/pgdata/" })).toEqual([
      "--progs",
      "/etc/mtail",
      "--logs",
      "/var/lib/postgresql/data/pgdata/log/postgresql-*.log",
      "--logs",
      "/var/run/pgbouncer/pgbouncer.log",
      "--logtostderr",
      "--poll_interval",
      "250ms",
      "--poll_log_interval",
      "250ms",
    ]);
  });

  it("follows PgBouncer's logfile where the placement puts it", () => {
    const args = mtailArgs({ programsDir: "/p", pgdata: "/d", pgbouncerLog: "/scratch/pgbouncer/logfile.log" });
    expect(args.slice(4, 6)).toEqual(["--logs", "/scratch/pgbouncer/logfile.log"]);
  });

  it("matches every file log_filename can name and nothing else in the directory", () => {
    const glob = mtailArgs({ programsDir: "/p", pgdata: "/d" })[3];
    const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
    const asRegex = new RegExp(`^${glob.split("*").map(escape).join("[^/]*")}$`);
    for (let hour = 0; hour < 24; hour++) {
      const name = postgresLogFilename.replace("%H", String(hour).padStart(2, "0"));
      expect(asRegex.test(`/d/${postgresLogDirectory}/${name}`)).toBe(true);
    }
    expect(asRegex.test(`/d/${postgresLogDirectory}/postgresql-05.csv`)).toBe(false);
    expect(asRegex.test("/d/postgresql-05.log")).toBe(false);
  });
});
