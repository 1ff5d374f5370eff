/**
 * The command lines of the programs that run beside PostgreSQL and PgBouncer — postgres_exporter, pgbouncer_exporter,
 * node_exporter, mtail, the canary and Prometheus — for one placement, as data every target runs unchanged: a
 * container's command and env on Docker and Kubernetes, a process on the perf cluster. Secrets are never in them: a
 * launch names the environment variables the target fills from a secret it holds (`secretEnv`).
 */
import { defaultCanarySettings, directUrlEnv, pooledUrlEnv } from "./canary";
import { nodeExporterArgs, pgbouncerExporterCommand, postgresExporterCommand } from "./exporters";
import { mtailArgs } from "./mtail";
import { promDuration, type Placement } from "./placement";
import type { StackSpec } from "./stack-spec";

/** What a target puts into a secret environment variable: a password, or a URL that carries one. */
export type SecretInput = "monitorPassword" | "statsPassword" | "pooledUrl" | "directUrl";

/** Program names as the images, the rig (local/runtime) and `ps` know them; `pgstack` is this project's CLI. */
export type LaunchProgram = "postgres_exporter" | "pgbouncer_exporter" | "node_exporter" | "mtail" | "prometheus" | "pgstack";

export interface Launch {
  readonly program: LaunchProgram;
  /** Every argument, the listen address included. */
  readonly args: readonly string[];
  /** Non-secret environment. */
  readonly env: Readonly<Record<string, string>>;
  /** Variables the target fills from a secret: variable → what goes in it. */
  readonly secretEnv: Readonly<Record<string, SecretInput>>;
  /** The port it serves /metrics (or, for Prometheus, its UI and API) on, in the shared network namespace. */
  readonly port: number;
}

export interface Launches {
  readonly postgresExporter: Launch;
  readonly pgbouncerExporter: Launch;
  readonly nodeExporter: Launch;
  readonly mtail: Launch;
  /** `pgstack canary`: search, hybrid and insert through PgBouncer, connection probes, as metrics. */
  readonly canary: Launch;
  /** null where the target leaves Prometheus to the Prometheus Operator (Kubernetes). */
  readonly prometheus: Launch | null;
}

/** The loopback address the programs of one namespace reach each other on. */
const loopback = "127.0.0.1";

export function renderLaunches(spec: StackSpec, placement: Placement): Launches {
  const { ports, paths, metricsBind } = placement;
  const postgresExporter = postgresExporterCommand({
    host: loopback,
    port: ports.postgres,
    database: spec.postgres.database,
    queriesPath: paths.postgresExporterQueries,
    listenAddress: `${metricsBind}:${ports.postgresExporter}`,
    caPath: paths.tlsCa,
  });
  const pgbouncerExporter = pgbouncerExporterCommand({
    host: loopback,
    port: ports.pgbouncer,
    listenAddress: `${metricsBind}:${ports.pgbouncerExporter}`,
    caPath: paths.tlsCa,
  });
  // pgstack canary parses its --listen as host:port; an empty host would mean every address there too, spelt out.
  const canaryListen = `${metricsBind === "" ? "0.0.0.0" : metricsBind}:${ports.canary}`;
  const canaryInterval = placement.intervals.canaryMs === defaultCanarySettings.intervalMs ? [] : ["--interval", promDuration(placement.intervals.canaryMs)];
  return {
    postgresExporter: {
      program: "postgres_exporter",
      args: postgresExporter.args,
      env: postgresExporter.env,
      secretEnv: { [postgresExporter.passwordEnv]: "monitorPassword" },
      port: ports.postgresExporter,
    },
    pgbouncerExporter: {
      program: "pgbouncer_exporter",
      args: pgbouncerExporter.args,
      env: pgbouncerExporter.env,
      secretEnv: { [pgbouncerExporter.passwordEnv]: "statsPassword" },
      port: ports.pgbouncerExporter,
    },
    nodeExporter: {
      program: "node_exporter",
      args: [...nodeExporterArgs(), `--web.listen-address=${metricsBind}:${ports.nodeExporter}`],
      env: {},
      secretEnv: {},
      port: ports.nodeExporter,
    },
    mtail: {
      program: "mtail",
      args: [
        ...mtailArgs({ programsDir: paths.mtailPrograms, pgdata: paths.pgdata, pgbouncerLog: paths.pgbouncerLog }),
        ...(metricsBind === "" ? [] : ["--address", metricsBind]),
        "--port",
        String(ports.mtail),
      ],
      env: {},
      secretEnv: {},
      port: ports.mtail,
    },
    canary: {
      program: "pgstack",
      args: ["canary", "--listen", canaryListen, ...canaryInterval],
      env: {},
      // The application's role through PgBouncer and straight to PostgreSQL; the URLs carry its password.
      secretEnv: { [pooledUrlEnv]: "pooledUrl", [directUrlEnv]: "directUrl" },
      port: ports.canary,
    },
    prometheus: placement.runsPrometheus
      ? {
          program: "prometheus",
          args: [`--config.file=${paths.prometheusConfig}`, `--storage.tsdb.path=${paths.prometheusData}`, `--web.listen-address=${placement.prometheusBind}:${ports.prometheus}`],
          env: {},
          secretEnv: {},
          port: ports.prometheus,
        }
      : null,
  };
}
