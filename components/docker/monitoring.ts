/**
 * postgres_exporter, pgbouncer_exporter, node_exporter, mtail and Prometheus, all in the database container's network
 * namespace: the metric sources listen on loopback only and Prometheus scrapes them there; Prometheus' own port is
 * published by the database container.
 */
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { Rendered } from "../../configs/rendered";
import {
  type DockerNames,
  metricSourceVolumes,
  mtailCommand,
  mtailProgramPath,
  nodeExporterCommand,
  paths,
  pgbouncerExporterLaunch,
  postgresExporterLaunch,
  postgresOwner,
  prometheusConfigYaml,
  prometheusPort,
  sha256,
  sortedLabels,
} from "./layout";

export interface DockerMonitoringArgs {
  /** The rendered stack: exporter flags and queries, alert rules, images. Required; no default. */
  readonly rendered: Rendered;
  /** Docker object names of this stack (see `dockerNames`). Required; no default. */
  readonly names: DockerNames;
  /** Id of the database container whose network namespace all of them join. Required; no default. */
  readonly namespaceOwnerId: pulumi.Input<string>;
  /** Name of the stack's data volume, which node_exporter and mtail mount read-only. Required; no default. */
  readonly dataVolumeName: pulumi.Input<string>;
  /** PgBouncer's port inside that namespace. Required; no default. */
  readonly pgbouncerPort: number;
  /** Password of the `pgstack_monitor` role postgres_exporter logs in as. Required; no default. */
  readonly monitorPassword: pulumi.Input<string>;
  /** Password of PgBouncer's stats user pgbouncer_exporter logs in as. Required; no default. */
  readonly statsPassword: pulumi.Input<string>;
  /** Resources to create first (PgBouncer, for its exporter). Defaults to none. */
  readonly startAfter?: pulumi.Input<pulumi.Resource>[];
}

export class DockerMonitoring extends pulumi.ComponentResource {
  public readonly postgresExporter: docker.Container;
  public readonly pgbouncerExporter: docker.Container;
  public readonly nodeExporter: docker.Container;
  public readonly mtail: docker.Container;
  public readonly prometheus: docker.Container;

  constructor(name: string, args: DockerMonitoringArgs, opts?: pulumi.ComponentResourceOptions) {
    // Args carry the exporters' passwords: keep them out of the component's recorded inputs.
    super("pgvector-stack:docker:DockerMonitoring", name, {}, opts);
    const { rendered, names } = args;
    const stack = rendered.spec.stack;
    const networkMode = pulumi.interpolate`container:${args.namespaceOwnerId}`;
    const childOpts = { parent: this, deleteBeforeReplace: true, dependsOn: args.startAfter ?? [] };
    const labels = (role: string, files: Readonly<Record<string, string>> = {}) =>
      sortedLabels({
        "pgvector-stack.stack": stack,
        "pgvector-stack.role": role,
        ...Object.fromEntries(Object.entries(files).map(([key, text]) => [`pgvector-stack.${key}-sha256`, sha256(text)])),
      });

    // Every container here: its image pulled and kept, the database's network namespace, restarted unless stopped
    // (with Docker's back-off), labelled with the stack, its role and the sha256 of each file it gets.
    type OwnArgs = Omit<docker.ContainerArgs, "name" | "image" | "networkMode" | "restart" | "labels">;
    const inNamespace = (role: string, containerName: string, image: string, own: OwnArgs, files: Readonly<Record<string, string>> = {}) => {
      const pulled = new docker.RemoteImage(`${name}-${role}-image`, { name: image, keepLocally: true }, { parent: this });
      const container = { ...own, name: containerName, image: pulled.imageId, networkMode, restart: "unless-stopped", labels: labels(role, files) };
      return new docker.Container(`${name}-${role}`, container, childOpts);
    };
    const images = rendered.spec.images;

    // The passwords go in as env, which `docker inspect` shows to whoever may use Docker on this host (the accepted
    // dev trade-off, as for the superuser). An upload would hold the same plaintext, readable with `docker cp`.
    const pg = postgresExporterLaunch(rendered.spec, rendered.exporters);
    const queries = rendered.files["postgres-exporter-queries.yaml"];
    this.postgresExporter = inNamespace(
      "postgres-exporter",
      names.postgresExporter,
      images.postgresExporter,
      {
        command: pg.args,
        envs: [...envList(pg.env), pulumi.interpolate`${pg.passwordEnv}=${args.monitorPassword}`],
        uploads: [{ file: pg.queriesPath, content: queries }],
      },
      { "postgres-exporter-queries": queries },
    );

    // pgbouncer_exporter 0.10 exits at start-up while PgBouncer does not answer yet (#140, #216): the restart policy
    // makes Docker start it again (with back-off) until PgBouncer is up.
    const pgb = pgbouncerExporterLaunch(rendered.exporters, args.pgbouncerPort);
    this.pgbouncerExporter = inNamespace("pgbouncer-exporter", names.pgbouncerExporter, images.pgbouncerExporter, {
      command: pgb.args,
      envs: [...envList(pgb.env), pulumi.interpolate`${pgb.passwordEnv}=${args.statsPassword}`],
    });

    const dataVolume = pulumi.output(args.dataVolumeName).apply(metricSourceVolumes);

    // CPU and memory come from /proc, which is the machine's in any container; the data volume's filesystem from the
    // volume mounted into it. So no host mounts of /, /proc or /sys, no host PID or network: the container sees no
    // more of the host than the other exporters do. The image runs as nobody, which may statfs the mountpoint
    // without reading the 0700 directory.
    this.nodeExporter = inNamespace("node-exporter", names.nodeExporter, images.nodeExporter, { command: nodeExporterCommand(), volumes: dataVolume });

    // PostgreSQL's collector writes its log 0600 into the 0700 PGDATA: mtail reads it as the files' owner, from the
    // volume mounted read-only. The program is uploaded like the other files; its hash label shows a changed program
    // in a preview (and the upload itself replaces the container, which is how mtail loads it).
    const program = rendered.files["postgresql.mtail"];
    this.mtail = inNamespace(
      "mtail",
      names.mtail,
      images.mtail,
      { command: mtailCommand(), user: postgresOwner, uploads: [{ file: mtailProgramPath, content: program }], volumes: dataVolume },
      { "mtail-program": program },
    );

    const config = prometheusConfigYaml(rendered);
    const rules = rendered.files["alert-rules.yaml"];
    this.prometheus = inNamespace(
      "prometheus",
      names.prometheus,
      images.prometheus,
      {
        // The image's entrypoint is the prometheus binary; these replace its default flags. The TSDB lives in the
        // container: a developer's stack keeps no metrics history across replacements.
        command: [`--config.file=${paths.prometheusConfig}`, `--storage.tsdb.path=${paths.prometheusData}`, `--web.listen-address=:${prometheusPort}`],
        uploads: [
          { file: paths.prometheusConfig, content: config },
          { file: paths.alertRules, content: rules },
        ],
      },
      { "prometheus-yml": config, "alert-rules": rules },
    );

    this.registerOutputs({
      postgresExporter: this.postgresExporter,
      pgbouncerExporter: this.pgbouncerExporter,
      nodeExporter: this.nodeExporter,
      mtail: this.mtail,
      prometheus: this.prometheus,
    });
  }
}

/** `KEY=value` pairs in key order. */
function envList(env: Readonly<Record<string, string>>): string[] {
  return Object.keys(env)
    .sort()
    .map((k) => `${k}=${env[k]}`);
}
