/**
 * The stack's role bootstrap for tests that start PostgreSQL themselves (not a perf cluster): roles.sql as the spec
 * renders it and a verifier for every role, the ones a test logs in with given, the rest random (the superuser's
 * left as the server was started with, unless given).
 */
import { randomBytes } from "node:crypto";
import { bootstrapSql, renderRolesSql, rolePlan, roleKinds, type RoleKind } from "../../configs/roles";
import { scramVerifier } from "../../configs/scram";
import type { StackSpec } from "../../configs/stack-spec";

export function testBootstrapSql(spec: StackSpec, given: Partial<Record<RoleKind, string>> = {}): string {
  const plan = rolePlan(spec);
  const verifiers = Object.fromEntries(
    roleKinds.map((kind) => [plan.names[kind], given[kind] ?? scramVerifier(randomBytes(18).toString("hex"), randomBytes(16))]),
  );
  const sql = bootstrapSql(renderRolesSql(plan, spec.postgres.database), plan, verifiers);
  // The superuser keeps the password the test's server was started with unless one is given.
  return given.superuser === undefined ? sql.split("\n").filter((line) => !line.startsWith(`ALTER ROLE "${plan.names.superuser}" PASSWORD`)).join("\n") : sql;
}
