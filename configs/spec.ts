/**
 * Stack config (the `pgvector-stack:*` keys of Pulumi.<stack>.yaml) → a validated, frozen StackSpec.
 *
 * This is the one gate: `pulumi up` (program.ts) and every pgstack command pass through it, and whatever it accepts
 * renders and deploys. A renderer or component that throws on user input is a check missing here, so the checks the
 * renderers rely on (pgvector's limits on the real m and ef_construction, alert threshold ranges, identifier lengths,
 * names that become Kubernetes labels, Docker names and Prometheus label values) are run here, on the user's keys.
 * Every error is collected and reported at once, each naming the key, the value and what is allowed.
 */
import { alertThresholdProblems, defaultAlertThresholds, plainSettingValue } from "./alerts";
import { defaultBenchmark, type BenchmarkSpec, type BenchmarkTargets } from "./benchmark";
import { monitoringVersions, watchedSettings } from "./exporters";
import { exposureProblem, imageReferenceProblem, ipv4Octets } from "./docker-exposure";
import { defaultDaemonSetMemoryBytes, podResourcesProblem } from "./kubernetes-resources";
import { memoryPlan } from "./memory";
import { guideParameters, hnswMaxDimensions, maxIdentifierBytes, type VectorMetric, type VectorTableSpec, type VectorType } from "./hnsw";
import { ownedSettings } from "./owned-settings";
import { pgbouncerPort } from "./pgbouncer";
import { postgresPort } from "./postgresql";
import { prometheusPort } from "./scrape";
import { pg17SettingNames } from "./pg17-settings";
import { auditClasses, type AuditClass, type AuditSpec } from "./stack-spec";
import { ownerSuffix, ownRoles, passwordKeys, readOnlySuffix, reservedDatabases, type PasswordKey } from "./roles";
import { closest, show, SpecError, SpecReader, type SpecIssue } from "./spec-reader";
import type {
  AlertsSpec,
  AlertThresholds,
  DockerSpec,
  ImageKey,
  ImageReferences,
  Images,
  ImageSource,
  KubernetesSpec,
  NodeSpec,
  TlsSpec,
  PgBouncerSpec,
  PostgresSpec,
  StackSpec,
  Target,
} from "./stack-spec";
import { bytes, parseDuration } from "./units";

export { SpecError } from "./spec-reader";
export type { StackSpec } from "./stack-spec";

/** The Pulumi config namespace: keys are written `pgvector-stack:node` in stack files. */
export const configNamespace = "pgvector-stack";

/** Secret config keys: read by program.ts as Pulumi secrets, never part of the spec. */
export const secretConfigKeys: readonly PasswordKey[] = [...passwordKeys].sort();

const specKeys = ["target", "node", "postgres", "pgbouncer", "vectorTables", "benchmark", "alerts", "tls", "images", "kubernetes", "docker"] as const;

/** Every key of the namespace: a stack file with any other is refused ("did you mean"). */
export const topLevelKeys: readonly string[] = [...specKeys, ...secretConfigKeys];

/** Where the stack runs the config: the host's own RAM and cores, for `memory: auto` (target local only). */
export interface HostFacts {
  readonly memoryBytes: number;
  readonly cpus: number;
}

export interface SpecOptions {
  /** The machine that runs a `target: local` stack, for `node.memory: auto` / `node.cpus: auto`. */
  readonly host?: HostFacts;
  /**
   * Keys (without namespace) whose value the stack file holds encrypted (`pulumi config set --secret`). A secret key
   * present but not among these is in plain text in the stack file, and refused. Defaults to none.
   */
  readonly secretKeys?: Iterable<string>;
  /**
   * Keys of the stack file outside this namespace, as written (`kubernetes:context`, `pgvector-stak:postgres`): they
   * belong to other tools, unless the namespace is a misspelling of ours, whose keys would otherwise be silently
   * ignored by `pulumi up` and by pgstack alike. Defaults to none.
   */
  readonly otherKeys?: Iterable<string>;
}

/** Below 1 GiB the guide's fractions leave PostgreSQL too little to run HNSW builds at all. */
const minimumNodeMemory = bytes.GiB;

/**
 * Default images, pinned by tag. PgBouncer and both exporters move together: every PgBouncer minor release has
 * broken some exporter query (SHOW POOLS/STATS columns), so they are upgraded as one tested set.
 */
export const defaultImages: ImageReferences = {
  postgres: "pgvector/pgvector:0.8.0-pg17",
  pgbouncer: "edoburu/pgbouncer:v1.24.1-p1",
  postgresExporter: "quay.io/prometheuscommunity/postgres-exporter:v0.17.1",
  pgbouncerExporter: "quay.io/prometheuscommunity/pgbouncer-exporter:v0.10.2",
  prometheus: "prom/prometheus:v2.53.4",
  nodeExporter: "prom/node-exporter:v1.9.1",
  mtail: monitoringVersions.mtail.image,
  // An exact release, not the moving node:20 line: the Node the tests here run the bundled CLI with (20.20.2). Not a
  // digest: no registry answers from the build machine, so none could be read or checked; pin one per stack with
  // images.node: node:20.20.2-bookworm-slim@sha256:<digest>.
  node: "node:20.20.2-bookworm-slim",
};

/** Where alerts link their runbook section: this repository's docs/runbooks.md, unless the stack names its own copy. */
export const defaultRunbookBaseUrl = "https://github.com/pgvector-stack/pgvector-stack/blob/main/docs/runbooks.md";

/** PostgreSQL's NAMEDATALEN − 1: longer identifiers are cut. */
const maxIdentifierLength = 63;
const identifier = /^[a-z_][a-z0-9_]{0,62}$/;
const identifierText = "a lower-case SQL identifier (letters, digits, _; at most 63 characters)";

/**
 * The stack name becomes a Kubernetes label value (`pgvector-stack/stack`), part of Docker object names
 * (`pgstack-<stack>-postgres`), the `stack` label every alert selects on, and the Grafana dashboard's uid: the
 * strictest of those is the Kubernetes label value.
 */
const stackNamePattern = /^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$/;

/** Kubernetes label keys and values, as the API server checks them (apimachinery validation). */
const labelName = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const dnsSubdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** Prometheus label names; `__`-prefixed ones are Prometheus' own. */
const promLabelName = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
/** Labels every alert already carries: a stack may not redefine them (routing and the rules' own selectors use them). */
const ownAlertLabels = ["alertname", "severity", "stack"];

type Obj = Readonly<Record<string, unknown>>;

function readTarget(r: SpecReader, config: Obj): Target {
  return r.oneOf(config, "target", "target", ["kubernetes", "docker", "local"] as const, "kubernetes");
}

function readNode(r: SpecReader, config: Obj, target: Target, host: HostFacts | undefined): NodeSpec {
  const node = r.section(config, "node", "node", ["memory", "cpus", "storage"]);
  const memoryAuto = node.memory === "auto";
  const cpusAuto = node.cpus === "auto";
  // `auto` sizes the database from whichever machine runs the program: right for the perf cluster, which runs here;
  // wrong for a pod or container, whose sizing would follow the CI runner and restart the database when it changes.
  for (const [key, auto] of [["memory", memoryAuto], ["cpus", cpusAuto]] as const) {
    if (!auto) continue;
    if (target !== "local") {
      r.fail(
        `node.${key}`,
        `node.${key} is "auto", which sizes the database from the machine that runs the program; it is for target: local only. ` +
          `A ${target} stack must state its node (e.g. ${key === "memory" ? "node.memory: 32Gi" : "node.cpus: 8"})`,
      );
    } else if (!host) {
      r.fail(`node.${key}`, `node.${key} is "auto" but no host facts were given to size it from`);
    }
  }
  if (node.memory === undefined) r.fail("node.memory", `node.memory is missing; write the node's RAM (e.g. 32Gi)${target === "local" ? ` or "auto"` : ""}`);
  return {
    memoryBytes: memoryAuto ? (host?.memoryBytes ?? 16 * bytes.GiB) : r.bytes(node, "memory", "node.memory", minimumNodeMemory, "1Gi", 16 * bytes.GiB),
    memoryAuto,
    cpus: cpusAuto ? (host?.cpus ?? 2) : r.integer(node, "cpus", "node.cpus", 1, 512, 4),
    storage: r.oneOf(node, "storage", "node.storage", ["ssd", "nvme", "hdd"] as const, "ssd"),
  };
}

/**
 * Settings whose values the stack itself reads (the memory plan, the alert rules' expected values): a value that does
 * not parse would be silently replaced by the default in the plan while postgresql.conf carries it as written.
 */
const memorySettings = ["work_mem", "maintenance_work_mem", "autovacuum_work_mem", "effective_cache_size", "temp_buffers", "max_wal_size", "min_wal_size"];
const pgMemoryValue = /^\d+\s*(B|kB|MB|GB|TB)?$/;

function settingValueProblem(name: string, value: string): string | undefined {
  if (/[\n\r]/.test(value)) return "contains a line break; a postgresql.conf setting is one line";
  if (memorySettings.includes(name) && !pgMemoryValue.test(value) && !(name === "autovacuum_work_mem" && value === "-1")) {
    return `is not a PostgreSQL memory size; write a whole number with B, kB, MB, GB or TB (e.g. 256MB)`;
  }
  if (name === "hash_mem_multiplier" && !(/^\d+(\.\d+)?$/.test(value) && Number(value) >= 1 && Number(value) <= 1000)) {
    return "is not a number from 1.0 to 1000.0";
  }
  // The settings-drift alert compares these with the live values as label values.
  if (watchedSettings.includes(name) && !plainSettingValue.test(value)) return "is not a plain value (letters, digits, _ . , : - and spaces)";
  return undefined;
}

function readPostgres(r: SpecReader, config: Obj): PostgresSpec {
  const pg = r.section(config, "postgres", "postgres", [
    "version",
    "maxConnections",
    "statementTimeout",
    "hugePages",
    "reservedConnections",
    "database",
    "appUser",
    "settings",
    "acceptWorstCaseMemory",
    "audit",
  ]);
  if (pg.version !== undefined && pg.version !== 17) {
    r.fail("postgres.version", `postgres.version is ${show(pg.version)}; only 17 is supported (the renderers and tests target PostgreSQL 17)`);
  }
  const reserved = r.section(pg, "reservedConnections", "postgres.reservedConnections", ["maintenance", "monitoring"]);
  const settingsIn = r.mapping(pg, "settings", "postgres.settings", "PostgreSQL setting names as keys");
  const settings: Record<string, string> = {};
  for (const [name, value] of Object.entries(settingsIn)) {
    const key = `postgres.settings.${name}`;
    const owner = ownedSettings.get(name);
    if (owner !== undefined) {
      r.fail(key, `${key} overrides a setting the stack owns (${owner}); remove it`);
      continue;
    }
    if (!pg17SettingNames.has(name)) {
      const suggestion = closest(name, pg17SettingNames);
      r.fail(key, `${key} is not a PostgreSQL 17 setting${suggestion ? `; did you mean ${suggestion}?` : ""}`);
      continue;
    }
    if (typeof value !== "string" && typeof value !== "number" && typeof value !== "boolean") {
      r.fail(key, `${key} is ${show(value)}; it must be a string or number as written in postgresql.conf`);
      continue;
    }
    const problem = settingValueProblem(name, String(value));
    if (problem !== undefined) {
      r.fail(key, `${key} ${show(value)} ${problem}`);
      continue;
    }
    settings[name] = String(value);
  }
  const database = r.string(pg, "database", "postgres.database", identifier, identifierText, "app");
  const appUser = r.string(pg, "appUser", "postgres.appUser", identifier, identifierText, "app");
  if (reservedDatabases.has(database)) {
    r.fail("postgres.database", `postgres.database is ${show(database)}; ${reservedDatabases.get(database)}: choose another name`);
  }
  if (ownRoles.has(appUser) || appUser.startsWith("pg_")) {
    r.fail(
      "postgres.appUser",
      `postgres.appUser is ${show(appUser)}; ${ownRoles.get(appUser) ?? "PostgreSQL reserves role names starting with pg_"}: choose another name`,
    );
  } else if (appUser.length + Math.max(ownerSuffix.length, readOnlySuffix.length) > maxIdentifierLength) {
    // The owner and read-only roles are named after it (configs/roles.ts); PostgreSQL would cut a longer name.
    r.fail(
      "postgres.appUser",
      `postgres.appUser ${show(appUser)} is ${appUser.length} characters; the roles ${show(appUser + ownerSuffix)} and ${show(appUser + readOnlySuffix)} are named after it ` +
        `and must fit PostgreSQL's ${maxIdentifierLength}: at most ${maxIdentifierLength - Math.max(ownerSuffix.length, readOnlySuffix.length)} characters`,
    );
  }
  return {
    version: 17,
    maxConnections: r.integer(pg, "maxConnections", "postgres.maxConnections", 20, 10_000, 200),
    statementTimeoutMs: r.duration(pg, "statementTimeout", "postgres.statementTimeout", 0, 24 * 3_600_000, "from 0 (no limit) to 24h", 5 * 60_000),
    hugePages: r.oneOf(pg, "hugePages", "postgres.hugePages", ["on", "try", "off"] as const, "try"),
    reservedConnections: {
      maintenance: r.integer(reserved, "maintenance", "postgres.reservedConnections.maintenance", 3, 100, 10),
      monitoring: r.integer(reserved, "monitoring", "postgres.reservedConnections.monitoring", 1, 50, 5),
    },
    database,
    appUser,
    audit: readAudit(r, pg),
    settings,
    acceptWorstCaseMemory: r.boolean(pg, "acceptWorstCaseMemory", "postgres.acceptWorstCaseMemory", false),
  };
}

/** postgres.audit: `enabled` and the pgaudit.log classes, each one pgaudit knows, none twice. */
function readAudit(r: SpecReader, pg: Obj): AuditSpec {
  const a = r.section(pg, "audit", "postgres.audit", ["enabled", "log"]);
  const enabled = r.boolean(a, "enabled", "postgres.audit.enabled", false);
  const listed = r.list(a, "log", "postgres.audit.log");
  if (listed === undefined) return { enabled, log: ["ddl", "role"] };
  const log: AuditClass[] = [];
  listed.forEach((value, i) => {
    const key = `postgres.audit.log[${i}]`;
    if (typeof value !== "string" || !(auditClasses as readonly string[]).includes(value)) {
      const suggestion = typeof value === "string" ? closest(value, auditClasses) : undefined;
      r.fail(key, `${key} is ${show(value)}; pgaudit logs ${auditClasses.join(", ")}${suggestion ? `; did you mean ${suggestion}?` : ""}`);
    } else if (log.includes(value as AuditClass)) {
      r.fail(key, `${key} lists ${value} twice`);
    } else {
      log.push(value as AuditClass);
    }
  });
  if (listed.length === 0) r.fail("postgres.audit.log", "postgres.audit.log is empty; name at least one class (ddl, role, …) or set postgres.audit.enabled: false");
  return { enabled, log };
}

function readPgBouncer(r: SpecReader, config: Obj, postgres: PostgresSpec): PgBouncerSpec {
  const pb = r.section(config, "pgbouncer", "pgbouncer", [
    "poolMode",
    "maxClientConn",
    "defaultPoolSize",
    "reservePoolSize",
    "serverConnectTimeout",
    "queryTimeout",
    "serverIdleTimeout",
    "clientIdleTimeout",
    "maxPreparedStatements",
  ]);
  const seconds = (key: string, min: number, max: number, fallback: number) =>
    r.duration(pb, key, `pgbouncer.${key}`, min * 1000, max * 1000, `from ${min}s to ${max}s`, fallback * 1000) / 1000;
  const spec: PgBouncerSpec = {
    poolMode: r.oneOf(pb, "poolMode", "pgbouncer.poolMode", ["transaction", "session", "statement"] as const, "transaction"),
    maxClientConn: r.integer(pb, "maxClientConn", "pgbouncer.maxClientConn", 1, 100_000, 2000),
    defaultPoolSize: r.integer(pb, "defaultPoolSize", "pgbouncer.defaultPoolSize", 1, 10_000, 100),
    reservePoolSize: r.integer(pb, "reservePoolSize", "pgbouncer.reservePoolSize", 0, 1000, 10),
    serverConnectTimeoutSeconds: seconds("serverConnectTimeout", 1, 600, 15),
    queryTimeoutSeconds: seconds("queryTimeout", 0, 86_400, 300),
    serverIdleTimeoutSeconds: seconds("serverIdleTimeout", 0, 86_400, 600),
    clientIdleTimeoutSeconds: seconds("clientIdleTimeout", 0, 86_400, 0),
    maxPreparedStatements: r.integer(pb, "maxPreparedStatements", "pgbouncer.maxPreparedStatements", 0, 10_000, 200),
  };
  const { maintenance, monitoring } = postgres.reservedConnections;
  const room = postgres.maxConnections - maintenance - monitoring;
  if (spec.defaultPoolSize + spec.reservePoolSize > room) {
    r.fail(
      "pgbouncer.defaultPoolSize",
      `pgbouncer.defaultPoolSize ${spec.defaultPoolSize} + reservePoolSize ${spec.reservePoolSize} = ${spec.defaultPoolSize + spec.reservePoolSize} ` +
        `cannot fit in postgres.maxConnections ${postgres.maxConnections} minus ${maintenance} maintenance and ${monitoring} monitoring connections (${room}); ` +
        `lower the pool or raise postgres.maxConnections`,
    );
  }
  if (spec.maxClientConn < spec.defaultPoolSize) {
    r.fail("pgbouncer.maxClientConn", `pgbouncer.maxClientConn ${spec.maxClientConn} is below defaultPoolSize ${spec.defaultPoolSize}; the pool could never fill`);
  }
  return spec;
}

const vectorTableKeys = ["table", "column", "dimensions", "metric", "type", "filterColumns", "m", "efConstruction", "efSearch", "createTable"];

/** Columns the stack's own CREATE TABLE defines besides the vector and filter columns (configs/hnsw.ts). */
const ownTableColumns = ["id", "created_at"];

/**
 * pgvector's limits on the parameters the index is really built with: the user's m and ef_construction, or the
 * tuning guide's for the dimension where the stack file leaves them out (1,536 dimensions → m 48, so an
 * ef_construction of 50 is below 2 × m although it is above 2 × 16).
 */
function checkHnswParameters(r: SpecReader, path: string, dimensions: number, m: number | undefined, efConstruction: number | undefined): void {
  const guide = guideParameters(dimensions);
  const effectiveM = m ?? guide.m;
  const effectiveEf = efConstruction ?? guide.efConstruction;
  if (effectiveEf >= 2 * effectiveM) return;
  if (efConstruction !== undefined) {
    const mFrom = m === undefined ? ` (m ${effectiveM} is the tuning guide's for ${dimensions} dimensions)` : "";
    r.fail(`${path}.efConstruction`, `${path}.efConstruction is ${efConstruction}; pgvector requires at least 2 × m = ${2 * effectiveM}${mFrom}`);
  } else {
    r.fail(
      `${path}.m`,
      `${path}.m is ${effectiveM}, but the tuning guide's ef_construction for ${dimensions} dimensions is ${effectiveEf}, below pgvector's minimum 2 × m = ${2 * effectiveM}; ` +
        `set ${path}.efConstruction to at least ${2 * effectiveM} or lower m`,
    );
  }
}

/** Names the plan derives from table and column names: PostgreSQL would truncate one over 63 bytes silently. */
function checkDerivedNames(r: SpecReader, path: string, table: string, column: string, filterColumns: readonly string[]): void {
  const derived: [string, string][] = [
    [`${table}_${column}_hnsw_idx`, `${path}.table/column`],
    ...filterColumns.map((f, j): [string, string] => [`${table}_${f}_btree_idx`, `${path}.filterColumns[${j}]`]),
  ];
  for (const [name, key] of derived) {
    if (Buffer.byteLength(name) > maxIdentifierBytes) {
      r.fail(key, `${key}: the index name ${name} would be ${Buffer.byteLength(name)} bytes, over PostgreSQL's ${maxIdentifierBytes}; shorten the table or column name`);
    }
  }
}

function readVectorTables(r: SpecReader, config: Obj, target: Target): VectorTableSpec[] {
  const list = r.list(config, "vectorTables", "vectorTables") ?? [{}];
  const tables: VectorTableSpec[] = [];
  list.forEach((item, i) => {
    const path = `vectorTables[${i}]`;
    if (typeof item !== "object" || item === null || Array.isArray(item)) {
      r.fail(path, `${path} is ${show(item)}; it must be a mapping with keys ${vectorTableKeys.join(", ")}`);
      return;
    }
    const t = item as Obj;
    r.unknownKeys(t, path, vectorTableKeys);
    const dimensions = r.integer(t, "dimensions", `${path}.dimensions`, 1, 16_000, 768);
    const type = r.oneOf<VectorType>(t, "type", `${path}.type`, ["vector", "halfvec"], dimensions > hnswMaxDimensions.vector ? "halfvec" : "vector");
    if (dimensions > hnswMaxDimensions[type]) {
      r.fail(
        `${path}.dimensions`,
        `${path}.dimensions is ${dimensions}; pgvector's HNSW index allows at most ${hnswMaxDimensions.vector} for vector and ${hnswMaxDimensions.halfvec} for halfvec` +
          (type === "vector" && dimensions <= hnswMaxDimensions.halfvec ? ` (set ${path}.type: halfvec)` : ""),
      );
    }
    const issuesBefore = r.issues.length;
    const m = t.m === undefined ? undefined : r.integer(t, "m", `${path}.m`, 2, 100, 16);
    const efConstruction = t.efConstruction === undefined ? undefined : r.integer(t, "efConstruction", `${path}.efConstruction`, 4, 1000, 64);
    if (r.issues.length === issuesBefore) checkHnswParameters(r, path, dimensions, m, efConstruction);
    const createTable = r.boolean(t, "createTable", `${path}.createTable`, target !== "kubernetes");
    const table = r.string(t, "table", `${path}.table`, identifier, identifierText, "memories");
    const column = r.string(t, "column", `${path}.column`, identifier, identifierText, "embedding");
    const filters = r.list(t, "filterColumns", `${path}.filterColumns`) ?? ["tier"];
    const filterColumns: string[] = [];
    filters.forEach((f, j) => {
      const key = `${path}.filterColumns[${j}]`;
      if (typeof f !== "string" || !identifier.test(f)) r.fail(key, `${key} is ${show(f)}; it must be ${identifierText}`);
      else if (filterColumns.includes(f)) r.fail(key, `${key} ${show(f)} is listed twice`);
      else if (f === column) r.fail(key, `${key} ${show(f)} is the vector column itself`);
      else if (createTable && ownTableColumns.includes(f)) {
        r.fail(key, `${key} ${show(f)} is a column the stack's own table already has (${ownTableColumns.join(", ")}); name the filter column otherwise`);
      } else filterColumns.push(f);
    });
    if (createTable && ownTableColumns.includes(column)) {
      r.fail(`${path}.column`, `${path}.column ${show(column)} is a column the stack's own table already has (${ownTableColumns.join(", ")})`);
    }
    checkDerivedNames(r, path, table, column, filterColumns);
    tables.push({
      table,
      column,
      dimensions,
      metric: r.oneOf<VectorMetric>(t, "metric", `${path}.metric`, ["cosine", "l2", "inner_product"], "cosine"),
      type,
      filterColumns,
      ...(m === undefined ? {} : { m }),
      ...(efConstruction === undefined ? {} : { efConstruction }),
      efSearch: r.integer(t, "efSearch", `${path}.efSearch`, 1, 1000, 40),
      createTable,
    });
  });
  const seen = new Set<string>();
  for (const t of tables) {
    if (seen.has(t.table)) r.fail("vectorTables", `vectorTables lists table ${show(t.table)} twice; one entry per table`);
    seen.add(t.table);
  }
  return tables;
}

function readBenchmark(r: SpecReader, config: Obj, pgbouncer: PgBouncerSpec): BenchmarkSpec {
  const b = r.section(config, "benchmark", "benchmark", [
    "targets",
    "concurrency",
    "duration",
    "warmup",
    "sustained",
    "rows",
    "recallQueries",
    "enforce",
    "seed",
  ]);
  const t = r.section(b, "targets", "benchmark.targets", Object.keys(defaultBenchmark.targets));
  const targets = Object.fromEntries(
    Object.entries(defaultBenchmark.targets).map(([k, v]) => [k, r.number(t, k, `benchmark.targets.${k}`, 0.001, 1e9, v)]),
  ) as unknown as BenchmarkTargets;
  const concurrency = r.integer(b, "concurrency", "benchmark.concurrency", 1, 1000, defaultBenchmark.concurrency);
  if (concurrency > pgbouncer.maxClientConn) {
    r.fail("benchmark.concurrency", `benchmark.concurrency ${concurrency} exceeds pgbouncer.maxClientConn ${pgbouncer.maxClientConn}`);
  }
  const secs = (key: string, min: number, fallback: number) =>
    r.duration(b, key, `benchmark.${key}`, min * 1000, 3_600_000, `from ${min}s to 1h`, fallback * 1000) / 1000;
  return {
    targets,
    concurrency,
    durationSeconds: secs("duration", 1, defaultBenchmark.durationSeconds),
    warmupSeconds: secs("warmup", 0, defaultBenchmark.warmupSeconds),
    sustainedSeconds: secs("sustained", 1, defaultBenchmark.sustainedSeconds),
    rows: r.integer(b, "rows", "benchmark.rows", 100, 100_000_000, defaultBenchmark.rows),
    recallQueries: r.integer(b, "recallQueries", "benchmark.recallQueries", 1, 10_000, defaultBenchmark.recallQueries),
    enforce: r.boolean(b, "enforce", "benchmark.enforce", defaultBenchmark.enforce),
    seed: r.integer(b, "seed", "benchmark.seed", 0, 2 ** 31 - 1, defaultBenchmark.seed),
  };
}

function readAlertLabels(r: SpecReader, a: Obj): Record<string, string> {
  const labels = r.mapping(a, "labels", "alerts.labels", "Prometheus label names as keys, e.g. team: search");
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(labels)) {
    const key = `alerts.labels.${name}`;
    if (!promLabelName.test(name) || name.startsWith("__")) {
      r.fail(key, `${key}: ${show(name)} is not a Prometheus label name (letters, digits, _; not starting with a digit or __)`);
    } else if (ownAlertLabels.includes(name)) {
      r.fail(key, `${key}: every alert already sets ${name} (${ownAlertLabels.join(", ")} are the stack's own); choose another label name`);
    } else if (typeof value !== "string" || value === "" || /[\u0000-\u001f]/.test(value)) {
      r.fail(key, `${key} is ${show(value)}; it must be a non-empty string on one line`);
    } else if (/\{\{|\}\}/.test(value)) {
      // Prometheus expands templates in alert labels: {{ … }} would be run, and an unknown one fails the rule file.
      r.fail(key, `${key} is ${show(value)}; it must not contain {{ or }} (Prometheus would expand it as a template)`);
    } else out[name] = value;
  }
  return out;
}

function readAlerts(r: SpecReader, config: Obj): AlertsSpec {
  const a = r.section(config, "alerts", "alerts", [...Object.keys(defaultAlertThresholds), "runbookBaseUrl", "labels"]);
  const issuesBefore = r.issues.length;
  const thresholds = Object.fromEntries(
    Object.entries(defaultAlertThresholds).map(([k, v]) =>
      typeof v === "number"
        ? [k, r.number(a, k, `alerts.${k}`, 0, 1e12, v)]
        : [k, r.string(a, k, `alerts.${k}`, /^[1-9]\d*[smhd]$/, "a Prometheus duration of whole units such as 5m", v as string)],
    ),
  ) as unknown as AlertThresholds;
  // Ranges and orderings the rule builder relies on (a ratio is a fraction, a warning below its critical…), on the
  // values as read; skipped when a value was already refused, since its fallback would be judged instead.
  if (r.issues.length === issuesBefore) {
    for (const problem of alertThresholdProblems(thresholds)) r.fail(/^(alerts\.\w+)/.exec(problem)?.[1] ?? "alerts", problem);
  }
  return {
    ...thresholds,
    // No {{ }}: runbook_url is an annotation, and Prometheus expands templates in annotations.
    runbookBaseUrl: r.string(a, "runbookBaseUrl", "alerts.runbookBaseUrl", /^https?:\/\/(?![^\s]*(\{\{|\}\}))[^\s#]+$/, "an http(s) URL without a #fragment (each alert adds its own) and without {{ }}", defaultRunbookBaseUrl),
    labels: readAlertLabels(r, a),
  };
}

const day = 86_400_000;

function readTls(r: SpecReader, config: Obj, target: Target, alerts: AlertsSpec): TlsSpec {
  const t = r.section(config, "tls", "tls", ["certificateValidity", "renewBefore", "certManagerIssuer"]);
  const validity = r.duration(t, "certificateValidity", "tls.certificateValidity", day, 825 * day, "from 1d to 825d", 90 * day);
  const renewBefore = r.duration(t, "renewBefore", "tls.renewBefore", 3_600_000, 824 * day, "from 1h to 824d", 30 * day);
  if (renewBefore >= validity) {
    r.fail("tls.renewBefore", `tls.renewBefore ${show(t.renewBefore ?? "30d")} must be shorter than tls.certificateValidity ${show(t.certificateValidity ?? "90d")}`);
  }
  // The expiry warning must not fire before a renewal is even due, or every healthy certificate would page.
  const warning = parseDuration(alerts.certificateExpiryWarning);
  if (warning.ok && warning.value >= renewBefore) {
    r.fail(
      "alerts.certificateExpiryWarning",
      `alerts.certificateExpiryWarning ${alerts.certificateExpiryWarning} must be shorter than tls.renewBefore ${show(t.renewBefore ?? "30d")}: a certificate is renewed that long before it ends, so the alert would fire on every healthy one`,
    );
  }
  let certManagerIssuer: TlsSpec["certManagerIssuer"] = null;
  if (t.certManagerIssuer !== undefined) {
    const i = r.section(t, "certManagerIssuer", "tls.certManagerIssuer", ["name", "kind"]);
    if (target !== "kubernetes") r.fail("tls.certManagerIssuer", `tls.certManagerIssuer is for target: kubernetes (cert-manager runs in a cluster); this stack's target is ${target}`);
    if (i.name === undefined) r.fail("tls.certManagerIssuer.name", "tls.certManagerIssuer.name is missing; write the Issuer's or ClusterIssuer's name");
    certManagerIssuer = {
      name: r.string(i, "name", "tls.certManagerIssuer.name", /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/, "a Kubernetes object name", "issuer"),
      kind: r.oneOf(i, "kind", "tls.certManagerIssuer.kind", ["Issuer", "ClusterIssuer"] as const, "Issuer"),
    };
  }
  return { certificateValidityMs: validity, renewBeforeMs: renewBefore, certManagerIssuer };
}

const imageKeys = Object.keys(defaultImages) as ImageKey[];

/**
 * A registry repository prefix as image references use it: a host with a dot (optionally a port), or localhost, and an optional
 * path, lower case, no scheme, no tag. The images are pushed as `<registry>/pgstack-<image>:<tag>`.
 */
const registryPattern = /^(localhost|[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+)(:[0-9]{1,5})?(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/;

/**
 * `images.source` defaults by target. Docker: pgstack, built on the engine the stack deploys to, so the containers run
 * the very packages the real-server tests ran and nothing needs a registry. Kubernetes: upstream, because the cluster
 * pulls from a registry this program cannot assume; with `images.registry` given, `source: pgstack` builds and pushes
 * there. Upstream references are kept as written: a digest (name:tag@sha256:…) reaches the pull unchanged
 * (configs/docker-exposure.ts checks the form); they are refused with source pgstack, where they would be ignored.
 */
function readImages(r: SpecReader, config: Obj, target: Target): Images {
  const i = r.section(config, "images", "images", ["source", "registry", ...imageKeys]);
  const defaultSource: ImageSource = target === "docker" ? "pgstack" : "upstream";
  const source = r.oneOf(i, "source", "images.source", ["pgstack", "upstream"] as const, defaultSource);
  const image = (key: ImageKey): string => {
    const value = i[key];
    if (value === undefined) return defaultImages[key];
    if (source === "pgstack") {
      r.fail(`images.${key}`, `images.${key} is ${show(value)}, but images.source is pgstack, which runs this repository's images built from images/: set images.source: upstream to run ${show(value)}, or remove images.${key}`);
      return defaultImages[key];
    }
    const problem = typeof value === "string" ? imageReferenceProblem(value) : "is not a string";
    if (problem === null) return value as string;
    r.fail(`images.${key}`, `images.${key} is ${show(value)}; it must be an image pinned by tag or digest (name:tag, name@sha256:…, name:tag@sha256:…), never bare or :latest; it ${problem}`);
    return defaultImages[key];
  };
  const upstream = Object.fromEntries(imageKeys.map((k) => [k, image(k)])) as unknown as ImageReferences;
  let registry: string | null = null;
  if (i.registry !== undefined) {
    if (typeof i.registry !== "string" || !registryPattern.test(i.registry)) {
      r.fail("images.registry", `images.registry is ${show(i.registry)}; it must be a registry repository prefix such as registry.example.com/team or localhost:5000 (lower case, no scheme, no tag)`);
    } else if (target !== "kubernetes") {
      r.fail("images.registry", `images.registry is ${show(i.registry)}, but target is ${target}: only Kubernetes stacks push images (Docker builds them on the engine it deploys to); remove images.registry`);
    } else if (source !== "pgstack") {
      r.fail("images.registry", `images.registry is ${show(i.registry)}, but images.source is upstream, which pushes nothing: set images.source: pgstack to build and push there, or remove images.registry`);
    } else {
      registry = i.registry;
    }
  } else if (target === "kubernetes" && source === "pgstack") {
    r.fail("images.source", `images.source is pgstack on a Kubernetes stack, but images.registry is not set: the cluster pulls the images from a registry; set images.registry (e.g. registry.example.com/team) or images.source: upstream`);
  }
  return { source, registry, upstream };
}

/** A `matchLabels` mapping as the API server validates it; null when absent and there is no default. */
function readLabels(r: SpecReader, obj: Obj, key: string, path: string): Record<string, string> | null {
  if (obj[key] === undefined || obj[key] === null) return null;
  const labels = r.mapping(obj, key, path, "label keys and values, e.g. release: kube-prometheus-stack");
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(labels)) {
    const where = `${path}.${name}`;
    const slash = name.lastIndexOf("/");
    const prefix = slash >= 0 ? name.slice(0, slash) : undefined;
    const base = slash >= 0 ? name.slice(slash + 1) : name;
    if (!labelName.test(base) || (prefix !== undefined && (prefix.length > 253 || !dnsSubdomain.test(prefix)))) {
      r.fail(where, `${where}: ${show(name)} is not a Kubernetes label key ([prefix/]name; name: at most 63 letters, digits, - _ ., starting and ending alphanumeric)`);
    } else if (typeof value !== "string" || (value !== "" && !labelName.test(value))) {
      r.fail(where, `${where} is ${show(value)}; a label value is at most 63 letters, digits, - _ ., starting and ending alphanumeric (quote numbers and booleans)`);
    } else out[name] = value;
  }
  return out;
}

function readKubernetes(r: SpecReader, config: Obj): KubernetesSpec {
  const k = r.section(config, "kubernetes", "kubernetes", [
    "namespace",
    "storageSize",
    "storageClassName",
    "storageResizedFrom",
    "prometheusOperator",
    "grafanaDashboard",
    "monitoringLabels",
    "clientNamespaceSelector",
    "clientPodSelector",
    "prometheusNamespaceSelector",
    "prometheusPodSelector",
    "daemonSetMemory",
    "clusterDomain",
  ]);
  const storageSizeBytes = r.bytes(k, "storageSize", "kubernetes.storageSize", bytes.GiB, "1Gi", 100 * bytes.GiB);
  const storageResizedFromBytes = k.storageResizedFrom === undefined ? null : r.bytes(k, "storageResizedFrom", "kubernetes.storageResizedFrom", bytes.GiB, "1Gi", 0);
  if (storageResizedFromBytes !== null && storageResizedFromBytes >= storageSizeBytes) {
    r.fail(
      "kubernetes.storageResizedFrom",
      `kubernetes.storageResizedFrom ${show(k.storageResizedFrom)} is not below kubernetes.storageSize ${show(k.storageSize ?? "100Gi")}; it records the size before a volume was grown, so it must be smaller`,
    );
  }
  return {
    namespace: r.string(k, "namespace", "kubernetes.namespace", /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, "a DNS label (lower-case letters, digits, -)", "pgvector"),
    storageSizeBytes,
    storageClassName: k.storageClassName === undefined ? null : r.string(k, "storageClassName", "kubernetes.storageClassName", /^[a-z0-9.-]+$/, "a StorageClass name", ""),
    storageResizedFromBytes,
    prometheusOperator: r.boolean(k, "prometheusOperator", "kubernetes.prometheusOperator", true),
    grafanaDashboard: r.boolean(k, "grafanaDashboard", "kubernetes.grafanaDashboard", true),
    monitoringLabels: readLabels(r, k, "monitoringLabels", "kubernetes.monitoringLabels") ?? {},
    clientNamespaceSelector: readLabels(r, k, "clientNamespaceSelector", "kubernetes.clientNamespaceSelector"),
    clientPodSelector: readLabels(r, k, "clientPodSelector", "kubernetes.clientPodSelector") ?? {},
    prometheusNamespaceSelector: readLabels(r, k, "prometheusNamespaceSelector", "kubernetes.prometheusNamespaceSelector") ?? {
      "kubernetes.io/metadata.name": "monitoring",
    },
    prometheusPodSelector: readLabels(r, k, "prometheusPodSelector", "kubernetes.prometheusPodSelector") ?? { "app.kubernetes.io/name": "prometheus" },
    daemonSetMemoryBytes: r.bytes(k, "daemonSetMemory", "kubernetes.daemonSetMemory", 0, "0", defaultDaemonSetMemoryBytes),
    clusterDomain: r.string(k, "clusterDomain", "kubernetes.clusterDomain", dnsSubdomain, "a DNS domain such as cluster.local", "cluster.local"),
  };
}

function readDocker(r: SpecReader, config: Obj): DockerSpec {
  const d = r.section(config, "docker", "docker", ["hostHugePages", "publishAddress", "exposeBeyondLoopback", "ports"]);
  const p = r.section(d, "ports", "docker.ports", ["postgres", "pgbouncer", "prometheus"]);
  const ports = {
    postgres: r.integer(p, "postgres", "docker.ports.postgres", 1, 65535, postgresPort),
    pgbouncer: r.integer(p, "pgbouncer", "docker.ports.pgbouncer", 1, 65535, pgbouncerPort),
    prometheus: r.integer(p, "prometheus", "docker.ports.prometheus", 1, 65535, prometheusPort),
  };
  const names = Object.keys(ports) as (keyof typeof ports)[];
  names.forEach((a, i) =>
    names.slice(i + 1).forEach((b) => {
      if (ports[a] === ports[b]) r.fail(`docker.ports.${b}`, `docker.ports.${a} and docker.ports.${b} are both ${ports[a]}; each published port needs its own number`);
    }),
  );
  const publishAddress = r.string(d, "publishAddress", "docker.publishAddress", /^\d{1,3}(\.\d{1,3}){3}$/, "an IPv4 address such as 127.0.0.1", "127.0.0.1");
  // Beyond loopback only when the stack says so: Prometheus has no login (configs/docker-exposure.ts).
  const exposeBeyondLoopback = r.boolean(d, "exposeBeyondLoopback", "docker.exposeBeyondLoopback", false);
  const exposure = exposureProblem({ publishAddress, exposeBeyondLoopback });
  if (ipv4Octets(publishAddress) === null) r.fail("docker.publishAddress", `docker.publishAddress ${show(publishAddress)} is not an IPv4 address: each part must be 0-255`);
  else if (exposure !== null) r.fail("docker.publishAddress", exposure);
  return {
    hostHugePages: r.boolean(d, "hostHugePages", "docker.hostHugePages", false),
    publishAddress,
    exposeBeyondLoopback,
    ports,
  };
}

function checkStackName(r: SpecReader, stack: string): void {
  if (!stackNamePattern.test(stack)) {
    r.fail(
      "stack",
      `stack name ${show(stack)} must be 1–63 letters, digits, _ . - starting and ending with a letter or digit: it becomes a Kubernetes label value, ` +
        `part of Docker names and the stack label of every alert`,
    );
  }
}

/**
 * Secrets belong in the stack file encrypted (`pulumi config set --secret`): a plain-text one would sit in the
 * repository and in every rendered diff. Refused with the command that stores it properly; its value is never shown.
 */
function checkSecrets(r: SpecReader, config: Obj, secretKeys: ReadonlySet<string>): void {
  for (const key of secretConfigKeys) {
    if (config[key] === undefined || secretKeys.has(key)) continue;
    r.fail(
      key,
      `${key} is in plain text in the stack file; remove it and store it encrypted: pulumi config set --secret ${configNamespace}:${key} <value> ` +
        `(or leave it unset and the stack generates one)`,
    );
  }
}

/**
 * Checks on what the keys add up to, run once every key is valid: a Kubernetes node too small for PostgreSQL's floor
 * next to the sidecars and the huge pages the stack reserves (configs/kubernetes-resources.ts) would otherwise stop
 * the component at `pulumi up`.
 */
function checkDerived(r: SpecReader, spec: StackSpec): void {
  if (spec.target !== "kubernetes") return;
  const plan = memoryPlan(spec);
  const problem = podResourcesProblem({
    memory: { nodeMemoryBytes: spec.node.memoryBytes, maintenanceWorkMemBytes: plan.maintenanceWorkMemBytes, sharedMemoryBytes: plan.sharedMemoryBytes, hugePages: plan.hugePages },
    cpus: spec.node.cpus,
    maxConnections: spec.postgres.maxConnections,
    maxClientConn: spec.pgbouncer.maxClientConn,
    daemonSetMemoryBytes: spec.kubernetes.daemonSetMemoryBytes,
  });
  if (problem !== undefined) r.fail("node.memory", problem);
}

/**
 * pgaudit is a shared library PostgreSQL must find at start: the perf cluster's Debian 13 rootfs has it
 * (postgresql-17-pgaudit), the default container image (pgvector/pgvector) does not, and a server that cannot load a
 * preloaded library does not start. Refused with the way out rather than left to a crash-looping pod.
 */
function checkAuditImage(r: SpecReader, spec: StackSpec): void {
  const { source, upstream } = spec.images;
  if (!spec.postgres.audit.enabled || spec.target === "local" || source === "pgstack" || upstream.postgres !== defaultImages.postgres) return;
  r.fail(
    "postgres.audit.enabled",
    `postgres.audit.enabled is true, but images.postgres is ${show(upstream.postgres)}, which does not ship pgaudit: PostgreSQL would not start. ` +
      `Set images.source: pgstack (this repository's postgres image has pgaudit), or images.postgres to an image with PostgreSQL 17, pgvector and pgaudit (Debian's postgresql-17-pgaudit), or leave audit off`,
  );
}

/** `pgvector-stak:postgres` is ours, misspelt; `kubernetes:context` is another tool's. */
function checkOtherNamespaces(r: SpecReader, keys: Iterable<string>): void {
  for (const key of keys) {
    const namespace = key.slice(0, Math.max(0, key.indexOf(":")));
    if (namespace === "" || namespace === configNamespace || closest(namespace, [configNamespace]) === undefined) continue;
    const name = key.slice(namespace.length + 1);
    r.fail(key, `unknown namespace in ${key}; did you mean ${configNamespace}:${name}? (its value is ignored as written)`);
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object") {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/**
 * Validate a stack's config (keys without the `pgvector-stack:` namespace) and fill defaults.
 * Throws SpecError listing every problem found.
 */
export function parseStackSpec(stack: string, config: Obj, options: SpecOptions = {}): StackSpec {
  const r = new SpecReader();
  r.unknownKeys(config, "", topLevelKeys);
  checkStackName(r, stack);
  checkSecrets(r, config, new Set(options.secretKeys ?? []));
  checkOtherNamespaces(r, options.otherKeys ?? []);
  const target = readTarget(r, config);
  const node = readNode(r, config, target, options.host);
  const postgres = readPostgres(r, config);
  const pgbouncer = readPgBouncer(r, config, postgres);
  const alerts = readAlerts(r, config);
  const spec: StackSpec = {
    stack,
    target,
    node,
    postgres,
    pgbouncer,
    vectorTables: readVectorTables(r, config, target),
    benchmark: readBenchmark(r, config, pgbouncer),
    alerts,
    tls: readTls(r, config, target, alerts),
    images: readImages(r, config, target),
    kubernetes: readKubernetes(r, config),
    docker: readDocker(r, config),
  };
  checkAuditImage(r, spec);
  if (r.issues.length === 0) checkDerived(r, spec);
  if (r.issues.length > 0) throw new SpecError(stack, r.issues);
  return deepFreeze(spec);
}

/** The keys of a stack file's `config:` mapping that are not in this project's namespace, as written. */
export function otherNamespaceKeys(fileConfig: Obj): string[] {
  return Object.keys(fileConfig ?? {}).filter((key) => key.includes(":") && !key.startsWith(`${configNamespace}:`));
}

/** Strip the `pgvector-stack:` namespace from a stack file's `config:` mapping (other namespaces are other tools'). */
export function stackConfigFromFile(fileConfig: Obj): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fileConfig ?? {})) {
    const [namespace, name] = key.includes(":") ? key.split(":", 2) : [configNamespace, key];
    if (namespace === configNamespace) out[name] = value;
  }
  return out;
}

export type { SpecIssue };
