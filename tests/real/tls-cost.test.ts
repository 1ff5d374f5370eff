/**
 * `pgstack local perf --compare-tls` end to end on a small table (3,000 rows, 2 s per run, two rounds): the cluster
 * comes up with PgBouncer admitting plain text beside TLS, the comparison runs, and the report holds a row per
 * scenario with both legs. Both legs are checked from PgBouncer's side by this test itself, independently of what the
 * run says about them: while it runs, SHOW CLIENTS (as the stats user, on the admin console) is read every 50 ms, and
 * the plain-text legs' connections must show an empty `tls` column, the TLS legs' a TLS version — and every other
 * client of the cluster (the smoke benchmark's runners, the canary, pgbouncer_exporter, this test) TLS too: "allow"
 * is for the comparison's plain leg, not a fallback anyone else takes. PostgreSQL itself still refuses plain text.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Client } from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { statsUser } from "../../configs/roles";
import { defaultStateRoot, isRunning, readState, type ClusterState, type RecordedServer } from "../../local/state";
import { teardownFromState } from "../../local/teardown";
import { legApplicationNames } from "../../local/tls-cost";
import { connect } from "../../pgclient/connect";
import type { TlsCostReport } from "../../postdeploy/tls-cost";

const root = path.resolve(__dirname, "..", "..");
const pgstack = path.join(root, "bin", "pgstack.js");
const name = `tlscost-${process.pid}`;
const reportDir = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-tls-cost-report-"));

afterAll(async () => {
  await teardownFromState(defaultStateRoot, name).catch(() => undefined);
  fs.rmSync(reportDir, { recursive: true, force: true });
});

/** The stats user on PgBouncer's admin console, over the cluster's verify-full TLS (the pooled URL's query). */
function consoleUrl(state: ClusterState): string {
  const url = new URL(state.urls.pooled);
  url.username = statsUser;
  url.password = state.passwords.stats;
  url.pathname = "/pgbouncer";
  return url.toString();
}

/** What SHOW CLIENTS showed over the whole run: application_name → the `tls` values seen. */
class ClientsSeen {
  readonly tls = new Map<string, Set<string>>();
  config = new Map<string, string>();
  plainToPostgres: string | undefined;
  error: unknown;
  private admin: Client | undefined;
  private timer: NodeJS.Timeout | undefined;
  private busy = false;

  /** Every 50 ms: once the state file names PgBouncer, connects to its console, then reads SHOW CLIENTS. */
  watch(): void {
    this.timer = setInterval(() => void this.tick(), 50);
  }

  private async tick(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      if (this.admin === undefined) {
        const state = readState(defaultStateRoot, name);
        if (state?.urls.pooled === undefined || state.passwords.stats === undefined) return;
        this.admin = await connect(consoleUrl(state), "pgstack-tls-cost-test");
        const config = await this.admin.query<{ key: string; value: string }>("SHOW CONFIG");
        this.config = new Map(config.rows.map((r) => [r.key, r.value]));
        this.plainToPostgres = await refusalOfPlainText(state.urls.direct);
      }
      const clients = await this.admin.query<{ application_name: string | null; tls: string | null }>("SHOW CLIENTS");
      for (const c of clients.rows) {
        const seen = this.tls.get(c.application_name ?? "") ?? new Set<string>();
        seen.add(c.tls ?? "");
        this.tls.set(c.application_name ?? "", seen);
      }
    } catch (error) {
      // The cluster going down at the end ends the console connection: only a failure before that counts.
      if (readState(defaultStateRoot, name)?.phase === "up") this.error ??= error;
    } finally {
      this.busy = false;
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.admin?.end().catch(() => undefined);
  }
}

/** PostgreSQL's answer to the app user without TLS (it must refuse: pg_hba is hostssl-only). */
async function refusalOfPlainText(directUrl: string): Promise<string> {
  const url = new URL(directUrl);
  url.searchParams.delete("sslrootcert");
  url.searchParams.set("sslmode", "disable");
  try {
    const client = await connect(url.toString(), "pgstack-tls-cost-test-plain");
    await client.end();
    return "connected";
  } catch (error) {
    return String(error);
  }
}

describe("pgstack local perf --compare-tls", () => {
  it("measures plain text against TLS through PgBouncer, each leg what it claims, and tears down", async () => {
    let hugePagesAdded = 0;
    const servers = new Map<number, RecordedServer>();
    const dirs = new Set<string>();
    const stateWatch = setInterval(() => {
      try {
        const s = readState(defaultStateRoot, name);
        for (const server of s?.servers ?? []) servers.set(server.pid, server);
        for (const d of s?.scratchDirs ?? []) dirs.add(d);
        hugePagesAdded = Math.max(hugePagesAdded, s?.hugePages?.added ?? 0);
      } catch {
        // being rewritten
      }
    }, 50);
    const seen = new ClientsSeen();
    seen.watch();
    const started = Date.now();
    const child = spawn(
      process.execPath,
      [
        pgstack, "local", "perf", "--stack", "perf", "--name", name, "--memory", "2Gi",
        "--rows", "3000", "--duration", "2s", "--warmup", "1s", "--sustained", "1s", "--concurrency", "4",
        "--compare-tls", "--tls-rounds", "2", "--report-dir", reportDir, "--json",
      ],
      { cwd: root, stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
    clearInterval(stateWatch);
    await seen.stop();
    console.log(`local perf --compare-tls took ${((Date.now() - started) / 1000).toFixed(1)} s`);
    expect(code, stderr.slice(-3000)).toBe(0);
    expect(seen.error).toBeUndefined();

    // PgBouncer ran with allow; PostgreSQL still refused a client without TLS.
    expect(seen.config.get("client_tls_sslmode")).toBe("allow");
    expect(seen.config.get("server_tls_sslmode")).toBe("verify-full");
    expect(seen.plainToPostgres).toMatch(/pg_hba\.conf rejects connection for host "127\.0\.0\.1", user "app_owner", database "app", no encryption/);

    // Each leg, as this test saw it in SHOW CLIENTS.
    const plainLegs: string[] = [legApplicationNames.node.plain, legApplicationNames.pgbench.plain];
    const tlsLegs: string[] = [legApplicationNames.node.tls, legApplicationNames.pgbench.tls];
    for (const leg of plainLegs) expect([...(seen.tls.get(leg) ?? [])], leg).toEqual([""]);
    for (const leg of tlsLegs) {
      const values = [...(seen.tls.get(leg) ?? [])];
      expect(values.length, leg).toBeGreaterThan(0);
      for (const v of values) expect(v, leg).toMatch(/^TLSv1\.[23]\//);
    }
    // Everyone else came over TLS: the smoke runners, the canary, the exporter, this test's console.
    const others = [...seen.tls].filter(([app]) => !plainLegs.includes(app) && !tlsLegs.includes(app));
    expect(others.map(([app]) => app)).toEqual(expect.arrayContaining(["pgstack-tls-cost-test", "pgstack-smoke-0"]));
    for (const [app, values] of others) for (const v of values) expect(v, app).toMatch(/^TLSv1\.[23]\//);

    // The report: a row per scenario, both legs measured in both rounds, the verdict, the run's own evidence.
    const summary = JSON.parse(stdout) as { report: { json: string; markdown: string; html: string }; tlsCost: TlsCostReport };
    const report = JSON.parse(fs.readFileSync(summary.report.json, "utf8")) as { tlsCost: TlsCostReport; settings: Record<string, string> };
    const t = report.tlsCost;
    expect(t).toEqual(summary.tlsCost);
    expect(t).toMatchObject({ rounds: 2, seconds: 2, concurrency: 4, goal: 0.9 });
    expect(t.rows.map((r) => r.scenario)).toEqual(["search", "hybrid", "insert", "mixed", "reconnect"]);
    for (const row of t.rows) {
      for (const leg of [row.plain, row.tls]) {
        expect(leg.rounds, row.scenario).toHaveLength(2);
        for (const r of leg.rounds) expect(r.opsPerSec, row.scenario).toBeGreaterThan(0);
        expect(leg.errors, row.scenario).toBe(0);
      }
      expect(row.ratio, row.scenario).toBeGreaterThan(0);
      expect(row.meetsGoal, row.scenario).toBe(row.steadyState ? row.ratio >= 0.9 : null);
    }
    const reconnect = t.rows[4];
    expect(reconnect.plain.connectionMs).toBeGreaterThan(0);
    expect(reconnect.tls.connectionMs).toBeGreaterThan(0);
    expect(t.evidence.map((e) => [e.applicationName, e.tls.map((v) => (v === "" ? "plain" : "TLS"))])).toEqual([
      [legApplicationNames.node.plain, ["plain"]],
      [legApplicationNames.node.tls, ["TLS"]],
      [legApplicationNames.pgbench.plain, ["plain"]],
      [legApplicationNames.pgbench.tls, ["TLS"]],
    ]);
    expect(report.settings["pgbouncer client_tls_sslmode"]).toMatch(/^allow \(for the TLS comparison/);
    expect(fs.readFileSync(summary.report.markdown, "utf8")).toMatch(/\| search \| Node \(smoke runners\) \| [\d,.]+ \| [\d,.]+ \| [\d.]+ % \|/);
    expect(fs.readFileSync(summary.report.html, "utf8")).toContain("<h2>TLS cost through PgBouncer: ");

    // Down afterwards: every process and directory the run had, the state file, the huge pages it added. (Not
    // nr_hugepages against its value before: other clusters on this machine reserve and give back pages meanwhile.)
    expect(servers.size).toBe(8);
    expect([...servers.values()].filter(isRunning)).toEqual([]);
    expect([...dirs].filter((d) => fs.existsSync(d))).toEqual([]);
    expect(fs.existsSync(path.join(defaultStateRoot, name))).toBe(false);
    if (hugePagesAdded > 0) expect(stderr).toContain(`${hugePagesAdded} huge pages given back`);
  });
});
