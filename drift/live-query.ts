/**
 * Reads what drift/live.ts compares from a running server: pg_settings, pg_file_settings, pg_db_role_setting,
 * extensions and HNSW indexes in the stack's database, and PgBouncer's SHOW CONFIG / SHOW DATABASES.
 * Read-only: nothing here changes the server.
 */
import type { Client } from "pg";
import { indexCatalogColumns, observedIndexOf, type IndexCatalogRow } from "../postdeploy/index-catalog";
import { truncateIdentifier, type ObservedIndex } from "../postdeploy/index-decisions";
import { connect } from "../pgclient/connect";
import { clientConfig, ConnectionError, connectionErrorMessage, withDatabase, type ConnectionTarget } from "./connection";
import type { DesiredState, FileSetting, LiveExtension, LivePgBouncer, LivePostgres, LiveSetting, RoleDatabaseSetting } from "./live";

const applicationName = "pgstack drift --live";

/** A connection with drift's TLS mode and timeouts; a failure is one line for people, naming `what` failed. */
function connectTo(target: ConnectionTarget, what: string): Promise<Client> {
  return connect(clientConfig(target), applicationName, (e) => new ConnectionError(connectionErrorMessage(e, target, what)));
}

async function settingsOf(client: Client): Promise<LiveSetting[]> {
  const { rows } = await client.query<{
    name: string;
    setting: string;
    unit: string | null;
    vartype: string;
    source: string;
    sourcefile: string | null;
    sourceline: number | null;
    pending_restart: boolean;
  }>("SELECT name, setting, unit, vartype, source, sourcefile, sourceline, pending_restart FROM pg_settings ORDER BY name");
  return rows.map((r) => ({
    name: r.name,
    setting: r.setting,
    unit: r.unit,
    vartype: r.vartype,
    source: r.source,
    sourcefile: r.sourcefile,
    sourceline: r.sourceline,
    pendingRestart: r.pending_restart,
  }));
}

/** pg_file_settings is readable by superusers only (by default): null otherwise, and the report says less. */
async function fileSettingsOf(client: Client): Promise<FileSetting[] | null> {
  try {
    const { rows } = await client.query<{
      sourcefile: string;
      sourceline: number;
      seqno: number;
      name: string;
      setting: string;
      applied: boolean;
      error: string | null;
    }>("SELECT sourcefile, sourceline, seqno, name, setting, applied, error FROM pg_file_settings WHERE name IS NOT NULL ORDER BY seqno");
    return rows.map((r) => ({ ...r }));
  } catch (e) {
    if ((e as { code?: string }).code === "42501") return null;
    throw e;
  }
}

async function overridesOf(client: Client): Promise<RoleDatabaseSetting[]> {
  const { rows } = await client.query<{ database: string | null; role: string | null; entry: string }>(
    `SELECT d.datname AS database, r.rolname AS role, e.entry
       FROM pg_db_role_setting s
       LEFT JOIN pg_database d ON d.oid = s.setdatabase
       LEFT JOIN pg_roles r ON r.oid = s.setrole
       CROSS JOIN LATERAL unnest(s.setconfig) AS e(entry)
      ORDER BY 1 NULLS FIRST, 2 NULLS FIRST, 3`,
  );
  return rows.map((r) => {
    const eq = r.entry.indexOf("=");
    return { database: r.database, role: r.role, name: r.entry.slice(0, eq), value: r.entry.slice(eq + 1) };
  });
}

async function extensionsOf(client: Client, names: readonly string[]): Promise<LiveExtension[]> {
  const { rows } = await client.query<{ name: string; installed: string | null; default_version: string | null }>(
    `SELECT n.name, e.extversion AS installed, a.default_version
       FROM unnest($1::text[]) AS n(name)
       LEFT JOIN pg_extension e ON e.extname = n.name
       LEFT JOIN pg_available_extensions a ON a.name = n.name
      ORDER BY n.name`,
    [names],
  );
  return rows.map((r) => ({ name: r.name, installedVersion: r.installed, defaultVersion: r.default_version }));
}

/** Every HNSW index, and every index the plan names whatever its access method, in the database. */
async function indexesOf(client: Client, plannedNames: readonly string[]): Promise<ObservedIndex[]> {
  const { rows } = await client.query<IndexCatalogRow>(
    `SELECT c.relname::text AS name, ${indexCatalogColumns}
       FROM pg_index i
       JOIN pg_class c ON c.oid = i.indexrelid
       JOIN pg_class t ON t.oid = i.indrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_am am ON am.oid = c.relam
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
        AND (am.amname = 'hnsw' OR (c.relname = ANY($1::text[]) AND n.nspname = ANY(current_schemas(false))))
      ORDER BY c.relname`,
    [plannedNames],
  );
  return rows.map(observedIndexOf);
}

async function missingTablesOf(client: Client, tables: readonly string[]): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>(
    "SELECT t.name FROM unnest($1::text[]) AS t(name) WHERE to_regclass(quote_ident(t.name)) IS NULL ORDER BY 1",
    [tables],
  );
  return rows.map((r) => r.name);
}

function queryFailure(e: unknown, target: ConnectionTarget, what: string): never {
  if (e instanceof ConnectionError) throw e;
  throw new ConnectionError(connectionErrorMessage(e, target, what));
}

/** Everything drift/live.ts needs from PostgreSQL. Settings come from `target`; extensions and indexes from the stack's database. */
export async function readPostgres(target: ConnectionTarget, desired: DesiredState): Promise<LivePostgres> {
  const client = await connectTo(target, "PostgreSQL at");
  let app: Client | undefined;
  try {
    const version = (await client.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0].v;
    const settings = await settingsOf(client);
    const fileSettings = await fileSettingsOf(client);
    const overrides = await overridesOf(client);
    const exists = (await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [desired.database])).rowCount === 1;
    let extensions: LiveExtension[] = [];
    let indexes: ObservedIndex[] = [];
    let missingTables: string[] = [];
    if (exists) {
      const appTarget = withDatabase(target, desired.database);
      app = target.database === desired.database ? client : await connectTo(appTarget, "PostgreSQL at");
      extensions = await extensionsOf(app, desired.extensions);
      indexes = await indexesOf(app, desired.indexPlan.map((e) => truncateIdentifier(e.indexName)));
      missingTables = await missingTablesOf(app, [...new Set(desired.indexPlan.map((e) => e.table))]);
    }
    return { version, settings, fileSettings, overrides, appDatabase: desired.database, appDatabaseExists: exists, extensions, indexes, missingTables };
  } catch (e) {
    return queryFailure(e, target, "reading");
  } finally {
    if (app && app !== client) await app.end().catch(() => undefined);
    await client.end().catch(() => undefined);
  }
}

/** PgBouncer's admin console (database `pgbouncer`): SHOW CONFIG and SHOW DATABASES, simple query protocol. */
export async function readPgBouncer(target: ConnectionTarget): Promise<LivePgBouncer> {
  if (target.database !== "pgbouncer") {
    throw new ConnectionError(`--pgbouncer-url ${target.display} must name PgBouncer's admin database: …/pgbouncer`);
  }
  const client = await connectTo(target, "PgBouncer at");
  try {
    const config = await client.query<{ key: string; value: string }>("SHOW CONFIG");
    const databases = await client.query<{ name: string }>("SHOW DATABASES");
    return {
      config: new Map(config.rows.map((r) => [r.key, r.value ?? ""])),
      databases: databases.rows.map((r) => r.name).filter((n) => n !== "pgbouncer"),
    };
  } catch (e) {
    return queryFailure(e, target, "reading");
  } finally {
    await client.end().catch(() => undefined);
  }
}
