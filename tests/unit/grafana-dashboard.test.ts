/**
 * The Grafana dashboard: valid, deterministic JSON whose panels have ids, a place on the grid and queries; every
 * query parses with Prometheus's own PromQL grammar (@prometheus-io/lezer-promql) and reads only metric names that
 * exist — those the alert rules read (proven against the real exporters), the exporters' custom queries, the canary's
 * and mtail's contracts, or the short, explicit list of dashboard-only exporter metrics.
 */
import { describe, expect, it } from "vitest";
import { defaultAlertThresholds, recordingRules, renderAlertRules } from "../../configs/alerts";
import { canaryMetricNames } from "../../configs/canary";
import {
  customQueryMetricNames,
  dashboardOnlyExporterMetrics,
  dashboardQueries,
  grafanaDashboardUid,
  grafanaDashboardUidFor,
  renderGrafanaDashboard,
  renderGrafanaDashboardJson,
  type GrafanaPanel,
} from "../../configs/grafana-dashboard";
import { mtailMetricNames } from "../../configs/mtail";
import { defaultScrapeJobNames } from "../../configs/scrape";
import { selectorsIn, sourceMetricNames } from "../promtool/metric-names";

const rules = renderAlertRules({
  stack: "unit",
  thresholds: defaultAlertThresholds,
  jobs: defaultScrapeJobNames,
  runbookBaseUrl: "https://example.test/runbooks.md",
  expectedSettings: {},
  hugePages: "try",
  pgbouncer: { maxClientConn: 100, defaultPoolSize: 20 },
});
const ruleNames = new Set(sourceMetricNames(rules));
const known = new Set([...ruleNames, ...customQueryMetricNames(), ...canaryMetricNames(), ...mtailMetricNames(), ...dashboardOnlyExporterMetrics]);

/** Grafana's own variables, replaced as Grafana would before the query reaches Prometheus. */
function asPromQL(expr: string): string {
  return expr.replace(/\$__rate_interval/g, "1m").replace(/\$__interval/g, "15s").replace(/\$stack/g, "unit");
}

const dashboard = renderGrafanaDashboard({ stack: "staging" });
const json = renderGrafanaDashboardJson({ stack: "staging" });
const parsed = JSON.parse(json) as { panels: GrafanaPanel[]; templating: { list: Record<string, unknown>[] }; uid: string; schemaVersion: number };
const contentPanels = parsed.panels.filter((p) => p.type !== "row");

describe("Grafana dashboard JSON", () => {
  it("is the same bytes every time, keys sorted at every level", () => {
    expect(renderGrafanaDashboardJson({ stack: "staging" })).toBe(json);
    const keysSorted = (v: unknown): boolean =>
      Array.isArray(v)
        ? v.every(keysSorted)
        : v !== null && typeof v === "object"
          ? Object.keys(v).join("\0") === Object.keys(v).sort().join("\0") && Object.values(v).every(keysSorted)
          : true;
    expect(keysSorted(parsed)).toBe(true);
    expect(json.endsWith("}\n")).toBe(true);
  });

  it("has a stable uid and a schema version Grafana 10/11 reads", () => {
    expect(parsed.uid).toBe("pgstack-staging");
    expect(renderGrafanaDashboard().uid).toBe(grafanaDashboardUid);
    expect(parsed.schemaVersion).toBe(39);
  });

  it("has a uid and title of its own per stack, so staging and prod can share one Grafana", () => {
    const stacks = ["staging", "prod", "dev", "perf", "a.b", "a-b", "x".repeat(63), `${"x".repeat(62)}y`];
    const uids = stacks.map(grafanaDashboardUidFor);
    expect(new Set(uids).size).toBe(stacks.length);
    for (const uid of uids) expect(uid).toMatch(/^[A-Za-z0-9_-]{1,40}$/);
    expect(renderGrafanaDashboard({ stack: "prod" }).title).toBe("pgvector-stack prod");
    expect(renderGrafanaDashboard({ stack: "staging" }).title).not.toBe(renderGrafanaDashboard({ stack: "prod" }).title);
  });

  it("templates the data source and the stack", () => {
    const [ds, stack] = parsed.templating.list;
    expect(ds).toMatchObject({ name: "datasource", type: "datasource", query: "prometheus" });
    expect(stack).toMatchObject({ name: "stack", type: "query", datasource: { type: "prometheus", uid: "${datasource}" }, definition: "label_values(up, stack)" });
    expect(stack.current).toEqual({ selected: true, text: "staging", value: "staging" });
    expect(JSON.parse(renderGrafanaDashboardJson()).templating.list[1].current).toEqual({});
  });

  it("gives every panel a unique id, a grid place without overlaps, and queries on the templated data source", () => {
    const ids = parsed.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.every((id) => Number.isInteger(id) && id > 0)).toBe(true);
    const cells = new Set<string>();
    for (const p of parsed.panels) {
      const { x, y, w, h } = p.gridPos;
      expect(x >= 0 && w > 0 && x + w <= 24 && y >= 0 && h > 0, `${p.title} gridPos`).toBe(true);
      for (let i = x; i < x + w; i++) {
        for (let j = y; j < y + h; j++) {
          expect(cells.has(`${i},${j}`), `${p.title} overlaps at ${i},${j}`).toBe(false);
          cells.add(`${i},${j}`);
        }
      }
    }
    for (const p of contentPanels) {
      expect(p.datasource, p.title).toEqual({ type: "prometheus", uid: "${datasource}" });
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      const refIds = p.targets!.map((t) => t.refId);
      expect(new Set(refIds).size, p.title).toBe(refIds.length);
      for (const t of p.targets!) expect(t.expr.length, `${p.title} ${t.refId}`).toBeGreaterThan(0);
    }
  });

  it("covers what the issue asks for", () => {
    const titles = contentPanels.map((p) => p.title);
    for (const wanted of [
      "Pool utilization",
      "Client waits",
      "Queries and transactions per second (PgBouncer)",
      "Canary latency by scenario",
      "Cache hit ratio",
      "Index hit ratio",
      "HNSW index sizes",
      "PostgreSQL connections vs max_connections",
      "Slow queries per minute",
    ]) {
      expect(titles).toContain(wanted);
    }
    const latency = contentPanels.find((p) => p.title === "Canary latency by scenario")!;
    expect(latency.targets!.map((t) => t.expr.split(",")[0])).toEqual(["histogram_quantile(0.5", "histogram_quantile(0.95", "histogram_quantile(0.99"]);
  });

  it("shows the filesystems the disk alert watches: the data volume on the container targets, every real one else", () => {
    const diskPanel = (mountpoints?: readonly string[]): GrafanaPanel =>
      renderGrafanaDashboard({ diskMountpoints: mountpoints }).panels.find((p) => p.title === "Filesystems full")!;
    const containers = diskPanel(["/var/lib/postgresql/data"]);
    for (const t of containers.targets!) expect(t.expr.match(/node_filesystem_\w+\{[^}]*\}/g)!.every((sel) => sel.includes('mountpoint=~"/var/lib/postgresql/data"'))).toBe(true);
    expect(containers.description).toContain("/var/lib/postgresql/data");
    const host = diskPanel();
    expect(host.targets![0].expr).toContain('fstype!~"tmpfs|');
    expect(host.targets![0].expr).not.toContain("mountpoint");
  });
});

describe("every panel's PromQL", () => {
  const queries = dashboardQueries(dashboard);

  it.each(queries.map((q) => [`${q.panel} ${q.refId}`, q.expr]))("%s parses and reads known metrics of the chosen stack", (_name, expr) => {
    const uses = selectorsIn(asPromQL(expr), _name);
    expect(uses.length).toBeGreaterThan(0);
    for (const use of uses) {
      expect(known.has(use.metric), `${use.metric} is neither in the rules, the custom queries, the canary/mtail contracts nor dashboardOnlyExporterMetrics`).toBe(true);
      expect(use.matchers, `${use.metric} must select the stack`).toContainEqual({ label: "stack", op: "=", value: "unit" });
    }
  });

  it("uses no recording rule, so it works where the rules are not loaded", () => {
    const recorded = new Set<string>(Object.values(recordingRules));
    for (const q of queries) for (const use of selectorsIn(asPromQL(q.expr))) expect(recorded.has(use.metric), use.metric).toBe(false);
  });

  it("keeps dashboardOnlyExporterMetrics minimal: each one used, none already read by a rule", () => {
    const used = new Set(queries.flatMap((q) => selectorsIn(asPromQL(q.expr)).map((u) => u.metric)));
    for (const name of dashboardOnlyExporterMetrics) {
      expect(used.has(name), `${name} is listed but unused`).toBe(true);
      expect(ruleNames.has(name), `${name} is read by a rule already`).toBe(false);
    }
  });

  it("reads the custom query metrics postgres_exporter derives from configs/exporters.ts", () => {
    expect(customQueryMetricNames()).toEqual(
      expect.arrayContaining(["pgstack_hnsw_index_size_bytes", "pgstack_hnsw_index_valid", "pgstack_settings_info"]),
    );
    expect(customQueryMetricNames()).not.toContain("pgstack_hnsw_index_datname");
  });

  it("lets the stack variable's query read an existing series", () => {
    expect(ruleNames.has("up")).toBe(true);
  });
});
