/**
 * pgbouncer.ini per the tuning guide's "PgBouncer Configuration" (transaction pooling, max_client_conn 2000,
 * default_pool_size 100, server_connect_timeout 15, query_timeout 300), and the auth_file it reads.
 *
 * Authentication: `auth_type = scram-sha-256` with an `auth_file` of SCRAM verifiers, never passwords.
 *  - Clients authenticate to PgBouncer with SCRAM against the verifier in the auth_file.
 *  - PgBouncer then logs in to PostgreSQL as the same user by SCRAM pass-through: it reuses the keys the client
 *    proved in its own exchange, which works when PostgreSQL holds the very same verifier (same salt and
 *    iterations). The deploy step computes one verifier per role (configs/scram.ts, with a salt it derives
 *    deterministically so redeploys change nothing), sets it
 *    with `ALTER ROLE … PASSWORD '<verifier>'` (configs/roles.ts) and writes the same string in the userlist.
 *  - No file holds a usable password: the ini names the auth_file's path only, and the userlist holds verifiers,
 *    which pgbouncerUserlist() enforces. The alternative, auth_user + auth_query, needs PgBouncer to log in to
 *    PostgreSQL on its own, so the auth user's plaintext password (or md5 hash, which is password-equivalent) must
 *    sit in the auth_file after all (PGO's users.txt does exactly that), plus a SECURITY DEFINER lookup function.
 *  - Cost: a password change means re-rendering the userlist and reloading PgBouncer; the deploy does both.
 */
import { pgbouncerAdminUser, pgbouncerUsers as planPgbouncerUsers, rolePlan, statsUser, type RolePlan } from "./roles";
import { containerPgbouncerLog } from "./pgbouncer-log";
import { isScramVerifier } from "./scram";
import { containerTls, type TlsFiles } from "./tls";
import type { StackSpec } from "./stack-spec";

/** The pooled port every target publishes (the Services' "pooled" port). */
export const pgbouncerPort = 6432;

/** Where the targets mount the userlist (a Secret on Kubernetes, an upload on Docker). */
export const pgbouncerAuthFile = "/etc/pgbouncer/userlist.txt";

/**
 * PgBouncer admin console user (PAUSE, RELOAD, SHOW): a PgBouncer user only (configs/roles.ts), not a database role,
 * so the console never needs the superuser and the superuser never logs in over TCP.
 */
export { pgbouncerAdminUser };

/**
 * What PgBouncer asks of its clients (client_tls_sslmode). "require" everywhere the stack runs. "allow" admits
 * plain-text clients beside TLS ones, so one PgBouncer can be measured both ways: only the perf cluster's TLS cost
 * comparison (`pgstack local perf --compare-tls`) asks for it, and configs/placement.ts refuses it on any other target.
 */
export type ClientTlsMode = "require" | "allow";

export interface PgBouncerIniOptions {
  /** The PostgreSQL PgBouncer pools. Defaults to 127.0.0.1:5432: the server in the same pod or network namespace. */
  readonly server?: { readonly host: string; readonly port: number };
  /** Path of the auth_file. Defaults to `pgbouncerAuthFile`. */
  readonly authFile?: string;
  /** listen_addr. Defaults to "*" (clients come over the pod/container network); the perf cluster passes 127.0.0.1. */
  readonly listenAddr?: string;
  /** listen_port. Defaults to `pgbouncerPort`. */
  readonly listenPort?: number;
  /** The certificate it presents, its key, and the CA it verifies PostgreSQL with. Defaults to the containers' mount. */
  readonly tls?: TlsFiles;
  /** client_tls_sslmode (see ClientTlsMode). Defaults to "require". */
  readonly clientTls?: ClientTlsMode;
  /** logfile: what mtail follows for failed logins (configs/pgbouncer-log.ts). Defaults to `containerPgbouncerLog`. */
  readonly logFile?: string;
}

export interface PgBouncerSetting {
  readonly name: string;
  readonly value: string;
  readonly reason: string;
}

/** The [pgbouncer] section as data, in file order. */
export function pgbouncerSettings(spec: StackSpec, opts: PgBouncerIniOptions = {}): readonly PgBouncerSetting[] {
  const pb = spec.pgbouncer;
  const { maintenance, monitoring } = spec.postgres.reservedConnections;
  const serverRoom = spec.postgres.maxConnections - maintenance - monitoring;
  const listenAddr = opts.listenAddr ?? "*";
  const listenPort = opts.listenPort ?? pgbouncerPort;
  const tls = opts.tls ?? containerTls;
  return [
    {
      name: "listen_addr",
      value: listenAddr,
      reason: listenAddr === "*" ? "clients reach the pooler on the pod/container network" : "the perf cluster is reached on loopback only",
    },
    {
      name: "listen_port",
      value: String(listenPort),
      reason: listenPort === pgbouncerPort ? "the pooled port of every target" : "the perf cluster's free loopback port for this run",
    },
    { name: "unix_socket_dir", value: "", reason: "no Unix socket: clients and the exporter connect over TCP" },
    { name: "auth_type", value: "scram-sha-256", reason: "guide, Security: strong authentication (SCRAM-SHA-256)" },
    clientTlsSetting(opts.clientTls ?? "require"),
    { name: "client_tls_cert_file", value: tls.certificate, reason: "the server certificate PostgreSQL presents too; re-read on RELOAD, so renewing needs no restart" },
    { name: "client_tls_key_file", value: tls.key, reason: "its key (a wrong one on RELOAD: PgBouncer keeps the old pair and logs it)" },
    {
      name: "client_tls_ca_file",
      value: tls.ca,
      reason: "PgBouncer loads a CA for the client leg even under require (client certificates are not asked for); without one it needs the system's, which slim images lack",
    },
    { name: "client_tls_protocols", value: "tlsv1.2,tlsv1.3", reason: "guide, Security: TLS 1.2 at least" },
    { name: "server_tls_sslmode", value: "verify-full", reason: "to PostgreSQL over TLS too, its certificate checked against the stack's CA and the address in [databases]" },
    { name: "server_tls_ca_file", value: tls.ca, reason: "the stack's CA" },
    { name: "server_tls_protocols", value: "tlsv1.2,tlsv1.3", reason: "TLS 1.2 at least" },
    { name: "auth_file", value: opts.authFile ?? pgbouncerAuthFile, reason: "SCRAM verifiers, never passwords (see configs/pgbouncer.ts)" },
    { name: "admin_users", value: pgbouncerAdminUser, reason: "may PAUSE, RESUME, RELOAD the pooler: a PgBouncer user only, not a database role" },
    { name: "stats_users", value: statsUser, reason: "pgbouncer_exporter's read-only SHOW access" },
    { name: "pool_mode", value: pb.poolMode, reason: "guide: transaction-level pooling" },
    { name: "max_client_conn", value: String(pb.maxClientConn), reason: "guide: 2000 (supports all application clients)" },
    { name: "default_pool_size", value: String(pb.defaultPoolSize), reason: "guide: 100 per database" },
    { name: "reserve_pool_size", value: String(pb.reservePoolSize), reason: "extra server connections when clients wait longer than reserve_pool_timeout" },
    { name: "reserve_pool_timeout", value: "5", reason: "seconds a client waits before the reserve pool opens (PgBouncer's default, stated)" },
    {
      name: "max_db_connections",
      value: String(serverRoom),
      reason: `max_connections ${spec.postgres.maxConnections} less ${maintenance} maintenance and ${monitoring} monitoring slots: the pooler never takes those`,
    },
    { name: "server_connect_timeout", value: String(pb.serverConnectTimeoutSeconds), reason: "guide: server connect timeout 15 seconds" },
    { name: "query_timeout", value: String(pb.queryTimeoutSeconds), reason: "guide: query timeout 300 seconds (5 minutes for vector ops)" },
    { name: "server_idle_timeout", value: String(pb.serverIdleTimeoutSeconds), reason: "close server connections idle this long" },
    { name: "client_idle_timeout", value: String(pb.clientIdleTimeoutSeconds), reason: "0: the application's own pool closes idle clients (guide: idle timeout 5 minutes)" },
    {
      name: "max_prepared_statements",
      value: String(pb.maxPreparedStatements),
      reason: "protocol-level prepared statements across transactions (PgBouncer >= 1.21); guide: use prepared statements",
    },
    {
      name: "ignore_startup_parameters",
      value: "extra_float_digits,options",
      reason: "sent by JDBC/psql-style drivers; options (e.g. PGOPTIONS) cannot be pooled, so SET LOCAL per transaction instead",
    },
    { name: "server_reset_query", value: "DISCARD ALL", reason: "used in session mode only; transaction mode needs none" },
    {
      name: "logfile",
      value: opts.logFile ?? containerPgbouncerLog,
      reason: "also to this file (stderr keeps everything): mtail counts failed logins from it, which never reach PostgreSQL's log; kept under a cap (configs/pgbouncer-log.ts)",
    },
    { name: "log_connections", value: "1", reason: "guide, Alerts: connection failures > 1% of requests are counted from these lines" },
    { name: "log_disconnections", value: "1", reason: "with log_connections: disconnections and their reasons" },
    { name: "log_pooler_errors", value: "1", reason: "errors PgBouncer itself sends to clients (pool full, timeouts)" },
    { name: "stats_period", value: "60", reason: "averages in SHOW STATS and the log every minute" },
  ];
}

function clientTlsSetting(mode: ClientTlsMode): PgBouncerSetting {
  if (mode === "require") {
    return { name: "client_tls_sslmode", value: "require", reason: "guide, Security: SSL/TLS for all connections; a client without TLS is told 'SSL required'" };
  }
  return {
    name: "client_tls_sslmode",
    value: "allow",
    reason:
      "for the perf cluster's TLS cost comparison only (pgstack local perf --compare-tls): plain-text clients are admitted beside TLS ones, " +
      "so both are measured through this one PgBouncer; PgBouncer to PostgreSQL stays verify-full and PostgreSQL stays hostssl-only",
  };
}

/** pgbouncer.ini. Holds no secret: the auth_file is named, not included. Same spec, same bytes. */
export function renderPgBouncerIni(spec: StackSpec, opts: PgBouncerIniOptions = {}): string {
  const server = opts.server ?? { host: "127.0.0.1", port: 5432 };
  const db = spec.postgres.database;
  const lines = [
    `;; pgbouncer.ini for stack "${spec.stack}" (${spec.target}), rendered by pgvector-stack: do not edit, change the stack config.`,
    `;; "guide" = the database performance tuning guide (HIGH-004), PgBouncer Configuration. No secret is in this file.`,
    "",
    "[databases]",
    ";; the application database on the server beside PgBouncer; each client logs in as itself (SCRAM pass-through)",
    `${db} = host=${server.host} port=${server.port} dbname=${db}`,
    "",
    "[pgbouncer]",
  ];
  for (const s of pgbouncerSettings(spec, opts)) lines.push(`;; ${s.reason}`, `${s.name} = ${s.value}`);
  lines.push("", "[users]", ";; guide, Security: connection limits per user; each at most its role's CONNECTION LIMIT (configs/roles.ts), so clients queue here");
  lines.push(";; rather than PostgreSQL refusing PgBouncer's logins; the pooled roles only (owner and monitor connect directly)");
  for (const role of rolePlan(spec).databaseRoles) {
    if (role.pgbouncerMaxConnections === null) continue;
    lines.push(`;; ${role.name}: at most ${role.pgbouncerMaxConnections} server connections of its CONNECTION LIMIT ${role.connectionLimit}`, `${role.name} = max_user_connections=${role.pgbouncerMaxConnections}`);
  }
  return `${lines.join("\n")}\n`;
}

export interface UserlistEntry {
  readonly user: string;
  /** A SCRAM-SHA-256 verifier from configs/scram.ts; a password is refused. */
  readonly verifier: string;
}

/** The users PgBouncer's auth_file must list for this stack: the pooled roles, the exporter's stats user, the admin. */
export function pgbouncerUsers(spec: StackSpec | RolePlan): readonly string[] {
  return planPgbouncerUsers("names" in spec ? spec : rolePlan(spec));
}

/**
 * The auth_file: `"user" "SCRAM-SHA-256$…"` per line, sorted by user. Called at deploy time with verifiers computed
 * from the secrets; it refuses anything that is not a verifier, so a password cannot end up in the file.
 */
export function pgbouncerUserlist(entries: readonly UserlistEntry[]): string {
  const seen = new Set<string>();
  for (const { user, verifier } of entries) {
    if (!isScramVerifier(verifier)) {
      throw new Error(`userlist entry for "${user}" is not a SCRAM-SHA-256 verifier; pass scramVerifier(password, salt), never the password`);
    }
    if (seen.has(user)) throw new Error(`userlist lists "${user}" twice`);
    seen.add(user);
  }
  const quote = (text: string) => `"${text.replace(/"/g, '""')}"`;
  return [...entries]
    .sort((a, b) => (a.user < b.user ? -1 : a.user > b.user ? 1 : 0))
    .map((e) => `${quote(e.user)} ${quote(e.verifier)}\n`)
    .join("");
}
