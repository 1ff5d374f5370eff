/**
 * Least privilege on a real perf cluster (PostgreSQL 17, PgBouncer 1.24), by real logins: each role the stack creates
 * (configs/roles.ts) can do what it is for and nothing more; its limits are set on the role and in PgBouncer; the
 * superuser never gets in over TCP (directly or through PgBouncer), only on the socket; PgBouncer's admin is not a
 * database role. Then a password rotated on the running cluster as `pulumi up` rotates it on the targets: the new
 * password logs in (directly and through PgBouncer), the old one is refused, an open session and the canary carry on.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Client } from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterSpec, parseClusterFlags } from "../../cli/local";
import { defaultCanarySettings } from "../../configs/canary";
import { canaryRole, canarySchema } from "../../configs/roles";
import { pgDuration } from "../../configs/units";
import { LocalCluster } from "../../local/cluster";
import { clusterUrls, connectionUrl } from "../../local/cluster-files";
import { stopAll } from "../../local/runtime";
import { readState, type ClusterState } from "../../local/state";
import { teardownFromState } from "../../local/teardown";

const stateRoot = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-roles-"));
const name = `roles-${process.pid}`;
const { spec } = clusterSpec(parseClusterFlags(["--memory", "1Gi"]).flags);
const cluster = new LocalCluster({ name, spec, stateRoot, hugePages: false });
let state: ClusterState;

beforeAll(async () => {
  await cluster.start();
  state = readState(stateRoot, name) as ClusterState;
  // A table of the application's, created by its owner as a migration (or the hook) would.
  await withClient(cluster.info.directUrl, (c) =>
    c.query("CREATE TABLE memories (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, embedding vector(3) NOT NULL); INSERT INTO memories (embedding) VALUES ('[1,2,3]')"),
  );
});

afterAll(async () => {
  await cluster.stop().catch(() => undefined);
  await teardownFromState(stateRoot, name).catch(() => undefined);
  await stopAll();
  fs.rmSync(stateRoot, { recursive: true, force: true });
});

async function withClient<T>(url: string, fn: (c: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url, application_name: "roles-test" });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The error of running `sql` as the URL's role, or "ok". */
async function outcome(url: string, sql: string): Promise<string> {
  try {
    await withClient(url, (c) => c.query(sql));
    return "ok";
  } catch (error) {
    return (error as Error).message;
  }
}

function urls() {
  return clusterUrls(cluster.rendered, state.passwords as never, cluster.info.caPath);
}

/** A role's URL straight to PostgreSQL (over TLS, verify-full). */
function direct(role: string, password: string, database = spec.postgres.database): string {
  return connectionUrl(role, password, cluster.rendered.placement.ports.postgres, database, cluster.info.caPath);
}

function pooled(role: string, password: string, database = spec.postgres.database): string {
  return connectionUrl(role, password, cluster.rendered.placement.ports.pgbouncer, database, cluster.info.caPath);
}

describe("each role does what it is for and nothing more", () => {
  it("the application role (through PgBouncer): SELECT, INSERT, UPDATE, DELETE on the owner's tables; no DDL", async () => {
    const app = cluster.info.pooledUrl;
    expect(await outcome(app, "INSERT INTO memories (embedding) VALUES ('[3,2,1]')")).toBe("ok");
    expect(await outcome(app, "UPDATE memories SET embedding = '[0,0,1]' WHERE id = 1")).toBe("ok");
    expect(await outcome(app, "SELECT count(*) FROM memories")).toBe("ok");
    expect(await outcome(app, "DELETE FROM memories WHERE embedding = '[3,2,1]'")).toBe("ok");
    expect(await outcome(app, "CREATE TABLE mine (id int)")).toMatch(/permission denied for schema public/);
    expect(await outcome(app, "DROP TABLE memories")).toMatch(/must be owner of table memories/);
    expect(await outcome(app, "CREATE INDEX ON memories (id)")).toMatch(/must be owner of table memories/);
  });

  it("the read-only role (through PgBouncer): SELECT only", async () => {
    const ro = cluster.info.readOnlyUrl;
    expect(await withClient(ro, async (c) => (await c.query("SELECT count(*)::int AS n FROM memories")).rows[0].n)).toBe(1);
    expect(await outcome(ro, "INSERT INTO memories (embedding) VALUES ('[1,1,1]')")).toMatch(/permission denied for table memories/);
    expect(await outcome(ro, "UPDATE memories SET embedding = '[1,1,1]'")).toMatch(/permission denied for table memories/);
    expect(await outcome(ro, "DELETE FROM memories")).toMatch(/permission denied for table memories/);
    expect(await outcome(ro, "CREATE TABLE mine (id int)")).toMatch(/permission denied for schema public/);
  });

  it("the canary: its own schema and table, nothing of the application's", async () => {
    const canary = urls().canaryPooled;
    expect(await withClient(canary, async (c) => (await c.query("SELECT current_schema() AS s")).rows[0].s)).toBe(canarySchema);
    expect(await outcome(canary, "SELECT count(*) FROM public.memories")).toMatch(/permission denied for table memories/);
    expect(await outcome(canary, "CREATE TABLE public.mine (id int)")).toMatch(/permission denied for schema public/);
    // The running canary made its table where its search_path put it, and no table in public.
    const tables = await withClient(cluster.info.superuserUrl.replace("/postgres?", `/${spec.postgres.database}?`), async (c) =>
      (await c.query<{ t: string }>("SELECT schemaname || '.' || tablename AS t FROM pg_tables WHERE tableowner = $1 ORDER BY 1", [canaryRole])).rows.map((r) => r.t),
    );
    expect(tables).toEqual([`${canarySchema}.${defaultCanarySettings.table}`]);
  });

  it("the owner: DDL on its database, straight to PostgreSQL; not a PgBouncer user", async () => {
    expect(await outcome(cluster.info.directUrl, "CREATE TABLE owned (id int); DROP TABLE owned")).toBe("ok");
    // PgBouncer's word for a user its auth_file does not list (the same as for a wrong password: it tells nothing).
    expect(await outcome(pooled(cluster.rendered.roles.owner, state.passwords.owner), "SELECT 1")).toBe("SASL authentication failed");
  });

  it("the monitor: reads statistics, no table of the application", async () => {
    const monitor = direct(cluster.rendered.roles.monitor, state.passwords.monitor);
    expect(await outcome(monitor, "SELECT count(*) FROM pg_stat_activity")).toBe("ok");
    expect(await outcome(monitor, "SELECT count(*) FROM memories")).toMatch(/permission denied for table memories/);
  });

  it("sets each role's CONNECTION LIMIT and statement_timeout as roles.sql says, and PgBouncer's max_user_connections", async () => {
    const roles = await withClient(cluster.info.superuserUrl, async (c) =>
      (
        await c.query<{ rolname: string; rolconnlimit: number; config: string | null; rolsuper: boolean; rolcreaterole: boolean }>(
          "SELECT r.rolname, r.rolconnlimit, r.rolsuper, r.rolcreaterole, " +
            "(SELECT string_agg(s, ',') FROM pg_db_role_setting d, unnest(d.setconfig) s WHERE d.setrole = r.oid AND d.setdatabase = 0) AS config " +
            "FROM pg_roles r WHERE r.rolname = ANY($1) ORDER BY r.rolname",
          [cluster.rendered.roles.plan.databaseRoles.map((r) => r.name)],
        )
      ).rows,
    );
    const expected = cluster.rendered.roles.plan.databaseRoles
      .map((r) => ({
        rolname: r.name,
        rolconnlimit: r.connectionLimit,
        rolsuper: false,
        rolcreaterole: false,
        config: r.statementTimeoutMs === null ? null : `statement_timeout=${pgDuration(r.statementTimeoutMs)}`,
      }))
      .sort((a, b) => a.rolname.localeCompare(b.rolname));
    expect(roles).toEqual(expected);
    // The limit holds: the canary (limit 5) cannot open a sixth connection straight to PostgreSQL. Its own process
    // holds some; open until refused.
    const held: Client[] = [];
    try {
      let refusal = "";
      for (let i = 0; i < 8 && refusal === ""; i++) {
        const c = new Client({ connectionString: urls().canaryDirect });
        try {
          await c.connect();
          held.push(c);
        } catch (error) {
          refusal = (error as Error).message;
        }
      }
      expect(refusal).toMatch(/too many connections for role "pgstack_canary"/);
    } finally {
      await Promise.all(held.map((c) => c.end().catch(() => undefined)));
    }
    const users = await withClient(urls().stats, async (c) => (await c.query<{ name: string; max_user_connections: number }>("SHOW USERS")).rows);
    const limits = Object.fromEntries(users.map((u) => [u.name, Number(u.max_user_connections)]));
    for (const role of cluster.rendered.roles.plan.databaseRoles) {
      if (role.pgbouncerMaxConnections !== null) expect(limits[role.name]).toBe(role.pgbouncerMaxConnections);
    }
  });
});

describe("the superuser never over the network", () => {
  it("is refused over TCP straight to PostgreSQL, with or without TLS, even with its password", async () => {
    const withTls = direct("postgres", state.passwords.superuser, "postgres");
    expect(await outcome(withTls, "SELECT 1")).toMatch(/pg_hba\.conf rejects connection for host "127\.0\.0\.1", user "postgres", database "postgres", SSL encryption/);
    const plain = withTls.replace(/\?.*$/, "?sslmode=disable");
    expect(await outcome(plain, "SELECT 1")).toMatch(/pg_hba\.conf rejects connection for host "127\.0\.0\.1", user "postgres", database "postgres", no encryption/);
  });

  it("is not a PgBouncer user, and PgBouncer's admin is not a database role", async () => {
    expect(await outcome(pooled("postgres", state.passwords.superuser), "SELECT 1")).toBe("SASL authentication failed");
    const admin = cluster.info.pgbouncerAdminUrl;
    expect(await outcome(admin, "RELOAD")).toBe("ok");
    expect(await outcome(direct(cluster.rendered.roles.pgbouncerAdmin, state.passwords.pgbouncerAdmin), "SELECT 1")).toMatch(/password authentication failed/);
  });

  it("is reached on the Unix socket, by peer, without a password", async () => {
    expect(new URL(cluster.info.superuserUrl).searchParams.get("host")).toMatch(/^\//);
    expect(await withClient(cluster.info.superuserUrl, async (c) => (await c.query("SELECT current_user AS u, inet_server_addr() AS a")).rows[0])).toEqual({ u: "postgres", a: null });
  });
});

describe("password rotation on the running cluster", () => {
  it("the new password logs in directly and through PgBouncer, the old one is refused, open sessions and the canary carry on", async () => {
    const old = { pooled: cluster.info.pooledUrl, app: state.passwords.app };
    const open = new Client({ connectionString: old.pooled, application_name: "roles-test-open" });
    await open.connect();
    const canaryFailures = async () => {
      const text = await (await fetch(`http://127.0.0.1:${cluster.rendered.placement.ports.canary}/metrics`)).text();
      return [...text.matchAll(/^pgstack_canary_connection_failures_total\{[^}]*\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    };
    const failuresBefore = await canaryFailures();
    try {
      const info = await cluster.rotatePassword("app", "Rotated-Password-0001");
      expect(info.pooledUrl).not.toBe(old.pooled);
      expect(await outcome(info.pooledUrl, "SELECT 1")).toBe("ok");
      expect(await outcome(direct("app", "Rotated-Password-0001"), "SELECT 1")).toBe("ok");
      expect(await outcome(old.pooled, "SELECT 1")).toBe("SASL authentication failed");
      expect(await outcome(direct("app", old.app), "SELECT 1")).toMatch(/password authentication failed for user "app"/);
      // A session opened before the rotation is not dropped: SCRAM checks a password at login only.
      expect((await open.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
      expect(readState(stateRoot, name)?.passwords.app).toBe("Rotated-Password-0001");
      // The other roles were not touched, and the canary (its own role) saw no failure across the switch.
      expect(await outcome(cluster.info.readOnlyUrl, "SELECT 1")).toBe("ok");
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      expect(await canaryFailures()).toBe(failuresBefore);
    } finally {
      await open.end().catch(() => undefined);
    }
  });

  it("refuses a role whose password belongs to the cluster's own processes", async () => {
    await expect(cluster.rotatePassword("canary" as never)).rejects.toThrow(/rotates owner, app or readOnly, not "canary"/);
  });
});
