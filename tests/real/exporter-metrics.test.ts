/**
 * Every metric the alert rules read exists in the real exporters, with the labels the rules match on and group by.
 *
 * Real PostgreSQL 17 (+ pgvector, an HNSW index) and PgBouncer 1.24; postgres_exporter 0.17 with the flags and
 * custom queries of configs/exporters.ts, logged in as `pgstack_monitor` (pg_monitor only); pgbouncer_exporter 0.10
 * as `pgstack_stats` (stats_users); node_exporter. The rule expressions are parsed with the PromQL grammar
 * (tests/promtool/metric-names.ts). Then a real Prometheus loads the rendered config and rules, scrapes the
 * exporters, and every rule must evaluate without error.
 */
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import { Client } from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canaryMetrics, mtailMetrics, nodeMetricNames } from "../../configs/alert-sources";
import { renderAlertRules, renderAlertRulesYaml } from "../../configs/alerts";
import { pgbouncerIniForExporter, postgresExporterQueriesYaml } from "../../configs/exporters";
import { memoryPlan } from "../../configs/memory";
import { postgresqlSettingValues } from "../../configs/postgresql";
import { alertRulesInput, renderStack } from "../../configs/render";
import { statsUser } from "../../configs/roles";
import { testBootstrapSql } from "./roles-fixture";
import { scramVerifier } from "../../configs/scram";
import { renderPrometheusConfigYaml } from "../../configs/scrape";
import { parseStackSpec } from "../../configs/spec";
import {
  getRuntime,
  httpGet,
  runningServers,
  startPgBouncer,
  startPostgres,
  startPrometheus,
  stopAll,
  type HttpServer,
  type PostgresServer,
  type Runtime,
} from "../../local/runtime";
import { parseExposition, type Series } from "../exposition";
import { matches, recordedNames, selectorsOfRules, sourceMetricNames } from "../promtool/metric-names";
import { renderedFor, rigCa, startRenderedExporter } from "./rendered-launch";

// Metric names the rules read that no exporter started here serves, listed explicitly: a new name in the rules
// must be added to one of these lists or be served by an exporter below.
/** Prometheus's own per-target series. */
const prometheusSynthetic = ["up"];
/** The canary and mtail are this project's own (configs/alert-sources.ts); checked by their builders' tests. */
const canaryAndMtail = [
  `${canaryMetrics.queryDuration.name}_bucket`,
  canaryMetrics.connectionAttempts.name,
  canaryMetrics.connectionFailures.name,
  canaryMetrics.certificateNotAfter.name,
  ...Object.values(mtailMetrics).map((m) => m.name),
];
/** node_exporter: checked below against the real one. */
const nodeExporterNames: readonly string[] = nodeMetricNames;
/** Labels every series gets from the scrape, not from the exporter. */
const scrapeLabels = new Set(["instance", "job", "stack"]);

/**
 * The stack's own rendered files for a small local stack: postgresql.conf, the exporter queries, the alert rules and
 * the settings they expect, exactly as `pgstack render` produces them.
 */
const spec = parseStackSpec("real", { target: "local", node: { memory: "2Gi", cpus: 2 } });
const rendered = renderStack(spec);
const memory = memoryPlan(spec);
const rulesInput = alertRulesInput(spec, postgresqlSettingValues(spec, memory), memory.hugePagesMode);
// TCP over TLS only, as the stack's pg_hba.conf: the exporters' launches verify the server (verify-full).
const PG_HBA_CONF = ["local all all scram-sha-256", "hostssl all all 127.0.0.1/32 scram-sha-256", ""].join("\n");

async function scrape(server: HttpServer): Promise<Series[]> {
  const response = await httpGet(`${server.url}/metrics`);
  expect(response.status).toBe(200);
  return parseExposition(response.body);
}

async function query(sql: string, connectionString: string): Promise<void> {
  const client = new Client({ connectionString });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** A password safe inside a SQL literal, a userlist line and a URL. */
const password = (): string => randomBytes(18).toString("hex");

describe("exporters serve every metric the alert rules read", () => {
  let runtime: Runtime;
  let pg: PostgresServer;
  let postgresExporter: HttpServer;
  let pgbouncerExporter: HttpServer;
  let nodeExporter: HttpServer;
  const exposed = new Map<string, Series[]>();
  const served = { postgres: new Set<string>(), pgbouncer: new Set<string>(), node: new Set<string>() };

  beforeAll(async () => {
    runtime = await getRuntime();
    pg = await startPostgres({ runtime, postgresqlConf: rendered.files["postgresql.conf"], pgHbaConf: PG_HBA_CONF });
    const monitorPassword = password();
    const statsPassword = password();

    // The stack's bootstrap: app and monitor roles, the app database, vector and pg_stat_statements.
    const verifier = (pw: string): string => scramVerifier(pw, randomBytes(16));
    await pg.psql(testBootstrapSql(spec, { app: verifier(password()), monitor: verifier(monitorPassword) }));
    await pg.psql(
      [
        "CREATE TABLE items (id bigserial PRIMARY KEY, tier text NOT NULL, embedding vector(3) NOT NULL)",
        "INSERT INTO items (tier, embedding) SELECT 'working', ARRAY[random(), random(), random()]::vector FROM generate_series(1, 500)",
        "CREATE INDEX items_embedding_hnsw_idx ON items USING hnsw (embedding vector_cosine_ops)",
        "ANALYZE items",
      ]
        .map((s) => `${s};`)
        .join("\n"),
      spec.postgres.database,
    );

    const superuserVerifier = await pg.psql("SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'");
    const bouncer = await startPgBouncer({
      runtime,
      ini: [
        "[databases]",
        `app = host=127.0.0.1 port=${pg.port} dbname=app`,
        "[pgbouncer]",
        "auth_type = scram-sha-256",
        "auth_file = /etc/pgbouncer/userlist.txt",
        "pool_mode = transaction",
        `default_pool_size = ${spec.pgbouncer.defaultPoolSize}`,
        `max_client_conn = ${spec.pgbouncer.maxClientConn}`,
        ...Object.entries(pgbouncerIniForExporter).map(([k, v]) => `${k} = ${v}`),
        // TLS on both legs, as the stack's ini: the rig writes the files from its CA.
        "client_tls_sslmode = require",
        "server_tls_sslmode = verify-full",
        "",
      ].join("\n"),
      userlist: `"postgres" "${superuserVerifier}"\n"${statsUser}" "${statsPassword}"\n`,
    });
    // A client through the pool, so that the app pool, its stats and an index scan exist.
    await query(
      "SELECT id FROM items ORDER BY embedding <=> '[0.1,0.2,0.3]' LIMIT 10",
      bouncer.url("app", "postgres", pg.password),
    );

    // The exporters as every target runs them: their rendered launches (flags, DATA_SOURCE_URI/USER, the stats
    // user's connection string), for a placement at these servers; the passwords only in DATA_SOURCE_PASS and
    // PGPASSWORD, as the launches name them.
    const queries = runtime.scratchDir("pgstack-queries");
    expect(rendered.files["postgres-exporter-queries.yaml"]).toBe(postgresExporterQueriesYaml());
    let placed = await renderedFor(spec, {
      ports: { postgres: pg.port, pgbouncer: bouncer.port },
      paths: { postgresExporterQueries: queries.pathOf("queries.yaml"), tlsCa: rigCa(pg) },
    });
    queries.writeFile("queries.yaml", placed.files["postgres-exporter-queries.yaml"], 0o644);
    const started = async (exporter: "postgresExporter" | "pgbouncerExporter" | "nodeExporter"): Promise<HttpServer> => {
      const launched = await startRenderedExporter(runtime, placed, exporter, { monitorPassword, statsPassword });
      placed = launched.rendered;
      return launched.server;
    };
    postgresExporter = await started("postgresExporter");
    pgbouncerExporter = await started("pgbouncerExporter");
    nodeExporter = await started("nodeExporter");
    // No password on any command line (ps shows them to every user of the host).
    for (const server of runningServers()) {
      const argv = fs.readFileSync(`/proc/${server.pid}/cmdline`, "utf8");
      for (const pw of [pg.password, monitorPassword, statsPassword]) expect(argv, server.name).not.toContain(pw);
    }

    for (const [source, server] of [
      ["postgres", postgresExporter],
      ["pgbouncer", pgbouncerExporter],
      ["node", nodeExporter],
    ] as const) {
      for (const s of await scrape(server)) {
        served[source].add(s.name);
        exposed.set(s.name, [...(exposed.get(s.name) ?? []), s]);
      }
    }
  });
  afterAll(stopAll);

  const rules = renderAlertRules(rulesInput);

  it("checks the rules the stack renders", () => {
    expect(rendered.alertRuleGroups).toEqual(rules);
    expect(rendered.files["alert-rules.yaml"]).toBe(renderAlertRulesYaml(rulesInput));
  });
  const recorded = recordedNames(rules);
  const selectors = selectorsOfRules(rules).filter((s) => !recorded.has(s.metric));
  const names = sourceMetricNames(rules);
  const elsewhere = new Set([...prometheusSynthetic, ...canaryAndMtail, ...nodeExporterNames]);
  const exporterNames = names.filter((n) => !elsewhere.has(n));

  it("finds the metric names by parsing the expressions", () => {
    expect(exporterNames.length).toBeGreaterThan(20);
    // Every name listed as checked elsewhere is really used, so the lists cannot rot.
    for (const n of elsewhere) expect(names, n).toContain(n);
  });

  it("postgres_exporter is up and logged in as the monitor role", () => {
    expect(exposed.get("pg_up")?.length).toBe(1);
    expect(served.postgres.has("pgstack_settings_info")).toBe(true);
  });

  it.each(exporterNames)("%s is served by the exporter the rules expect", (name) => {
    const source = name.startsWith("pgbouncer_") ? served.pgbouncer : served.postgres;
    expect(source.has(name), `${name} not in ${name.startsWith("pgbouncer_") ? "pgbouncer" : "postgres"}_exporter's /metrics`).toBe(true);
  });

  it.each([...nodeExporterNames])("%s is served by node_exporter", (name) => {
    expect(served.node.has(name)).toBe(true);
  });

  it("every label a rule matches on exists, and every positive matcher matches a series", () => {
    const problems: string[] = [];
    for (const s of selectors.filter((sel) => exposed.has(sel.metric))) {
      const series = exposed.get(s.metric)!;
      for (const m of s.matchers.filter((x) => !scrapeLabels.has(x.label))) {
        if (!series.some((x) => m.label in x.labels)) problems.push(`${s.rule}: ${s.metric} has no label ${m.label}`);
        else if ((m.op === "=" || m.op === "=~") && !series.some((x) => matches(m, x.labels[m.label]))) {
          problems.push(`${s.rule}: no ${s.metric} series has ${m.label}${m.op}"${m.value}"`);
        }
      }
      for (const label of s.groupedBy.filter((l) => !scrapeLabels.has(l) && l !== "le")) {
        if (!series.some((x) => label in x.labels)) problems.push(`${s.rule}: ${s.metric} is grouped by ${label}, which it lacks`);
      }
    }
    expect(problems).toEqual([]);
  });

  it("reports every setting the drift rule expects exactly as rendered, so a correct server raises no drift", () => {
    const settings = new Map((exposed.get("pgstack_settings_info") ?? []).map((s) => [s.labels.name, s.labels.value]));
    const expected = Object.entries(rulesInput.expectedSettings);
    expect(expected.length).toBeGreaterThan(10);
    expect(Object.fromEntries(expected.map(([name]) => [name, settings.get(name)]))).toEqual(
      Object.fromEntries(expected.map(([name, value]) => [name, String(value)])),
    );
    expect(settings.get("huge_pages")).toBe(rulesInput.hugePages);
  });

  it("reports the HNSW index as valid and not building", () => {
    const settings = new Map((exposed.get("pgstack_settings_info") ?? []).map((s) => [s.labels.name, s.labels.value]));
    expect(["on", "off"]).toContain(settings.get("huge_pages_status"));
    const index = { indexrelname: "items_embedding_hnsw_idx", relname: "items", schemaname: "public", datname: "app" };
    expect(exposed.get("pgstack_hnsw_index_valid")?.map((s) => s.labels)).toEqual([expect.objectContaining(index)]);
    expect(exposed.get("pgstack_hnsw_index_building")?.map((s) => s.labels)).toEqual([expect.objectContaining(index)]);
    expect(served.postgres.has("pgstack_hnsw_index_size_bytes")).toBe(true);
    expect(served.postgres.has("pgstack_pending_restart_settings")).toBe(true);
  });

  it("has every collector succeed, including stat_statements, and no custom query fail", async () => {
    const body = (await httpGet(`${postgresExporter.url}/metrics`)).body;
    expect(body.match(/^pg_scrape_collector_success\{collector="[^"]+"\} 0$/gm) ?? []).toEqual([]);
    expect(body).toMatch(/^pg_scrape_collector_success\{collector="stat_statements"\} 1$/m);
    expect(body).toMatch(/^pg_exporter_last_scrape_error(\{[^}]*\})? 0$/m);
    expect(body).toMatch(/^pg_stat_statements_calls_total\{/m);
  });

  it("a real Prometheus loads the rendered config and rules, and every rule evaluates without error", async () => {
    const target = (s: HttpServer): string => s.url.replace("http://", "");
    const prometheus = await startPrometheus({
      runtime,
      configYaml: renderPrometheusConfigYaml({
        stack: "real",
        targets: { postgres: [target(postgresExporter)], pgbouncer: [target(pgbouncerExporter)], node: [target(nodeExporter)] },
        ruleFiles: ["alerts.yml"],
        scrapeInterval: "1s",
        scrapeTimeout: "1s",
        evaluationInterval: "1s",
      }),
      ruleFiles: { "alerts.yml": rendered.files["alert-rules.yaml"] },
    });
    const api = async <T>(path: string): Promise<T> => {
      const response = await httpGet(`${prometheus.url}${path}`);
      expect(response.status, response.body).toBe(200);
      return (JSON.parse(response.body) as { data: T }).data;
    };
    const samples = async (expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> =>
      (await api<{ result: { metric: Record<string, string>; value: [number, string] }[] }>(`/api/v1/query?query=${encodeURIComponent(expr)}`)).result;
    const records = [
      "pgbouncer:pool_utilization:ratio",
      "pgbouncer:client_connections:utilization_ratio",
      "pg:connections:utilization_ratio",
      "pg:cache_hit:ratio",
      "instance:node_memory_utilization:ratio",
      "instance:node_cpu_utilization:ratio",
    ];
    // Until every target has been scraped twice (rate() needs two samples) and the rules evaluated since.
    const deadline = Date.now() + 90_000;
    const missing = async (): Promise<string[]> => {
      const out: string[] = [];
      for (const r of records) if ((await samples(r)).length === 0) out.push(r);
      return out;
    };
    while ((await missing()).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 1_000));
    expect(await missing(), "recording rules without samples").toEqual([]);

    type RuleState = { name: string; health: string; lastError?: string };
    const loaded = (await api<{ groups: { rules: RuleState[] }[] }>("/api/v1/rules")).groups.flatMap((g) => g.rules);
    expect(loaded.length).toBe(rules.groups.reduce((n, g) => n + g.rules.length, 0));
    expect(loaded.filter((r) => r.health !== "ok").map((r) => `${r.name}: ${r.health} ${r.lastError ?? ""}`)).toEqual([]);

    expect(await samples('up{stack="real"} == 0')).toEqual([]);
    // The joins produce series: pool utilization of the app pool, connections against max_connections, …
    expect((await samples("pgbouncer:pool_utilization:ratio")).map((s) => s.metric)).toContainEqual(
      expect.objectContaining({ database: "app", user: "postgres", stack: "real" }),
    );
    const [connections] = await samples("pg:connections:utilization_ratio");
    expect(Number(connections.value[1])).toBeGreaterThan(0);
    expect(Number(connections.value[1])).toBeLessThan(1);

    // Nothing is wrong with this cluster except what is true of it: no canary or mtail is scraped, the host may
    // have no huge pages reserved, and the host's own load is not ours to judge.
    const alerts = await samples("ALERTS");
    const allowed = new Set(["ScrapeJobAbsent", "PostgresHugePagesNotInUse", "HostCpuUsageHigh", "HostMemoryUsageHigh", "HostDiskUsageHigh"]);
    expect(alerts.map((a) => a.metric.alertname).filter((n) => !allowed.has(n))).toEqual([]);
    expect(alerts.filter((a) => a.metric.alertname === "ScrapeJobAbsent").map((a) => a.metric.job).sort()).toEqual(["canary", "mtail"]);
  });
  // Runs last: an INVALID index would make the Prometheus test above see a pending alert.
  it("reports an HNSW index as building while CREATE INDEX CONCURRENTLY waits, and INVALID (not building) once it failed", async () => {
    const indexState = async (): Promise<{ valid?: string; building?: string }> => {
      const body = (await httpGet(`${postgresExporter.url}/metrics`)).body;
      const value = (metric: string): string | undefined =>
        new RegExp(`^${metric}\\{[^}]*indexrelname="items_embedding_l2_idx"[^}]*\\} (\\S+)$`, "m").exec(body)?.[1];
      return { valid: value("pgstack_hnsw_index_valid"), building: value("pgstack_hnsw_index_building") };
    };
    // An open writing transaction makes the concurrent build wait after it has created the (invalid) index.
    const blocker = new Client({ connectionString: pg.url(spec.postgres.database) });
    const builder = new Client({ connectionString: pg.url(spec.postgres.database) });
    await blocker.connect();
    await builder.connect();
    try {
      await blocker.query("BEGIN");
      await blocker.query("INSERT INTO items (tier, embedding) VALUES ('working', '[1,2,3]')");
      await builder.query("SET statement_timeout = '6s'");
      const build = builder
        .query("CREATE INDEX CONCURRENTLY items_embedding_l2_idx ON items USING hnsw (embedding vector_l2_ops)")
        .then(() => "built", (error: Error) => error.message);
      let during = await indexState();
      for (let i = 0; i < 40 && during.building !== "1"; i++) {
        await new Promise((r) => setTimeout(r, 100));
        during = await indexState();
      }
      expect(during).toEqual({ valid: "0", building: "1" });
      expect(await build).toMatch(/statement timeout/);
      expect(await indexState()).toEqual({ valid: "0", building: "0" });
    } finally {
      await blocker.query("ROLLBACK");
      await blocker.end();
      await builder.end();
      await pg.psql("DROP INDEX IF EXISTS items_embedding_l2_idx", spec.postgres.database);
    }
  });
});
