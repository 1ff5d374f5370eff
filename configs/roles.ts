/**
 * The database roles every target creates, and the bootstrap SQL that creates them from SCRAM verifiers.
 * Verifiers, not passwords: the SQL can sit in a ConfigMap-free Secret or a container upload without holding a
 * usable password, and PostgreSQL stores exactly what we pass (`password_encryption` is not applied to verifiers).
 */
import { quoteIdent, quoteLiteral } from "./sql";

/** The superuser every target's initdb creates (the postgres image's entrypoint with POSTGRES_USER unset, the rig). */
export const superuser = "postgres";

/** Least-privilege role for postgres_exporter: member of pg_monitor, nothing else. */
export const monitorRole = "pgstack_monitor";
/** PgBouncer's stats user for pgbouncer_exporter (listed in stats_users; SHOW commands only). */
export const statsUser = "pgstack_stats";

/** Role names the stack itself uses, and why the application may not take them (configs/spec.ts refuses them). */
export const ownRoles: ReadonlyMap<string, string> = new Map([
  [superuser, "the superuser: the application must not run as it"],
  [monitorRole, "postgres_exporter's least-privilege role"],
  [statsUser, "pgbouncer_exporter's user on PgBouncer's admin console"],
]);

/** Database names the application database may not have. */
export const reservedDatabases: ReadonlyMap<string, string> = new Map([
  ["postgres", "the maintenance database the superuser and the hook connect to"],
  ["template0", "PostgreSQL's pristine template"],
  ["template1", "PostgreSQL's template for new databases"],
  ["pgbouncer", "PgBouncer's admin console answers to this name, so clients could never reach the database through the pooler"],
]);

export interface RoleVerifiers {
  /** The application's login role (also PgBouncer's auth for clients). */
  readonly app: string;
  readonly monitor: string;
}

/**
 * Idempotent: safe to run on every start. Creates or updates the app role (owner of the app database) and the
 * monitoring role, installs the extensions the stack relies on, and grants the monitor role CONNECT only.
 */
export function bootstrapSql(database: string, appUser: string, verifiers: RoleVerifiers): string {
  return [
    `DO $$ BEGIN`,
    `  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = ${quoteLiteral(appUser)}) THEN CREATE ROLE ${quoteIdent(appUser)} LOGIN; END IF;`,
    `  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = ${quoteLiteral(monitorRole)}) THEN CREATE ROLE ${quoteIdent(monitorRole)} LOGIN; END IF;`,
    `END $$;`,
    `ALTER ROLE ${quoteIdent(appUser)} WITH LOGIN PASSWORD ${quoteLiteral(verifiers.app)};`,
    `ALTER ROLE ${quoteIdent(monitorRole)} WITH LOGIN PASSWORD ${quoteLiteral(verifiers.monitor)} CONNECTION LIMIT 5;`,
    `GRANT pg_monitor TO ${quoteIdent(monitorRole)};`,
    // reserved_connections keeps slots for this role only when it may use them (PostgreSQL 16+).
    `GRANT pg_use_reserved_connections TO ${quoteIdent(monitorRole)};`,
    `SELECT 'CREATE DATABASE ${database} OWNER ${appUser}' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = ${quoteLiteral(database)}) \\gexec`,
    `\\connect ${database}`,
    `CREATE EXTENSION IF NOT EXISTS vector;`,
    `CREATE EXTENSION IF NOT EXISTS pg_stat_statements;`,
    `GRANT CONNECT ON DATABASE ${quoteIdent(database)} TO ${quoteIdent(monitorRole)};`,
    "",
  ].join("\n");
}
