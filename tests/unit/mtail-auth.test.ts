/**
 * The refused-logins part of the rendered mtail program: which reason each PostgreSQL 17 and PgBouncer 1.24 log line
 * is counted under (one at most), labels from fixed sets only, every series started at 0, and the alert that reads
 * them. The refusal lines below are the servers' own, as tests/real/auth-failures.test.ts printed them from a real
 * PostgreSQL 17 and PgBouncer 1.24.1 (times and pids aside; the user names with spaces and the reasons that test does
 * not provoke are PostgreSQL's message texts with other values); that test runs the real mtail over the real servers.
 */
import { describe, expect, it } from "vitest";
import { authFailureReasons, authFailureSources, mtailMetrics } from "../../configs/alert-sources";
import { authFailureBurstPerMinute, defaultAlertThresholds, isAlertingRule, renderAlertRules } from "../../configs/alerts";
import {
  logLinePrefixPattern,
  pgbouncerAuthFailurePatterns,
  pgbouncerLinePrefix,
  postgresAuthFailurePatterns,
  renderMtailProgram,
} from "../../configs/mtail";
import { logLinePrefix } from "../../configs/postgresql";
import { promtoolRulesInput } from "../promtool/fixture";

const js = (re2: string): RegExp => new RegExp(re2.replace(/\(\?P</g, "(?<"));

const pg = (fields: { user?: string; db?: string; app?: string; client?: string } = {}): string =>
  `2026-12-07 21:15:02.345 UTC [4242]: user=${fields.user ?? "app"},db=${fields.db ?? "app"},app=${fields.app ?? "[unknown]"},client=${fields.client ?? "127.0.0.1"} `;
const bouncer = (level = "LOG") => `2026-12-07 21:15:02.345 UTC [77] ${level} `;

/** What the program does with one line: the reasons it counts it under, per source (mtail runs every matching block). */
function countedUnder(line: string): string[] {
  const pgPrefix = logLinePrefixPattern(logLinePrefix);
  const hits: string[] = [];
  for (const reason of authFailureReasons) {
    if (js(pgPrefix + postgresAuthFailurePatterns[reason]).test(line)) hits.push(`postgresql/${reason}`);
    const p = pgbouncerAuthFailurePatterns[reason];
    if (p !== undefined && js(pgbouncerLinePrefix + p).test(line)) hits.push(`pgbouncer/${reason}`);
  }
  return hits;
}

// [line, counted under (none: "")]
const lines: [string, string][] = [
  // PostgreSQL 17: the FATAL line of each refusal.
  [`${pg({ user: "app_owner" })}FATAL:  password authentication failed for user "app_owner"`, "postgresql/authentication"],
  [`${pg({ user: "nobody" })}FATAL:  password authentication failed for user "nobody"`, "postgresql/authentication"],
  [`${pg({ user: "my user, with \"quotes\"" })}FATAL:  password authentication failed for user "my user, with "quotes""`, "postgresql/authentication"],
  [`${pg({ client: "[local]" })}FATAL:  Peer authentication failed for user "postgres"`, "postgresql/authentication"],
  [`${pg()}FATAL:  pg_hba.conf rejects connection for host "127.0.0.1", user "app", database "app", no encryption`, "postgresql/tls_required"],
  [`${pg()}FATAL:  no pg_hba.conf entry for host "203.0.113.9", user "app", database "app", no encryption`, "postgresql/tls_required"],
  [`${pg({ user: "postgres" })}FATAL:  pg_hba.conf rejects connection for host "127.0.0.1", user "postgres", database "app", SSL encryption`, "postgresql/pg_hba"],
  [`${pg()}FATAL:  no pg_hba.conf entry for host "203.0.113.9", user "app", database "app", SSL encryption`, "postgresql/pg_hba"],
  [`${pg({ db: "nosuch" })}FATAL:  database "nosuch" does not exist`, "postgresql/unknown_database"],
  [`${pg({ user: "auth_nologin" })}FATAL:  role "auth_nologin" is not permitted to log in`, "postgresql/not_permitted"],
  [`${pg()}FATAL:  permission denied for database "app"`, "postgresql/not_permitted"],
  [`${pg()}FATAL:  sorry, too many clients already`, "postgresql/too_many_connections"],
  [`${pg()}FATAL:  remaining connection slots are reserved for roles with the SUPERUSER attribute`, "postgresql/too_many_connections"],
  [`${pg({ user: "auth_limited" })}FATAL:  too many connections for role "auth_limited"`, "postgresql/too_many_connections"],
  [`${pg()}FATAL:  too many connections for database "app"`, "postgresql/too_many_connections"],
  // PostgreSQL: not refusals, or not this line of one.
  [`${pg()}DETAIL:  Connection matched file "/etc/postgresql/pg_hba.conf" line 7: "hostssl all all 127.0.0.1/32 scram-sha-256"`, ""],
  [`${pg({ user: "nobody" })}DETAIL:  Role "nobody" does not exist.`, ""],
  [`${pg()}LOG:  connection authorized: user=app database=app SSL enabled (protocol=TLSv1.3, cipher=TLS_AES_256_GCM_SHA384, bits=256)`, ""],
  [`${pg({ user: "", db: "", app: "", client: "" })}FATAL:  terminating connection due to administrator command`, ""],
  [`${pg()}FATAL:  the database system is starting up`, ""],
  [`${pg()}ERROR:  permission denied for table memories`, ""],
  [`${pg()}LOG:  statement: SELECT 'FATAL:  password authentication failed for user "x"'`, ""],
  // PgBouncer 1.24: the `closing because:` line of each refusal …
  [`${bouncer()}C-0x55d1e2c3b4a5: app/app@127.0.0.1:50412 closing because: SASL authentication failed (age=0s)`, "pgbouncer/authentication"],
  [`${bouncer()}C-0x560a34ccbed0: (nodb)/nobody@127.0.0.1:55092 closing because: SASL authentication failed (age=0s)`, "pgbouncer/authentication"],
  [`${bouncer()}C-0x55d1e2c3b4a5: app/my user@127.0.0.1:50414 closing because: SASL authentication failed (age=0s)`, "pgbouncer/authentication"],
  [`${bouncer()}C-0x55d1e2c3b4a5: (nodb)/(nouser)@127.0.0.1:50416 closing because: SSL required (age=0s)`, "pgbouncer/tls_required"],
  [`${bouncer()}C-0x560a34ccb950: (nodb)/app@127.0.0.1:55138 closing because: no such database: nosuch (age=0s)`, "pgbouncer/unknown_database"],
  [`${bouncer()}C-0x55d1e2c3b4a5: (nodb)/(nouser)@127.0.0.1:50420 closing because: no more connections allowed (max_client_conn) (age=0s)`, "pgbouncer/too_many_connections"],
  // … and not the `pooler error:` line that says it again, nor anything else.
  [`${bouncer("WARNING")}C-0x55d1e2c3b4a5: app/app@127.0.0.1:50412 pooler error: SASL authentication failed`, ""],
  [`${bouncer()}C-0x55d1e2c3b4a5: app/app@127.0.0.1:50422 login attempt: db=app user=app tls=TLSv1.3/TLS_AES_256_GCM_SHA384`, ""],
  [`${bouncer()}C-0x55d1e2c3b4a5: app/app@127.0.0.1:50422 closing because: client close request (age=3s)`, ""],
  [`${bouncer()}stats: 2 xacts/s, 2 queries/s, 0 client parses/s, 0 server parses/s, 0 binds/s, in 512 B/s, out 1024 B/s, xact 123 us, query 120 us, wait 5 us`, ""],
];

describe("refused logins: which line is counted under which reason", () => {
  it.each(lines)("%s → %s", (line, expected) => {
    expect(countedUnder(line)).toEqual(expected === "" ? [] : [expected]);
  });

  it("tells the two logs apart: a line starts with one server's prefix only", () => {
    const pgPrefix = js(logLinePrefixPattern(logLinePrefix));
    const bouncerPrefix = js(pgbouncerLinePrefix);
    for (const [line] of lines) expect(pgPrefix.test(line) && bouncerPrefix.test(line), line).toBe(false);
    expect(bouncerPrefix.test(lines.find(([l]) => l.includes("stats: "))![0])).toBe(true);
  });
});

describe("the rendered program's refused-logins part", () => {
  const program = renderMtailProgram();
  const failures = mtailMetrics.authFailures.name;

  it("declares one counter with fixed labels, and never captures a value from a line into a label", () => {
    expect(program).toContain(`counter ${failures} by source, reason\n`);
    expect(program).toContain(`counter ${mtailMetrics.pgbouncerLogLines.name}\n`);
    const uses = [...program.matchAll(new RegExp(`${failures}\\[([^\\]]*)\\]\\[([^\\]]*)\\]`, "g"))];
    expect(uses.length).toBeGreaterThan(0);
    for (const [, source, reason] of uses) {
      expect(authFailureSources.map((s) => `"${s}"`)).toContain(source);
      expect(authFailureReasons.map((r) => `"${r}"`)).toContain(reason);
    }
    // No named capture in any refused-login pattern: nothing of the line can reach a label.
    for (const p of [...Object.values(postgresAuthFailurePatterns), ...Object.values(pgbouncerAuthFailurePatterns)]) expect(p).not.toMatch(/\(\?P</);
  });

  it("starts every series of a source at 0 with each line of that source, so a first failure is a step", () => {
    for (const reason of authFailureReasons) expect(program).toContain(`  ${failures}["postgresql"]["${reason}"] += 0\n`);
    for (const reason of Object.keys(pgbouncerAuthFailurePatterns)) expect(program).toContain(`  ${failures}["pgbouncer"]["${reason}"] += 0\n`);
    expect(program).toContain(`/${pgbouncerLinePrefix}/ {\n  ${mtailMetrics.pgbouncerLogLines.name}++\n`);
  });

  it("counts each reason in its own block, whole-line patterns that mtail accepts (RE2, under 1024 characters)", () => {
    const pgPrefix = logLinePrefixPattern(logLinePrefix);
    for (const reason of authFailureReasons) {
      const block = `/${pgPrefix}${postgresAuthFailurePatterns[reason]}/ {\n  ${failures}["postgresql"]["${reason}"]++\n}`;
      expect(program).toContain(block);
      expect((pgPrefix + postgresAuthFailurePatterns[reason]).length).toBeLessThan(1024);
    }
    for (const [reason, p] of Object.entries(pgbouncerAuthFailurePatterns)) {
      expect(program).toContain(`/${pgbouncerLinePrefix}${p}/ {\n  ${failures}["pgbouncer"]["${reason}"]++\n}`);
    }
    // mtail delimits patterns with slashes: none inside one.
    for (const p of [pgbouncerLinePrefix, ...Object.values(postgresAuthFailurePatterns), ...Object.values(pgbouncerAuthFailurePatterns)]) {
      expect(p.replace(/\\\//g, "")).not.toContain("/");
    }
  });
});

describe("AuthenticationFailureBurst", () => {
  const rules = renderAlertRules(promtoolRulesInput);
  const alert = rules.groups.flatMap((g) => g.rules).filter(isAlertingRule).find((r) => r.alert === "AuthenticationFailureBurst")!;

  it("alerts per source on every reason but capacity, over the rate window, for the connection-failure time", () => {
    expect(alert.expr).toBe(
      `sum by (instance, source) (rate(${mtailMetrics.authFailures.name}{reason!="too_many_connections",stack="test"}[5m])) * 60 > ${authFailureBurstPerMinute}`,
    );
    expect(alert.for).toBe(defaultAlertThresholds.connectionFailureFor);
    expect(alert.labels).toEqual({ severity: "warning", stack: "test" });
    expect(authFailureBurstPerMinute).toBe(10);
  });
});
