import yaml from "js-yaml";
import { describe, expect, it } from "vitest";
import { canaryMetrics, mtailMetrics, nodeMetricNames } from "../../configs/alert-sources";
import { renderAlertRules } from "../../configs/alerts";
import {
  nodeExporterArgs,
  nodeExporterCollectors,
  monitoringVersions,
  monitorRole,
  pgbouncerExporterCommand,
  pgbouncerIniForExporter,
  postgresExporterCollectors,
  postgresExporterCommand,
  postgresExporterQueries,
  postgresExporterQueriesYaml,
  statsUser,
  watchedSettings,
} from "../../configs/exporters";
import * as roles from "../../configs/roles";
import { specFor } from "./spec-fixture";
import { defaultImages } from "../../configs/spec";
import { promtoolRulesInput } from "../promtool/fixture";
import { sourceMetricNames } from "../promtool/metric-names";

describe("postgres_exporter", () => {
  const command = postgresExporterCommand({ database: "app", queriesPath: "/etc/pgstack/queries.yaml", caPath: "/etc/pgstack/tls/ca.crt" });

  it("turns on every collector the rules and runbooks need by name, default-on ones too", () => {
    expect(command.args).toEqual([
      "--web.listen-address=:9187",
      "--extend.query-path=/etc/pgstack/queries.yaml",
      "--collector.database",
      "--collector.long_running_transactions",
      "--collector.postmaster",
      "--collector.stat_database",
      "--collector.stat_statements",
      "--collector.statio_user_tables",
      "--log.level=info",
    ]);
    expect(Object.keys(postgresExporterCollectors).length).toBe(6);
  });

  it("leaves stat_statements off when the stack has no pg_stat_statements", () => {
    const without = postgresExporterCommand({ database: "app", queriesPath: "/q.yaml", statStatements: false, caPath: "/ca.crt" });
    expect(without.args).not.toContain("--collector.stat_statements");
  });

  it("logs in as pgstack_monitor to the application database, the password only through DATA_SOURCE_PASS(_FILE)", () => {
    expect(command.env).toEqual({
      DATA_SOURCE_URI: "127.0.0.1:5432/app?sslmode=verify-full&sslrootcert=/etc/pgstack/tls/ca.crt&application_name=pgstack-postgres-exporter",
      DATA_SOURCE_USER: "pgstack_monitor",
    });
    expect(command.passwordEnv).toBe("DATA_SOURCE_PASS");
    expect(command.passwordFileEnv).toBe("DATA_SOURCE_PASS_FILE");
    const custom = postgresExporterCommand({ database: "vectors", host: "db", port: 6543, queriesPath: "/q", listenAddress: "127.0.0.1:9999", caPath: "/run/my ca&x.crt" });
    // verify-full with the CA; what would end or bend the query value is escaped.
    expect(custom.env.DATA_SOURCE_URI).toBe("db:6543/vectors?sslmode=verify-full&sslrootcert=/run/my%20ca%26x.crt&application_name=pgstack-postgres-exporter");
    expect(custom.args[0]).toBe("--web.listen-address=127.0.0.1:9999");
  });

  it("uses the roles configs/roles.ts creates: pg_monitor only, no role-level settings that would read as drift", () => {
    expect(monitorRole).toBe(roles.monitorRole);
    expect(statsUser).toBe(roles.statsUser);
    const sql = roles.renderRolesSql(roles.rolePlan(specFor({ target: "local" })), "app");
    expect(sql).toContain('GRANT pg_monitor TO "pgstack_monitor"');
    expect(sql).toContain("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
    expect(sql).not.toMatch(/ALTER ROLE "pgstack_monitor" SET|[^O]SUPERUSER/);
  });
});

describe("custom queries", () => {
  const queries = postgresExporterQueries();
  const metricNames = Object.entries(queries).flatMap(([ns, q]) =>
    q.metrics.flatMap((m) => Object.entries(m).filter(([, v]) => v.usage !== "LABEL").map(([col]) => `${ns}_${col}`)),
  );

  it("serve every pgstack_ metric the rules read (canary and mtail aside)", () => {
    const synthetic = new Set<string>([
      `${canaryMetrics.queryDuration.name}_bucket`,
      canaryMetrics.connectionAttempts.name,
      canaryMetrics.connectionFailures.name,
      canaryMetrics.certificateNotAfter.name,
      mtailMetrics.slowQueries.name,
      mtailMetrics.logLines.name,
      mtailMetrics.authFailures.name,
      mtailMetrics.pgbouncerLogLines.name,
    ]);
    const used = sourceMetricNames(renderAlertRules(promtoolRulesInput)).filter((n) => n.startsWith("pgstack_") && !synthetic.has(n));
    expect(used.length).toBeGreaterThan(0);
    for (const name of used) expect(metricNames, name).toContain(name);
  });

  it("are YAML the exporter reads: one mapping per query with query, master and metrics", () => {
    const text = postgresExporterQueriesYaml();
    expect(text).toBe(postgresExporterQueriesYaml());
    const doc = yaml.load(text) as Record<string, { query: string; master: boolean; metrics: Record<string, { usage: string }>[] }>;
    expect(Object.keys(doc).sort()).toEqual(["pgstack_hnsw_index", "pgstack_pending_restart", "pgstack_settings"]);
    for (const [name, q] of Object.entries(doc)) {
      expect(q.master, name).toBe(true);
      expect(q.query, name).toMatch(/^SELECT /);
      for (const m of q.metrics) {
        expect(Object.keys(m)).toHaveLength(1);
        expect(["LABEL", "GAUGE", "COUNTER"]).toContain(Object.values(m)[0].usage);
      }
    }
  });

  it("report exactly the watched settings, memory in bytes and time in milliseconds", () => {
    const q = queries.pgstack_settings.query;
    for (const s of watchedSettings) expect(q).toContain(`'${s}'`);
    expect(q).toContain("WHEN '8kB' THEN 8192");
    expect(q).toContain("WHEN 's' THEN 1000");
    expect([...watchedSettings].sort()).toEqual(watchedSettings);
    expect(new Set(watchedSettings).size).toBe(watchedSettings.length);
    expect(watchedSettings).toContain("huge_pages_status");
  });

  it("never take a lock that a REINDEX could block: index size from relpages, not pg_relation_size()", () => {
    expect(queries.pgstack_hnsw_index.query).not.toMatch(/pg_relation_size|pg_total_relation_size/);
    expect(queries.pgstack_hnsw_index.query).toContain("pg_stat_progress_create_index");
  });
});

describe("pgbouncer_exporter", () => {
  it("reads PgBouncer's admin console as the stats user, the password only through PGPASSWORD", () => {
    const command = pgbouncerExporterCommand({ caPath: "/etc/pgstack/tls/ca.crt" });
    expect(command.args).toEqual([
      "--web.listen-address=:9127",
      "--pgBouncer.connectionString=postgres://pgstack_stats@127.0.0.1:6432/pgbouncer?sslmode=verify-full&sslrootcert=/etc/pgstack/tls/ca.crt&application_name=pgstack-pgbouncer-exporter",
      "--log.level=info",
    ]);
    expect(command.env).toEqual({});
    expect(command.passwordEnv).toBe("PGPASSWORD");
    expect(statsUser).toBe("pgstack_stats");
  });

  it("needs stats_users and extra_float_digits ignored in pgbouncer.ini", () => {
    expect(pgbouncerIniForExporter).toEqual({ stats_users: "pgstack_stats", ignore_startup_parameters: "extra_float_digits" });
  });
});

describe("node_exporter", () => {
  it("turns every collector off but those the rules and runbooks use, named explicitly", () => {
    const args = nodeExporterArgs();
    expect(args[0]).toBe("--collector.disable-defaults");
    expect(args.filter((a) => a.startsWith("--collector.") && a !== "--collector.disable-defaults").sort()).toEqual(
      Object.keys(nodeExporterCollectors).map((c) => `--collector.${c}`).sort(),
    );
    expect(args.some((a) => a.startsWith("--web.listen-address") || a.startsWith("--path."))).toBe(false);
  });

  it("has a collector for every node_exporter metric the rules read", () => {
    const collectorOf = (metric: string): string =>
      metric.startsWith("node_cpu_") ? "cpu" : metric.startsWith("node_memory_") ? "meminfo" : metric.startsWith("node_filesystem_") ? "filesystem" : "?";
    for (const metric of nodeMetricNames) expect(Object.keys(nodeExporterCollectors)).toContain(collectorOf(metric));
  });
});

describe("monitoringVersions", () => {
  it("pins PgBouncer 1.24 with postgres_exporter 0.17 and pgbouncer_exporter 0.10", () => {
    expect(monitoringVersions.pgbouncer.version).toMatch(/^1\.24\./);
    expect(monitoringVersions.postgresExporter.version).toBe("0.17.1");
    expect(monitoringVersions.pgbouncerExporter.version).toBe("0.10.2");
    expect(monitoringVersions.prometheus.version).toBe("2.53");
  });

  // configs/spec.ts keeps the stack's default images; they must be the same releases as this set.
  it.each([
    ["pgbouncer", "pgbouncer"],
    ["postgresExporter", "postgresExporter"],
    ["pgbouncerExporter", "pgbouncerExporter"],
    ["prometheus", "prometheus"],
    ["nodeExporter", "nodeExporter"],
    ["mtail", "mtail"],
  ] as const)("%s image tag agrees with defaultImages.%s", (pin, image) => {
    const tag = (ref: string): string => ref.slice(ref.lastIndexOf(":") + 1);
    expect(tag(defaultImages[image])).toBe(tag(monitoringVersions[pin].image));
  });
});
