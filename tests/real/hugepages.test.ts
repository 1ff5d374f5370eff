/**
 * The huge page estimate (configs/hugepages.ts) against PostgreSQL 17's own `shared_memory_size_in_huge_pages` for the
 * stack's rendered postgresql.conf: at or above PostgreSQL's figure, and at most 5 % above it.
 * `postgres -C` computes the figure from the data directory's configuration without allocating the memory, so
 * nodes far larger than this machine can be checked. Prints a table of both.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { memoryPlan } from "../../configs/memory";
import { renderPgHba } from "../../configs/pg-hba";
import { renderPostgresqlConf } from "../../configs/postgresql";
import type { StackSpec } from "../../configs/stack-spec";
import { getRuntime, startPostgres, stopAll, type PostgresServer, type Runtime } from "../../local/runtime";
import { specFor } from "../unit/spec-fixture";

const cases: readonly (readonly [string, StackSpec])[] = [
  // Too small for a Kubernetes pod beside its sidecars (the gate refuses them there): the model is the same on Docker.
  ["1Gi node, 2 cpus (docker)", specFor({ target: "docker", node: { memory: "1Gi", cpus: 2 }, postgres: { hugePages: "on" } })],
  ["4Gi node, 2 cpus (docker)", specFor({ target: "docker", node: { memory: "4Gi", cpus: 2 }, postgres: { hugePages: "on" } })],
  ["16Gi node, 4 cpus", specFor({ node: { memory: "16Gi", cpus: 4 } })],
  ["32Gi node, 8 cpus (staging)", specFor({ node: { memory: "32Gi", cpus: 8 } })],
  ["64Gi node, 16 cpus (prod)", specFor({ node: { memory: "64Gi", cpus: 16 } })],
  ["128Gi node, 32 cpus", specFor({ node: { memory: "128Gi", cpus: 32 } })],
  ["256Gi node, 64 cpus", specFor({ node: { memory: "256Gi", cpus: 64 } })],
  ["4Gi node, max_connections 1000 (docker)", specFor({ target: "docker", node: { memory: "4Gi", cpus: 2 }, postgres: { hugePages: "on", maxConnections: 1000 } })],
  ["32Gi node, max_connections 1000", specFor({ node: { memory: "32Gi", cpus: 8 }, postgres: { maxConnections: 1000 } })],
  [
    "16Gi node, pg_stat_statements.max 20000",
    specFor({ node: { memory: "16Gi", cpus: 4 }, postgres: { settings: { "pg_stat_statements.max": "20000" } } }),
  ],
];

let runtime: Runtime;
let pg: PostgresServer;

/**
 * Runs `postgres -C <name>` on the stopped cluster with `conf` as its postgresql.conf. A runtime-computed setting
 * (shared_memory_size…) makes postgres load its TLS files too: the rig's, as it gives them to the running server, in
 * place of the containers' paths the stack's conf names.
 */
async function postgresC(conf: string, name: string): Promise<number> {
  pg.scratch.writeFile("data/postgresql.conf", conf);
  const tls = pg.tls;
  if (tls === undefined) throw new Error("the rig started PostgreSQL without its certificate");
  const result = await runtime.exec("postgres", ["-D", pg.scratch.pathOf("data"), "-c", `ssl_cert_file=${tls.certificate}`, "-c", `ssl_key_file=${tls.key}`, "-C", name]);
  if (result.code !== 0) throw new Error(`postgres -C ${name} failed (exit ${result.code}): ${result.stderr.trim()}`);
  return Number(result.stdout.trim());
}

interface Row {
  readonly name: string;
  readonly sharedBuffers: string;
  readonly maxConnections: number;
  readonly postgresMB: number;
  readonly postgresPages: number;
  readonly estimateMB: number;
  readonly estimatePages: number;
}

const rows: Row[] = [];

beforeAll(async () => {
  runtime = await getRuntime();
  // initdb'd cluster; the server is stopped again at once, since `postgres -C` for shared memory needs it down.
  pg = await startPostgres({ runtime, postgresqlConf: "shared_buffers = 128MB\n", pgHbaConf: renderPgHba() });
  await pg.stop();
});

afterAll(async () => {
  if (rows.length > 0) {
    const header = ["stack", "shared_buffers", "max_conn", "PG MB", "PG pages", "estimate MB", "estimate pages", "over"];
    const body = rows.map((r) => [
      r.name,
      r.sharedBuffers,
      String(r.maxConnections),
      String(r.postgresMB),
      String(r.postgresPages),
      String(r.estimateMB),
      String(r.estimatePages),
      `${(((r.estimatePages - r.postgresPages) / r.postgresPages) * 100).toFixed(2)} %`,
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
    const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
    console.log(
      [`huge pages (2 MiB): estimate vs PostgreSQL ${runtime.versions.postgres} shared_memory_size_in_huge_pages`, line(header), ...body.map(line)].join("\n"),
    );
  }
  await stopAll();
});

describe("huge page estimate vs PostgreSQL 17's shared_memory_size_in_huge_pages", () => {
  it.each(cases)("%s", async (name, spec) => {
    const conf = renderPostgresqlConf(spec);
    const plan = memoryPlan(spec);
    const postgresPages = await postgresC(conf, "shared_memory_size_in_huge_pages");
    const postgresMB = await postgresC(conf, "shared_memory_size");
    rows.push({
      name,
      sharedBuffers: plan.rendered.shared_buffers,
      maxConnections: spec.postgres.maxConnections,
      postgresMB,
      postgresPages,
      estimateMB: Math.ceil(plan.sharedMemoryBytes / 2 ** 20),
      estimatePages: plan.hugePagesNeeded,
    });
    expect(plan.hugePagesNeeded).toBeGreaterThanOrEqual(postgresPages);
    expect(plan.hugePagesNeeded).toBeLessThanOrEqual(postgresPages * 1.05);
    expect(Math.ceil(plan.sharedMemoryBytes / 2 ** 20)).toBeGreaterThanOrEqual(postgresMB);
  });
});
