/**
 * The local cluster's wiring as plain data: passwords never leak into a file or a command line, PgBouncer points at
 * this cluster's PostgreSQL, Prometheus scrapes every job the rendered rules guard (the exporters, the canary and
 * mtail) and labels every target with the stack the rules select on.
 */
import yaml from "js-yaml";
import { describe, expect, it } from "vitest";
import { renderStack } from "../../configs/render";
import { monitorRole, statsUser } from "../../configs/roles";
import { isScramVerifier } from "../../configs/scram";
import { parseStackSpec } from "../../configs/spec";
import {
  alertRuleGroupNames,
  alertRulesFile,
  canaryLaunch,
  clusterBootstrapSql,
  clusterPgBouncerIni,
  clusterPrometheusYaml,
  clusterUserlist,
  clusterVerifiers,
  connectionUrl,
  generatePasswords,
  localMonitoring,
  maskPasswords,
  monitoringProblems,
  passwordList,
  pgbouncerExporterLaunch,
  postgresExporterLaunch,
  promDuration,
} from "../../local/cluster-files";

const spec = parseStackSpec("perf", { target: "local", node: { memory: "2Gi", cpus: 2 }, postgres: { hugePages: "on" } });
const rendered = renderStack(spec);
const passwords = generatePasswords();
const verifiers = clusterVerifiers(spec, passwords);

describe("generated passwords", () => {
  it("are 32 URL-safe characters, all different, new every time", () => {
    const all = passwordList(passwords);
    for (const pw of all) expect(pw).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(new Set(all).size).toBe(4);
    expect(passwordList(generatePasswords())).not.toEqual(all);
  });

  it("are masked wherever they appear, raw or percent-encoded", () => {
    const url = connectionUrl("app", "p@ss/w:rd", 5432, "app");
    expect(url).toBe("postgresql://app:p%40ss%2Fw%3Ard@127.0.0.1:5432/app");
    expect(maskPasswords(`failed: ${url} and p@ss/w:rd`, ["p@ss/w:rd"])).toBe("failed: postgresql://app:***@127.0.0.1:5432/app and ***");
  });
});

describe("verifiers, bootstrap and userlist", () => {
  it("give every role a SCRAM verifier and hold no password", () => {
    expect(Object.keys(verifiers).sort()).toEqual(["app", monitorRole, "postgres", statsUser].sort());
    for (const v of Object.values(verifiers)) expect(isScramVerifier(v)).toBe(true);
    const texts = [clusterBootstrapSql(spec, verifiers), clusterUserlist(spec, verifiers)];
    for (const text of texts) for (const pw of passwordList(passwords)) expect(text).not.toContain(pw);
  });

  it("bootstrap creates the roles and the app database with pgvector, and aligns the superuser's verifier with PgBouncer's", () => {
    const sql = clusterBootstrapSql(spec, verifiers);
    expect(sql).toContain(`ALTER ROLE postgres PASSWORD '${verifiers.postgres}';`);
    expect(sql).toContain(`ALTER ROLE "app" WITH LOGIN PASSWORD '${verifiers.app}';`);
    expect(sql).toMatch(/\\connect app\nCREATE EXTENSION IF NOT EXISTS vector;/);
    expect(sql).toContain(`GRANT pg_monitor TO`);
  });

  it("userlist lists the app, stats and admin users with the same verifiers PostgreSQL gets", () => {
    const lines = clusterUserlist(spec, verifiers).trim().split("\n");
    expect(lines).toEqual([
      `"app" "${verifiers.app}"`,
      `"${statsUser}" "${verifiers[statsUser]}"`,
      `"postgres" "${verifiers.postgres}"`,
    ]);
  });
});

describe("PgBouncer ini", () => {
  it("is the stack's rendered ini with this cluster's PostgreSQL as the server", () => {
    const ini = clusterPgBouncerIni(spec, 41234);
    expect(ini).toContain("app = host=127.0.0.1 port=41234 dbname=app");
    // Everything else is exactly what configs/ renders for the stack.
    expect(ini.replace("port=41234", "port=5432")).toBe(rendered.files["pgbouncer.ini"]);
  });
});

describe("exporters", () => {
  it("postgres_exporter: rendered flags with the real queries path, no listen address, the password only in DATA_SOURCE_NAME", () => {
    const launch = postgresExporterLaunch(spec, { postgresPort: 40001, queriesPath: "/tmp/pgstack/x/q.yaml", monitorPassword: passwords.monitor });
    expect(launch.args).toContain("--extend.query-path=/tmp/pgstack/x/q.yaml");
    expect(launch.args.some((a) => a.startsWith("--web.listen-address"))).toBe(false);
    expect(launch.args.join(" ")).not.toContain(passwords.monitor);
    expect(launch.args).toEqual(
      rendered.exporters.postgresExporterArgs.map((a) => (a.startsWith("--extend.query-path=") ? "--extend.query-path=/tmp/pgstack/x/q.yaml" : a)),
    );
    expect(launch.dataSourceName).toBe(
      `postgresql://${monitorRole}:${passwords.monitor}@127.0.0.1:40001/app?sslmode=disable&application_name=pgstack-postgres-exporter`,
    );
  });

  it("pgbouncer_exporter: the stats user on this PgBouncer's admin console, password in PGPASSWORD, not on the command line", () => {
    const launch = pgbouncerExporterLaunch({ pgbouncerPort: 40002, statsPassword: passwords.stats });
    expect(launch.args).toContain(
      `--pgBouncer.connectionString=postgres://${statsUser}@127.0.0.1:40002/pgbouncer?sslmode=disable&application_name=pgstack-pgbouncer-exporter`,
    );
    expect(launch.args.join(" ")).not.toContain(passwords.stats);
    expect(launch.args.some((a) => a.startsWith("--web.listen-address"))).toBe(false);
    expect(launch.env).toEqual({ PGPASSWORD: passwords.stats });
  });
});

describe("the canary", () => {
  it("canary: `pgstack canary` on its loopback port, the URLs (with the app password) only in its environment", () => {
    const pooledUrl = connectionUrl("app", passwords.app, 40003, "app");
    const directUrl = connectionUrl("app", passwords.app, 40001, "app");
    const launch = canaryLaunch({ port: 40005, pooledUrl, directUrl, intervalMs: 10_000 });
    expect(launch.args).toEqual(["canary", "--listen", "127.0.0.1:40005", "--interval", "10s"]);
    expect(launch.env).toEqual({ PGSTACK_POOLED_URL: pooledUrl, PGSTACK_DIRECT_URL: directUrl });
    expect(canaryLaunch({ port: 1, pooledUrl, directUrl, intervalMs: 1_500 }).args).toContain("1500ms");
  });
});

describe("Prometheus config", () => {
  const ports = { postgresExporter: 1, pgbouncerExporter: 2, nodeExporter: 3, canary: 4, mtail: 5 };
  const config = yaml.load(clusterPrometheusYaml(spec, ports)) as PrometheusYaml;
  interface PrometheusYaml {
    global: Record<string, string>;
    rule_files: string[];
    scrape_configs: { job_name: string; static_configs: { targets: string[]; labels: Record<string, string> }[] }[];
  }

  it("scrapes every job the rendered rules guard, each with the stack label the rules select on", () => {
    expect(config.scrape_configs.map((c) => [c.job_name, c.static_configs[0].targets, c.static_configs[0].labels])).toEqual([
      ["postgres", ["127.0.0.1:1"], { stack: "perf" }],
      ["pgbouncer", ["127.0.0.1:2"], { stack: "perf" }],
      ["node", ["127.0.0.1:3"], { stack: "perf" }],
      ["canary", ["127.0.0.1:4"], { stack: "perf" }],
      ["mtail", ["127.0.0.1:5"], { stack: "perf" }],
    ]);
    expect(rendered.files["alert-rules.yaml"]).toContain('stack="perf"');
    // The absent-job guards of a local stack name exactly these jobs.
    const absent = [...rendered.files["alert-rules.yaml"].matchAll(/absent\(up\{job="([a-z]+)"/g)].map((m) => m[1]).sort();
    expect(absent).toEqual(config.scrape_configs.map((c) => c.job_name).sort());
  });

  it("loads the rendered rules file and scrapes every 5 s", () => {
    expect(config.rule_files).toEqual([alertRulesFile]);
    expect(config.global).toEqual({ scrape_interval: "5s", evaluation_interval: "5s", scrape_timeout: "4s" });
  });

  it("takes shorter intervals for the alert tests, the scrape timeout 80 % of the interval", () => {
    const fast = yaml.load(clusterPrometheusYaml(spec, ports, { scrapeMs: 2_000, evaluationMs: 1_000, canaryMs: 1_000 })) as PrometheusYaml;
    expect(fast.global).toEqual({ scrape_interval: "2s", evaluation_interval: "1s", scrape_timeout: "1600ms" });
  });

  it.each([
    [5_000, "5s"],
    [60_000, "60s"],
    [1_500, "1500ms"],
    [250, "250ms"],
  ])("renders %i ms as %s", (ms, text) => {
    expect(promDuration(ms)).toBe(text);
  });

  it("refuses intervals that are not whole milliseconds or too short, naming each", () => {
    expect(monitoringProblems(localMonitoring)).toEqual([]);
    expect(monitoringProblems({ scrapeMs: 500, evaluationMs: 0.5, canaryMs: 50 })).toEqual([
      "monitoring.scrapeMs 500 must be a whole number ≥ 1000",
      "monitoring.evaluationMs 0.5 must be a whole number ≥ 100",
      "monitoring.canaryMs 50 must be a whole number ≥ 100",
    ]);
    expect(() => promDuration(0)).toThrow(/whole number of milliseconds/);
  });

  it("knows the rule groups Prometheus must report loaded", () => {
    const names = alertRuleGroupNames(rendered);
    expect(names.length).toBeGreaterThan(3);
    for (const name of names) expect(rendered.files["alert-rules.yaml"]).toContain(`name: ${name}`);
  });
});
