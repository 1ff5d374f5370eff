/**
 * The desired state live drift compares with, read from a stack's rendered files (a `rendered/<stack>/` directory or
 * a fresh render): the same files every target deploys, so the check is the same for every target.
 */
import type { IndexPlanEntry } from "../configs/hnsw";
import { stackExtensions, type RoleSetting } from "../configs/roles";
import { parseKeyValueLines, parsePgBouncerIni, parsePostgresqlConf } from "./config-files";
import type { DesiredState } from "./live";

/** The extensions the role bootstrap (configs/roles.ts, roles.sql) installs in the stack's database. */
export function bootstrapExtensions(): string[] {
  return [...stackExtensions].sort();
}

/** Files a live check needs, by name. */
export const desiredFiles = ["postgresql.conf", "pgbouncer.ini", "plan.json", "memory-plan.yaml"] as const;

export function desiredFromFiles(stack: string, files: Readonly<Record<string, string>>): DesiredState {
  const missing = desiredFiles.filter((f) => files[f] === undefined);
  if (missing.length > 0) throw new Error(`the rendered state of stack "${stack}" lacks ${missing.join(", ")}`);
  const plan = JSON.parse(files["plan.json"]) as { database?: string; indexPlan?: IndexPlanEntry[]; extensions?: string[]; roleSettings?: RoleSetting[] };
  if (typeof plan.database !== "string") throw new Error(`plan.json of stack "${stack}" names no database`);
  const memory = parseKeyValueLines(files["memory-plan.yaml"]);
  const pages = Number(memory.get("huge_pages_2MiB"));
  return {
    stack,
    postgresql: parsePostgresqlConf(files["postgresql.conf"]),
    pgbouncer: parsePgBouncerIni(files["pgbouncer.ini"]),
    database: plan.database,
    indexPlan: plan.indexPlan ?? [],
    hugePagesPlanned: Number.isInteger(pages) ? pages : null,
    extensions: plan.extensions ?? bootstrapExtensions(),
    roleSettings: plan.roleSettings ?? [],
  };
}
