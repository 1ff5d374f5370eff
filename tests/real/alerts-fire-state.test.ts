/**
 * The rest of the alert policy fires on the real stack: the host alerts from node_exporter (with the collectors every
 * target runs), huge pages not in use, settings drift and a pending restart, an INVALID HNSW index, clients waiting
 * on average over 100 ms, PgBouncer's max_client_conn and PostgreSQL's max_connections nearly used up, and the
 * buffer-cache and index hit ratios falling, a certificate renewed too short-lived (the canary's notAfter gauge), a
 * metric source stopped. tests/real/alerts-fire.test.ts covers the
 * outages, the pool, long transactions, slow queries and latency.
 *
 * One local perf cluster with small limits (max_connections 40, max_client_conn 40, a pool of 5), `for` durations of
 * 5 s, a 20 s rate window, Prometheus scraping every 2 s and evaluating every second. The thresholds stay the
 * guide's except the host ones: CPU, memory and disk are set below what any machine running this test uses, because
 * pushing this machine to 80 % CPU or a full disk is not a test one may run; what is proven is that node_exporter's
 * series reach the rules and fire them, promtool's cases prove the thresholds (tests/promtool).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { Client } from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bytes } from "../../configs/units";
import type { ClusterInfo } from "../../local/cluster";
import { alertCluster } from "./alert-cluster";
import type { HugePagesPool } from "../../local/hugepages";
import { AlertProbe, connect, delay } from "./alert-probe";

const alerts = {
  rateWindow: "20s",
  clientWaitFor: "5s",
  clientConnectionsWarningFor: "5s",
  clientConnectionsCriticalFor: "5s",
  pgConnectionsWarningFor: "5s",
  pgConnectionsCriticalFor: "5s",
  pendingRestartFor: "5s",
  hugePagesNotInUseFor: "5s",
  settingsDriftFor: "5s",
  hnswIndexInvalidFor: "5s",
  cacheHitRatioFor: "5s",
  indexHitRatioFor: "5s",
  hitRatioGraceAfterRestart: "5s",
  targetDownFor: "5s",
  // Below any machine's real use: these prove the node_exporter series reach the rules, not the thresholds.
  cpuWarning: 0.001,
  cpuWarningFor: "5s",
  memoryWarning: 0.01,
  memoryWarningFor: "5s",
  memoryCritical: 0.02,
  memoryCriticalFor: "5s",
  diskCritical: 0.0001,
  diskCriticalFor: "5s",
  // A certificate valid for a day is within the warning's 2 days and outside the critical's 12 hours.
  certificateExpiryWarning: "2d",
  certificateExpiryCritical: "12h",
  certificateExpiryFor: "5s",
};
/** The gate refuses an expiry warning at or beyond renewBefore (it would fire on every healthy certificate). */
const tls = { certificateValidity: "90d", renewBefore: "3d" };
const maxConnections = 40;
const maxClientConn = 40;
const pgbouncer = { defaultPoolSize: 5, reservePoolSize: 0, maxClientConn };

/** A kernel that grants no huge page at all (the real pool is never touched): PostgreSQL starts on 4 kB pages. */
const noHugePages = (stateRoot: string): HugePagesPool => ({
  readNr: () => 0,
  writeNr: () => undefined,
  meminfo: () => ({ total: 0, free: 0, reserved: 0, surplus: 0, pageBytes: 2 * bytes.MiB }),
  lockFile: path.join(stateRoot, "hugepages.lock"),
});
const { cluster, spec, started, stop } = alertCluster("alerts-fire-state", {
  pgbouncer,
  alerts,
  postgres: { hugePages: "try", maxConnections },
  tls,
  hugePagesPool: noHugePages,
});
let info: ClusterInfo;
const probe = new AlertProbe(() => info.prometheusUrl, "perf");
const appDb = spec.postgres.database;

function superuserUrl(database: string): string {
  const url = new URL(info.superuserUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

async function withClient<T>(url: string, app: string, work: (c: Client) => Promise<T>): Promise<T> {
  const client = await connect(url, app);
  try {
    return await work(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Opens connections until the server refuses one for being full (`refusal`) and keeps them: every slot is in use,
 * whatever else (canary, exporters, pools) held some at that moment; when those let go, one or two slots are free,
 * still above the critical 95 %.
 */
async function fillUntilRefused(clients: Client[], open: () => Promise<Client>, refusal: RegExp): Promise<void> {
  for (;;) {
    if (clients.length > 200) throw new Error(`opened ${clients.length} connections and none was refused`);
    try {
      clients.push(await open());
    } catch (error) {
      if (!refusal.test(String(error))) throw error;
      return;
    }
  }
}

beforeAll(async () => {
  info = await cluster.start();
});

afterAll(() => stop(probe.timings));

describe("the rest of the rendered alerts fire on a local perf cluster", () => {
  it("node_exporter's CPU, memory and filesystem series → HostCpuUsageHigh, HostMemoryUsageHigh (both), HostDiskUsageHigh", async () => {
    const nodeTarget = `127.0.0.1:${info.ports.nodeExporter}`;
    const diagnose = ['instance:node_cpu_utilization:ratio{stack="perf"}', 'instance:node_memory_utilization:ratio{stack="perf"}', 'node_filesystem_avail_bytes{stack="perf"}'];
    const cpu = await probe.waitForFiring("HostCpuUsageHigh", started, () => true, diagnose);
    const memoryWarning = await probe.waitForFiring("HostMemoryUsageHigh", started, (l) => l.severity === "warning", diagnose);
    const memoryCritical = await probe.waitForFiring("HostMemoryUsageHigh", started, (l) => l.severity === "critical", diagnose);
    const disk = await probe.waitForFiring("HostDiskUsageHigh", started, () => true, diagnose);
    for (const [alert, severity] of [[cpu, "warning"], [memoryWarning, "warning"], [memoryCritical, "critical"], [disk, "critical"]] as const) {
      probe.expectWellFormed(alert, severity);
      expect(alert.labels.instance).toBe(nodeTarget);
    }
    expect(Number(cpu.value)).toBeGreaterThan(0);
    expect(Number(memoryCritical.value)).toBeGreaterThan(0.02);
    expect(disk.labels.mountpoint).toMatch(/^\//);
    expect(disk.labels.fstype).not.toMatch(/^(tmpfs|proc|sysfs|overlay)$/);
  });

  it("huge_pages = try but the kernel granted none → PostgresHugePagesNotInUse", async () => {
    expect(info.hugePages.used).toBe(false);
    const alert = await probe.waitForFiring("PostgresHugePagesNotInUse", started, () => true, ['pgstack_settings_info{name=~"huge_pages.*"}']);
    probe.expectWellFormed(alert, "warning");
    expect(alert.labels.value).toBe("off");
    expect(alert.annotations.description).toMatch(/huge_pages is try/);
  });

  it("postgresql.conf edited and reloaded: work_mem changed → PostgresSettingsDrift; shared_buffers changed → PostgresPendingRestart", async () => {
    await probe.waitUntilQuiet("PostgresSettingsDrift", (l) => l.name === "work_mem");
    await probe.waitUntilQuiet("PostgresPendingRestart");
    // The data directory's postgresql.conf is the rendered file the rig wrote (log_directory, owned, is 'log' inside
    // it); an operator's hand edit, undone at the end.
    const conf = path.join(path.dirname(info.logs.postgres_log_dir), "postgresql.conf");
    expect(fs.readFileSync(conf, "utf8")).toBe(cluster.rendered.files["postgresql.conf"]);
    const since = Date.now();
    fs.appendFileSync(conf, "work_mem = '7MB'\nshared_buffers = '200MB'\n");
    const reload = (): Promise<unknown> => withClient(info.superuserUrl, "alerts-fire-reload", (c) => c.query("SELECT pg_reload_conf()"));
    try {
      await reload();
      const drift = await probe.waitForFiring("PostgresSettingsDrift", since, (l) => l.name === "work_mem", ['pgstack_settings_info{name="work_mem"}']);
      probe.expectWellFormed(drift, "warning");
      expect(drift.labels).toMatchObject({ value: String(7 * bytes.MiB), expected: String(cluster.rendered.memory.workMemBytes) });
      // The rig's own -c port and socket options also read as pending after a reload; shared_buffers must be there.
      const waiting = await withClient(info.superuserUrl, "alerts-fire-pending", (c) => c.query("SELECT name FROM pg_settings WHERE pending_restart"));
      expect(waiting.rows.map((r) => r.name)).toContain("shared_buffers");
      const pending = await probe.waitForFiring("PostgresPendingRestart", since, () => true, ["pgstack_pending_restart_settings"]);
      probe.expectWellFormed(pending, "warning");
      expect(Number(pending.value)).toBeGreaterThanOrEqual(1);
    } finally {
      fs.writeFileSync(conf, cluster.rendered.files["postgresql.conf"]);
      await reload();
    }
  });

  it("CREATE INDEX CONCURRENTLY … USING hnsw cancelled by statement_timeout → PostgresHnswIndexInvalid", async () => {
    const since = Date.now();
    const db = superuserUrl(appDb);
    await withClient(db, "alerts-fire-hnsw", async (c) => {
      await c.query("CREATE TABLE alert_probe_vectors (id bigint PRIMARY KEY, embedding vector(3))");
      await c.query("INSERT INTO alert_probe_vectors SELECT i, ARRAY[i, 1, 1]::vector(3) FROM generate_series(1, 100) i");
      // A writer's open transaction: CREATE INDEX CONCURRENTLY records the (invalid) index, commits, then waits for
      // every transaction that may write the table. Cancelled there, it leaves the index INVALID, as a failed
      // deploy does, on any machine however fast.
      const writer = await connect(db, "alerts-fire-hnsw-writer");
      try {
        await writer.query("BEGIN");
        await writer.query("INSERT INTO alert_probe_vectors VALUES (0, '[0,1,1]')");
        await c.query("SET statement_timeout = '1s'");
        const failed = await c
          .query("CREATE INDEX CONCURRENTLY alert_probe_vectors_hnsw ON alert_probe_vectors USING hnsw (embedding vector_cosine_ops)")
          .then(() => null, (e: Error) => e);
        expect(String(failed)).toMatch(/statement timeout/);
        await c.query("RESET statement_timeout");
      } finally {
        await writer.query("ROLLBACK").catch(() => undefined);
        await writer.end().catch(() => undefined);
      }
      const valid = await c.query("SELECT indisvalid FROM pg_index WHERE indexrelid = 'alert_probe_vectors_hnsw'::regclass");
      expect(valid.rows).toEqual([{ indisvalid: false }]);
    });
    const alert = await probe.waitForFiring("PostgresHnswIndexInvalid", since, (l) => l.indexrelname === "alert_probe_vectors_hnsw", [
      "pgstack_hnsw_index_valid",
      "pgstack_hnsw_index_building",
    ]);
    probe.expectWellFormed(alert, "warning");
    expect(alert.labels).toMatchObject({ datname: appDb, relname: "alert_probe_vectors" });
  });

  it("12 clients taking turns on a pool of 5 with 0.3 s transactions → PgBouncerClientWaitHigh (average wait over 100 ms)", async () => {
    await probe.waitUntilQuiet("PgBouncerClientWaitHigh");
    const clients = await Promise.all(Array.from({ length: 12 }, () => connect(info.pooledUrl, "alerts-fire-wait")));
    const since = Date.now();
    let done = false;
    const loops = clients.map(async (c) => {
      while (!done) {
        await c.query("BEGIN");
        await c.query("SELECT pg_sleep(0.3)");
        await c.query("COMMIT");
      }
    });
    try {
      const alert = await probe.waitForFiring("PgBouncerClientWaitHigh", since, (l) => l.database === appDb, [
        'pgbouncer:client_wait_seconds:mean_per_transaction{stack="perf"}',
        'pgbouncer_stats_client_wait_seconds_total{stack="perf"}',
      ]);
      probe.expectWellFormed(alert, "warning");
      expect(Number(alert.value)).toBeGreaterThan(0.1);
    } finally {
      done = true;
      await Promise.allSettled(loops);
      await Promise.allSettled(clients.map((c) => c.end()));
    }
  });

  it("idle clients until max_client_conn 40 refuses one → PgBouncerClientConnectionsNearLimit (warning and critical)", async () => {
    for (const severity of ["warning", "critical"]) await probe.waitUntilQuiet("PgBouncerClientConnectionsNearLimit", (l) => l.severity === severity);
    const used = 'pgbouncer_used_clients{stack="perf"}';
    const clients: Client[] = [];
    const since = Date.now();
    try {
      // The canary and the exporter hold clients too: open ours until PgBouncer refuses one.
      await fillUntilRefused(clients, () => connect(info.pooledUrl, "alerts-fire-clients"), /max_client_conn/);
      const diagnose = [used, 'pgbouncer_config_max_client_connections{stack="perf"}'];
      const warning = await probe.waitForFiring("PgBouncerClientConnectionsNearLimit", since, (l) => l.severity === "warning", diagnose);
      const critical = await probe.waitForFiring("PgBouncerClientConnectionsNearLimit", since, (l) => l.severity === "critical", diagnose);
      probe.expectWellFormed(warning, "warning");
      probe.expectWellFormed(critical, "critical");
      expect(Number(critical.value)).toBeGreaterThan(0.95);
    } finally {
      await Promise.allSettled(clients.map((c) => c.end()));
    }
  });

  it("direct sessions until max_connections 40 refuses one → PostgresConnectionsNearMax (warning and critical)", async () => {
    for (const severity of ["warning", "critical"]) await probe.waitUntilQuiet("PostgresConnectionsNearMax", (l) => l.severity === severity);
    const sessions = 'sum(pg_stat_activity_count{backend_type="client backend",stack="perf"})';
    const clients: Client[] = [];
    const since = Date.now();
    try {
      // As the superuser, who may use the superuser-reserved slots: until PostgreSQL refuses one. Meanwhile
      // new logins of other roles (the canary's direct probe, a reconnecting exporter) are refused; the exporter's open
      // session keeps reporting.
      await fillUntilRefused(clients, () => connect(info.superuserUrl, "alerts-fire-sessions"), /too many clients/);
      const diagnose = [sessions, 'pg:connections:utilization_ratio{stack="perf"}'];
      const warning = await probe.waitForFiring("PostgresConnectionsNearMax", since, (l) => l.severity === "warning", diagnose);
      const critical = await probe.waitForFiring("PostgresConnectionsNearMax", since, (l) => l.severity === "critical", diagnose);
      probe.expectWellFormed(warning, "warning");
      probe.expectWellFormed(critical, "critical");
      expect(Number(critical.value)).toBeGreaterThan(0.95);
    } finally {
      await Promise.allSettled(clients.map((c) => c.end()));
    }
  });

  it("a table and its index evicted from shared_buffers and read again, over and over → PostgresCacheHitRatioLow, PostgresIndexHitRatioLow", async () => {
    await probe.waitUntilQuiet("PostgresCacheHitRatioLow");
    await probe.waitUntilQuiet("PostgresIndexHitRatioLow");
    const reader = await connect(superuserUrl(appDb), "alerts-fire-evict");
    let done = false;
    let rounds = 0;
    try {
      // pg_buffercache_evict (PostgreSQL 17) drops a buffer as memory pressure would: the next read goes to the OS.
      await reader.query("CREATE EXTENSION IF NOT EXISTS pg_buffercache");
      await reader.query("CREATE TABLE alert_probe_rows (id bigint PRIMARY KEY, payload text)");
      await reader.query("INSERT INTO alert_probe_rows SELECT i, repeat('x', 100) FROM generate_series(1, 100000) i");
      await reader.query("VACUUM ANALYZE alert_probe_rows");
      // Every heap page once (a sequential scan) and every index page once (an index-only scan), all from the OS.
      await reader.query("SET enable_bitmapscan = off");
      const since = Date.now();
      const loop = (async () => {
        while (!done) {
          await reader.query(
            "SELECT count(pg_buffercache_evict(bufferid)) FROM pg_buffercache WHERE relfilenode IN (pg_relation_filenode('alert_probe_rows'), pg_relation_filenode('alert_probe_rows_pkey'))",
          );
          await reader.query("SET enable_seqscan = on; SET enable_indexscan = off; SET enable_indexonlyscan = off");
          await reader.query("SELECT count(payload) FROM alert_probe_rows");
          await reader.query("SET enable_seqscan = off; SET enable_indexscan = on; SET enable_indexonlyscan = on");
          await reader.query("SELECT count(id) FROM alert_probe_rows WHERE id > 0");
          rounds++;
        }
      })();
      try {
        const diagnose = ['pg:cache_hit:ratio{stack="perf"}', 'pg:index_hit:ratio{stack="perf"}'];
        const cache = await probe.waitForFiring("PostgresCacheHitRatioLow", since, (l) => l.datname === appDb, diagnose);
        const index = await probe.waitForFiring("PostgresIndexHitRatioLow", since, (l) => l.datname === appDb, diagnose);
        probe.expectWellFormed(cache, "warning");
        probe.expectWellFormed(index, "warning");
        expect(Number(cache.value)).toBeLessThan(0.99);
        expect(Number(index.value)).toBeLessThan(0.95);
      } finally {
        done = true;
        await loop;
      }
    } finally {
      await reader.end().catch(() => undefined);
    }
    expect(rounds).toBeGreaterThan(3);
  });

  it("a certificate renewed for one day (a renewal that went wrong) → CertificateExpiresSoon (warning) for PgBouncer and PostgreSQL", async () => {
    await probe.waitUntilQuiet("CertificateExpiresSoon");
    const notAfter = 'pgstack_canary_tls_certificate_not_after_seconds{stack="perf"}';
    // The 90-day certificate of the start is seen and quiet: the canary reports what both servers serve.
    let left: number | undefined;
    for (const deadline = Date.now() + 30_000; left === undefined && Date.now() < deadline; await delay(500)) left = await probe.scalar(`min(${notAfter}) - time()`);
    expect(left).toBeGreaterThan(80 * 86_400);
    const since = Date.now();
    const renewed = await cluster.renewCertificate({ validMs: 86_400_000 });
    const diagnose = [notAfter, `${notAfter} - time()`];
    for (const target of ["pgbouncer", "postgres"]) {
      const alert = await probe.waitForFiring("CertificateExpiresSoon", since, (l) => l.target === target && l.severity === "warning", diagnose);
      probe.expectWellFormed(alert, "warning");
      // The value is the seconds left on the certificate the server serves now: the renewed one, about a day.
      expect(Math.abs(Number(alert.value) - (renewed.notAfter.getTime() - Date.now()) / 1000)).toBeLessThan(120);
    }
    const seen = await probe.query(notAfter);
    expect(seen).toContain(String(Math.floor(renewed.notAfter.getTime() / 1000)));
    // A day is more than the critical threshold's 12 hours: only the warning fires.
    expect((await probe.activeAlerts()).filter((a) => a.labels.alertname === "CertificateExpiresSoon" && a.labels.severity === "critical")).toEqual([]);
  });

  it("mtail stopped → ScrapeTargetDown for job mtail (warning): a dead source is reported, not silent", async () => {
    const since = Date.now();
    await cluster.stopServer("mtail");
    const alert = await probe.waitForFiring("ScrapeTargetDown", since, (l) => l.job === "mtail", ['up{stack="perf"}']);
    probe.expectWellFormed(alert, "warning");
    expect(alert.labels.instance).toBe(`127.0.0.1:${info.ports.mtail}`);
  });
});
