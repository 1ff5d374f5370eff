/**
 * Refused logins, counted by mtail from PostgreSQL's and PgBouncer's logs, on one local perf cluster (the rendered
 * postgresql.conf, pg_hba.conf, pgbouncer.ini with its `logfile`, mtail with the rendered program and flags,
 * Prometheus with the rendered rules): each kind of refusal writes the line the program counts, under its reason, on
 * each server that can refuse it; normal traffic (the canary logging in every second through both doors) fires
 * nothing; a run of wrong passwords through PgBouncer, then straight to PostgreSQL, fires AuthenticationFailureBurst
 * for that source (read from Prometheus's API) and it resolves once the run stops; PgBouncer appends to its logfile,
 * so emptying it in place (what the containers' trim loop does, run here as rendered) loses nothing mtail needs.
 *
 * `for` durations of 5 s, a 20 s rate window, Prometheus scraping every 2 s and evaluating every second; the
 * threshold stays the rule's (10 refusals a minute, over the window: 4 in 20 s).
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import { Client } from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { authFailureReasons, authFailureSources, mtailMetrics } from "../../configs/alert-sources";
import { authFailureBurstPerMinute } from "../../configs/alerts";
import { mtailProgramFile } from "../../configs/mtail";
import { pgbouncerLogTrimLoop } from "../../configs/pgbouncer-log";
import type { ClusterInfo } from "../../local/cluster";
import { httpGet } from "../../local/runtime";
import { parseExposition } from "../exposition";
import { alertCluster } from "./alert-cluster";
import { AlertProbe, connect, delay } from "./alert-probe";

const alerts = { rateWindow: "20s", connectionFailureFor: "5s" };
/** max_client_conn 30: the canary and the exporter use a few, so 30 clients of this test fill it. */
const maxClientConn = 30;
const pgbouncer = { defaultPoolSize: 5, reservePoolSize: 0, maxClientConn };
const { cluster, spec, started, stop } = alertCluster("auth-failures", { pgbouncer, alerts });
let info: ClusterInfo;

const probe = new AlertProbe(() => info.prometheusUrl, "perf");
const { timings } = probe;
const failures = mtailMetrics.authFailures.name;

type Source = (typeof authFailureSources)[number];

/** mtail's own /metrics: pgstack_auth_failures_total by `source/reason`. */
async function counts(): Promise<Map<string, number>> {
  const response = await httpGet(`http://127.0.0.1:${info.ports.mtail}/metrics`);
  expect(response.status).toBe(200);
  const out = new Map<string, number>();
  for (const s of parseExposition(response.body)) {
    if (s.name !== failures) continue;
    expect(s.labels.prog).toBe(mtailProgramFile);
    expect(Object.keys(s.labels).sort()).toEqual(["prog", "reason", "source"]);
    out.set(`${s.labels.source}/${s.labels.reason}`, s.value);
  }
  return out;
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(250);
  }
}

/** The URL with some of its parts changed; `tls: false` drops TLS (sslmode=disable). */
function variant(url: string, change: { user?: string; password?: string; database?: string; tls?: false }): string {
  const u = new URL(url);
  if (change.user !== undefined) u.username = encodeURIComponent(change.user);
  if (change.password !== undefined) u.password = encodeURIComponent(change.password);
  if (change.database !== undefined) u.pathname = `/${encodeURIComponent(change.database)}`;
  if (change.tls === false) {
    u.searchParams.set("sslmode", "disable");
    u.searchParams.delete("sslrootcert");
  }
  return u.toString();
}

/** Tries to log in; the server's refusal as the client saw it ("logged in" when it was not refused). */
async function refusal(url: string): Promise<string> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 10_000, application_name: "auth-failures" });
  client.on("error", () => undefined);
  try {
    await client.connect();
    return "logged in";
  } catch (error) {
    return (error as Error).message;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The text a log file gained since `from` (bytes). */
function grown(file: string, from: number): string {
  const fd = fs.openSync(file, "r");
  try {
    const size = fs.fstatSync(fd).size;
    const buffer = Buffer.alloc(Math.max(0, size - from));
    fs.readSync(fd, buffer, 0, buffer.length, from);
    return buffer.toString("utf8");
  } finally {
    fs.closeSync(fd);
  }
}

/** PostgreSQL's collector files, concatenated in name order (one hour's file in a run this short, or two). */
function postgresLog(): string {
  const dir = info.logs.postgres_log_dir;
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".log"))
    .sort()
    .map((f) => fs.readFileSync(`${dir}/${f}`, "utf8"))
    .join("");
}

/** Lines verified on the real servers, printed at the end for the record. */
const verifiedLines: string[] = [];

beforeAll(async () => {
  info = await cluster.start();
  // mtail has read a line of each source, so every series of both exists at 0 in Prometheus.
  const ready = `count(${failures}{stack="perf"})`;
  const all = authFailureSources.length * authFailureReasons.length - 2; // PgBouncer has no pg_hba or not_permitted
  await waitFor(`mtail's ${all} refused-login series in Prometheus`, async () => ((await probe.scalar(ready)) ?? 0) >= all, 60_000);
  timings.push(`cluster up, mtail's series scraped after ${((Date.now() - started) / 1000).toFixed(1)} s`);
});

afterAll(async () => {
  console.log(`lines the program counted, as the servers wrote them:\n  ${verifiedLines.join("\n  ")}`);
  await stop(timings);
});

describe("refused logins from PostgreSQL's and PgBouncer's logs (mtail) on a local perf cluster", () => {
  it("counts nothing for normal traffic: the canary logs in through both doors every second, no alert", async () => {
    const attempts = 'sum(pgstack_canary_connection_attempts_total{stack="perf"})';
    const before = (await probe.scalar(attempts)) ?? 0;
    // Longer than the rate window plus `for`: an alert would have fired by now.
    await delay(30_000);
    expect((await probe.scalar(attempts)) ?? 0).toBeGreaterThan(before + 20);
    expect(await probe.scalar('sum(pgstack_canary_connection_failures_total{stack="perf"})')).toBe(0);
    expect([...(await counts()).values()].every((v) => v === 0), JSON.stringify([...(await counts()).entries()])).toBe(true);
    expect((await probe.activeAlerts()).filter((a) => a.labels.alertname === "AuthenticationFailureBurst")).toEqual([]);
    // mtail reads PgBouncer's logfile: the canary's logins are lines there.
    expect((await probe.scalar(`sum(${mtailMetrics.pgbouncerLogLines.name}{stack="perf"})`)) ?? 0).toBeGreaterThan(0);
    expect((await probe.activeAlerts()).filter((a) => a.labels.alertname === "PgBouncerLogNotFollowed")).toEqual([]);
  });

  // [source, reason, what the client does, what the client is told, the line the server logs]
  const kinds: [Source, string, string, () => Promise<string>, RegExp, RegExp][] = [
    ["pgbouncer", "authentication", "a wrong password", () => refusal(variant(info.pooledUrl, { password: "wrong" })), /SASL authentication failed/, / closing because: SASL authentication failed /],
    ["pgbouncer", "authentication", "a user PgBouncer does not know", () => refusal(variant(info.pooledUrl, { user: "nobody" })), /SASL authentication failed/, / closing because: SASL authentication failed /],
    ["pgbouncer", "tls_required", "no TLS", () => refusal(variant(info.pooledUrl, { tls: false })), /SSL required/, / closing because: SSL required /],
    ["pgbouncer", "unknown_database", "an unknown database", () => refusal(variant(info.pooledUrl, { database: "nosuch" })), /no such database/, / closing because: no such database: nosuch /],
    ["postgresql", "authentication", "a wrong password", () => refusal(variant(info.directUrl, { password: "wrong" })), /password authentication failed/, /FATAL: {2}password authentication failed for user "/],
    ["postgresql", "authentication", "a role that does not exist", () => refusal(variant(info.directUrl, { user: "nobody" })), /password authentication failed/, /FATAL: {2}password authentication failed for user "nobody"/],
    ["postgresql", "tls_required", "no TLS", () => refusal(variant(info.directUrl, { tls: false })), /no encryption/, /FATAL: {2}pg_hba\.conf rejects connection for host "127\.0\.0\.1", user ".*", database ".*", no encryption$/m],
    ["postgresql", "pg_hba", "the superuser over TCP (with TLS)", () => refusal(variant(info.directUrl, { user: "postgres" })), /pg_hba\.conf rejects connection/, /FATAL: {2}pg_hba\.conf rejects connection for host "127\.0\.0\.1", user "postgres", database ".*", SSL encryption$/m],
    ["postgresql", "unknown_database", "an unknown database", () => refusal(variant(info.directUrl, { database: "nosuch" })), /database "nosuch" does not exist/, /FATAL: {2}database "nosuch" does not exist$/m],
  ];

  it.each(kinds)("%s refuses %s (%s) with the line the program counts", async (source, reason, _what, attempt, told, logged) => {
    const file = source === "pgbouncer" ? info.logs.pgbouncer_logfile : "";
    const from = source === "pgbouncer" ? fs.statSync(file).size : postgresLog().length;
    const before = await counts();
    const key = `${source}/${reason}`;
    expect(await attempt()).toMatch(told);
    await waitFor(`mtail to count ${key} once more`, async () => (await counts()).get(key) === (before.get(key) ?? 0) + 1);
    const after = await counts();
    for (const [k, v] of after) if (k !== key) expect(v, k).toBe(before.get(k) ?? 0);
    const text = source === "pgbouncer" ? grown(file, from) : postgresLog().slice(from);
    const line = text.split("\n").find((l) => logged.test(l));
    expect(line, text).toBeDefined();
    verifiedLines.push(`${key}: ${line}`);
  });

  it("postgresql refuses a NOLOGIN role (not_permitted) and a role over its CONNECTION LIMIT (too_many_connections)", async () => {
    const admin = await connect(info.superuserUrl, "auth-failures-admin");
    const password = "auth-failures-Pw-1";
    try {
      await admin.query(`CREATE ROLE auth_nologin NOLOGIN PASSWORD '${password}'`);
      await admin.query(`CREATE ROLE auth_limited LOGIN CONNECTION LIMIT 1 PASSWORD '${password}'`);
      await admin.query(`GRANT CONNECT ON DATABASE ${spec.postgres.database} TO auth_limited`);
      const before = await counts();
      const from = postgresLog().length;
      expect(await refusal(variant(info.directUrl, { user: "auth_nologin", password }))).toMatch(/is not permitted to log in/);
      const holder = await connect(variant(info.directUrl, { user: "auth_limited", password }), "auth-failures-holder");
      try {
        expect(await refusal(variant(info.directUrl, { user: "auth_limited", password }))).toMatch(/too many connections for role/);
      } finally {
        await holder.end();
      }
      await waitFor("mtail to count not_permitted and too_many_connections", async () => {
        const now = await counts();
        return (
          now.get("postgresql/not_permitted") === (before.get("postgresql/not_permitted") ?? 0) + 1 &&
          now.get("postgresql/too_many_connections") === (before.get("postgresql/too_many_connections") ?? 0) + 1
        );
      });
      const text = postgresLog().slice(from).split("\n");
      for (const [key, re] of [
        ["postgresql/not_permitted", /FATAL: {2}role "auth_nologin" is not permitted to log in$/],
        ["postgresql/too_many_connections", /FATAL: {2}too many connections for role "auth_limited"$/],
      ] as const) {
        const line = text.find((l) => re.test(l));
        expect(line, text.join("\n")).toBeDefined();
        verifiedLines.push(`${key}: ${line}`);
      }
    } finally {
      await admin.query("DROP ROLE IF EXISTS auth_nologin").catch(() => undefined);
      await admin.query(`REVOKE CONNECT ON DATABASE ${spec.postgres.database} FROM auth_limited`).catch(() => undefined);
      await admin.query("DROP ROLE IF EXISTS auth_limited").catch(() => undefined);
      await admin.end();
    }
  });

  it("pgbouncer refuses a client over max_client_conn (too_many_connections)", async () => {
    const before = await counts();
    const from = fs.statSync(info.logs.pgbouncer_logfile).size;
    const held: Client[] = [];
    let told = "";
    try {
      // Fill max_client_conn: the canary and pgbouncer_exporter hold a few, so fewer than 30 may already do it.
      for (let i = 0; i < maxClientConn && told === ""; i++) {
        const client = new Client({ connectionString: info.pooledUrl, connectionTimeoutMillis: 10_000 });
        client.on("error", () => undefined);
        try {
          await client.connect();
          held.push(client);
        } catch (error) {
          told = (error as Error).message;
        }
      }
      if (told === "") told = await refusal(info.pooledUrl);
      expect(told).toMatch(/no more connections allowed \(max_client_conn\)/);
    } finally {
      await Promise.allSettled(held.map((c) => c.end()));
    }
    await waitFor("mtail to count pgbouncer/too_many_connections", async () => ((await counts()).get("pgbouncer/too_many_connections") ?? 0) > (before.get("pgbouncer/too_many_connections") ?? 0));
    const line = grown(info.logs.pgbouncer_logfile, from)
      .split("\n")
      .find((l) => / closing because: no more connections allowed \(max_client_conn\) /.test(l));
    expect(line).toBeDefined();
    verifiedLines.push(`pgbouncer/too_many_connections: ${line}`);
  });

  for (const [source, url] of [
    ["pgbouncer", () => info.pooledUrl],
    ["postgresql", () => info.directUrl],
  ] as const) {
    it(`a run of wrong passwords to ${source} → AuthenticationFailureBurst{source="${source}"}, resolved once it stops`, async () => {
      await probe.waitUntilQuiet("AuthenticationFailureBurst");
      const since = Date.now();
      let done = false;
      let tried = 0;
      // Four clients guessing in a loop: dozens a second, far above 10 a minute.
      const guessing = Array.from({ length: 4 }, async () => {
        while (!done) {
          expect(await refusal(variant(url(), { password: `guess-${tried++}` }))).toMatch(/authentication failed/);
        }
      });
      try {
        const alert = await probe.waitForFiring("AuthenticationFailureBurst", since, (l) => l.source === source, [
          `${failures}{stack="perf"}`,
          `sum by (instance, source) (rate(${failures}{stack="perf",reason!="too_many_connections"}[20s])) * 60`,
        ]);
        probe.expectWellFormed(alert, "warning");
        expect(alert.labels.instance).toBe(`127.0.0.1:${info.ports.mtail}`);
        expect(Number(alert.value)).toBeGreaterThan(authFailureBurstPerMinute);
        // Only the source under attack.
        const other = (await probe.activeAlerts()).filter((a) => a.labels.alertname === "AuthenticationFailureBurst" && a.labels.source !== source);
        expect(other).toEqual([]);
      } finally {
        done = true;
        await Promise.all(guessing);
      }
      expect(tried).toBeGreaterThan(10);
      const stoppedAt = Date.now();
      await probe.waitUntilQuiet("AuthenticationFailureBurst", (l) => l.source === source, 90_000);
      timings.push(`AuthenticationFailureBurst{source=${source}}: resolved ${((Date.now() - stoppedAt) / 1000).toFixed(1)} s after the run stopped (${tried} wrong passwords)`);
    });
  }

  it("PgBouncer appends to its logfile: emptied in place by the rendered trim loop, it goes on from the start and mtail goes on counting", async () => {
    const file = info.logs.pgbouncer_logfile;
    // The descriptor PgBouncer writes the file with is O_APPEND (02000): after a truncation its next line goes to offset 0.
    const pid = pgbouncerPid();
    const fds = fs.readdirSync(`/proc/${pid}/fd`).filter((fd) => {
      try {
        return fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === fs.realpathSync(file);
      } catch {
        return false;
      }
    });
    expect(fds.length).toBeGreaterThanOrEqual(1);
    for (const fd of fds) {
      const flags = /^flags:\s+(\d+)$/m.exec(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8"))![1];
      expect(parseInt(flags, 8) & 0o2000, `fd ${fd} flags ${flags}`).toBe(0o2000);
    }
    expect(fs.statSync(file).size).toBeGreaterThan(4096);
    // Minutes into the run: PgBouncer's stats line (every stats_period, 60 s), what PgBouncerLogNotFollowed relies on.
    const statsLine = fs.readFileSync(file, "utf8").split("\n").find((l) => / LOG stats: /.test(l));
    expect(statsLine).toBeDefined();
    verifiedLines.push(`pgbouncer stats line: ${statsLine}`);
    // The containers' loop, as rendered, with a 4 kB cap checked every second: host sh, the file's host path.
    let loop: ChildProcess | undefined = spawn("sh", ["-c", pgbouncerLogTrimLoop(file, { maxBytes: 4096, intervalSeconds: 1 })], { stdio: ["ignore", "ignore", "pipe"] });
    let said = "";
    loop.stderr!.on("data", (chunk: Buffer) => (said += chunk.toString()));
    try {
      await waitFor("the loop to empty the file", async () => said.includes("pgbouncer-log: emptied"), 10_000);
      loop.kill("SIGTERM");
      loop = undefined;
      const before = (await counts()).get("pgbouncer/authentication") ?? 0;
      expect(await refusal(variant(info.pooledUrl, { password: "after-truncation" }))).toMatch(/SASL authentication failed/);
      await waitFor("mtail to count the refusal after the truncation", async () => (await counts()).get("pgbouncer/authentication") === before + 1);
      const text = fs.readFileSync(file);
      // Written at the start of the emptied file, not after a hole of NUL bytes where the old end was.
      expect(text.length).toBeLessThan(4096 + 8192);
      expect(text.indexOf(0)).toBe(-1);
      expect(text.toString("utf8")).toMatch(/closing because: SASL authentication failed/);
    } finally {
      loop?.kill("SIGTERM");
    }
  });
});

/** PgBouncer's pid, from the rig's view: the process whose argv names the cluster's pgbouncer.ini. */
function pgbouncerPid(): number {
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = fs.readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
      if (argv[0].endsWith("pgbouncer") && argv.some((a) => a.includes(`${info.name}-pgbouncer`))) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error("no PgBouncer process of this cluster");
}
