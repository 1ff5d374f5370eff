/**
 * SCRAM end to end on the real programs: a verifier from configs/scram.ts is accepted by PostgreSQL 17 as a role's
 * password; PgBouncer 1.24 runs with the rendered pgbouncer.ini and a userlist of verifiers, a client logs in
 * through it by SCRAM (pass-through to the server), a wrong password and an unknown user are refused, and
 * protocol-level named prepared statements keep working across transactions in transaction mode, even when
 * PgBouncer has to move them to a new server connection.
 */
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import { Client } from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderPgHba } from "../../configs/pg-hba";
import { pgbouncerUserlist, renderPgBouncerIni } from "../../configs/pgbouncer";
import { renderPostgresqlConf } from "../../configs/postgresql";
import { statsUser } from "../../configs/roles";
import { scramVerifier } from "../../configs/scram";
import { getRuntime, startPgBouncer, startPostgres, stopAll, type PgBouncerServer, type PostgresServer } from "../../local/runtime";
import { specFor } from "../unit/spec-fixture";

const spec = specFor({ target: "local", node: { memory: "4Gi", cpus: 2 } }, "perf");
const { database, appUser } = spec.postgres;
const appPassword = `app-${randomBytes(12).toString("base64url")}`;
const statsPassword = `stats-${randomBytes(12).toString("base64url")}`;
const appVerifier = scramVerifier(appPassword, randomBytes(16));
const statsVerifier = scramVerifier(statsPassword, randomBytes(16));

let pg: PostgresServer;
let pgb: PgBouncerServer;
let ini: string;
let userlist: string;

const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;

async function withClient<T>(connectionString: string, fn: (c: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function loginError(connectionString: string): Promise<string> {
  const client = new Client({ connectionString });
  try {
    await client.connect();
  } catch (error) {
    return (error as Error).message;
  } finally {
    await client.end().catch(() => undefined);
  }
  return "logged in";
}

beforeAll(async () => {
  const runtime = await getRuntime();
  pg = await startPostgres({ runtime, postgresqlConf: renderPostgresqlConf(spec), pgHbaConf: renderPgHba() });
  await pg.psql(`CREATE ROLE ${appUser} LOGIN PASSWORD ${literal(appVerifier)};\nCREATE DATABASE ${database} OWNER ${appUser};`);
  ini = renderPgBouncerIni(spec, { server: { host: pg.host, port: pg.port } });
  userlist = pgbouncerUserlist([
    { user: appUser, verifier: appVerifier },
    { user: statsUser, verifier: statsVerifier },
  ]);
  pgb = await startPgBouncer({ runtime, ini, userlist });
});

afterAll(stopAll);

describe("SCRAM verifiers from configs/scram.ts on PostgreSQL 17", () => {
  it("stores the verifier as given and logs the role in with the password", async () => {
    expect(await pg.psql(`SELECT rolpassword FROM pg_authid WHERE rolname = ${literal(appUser)};`)).toBe(appVerifier);
    const row = await withClient(pg.url(database, appUser, appPassword), async (c) => (await c.query("SELECT current_user AS u")).rows[0]);
    expect(row.u).toBe(appUser);
    expect(await loginError(pg.url(database, appUser, `${appPassword}x`))).toMatch(/password authentication failed for user "app"/);
  });

  it.each([
    ["ASCII", randomBytes(18).toString("base64"), true],
    ["non-ASCII, unchanged by SASLprep", `pässwörd-${randomBytes(4).toString("hex")}`, true],
    // node-postgres does not SASLprep the password it sends, so it cannot log in with one that SASLprep changes
    // (psql/libpq can); the verifier itself must still match PostgreSQL's.
    ["non-ASCII, mapped by SASLprep (no-break space, roman numeral)", `pässwörd\u00a0\u2168${randomBytes(4).toString("hex")}`, false],
  ])("matches the verifier PostgreSQL computes itself: %s", async (_kind, password, login) => {
    const role = `scram_${randomBytes(4).toString("hex")}`;
    const stored = await pg.psql(`CREATE ROLE ${role} LOGIN PASSWORD ${literal(password)};\nSELECT rolpassword FROM pg_authid WHERE rolname = ${literal(role)};`);
    const salt = Buffer.from(stored.split("$")[1].split(":")[1], "base64");
    expect(scramVerifier(password, salt)).toBe(stored);
    if (!login) return;
    // And the reverse: a role given our verifier for this password logs in with it.
    const ours = scramVerifier(password, randomBytes(16));
    await pg.psql(`ALTER ROLE ${role} PASSWORD ${literal(ours)};`);
    const row = await withClient(pg.url("postgres", role, password), async (c) => (await c.query("SELECT current_user AS u")).rows[0]);
    expect(row.u).toBe(role);
  });
});

describe("PgBouncer with the rendered ini and a userlist of verifiers", () => {
  it("holds no password in the ini or the userlist", () => {
    for (const text of [ini, userlist]) {
      expect(text).not.toContain(appPassword);
      expect(text).not.toContain(statsPassword);
    }
  });

  it("lets a client in by SCRAM and passes it through to PostgreSQL as itself", async () => {
    const row = await withClient(pgb.url(database, appUser, appPassword), async (c) =>
      (await c.query("SELECT current_user AS u, current_setting('application_name') AS app, inet_server_port() AS port")).rows[0],
    );
    expect(row.u).toBe(appUser);
    expect(row.port).toBe(pg.port);
  });

  it("refuses a wrong password and an unknown user", async () => {
    // PgBouncer answers a failed SCRAM exchange with "SASL authentication failed", for a wrong password and for a
    // user it does not know alike (it does not tell which).
    expect(await loginError(pgb.url(database, appUser, "wrong-password"))).toMatch(/SASL authentication failed/);
    expect(await loginError(pgb.url(database, "nobody", appPassword))).toMatch(/SASL authentication failed/);
  });

  it("logs connections and failed logins for the failure count", () => {
    const log = fs.readFileSync(pgb.logFile, "utf8");
    expect(log).toMatch(/login attempt: db=app user=app/);
    expect(log).toMatch(/(SASL|password) authentication failed/);
  });

  it("lets the stats user read SHOW POOLS on the admin console", async () => {
    const rows = await withClient(pgb.url("pgbouncer", statsUser, statsPassword), async (c) => (await c.query("SHOW POOLS")).rows);
    expect(rows.some((r) => r.database === database && r.user === appUser && r.pool_mode === "transaction")).toBe(true);
    expect(await loginError(pgb.url("pgbouncer", statsUser, "wrong"))).toMatch(/SASL authentication failed/);
  });

  it("keeps a named prepared statement working across transactions and server connections", async () => {
    await withClient(pgb.url(database, appUser, appPassword), async (client) => {
      const backends = new Set<number>();
      for (let i = 0; i < 6; i++) {
        await client.query("BEGIN");
        const row = (await client.query({ name: "add_one", text: "SELECT $1::int + 1 AS n, pg_backend_pid() AS pid", values: [i] })).rows[0];
        await client.query("COMMIT");
        expect(row.n).toBe(i + 1);
        backends.add(row.pid);
        if (i % 2 === 1) {
          // Close the server connection PgBouncer used: the next transaction gets a new one, where PgBouncer must
          // prepare "add_one" again before executing it.
          await pg.psql(`SELECT pg_terminate_backend(${row.pid});`);
          await new Promise((r) => setTimeout(r, 300));
        }
      }
      expect(backends.size).toBeGreaterThanOrEqual(3);
    });
  });
});
