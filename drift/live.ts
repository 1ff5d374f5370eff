/**
 * A running PostgreSQL (and PgBouncer) compared with a stack's rendered desired state: pure functions over what
 * drift/live-query.ts read from the catalogs, so every rule is unit-tested without a server.
 *
 * Settings are compared by meaning (`setting × unit` as bytes or milliseconds), with where the live value comes from:
 * the rendered file, ALTER SYSTEM (postgresql.auto.conf), the command line, or a per-role/database override.
 */
import type { IndexPlanEntry } from "../configs/hnsw";
import { hnswParameters, indexDifferences, truncateIdentifier, type ObservedIndex } from "../postdeploy/index-decisions";
import type { Settings } from "./config-files";
import { formatQuantity, quantity, sameQuantity, type Quantity } from "./values";

/** One row of pg_settings. */
export interface LiveSetting {
  readonly name: string;
  readonly setting: string;
  readonly unit: string | null;
  readonly vartype: string;
  readonly source: string;
  /** Null unless the reader is a superuser or member of pg_read_all_settings. */
  readonly sourcefile: string | null;
  readonly sourceline: number | null;
  readonly pendingRestart: boolean;
}

/** One row of pg_file_settings (superusers only): what the files say, applied or not. */
export interface FileSetting {
  readonly sourcefile: string;
  readonly sourceline: number;
  readonly seqno: number;
  readonly name: string;
  readonly setting: string;
  readonly applied: boolean;
  readonly error: string | null;
}

/** One entry of pg_db_role_setting: ALTER ROLE / ALTER DATABASE … SET. */
export interface RoleDatabaseSetting {
  readonly database: string | null;
  readonly role: string | null;
  readonly name: string;
  readonly value: string;
}

export interface LiveExtension {
  readonly name: string;
  /** Null when available but not installed in the database. */
  readonly installedVersion: string | null;
  /** The version the server's packages would install; null when not available at all. */
  readonly defaultVersion: string | null;
}

export interface LivePostgres {
  readonly version: string;
  readonly settings: readonly LiveSetting[];
  /** Null when pg_file_settings could not be read (not a superuser). */
  readonly fileSettings: readonly FileSetting[] | null;
  readonly overrides: readonly RoleDatabaseSetting[];
  /** The database the extensions and indexes were read in (the stack's database). */
  readonly appDatabase: string;
  readonly appDatabaseExists: boolean;
  /** The extensions the stack needs, as found in appDatabase. */
  readonly extensions: readonly LiveExtension[];
  /** HNSW indexes in appDatabase, and every index named in the plan whatever its access method. */
  readonly indexes: readonly ObservedIndex[];
  /** Tables of the plan that do not exist. */
  readonly missingTables: readonly string[];
}

export interface LivePgBouncer {
  /** SHOW CONFIG: key → value. */
  readonly config: ReadonlyMap<string, string>;
  /** SHOW DATABASES: names. */
  readonly databases: readonly string[];
}

export interface DesiredState {
  readonly stack: string;
  /** postgresql.conf as settings. */
  readonly postgresql: Settings;
  /** pgbouncer.ini as settings (`[pgbouncer]` keys bare, others `section.key`). */
  readonly pgbouncer: Settings;
  readonly database: string;
  readonly indexPlan: readonly IndexPlanEntry[];
  /** huge_pages_2MiB of the memory plan: the pages a Kubernetes pod reserves. Null when unknown. */
  readonly hugePagesPlanned: number | null;
  /** Extensions the bootstrap installs in the stack's database. */
  readonly extensions: readonly string[];
  /** The role-level settings roles.sql makes (plan.json): expected in pg_db_role_setting, nothing else is. */
  readonly roleSettings: readonly RoleDatabaseSetting[];
}

export type LiveArea = "postgresql" | "override" | "huge pages" | "extension" | "index" | "pgbouncer";

export interface LiveFinding {
  readonly area: LiveArea;
  readonly name: string;
  /** The rendered value (absent: the rendered state does not set it). */
  readonly desired?: string;
  readonly live?: string;
  /** Where the live value comes from: `ALTER SYSTEM (postgresql.auto.conf line 3)`, `ALTER DATABASE app SET`, … */
  readonly source?: string;
  /** True: the running system differs from the rendered state. False: worth knowing, not drift. */
  readonly drift: boolean;
  readonly detail?: string;
}

export interface LiveChecked {
  readonly settings: number;
  readonly extensions: number;
  readonly indexes: number;
  readonly pgbouncerSettings: number;
}

/**
 * Settings that say where the server listens or finds its files. The targets own them (the rig passes `-c port=…`,
 * Kubernetes mounts at fixed paths), so a difference set on the command line is a note, not drift.
 */
export const placementSettings: ReadonlySet<string> = new Set(["port", "listen_addresses", "unix_socket_directories"]);
export const pgbouncerPlacementSettings: ReadonlySet<string> = new Set(["listen_addr", "listen_port", "unix_socket_dir", "auth_file", "logfile", "pidfile"]);

/** initdb writes these into postgresql.conf; a data directory that keeps its own file may still set them. */
const initdbLocaleSettings: ReadonlySet<string> = new Set([
  "datestyle",
  "timezone",
  "log_timezone",
  "lc_messages",
  "lc_monetary",
  "lc_numeric",
  "lc_time",
  "default_text_search_config",
]);

const sessionSources: ReadonlySet<string> = new Set(["database", "user", "database user", "client", "session", "interactive"]);

const memoryUnits: Readonly<Record<string, number>> = { B: 1, kB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };
const timeUnits: Readonly<Record<string, number>> = { us: 0.001, ms: 1, s: 1000, min: 60_000, h: 3_600_000, d: 86_400_000 };

/** pg_settings.unit (`8kB`, `MB`, `ms`, `s`) as a kind and a factor to bytes or milliseconds. */
export function unitFactor(unit: string | null): { kind: "bytes" | "ms"; factor: number } | null {
  if (!unit) return null;
  const match = /^(\d+)?\s*([A-Za-z]+)$/.exec(unit);
  if (!match) return null;
  const n = match[1] ? Number(match[1]) : 1;
  if (match[2] in memoryUnits) return { kind: "bytes", factor: n * memoryUnits[match[2]] };
  if (match[2] in timeUnits) return { kind: "ms", factor: n * timeUnits[match[2]] };
  return null;
}

/**
 * A value as the server would read it for a setting with this unit and type: a bare number is in the setting's own
 * unit (shared_buffers = 16384 is 16384 × 8kB); -1 and other negatives keep their special meaning.
 */
export function settingQuantity(value: string, unit: string | null, vartype: string): Quantity {
  const q = quantity(value);
  const u = unitFactor(unit);
  if (u && q.kind === "number") return q.value < 0 ? q : { kind: u.kind, value: q.value * u.factor };
  if (vartype === "bool" && q.kind === "number" && (q.value === 0 || q.value === 1)) return { kind: "bool", value: q.value === 1 };
  if (vartype === "enum" || vartype === "string") return q.kind === "text" ? q : { kind: "text", value: value.trim() };
  return q;
}

/** A live value spelled like the rendered one: 128MB, not 16384 (× 8kB). */
export function showSetting(value: string, unit: string | null, vartype: string): string {
  const q = settingQuantity(value, unit, vartype);
  return q.kind === "text" ? value : formatQuantity(q);
}

function baseName(file: string): string {
  return file.slice(Math.max(file.lastIndexOf("/"), file.lastIndexOf("\\")) + 1);
}

export function isAutoConf(file: string | null): boolean {
  return file !== null && baseName(file) === "postgresql.auto.conf";
}

/** Where a live value comes from, for people. */
export function sourceLabel(s: Pick<LiveSetting, "source" | "sourcefile" | "sourceline">): string {
  const line = s.sourceline ? ` line ${s.sourceline}` : "";
  switch (s.source) {
    case "configuration file":
      if (s.sourcefile === null) return "a configuration file (which one is shown to superusers and pg_read_all_settings only)";
      return isAutoConf(s.sourcefile) ? `ALTER SYSTEM (postgresql.auto.conf${line})` : `${baseName(s.sourcefile)}${line}`;
    case "command line":
      return "command line (-c)";
    case "default":
      return "built-in default (not set in any file)";
    case "database":
      return "ALTER DATABASE … SET (this session)";
    case "user":
      return "ALTER ROLE … SET (this session)";
    case "database user":
      return "ALTER ROLE … IN DATABASE … SET (this session)";
    default:
      return s.source;
  }
}

export function overrideLabel(o: RoleDatabaseSetting): string {
  if (o.role !== null && o.database !== null) return `ALTER ROLE ${o.role} IN DATABASE ${o.database} SET`;
  if (o.role !== null) return `ALTER ROLE ${o.role} SET`;
  if (o.database !== null) return `ALTER DATABASE ${o.database} SET`;
  return "ALTER ROLE ALL SET";
}

/** The value a restart would apply: the last applicable line for the name in the files. */
function fileValue(files: readonly FileSetting[] | null, name: string): FileSetting | undefined {
  // The last line wins, also one that "could not be applied" yet (a postmaster setting waiting for the restart).
  return files?.filter((f) => f.name.toLowerCase() === name).sort((a, b) => a.seqno - b.seqno).at(-1);
}

function postgresFindings(desired: DesiredState, live: LivePostgres): LiveFinding[] {
  const out: LiveFinding[] = [];
  const byName = new Map(live.settings.map((s) => [s.name.toLowerCase(), s]));
  for (const [name, value] of desired.postgresql) {
    const s = byName.get(name);
    if (!s) {
      out.push({ area: "postgresql", name, desired: value, drift: true, detail: "the server does not know this setting (a library not loaded?)" });
      continue;
    }
    let liveValue = s.setting;
    let source = sourceLabel(s);
    if (sessionSources.has(s.source)) {
      // This session sees a per-role/database value; the overrides list reports it. Compare the server's own value.
      const file = fileValue(live.fileSettings, name);
      if (!file) continue;
      liveValue = file.setting;
      source = `${baseName(file.sourcefile)} line ${file.sourceline}`;
    }
    const want = settingQuantity(value, s.unit, s.vartype);
    const have = settingQuantity(liveValue, s.unit, s.vartype);
    const shownLive = showSetting(liveValue, s.unit, s.vartype);
    if (!sameQuantity(want, have)) {
      if (placementSettings.has(name) && s.source === "command line") {
        out.push({ area: "postgresql", name, desired: value, live: shownLive, source, drift: false, detail: "where the server listens is the target's (set on its command line)" });
      } else {
        out.push({ area: "postgresql", name, desired: value, live: shownLive, source, drift: true });
      }
    } else if (isAutoConf(s.sourcefile)) {
      out.push({ area: "postgresql", name, desired: value, live: shownLive, source, drift: true, detail: "same value, but set by ALTER SYSTEM: the rendered file no longer decides it" });
    }
    // A command-line value outranks the files after a restart too: PostgreSQL's pending_restart flag is moot then.
    if (s.pendingRestart && s.source !== "command line") {
      const next = fileValue(live.fileSettings, name);
      out.push({
        area: "postgresql",
        name,
        desired: value,
        live: shownLive,
        source: next ? `${isAutoConf(next.sourcefile) ? "ALTER SYSTEM (postgresql.auto.conf" : `(${baseName(next.sourcefile)}`} line ${next.sourceline})` : source,
        drift: true,
        detail: `pending restart: the files now say ${next ? showSetting(next.setting, s.unit, s.vartype) : "another value"}, the server runs ${shownLive} until it restarts`,
      });
    }
  }
  // Set on the server but not by the rendered file: ALTER SYSTEM, or a hand-edited/included file.
  for (const s of live.settings) {
    const name = s.name.toLowerCase();
    if (desired.postgresql.has(name) || s.source !== "configuration file") continue;
    if (isAutoConf(s.sourcefile)) {
      out.push({ area: "postgresql", name, live: showSetting(s.setting, s.unit, s.vartype), source: sourceLabel(s), drift: true, detail: "set by ALTER SYSTEM; the rendered config does not set it" });
    } else if (!initdbLocaleSettings.has(name)) {
      out.push({ area: "postgresql", name, live: showSetting(s.setting, s.unit, s.vartype), source: sourceLabel(s), drift: true, detail: "set in a configuration file, but not by the rendered config" });
    }
  }
  // ALTER SYSTEM written but not yet reloaded: pg_settings does not show it, the files do.
  for (const f of live.fileSettings ?? []) {
    if (!isAutoConf(f.sourcefile) || f.applied) continue;
    const name = f.name.toLowerCase();
    const s = byName.get(name);
    if (s?.pendingRestart) continue;
    out.push({
      area: "postgresql",
      name,
      desired: desired.postgresql.get(name),
      live: s ? showSetting(s.setting, s.unit, s.vartype) : undefined,
      source: `ALTER SYSTEM (postgresql.auto.conf line ${f.sourceline})`,
      drift: true,
      detail: f.error ? `written by ALTER SYSTEM as ${f.setting}, not applied: ${f.error}` : `written by ALTER SYSTEM as ${f.setting}, not applied yet (reload pending)`,
    });
  }
  return out;
}

function overrideFindings(desired: DesiredState, live: LivePostgres): LiveFinding[] {
  const efSearch = [...new Set(desired.indexPlan.map((e) => e.efSearch))];
  const key = (o: RoleDatabaseSetting) => `${overrideLabel(o)} ${o.name.toLowerCase()}`;
  const expected = new Map(desired.roleSettings.map((o) => [key(o), o]));
  const found = [...live.overrides]
    .sort((a, b) => overrideLabel(a).localeCompare(overrideLabel(b)) || a.name.localeCompare(b.name))
    .map((o): LiveFinding => {
      const name = o.name.toLowerCase();
      const own = expected.get(key(o));
      if (own !== undefined) {
        const same = own.value === o.value;
        return { area: "override", name, desired: own.value, live: o.value, source: overrideLabel(o), drift: !same, ...(same ? { detail: "set by the stack's roles.sql" } : {}) };
      }
      const rendered = desired.postgresql.get(name);
      const desiredText =
        rendered ?? (name === "hnsw.ef_search" && efSearch.length > 0 ? `${efSearch.join(", ")} (per query, SET LOCAL; not per role/database)` : undefined);
      return { area: "override", name, desired: desiredText, live: o.value, source: overrideLabel(o), drift: true, detail: "per-role/database settings are not part of the rendered state" } as LiveFinding;
    });
  const seen = new Set(live.overrides.map(key));
  const missing = desired.roleSettings
    .filter((o) => !seen.has(key(o)))
    .map((o): LiveFinding => ({ area: "override", name: o.name.toLowerCase(), desired: o.value, live: "missing", source: overrideLabel(o), drift: true, detail: "roles.sql sets it; the roles were not bootstrapped as rendered" }));
  return [...found, ...missing];
}

function hugePageFindings(desired: DesiredState, live: LivePostgres): LiveFinding[] {
  const want = desired.postgresql.get("huge_pages");
  const byName = new Map(live.settings.map((s) => [s.name.toLowerCase(), s]));
  const status = byName.get("huge_pages_status")?.setting;
  const needed = byName.get("shared_memory_size_in_huge_pages")?.setting;
  if (want === undefined || status === undefined) return [];
  const out: LiveFinding[] = [];
  const neededText = needed !== undefined && Number(needed) >= 0 ? `; the running configuration needs ${needed} huge pages` : "";
  if (want === "on" && status !== "on") {
    out.push({ area: "huge pages", name: "huge_pages_status", desired: "on", live: status, drift: true, detail: `huge_pages = on, but the server runs without huge pages${neededText}` });
  } else if (want === "try" && status !== "on") {
    out.push({ area: "huge pages", name: "huge_pages_status", desired: "on (huge_pages = try)", live: status, drift: false, detail: `huge_pages = try fell back to normal pages${neededText}` });
  }
  const neededPages = Number(needed);
  if (want === "on" && desired.hugePagesPlanned !== null && Number.isFinite(neededPages) && neededPages > desired.hugePagesPlanned) {
    out.push({
      area: "huge pages",
      name: "shared_memory_size_in_huge_pages",
      desired: `≤ ${desired.hugePagesPlanned} (memory plan)`,
      live: String(neededPages),
      drift: true,
      detail: "the server needs more huge pages than the plan reserves (the pod's hugepages-2Mi limit)",
    });
  }
  return out;
}

function extensionFindings(desired: DesiredState, live: LivePostgres): LiveFinding[] {
  if (!live.appDatabaseExists) {
    return [{ area: "extension", name: desired.extensions.join(", "), desired: "installed", drift: true, detail: `database ${live.appDatabase} does not exist` }];
  }
  return desired.extensions.flatMap((name): LiveFinding[] => {
    const e = live.extensions.find((x) => x.name === name);
    if (!e || e.installedVersion === null) {
      const why = !e || e.defaultVersion === null ? "not available on this server" : `available (${e.defaultVersion}) but not installed`;
      return [{ area: "extension", name, desired: "installed", live: "missing", drift: true, detail: `${why} in database ${live.appDatabase}` }];
    }
    if (e.defaultVersion !== null && e.defaultVersion !== e.installedVersion) {
      return [{ area: "extension", name, desired: e.defaultVersion, live: e.installedVersion, drift: false, detail: `the server has ${e.defaultVersion}: ALTER EXTENSION ${name} UPDATE` }];
    }
    return [];
  });
}

function indexFindings(desired: DesiredState, live: LivePostgres): LiveFinding[] {
  if (!live.appDatabaseExists) return [];
  const out: LiveFinding[] = [];
  const planned = new Set<string>();
  for (const entry of desired.indexPlan) {
    const name = truncateIdentifier(entry.indexName);
    planned.add(name);
    const want = `hnsw ${entry.opclass} on ${entry.table}(${entry.column}), m=${entry.m}, ef_construction=${entry.efConstruction}`;
    const found = live.indexes.find((i) => i.name === name);
    if (!found) {
      const detail = live.missingTables.includes(entry.table) ? `table ${entry.table} does not exist` : "not present: the post-deploy hook builds it";
      out.push({ area: "index", name, desired: want, live: "missing", drift: true, detail });
      continue;
    }
    const differences = indexDifferences(entry, found);
    const params = found.accessMethod === "hnsw" ? hnswParameters(found.reloptions) : undefined;
    const liveText = `${found.accessMethod} ${found.opclasses.join(",")} on ${found.table}(${found.columns.join(",")})${params ? `, m=${params.m}, ef_construction=${params.efConstruction}` : ""}`;
    if (differences.length > 0) out.push({ area: "index", name, desired: want, live: liveText, drift: true, detail: differences.join("; ") });
    if (!found.valid) {
      out.push({ area: "index", name, desired: "valid", live: "INVALID", drift: true, detail: "a failed or interrupted CREATE INDEX CONCURRENTLY: the planner ignores it" });
    }
  }
  for (const index of live.indexes) {
    if (planned.has(index.name) || index.accessMethod !== "hnsw") continue;
    const params = hnswParameters(index.reloptions);
    out.push({
      area: "index",
      name: index.name,
      live: `hnsw ${index.opclasses.join(",")} on ${index.table}(${index.columns.join(",")}), m=${params.m}, ef_construction=${params.efConstruction}${index.valid ? "" : ", INVALID"}`,
      drift: false,
      detail: "an HNSW index the plan does not name (a leftover rebuild, or created by hand)",
    });
  }
  return out;
}

function pgbouncerFindings(desired: DesiredState, live: LivePgBouncer): LiveFinding[] {
  const out: LiveFinding[] = [];
  for (const [key, value] of desired.pgbouncer) {
    if (key.includes(".")) continue;
    const have = live.config.get(key);
    if (have === undefined) {
      out.push({ area: "pgbouncer", name: key, desired: value, drift: true, detail: "SHOW CONFIG does not list it (another PgBouncer version?)" });
      continue;
    }
    if (sameQuantity(quantity(value), quantity(have)) || value.trim() === have.trim()) continue;
    if (pgbouncerPlacementSettings.has(key)) {
      out.push({ area: "pgbouncer", name: key, desired: value, live: have, drift: false, detail: "where PgBouncer listens and keeps its files is the target's" });
    } else out.push({ area: "pgbouncer", name: key, desired: value, live: have, source: "SHOW CONFIG", drift: true });
  }
  const databases = [...desired.pgbouncer.keys()].filter((k) => k.startsWith("databases.")).map((k) => k.slice("databases.".length));
  for (const db of databases) {
    if (!live.databases.includes(db)) out.push({ area: "pgbouncer", name: `[databases] ${db}`, desired: "pooled", live: "missing", source: "SHOW DATABASES", drift: true });
  }
  return out;
}

export interface LiveComparison {
  readonly findings: readonly LiveFinding[];
  readonly checked: LiveChecked;
}

export function compareLive(desired: DesiredState, postgres: LivePostgres, pgbouncer?: LivePgBouncer): LiveComparison {
  const findings = [
    ...postgresFindings(desired, postgres),
    ...overrideFindings(desired, postgres),
    ...hugePageFindings(desired, postgres),
    ...extensionFindings(desired, postgres),
    ...indexFindings(desired, postgres),
    ...(pgbouncer ? pgbouncerFindings(desired, pgbouncer) : []),
  ];
  return {
    findings,
    checked: {
      settings: desired.postgresql.size,
      extensions: desired.extensions.length,
      indexes: desired.indexPlan.length,
      pgbouncerSettings: pgbouncer ? [...desired.pgbouncer.keys()].length : 0,
    },
  };
}
