import { describe, expect, it } from "vitest";
import { ownedSettings } from "../../configs/owned-settings";
import { pg17SettingNames } from "../../configs/pg17-settings";
import { privateNetworks, renderPgHba, renderPgIdent } from "../../configs/pg-hba";
import {
  confValue,
  logLinePattern,
  maxWalSize,
  parallelism,
  postgresqlSettings,
  postgresqlSettingValues,
  renderPostgresqlConf,
} from "../../configs/postgresql";
import { renderRolesSql, rolePlan } from "../../configs/roles";
import { bytes } from "../../configs/units";
import { specFor, stagingSpec } from "./spec-fixture";

/** name → value of the active (uncommented) lines, as PostgreSQL would read them (last one wins). */
function parseConf(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    const match = /^([a-z_.0-9]+) = ('(?:[^']|'')*'|\S+)/.exec(line);
    if (match) out.set(match[1], match[2].replace(/^'(.*)'$/, "$1").replace(/''/g, "'"));
  }
  return out;
}

describe("postgresql.conf: the guide's values", () => {
  const conf = parseConf(renderPostgresqlConf(stagingSpec));

  it.each([
    // Memory Optimization (32GB system)
    ["shared_buffers", "8GB"],
    ["effective_cache_size", "24GB"],
    ["work_mem", "256MB"],
    ["maintenance_work_mem", "2GB"],
    ["temp_buffers", "128MB"],
    ["dynamic_shared_memory_type", "posix"],
    ["hash_mem_multiplier", "2.0"],
    // PostgreSQL Settings / Rust Application Layer
    ["max_connections", "200"],
    ["statement_timeout", "5min"],
    // Slow Queries: > 100ms, log and investigate
    ["log_min_duration_statement", "100ms"],
    // Security: SCRAM-SHA-256
    ["password_encryption", "scram-sha-256"],
    ["shared_preload_libraries", "pg_stat_statements"],
  ])("%s = %s", (name, value) => {
    expect(conf.get(name)).toBe(value);
  });

  it("huge_pages: the guide's try where pages may be missing; on where Kubernetes requests them", () => {
    expect(parseConf(renderPostgresqlConf(specFor({ target: "docker" }))).get("huge_pages")).toBe("try");
    expect(conf.get("huge_pages")).toBe("on");
  });

  it("owns listen_addresses and port", () => {
    expect(conf.get("listen_addresses")).toBe("*");
    expect(conf.get("port")).toBe("5432");
    expect(parseConf(renderPostgresqlConf(specFor({ target: "local" }))).get("listen_addresses")).toBe("127.0.0.1");
  });
});

describe("postgresql.conf: form", () => {
  const text = renderPostgresqlConf(stagingSpec);

  it("is deterministic: same spec, same bytes; user settings in any order give the same file", () => {
    expect(renderPostgresqlConf(stagingSpec)).toBe(text);
    const a = specFor({ postgres: { settings: { random_page_cost: "1.5", default_statistics_target: "200" } } });
    const b = specFor({ postgres: { settings: { default_statistics_target: "200", random_page_cost: "1.5" } } });
    expect(renderPostgresqlConf(a)).toBe(renderPostgresqlConf(b));
  });

  it("gives every stack setting a one-line reason", () => {
    const settingLines = text.split("\n").filter((l) => /^[a-z]/.test(l));
    expect(settingLines.length).toBe(postgresqlSettings(stagingSpec).length);
    for (const line of settingLines) expect(line).toMatch(/^[a-z_.0-9]+ = \S.*\s{2}# \S/);
  });

  it("carries the worst-case warning as comments", () => {
    expect(text).toMatch(/^# WARNING: memory worst case 110 GiB exceeds node RAM 32 GiB/m);
  });

  it("sets only names PostgreSQL 17 knows, each once", () => {
    const names = postgresqlSettings(stagingSpec).map((s) => s.name);
    expect(new Set(names).size).toBe(names.length);
    for (const name of names) expect(pg17SettingNames.has(name), name).toBe(true);
  });

  it("lists owned settings that PostgreSQL 17 knows (include directives aside)", () => {
    for (const name of ownedSettings.keys()) {
      if (!name.startsWith("include")) expect(pg17SettingNames.has(name), name).toBe(true);
    }
    expect(ownedSettings.get("huge_pages")).toContain("postgres.hugePages");
  });

  it("appends the user's settings last and drops the stack's own line for a setting they replace", () => {
    const spec = specFor({ postgres: { settings: { work_mem: "64MB", default_statistics_target: "200", "hnsw.ef_search": "100" } } });
    const rendered = renderPostgresqlConf(spec);
    const settings = postgresqlSettings(spec);
    expect(settings.slice(-3).map((s) => [s.name, s.value, s.source])).toEqual([
      ["default_statistics_target", "200", "user"],
      ["hnsw.ef_search", "100", "user"],
      ["work_mem", "64MB", "user"],
    ]);
    expect(rendered.match(/^work_mem = /gm)).toHaveLength(1);
    expect(parseConf(rendered).get("work_mem")).toBe("64MB");
    expect(rendered.trimEnd().split("\n").slice(-1)[0]).toBe("work_mem = 64MB");
  });

  it("exports name → value sorted by name", () => {
    const values = postgresqlSettingValues(stagingSpec);
    expect(Object.keys(values)).toEqual([...Object.keys(values)].sort());
    expect(values.shared_buffers).toBe("8GB");
    expect(values.log_line_prefix).toBe("%m [%p]: user=%u,db=%d,app=%a,client=%h ");
  });

  it("quotes values as postgresql.conf needs", () => {
    expect(confValue("8GB")).toBe("8GB");
    expect(confValue("1.1")).toBe("1.1");
    expect(confValue("-1")).toBe("-1");
    expect(confValue("posix")).toBe("posix");
    expect(confValue("scram-sha-256")).toBe("'scram-sha-256'");
    expect(confValue("it's")).toBe("'it''s'");
    expect(confValue("a\\b")).toBe("'a\\\\b'");
    expect(() => confValue("a\nb")).toThrow(/line break/);
  });
});

describe("postgresql.conf: from node and storage", () => {
  it.each([
    ["ssd", "1.1", "200"],
    ["nvme", "1.1", "1000"],
    ["hdd", "4.0", "2"],
  ])("storage %s: random_page_cost %s, effective_io_concurrency %s", (storage, cost, io) => {
    const values = postgresqlSettingValues(specFor({ node: { storage } }));
    expect([values.random_page_cost, values.effective_io_concurrency]).toEqual([cost, io]);
  });

  it.each([
    [1, { maxWorkerProcesses: 8, maxParallelWorkers: 1, maxParallelWorkersPerGather: 0, maxParallelMaintenanceWorkers: 0 }],
    [2, { maxWorkerProcesses: 8, maxParallelWorkers: 2, maxParallelWorkersPerGather: 1, maxParallelMaintenanceWorkers: 1 }],
    [8, { maxWorkerProcesses: 12, maxParallelWorkers: 8, maxParallelWorkersPerGather: 4, maxParallelMaintenanceWorkers: 4 }],
    [64, { maxWorkerProcesses: 68, maxParallelWorkers: 64, maxParallelWorkersPerGather: 4, maxParallelMaintenanceWorkers: 8 }],
  ])("%i cpus: parallel workers bounded by cpus", (cpus, expected) => {
    const p = parallelism(specFor({ node: { cpus } }));
    expect(p).toEqual(expected);
    expect(p.maxParallelWorkers).toBeLessThanOrEqual(p.maxWorkerProcesses);
    expect(p.maxParallelMaintenanceWorkers).toBeLessThanOrEqual(p.maxParallelWorkers);
  });

  it("keeps max_wal_size within a quarter of a small Kubernetes volume", () => {
    expect(maxWalSize(stagingSpec)).toBe(8 * bytes.GiB);
    expect(maxWalSize(specFor({ kubernetes: { storageSize: "10Gi" } }))).toBe(2 * bytes.GiB);
    expect(maxWalSize(specFor({ kubernetes: { storageSize: "2Gi" } }))).toBe(1 * bytes.GiB);
    expect(maxWalSize(specFor({ target: "docker", kubernetes: { storageSize: "2Gi" } }))).toBe(8 * bytes.GiB);
  });

  it("reserves connections for maintenance and monitoring", () => {
    const values = postgresqlSettingValues(stagingSpec);
    expect([values.superuser_reserved_connections, values.reserved_connections]).toEqual(["10", "5"]);
  });
});

describe("log_line_prefix", () => {
  it("lets the log pipeline split a slow-query line", () => {
    const line =
      "2025-01-22 10:11:12.345 UTC [4242]: user=app,db=app,app=node-postgres,client=10.1.2.3 LOG:  duration: 123.456 ms  execute q1: SELECT 1";
    const match = logLinePattern.exec(line);
    expect(match?.groups).toMatchObject({ pid: "4242", user: "app", database: "app", application: "node-postgres", client: "10.1.2.3", level: "LOG" });
    expect(match?.groups?.message).toMatch(/^duration: 123\.456 ms/);
    expect(logLinePattern.test("2025-01-22 10:11:12.345 UTC [7]: user=,db=,app=,client= LOG:  checkpoint starting: time")).toBe(true);
  });
});

describe("pg_hba.conf", () => {
  const text = renderPgHba();
  const rules = text.split("\n").filter((l) => /^(local|host)/.test(l));

  it("uses SCRAM only: never trust, password or md5", () => {
    for (const rule of rules) expect(rule.split("#")[0]).toMatch(/\b(scram-sha-256|peer map=superuser|reject)\s*$/);
    expect(text).not.toMatch(/\b(trust|md5|password)\s+#/);
  });

  it("admits loopback and the private networks by default, refuses the rest", () => {
    const addresses = rules.filter((r) => r.startsWith("host") && r.includes("scram")).map((r) => r.split(/\s+/)[3]);
    expect(addresses).toEqual(["127.0.0.1/32", "::1/128", ...privateNetworks]);
    expect(rules.slice(-2).map((r) => r.split(/\s+/)[4])).toEqual(["reject", "reject"]);
  });

  it("lets the superuser in on the socket only (peer, as pg_ident.conf maps), and TCP clients by password over TLS only", () => {
    expect(rules[0].split(/\s+/).slice(0, 5)).toEqual(["local", "all", "postgres", "peer", "map=superuser"]);
    // The superuser meets a reject on every TCP address before anything else (first match wins), TLS or not.
    expect(rules.slice(2, 4).map((r) => r.split(/\s+/).slice(0, 5))).toEqual([
      ["host", "all", "postgres", "0.0.0.0/0", "reject"],
      ["host", "all", "postgres", "::/0", "reject"],
    ]);
    expect(rules.findIndex((r) => /^host/.test(r))).toBe(2);
    expect(rules.find((r) => r.includes("127.0.0.1/32"))?.split(/\s+/).slice(0, 5)).toEqual(["hostssl", "all", "all", "127.0.0.1/32", "scram-sha-256"]);
    // Without TLS, every TCP address meets a reject before any line that could admit it (first match wins).
    const plain = rules.findIndex((r) => r.startsWith("hostnossl") && r.includes("0.0.0.0/0") && /\sreject\s/.test(r));
    const firstAdmitting = rules.findIndex((r) => /^host/.test(r) && !/\sreject\s/.test(r));
    expect(plain).toBeLessThan(firstAdmitting);
    expect(rules.some((r) => /^host\s/.test(r) && /scram-sha-256/.test(r))).toBe(false);
  });

  it("takes the cluster's networks when given, and refuses a CIDR that admits everyone or is malformed", () => {
    expect(renderPgHba({ allowedCidrs: ["10.244.0.0/16", "fd00::/8"] })).toMatch(/10\.244\.0\.0\/16\s+scram-sha-256[\s\S]*fd00::\/8\s+scram-sha-256/);
    expect(renderPgHba({ allowedCidrs: ["10.244.0.0/16"] })).not.toContain("192.168.0.0/16");
    expect(() => renderPgHba({ allowedCidrs: ["0.0.0.0/0"] })).toThrow(/every IPv4 address/);
    expect(() => renderPgHba({ allowedCidrs: ["10.0.0.300/8"] })).toThrow(/not an IPv4 CIDR/);
    expect(() => renderPgHba({ allowedCidrs: ["cluster"] })).toThrow(/not a CIDR/);
  });

  it("is deterministic", () => {
    expect(renderPgHba()).toBe(text);
  });

  it("pg_ident.conf maps the server's OS user to the superuser everywhere, and root only on the perf cluster", () => {
    const rows = (t: string) => t.split("\n").filter((l) => l !== "" && !l.startsWith("#")).map((l) => l.split(/\s+/).slice(0, 3));
    expect(rows(renderPgIdent({ hostRoot: false }))).toEqual([["superuser", "postgres", "postgres"]]);
    expect(rows(renderPgIdent({ hostRoot: true }))).toEqual([
      ["superuser", "postgres", "postgres"],
      ["superuser", "root", "postgres"],
    ]);
  });
});

describe("postgres.audit (pgaudit)", () => {
  const local = (audit: Record<string, unknown>) => specFor({ target: "local", postgres: { audit } });

  it("is off by default: no pgaudit loaded, no pgaudit setting, no extension", () => {
    const conf = parseConf(renderPostgresqlConf(stagingSpec));
    expect(conf.get("shared_preload_libraries")).toBe("pg_stat_statements");
    expect([...conf.keys()].filter((k) => k.startsWith("pgaudit."))).toEqual([]);
    expect(renderRolesSql(rolePlan(stagingSpec), "app")).not.toContain("pgaudit");
  });

  it("loads pgaudit, logs the classes asked for (ddl and role by default) without parameters or catalog noise, and creates its extension", () => {
    const on = local({ enabled: true });
    const conf = parseConf(renderPostgresqlConf(on));
    expect(conf.get("shared_preload_libraries")).toBe("pg_stat_statements,pgaudit");
    expect(conf.get("pgaudit.log")).toBe("ddl, role");
    expect(conf.get("pgaudit.log_parameter")).toBe("off");
    expect(conf.get("pgaudit.log_catalog")).toBe("off");
    expect(parseConf(renderPostgresqlConf(local({ enabled: true, log: ["write", "ddl"] }))).get("pgaudit.log")).toBe("write, ddl");
    expect(renderRolesSql(rolePlan(on), "app")).toContain("CREATE EXTENSION IF NOT EXISTS pgaudit;");
  });

  it("refuses an unknown or repeated class, an empty list, and a container image without pgaudit", () => {
    expect(() => local({ enabled: true, log: ["dd"] })).toThrow("postgres.audit.log[0] is \"dd\"; pgaudit logs read, write, function, role, ddl, misc, misc_set, all; did you mean ddl?");
    expect(() => local({ log: ["ddl", "ddl"] })).toThrow("postgres.audit.log[1] lists ddl twice");
    expect(() => local({ log: [] })).toThrow("postgres.audit.log is empty");
    expect(() => specFor({ postgres: { audit: { enabled: true } } })).toThrow(/images\.postgres is "pgvector\/pgvector:[^"]+", which does not ship pgaudit/);
    expect(specFor({ postgres: { audit: { enabled: true } }, images: { postgres: "registry.example/pgstack-postgres:17" } }).postgres.audit.enabled).toBe(true);
  });
});
