import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import { Client } from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { statsUser } from "../../configs/roles";
import { testBootstrapSql } from "./roles-fixture";
import { scramVerifier } from "../../configs/scram";
import { parseStackSpec } from "../../configs/spec";
import { verifyFullQuery } from "../../configs/tls";
import {
  getRuntime,
  httpGet,
  promtool,
  runningServers,
  startPgBouncer,
  startPostgres,
  startPrometheus,
  stopAll,
  type PgBouncerServer,
  type PostgresServer,
  type Runtime,
} from "../../local/runtime";
import { descendantsOf, processesInGroup } from "../../local/runtime/processTable";
import { renderedFor, rigCa, startRenderedExporter } from "./rendered-launch";

// Small on purpose: the rig must run whatever conf it is given, including the stack's preload library.
const POSTGRESQL_CONF = [
  "shared_buffers = 128MB",
  "max_connections = 40",
  "password_encryption = 'scram-sha-256'",
  "shared_preload_libraries = 'pg_stat_statements'",
  // The rig gives the server its certificate (-c ssl_cert_file, ssl_key_file); whether to use TLS is the conf's.
  "ssl = on",
  "",
].join("\n");

const PG_HBA_CONF = ["local all all scram-sha-256", "hostssl all all 127.0.0.1/32 scram-sha-256", ""].join("\n");

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

/** A small local stack: what the exporters' launches are rendered from. */
const spec = parseStackSpec("rig", { target: "local", node: { memory: "2Gi", cpus: 2 } });
const monitorPassword = randomBytes(18).toString("hex");
const statsPassword = randomBytes(18).toString("hex");

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

  it("starts PostgreSQL from the given conf, unedited, and answers over TCP with TLS (verify-full, the rig's CA) and SCRAM only", async () => {
    pg = await startPostgres({ runtime, postgresqlConf: POSTGRESQL_CONF, pgHbaConf: PG_HBA_CONF });
    scratchDirs.push(pg.scratch.hostPath);
    expect(fs.readFileSync(`${pg.dataDir}/postgresql.conf`, "utf8")).toBe(POSTGRESQL_CONF);

    // The superuser over TCP, as this test's own pg_hba.conf allows (the stack's never does; pg.url() then takes the socket).
    const overTcp = (password: string) => `postgresql://postgres:${encodeURIComponent(password)}@127.0.0.1:${pg.port}/postgres?${verifyFullQuery(pg.caPath)}`;
    const row = await queryOne(
      overTcp(pg.password),
      "SELECT current_setting('server_version_num')::int AS version, current_setting('shared_preload_libraries') AS preload, inet_server_port() AS port, " +
        "(SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()) AS ssl",
    );
    expect(row.ssl).toBe(true);
    expect(pg.url("postgres", "app", "x")).toMatch(new RegExp(`\\?sslmode=verify-full&sslrootcert=${pg.caPath}$`));
    expect(row.version).toBeGreaterThanOrEqual(170000);
    expect(row.version).toBeLessThan(180000);
    expect(row.preload).toBe("pg_stat_statements");
    expect(row.port).toBe(pg.port);

    await expect(queryOne(overTcp("not-the-password"), "SELECT 1")).rejects.toThrow(
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
      // pgbouncer_exporter's user, on the admin console with SHOW only.
      `stats_users = ${statsUser}`,
      "pool_mode = transaction",
      "ignore_startup_parameters = extra_float_digits",
      // TLS on both legs; the rig writes the files (its certificate, the rig's CA for both legs).
      "client_tls_sslmode = require",
      "server_tls_sslmode = verify-full",
      "",
    ].join("\n");
    const statsVerifier = scramVerifier(statsPassword, randomBytes(16));
    bouncer = await startPgBouncer({ runtime, ini, userlist: `"postgres" "${verifier}"\n"${statsUser}" "${statsVerifier}"\n` });
    scratchDirs.push(bouncer.scratch.hostPath);
    expect(fs.readFileSync(bouncer.scratch.hostPathOf("userlist.txt"), "utf8")).not.toContain(pg.password);

    const row = await queryOne(bouncer.url("postgres", "postgres", pg.password), "SELECT inet_server_port() AS port, 1 AS one");
    expect(row).toEqual({ port: pg.port, one: 1 });
  });

  it("serves pg_up 1, pgbouncer_up 1 and node metrics from the exporters' rendered launches, no password on a command line", async () => {
    // The stack's roles (the monitor role with pg_monitor, the app database); the exporters' launches rendered for
    // a placement at these servers, their queries file where it says.
    await pg.psql(testBootstrapSql(spec, { monitor: scramVerifier(monitorPassword, randomBytes(16)) }));
    const queries = runtime.scratchDir("queries");
    scratchDirs.push(queries.hostPath);
    // The exporters verify both servers with the rig's CA, which signed both certificates.
    let rendered = await renderedFor(spec, {
      ports: { postgres: pg.port, pgbouncer: bouncer.port },
      paths: { postgresExporterQueries: queries.pathOf("queries.yaml"), tlsCa: rigCa(bouncer) },
    });
    queries.writeFile("queries.yaml", rendered.files["postgres-exporter-queries.yaml"], 0o644);
    const started = async (exporter: "postgresExporter" | "pgbouncerExporter" | "nodeExporter") => {
      const placed = await startRenderedExporter(runtime, rendered, exporter, { monitorPassword, statsPassword });
      rendered = placed.rendered;
      return placed.server;
    };
    const postgresExporter = await started("postgresExporter");
    const pgbouncerExporter = await started("pgbouncerExporter");
    const nodeExporter = await started("nodeExporter");
    scratchDirs.push(postgresExporter.scratch.hostPath, pgbouncerExporter.scratch.hostPath, nodeExporter.scratch.hostPath);
    for (const [server, launch] of [
      [postgresExporter, rendered.launches.postgresExporter],
      [pgbouncerExporter, rendered.launches.pgbouncerExporter],
      [nodeExporter, rendered.launches.nodeExporter],
    ] as const) {
      expect(server.port).toBe(launch.port);
      // Under chroot the program replaced chroot, so argv[0] is the program itself: the rest is the launch's.
      expect(fs.readFileSync(`/proc/${server.process.pid}/cmdline`, "utf8").split("\0").slice(1, -1)).toEqual(launch.args);
    }
    for (const server of runningServers()) {
      const argv = fs.readFileSync(`/proc/${server.pid}/cmdline`, "utf8");
      for (const pw of [pg.password, monitorPassword, statsPassword]) expect(argv, server.name).not.toContain(pw);
    }

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
