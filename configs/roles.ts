/**
 * The database roles every target creates, and the bootstrap SQL that creates them from SCRAM verifiers.
 * Verifiers, not passwords: the SQL can sit in a ConfigMap-free Secret or a container upload without holding a
 * usable password, and PostgreSQL stores exactly what we pass (`password_encryption` is not applied to verifiers).
 */

/** Least-privilege role for postgres_exporter: member of pg_monitor, nothing else. */
export const monitorRole = "pgstack_monitor";
/** PgBouncer's stats user for pgbouncer_exporter (listed in stats_users; SHOW commands only). */
export const statsUser = "pgstack_stats";

export interface RoleVerifiers {
  /** The application's login role (also PgBouncer's auth for clients). */
  readonly app: string;
  readonly monitor: string;
}

function literal(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * Idempotent: safe to run on every start. Creates or updates the app role (owner of the app database) and the
 * monitoring role, installs the extensions the stack relies on, and grants the monitor role CONNECT only.
 */
export function bootstrapSql(database: string, appUser: string, verifiers: RoleVerifiers): string {
  return [
    `DO $$ BEGIN`,
    `  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = ${literal(appUser)}) THEN CREATE ROLE ${ident(appUser)} LOGIN; END IF;`,
    `  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = ${literal(monitorRole)}) THEN CREATE ROLE ${ident(monitorRole)} LOGIN; END IF;`,
    `END $$;`,
    `ALTER ROLE ${ident(appUser)} WITH LOGIN PASSWORD ${literal(verifiers.app)};`,
    `ALTER ROLE ${ident(monitorRole)} WITH LOGIN PASSWORD ${literal(verifiers.monitor)} CONNECTION LIMIT 5;`,
    `GRANT pg_monitor TO ${ident(monitorRole)};`,
    // reserved_connections keeps slots for this role only when it may use them (PostgreSQL 16+).
    `GRANT pg_use_reserved_connections TO ${ident(monitorRole)};`,
    `SELECT 'CREATE DATABASE ${database} OWNER ${appUser}' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = ${literal(database)}) \\gexec`,
    `\\connect ${database}`,
    `CREATE EXTENSION IF NOT EXISTS vector;`,
    `CREATE EXTENSION IF NOT EXISTS pg_stat_statements;`,
    `GRANT CONNECT ON DATABASE ${ident(database)} TO ${ident(monitorRole)};`,
    "",
  ].join("\n");
}
