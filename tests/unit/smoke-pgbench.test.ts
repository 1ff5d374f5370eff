import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { planIndex } from "../../configs/hnsw";
import { verifyFullQuery } from "../../configs/tls";
import { pgbenchTlsEnv } from "../../local/pgbench";
import {
  comparisonRow,
  parsePgbenchOutput,
  renderPgbenchScripts,
  scriptWeights,
} from "../../postdeploy/pgbench-scripts";
import { benchTable, hybridSql, searchSql, toNodeSql, toPgbenchSql } from "../../postdeploy/smoke-sql";

const plan = planIndex(
  { table: "memories", column: "embedding", dimensions: 768, metric: "cosine", type: "vector", filterColumns: ["tier"], efSearch: 40, createTable: true },
  { maintenanceWorkMem: "1GB", maxParallelMaintenanceWorkers: 2 },
);
const t = benchTable(plan, "smoke_scratch");
const pool = { queries: 1000, inserts: 5000, rowIds: { min: 1, max: 100000 } };

describe("pgbench scripts", () => {
  it("renders the search as Node's stored-source transaction, pipelined", () => {
    expect(renderPgbenchScripts(t, pool, true).search).toBe(
      [
        "-- pgvector-stack smoke: search",
        "\\set qid random(1, 1000)",
        "\\startpipeline",
        "BEGIN;",
        "SET LOCAL hnsw.ef_search = 40;",
        'SELECT id, "embedding" <=> (SELECT "embedding" FROM "smoke_scratch_pool" WHERE id = :qid) AS distance FROM "smoke_scratch" ORDER BY distance LIMIT 10;',
        "COMMIT;",
        "\\endpipeline",
        "",
      ].join("\n"),
    );
  });

  it("uses the very statements Node sends (only the parameter syntax differs)", () => {
    for (const template of [searchSql(t, "stored"), hybridSql(t, "stored")!]) {
      const node = toNodeSql(template.template);
      let pg = toPgbenchSql(template.template);
      node.params.forEach((name, i) => (pg = pg.split(`:${name}`).join(`$${i + 1}`)));
      expect(pg).toBe(node.text);
    }
  });

  it("draws the same id ranges as Node's stored source", () => {
    const s = renderPgbenchScripts(t, pool, false);
    expect(s.hybrid).toContain("\\set tier random(1, 5)");
    expect(s.hybrid).toContain("SET LOCAL hnsw.iterative_scan = relaxed_order;");
    expect(s.hybrid).not.toContain("\\startpipeline");
    expect(s.insert).toContain("\\set pool_id random(1001, 6000)");
    expect(s.insert).not.toContain("BEGIN;");
    expect(s.update).toContain("\\set row_id random(1, 100000)");
  });

  it("omits hybrid without a filter column", () => {
    expect(renderPgbenchScripts({ ...t, filterColumns: [] }, pool, true).hybrid).toBeUndefined();
  });

  it("weights the mixed workload 40/50/10", () => {
    expect(scriptWeights("mixed")).toEqual([
      { kind: "insert", weight: 40 },
      { kind: "search", weight: 50 },
      { kind: "update", weight: 10 },
    ]);
    expect(scriptWeights("search")).toEqual([{ kind: "search", weight: 1 }]);
  });
});

describe("pgbench output", () => {
  const output = `pgbench (17.12 (Debian 17.12-1))
transaction type: multiple scripts
scaling factor: 1
query mode: prepared
number of clients: 4
number of threads: 4
maximum number of tries: 1
duration: 2 s
number of transactions actually processed: 5712
number of failed transactions: 0 (0.000%)
latency average = 1.399 ms
initial connection time = 12.480 ms
tps = 2858.943166 (without initial connection time)
`;
  it("reads tps, transactions, failures and latency", () => {
    expect(parsePgbenchOutput(output)).toEqual({ tps: 2858.943166, transactions: 5712, failed: 0, latencyAverageMs: 1.399 });
  });

  it("reads -C's average connection time, with the tps that includes the reconnections", () => {
    const reconnecting = `pgbench (17.12 (Debian 17.12-1))
transaction type: select1.sql
scaling factor: 1
query mode: simple
number of clients: 4
number of threads: 4
maximum number of tries: 1
duration: 2 s
number of transactions actually processed: 575
number of failed transactions: 0 (0.000%)
latency average = 13.912 ms
average connection time = 13.124 ms
tps = 287.512345 (including reconnection times)
`;
    expect(parsePgbenchOutput(reconnecting)).toEqual({ tps: 287.512345, transactions: 575, failed: 0, latencyAverageMs: 13.912, averageConnectionMs: 13.124 });
    // Without -C, "initial connection time" is not a per-connection average.
    expect(parsePgbenchOutput(output).averageConnectionMs).toBeUndefined();
  });

  it("says what it got when there is no tps line", () => {
    expect(() => parsePgbenchOutput("connection to server failed")).toThrow(/no "tps = …" line:\nconnection to server failed/);
  });

  it("computes the Node / pgbench ratio", () => {
    const row = comparisonRow({ scenario: "search", concurrency: 4, seconds: 2, nodeOpsPerSec: 2700, pgbenchTps: 3000, pgbenchFailed: 0, nodeErrors: 0 });
    expect(row.ratio).toBe(0.9);
    expect(comparisonRow({ ...row, pgbenchTps: 0 }).ratio).toBe(0);
  });
});

describe("pgbench's TLS environment", () => {
  /** A scratch directory that records what is written and answers with the path pgbench would see. */
  function dir(): { written: Map<string, { text: string; mode?: number }>; writeFile(name: string, text: string, mode?: number): string } {
    const written = new Map<string, { text: string; mode?: number }>();
    return { written, writeFile: (name, text, mode) => (written.set(name, { text, mode }), `/rootfs-view/pgbench/${name}`) };
  }
  let caFile: string;
  beforeAll(() => {
    caFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-pgbench-tls-")), "ca.crt");
    fs.writeFileSync(caFile, "-----BEGIN CERTIFICATE-----\nstack CA\n-----END CERTIFICATE-----\n");
  });
  afterAll(() => fs.rmSync(path.dirname(caFile), { recursive: true, force: true }));

  it("passes the URL's verify-full and its CA, copied where pgbench sees it (the rootfs under chroot)", () => {
    const d = dir();
    const env = pgbenchTlsEnv(new URL(`postgresql://app:pw@127.0.0.1:6432/app?${verifyFullQuery(caFile)}`), d);
    expect(env).toEqual({ PGSSLMODE: "verify-full", PGSSLROOTCERT: "/rootfs-view/pgbench/ca.crt" });
    expect(d.written.get("ca.crt")).toEqual({ text: fs.readFileSync(caFile, "utf8"), mode: 0o644 });
  });

  it.each([
    ["", {}],
    ["?sslmode=require", { PGSSLMODE: "require" }],
    ["?sslmode=disable", { PGSSLMODE: "disable" }],
    ["?sslrootcert=", {}],
  ])("%s → %j", (query, expected) => {
    expect(pgbenchTlsEnv(new URL(`postgresql://app@h/app${query}`), dir())).toEqual(expected);
  });

  it("a CA without sslmode is verify-full, as node-postgres reads the same URL", () => {
    expect(pgbenchTlsEnv(new URL(`postgresql://app@h/app?sslrootcert=${caFile}`), dir())).toEqual({ PGSSLMODE: "verify-full", PGSSLROOTCERT: "/rootfs-view/pgbench/ca.crt" });
  });
});
