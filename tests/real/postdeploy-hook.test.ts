/**
 * The post-deploy hook exactly as Kubernetes (a Job) and Docker (a run-to-completion container) run it: the esbuild
 * bundle of the CLI, executed by plain `node` with plan.json and the two URLs from the environment, against a real
 * PostgreSQL 17 + pgvector behind a real PgBouncer. It must build the planned indexes, benchmark on a scratch table
 * only, print a machine-readable report, never print a password, and change nothing on a second run.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Client } from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { reportMarker, smokeTable } from "../../cli/postdeploy";
import { buildHookBundle } from "../../components/hook-bundle";
import { renderStack } from "../../configs/render";
import { parseStackSpec } from "../../configs/spec";
import { LocalCluster } from "../../local/cluster";

const host = { memoryBytes: os.totalmem(), cpus: os.cpus().length };
const spec = parseStackSpec(
  "hooktest",
  {
    target: "local",
    node: { memory: "2Gi", cpus: 2 },
    postgres: { hugePages: "off" },
    vectorTables: [{ table: "memories", column: "embedding", dimensions: 768, filterColumns: ["tier"], createTable: true }],
    benchmark: { rows: 2000, duration: "1s", warmup: "0s", sustained: "1s", concurrency: 2, recallQueries: 10 },
  },
  { host },
);
const rendered = renderStack(spec);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-hook-"));
let cluster: LocalCluster;

function runHook(extraArgs: string[] = []): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(dir, "pgstack.js"), "postdeploy", "--plan", path.join(dir, "plan.json"), "--wait", "30", ...extraArgs], {
    env: { PATH: process.env.PATH ?? "", PGSTACK_DIRECT_URL: cluster.info.directUrl, PGSTACK_POOLED_URL: cluster.info.pooledUrl },
    encoding: "utf8",
    timeout: 300_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function query(sql: string): Promise<Record<string, unknown>[]> {
  const client = new Client({ connectionString: cluster.info.directUrl });
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  fs.writeFileSync(path.join(dir, "pgstack.js"), buildHookBundle());
  fs.writeFileSync(path.join(dir, "plan.json"), rendered.files["plan.json"]);
  cluster = new LocalCluster({ name: `hook-${process.pid}`, spec, hugePages: false });
  await cluster.start();
});

afterAll(async () => {
  await cluster?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("the bundled hook (pgstack postdeploy) against real PostgreSQL and PgBouncer", () => {
  let first: ReturnType<typeof runHook>;

  it("creates the planned table and HNSW index, benchmarks, and reports", async () => {
    first = runHook();
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/memories_embedding_hnsw_idx on memories: created/);
    const line = first.stdout.split("\n").find((l) => l.startsWith(reportMarker));
    expect(line).toBeDefined();
    const report = JSON.parse(line!.slice(reportMarker.length));
    const names = report.result.scenarios.map((s: { name: string }) => s.name);
    expect(names).toEqual(expect.arrayContaining(["insert", "search", "hybrid", "mixed", "sustained"]));
    for (const s of report.result.scenarios) {
      expect(s.opsPerSec, s.name).toBeGreaterThan(0);
      expect(s.errors, s.name).toBe(0);
    }
    const [index] = await query(
      `SELECT i.indisvalid, c.reloptions FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = 'memories_embedding_hnsw_idx'`,
    );
    expect(index).toEqual({ indisvalid: true, reloptions: ["m=16", "ef_construction=128"] });
  });

  it("benchmarks on a scratch table only: the scratch table is gone and the application's table holds no benchmark rows", async () => {
    expect(await query(`SELECT to_regclass('${smokeTable}') AS t`)).toEqual([{ t: null }]);
    expect(await query(`SELECT count(*)::int AS n FROM memories`)).toEqual([{ n: 0 }]);
  });

  it("never prints a password", () => {
    for (const url of [cluster.info.directUrl, cluster.info.pooledUrl]) {
      const password = decodeURIComponent(new URL(url).password);
      expect(first.stdout + first.stderr).not.toContain(password);
    }
  });

  it("a second run changes nothing and says so", () => {
    const again = runHook(["--no-bench"]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/memories_embedding_hnsw_idx on memories: unchanged/);
  });

  it("exits non-zero with a clear message when the database never answers", () => {
    const r = spawnSync(process.execPath, [path.join(dir, "pgstack.js"), "postdeploy", "--plan", path.join(dir, "plan.json"), "--wait", "2", "--no-bench"], {
      env: { PATH: process.env.PATH ?? "", PGSTACK_DIRECT_URL: "postgresql://app:hunter2-secret@127.0.0.1:1/app" },
      encoding: "utf8",
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/the database did not answer within 2 s/);
    expect(r.stderr).not.toContain("hunter2-secret");
  });
});
