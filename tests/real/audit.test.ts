/**
 * postgres.audit on a real perf cluster (PostgreSQL 17 with Debian 13's postgresql-17-pgaudit): the rendered
 * shared_preload_libraries loads pgaudit, roles.sql creates its extension, and the classes postgres.audit.log names
 * are logged — a DDL by the owner, a role change, a write by the application role — in PostgreSQL's log (the file
 * mtail follows), with the statement and without its parameters; a read, not named, is not. A stack without audit
 * (every other real test's) loads no pgaudit.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Client } from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseStackSpec } from "../../configs/spec";
import { LocalCluster } from "../../local/cluster";
import { stopAll } from "../../local/runtime";
import { teardownFromState } from "../../local/teardown";

const stateRoot = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-audit-"));
const name = `audit-${process.pid}`;
const spec = parseStackSpec("audit", {
  target: "local",
  node: { memory: "1Gi", cpus: 2 },
  postgres: { audit: { enabled: true, log: ["ddl", "role", "write"] } },
});
const cluster = new LocalCluster({ name, spec, stateRoot, hugePages: false });

beforeAll(async () => {
  await cluster.start();
});

afterAll(async () => {
  await cluster.stop().catch(() => undefined);
  await teardownFromState(stateRoot, name).catch(() => undefined);
  await stopAll();
  fs.rmSync(stateRoot, { recursive: true, force: true });
});

async function run(url: string, ...statements: [string, unknown[]?][]): Promise<void> {
  const client = new Client({ connectionString: url, application_name: "audit-test" });
  await client.connect();
  try {
    for (const [sql, params] of statements) await client.query(sql, params);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** PostgreSQL's log files (the logging collector's), as mtail reads them. */
function serverLog(): string {
  const dir = cluster.info.logs.postgres_log_dir;
  return fs
    .readdirSync(dir)
    .map((f) => fs.readFileSync(path.join(dir, f), "utf8"))
    .join("");
}

async function logged(pattern: RegExp, timeoutMs = 10_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const lines = serverLog()
      .split("\n")
      .filter((l) => pattern.test(l));
    if (lines.length > 0 || Date.now() > deadline) return lines;
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe("postgres.audit with pgaudit", () => {
  it("loads pgaudit as rendered, its extension in the stack's database", async () => {
    const client = new Client({ connectionString: cluster.info.superuserUrl.replace("/postgres?", `/${spec.postgres.database}?`) });
    await client.connect();
    try {
      const settings = await client.query<{ name: string; setting: string }>(
        "SELECT name, setting FROM pg_settings WHERE name IN ('shared_preload_libraries', 'pgaudit.log', 'pgaudit.log_parameter') ORDER BY name",
      );
      expect(settings.rows).toEqual([
        { name: "pgaudit.log", setting: "ddl, role, write" },
        { name: "pgaudit.log_parameter", setting: "off" },
        { name: "shared_preload_libraries", setting: "pg_stat_statements,pgaudit" },
      ]);
      const ext = await client.query("SELECT extname FROM pg_extension WHERE extname = 'pgaudit'");
      expect(ext.rows).toEqual([{ extname: "pgaudit" }]);
    } finally {
      await client.end();
    }
  });

  it("logs the owner's DDL, a role change and the application's writes, never the values bound", async () => {
    await run(cluster.info.directUrl, ["CREATE TABLE audited (id int PRIMARY KEY, note text)"], ["ALTER ROLE CURRENT_USER SET work_mem = '8MB'"]);
    await run(cluster.info.pooledUrl, ["INSERT INTO audited VALUES ($1, $2)", [1, "secret-bound-value-7f3a"]], ["SELECT * FROM audited"]);
    const ddl = await logged(/AUDIT: SESSION,\d+,\d+,DDL,CREATE TABLE,/);
    expect(ddl.join("\n")).toContain("CREATE TABLE audited (id int PRIMARY KEY, note text)");
    expect(ddl.join("\n")).toMatch(/user=app_owner,db=app,/);
    // The owner's ALTER ROLE; the bootstrap's own role statements (roles.sql, as the superuser on the socket) are in
    // the trail too, as they should be.
    const role = await logged(/user=app_owner,db=app,.*AUDIT: SESSION,\d+,\d+,ROLE,ALTER ROLE,/);
    expect(role).toHaveLength(1);
    expect((await logged(/user=postgres,.*AUDIT: SESSION,\d+,\d+,ROLE,/)).length).toBeGreaterThan(0);
    const write = await logged(/AUDIT: SESSION,\d+,\d+,WRITE,INSERT,/);
    expect(write.join("\n")).toMatch(/user=app,db=app,/);
    expect(write.join("\n")).toContain("INSERT INTO audited VALUES ($1, $2)");
    // Not the parameters (pgaudit.log_parameter = off), and no READ class: the SELECT is not in the audit trail.
    expect(serverLog()).not.toContain("secret-bound-value-7f3a");
    expect(await logged(/AUDIT: SESSION,\d+,\d+,READ,/, 1_000)).toEqual([]);
  });
});
