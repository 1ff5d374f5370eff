/**
 * The canary's metric contract as served (names, labels, buckets, zero series), checked against what the alert
 * rules read; its SQL; its settings and command line. No database: tests/real/canary.test.ts runs it for real.
 */
import { describe, expect, it } from "vitest";
import { canaryMetrics as ruleSideContract, canaryVectorScenarios } from "../../configs/alert-sources";
import { defaultAlertThresholds, renderAlertRules } from "../../configs/alerts";
import {
  canaryExtraMetrics,
  canaryFailureReasons,
  canaryMetricNames,
  canaryMetrics,
  canarySettingsProblems,
  defaultCanarySettings,
  parseListenAddress,
} from "../../configs/canary";
import { defaultScrapeJobNames } from "../../configs/scrape";
import { CanaryMetrics } from "../../canary/metrics";
import { canarySql } from "../../canary/sql";
import { DeadlineError, withDeadline } from "../../canary/connect";
import { canarySettingsFromArgs } from "../../cli/canary";
import { parseExposition } from "../exposition";
import { matches, selectorsOfRules } from "../promtool/metric-names";

const scrapeLabels = new Set(["instance", "job", "stack"]);

describe("canary metric contract", () => {
  it("is the rules' contract (configs/alert-sources.ts), re-exported unchanged", () => {
    expect(canaryMetrics).toBe(ruleSideContract);
    expect(canaryMetrics.queryDuration.name).toBe("pgstack_canary_query_duration_seconds");
    expect(canaryMetrics.queryDuration.labels).toEqual(["scenario"]);
    expect(canaryMetrics.connectionAttempts).toEqual({ name: "pgstack_canary_connection_attempts_total", labels: ["target"] });
    expect(canaryMetrics.connectionFailures).toEqual({ name: "pgstack_canary_connection_failures_total", labels: ["target"] });
    expect(canaryMetrics.certificateNotAfter).toEqual({ name: "pgstack_canary_tls_certificate_not_after_seconds", labels: ["target"] });
    expect(canaryVectorScenarios).toEqual(["search", "hybrid", "insert"]);
  });

  it.each([0.1, 0.2, 0.5])("has a bucket bound at the threshold %s s", (bound) => {
    expect(canaryMetrics.queryDuration.buckets).toContain(bound);
  });

  it("serves every series at 0 from the start, with the contract's labels and buckets", async () => {
    const metrics = new CanaryMetrics(["pgbouncer", "postgres"]);
    const series = parseExposition(await metrics.text());
    for (const target of ["pgbouncer", "postgres"]) {
      expect(series).toContainEqual({ name: canaryMetrics.connectionAttempts.name, labels: { target }, value: 0 });
      expect(series).toContainEqual({ name: canaryMetrics.connectionFailures.name, labels: { target }, value: 0 });
    }
    for (const scenario of canaryVectorScenarios) {
      for (const le of [...canaryMetrics.queryDuration.buckets.map(String), "+Inf"]) {
        expect(series).toContainEqual({ name: `${canaryMetrics.queryDuration.name}_bucket`, labels: { scenario, le }, value: 0 });
      }
      expect(series).toContainEqual({ name: `${canaryMetrics.queryDuration.name}_count`, labels: { scenario }, value: 0 });
      for (const reason of canaryFailureReasons) {
        expect(series).toContainEqual({ name: canaryExtraMetrics.queryFailures.name, labels: { scenario, reason }, value: 0 });
      }
    }
    // The certificate gauge has no zero (0 would be a certificate that expired in 1970): absent until a handshake.
    expect(series.some((s) => s.name === canaryMetrics.certificateNotAfter.name)).toBe(false);
    metrics.certificateSeen("postgres", new Date("2030-01-02T03:04:05.678Z"));
    const after = parseExposition(await metrics.text());
    expect(after.filter((s) => s.name === canaryMetrics.certificateNotAfter.name)).toEqual([
      { name: canaryMetrics.certificateNotAfter.name, labels: { target: "postgres" }, value: Date.UTC(2030, 0, 2, 3, 4, 5) / 1000 },
    ]);
    // Names outside the contract are prom-client's process metrics only.
    const own = new Set(after.map((s) => s.name).filter((n) => n.startsWith("pgstack_")));
    expect([...own].sort()).toEqual(canaryMetricNames());
    expect(series.some((s) => s.name === "process_start_time_seconds")).toBe(true);
  });

  it("puts an observation of 0.3 s above the 0.2 bucket and within 0.5", async () => {
    const metrics = new CanaryMetrics(["pgbouncer"]);
    metrics.observe("search", 0.3);
    metrics.connectionAttempt("pgbouncer", false);
    const series = parseExposition(await metrics.text());
    const bucket = (le: string) => series.find((s) => s.name.endsWith("_bucket") && s.labels.scenario === "search" && s.labels.le === le)?.value;
    expect([bucket("0.1"), bucket("0.2"), bucket("0.5"), bucket("+Inf")]).toEqual([0, 0, 1, 1]);
    expect(series.find((s) => s.name === canaryMetrics.connectionFailures.name)?.value).toBe(1);
    expect(series.find((s) => s.name === canaryMetrics.connectionAttempts.name)?.value).toBe(1);
  });

  it("serves every name, matcher and grouping label the canary rules use", async () => {
    const metrics = new CanaryMetrics(["pgbouncer"]);
    metrics.observe("hybrid", 0.01);
    metrics.certificateSeen("pgbouncer", new Date());
    const series = parseExposition(await metrics.text());
    const rules = renderAlertRules({
      stack: "unit",
      thresholds: defaultAlertThresholds,
      jobs: defaultScrapeJobNames,
      runbookBaseUrl: "https://example.test/runbooks.md",
      expectedSettings: {},
      hugePages: "try",
      pgbouncer: { maxClientConn: 100, defaultPoolSize: 20 },
    });
    const canaryUses = selectorsOfRules(rules).filter((s) => s.metric.startsWith("pgstack_canary_"));
    expect(canaryUses.length).toBeGreaterThan(0);
    for (const use of canaryUses) {
      const matching = series.filter(
        (s) => s.name === use.metric && use.matchers.filter((m) => !scrapeLabels.has(m.label)).every((m) => matches(m, s.labels[m.label])),
      );
      expect(matching.length, `${use.rule}: ${use.metric}`).toBeGreaterThan(0);
      for (const label of use.groupedBy.filter((l) => !scrapeLabels.has(l))) {
        expect(matching.every((s) => label in s.labels), `${use.rule}: ${use.metric} by ${label}`).toBe(true);
      }
    }
  });
});

describe("canary SQL", () => {
  const sql = canarySql(defaultCanarySettings);

  it("is the same for the same settings", () => {
    expect(canarySql(defaultCanarySettings)).toEqual(sql);
  });

  it("creates its own indexed table, like any vector table of the stack", () => {
    expect(sql.columnType).toBe("vector(768)");
    expect(sql.createTable[0]).toMatch(/^CREATE TABLE IF NOT EXISTS "pgstack_canary" \(id bigserial PRIMARY KEY, "tier" text NOT NULL, "embedding" vector\(768\) NOT NULL/);
    expect(sql.createTable).toContain('ALTER TABLE "pgstack_canary" ALTER COLUMN "embedding" SET STORAGE PLAIN');
    expect(sql.createIndex).toBe(
      'CREATE INDEX CONCURRENTLY IF NOT EXISTS "pgstack_canary_embedding_hnsw_idx" ON "pgstack_canary" USING hnsw ("embedding" vector_cosine_ops) WITH (m = 16, ef_construction = 128)',
    );
    expect(sql.trim).toBe('DELETE FROM "pgstack_canary" WHERE id <= (SELECT max(id) FROM "pgstack_canary") - 1000');
  });

  it("runs search, hybrid (filter + iterative scan) and insert, each bounded by statement_timeout", () => {
    const { search, hybrid, insert } = sql.scenarios;
    for (const s of [search, hybrid, insert]) expect(s.setLocal[0]).toBe("SET LOCAL statement_timeout = 10000");
    expect(search.text).toBe('SELECT id, "embedding" <=> $1::vector AS distance FROM "pgstack_canary" ORDER BY distance LIMIT 10');
    expect(search.params).toEqual(["vector"]);
    expect(search.setLocal).toContain("SET LOCAL hnsw.ef_search = 40");
    expect(hybrid.text).toContain('WHERE "tier" = $2');
    expect(hybrid.params).toEqual(["vector", "filter"]);
    expect(hybrid.setLocal).toContain("SET LOCAL hnsw.iterative_scan = relaxed_order");
    expect(insert.text).toBe('INSERT INTO "pgstack_canary" ("tier", "embedding") VALUES ($1, $2::vector)');
    expect(insert.params).toEqual(["filter", "vector"]);
  });

  it("follows the settings", () => {
    const other = canarySql({ ...defaultCanarySettings, table: "probe_t", dimensions: 3, maxRows: 200, efSearch: 80, queryTimeoutMs: 2500 });
    expect(other.columnType).toBe("vector(3)");
    expect(other.scenarios.search.setLocal).toEqual(["SET LOCAL statement_timeout = 2500", "SET LOCAL hnsw.ef_search = 80"]);
    expect(other.trim).toContain('"probe_t") - 200');
    expect(other.seed).toContain("generate_series(1, 3)");
  });
});

describe("canary settings", () => {
  it("defaults: 10 s rounds, a connection per second, the guide's 10 s connection timeout", () => {
    expect(canarySettingsProblems(defaultCanarySettings)).toEqual([]);
    expect(defaultCanarySettings).toMatchObject({ intervalMs: 10_000, connectIntervalMs: 1_000, connectTimeoutMs: 10_000, listen: { host: "127.0.0.1", port: 9188 } });
  });

  it.each([
    [{ intervalMs: 50 }, "intervalMs 50 must be a whole number of milliseconds ≥ 100"],
    [{ table: "Bad-Name" }, 'table "Bad-Name" must be a lower-case SQL identifier'],
    [{ dimensions: 2001 }, "dimensions 2001 must be a whole number from 1 to 2000"],
    [{ maxRows: 10 }, "maxRows 10 must be a whole number from 100"],
    [{ efSearch: 0 }, "efSearch 0 must be from 1 to 1000"],
  ])("rejects %j", (override, message) => {
    expect(canarySettingsProblems({ ...defaultCanarySettings, ...override }).join("\n")).toContain(message);
  });

  it.each([
    ["127.0.0.1:9188", { host: "127.0.0.1", port: 9188 }],
    [":9188", { host: "0.0.0.0", port: 9188 }],
    ["[::1]:9188", { host: "::1", port: 9188 }],
    ["0.0.0.0:0", { host: "0.0.0.0", port: 0 }],
    ["9188", null],
    ["host:99999", null],
  ])("parses the listen address %s", (text, expected) => {
    expect(parseListenAddress(text)).toEqual(expected);
  });

  it("reads the command line", () => {
    const { settings, once, json } = canarySettingsFromArgs([
      "--listen",
      "0.0.0.0:19188",
      "--interval=2s",
      "--connect-interval",
      "500ms",
      "--table",
      "canary_t",
      "--dimensions",
      "8",
      "--once",
      "--json",
    ]);
    expect(settings).toMatchObject({ listen: { host: "0.0.0.0", port: 19188 }, intervalMs: 2000, connectIntervalMs: 500, table: "canary_t", dimensions: 8 });
    expect([once, json]).toEqual([true, true]);
    expect(() => canarySettingsFromArgs(["--interval", "10"])).toThrow(/--interval "10" has no unit/);
    expect(() => canarySettingsFromArgs(["--listen", "nowhere"])).toThrow(/is not host:port/);
    expect(() => canarySettingsFromArgs(["--json"])).toThrow(/--json goes with --once/);
    expect(() => canarySettingsFromArgs(["--dimensions", "5000"])).toThrow(/dimensions 5000/);
  });
});

describe("withDeadline", () => {
  it("resolves work that finishes in time", async () => {
    await expect(withDeadline(Promise.resolve(7), 100, "x", () => undefined)).resolves.toBe(7);
  });

  it("rejects with a DeadlineError and calls onExpire when the work hangs", async () => {
    let expired = false;
    const hung = new Promise<never>(() => undefined);
    const result = withDeadline(hung, 20, "the hung thing", () => {
      expired = true;
    });
    await expect(result).rejects.toBeInstanceOf(DeadlineError);
    await expect(result).rejects.toThrow("the hung thing did not finish within 20 ms");
    expect(expired).toBe(true);
  });
});
