import { describe, expect, it } from "vitest";
import { parseStackSpec, SpecError } from "../../configs/spec";
import { bytes } from "../../configs/units";

const host = { host: { memoryBytes: 24 * bytes.GiB, cpus: 2 } };
const base = { target: "kubernetes", node: { memory: "32Gi", cpus: 8, storage: "ssd" } };

function errorsOf(config: Record<string, unknown>): string[] {
  try {
    parseStackSpec("t", config, host);
  } catch (e) {
    if (e instanceof SpecError) return e.issues.map((i) => i.message);
    throw e;
  }
  return [];
}

describe("parseStackSpec: defaults", () => {
  it("fills the guide's defaults", () => {
    const spec = parseStackSpec("t", base, host);
    expect(spec.postgres.maxConnections).toBe(200);
    expect(spec.postgres.statementTimeoutMs).toBe(5 * 60_000);
    expect(spec.pgbouncer).toMatchObject({
      poolMode: "transaction",
      maxClientConn: 2000,
      defaultPoolSize: 100,
      serverConnectTimeoutSeconds: 15,
      queryTimeoutSeconds: 300,
    });
    expect(spec.benchmark.targets).toEqual({ insertOpsPerSec: 1000, searchOpsPerSec: 800, hybridOpsPerSec: 600, mixedOpsPerSec: 1200, p99Ms: 200 });
    expect(spec.vectorTables).toEqual([
      { table: "memories", column: "embedding", dimensions: 768, metric: "cosine", type: "vector", filterColumns: ["tier"], efSearch: 40, createTable: false },
    ]);
    expect(Object.isFrozen(spec.node)).toBe(true);
  });

  it("sizes memory: auto to the host", () => {
    const spec = parseStackSpec("t", { target: "local", node: { memory: "auto", cpus: "auto" } }, host);
    expect(spec.node).toMatchObject({ memoryBytes: 24 * bytes.GiB, memoryAuto: true, cpus: 2 });
    expect(spec.vectorTables[0].createTable).toBe(true);
  });

  it("picks halfvec above 2000 dimensions", () => {
    const spec = parseStackSpec("t", { ...base, vectorTables: [{ table: "docs", column: "e", dimensions: 3072 }] }, host);
    expect(spec.vectorTables[0].type).toBe("halfvec");
  });
});

// One row per bad input: the config and the message a user must see (key, value, what is allowed).
const badInputs: Array<[string, Record<string, unknown>, string]> = [
  ["memory without a unit", { ...base, node: { memory: "32" } }, 'node.memory "32" has no unit; write 32Gi'],
  ["memory below the floor", { ...base, node: { memory: "512Mi" } }, 'node.memory is "512Mi"; it must be at least 1Gi'],
  ["memory with an unknown unit", { ...base, node: { memory: "32Gb" } }, 'node.memory "32Gb" has an unknown unit "Gb"'],
  ["memory missing", { target: "docker" }, "node.memory is missing"],
  ["unknown target", { ...base, target: "nomad" }, 'target is "nomad"; allowed: kubernetes, docker, local'],
  ["unknown storage class", { ...base, node: { memory: "32Gi", storage: "spinning" } }, 'node.storage is "spinning"; allowed: ssd, nvme, hdd'],
  ["unknown top-level key with a suggestion", { ...base, pgbouncr: {} }, "unknown key pgbouncr; did you mean pgbouncer?"],
  ["unknown nested key with a suggestion", { ...base, postgres: { maxConnection: 300 } }, "unknown key postgres.maxConnection; did you mean postgres.maxConnections?"],
  ["vector dimensions beyond HNSW", { ...base, vectorTables: [{ table: "a", column: "e", dimensions: 3000, type: "vector" }] }, "vectorTables[0].dimensions is 3000; pgvector's HNSW index allows at most 2000 for vector and 4000 for halfvec (set vectorTables[0].type: halfvec)"],
  ["halfvec dimensions beyond HNSW", { ...base, vectorTables: [{ table: "a", column: "e", dimensions: 5000 }] }, "vectorTables[0].dimensions is 5000; pgvector's HNSW index allows at most 2000 for vector and 4000 for halfvec"],
  ["m below 2", { ...base, vectorTables: [{ table: "a", m: 1 }] }, "vectorTables[0].m is 1; it must be a whole number from 2 to 100"],
  ["m above 100", { ...base, vectorTables: [{ table: "a", m: 128 }] }, "vectorTables[0].m is 128; it must be a whole number from 2 to 100"],
  ["ef_construction below 2·m", { ...base, vectorTables: [{ table: "a", m: 32, efConstruction: 40 }] }, "vectorTables[0].efConstruction is 40; pgvector requires at least 2 × m = 64"],
  ["ef_construction above 1000", { ...base, vectorTables: [{ table: "a", efConstruction: 2000 }] }, "vectorTables[0].efConstruction is 2000; it must be a whole number from 4 to 1000"],
  [
    "pool that cannot fit in max_connections",
    { ...base, postgres: { maxConnections: 100 }, pgbouncer: { defaultPoolSize: 95 } },
    "pgbouncer.defaultPoolSize 95 + reservePoolSize 10 = 105 cannot fit in postgres.maxConnections 100 minus 10 maintenance and 5 monitoring connections (85)",
  ],
  ["owned setting", { ...base, postgres: { settings: { listen_addresses: "*" } } }, "postgres.settings.listen_addresses overrides a setting the stack owns"],
  ["owned setting: port", { ...base, postgres: { settings: { port: 5433 } } }, "postgres.settings.port overrides a setting the stack owns"],
  ["misspelt PostgreSQL setting", { ...base, postgres: { settings: { random_page_costs: "1.1" } } }, "postgres.settings.random_page_costs is not a PostgreSQL 17 setting; did you mean random_page_cost?"],
  ["huge pages as a YAML boolean", { ...base, postgres: { hugePages: true } }, "postgres.hugePages is true; allowed: on, try, off (YAML read a bare on/off/yes/no as a boolean: quote it)"],
  ["statement timeout without a unit", { ...base, postgres: { statementTimeout: "300" } }, 'postgres.statementTimeout "300" has no unit; write 300s or 300ms'],
  ["pool mode", { ...base, pgbouncer: { poolMode: "transactions" } }, 'pgbouncer.poolMode is "transactions"; allowed: transaction, session, statement'],
  ["image without a tag", { ...base, images: { postgres: "pgvector/pgvector" } }, 'images.postgres is "pgvector/pgvector"; it must be an image pinned by tag or digest'],
  ["table name not an identifier", { ...base, vectorTables: [{ table: "My-Table" }] }, 'vectorTables[0].table is "My-Table"; it must be a lower-case SQL identifier'],
  ["duplicate table", { ...base, vectorTables: [{ table: "a" }, { table: "a" }] }, 'vectorTables lists table "a" twice'],
  ["PostgreSQL version", { ...base, postgres: { version: 16 } }, "postgres.version is 16; only 17 is supported"],
  ["benchmark target not a number", { ...base, benchmark: { targets: { searchOpsPerSec: "fast" } } }, 'benchmark.targets.searchOpsPerSec is "fast"; it must be a number'],
];

describe("parseStackSpec: every bad input is named with its key, value and what is allowed", () => {
  it.each(badInputs)("%s", (_name, config, message) => {
    const errors = errorsOf(config);
    expect(errors.some((e) => e.includes(message)), `errors were:\n${errors.join("\n")}`).toBe(true);
  });

  it("reports all errors at once", () => {
    const errors = errorsOf({
      target: "nomad",
      node: { memory: "32" },
      vectorTables: [{ table: "a", m: 1, dimensions: 9000 }],
      postgres: { settings: { port: 1 } },
    });
    expect(errors.length).toBeGreaterThanOrEqual(5);
  });

  it("names the stack and counts the errors in the thrown message", () => {
    expect(() => parseStackSpec("prod", { node: { memory: "32" } }, host)).toThrow(/stack "prod" has 1 configuration error:\n  - node.memory "32" has no unit/);
  });
});
