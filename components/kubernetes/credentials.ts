/**
 * What the Secrets hold, computed from passwords: SCRAM verifiers for the roles and PgBouncer, the bootstrap SQL,
 * the connection URLs. Plain strings in, plain strings out; the components call these inside `apply` on secret
 * outputs and put the results into Kubernetes Secrets only. Role names are Rendered's (rendered.roles).
 */
import { pgbouncerUserlist } from "../../configs/pgbouncer";
import type { Rendered, RenderedRoles } from "../../configs/rendered";
import { bootstrapSql, roleKinds, type RoleKind } from "../../configs/roles";
import { roleVerifier } from "../../configs/scram";

export { roleSalt as scramSalt, roleVerifier } from "../../configs/scram";

/** One password per role kind (configs/roles.ts). */
export type StackPasswords = Readonly<Record<RoleKind, string>>;

/** Role → verifier for every role and PgBouncer user the stack logs in as, keyed by role name. */
export function stackVerifiers(stack: string, roles: RenderedRoles, passwords: StackPasswords): Record<string, string> {
  return Object.fromEntries(roleKinds.map((kind) => [roles.plan.names[kind], roleVerifier(stack, roles.plan.names[kind], passwords[kind])]));
}

/** The /docker-entrypoint-initdb.d script of a first start: roles.sql and every role's verifier, never a password. */
export function bootstrapScript(rendered: Pick<Rendered, "files" | "roles">, verifiers: Readonly<Record<string, string>>): string {
  return bootstrapSql(rendered.files["roles.sql"], rendered.roles.plan, verifiers);
}

/** PgBouncer's auth_file: a verifier for every user Rendered says PgBouncer must know (rendered.roles.pgbouncerUsers). */
export function userlistFor(roles: RenderedRoles, verifiers: Readonly<Record<string, string>>): string {
  return pgbouncerUserlist(
    roles.pgbouncerUsers.map((user) => {
      const verifier = verifiers[user];
      if (verifier === undefined) throw new Error(`PgBouncer's auth_file needs user "${user}", but the stack has no password for it`);
      return { user, verifier };
    }),
  );
}

/**
 * A libpq URL; user, password and database are percent-encoded, so any generated or configured password works.
 * `tlsQuery` is rendered.tls.clientQuery: verify-full against the CA where the client mounts it.
 */
export function connectionUrl(user: string, password: string, host: string, port: number, database: string, tlsQuery: string): string {
  return `postgresql://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${host}:${port}/${encodeURIComponent(database)}?${tlsQuery}`;
}
