/**
 * Throw-away servers for real tests that exercise post-deploy code rather than the rendered configuration:
 * durability off for speed, parallel maintenance allowed, SCRAM on loopback only and over TLS only, as the stack's
 * own servers (the rig gives each a certificate from its CA; `url()` verifies it with verify-full). Tests of the rendered files
 * (settings read-back, the local cluster) start servers from renderStack() instead.
 */
import { planIndex, type IndexPlanEntry } from "../../configs/hnsw";
import { getRuntime } from "../../local/runtime/getRuntime";
import { startPgBouncer } from "../../local/runtime/pgbouncer";
import { startPostgres, type PostgresServer } from "../../local/runtime/postgres";
import type { Runtime } from "../../local/runtime/runtime";

export interface ScratchPostgresOptions {
  readonly sharedBuffers: string;
  readonly maxParallelMaintenanceWorkers: number;
  /** Defaults to PostgreSQL's own (100). */
  readonly maxConnections?: number;
}

export function scratchPostgresConf(o: ScratchPostgresOptions): string {
  return `
shared_buffers = '${o.sharedBuffers}'
${o.maxConnections === undefined ? "" : `max_connections = ${o.maxConnections}\n`}max_worker_processes = 8
max_parallel_workers = 8
max_parallel_maintenance_workers = ${o.maxParallelMaintenanceWorkers}
dynamic_shared_memory_type = posix
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
ssl = on
`;
}

export const scratchPgHbaConf = `
local all all scram-sha-256
hostssl all all 127.0.0.1/32 scram-sha-256
`;

export async function startScratchPostgres(o: ScratchPostgresOptions): Promise<PostgresServer> {
  const runtime = await getRuntime();
  return startPostgres({ runtime, postgresqlConf: scratchPostgresConf(o), pgHbaConf: scratchPgHbaConf });
}

/** The benchmark table the smoke and pgbench tests share: the guide's memories(embedding vector(768)) with a tier filter. */
export const benchPlan: IndexPlanEntry = planIndex(
  { table: "memories", column: "embedding", dimensions: 768, metric: "cosine", type: "vector", filterColumns: ["tier"], efSearch: 40, createTable: true },
  { maintenanceWorkMem: "256MB", maxParallelMaintenanceWorkers: 1 },
);

export interface BenchServers {
  readonly runtime: Runtime;
  /** The app role through PgBouncer in transaction pooling, protocol-level prepared statements on. */
  readonly pooledUrl: string;
  /** The app role straight to PostgreSQL. */
  readonly directUrl: string;
}

/** PostgreSQL with database `bench` owned by `app` and pgvector installed, behind PgBouncer authenticating by the role's verifier. */
export async function startBenchServers(appPassword: string): Promise<BenchServers> {
  const runtime = await getRuntime();
  const pg = await startPostgres({
    runtime,
    postgresqlConf: scratchPostgresConf({ sharedBuffers: "512MB", maxConnections: 100, maxParallelMaintenanceWorkers: 1 }),
    pgHbaConf: scratchPgHbaConf,
  });
  await pg.psql(`CREATE ROLE app LOGIN PASSWORD '${appPassword}'; CREATE DATABASE bench OWNER app;`);
  await pg.psql("CREATE EXTENSION vector;", "bench");
  const verifier = await pg.psql("SELECT rolpassword FROM pg_authid WHERE rolname = 'app'");
  const bouncer = await startPgBouncer({
    runtime,
    ini: `[databases]
bench = host=127.0.0.1 port=${pg.port} dbname=bench

[pgbouncer]
pool_mode = transaction
max_prepared_statements = 200
auth_type = scram-sha-256
default_pool_size = 20
max_client_conn = 200
client_tls_sslmode = require
server_tls_sslmode = verify-full
`,
    userlist: `"app" "${verifier}"\n`,
  });
  return { runtime, pooledUrl: bouncer.url("bench", "app", appPassword), directUrl: pg.url("bench", "app", appPassword) };
}
