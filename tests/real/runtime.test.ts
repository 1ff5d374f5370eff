import * as fs from "node:fs";
import { Client } from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  getRuntime,
  httpGet,
  promtool,
  runningServers,
  startNodeExporter,
  startPgBouncer,
  startPgbouncerExporter,
  startPostgres,
  startPostgresExporter,
  startPrometheus,
  stopAll,
  type PgBouncerServer,
  type PostgresServer,
  type Runtime,
} from "../../local/runtime";
import { descendantsOf, processesInGroup } from "../../local/runtime/processTable";

// Small on purpose: the rig must run whatever conf it is given, including the stack's preload library.
const POSTGRESQL_CONF = [
  "shared_buffers = 128MB",
  "max_connections = 40",
  "password_encryption = 'scram-sha-256'",
  "shared_preload_libraries = 'pg_stat_statements'",
  "",
].join("\n");

const PG_HBA_CONF = ["local all all scram-sha-256", "host all all 127.0.0.1/32 scram-sha-256", ""].join("\n");

const QUIET_RULES = `groups:
  - name: postgres
    rules:
      - alert: PostgresDown
        expr: pg_up == 0
        for: 1m
        labels:
          severity: critical
        annotations:
          summary: PostgreSQL is down
`;

const BROKEN_RULES = QUIET_RULES.replace("pg_up == 0", "pg_up ==");

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function queryOne(connectionString: string, sql: string): Promise<Record<string, unknown>> {
  const client = new Client({ connectionString });
  await client.connect();
  try {
    return (await client.query(sql)).rows[0] as Record<string, unknown>;
  } finally {
    await client.end();
  }
}

describe("the real-server rig", () => {
  let runtime: Runtime;
  let pg: PostgresServer;
  let bouncer: PgBouncerServer;
  const scratchDirs: string[] = [];

  beforeAll(async () => {
    runtime = await getRuntime();
  });
  afterAll(stopAll);

  it("finds the versions the stack is written against", () => {
    expect(fs.existsSync(runtime.hostPath(runtime.programPath("postgres")))).toBe(true);
    expect(runtime.versions).toMatchObject({
      postgres: expect.stringMatching(/^17\./),
      initdb: expect.stringMatching(/^17\./),
      psql: expect.stringMatching(/^17\./),
      pgbench: expect.stringMatching(/^17\./),
      pgvector: expect.stringMatching(/^0\.8\./),
      pgbouncer: expect.stringMatching(/^1\.24\./),
      postgres_exporter: expect.stringMatching(/^0\.17\./),
      pgbouncer_exporter: expect.stringMatching(/^0\.10\./),
      prometheus: expect.stringMatching(/^2\.53\./),
      promtool: expect.stringMatching(/^2\.53\./),
    });
    expect(runtime.versions.node_exporter).toMatch(/^\d+\.\d+/);
    expect(runtime.versions.mtail).toMatch(/^\d+\.\d+/);
    expect(runtime.reason).not.toBe("");
  });

  it("starts PostgreSQL from the given conf, unedited, and answers over TCP with SCRAM only", async () => {
    pg = await startPostgres({ runtime, postgresqlConf: POSTGRESQL_CONF, pgHbaConf: PG_HBA_CONF });
    scratchDirs.push(pg.scratch.hostPath);
    expect(fs.readFileSync(`${pg.dataDir}/postgresql.conf`, "utf8")).toBe(POSTGRESQL_CONF);

    const row = await queryOne(
      pg.url(),
      "SELECT current_setting('server_version_num')::int AS version, current_setting('shared_preload_libraries') AS preload, inet_server_port() AS port",
    );
    expect(row.version).toBeGreaterThanOrEqual(170000);
    expect(row.version).toBeLessThan(180000);
    expect(row.preload).toBe("pg_stat_statements");
    expect(row.port).toBe(pg.port);

    await expect(queryOne(pg.url("postgres", "postgres", "not-the-password"), "SELECT 1")).rejects.toThrow(
      /password authentication failed/,
    );
    expect(await pg.psql("SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'")).toMatch(/^SCRAM-SHA-256\$/);
  });

  it("has pgvector 0.8 through CREATE EXTENSION vector", async () => {
    const out = await pg.psql(
      "CREATE EXTENSION vector;\nSELECT extversion FROM pg_extension WHERE extname = 'vector';\nSELECT '[1,2,3]'::vector <-> '[1,2,5]'::vector;",
    );
    const [version, distance] = out.split("\n");
    expect(version).toMatch(/^0\.8\./);
    expect(Number(distance)).toBe(2);
  });

  it("puts PgBouncer in front, authenticating with the SCRAM verifier from pg_authid", async () => {
    const verifier = await pg.psql("SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'");
    const ini = [
      "[databases]",
      `postgres = host=127.0.0.1 port=${pg.port} dbname=postgres`,
      "[pgbouncer]",
      "auth_type = scram-sha-256",
      // The rig replaces this path with the userlist it writes; the stack's ini stays as rendered.
      "auth_file = /etc/pgbouncer/userlist.txt",
      "admin_users = postgres",
      "pool_mode = transaction",
      "ignore_startup_parameters = extra_float_digits",
      "",
    ].join("\n");
    bouncer = await startPgBouncer({ runtime, ini, userlist: `"postgres" "${verifier}"\n` });
    scratchDirs.push(bouncer.scratch.hostPath);
    expect(fs.readFileSync(bouncer.scratch.hostPathOf("userlist.txt"), "utf8")).not.toContain(pg.password);

    const row = await queryOne(bouncer.url("postgres", "postgres", pg.password), "SELECT inet_server_port() AS port, 1 AS one");
    expect(row).toEqual({ port: pg.port, one: 1 });
  });

  it("serves pg_up 1, pgbouncer_up 1 and node metrics from the exporters", async () => {
    const postgresExporter = await startPostgresExporter({ runtime, dataSourceName: `${pg.url()}?sslmode=disable` });
    const pgbouncerExporter = await startPgbouncerExporter({
      runtime,
      connectionString: `${bouncer.url("pgbouncer", "postgres", pg.password)}?sslmode=disable`,
    });
    const nodeExporter = await startNodeExporter({ runtime });
    scratchDirs.push(postgresExporter.scratch.hostPath, pgbouncerExporter.scratch.hostPath, nodeExporter.scratch.hostPath);

    expect((await httpGet(`${postgresExporter.url}/metrics`)).body).toMatch(/^pg_up 1$/m);
    expect((await httpGet(`${pgbouncerExporter.url}/metrics`)).body).toMatch(/^pgbouncer_up 1$/m);
    expect((await httpGet(`${nodeExporter.url}/metrics`)).body).toMatch(/^node_memory_MemTotal_bytes \d/m);
  });

  it("runs Prometheus with the given rule files until /-/ready", async () => {
    const prometheus = await startPrometheus({
      runtime,
      configYaml: "global:\n  scrape_interval: 15s\nrule_files:\n  - rules/*.yml\n",
      ruleFiles: { "rules/postgres.yml": QUIET_RULES },
    });
    scratchDirs.push(prometheus.scratch.hostPath);
    const rules = JSON.parse((await httpGet(`${prometheus.url}/api/v1/rules`)).body) as {
      data: { groups: Array<{ name: string; rules: Array<{ name: string }> }> };
    };
    expect(rules.data.groups.map((g) => [g.name, g.rules.map((r) => r.name)])).toEqual([["postgres", ["PostgresDown"]]]);
    await prometheus.reload();
  });

  it("runs promtool check rules: passes a valid file, fails a broken one", async () => {
    const good = await promtool(["check", "rules", "postgres.yml"], { "postgres.yml": QUIET_RULES }, runtime);
    expect(good.code, good.stdout + good.stderr).toBe(0);
    const broken = await promtool(["check", "rules", "broken.yml"], { "broken.yml": BROKEN_RULES }, runtime);
    expect(broken.code).not.toBe(0);
    expect(broken.stdout + broken.stderr).toMatch(/broken\.yml/);
  });

  it("names the program, its version and the log tail when a server cannot start", async () => {
    await expect(
      startPostgres({ runtime, postgresqlConf: "shared_buffers = 'plenty'\n", pgHbaConf: PG_HBA_CONF }),
    ).rejects.toThrow(/postgres 17\.\d+ .*exited[\s\S]*invalid value for parameter "shared_buffers"/);
  });

  it("stopAll leaves no process of ours alive and removes the scratch directories", async () => {
    const pids = runningServers().map((server) => server.pid);
    expect(pids.length).toBe(6);
    // PostgreSQL's backends lead process groups of their own, so they are checked one by one.
    const children = pids.flatMap((pid) => descendantsOf(pid).map((entry) => entry.pid));
    expect(children.length).toBeGreaterThan(0);
    await stopAll();
    expect(runningServers()).toEqual([]);
    for (const pid of [...pids, ...children]) expect(isAlive(pid), `pid ${pid}`).toBe(false);
    for (const pid of pids) expect(processesInGroup(pid), `process group ${pid}`).toEqual([]);
    for (const dir of scratchDirs) expect(fs.existsSync(dir), dir).toBe(false);
  });
});
