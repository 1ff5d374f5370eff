/**
 * What the Secrets hold, computed from passwords: SCRAM verifiers for the roles and PgBouncer, the bootstrap SQL,
 * the connection URLs. Plain strings in, plain strings out; the components call these inside `apply` on secret
 * outputs and put the results into Kubernetes Secrets only.
 */
import { pgbouncerUserlist, pgbouncerUsers } from "../../configs/pgbouncer";
import { bootstrapSql, monitorRole, statsUser } from "../../configs/roles";
import { roleVerifier } from "../../configs/scram";
import type { StackSpec } from "../../configs/stack-spec";
import { superuser } from "./layout";

export { roleSalt as scramSalt, roleVerifier } from "../../configs/scram";

export interface StackPasswords {
  readonly superuser: string;
  readonly app: string;
  readonly monitor: string;
  readonly stats: string;
}

/** Role → verifier for every role the stack logs in as, keyed by role name. */
export function stackVerifiers(stack: string, appUser: string, passwords: StackPasswords): Record<string, string> {
  return {
    [superuser]: roleVerifier(stack, superuser, passwords.superuser),
    [appUser]: roleVerifier(stack, appUser, passwords.app),
    [monitorRole]: roleVerifier(stack, monitorRole, passwords.monitor),
    [statsUser]: roleVerifier(stack, statsUser, passwords.stats),
  };
}

/** The /docker-entrypoint-initdb.d script: roles with their verifiers (configs/roles.ts), never a password. */
export function bootstrapScript(database: string, appUser: string, verifiers: Readonly<Record<string, string>>): string {
  return bootstrapSql(database, appUser, { app: verifiers[appUser], monitor: verifiers[monitorRole] });
}

/** PgBouncer's auth_file: a verifier for every user configs/pgbouncer.ts says PgBouncer must know. */
export function userlistFor(spec: StackSpec, verifiers: Readonly<Record<string, string>>): string {
  return pgbouncerUserlist(
    pgbouncerUsers(spec).map((user) => {
      const verifier = verifiers[user];
      if (verifier === undefined) throw new Error(`PgBouncer's auth_file needs user "${user}", but the stack has no password for it`);
      return { user, verifier };
    }),
  );
}

/** A libpq URL; user, password and database are percent-encoded, so any generated or configured password works. */
export function connectionUrl(user: string, password: string, host: string, port: number, database: string): string {
  return `postgresql://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${host}:${port}/${encodeURIComponent(database)}?sslmode=disable`;
}
