/**
 * The rendered alert rules fire on the real stack. One local perf cluster (PostgreSQL 17 + pgvector, PgBouncer, the
 * three exporters, mtail over PostgreSQL's log, the canary, Prometheus with the stack's rendered rules) runs a perf
 * stack whose `alerts:` shorten the `for` durations to 5 s and the rate window to 20 s, with Prometheus scraping every
 * 2 s and evaluating every 1 s and the canary running every second. Each case induces a real cause and reads the
 * alert from Prometheus's /api/v1/alerts: firing, active only since the cause began, with its severity and stack
 * labels and its summary, description and runbook_url annotations.
 *
 * Causes that leave the cluster whole come first; stopping PgBouncer and then PostgreSQL comes last. Before each cause
 * the case waits until its alert is quiet, so an alert still active from an earlier cause never counts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canarySchema } from "../../configs/roles";
import { defaultCanarySettings } from "../../configs/canary";
import type { ClusterInfo } from "../../local/cluster";
import { alertCluster } from "./alert-cluster";
import { AlertProbe, connect, delay } from "./alert-probe";

/** Short enough that each alert fires within seconds of its cause; the thresholds themselves stay the guide's. */
const alerts = {
  rateWindow: "20s",
  unavailableFor: "5s",
  poolUtilizationWarningFor: "5s",
  poolUtilizationCriticalFor: "5s",
  clientsWaitingFor: "5s",
  longTransactionAge: "10s",
  longTransactionFor: "5s",
  slowQueriesFor: "5s",
  vectorQueryP95For: "5s",
  queryP99For: "5s",
  connectionFailureFor: "5s",
};
/** A pool of 5 with no reserve: 8 clients holding transactions saturate it and 3 wait for as long as they hold. */
const pgbouncer = { defaultPoolSize: 5, reservePoolSize: 0 };
const { cluster, spec, started, stop } = alertCluster("alerts-fire", { pgbouncer, alerts });
let info: ClusterInfo;

const probe = new AlertProbe(() => info.prometheusUrl, "perf");
const { timings } = probe;
const waitUntilQuiet = probe.waitUntilQuiet.bind(probe);
const waitForFiring = probe.waitForFiring.bind(probe);
const expectWellFormed = probe.expectWellFormed.bind(probe);
const scalar = probe.scalar.bind(probe);
const query = probe.query.bind(probe);

/** The superuser in the app database (the canary's table lives there). */
function superuserAppUrl(): string {
  const url = new URL(info.superuserUrl);
  url.pathname = `/${spec.postgres.database}`;
  return url.toString();
}

const isPool = (l: Record<string, string>): boolean => l.database === spec.postgres.database && l.user === spec.postgres.appUser;

beforeAll(async () => {
  info = await cluster.start();
  // Every canary scenario has been timed a few times through Prometheus, so the latency rules have a baseline.
  const deadline = Date.now() + 60_000;
  const timed = 'min(sum by (scenario) (pgstack_canary_query_duration_seconds_count{stack="perf"}))';
  while (((await scalar(timed)) ?? 0) < 3) {
    if (Date.now() > deadline) throw new Error(`the canary has not timed each scenario 3 times within 60 s: ${await query(timed)}`);
    await delay(500);
  }
  timings.push(`cluster up and the canary warm after ${((Date.now() - started) / 1000).toFixed(1)} s`);
});

afterAll(() => stop(timings));

describe("the rendered alerts fire on a local perf cluster", () => {
  it("a pg_sleep transaction older than longTransactionAge → PostgresLongRunningTransaction", async () => {
    const app = "alerts-fire-long-tx";
    const client = await connect(info.directUrl, app);
    const since = Date.now();
    try {
      await client.query("BEGIN");
      const sleeping = client.query("SELECT pg_sleep(120)").catch((e: Error) => e);
      const alert = await waitForFiring("PostgresLongRunningTransaction", since, (l) => l.application_name === app, [
        'pg_stat_activity_max_tx_duration{stack="perf"} > 0',
      ]);
      expectWellFormed(alert, "warning");
      // directUrl is the owner's (DDL, loads): the transaction is its.
      expect(alert.labels).toMatchObject({ datname: spec.postgres.database, usename: cluster.rendered.roles.owner });
      expect(Number(alert.value)).toBeGreaterThan(10);
      const admin = await connect(info.superuserUrl, "alerts-fire-admin");
      try {
        await admin.query("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = $1", [app]);
      } finally {
        await admin.end();
      }
      expect(String(await sleeping)).toMatch(/canceling statement due to user request/);
    } finally {
      await client.query("ROLLBACK").catch(() => undefined);
      await client.end().catch(() => undefined);
    }
  });

  it("many slow statements (pg_sleep(0.15)), counted by mtail from PostgreSQL's log → PostgresSlowQueries", async () => {
    await waitUntilQuiet("PostgresSlowQueries");
    const since = Date.now();
    let done = false;
    let statements = 0;
    // Two sessions, ~13 slow statements a second: far above the guide's 10 a minute.
    const sessions = await Promise.all([0, 1].map(() => connect(info.directUrl, "alerts-fire-slow")));
    const loops = sessions.map(async (c) => {
      while (!done) {
        await c.query("SELECT pg_sleep(0.15)");
        statements++;
      }
    });
    try {
      const alert = await waitForFiring("PostgresSlowQueries", since, () => true, [
        'pgstack_slow_queries_total{stack="perf"}',
        'sum by (instance) (rate(pgstack_slow_queries_total{stack="perf"}[20s])) * 60',
      ]);
      expectWellFormed(alert, "warning");
      // The source is mtail: the alert keeps the instance of its target.
      expect(alert.labels.instance).toBe(`127.0.0.1:${info.ports.mtail}`);
      expect(Number(alert.value)).toBeGreaterThan(10);
    } finally {
      done = true;
      await Promise.allSettled(loops);
      await Promise.allSettled(sessions.map((c) => c.end()));
    }
    expect(statements).toBeGreaterThan(20);
  });

  it("the canary's table locked so its search, hybrid and insert wait → VectorQueryLatencyP95High and QueryLatencyP99High", async () => {
    await waitUntilQuiet("VectorQueryLatencyP95High");
    await waitUntilQuiet("QueryLatencyP99High");
    const since = Date.now();
    const holder = await connect(superuserAppUrl(), "alerts-fire-lock");
    let done = false;
    // ACCESS EXCLUSIVE for 1.5 s at a time: every canary statement that comes meanwhile waits for it, as behind a
    // long migration. The canary's own query timeout (10 s) is far away, so these are latencies, not failures.
    const locking = (async () => {
      while (!done) {
        await holder.query("BEGIN");
        // The canary's table lives in its own role's schema (configs/roles.ts).
        await holder.query(`LOCK TABLE ${canarySchema}.${defaultCanarySettings.table} IN ACCESS EXCLUSIVE MODE`);
        await holder.query("SELECT pg_sleep(1.5)");
        await holder.query("COMMIT");
      }
    })();
    const diagnose = [
      'pgstack_canary:query_duration_seconds:p95{stack="perf"}',
      'pgstack_canary:query_duration_seconds:p99{stack="perf"}',
    ];
    try {
      const p95 = await waitForFiring("VectorQueryLatencyP95High", since, (l) => ["search", "hybrid", "insert"].includes(l.scenario), diagnose);
      expectWellFormed(p95, "warning");
      expect(Number(p95.value)).toBeGreaterThan(0.2);
      const p99 = await waitForFiring("QueryLatencyP99High", since, (l) => l.scenario !== undefined, diagnose);
      expectWellFormed(p99, "critical");
      expect(Number(p99.value)).toBeGreaterThan(0.5);
      expect(`${p95.annotations.description} ${p99.annotations.description}`).toMatch(/canary/);
    } finally {
      done = true;
      await locking.catch(() => undefined);
      await holder.end().catch(() => undefined);
    }
  });

  it("more clients holding transactions than default_pool_size → PgBouncerPoolUtilizationHigh (warning and critical), PgBouncerClientsWaiting", async () => {
    for (const alertname of ["PgBouncerPoolUtilizationHigh", "PgBouncerClientsWaiting"]) await waitUntilQuiet(alertname, isPool);
    const clients = await Promise.all(Array.from({ length: pgbouncer.defaultPoolSize + 3 }, () => connect(info.pooledUrl, "alerts-fire-pool")));
    const since = Date.now();
    // Transaction pooling: a client holds a server connection from BEGIN to its end. Five get one; three queue.
    const holding = clients.map((c) => c.query("BEGIN").then(() => c.query("SELECT 1")));
    const diagnose = [
      'pgbouncer:pool_utilization:ratio{stack="perf"}',
      'pgbouncer_pools_client_waiting_connections{stack="perf"}',
      'pgbouncer_pools_server_active_connections{stack="perf"}',
    ];
    try {
      const warning = await waitForFiring("PgBouncerPoolUtilizationHigh", since, (l) => isPool(l) && l.severity === "warning", diagnose);
      const critical = await waitForFiring("PgBouncerPoolUtilizationHigh", since, (l) => isPool(l) && l.severity === "critical", diagnose);
      const waiting = await waitForFiring("PgBouncerClientsWaiting", since, isPool, diagnose);
      expectWellFormed(warning, "warning");
      expectWellFormed(critical, "critical");
      expectWellFormed(waiting, "warning");
      expect(Number(critical.value)).toBeGreaterThanOrEqual(1);
      expect(Number(waiting.value)).toBeGreaterThanOrEqual(3);
    } finally {
      // Ending the five holders' transactions lets the queued three through; then everyone leaves.
      await Promise.allSettled(clients.map(async (c, i) => {
        await holding[i].catch(() => undefined);
        await c.query("ROLLBACK").catch(() => undefined);
      }));
      await Promise.allSettled(clients.map((c) => c.end()));
    }
  });

  let pgbouncerStoppedAt = 0;

  it("PgBouncer stopped → PgBouncerDown", async () => {
    await waitUntilQuiet("CanaryConnectionFailures", (l) => l.target === "pgbouncer");
    pgbouncerStoppedAt = Date.now();
    await cluster.stopServer("pgbouncer");
    const alert = await waitForFiring("PgBouncerDown", pgbouncerStoppedAt, () => true, ['pgbouncer_up{stack="perf"}', 'up{stack="perf"}']);
    expectWellFormed(alert, "critical");
    expect(alert.labels.instance).toBe(`127.0.0.1:${info.ports.pgbouncerExporter}`);
  });

  it("the canary's logins through the stopped PgBouncer failing → CanaryConnectionFailures", async () => {
    expect(pgbouncerStoppedAt, "the previous case stops PgBouncer").toBeGreaterThan(0);
    const alert = await waitForFiring("CanaryConnectionFailures", pgbouncerStoppedAt, (l) => l.target === "pgbouncer", [
      'pgstack_canary:connection_failures:ratio{stack="perf"}',
      'pgstack_canary_connection_failures_total{stack="perf"}',
    ]);
    expectWellFormed(alert, "critical");
    expect(Number(alert.value)).toBeGreaterThan(0.01);
    // Its logins straight to PostgreSQL still work: no alert for that target.
    expect((await probe.activeAlerts()).filter((a) => a.labels.alertname === "CanaryConnectionFailures" && a.labels.target === "postgres")).toEqual([]);
  });

  it("PostgreSQL stopped → PostgresDown", async () => {
    const since = Date.now();
    await cluster.stopServer("postgres");
    const alert = await waitForFiring("PostgresDown", since, () => true, ['pg_up{stack="perf"}', 'up{stack="perf"}']);
    expectWellFormed(alert, "critical");
    expect(alert.labels.instance).toBe(`127.0.0.1:${info.ports.postgresExporter}`);
  });
});
