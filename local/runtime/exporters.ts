import { startHttpServer, type HttpServer } from "./httpServer";
import type { Runtime } from "./runtime";

/** Listen address flag shared by every exporter built on prometheus/exporter-toolkit. */
const listenOn = (port: number): string => `--web.listen-address=127.0.0.1:${port}`;

export interface PostgresExporterOptions {
  readonly runtime: Runtime;
  /** postgresql:// URL the exporter connects with (PostgresServer.url()); add ?sslmode=disable for loopback. */
  readonly dataSourceName: string;
  /** Flags as rendered for the stack, passed through. Defaults to none. */
  readonly args?: readonly string[];
  /** Defaults to a free port. */
  readonly port?: number;
  /** Added to the environment, e.g. PG_EXPORTER_* settings. Defaults to none. */
  readonly env?: Readonly<Record<string, string>>;
}

/** postgres_exporter; the connection string goes in DATA_SOURCE_NAME so the password is not on the command line. */
export function startPostgresExporter(opts: PostgresExporterOptions): Promise<HttpServer> {
  return startHttpServer({
    runtime: opts.runtime,
    program: "postgres_exporter",
    scratch: opts.runtime.scratchDir("postgres-exporter"),
    port: opts.port,
    args: (port) => [listenOn(port), ...(opts.args ?? [])],
    env: { ...opts.env, DATA_SOURCE_NAME: opts.dataSourceName },
    readyPath: "/metrics",
  });
}

export interface PgbouncerExporterOptions {
  readonly runtime: Runtime;
  /** URL of PgBouncer's admin database, e.g. postgres://stats:pw@127.0.0.1:6432/pgbouncer?sslmode=disable */
  readonly connectionString: string;
  /** Flags as rendered for the stack, passed through. Defaults to none. */
  readonly args?: readonly string[];
  /** Defaults to a free port. */
  readonly port?: number;
}

/**
 * pgbouncer_exporter. Its only way to take the connection string is a flag, so the password is visible
 * in the process list of this host; acceptable for a loopback test cluster.
 */
export function startPgbouncerExporter(opts: PgbouncerExporterOptions): Promise<HttpServer> {
  return startHttpServer({
    runtime: opts.runtime,
    program: "pgbouncer_exporter",
    scratch: opts.runtime.scratchDir("pgbouncer-exporter"),
    port: opts.port,
    args: (port) => [listenOn(port), `--pgBouncer.connectionString=${opts.connectionString}`, ...(opts.args ?? [])],
    readyPath: "/metrics",
  });
}

export interface NodeExporterOptions {
  readonly runtime: Runtime;
  /** Flags passed through, e.g. collector switches. Defaults to none. */
  readonly args?: readonly string[];
  /** Defaults to a free port. */
  readonly port?: number;
}

/** prometheus-node-exporter; reads the fresh /proc and /sys mounted in the rootfs. */
export function startNodeExporter(opts: NodeExporterOptions): Promise<HttpServer> {
  return startHttpServer({
    runtime: opts.runtime,
    program: "node_exporter",
    scratch: opts.runtime.scratchDir("node-exporter"),
    port: opts.port,
    args: (port) => [listenOn(port), ...(opts.args ?? [])],
    readyPath: "/metrics",
  });
}
