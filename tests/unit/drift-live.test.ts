/**
 * Live drift rules without a server: pg_settings normalised by unit, where a value comes from, pending restarts,
 * per-role/database overrides, huge pages, extensions, HNSW indexes, PgBouncer; connection input and password masking.
 */
import { describe, expect, it } from "vitest";
import { planIndexes } from "../../configs/hnsw";
import { renderStack } from "../../configs/render";
import { renderedFiles } from "../../cli/render";
import { ConnectionError, connectionErrorMessage, parseConnectionUrl } from "../../drift/connection";
import { bootstrapExtensions, desiredFromFiles } from "../../drift/desired";
import { compareLive, settingQuantity, showSetting, sourceLabel, type DesiredState, type LivePostgres, type LiveSetting } from "../../drift/live";
import { formatLiveDrift, type LiveDrift } from "../../drift/live-report";
import type { ObservedIndex } from "../../postdeploy/index-decisions";
import { specFor } from "./spec-fixture";

const plan = planIndexes([{ table: "memories", column: "embedding", dimensions: 768, metric: "cosine", type: "vector", filterColumns: [], efSearch: 40, createTable: false }], {
  maintenanceWorkMem: "2GB",
  maxParallelMaintenanceWorkers: 4,
});

function desired(over: Partial<DesiredState> = {}): DesiredState {
  return {
    stack: "prod",
    postgresql: new Map([
      ["shared_buffers", "8GB"],
      ["work_mem", "256MB"],
      ["checkpoint_timeout", "15min"],
      ["jit", "off"],
      ["huge_pages", "on"],
      ["port", "5432"],
      ["random_page_cost", "1.1"],
      ["max_connections", "200"],
    ]),
    pgbouncer: new Map([
      ["databases.app", "host=127.0.0.1 port=5432 dbname=app"],
      ["listen_port", "6432"],
      ["default_pool_size", "100"],
      ["log_connections", "1"],
    ]),
    database: "app",
    indexPlan: plan,
    hugePagesPlanned: 4231,
    extensions: ["pg_stat_statements", "vector"],
    roleSettings: [],
    ...over,
  };
}

const fromFile = { source: "configuration file", sourcefile: "/etc/pgstack/postgresql.conf", pendingRestart: false };

function setting(name: string, value: string, unit: string | null, vartype: string, over: Partial<LiveSetting> = {}): LiveSetting {
  return { name, setting: value, unit, vartype, sourceline: 10, ...fromFile, ...over };
}

const goodIndex: ObservedIndex = {
  name: "memories_embedding_hnsw_idx",
  table: "memories",
  accessMethod: "hnsw",
  columns: ["embedding"],
  opclasses: ["vector_cosine_ops"],
  reloptions: ["m=16", "ef_construction=128"],
  valid: true,
  ready: true,
  partial: false,
  definition: "",
};

function live(over: Partial<LivePostgres> = {}, settings: LiveSetting[] = []): LivePostgres {
  const base = [
    setting("shared_buffers", "1048576", "8kB", "integer"),
    setting("work_mem", "262144", "kB", "integer"),
    setting("checkpoint_timeout", "900", "s", "integer"),
    setting("jit", "off", null, "bool"),
    setting("huge_pages", "on", null, "enum"),
    setting("huge_pages_status", "on", null, "enum", { source: "default", sourcefile: null }),
    setting("shared_memory_size_in_huge_pages", "4200", null, "integer", { source: "default", sourcefile: null }),
    setting("port", "55432", null, "integer", { source: "command line", sourcefile: null }),
    setting("random_page_cost", "1.1", null, "real"),
    setting("max_connections", "200", null, "integer"),
  ];
  const byName = new Map(base.map((s) => [s.name, s]));
  for (const s of settings) byName.set(s.name, s);
  return {
    version: "17.12",
    settings: [...byName.values()],
    fileSettings: [],
    overrides: [],
    appDatabase: "app",
    appDatabaseExists: true,
    extensions: [
      { name: "pg_stat_statements", installedVersion: "1.11", defaultVersion: "1.11" },
      { name: "vector", installedVersion: "0.8.0", defaultVersion: "0.8.0" },
    ],
    indexes: [goodIndex],
    missingTables: [],
    ...over,
  };
}

const pgbouncer = {
  config: new Map([
    ["listen_port", "6432"],
    ["default_pool_size", "100"],
    ["log_connections", "1"],
  ]),
  databases: ["app"],
};

function drifted(d: DesiredState, l: LivePostgres, b = pgbouncer) {
  return compareLive(d, l, b).findings.filter((f) => f.drift);
}

describe("pg_settings compared as setting × unit", () => {
  it.each([
    ["16384", "8kB", "integer", "128MB"],
    ["262144", "kB", "integer", "256MB"],
    ["900", "s", "integer", "15min"],
    ["300000", "ms", "integer", "5min"],
    ["-1", "kB", "integer", "-1"],
    ["0", "ms", "integer", "0"],
    ["on", null, "bool", "on"],
  ])("%s × %s (%s) shows as %s", (value, unit, vartype, shown) => {
    expect(showSetting(value, unit, vartype)).toBe(shown);
  });

  it("a bare number in the rendered file is in the setting's own unit", () => {
    expect(settingQuantity("60", "s", "integer")).toEqual({ kind: "ms", value: 60_000 });
    expect(settingQuantity("1GB", "8kB", "integer")).toEqual({ kind: "bytes", value: 1024 ** 3 });
  });

  it("a server started from the rendered state has no drift; the command-line port is a note", () => {
    const { findings, checked } = compareLive(desired(), live(), pgbouncer);
    expect(findings.filter((f) => f.drift)).toEqual([]);
    expect(findings).toEqual([expect.objectContaining({ name: "port", drift: false, source: "command line (-c)" })]);
    expect(checked).toEqual({ settings: 8, extensions: 2, indexes: 1, pgbouncerSettings: 4 });
  });

  it("reports a different value with the rendered and live values in the same units, and its source", () => {
    const found = drifted(desired(), live({}, [setting("work_mem", "131072", "kB", "integer", { sourcefile: "/data/postgresql.auto.conf", sourceline: 3 })]));
    expect(found).toEqual([{ area: "postgresql", name: "work_mem", desired: "256MB", live: "128MB", source: "ALTER SYSTEM (postgresql.auto.conf line 3)", drift: true }]);
  });

  it("a value set by ALTER SYSTEM to the rendered value is still drift: the file no longer decides it", () => {
    const found = drifted(desired(), live({}, [setting("work_mem", "262144", "kB", "integer", { sourcefile: "/data/postgresql.auto.conf", sourceline: 3 })]));
    expect(found).toEqual([expect.objectContaining({ name: "work_mem", detail: expect.stringContaining("same value, but set by ALTER SYSTEM") })]);
  });

  it("ALTER SYSTEM of a setting the rendered config does not set, and one not yet reloaded", () => {
    const found = drifted(desired(), live({ fileSettings: [{ sourcefile: "/data/postgresql.auto.conf", sourceline: 4, seqno: 90, name: "enable_seqscan", setting: "off", applied: false, error: null }] }, [
      setting("random_page_cost", "1.1", null, "real"),
      setting("effective_io_concurrency", "50", null, "integer", { sourcefile: "/data/postgresql.auto.conf", sourceline: 2 }),
      setting("enable_seqscan", "on", null, "bool", { source: "default", sourcefile: null }),
    ]));
    expect(found).toEqual([
      expect.objectContaining({ name: "effective_io_concurrency", live: "50", detail: "set by ALTER SYSTEM; the rendered config does not set it" }),
      expect.objectContaining({ name: "enable_seqscan", live: "on", detail: "written by ALTER SYSTEM as off, not applied yet (reload pending)" }),
    ]);
  });

  it("pending_restart: the running value and the one a restart applies, from pg_file_settings", () => {
    const found = drifted(
      desired(),
      live({ fileSettings: [
        { sourcefile: "/etc/pgstack/postgresql.conf", sourceline: 16, seqno: 5, name: "max_connections", setting: "200", applied: false, error: null },
        { sourcefile: "/data/postgresql.auto.conf", sourceline: 3, seqno: 70, name: "max_connections", setting: "150", applied: false, error: "setting could not be applied" },
      ] }, [setting("max_connections", "200", null, "integer", { pendingRestart: true })]),
    );
    expect(found).toEqual([
      expect.objectContaining({ name: "max_connections", live: "200", source: "ALTER SYSTEM (postgresql.auto.conf line 3)", detail: "pending restart: the files now say 150, the server runs 200 until it restarts" }),
    ]);
  });

  it("per-role/database overrides are drift, with their statement; hnsw.ef_search is shown against the plan's", () => {
    const found = drifted(desired(), live({ overrides: [
      { database: "app", role: null, name: "hnsw.ef_search", value: "100" },
      { database: null, role: "app", name: "work_mem", value: "1GB" },
      { database: "app", role: "app", name: "jit", value: "on" },
    ] }));
    expect(found.map((f) => [f.name, f.source, f.desired, f.live])).toEqual([
      ["hnsw.ef_search", "ALTER DATABASE app SET", "40 (per query, SET LOCAL; not per role/database)", "100"],
      ["jit", "ALTER ROLE app IN DATABASE app SET", "off", "on"],
      ["work_mem", "ALTER ROLE app SET", "256MB", "1GB"],
    ]);
  });

  it("the role settings roles.sql makes are expected: the same value is no drift, another value or a missing one is", () => {
    const roleSettings = [
      { role: "app", database: null, name: "statement_timeout", value: "5min" },
      { role: "pgstack_canary", database: "app", name: "search_path", value: "pgstack_canary, public" },
    ];
    expect(drifted(desired({ roleSettings }), live({ overrides: roleSettings.map((o) => ({ ...o })) }))).toEqual([]);
    const found = drifted(desired({ roleSettings }), live({ overrides: [{ database: null, role: "app", name: "statement_timeout", value: "1h" }] }));
    expect(found.map((f) => [f.name, f.source, f.desired, f.live])).toEqual([
      ["statement_timeout", "ALTER ROLE app SET", "5min", "1h"],
      ["search_path", "ALTER ROLE pgstack_canary IN DATABASE app SET", "pgstack_canary, public", "missing"],
    ]);
  });

  it("a session override does not hide the server's own value (compared from the files)", () => {
    const found = drifted(
      desired(),
      live({ fileSettings: [{ sourcefile: "/etc/pgstack/postgresql.conf", sourceline: 30, seqno: 9, name: "work_mem", setting: "256MB", applied: true, error: null }] }, [
        setting("work_mem", "1048576", "kB", "integer", { source: "user", sourcefile: null }),
      ]),
    );
    expect(found).toEqual([]);
  });

  it("source labels", () => {
    expect(sourceLabel({ source: "configuration file", sourcefile: "/etc/pgstack/postgresql.conf", sourceline: 33 })).toBe("postgresql.conf line 33");
    expect(sourceLabel({ source: "configuration file", sourcefile: null, sourceline: null })).toMatch(/pg_read_all_settings/);
    expect(sourceLabel({ source: "default", sourcefile: null, sourceline: null })).toBe("built-in default (not set in any file)");
  });
});

describe("huge pages, extensions, indexes, PgBouncer", () => {
  it("huge_pages = on without huge pages is drift; try without them is a note; too few planned pages is drift", () => {
    const off = live({}, [setting("huge_pages_status", "off", null, "enum", { source: "default", sourcefile: null })]);
    expect(drifted(desired(), off)).toEqual([expect.objectContaining({ area: "huge pages", name: "huge_pages_status", desired: "on", live: "off" })]);
    const tryDesired = desired({ postgresql: new Map([...desired().postgresql, ["huge_pages", "try"]]) });
    const tryLive = live({}, [setting("huge_pages", "try", null, "enum"), setting("huge_pages_status", "off", null, "enum", { source: "default", sourcefile: null })]);
    const notes = compareLive(tryDesired, tryLive, pgbouncer).findings.filter((f) => f.area === "huge pages");
    expect(notes).toEqual([expect.objectContaining({ drift: false, detail: expect.stringContaining("needs 4200 huge pages") })]);
    expect(drifted(desired({ hugePagesPlanned: 4000 }), live())).toEqual([expect.objectContaining({ name: "shared_memory_size_in_huge_pages", live: "4200" })]);
  });

  it("a missing extension is drift; an installed version behind the server's is a note", () => {
    const l = live({ extensions: [
      { name: "pg_stat_statements", installedVersion: null, defaultVersion: "1.11" },
      { name: "vector", installedVersion: "0.7.4", defaultVersion: "0.8.0" },
    ] });
    const findings = compareLive(desired(), l, pgbouncer).findings.filter((f) => f.area === "extension");
    expect(findings).toEqual([
      expect.objectContaining({ name: "pg_stat_statements", drift: true, detail: "available (1.11) but not installed in database app" }),
      expect.objectContaining({ name: "vector", drift: false, desired: "0.8.0", live: "0.7.4" }),
    ]);
  });

  it("HNSW indexes: missing, invalid, other parameters (reloptions), and an unplanned one as a note", () => {
    expect(drifted(desired(), live({ indexes: [] }))).toEqual([expect.objectContaining({ area: "index", live: "missing", detail: expect.stringContaining("post-deploy hook") })]);
    expect(drifted(desired(), live({ indexes: [], missingTables: ["memories"] }))).toEqual([expect.objectContaining({ detail: "table memories does not exist" })]);
    expect(drifted(desired(), live({ indexes: [{ ...goodIndex, valid: false }] }))).toEqual([expect.objectContaining({ live: "INVALID" })]);
    expect(drifted(desired(), live({ indexes: [{ ...goodIndex, reloptions: ["m=8"] }] }))).toEqual([
      expect.objectContaining({ detail: "m 8, plan 16; ef_construction 64, plan 128", live: "hnsw vector_cosine_ops on memories(embedding), m=8, ef_construction=64" }),
    ]);
    const extra = compareLive(desired(), live({ indexes: [goodIndex, { ...goodIndex, name: "memories_embedding_hnsw_idx_rebuild" }] }), pgbouncer).findings;
    expect(extra).toContainEqual(expect.objectContaining({ area: "index", name: "memories_embedding_hnsw_idx_rebuild", drift: false }));
  });

  it("PgBouncer: SHOW CONFIG values, placement notes, the pooled database", () => {
    const b = { config: new Map([["listen_port", "16432"], ["default_pool_size", "50"]]), databases: [] };
    const findings = compareLive(desired(), live(), b).findings.filter((f) => f.area === "pgbouncer");
    expect(findings).toEqual([
      expect.objectContaining({ name: "listen_port", drift: false }),
      expect.objectContaining({ name: "default_pool_size", desired: "100", live: "50", drift: true }),
      expect.objectContaining({ name: "log_connections", drift: true, detail: expect.stringContaining("SHOW CONFIG does not list it") }),
      expect.objectContaining({ name: "[databases] app", live: "missing", drift: true }),
    ]);
  });
});

describe("the desired state from rendered files", () => {
  it("reads a stack's rendered files: settings, database, plan, planned huge pages, the bootstrap's extensions", () => {
    const files = renderedFiles(renderStack(specFor()));
    const d = desiredFromFiles("staging", files);
    expect(d.postgresql.get("shared_buffers")).toBe("8GB");
    expect(d.pgbouncer.get("default_pool_size")).toBe("100");
    expect(d.database).toBe("app");
    expect(d.indexPlan[0].indexName).toBe("memories_embedding_hnsw_idx");
    expect(d.hugePagesPlanned).toBeGreaterThan(4000);
    expect(bootstrapExtensions()).toEqual(["pg_stat_statements", "vector"]);
    expect(() => desiredFromFiles("x", { "postgresql.conf": "" })).toThrow(/lacks pgbouncer.ini, plan.json, memory-plan.yaml/);
  });
});

describe("connection input: parsed once, the password never shown", () => {
  it("parses a URL; the password is not enumerable and not in the display form", () => {
    const t = parseConnectionUrl("postgresql://app:p%40ss%3Aword@db.example:6543/app?sslmode=require", undefined);
    expect(t).toMatchObject({ host: "db.example", port: 6543, user: "app", database: "app", display: "postgresql://app@db.example:6543/app" });
    expect(t.password).toBe("p@ss:word");
    expect(JSON.stringify(t)).not.toContain("p@ss");
    expect(t.ssl).toEqual({ rejectUnauthorized: false });
  });

  it("takes PGPASSWORD when the URL has none; the URL's wins", () => {
    expect(parseConnectionUrl("postgresql://app@h/app", "from-env").password).toBe("from-env");
    expect(parseConnectionUrl("postgresql://app:from-url@h/app", "from-env").password).toBe("from-url");
    expect(parseConnectionUrl("postgres://app@h", undefined)).toMatchObject({ port: 5432, database: "app", password: undefined });
  });

  it.each([
    ["not a url at all", /--url "not a url at all" is not a URL/],
    ["http://app@h/app", /is not a postgresql:\/\/ URL/],
    ["postgresql://app@h:99999/app", /is not a URL|invalid port/],
    ["postgresql://app@h/app?sslmode=maybe", /sslmode=maybe is not one of/],
    ["postgresql://app@h/app?options=-c%20x", /URL parameter "options" is not supported/],
  ])("refuses %s with a message for people", (url, message) => {
    expect(() => parseConnectionUrl(url, undefined)).toThrow(ConnectionError);
    expect(() => parseConnectionUrl(url, undefined)).toThrow(message);
  });

  it("never echoes a password, even in a URL it cannot parse", () => {
    let message = "";
    try {
      parseConnectionUrl("postgresql://app:Sup3r-S3cret@host:port/db", undefined);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain("postgresql://app:***@host:port/db");
    expect(message).not.toContain("Sup3r-S3cret");
  });

  it("turns driver errors into one line: refused, unknown host, wrong password, no password", () => {
    const t = parseConnectionUrl("postgresql://app:Sup3r-S3cret@127.0.0.1:5999/app", undefined);
    const msg = (e: object) => connectionErrorMessage(e, t, "PostgreSQL at");
    expect(msg({ code: "ECONNREFUSED" })).toBe("cannot connect to PostgreSQL at postgresql://app@127.0.0.1:5999/app: connection refused (is the server running and listening on 127.0.0.1:5999?)");
    expect(msg({ code: "ENOTFOUND" })).toContain('host "127.0.0.1" not found');
    expect(msg({ code: "28P01", message: "password authentication failed for user app" })).toContain('password authentication failed for user "app"');
    expect(msg({ message: "SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a string" })).toContain("none was given");
    expect(msg({ message: "boom Sup3r-S3cret\nat x" })).toBe("PostgreSQL at postgresql://app@127.0.0.1:5999/app failed: boom ***");
  });
});

describe("the live report", () => {
  const report = (drift: boolean): LiveDrift => ({
    drift,
    stack: "prod",
    desiredFrom: "rendered/prod",
    postgres: { url: "postgresql://postgres@db:5432/app", version: "17.12" },
    pgbouncer: null,
    findings: drift
      ? [
          { area: "postgresql", name: "work_mem", desired: "256MB", live: "64MB", source: "ALTER SYSTEM (postgresql.auto.conf line 3)", drift: true },
          { area: "override", name: "hnsw.ef_search", desired: "40 (per query, SET LOCAL; not per role/database)", live: "100", source: "ALTER DATABASE app SET", drift: true },
          { area: "postgresql", name: "port", desired: "5432", live: "55432", source: "command line (-c)", drift: false, detail: "where the server listens is the target's" },
        ]
      : [],
    checked: { settings: 58, extensions: 2, indexes: 1, pgbouncerSettings: 0 },
  });

  it("text, Markdown and JSON", () => {
    expect(formatLiveDrift(report(false), "text")).toMatch(/^no drift: stack prod vs postgresql:\/\/postgres@db:5432\/app \(PostgreSQL 17\.12\)\n/);
    const text = formatLiveDrift(report(true), "text");
    expect(text).toContain("PostgreSQL settings (pg_settings)\n  work_mem: rendered 256MB, live 64MB (source: ALTER SYSTEM (postgresql.auto.conf line 3))");
    expect(text).toContain("Notes (not drift)\n  [postgresql] port: rendered 5432, live 55432");
    const md = formatLiveDrift(report(true), "markdown");
    expect(md).toMatch(/^## pgstack live drift: 2 differences\n/);
    expect(md).toContain("| `work_mem` | `256MB` | `64MB` | ALTER SYSTEM (postgresql.auto.conf line 3) |");
    expect(JSON.parse(formatLiveDrift(report(true), "json")).findings).toHaveLength(3);
  });
});
