/**
 * Stack config (the `pgvector-stack:*` keys of Pulumi.<stack>.yaml) → a validated, frozen StackSpec.
 * Every error is collected and reported at once, before anything is rendered.
 */
import { defaultAlertThresholds, type AlertThresholds } from "./alerts";
import { defaultBenchmark, type BenchmarkSpec, type BenchmarkTargets } from "./benchmark";
import { hnswMaxDimensions, type VectorMetric, type VectorTableSpec, type VectorType } from "./hnsw";
import { ownedSettings } from "./owned-settings";
import { pg17SettingNames } from "./pg17-settings";
import { closest, show, SpecError, SpecReader } from "./spec-reader";
import { monitoringVersions } from "./exporters";
import type { DockerSpec, Images, KubernetesSpec, NodeSpec, PgBouncerSpec, PostgresSpec, StackSpec, Target } from "./stack-spec";
import { bytes } from "./units";

export { SpecError } from "./spec-reader";
export type { StackSpec } from "./stack-spec";

/** The Pulumi config namespace: keys are written `pgvector-stack:node` in stack files. */
export const configNamespace = "pgvector-stack";

/** Secret config keys: read by index.ts as Pulumi secrets, never part of the spec. */
export const secretConfigKeys = ["appPassword", "monitorPassword", "statsPassword", "superuserPassword"] as const;

const topLevelKeys = [
  "target",
  "node",
  "postgres",
  "pgbouncer",
  "vectorTables",
  "benchmark",
  "alerts",
  "images",
  "kubernetes",
  "docker",
  ...secretConfigKeys,
];

/** Where the stack runs the config: the host's own RAM and cores, for `memory: auto`. */
export interface HostFacts {
  readonly memoryBytes: number;
  readonly cpus: number;
}

/** Below 1 GiB the guide's fractions leave PostgreSQL too little to run HNSW builds at all. */
const minimumNodeMemory = bytes.GiB;

/**
 * Default images, pinned by tag. PgBouncer and both exporters move together: every PgBouncer minor release has
 * broken some exporter query (SHOW POOLS/STATS columns), so they are upgraded as one tested set.
 */
export const defaultImages: Images = {
  postgres: "pgvector/pgvector:0.8.0-pg17",
  pgbouncer: "edoburu/pgbouncer:v1.24.1-p1",
  postgresExporter: "quay.io/prometheuscommunity/postgres-exporter:v0.17.1",
  pgbouncerExporter: "quay.io/prometheuscommunity/pgbouncer-exporter:v0.10.2",
  prometheus: "prom/prometheus:v2.53.4",
  nodeExporter: "prom/node-exporter:v1.9.1",
  mtail: monitoringVersions.mtail.image,
  node: "node:20-bookworm-slim",
};

const identifier = /^[a-z_][a-z0-9_]{0,62}$/;
const identifierText = "a lower-case SQL identifier (letters, digits, _; at most 63 characters)";

type Obj = Readonly<Record<string, unknown>>;

function readTarget(r: SpecReader, config: Obj): Target {
  return r.oneOf(config, "target", "target", ["kubernetes", "docker", "local"] as const, "kubernetes");
}

function readNode(r: SpecReader, config: Obj, host: HostFacts | undefined): NodeSpec {
  const node = r.section(config, "node", "node", ["memory", "cpus", "storage"]);
  const auto = node.memory === "auto";
  if (auto && !host) r.fail("node.memory", `node.memory is "auto" but no host facts were given to size it from`);
  const memoryBytes = auto
    ? (host?.memoryBytes ?? 16 * bytes.GiB)
    : r.bytes(node, "memory", "node.memory", minimumNodeMemory, "1Gi", 16 * bytes.GiB);
  if (node.memory === undefined) r.fail("node.memory", `node.memory is missing; write the node's RAM (e.g. 32Gi) or "auto"`);
  const cpusAuto = node.cpus === "auto";
  return {
    memoryBytes,
    memoryAuto: auto,
    cpus: cpusAuto ? (host?.cpus ?? 2) : r.integer(node, "cpus", "node.cpus", 1, 512, 4),
    storage: r.oneOf(node, "storage", "node.storage", ["ssd", "nvme", "hdd"] as const, "ssd"),
  };
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
    settings[name] = String(value);
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
    database: r.string(pg, "database", "postgres.database", identifier, identifierText, "app"),
    appUser: r.string(pg, "appUser", "postgres.appUser", identifier, identifierText, "app"),
    settings,
  };
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
    const m = t.m === undefined ? undefined : r.integer(t, "m", `${path}.m`, 2, 100, 16);
    const efConstruction = t.efConstruction === undefined ? undefined : r.integer(t, "efConstruction", `${path}.efConstruction`, 4, 1000, 64);
    const effectiveM = m ?? 16;
    if (efConstruction !== undefined && efConstruction < 2 * effectiveM) {
      r.fail(`${path}.efConstruction`, `${path}.efConstruction is ${efConstruction}; pgvector requires at least 2 × m = ${2 * effectiveM}`);
    }
    const filters = r.list(t, "filterColumns", `${path}.filterColumns`) ?? ["tier"];
    const filterColumns: string[] = [];
    filters.forEach((f, j) => {
      if (typeof f === "string" && identifier.test(f)) filterColumns.push(f);
      else r.fail(`${path}.filterColumns[${j}]`, `${path}.filterColumns[${j}] is ${show(f)}; it must be ${identifierText}`);
    });
    tables.push({
      table: r.string(t, "table", `${path}.table`, identifier, identifierText, "memories"),
      column: r.string(t, "column", `${path}.column`, identifier, identifierText, "embedding"),
      dimensions,
      metric: r.oneOf<VectorMetric>(t, "metric", `${path}.metric`, ["cosine", "l2", "inner_product"], "cosine"),
      type,
      filterColumns,
      ...(m === undefined ? {} : { m }),
      ...(efConstruction === undefined ? {} : { efConstruction }),
      efSearch: r.integer(t, "efSearch", `${path}.efSearch`, 1, 1000, 40),
      createTable: r.boolean(t, "createTable", `${path}.createTable`, target !== "kubernetes"),
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

function readAlerts(r: SpecReader, config: Obj): AlertThresholds {
  const a = r.section(config, "alerts", "alerts", Object.keys(defaultAlertThresholds));
  return Object.fromEntries(
    Object.entries(defaultAlertThresholds).map(([k, v]) =>
      typeof v === "number" ? [k, r.number(a, k, `alerts.${k}`, 0, 1e12, v)] : [k, r.string(a, k, `alerts.${k}`, /^\d+[smhd]$/, "a Prometheus duration such as 5m", v as string)],
    ),
  ) as unknown as AlertThresholds;
}

const imageRef = /^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9._-]+|@sha256:[a-f0-9]{64})$/;

function readImages(r: SpecReader, config: Obj): Images {
  const i = r.section(config, "images", "images", Object.keys(defaultImages));
  return Object.fromEntries(
    Object.entries(defaultImages).map(([k, v]) => [k, r.string(i, k, `images.${k}`, imageRef, "an image pinned by tag or digest (name:tag), never bare or :latest", v)]),
  ) as unknown as Images;
}

function readKubernetes(r: SpecReader, config: Obj): KubernetesSpec {
  const k = r.section(config, "kubernetes", "kubernetes", ["namespace", "storageSize", "storageClassName", "prometheusOperator", "grafanaDashboard"]);
  return {
    namespace: r.string(k, "namespace", "kubernetes.namespace", /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, "a DNS label (lower-case letters, digits, -)", "pgvector"),
    storageSizeBytes: r.bytes(k, "storageSize", "kubernetes.storageSize", bytes.GiB, "1Gi", 100 * bytes.GiB),
    storageClassName: k.storageClassName === undefined ? null : r.string(k, "storageClassName", "kubernetes.storageClassName", /^[a-z0-9.-]+$/, "a StorageClass name", ""),
    prometheusOperator: r.boolean(k, "prometheusOperator", "kubernetes.prometheusOperator", true),
    grafanaDashboard: r.boolean(k, "grafanaDashboard", "kubernetes.grafanaDashboard", true),
  };
}

function readDocker(r: SpecReader, config: Obj): DockerSpec {
  const d = r.section(config, "docker", "docker", ["hostHugePages", "publishAddress", "ports"]);
  const p = r.section(d, "ports", "docker.ports", ["postgres", "pgbouncer", "prometheus"]);
  return {
    hostHugePages: r.boolean(d, "hostHugePages", "docker.hostHugePages", false),
    publishAddress: r.string(d, "publishAddress", "docker.publishAddress", /^\d{1,3}(\.\d{1,3}){3}$/, "an IPv4 address such as 127.0.0.1", "127.0.0.1"),
    ports: {
      postgres: r.integer(p, "postgres", "docker.ports.postgres", 1, 65535, 5432),
      pgbouncer: r.integer(p, "pgbouncer", "docker.ports.pgbouncer", 1, 65535, 6432),
      prometheus: r.integer(p, "prometheus", "docker.ports.prometheus", 1, 65535, 9090),
    },
  };
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
export function parseStackSpec(stack: string, config: Obj, host?: HostFacts): StackSpec {
  const r = new SpecReader();
  r.unknownKeys(config, "", topLevelKeys);
  const target = readTarget(r, config);
  const node = readNode(r, config, host);
  const postgres = readPostgres(r, config);
  const pgbouncer = readPgBouncer(r, config, postgres);
  const spec: StackSpec = {
    stack,
    target,
    node,
    postgres,
    pgbouncer,
    vectorTables: readVectorTables(r, config, target),
    benchmark: readBenchmark(r, config, pgbouncer),
    alerts: readAlerts(r, config),
    images: readImages(r, config),
    kubernetes: readKubernetes(r, config),
    docker: readDocker(r, config),
  };
  if (r.issues.length > 0) throw new SpecError(stack, r.issues);
  return deepFreeze(spec);
}

/** Strip the `pgvector-stack:` namespace from a stack file's `config:` mapping. */
export function stackConfigFromFile(fileConfig: Obj): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fileConfig ?? {})) {
    const [namespace, name] = key.includes(":") ? key.split(":", 2) : [configNamespace, key];
    if (namespace === configNamespace) out[name] = value;
  }
  return out;
}
