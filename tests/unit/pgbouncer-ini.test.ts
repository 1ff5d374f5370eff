import { describe, expect, it } from "vitest";
import { listStacks, loadStackSpec } from "../../cli/stack-file";
import { memoryPlan } from "../../configs/memory";
import { renderPgHba } from "../../configs/pg-hba";
import { localPlacement, placementFor, placementProblems } from "../../configs/placement";
import {
  pgbouncerAuthFile,
  pgbouncerUserlist,
  pgbouncerUsers,
  renderPgBouncerIni,
} from "../../configs/pgbouncer";
import { renderStack } from "../../configs/render";
import { renderPostgresqlConf } from "../../configs/postgresql";
import { statsUser } from "../../configs/roles";
import { scramVerifier } from "../../configs/scram";
import { specFor, stagingSpec } from "./spec-fixture";

/** section → key → value, as PgBouncer reads the ini (`;`/`#` lines are comments). */
function parseIni(text: string): Map<string, Map<string, string>> {
  const sections = new Map<string, Map<string, string>>();
  let current = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (/^\s*([;#]|$)/.test(line)) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1], current);
      continue;
    }
    const kv = /^([^=]+?)\s*=\s*(.*)$/.exec(line);
    if (!kv) throw new Error(`not an ini line: ${line}`);
    expect(current.has(kv[1]), `${kv[1]} set twice`).toBe(false);
    current.set(kv[1], kv[2]);
  }
  return sections;
}

describe("pgbouncer.ini", () => {
  const ini = parseIni(renderPgBouncerIni(stagingSpec));
  const pgb = ini.get("pgbouncer")!;

  it.each([
    // the guide's PgBouncer Configuration
    ["pool_mode", "transaction"],
    ["max_client_conn", "2000"],
    ["default_pool_size", "100"],
    ["server_connect_timeout", "15"],
    ["query_timeout", "300"],
    // authentication and the rest
    ["auth_type", "scram-sha-256"],
    ["auth_file", pgbouncerAuthFile],
    ["max_prepared_statements", "200"],
    ["ignore_startup_parameters", "extra_float_digits,options"],
    ["stats_users", statsUser],
    // A PgBouncer user only, not a database role: the console never needs the superuser.
    ["admin_users", "pgstack_pgbouncer_admin"],
    ["log_connections", "1"],
    ["log_disconnections", "1"],
    // mtail's feed for refused logins (configs/pgbouncer-log.ts), where both container targets share it
    ["logfile", "/var/run/pgbouncer/pgbouncer.log"],
    ["log_pooler_errors", "1"],
    ["listen_addr", "*"],
    ["listen_port", "6432"],
    ["max_db_connections", "185"],
  ])("%s = %s", (key, value) => {
    expect(pgb.get(key)).toBe(value);
  });

  it("pools the stack's database on the server beside it, with no credentials in the connection string", () => {
    expect([...ini.get("databases")!]).toEqual([["app", "host=127.0.0.1 port=5432 dbname=app"]]);
    const other = parseIni(renderPgBouncerIni(stagingSpec, { server: { host: "127.0.0.1", port: 40001 }, authFile: "/x/users.txt" }));
    expect(other.get("databases")!.get("app")).toBe("host=127.0.0.1 port=40001 dbname=app");
    expect(other.get("pgbouncer")!.get("auth_file")).toBe("/x/users.txt");
  });

  it("follows pgbouncer.* from the spec, and the perf cluster's placement for where it listens", () => {
    const spec = specFor({ target: "local", pgbouncer: { poolMode: "session", defaultPoolSize: 20, maxPreparedStatements: 0 } });
    const values = new Map(parseIni(renderStack(spec).files["pgbouncer.ini"]).get("pgbouncer"));
    expect([values.get("pool_mode"), values.get("default_pool_size"), values.get("max_prepared_statements"), values.get("listen_addr")]).toEqual([
      "session",
      "20",
      "0",
      "127.0.0.1",
    ]);
  });

  it("gives every key a reason and is deterministic", () => {
    const text = renderPgBouncerIni(stagingSpec);
    expect(renderPgBouncerIni(stagingSpec)).toBe(text);
    const lines = text.split("\n");
    lines.forEach((line, i) => {
      if (/^[a-z_]+ = /.test(line) && i > 0 && !lines[i - 1].startsWith("[")) expect(lines[i - 1]).toMatch(/^;; \S/);
    });
  });
});

describe("client_tls_sslmode: require everywhere; allow only for the perf cluster's TLS cost comparison", () => {
  const sslmode = (ini: string) => parseIni(ini).get("pgbouncer")!.get("client_tls_sslmode");
  const stacks = listStacks();

  it("finds the committed stacks", () => {
    expect(stacks).toEqual(expect.arrayContaining(["dev", "perf", "prod", "staging"]));
  });

  it.each(stacks)("stack %s renders require, as every command and pulumi up render it", (stack) => {
    const rendered = renderStack(loadStackSpec(stack));
    expect(rendered.placement.clientTls).toBe("require");
    expect(sslmode(rendered.files["pgbouncer.ini"])).toBe("require");
  });

  it("the perf cluster's default placement (a run without --compare-tls) renders require", () => {
    const spec = specFor({ target: "local" });
    expect(localPlacement({}).clientTls).toBe("require");
    expect(sslmode(renderStack(spec, localPlacement({ ports: { pgbouncer: 40002 } })).files["pgbouncer.ini"])).toBe("require");
    expect(sslmode(renderPgBouncerIni(stagingSpec))).toBe("require");
  });

  it("allow changes that one line and its reason; PgBouncer still verifies PostgreSQL, and pg_hba stays hostssl-only", () => {
    const spec = specFor({ target: "local" });
    const require = renderStack(spec, localPlacement({}));
    const allow = renderStack(spec, localPlacement({ clientTls: "allow" }));
    const changed = (a: string, b: string) => a.split("\n").filter((line, i) => line !== b.split("\n")[i]);
    expect(changed(allow.files["pgbouncer.ini"], require.files["pgbouncer.ini"])).toEqual([
      ";; for the perf cluster's TLS cost comparison only (pgstack local perf --compare-tls): plain-text clients are admitted beside TLS ones, " +
        "so both are measured through this one PgBouncer; PgBouncer to PostgreSQL stays verify-full and PostgreSQL stays hostssl-only",
      "client_tls_sslmode = allow",
    ]);
    expect(parseIni(allow.files["pgbouncer.ini"]).get("pgbouncer")!.get("server_tls_sslmode")).toBe("verify-full");
    expect(allow.files["pg_hba.conf"]).toBe(require.files["pg_hba.conf"]);
    // Only hostssl lines admit anyone over TCP: every host and hostnossl line rejects.
    const tcpWithoutTls = allow.files["pg_hba.conf"].split("\n").filter((line) => /^(host|hostnossl)\s/.test(line));
    expect(tcpWithoutTls.length).toBeGreaterThan(0);
    for (const line of tcpWithoutTls) expect(line).toMatch(/\sreject\s/);
    expect(allow.files["postgresql.conf"]).toBe(require.files["postgresql.conf"]);
  });

  it.each(["docker", "kubernetes"] as const)("is refused on the %s target's placement, before anything renders", (target) => {
    const placement = { ...placementFor(target), clientTls: "allow" as const };
    expect(placementProblems(placement)).toEqual([`clientTls "allow" is for the perf cluster's TLS cost comparison only; target ${target} requires TLS of every client`]);
    expect(() => renderStack(specFor({ target, ...(target === "docker" ? { node: { memory: "8Gi", cpus: 4 } } : {}) }), placement)).toThrow(/clientTls "allow" is for the perf cluster's TLS cost comparison only/);
  });

  it("has no stack file key: the gate refuses one by name", () => {
    for (const key of ["clientTls", "clientTlsSslmode", "client_tls_sslmode"]) {
      expect(() => specFor({ target: "local", pgbouncer: { [key]: "allow" } })).toThrow(`unknown key pgbouncer.${key}`);
    }
  });
});

describe("userlist (auth_file)", () => {
  const app = scramVerifier("app-secret-1", Buffer.alloc(16, 1));
  const stats = scramVerifier("stats-secret-2", Buffer.alloc(16, 2));

  it("holds one quoted verifier per user, sorted", () => {
    expect(pgbouncerUserlist([{ user: statsUser, verifier: stats }, { user: "app", verifier: app }])).toBe(`"app" "${app}"\n"${statsUser}" "${stats}"\n`);
  });

  it("refuses a password, so none can end up in the file", () => {
    expect(() => pgbouncerUserlist([{ user: "app", verifier: "app-secret-1" }])).toThrow(/not a SCRAM-SHA-256 verifier/);
    expect(() => pgbouncerUserlist([{ user: "app", verifier: app }, { user: "app", verifier: app }])).toThrow(/twice/);
  });

  it("names the users the auth_file needs", () => {
    // The pooled roles and the two console users; never the superuser, the owner or the monitor (direct only).
    expect(pgbouncerUsers(stagingSpec)).toEqual(["app", "app_readonly", "pgstack_canary", "pgstack_pgbouncer_admin", "pgstack_stats"]);
  });

  it("caps each pooled role at its CONNECTION LIMIT ([users] max_user_connections)", () => {
    const users = [...parseIni(renderPgBouncerIni(stagingSpec)).get("users")!];
    expect(users).toEqual([
      ["app", "max_user_connections=110"],
      ["app_readonly", "max_user_connections=92"],
      ["pgstack_canary", "max_user_connections=3"],
    ]);
  });
});

describe("no secret in any rendered file", () => {
  it("renders postgresql.conf, pg_hba.conf and pgbouncer.ini without a password or verifier", () => {
    const files = [renderPostgresqlConf(stagingSpec), renderPgHba(), renderPgBouncerIni(stagingSpec), JSON.stringify(memoryPlan(stagingSpec))];
    for (const file of files) {
      expect(file).not.toMatch(/SCRAM-SHA-256\$/);
      expect(file).not.toMatch(/^\s*[^#;\s]*password\s*=/im);
      expect(file).not.toMatch(/\bpassword=/i);
    }
  });
});
