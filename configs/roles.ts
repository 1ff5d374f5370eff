/**
 * The database roles every target creates — least privilege, one role per job (guide, Security: least privilege,
 * separate read/write access, connection limits per user/application) — and the SQL that sets them up.
 *
 *   owner     `<appUser>_owner`  owns the database and its tables: migrations, the post-deploy hook's DDL and index
 *                                builds. Straight to PostgreSQL only (not a PgBouncer user): DDL and CREATE INDEX
 *                                CONCURRENTLY want a session of their own.
 *   app       `<appUser>`        the application: SELECT, INSERT, UPDATE, DELETE on the owner's tables, no DDL.
 *   readOnly  `<appUser>_readonly` SELECT on the owner's tables, nothing else.
 *   canary    pgstack_canary     the canary: its own schema and the table in it, nothing of the application's.
 *   monitor   pgstack_monitor    postgres_exporter: pg_monitor, CONNECT.
 * and two users that exist in PgBouncer's auth_file only, not in PostgreSQL: pgstack_stats (pgbouncer_exporter's
 * SHOW access) and pgstack_pgbouncer_admin (RELOAD, PAUSE: the tls-reloader and operators). The superuser (initdb's
 * `postgres`) logs in on the Unix socket only (pg_hba.conf rejects it on every TCP line): maintenance inside the
 * pod or container, never over the network.
 *
 * roles.sql (rendered, no secret) creates and limits the roles and grants; passwordsSql (deploy time, a Secret) sets
 * their SCRAM verifiers. Both are idempotent: every target runs them at every start and whenever they change, which
 * is what rotates a password (a verifier, not a password: PostgreSQL stores a verifier given to ALTER ROLE as it is,
 * `password_encryption` does not apply).
 */
import type { StackSpec } from "./stack-spec";
import { quoteIdent, quoteLiteral } from "./sql";
import { pgDuration } from "./units";

/** The superuser every target's initdb creates (the postgres image's entrypoint with POSTGRES_USER unset, the rig). */
export const superuser = "postgres";

/** Least-privilege role for postgres_exporter: member of pg_monitor, nothing else. */
export const monitorRole = "pgstack_monitor";
/** PgBouncer's stats user for pgbouncer_exporter (listed in stats_users; SHOW commands only). A PgBouncer user only. */
export const statsUser = "pgstack_stats";
/** PgBouncer's admin console user (admin_users: RELOAD, PAUSE, RESUME). A PgBouncer user only, never a database role. */
export const pgbouncerAdminUser = "pgstack_pgbouncer_admin";
/** The canary's role, and the schema it owns (its table lives there; `search_path` puts it first). */
export const canaryRole = "pgstack_canary";
export const canarySchema = "pgstack_canary";
/** The canary role's search_path in the stack's database: its schema, then public for pgvector's types. */
const canarySearchPath = `${canarySchema}, public`;

/** The extensions the role bootstrap installs in the stack's database (pgaudit besides with postgres.audit). */
export const stackExtensions: readonly string[] = ["pg_stat_statements", "vector"];

/** Suffixes of the roles named after the application's. */
export const ownerSuffix = "_owner";
export const readOnlySuffix = "_readonly";

/** Role names the stack itself uses, and why the application may not take them (configs/spec.ts refuses them). */
export const ownRoles: ReadonlyMap<string, string> = new Map([
  [superuser, "the superuser: the application must not run as it"],
  [monitorRole, "postgres_exporter's least-privilege role"],
  [statsUser, "pgbouncer_exporter's user on PgBouncer's admin console"],
  [pgbouncerAdminUser, "PgBouncer's admin console user"],
  [canaryRole, "the canary's role"],
]);

/** Database names the application database may not have. */
export const reservedDatabases: ReadonlyMap<string, string> = new Map([
  ["postgres", "the maintenance database the superuser connects to"],
  ["template0", "PostgreSQL's pristine template"],
  ["template1", "PostgreSQL's template for new databases"],
  ["pgbouncer", "PgBouncer's admin console answers to this name, so clients could never reach the database through the pooler"],
]);

/** What each login is for; the keys of a stack's passwords. */
export type RoleKind = "superuser" | "owner" | "app" | "readOnly" | "canary" | "monitor" | "stats" | "pgbouncerAdmin";
export const roleKinds: readonly RoleKind[] = ["superuser", "owner", "app", "readOnly", "canary", "monitor", "stats", "pgbouncerAdmin"];

/** The stack config key of a role's password (`pulumi config set --secret pgvector-stack:appPassword …`). */
export type PasswordKey = `${RoleKind}Password`;
export function passwordKey(kind: RoleKind): PasswordKey {
  return `${kind}Password`;
}
export const passwordKeys: readonly PasswordKey[] = roleKinds.map(passwordKey);

/** A component's password arguments: one per role kind, each optional (a generated one otherwise). */
export type PasswordArgs<T> = { readonly [K in PasswordKey]?: T };

/** A database role the stack creates: its limits, each with why. */
export interface DatabaseRole {
  readonly kind: Exclude<RoleKind, "superuser" | "stats" | "pgbouncerAdmin">;
  readonly name: string;
  readonly purpose: string;
  /** CONNECTION LIMIT: every connection of the role, direct and through PgBouncer. */
  readonly connectionLimit: number;
  readonly connectionLimitReason: string;
  /** Role-level statement_timeout, ms; null: none set on the role (the reason says why). */
  readonly statementTimeoutMs: number | null;
  readonly statementTimeoutReason: string;
  /** PgBouncer's max_user_connections for it ([users]); null when the role does not log in through PgBouncer. */
  readonly pgbouncerMaxConnections: number | null;
}

/** Every role and user of a stack, by what it is for, and the database roles' limits. */
export interface RolePlan {
  readonly names: Readonly<Record<RoleKind, string>>;
  /** In creation order: owner, app, readOnly, canary, monitor. */
  readonly databaseRoles: readonly DatabaseRole[];
  /** CREATE EXTENSION in the stack's database, sorted: stackExtensions, and pgaudit with postgres.audit. */
  readonly extensions: readonly string[];
}

/** The statement_timeout of the canary's role: its own give-up time (configs/canary.ts queryTimeoutMs default). */
const canaryStatementTimeoutMs = 10_000;

/** The roles of a stack: names from postgres.appUser, limits from the connection budget (validated by the spec). */
export function rolePlan(spec: StackSpec): RolePlan {
  const app = spec.postgres.appUser;
  const { maintenance, monitoring } = spec.postgres.reservedConnections;
  const serverRoom = spec.postgres.maxConnections - maintenance - monitoring;
  const pb = spec.pgbouncer;
  const pool = Math.min(serverRoom, pb.defaultPoolSize + pb.reservePoolSize);
  const timeout = spec.postgres.statementTimeoutMs;
  const names: Record<RoleKind, string> = {
    superuser,
    owner: `${app}${ownerSuffix}`,
    app,
    readOnly: `${app}${readOnlySuffix}`,
    canary: canaryRole,
    monitor: monitorRole,
    stats: statsUser,
    pgbouncerAdmin: pgbouncerAdminUser,
  };
  const readOnlyLimit = Math.max(1, Math.floor(serverRoom / 2));
  return {
    names,
    // pgaudit's extension adds the event triggers that name the objects DDL touched in the audit lines.
    extensions: [...stackExtensions, ...(spec.postgres.audit.enabled ? ["pgaudit"] : [])].sort(),
    databaseRoles: [
      {
        kind: "owner",
        name: names.owner,
        purpose: "owns the database and its tables: migrations, the post-deploy hook's DDL and index builds; straight to PostgreSQL only",
        connectionLimit: 10,
        connectionLimitReason: "the hook's session and index builds, a migration tool: not a serving role",
        statementTimeoutMs: timeout,
        statementTimeoutReason: "the guide's statement timeout; the hook lifts it for its index builds in their own session",
        pgbouncerMaxConnections: null,
      },
      {
        kind: "app",
        name: names.app,
        purpose: "the application: SELECT, INSERT, UPDATE, DELETE on the owner's tables, no DDL",
        connectionLimit: serverRoom,
        connectionLimitReason: `max_connections ${spec.postgres.maxConnections} less the ${maintenance} maintenance and ${monitoring} monitoring slots: the room PgBouncer may fill, and no more`,
        statementTimeoutMs: timeout,
        statementTimeoutReason: "guide: statement timeout 5 minutes for vector operations",
        pgbouncerMaxConnections: pool,
      },
      {
        kind: "readOnly",
        name: names.readOnly,
        purpose: "read-only access (reporting, analytics): SELECT on the owner's tables",
        connectionLimit: readOnlyLimit,
        connectionLimitReason: "half the server's room: reads cannot starve the application's writes",
        statementTimeoutMs: timeout,
        statementTimeoutReason: "guide: statement timeout 5 minutes for vector operations",
        pgbouncerMaxConnections: Math.min(pool, readOnlyLimit),
      },
      {
        kind: "canary",
        name: names.canary,
        purpose: "the canary: its own schema and table, nothing of the application's",
        connectionLimit: 5,
        connectionLimitReason: "one scenario connection, one login probe each to PgBouncer and PostgreSQL, room for a reconnect",
        statementTimeoutMs: canaryStatementTimeoutMs,
        statementTimeoutReason: "the canary's own query timeout: a hung scenario never holds a server connection longer",
        pgbouncerMaxConnections: 3,
      },
      {
        kind: "monitor",
        name: names.monitor,
        purpose: "postgres_exporter: pg_monitor and CONNECT, nothing else",
        connectionLimit: 5,
        connectionLimitReason: "one exporter connection and its retries",
        statementTimeoutMs: null,
        statementTimeoutReason:
          "none on the role: postgres_exporter reads pg_settings in its session, where a role setting would show as drift from postgresql.conf (the exporter's own timeouts bound its queries)",
        pgbouncerMaxConnections: null,
      },
    ],
  };
}

/** A setting roles.sql puts on a role (`ALTER ROLE … [IN DATABASE …] SET`), as pg_db_role_setting then holds it. */
export interface RoleSetting {
  readonly role: string;
  /** Null: for the role in every database. */
  readonly database: string | null;
  readonly name: string;
  /** As PostgreSQL stores it (pg_db_role_setting.setconfig), which is how drift --live compares it. */
  readonly value: string;
}

/** Every role-level setting roles.sql makes: the role timeouts, and the canary's search_path in the stack's database. */
export function roleSettings(plan: RolePlan, database: string): readonly RoleSetting[] {
  return [
    ...plan.databaseRoles.flatMap((r) => (r.statementTimeoutMs === null ? [] : [{ role: r.name, database: null, name: "statement_timeout", value: pgDuration(r.statementTimeoutMs) }])),
    { role: plan.names.canary, database, name: "search_path", value: canarySearchPath },
  ];
}

/** The database role of one kind. */
export function databaseRole(plan: RolePlan, kind: DatabaseRole["kind"]): DatabaseRole {
  const role = plan.databaseRoles.find((r) => r.kind === kind);
  if (role === undefined) throw new Error(`the role plan has no ${kind} role`);
  return role;
}

/** The users PgBouncer's auth_file lists, sorted: the pooled roles and the two console users. */
export function pgbouncerUsers(plan: RolePlan): readonly string[] {
  const pooled = plan.databaseRoles.filter((r) => r.pgbouncerMaxConnections !== null).map((r) => r.name);
  return [...new Set([...pooled, plan.names.stats, plan.names.pgbouncerAdmin])].sort();
}

/**
 * roles.sql: the roles, their limits and settings, the database, its extensions and the grants. No secret: no role
 * gets a password here (passwordsSql). A psql script run as the superuser on the Unix socket; idempotent, so it runs
 * at every start and after every change. Same plan, same bytes.
 */
export function renderRolesSql(plan: RolePlan, database: string): string {
  const n = plan.names;
  const id = quoteIdent;
  const db = id(database);
  const lines: string[] = [
    `-- roles.sql rendered by pgvector-stack for database ${database}: do not edit, change the stack config.`,
    "-- Run as the superuser on the Unix socket at every start and whenever it changes; idempotent. No password here:",
    "-- the SCRAM verifiers are set separately, from the stack's secrets.",
    "",
    "-- Quiet on a run that changes nothing: no NOTICE for what exists already (this session and the next).",
    "SET client_min_messages = warning;",
    "",
  ];
  for (const role of plan.databaseRoles) {
    lines.push(
      `-- ${role.name}: ${role.purpose}`,
      `SELECT format('CREATE ROLE %I', ${quoteLiteral(role.name)}) WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = ${quoteLiteral(role.name)}) \\gexec`,
      `-- CONNECTION LIMIT ${role.connectionLimit}: ${role.connectionLimitReason}`,
      `ALTER ROLE ${id(role.name)} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT ${role.connectionLimit};`,
      ...(role.statementTimeoutMs === null
        ? [`-- statement_timeout: ${role.statementTimeoutReason}`, `ALTER ROLE ${id(role.name)} RESET statement_timeout;`]
        : [
            `-- statement_timeout ${pgDuration(role.statementTimeoutMs)}: ${role.statementTimeoutReason}`,
            `ALTER ROLE ${id(role.name)} SET statement_timeout = ${quoteLiteral(pgDuration(role.statementTimeoutMs))};`,
          ]),
      "",
    );
  }
  lines.push(
    "-- postgres_exporter reads the statistics views; reserved_connections keeps slots for it when the pool is full.",
    `GRANT pg_monitor TO ${id(n.monitor)};`,
    `GRANT pg_use_reserved_connections TO ${id(n.monitor)};`,
    "",
    `-- The database, owned by ${n.owner} (an earlier owner is replaced: ownership is the stack's to say).`,
    `SELECT format('CREATE DATABASE %I OWNER %I', ${quoteLiteral(database)}, ${quoteLiteral(n.owner)}) WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = ${quoteLiteral(database)}) \\gexec`,
    `ALTER DATABASE ${db} OWNER TO ${id(n.owner)};`,
    "-- Only the stack's roles may connect: PUBLIC's default CONNECT and TEMPORARY are taken away.",
    `REVOKE ALL ON DATABASE ${db} FROM PUBLIC;`,
    `GRANT CONNECT ON DATABASE ${db} TO ${[n.app, n.readOnly, n.canary, n.monitor].map(id).join(", ")};`,
    `\\connect ${db}`,
    "SET client_min_messages = warning;",
    ...plan.extensions.map((e) => `CREATE EXTENSION IF NOT EXISTS ${e};`),
    "-- public belongs to the owner: nobody else creates objects in it (PUBLIC's CREATE is revoked since PostgreSQL 15; said again).",
    `ALTER SCHEMA public OWNER TO ${id(n.owner)};`,
    "REVOKE CREATE ON SCHEMA public FROM PUBLIC;",
    `-- ${n.monitor} is who drift --live logs in as: it reads what the configuration files say (a change waiting for a`,
    "-- reload or restart), which PostgreSQL shows superusers only unless granted; the files hold no secret.",
    `GRANT SELECT ON pg_catalog.pg_file_settings TO ${id(n.monitor)};`,
    `GRANT EXECUTE ON FUNCTION pg_catalog.pg_show_all_file_settings() TO ${id(n.monitor)};`,
    `-- ${n.app}: DML on the owner's tables, present and future; sequences for serial and identity columns.`,
    `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${id(n.app)};`,
    `GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ${id(n.app)};`,
    `ALTER DEFAULT PRIVILEGES FOR ROLE ${id(n.owner)} IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ${id(n.app)};`,
    `ALTER DEFAULT PRIVILEGES FOR ROLE ${id(n.owner)} IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO ${id(n.app)};`,
    `-- ${n.readOnly}: SELECT on the owner's tables, present and future.`,
    `GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${id(n.readOnly)};`,
    `ALTER DEFAULT PRIVILEGES FOR ROLE ${id(n.owner)} IN SCHEMA public GRANT SELECT ON TABLES TO ${id(n.readOnly)};`,
    `-- ${n.canary}: a schema of its own, first on its search_path (public after it for pgvector's types).`,
    `CREATE SCHEMA IF NOT EXISTS ${id(canarySchema)} AUTHORIZATION ${id(n.canary)};`,
    `ALTER ROLE ${id(n.canary)} IN DATABASE ${db} SET search_path = ${canarySearchPath};`,
    "",
  );
  return lines.join("\n");
}

/**
 * `ALTER ROLE … PASSWORD '<verifier>'` for every database role and the superuser: deploy-time SQL from the secrets
 * (a Secret, never a rendered file). `verifiers` is keyed by role name; anything that is not a verifier is refused,
 * so a password cannot reach the SQL.
 */
export function passwordsSql(plan: RolePlan, verifiers: Readonly<Record<string, string>>): string {
  const roles = [plan.names.superuser, ...plan.databaseRoles.map((r) => r.name)];
  return `${roles
    .map((role) => {
      const verifier = verifiers[role];
      if (verifier === undefined) throw new Error(`no SCRAM verifier for role "${role}"`);
      if (!/^SCRAM-SHA-256\$/.test(verifier)) throw new Error(`the password of role "${role}" must be given as a SCRAM-SHA-256 verifier`);
      return `ALTER ROLE ${quoteIdent(role)} PASSWORD ${quoteLiteral(verifier)};`;
    })
    .join("\n")}\n`;
}

/**
 * The rendered roles.sql and the passwords together, as every start runs them (and a rotation again): `rolesSql` is
 * Rendered's file, `plan` Rendered's roles.plan.
 */
export function bootstrapSql(rolesSql: string, plan: RolePlan, verifiers: Readonly<Record<string, string>>): string {
  return `${rolesSql}\\connect postgres\n${passwordsSql(plan, verifiers)}`;
}
