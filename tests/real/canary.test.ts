/**
 * The canary against real PostgreSQL 17 + pgvector and PgBouncer 1.24, both running the stack's rendered
 * configuration, the app role bootstrapped from SCRAM verifiers like every target does:
 * - it creates, seeds and indexes its own table and exports a non-zero latency histogram per scenario;
 * - real slowness (its table locked by another session) moves observations above the 0.2 s bucket;
 * - a statement stuck longer than the query timeout is cancelled, counted as a timeout and observed;
 * - a pooler that accepts connections but never serves them (PgBouncer PAUSE) counts as connection failures;
 * - stopping PgBouncer makes the PgBouncer connection failures rise (and not PostgreSQL's); after a restart they stop;
 * - `pgstack canary` runs as a process, serves /metrics, masks the password and stops on SIGTERM.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as path from "node:path";
import { Client } from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Canary } from "../../canary";
import { canaryExtraMetrics, canaryMetrics, canaryVectorScenarios, defaultCanarySettings, type CanarySettings } from "../../configs/canary";
import { renderPgHba } from "../../configs/pg-hba";
import { pgbouncerUserlist, renderPgBouncerIni } from "../../configs/pgbouncer";
import { renderPostgresqlConf } from "../../configs/postgresql";
import { canaryRole, canarySchema, pgbouncerAdminUser } from "../../configs/roles";
import { testBootstrapSql } from "./roles-fixture";
import { scramVerifier } from "../../configs/scram";
import { freeLoopbackPort, getRuntime, httpGet, startPgBouncer, startPostgres, stopAll, type PgBouncerServer, type PostgresServer, type Runtime } from "../../local/runtime";
import { planShape } from "../../postdeploy/smoke-sql";
import { samples } from "../exposition";
import { specFor } from "../unit/spec-fixture";

const spec = specFor({ target: "local", node: { memory: "4Gi", cpus: 2 } }, "perf");
// The canary logs in as its own role (configs/roles.ts), whose search_path puts its table in its schema.
const { database } = spec.postgres;
const appUser = canaryRole;
const canaryTable = `${canarySchema}.${defaultCanarySettings.table}`;
const appPassword = `canary-${randomBytes(12).toString("base64url")}`;
const appVerifier = scramVerifier(appPassword, randomBytes(16));
const adminPassword = `admin-${randomBytes(12).toString("base64url")}`;
const adminVerifier = scramVerifier(adminPassword, randomBytes(16));
const monitorVerifier = scramVerifier(`mon-${randomBytes(12).toString("base64url")}`, randomBytes(16));

const settings: CanarySettings = {
  ...defaultCanarySettings,
  listen: { host: "127.0.0.1", port: 0 },
  // Fast enough for a test to see many rounds; the timeouts short enough to be waited for.
  intervalMs: 250,
  connectIntervalMs: 200,
  connectTimeoutMs: 2_000,
  queryTimeoutMs: 1_500,
};

const duration = canaryMetrics.queryDuration.name;
const attempts = canaryMetrics.connectionAttempts.name;
const failures = canaryMetrics.connectionFailures.name;
const queryFailures = canaryExtraMetrics.queryFailures.name;

let runtime: Runtime;
let pg: PostgresServer;
let pgb: PgBouncerServer;
let ini: string;
let userlist: string;
let canary: Canary;
let metricsUrl: string;
const canaryLog: string[] = [];


async function scrape(url = metricsUrl): Promise<Map<string, number>> {
  const response = await httpGet(url);
  expect(response.status).toBe(200);
  return samples(response.body);
}

const count = (m: Map<string, number>, scenario: string): number => m.get(`${duration}_count{scenario="${scenario}"}`) ?? NaN;
const bucket = (m: Map<string, number>, scenario: string, le: string): number => m.get(`${duration}_bucket{le="${le}",scenario="${scenario}"}`) ?? NaN;
/** Observations above 0.2 s: the P95 alert's threshold. */
const above200ms = (m: Map<string, number>, scenario: string): number => count(m, scenario) - bucket(m, scenario, "0.2");
const counter = (m: Map<string, number>, name: string, target: string): number => m.get(`${name}{target="${target}"}`) ?? NaN;
const failed = (m: Map<string, number>, scenario: string, reason: string): number =>
  m.get(`${queryFailures}{scenario="${scenario}",reason="${reason}"}`) ?? NaN;

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; canary log:\n${canaryLog.join("\n")}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function withClient<T>(connectionString: string, fn: (c: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * Holds the canary's table in ACCESS EXCLUSIVE mode for `holdMs` at a time, again and again, until `done()` says so
 * (checked between holds) or `timeoutMs` passes. Each canary statement that comes while the lock is held waits for it.
 */
async function lockRepeatedly(holdMs: number, done: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  await withClient(pg.url(database), async (c) => {
    const until = Date.now() + timeoutMs;
    do {
      await c.query("BEGIN");
      await c.query(`LOCK TABLE ${canaryTable} IN ACCESS EXCLUSIVE MODE`);
      await c.query(`SELECT pg_sleep(${holdMs / 1000})`);
      await c.query("COMMIT");
    } while (!(await done()) && Date.now() < until);
  });
}

beforeAll(async () => {
  runtime = await getRuntime();
  pg = await startPostgres({ runtime, postgresqlConf: renderPostgresqlConf(spec), pgHbaConf: renderPgHba() });
  await pg.psql(testBootstrapSql(spec, { canary: appVerifier, monitor: monitorVerifier }));
  ini = renderPgBouncerIni(spec, { server: { host: pg.host, port: pg.port } });
  // PgBouncer's admin user (PAUSE/RESUME below) is a PgBouncer user only.
  userlist = pgbouncerUserlist([
    { user: appUser, verifier: appVerifier },
    { user: pgbouncerAdminUser, verifier: adminVerifier },
  ]);
  pgb = await startPgBouncer({ runtime, ini, userlist });
  canary = new Canary({
    settings,
    pooledUrl: pgb.url(database, appUser, appPassword),
    directUrl: pg.url(database, appUser, appPassword),
    log: (line) => canaryLog.push(line),
  });
  metricsUrl = await canary.start();
});

afterAll(async () => {
  await canary?.stop();
  await stopAll();
});

describe("the canary on real PostgreSQL and PgBouncer", () => {
  it("sets up its table and exports non-zero latency histograms per scenario, without failures", async () => {
    await waitFor("three rounds", async () => {
      const m = await scrape();
      return canaryVectorScenarios.every((s) => count(m, s) >= 3);
    });
    const m = await scrape();
    for (const scenario of canaryVectorScenarios) {
      expect(bucket(m, scenario, "+Inf")).toBe(count(m, scenario));
      expect(m.get(`${duration}_sum{scenario="${scenario}"}`)).toBeGreaterThan(0);
      for (const reason of ["timeout", "error", "no_connection"]) expect(failed(m, scenario, reason), `${scenario} ${reason}`).toBe(0);
    }
    for (const target of ["pgbouncer", "postgres"]) {
      expect(counter(m, attempts, target)).toBeGreaterThan(3);
      expect(counter(m, failures, target)).toBe(0);
    }
    expect(m.get("process_start_time_seconds")).toBeGreaterThan(0);

    // The table: seeded to maxRows, trimmed back after every insert, searched through its HNSW index.
    const rows = Number(await pg.psql(`SELECT count(*) FROM ${canaryTable}`, database));
    expect(rows).toBeGreaterThanOrEqual(settings.maxRows);
    expect(rows).toBeLessThanOrEqual(settings.maxRows + 1);
    const search = canary.sql.scenarios.search;
    const vector = `[${Array.from({ length: settings.dimensions }, (_, i) => ((i % 7) + 1) / 10).join(",")}]`;
    const explain = await withClient(pg.url(database, appUser, appPassword), async (c) => {
      await c.query("BEGIN");
      for (const s of search.setLocal) await c.query(s);
      const result = await c.query(`EXPLAIN (FORMAT JSON) ${search.text}`, [vector]);
      await c.query("COMMIT");
      return result.rows[0]["QUERY PLAN"];
    });
    expect(planShape(explain, canary.sql.plan.indexName).usesIndex).toBe(true);
    // Its sessions log in as the application's user and say who they are (PostgreSQL's log, rendered prefix).
    expect(pg.logText()).toContain(`user=${appUser},db=${database},app=${settings.applicationName},`);
  });

  it("moves observations above the 0.2 s bucket when its table is really slow to get at", async () => {
    const before = await scrape();
    // A statement that comes in the short gap between two holds is not delayed, so hold until every scenario has
    // been caught at least once.
    await lockRepeatedly(400, async () => {
      const m = await scrape();
      return canaryVectorScenarios.every((s) => above200ms(m, s) > above200ms(before, s));
    });
    const after = await scrape();
    for (const scenario of canaryVectorScenarios) {
      expect(above200ms(after, scenario) - above200ms(before, scenario), scenario).toBeGreaterThanOrEqual(1);
      // Waited, not failed: 400 ms is well within the 1.5 s query timeout.
      expect(failed(after, scenario, "timeout")).toBe(0);
    }
  });

  it("cancels a scenario stuck beyond the query timeout, counts it as a timeout and observes it", async () => {
    const before = await scrape();
    const timedOutYet = async () => {
      const m = await scrape();
      return canaryVectorScenarios.some((s) => failed(m, s, "timeout") > failed(before, s, "timeout"));
    };
    // Locks held for twice the query timeout, again until a round has met one: the scenario that hits it is
    // cancelled by statement_timeout. One lock alone can fall between two rounds on a busy machine.
    await lockRepeatedly(2 * settings.queryTimeoutMs, timedOutYet);
    await waitFor("a timed-out scenario", timedOutYet);
    const after = await scrape();
    const timedOut = canaryVectorScenarios.filter((s) => failed(after, s, "timeout") > failed(before, s, "timeout"));
    for (const scenario of timedOut) {
      // Observed at about the timeout: above the 1 s bucket, within 2.5 s.
      expect(count(after, scenario) - bucket(after, scenario, "1") - (count(before, scenario) - bucket(before, scenario, "1"))).toBeGreaterThanOrEqual(1);
      expect(bucket(after, scenario, "2.5") - bucket(before, scenario, "2.5")).toBeGreaterThanOrEqual(1);
    }
    expect(canaryLog.join("\n")).toMatch(/timeout: canceling statement due to statement timeout/);
    // The canary goes on: the next rounds succeed.
    const base = await scrape();
    await waitFor("successful rounds after the timeout", async () => {
      const m = await scrape();
      return canaryVectorScenarios.every((s) => count(m, s) - failed(m, s, "timeout") > count(base, s) - failed(base, s, "timeout"));
    });
  });

  it("counts a pooler that accepts connections but never serves them as connection failures (PgBouncer PAUSE)", async () => {
    const before = await scrape();
    const mark = canaryLog.length;
    const admin = new Client({ connectionString: pgb.url("pgbouncer", pgbouncerAdminUser, adminPassword) });
    await admin.connect();
    try {
      await admin.query(`PAUSE ${database}`);
      await waitFor("connection failures while paused", async () => {
        const m = await scrape();
        return counter(m, failures, "pgbouncer") - counter(before, failures, "pgbouncer") >= 3;
      });
    } finally {
      await admin.query(`RESUME ${database}`);
      await admin.end();
    }
    const during = await scrape();
    // PostgreSQL itself kept accepting the canary's logins.
    expect(counter(during, failures, "postgres")).toBe(counter(before, failures, "postgres"));
    expect(canaryLog.join("\n")).toMatch(/connections to pgbouncer: failing: connect and SELECT 1 did not finish within 2000 ms/);
    await waitFor("connections to PgBouncer working again", async () => canaryLog.slice(mark).some((l) => l.startsWith("connections to pgbouncer: ok")));
  });

  it("counts connection failures when PgBouncer is stopped, and stops counting them once it is back", async () => {
    const before = await scrape();
    await pgb.stop();
    const rising = (from: Map<string, number>, n: number) => async () => counter(await scrape(), failures, "pgbouncer") - counter(from, failures, "pgbouncer") >= n;
    await waitFor("connection failures with PgBouncer stopped", rising(before, 1));
    // Attempts that began before the stop have ended by now (each within the connect timeout).
    await new Promise((r) => setTimeout(r, settings.connectTimeoutMs));
    const stoppedFrom = await scrape();
    await waitFor("more connection failures", rising(stoppedFrom, 5));
    const stopped = await scrape();
    // Every attempt failed (a stopped PgBouncer refuses at once); PostgreSQL's own logins kept working.
    expect(counter(stopped, failures, "pgbouncer") - counter(stoppedFrom, failures, "pgbouncer")).toBe(
      counter(stopped, attempts, "pgbouncer") - counter(stoppedFrom, attempts, "pgbouncer"),
    );
    expect(counter(stopped, failures, "postgres")).toBe(counter(before, failures, "postgres"));
    expect(counter(stopped, attempts, "postgres")).toBeGreaterThan(counter(before, attempts, "postgres"));
    for (const s of canaryVectorScenarios) expect(failed(stopped, s, "no_connection")).toBeGreaterThan(failed(before, s, "no_connection"));
    expect(canaryLog.join("\n")).toMatch(/connections to pgbouncer: failing: .*ECONNREFUSED/);

    const mark = canaryLog.length;
    pgb = await startPgBouncer({ runtime, ini, userlist, port: pgb.port });
    await waitFor("PgBouncer connections working again", async () => canaryLog.slice(mark).some((l) => l.startsWith("connections to pgbouncer: ok")));
    const back = await scrape();
    await new Promise((r) => setTimeout(r, 1_500));
    const later = await scrape();
    expect(counter(later, failures, "pgbouncer")).toBe(counter(back, failures, "pgbouncer"));
    expect(counter(later, attempts, "pgbouncer")).toBeGreaterThan(counter(back, attempts, "pgbouncer"));
    for (const s of canaryVectorScenarios) expect(count(later, s)).toBeGreaterThan(count(back, s));
  });

  it("never logs or serves the password", async () => {
    const body = (await httpGet(metricsUrl)).body;
    for (const text of [canaryLog.join("\n"), body]) {
      expect(text).not.toContain(appPassword);
      expect(text).not.toContain(encodeURIComponent(appPassword));
    }
    expect(canaryLog[0]).toContain(`${appUser}:***@`);
  });
});

describe("pgstack canary as a process", () => {
  const root = path.resolve(__dirname, "../..");
  let child: ChildProcess | undefined;

  /** Runs cli/canary.ts's command the way bin/pgstack.js runs every command (tsx, no build). */
  function runCanaryCommand(args: string[], env: Record<string, string>): ChildProcess {
    const script = "require('./cli/canary.ts').canaryCommand.run(process.argv.slice(1)).then((c) => { process.exitCode = c; })";
    return spawn(process.execPath, ["-r", "tsx/cjs", "-e", script, "--", ...args], {
      cwd: root,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
  }

  function collect(c: ChildProcess): { out: () => string; exit: Promise<number | null> } {
    let out = "";
    c.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    c.stderr?.on("data", (d: Buffer) => (out += d.toString()));
    return { out: () => out, exit: new Promise((resolve) => c.on("exit", (code) => resolve(code))) };
  }

  afterAll(() => {
    // Only the child this test started, by its pid.
    if (child?.pid !== undefined && child.exitCode === null) process.kill(child.pid, "SIGKILL");
  });

  it("runs one round with --once --json and exits 0", async () => {
    child = runCanaryCommand(["--once", "--json", "--table", "canary_cli_once"], { PGSTACK_POOLED_URL: pgb.url(database, appUser, appPassword) });
    const { out, exit } = collect(child);
    expect(await exit, out()).toBe(0);
    const report = JSON.parse(out()) as { ok: boolean; round: { scenarios: Record<string, { ok: boolean }> } };
    expect(report.ok).toBe(true);
    for (const s of canaryVectorScenarios) expect(report.round.scenarios[s].ok).toBe(true);
    expect(out()).not.toContain(appPassword);
  });

  it("refuses to start without PGSTACK_POOLED_URL, naming it", async () => {
    child = runCanaryCommand(["--once"], {});
    const { out, exit } = collect(child);
    expect(await exit).toBe(1);
    expect(out()).toMatch(/PGSTACK_POOLED_URL is not set/);
  });

  it("serves /metrics until SIGTERM, then exits 0", async () => {
    const port = await freeLoopbackPort();
    child = runCanaryCommand(["--listen", `127.0.0.1:${port}`, "--interval", "300ms", "--connect-interval", "300ms", "--table", "canary_cli"], {
      PGSTACK_POOLED_URL: pgb.url(database, appUser, appPassword),
    });
    const { out, exit } = collect(child);
    const url = `http://127.0.0.1:${port}/metrics`;
    await waitFor("the CLI canary's first rounds", async () => {
      const m = await scrape(url).catch(() => new Map<string, number>());
      return canaryVectorScenarios.every((s) => count(m, s) >= 1);
    });
    const m = await scrape(url);
    expect(counter(m, attempts, "pgbouncer")).toBeGreaterThan(0);
    expect(m.has(`${attempts}{target="postgres"}`)).toBe(false);
    child.kill("SIGTERM");
    expect(await exit, out()).toBe(0);
    expect(out()).toMatch(/SIGTERM: stopping/);
    expect(out()).not.toContain(appPassword);
  });
});
