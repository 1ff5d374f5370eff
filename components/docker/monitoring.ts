/**
 * postgres_exporter, pgbouncer_exporter, node_exporter, mtail and Prometheus, all in the stack's network namespace
 * (namespace.ts), each run as its rendered launch says (rendered.launches): the metric sources listen on loopback only
 * and Prometheus scrapes them there with the rendered prometheus.yml; Prometheus' own port is published by the
 * namespace holder.
 */
import type { StackImageReferences } from "../stack-images";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import path from "node:path";
import type { Launch, SecretInput } from "../../configs/launches";
import type { Rendered } from "../../configs/rendered";
import {
  containerCommand,
  containerEnvs,
  containerHardening,
  containerSecretFiles,
  type ContainerRole,
  type DockerNames,
  fileSecretShim,
  metricSourceVolumes,
  mtailProgramPath,
  postgresOwner,
  sha256,
  sortedLabels,
} from "./layout";

export interface DockerMonitoringArgs {
  /** The rendered stack: launches, placement, exporter queries, prometheus.yml, alert rules, the CA's path (rendered.tls.files). Required; no default. */
  readonly rendered: Rendered;
  /** Docker object names of this stack (see `dockerNames`). Required; no default. */
  readonly names: DockerNames;
  /** The images of the exporters, mtail and Prometheus (components/stack-images.ts). Required; no default. */
  readonly images: Pick<StackImageReferences, "postgresExporter" | "pgbouncerExporter" | "nodeExporter" | "mtail" | "prometheus">;
  /** Id of the namespace holder (namespace.ts) whose network namespace all of them join. Required; no default. */
  readonly namespaceOwnerId: pulumi.Input<string>;
  /** Name of the stack's data volume, which node_exporter and mtail mount read-only. Required; no default. */
  readonly dataVolumeName: pulumi.Input<string>;
  /** Name of the volume holding PgBouncer's logfile (DockerPgBouncer.logVolume), which mtail mounts read-only. Required; no default. */
  readonly pgbouncerLogVolumeName: pulumi.Input<string>;
  /** Password of the `pgstack_monitor` role postgres_exporter logs in as. Required; no default. */
  readonly monitorPassword: pulumi.Input<string>;
  /** Password of PgBouncer's stats user pgbouncer_exporter logs in as. Required; no default. */
  readonly statsPassword: pulumi.Input<string>;
  /** The CA certificate (PEM) both exporters verify the servers with, uploaded where rendered.tls.files.ca says. Required; no default. */
  readonly caCertificate: pulumi.Input<string>;
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
    const { launches, placement } = rendered;
    const stack = rendered.spec.stack;
    const networkMode = pulumi.interpolate`container:${args.namespaceOwnerId}`;
    const childOpts = { parent: this, deleteBeforeReplace: true, dependsOn: args.startAfter ?? [] };
    const labels = (role: string, files: Readonly<Record<string, string>> = {}) =>
      sortedLabels({
        "pgvector-stack.stack": stack,
        "pgvector-stack.role": role,
        ...Object.fromEntries(Object.entries(files).map(([key, text]) => [`pgvector-stack.${key}-sha256`, sha256(text)])),
      });

    // Every container here: its image (components/stack-images.ts), the stack's network namespace, restarted unless stopped
    // (with Docker's back-off), labelled with the stack, its role and the sha256 of each file it gets.
    // And each its role's hardening (layout.ts containerHardening): no capability, no-new-privileges.
    type OwnArgs = Omit<docker.ContainerArgs, "name" | "image" | "networkMode" | "restart" | "labels" | "capabilities" | "securityOpts" | "readOnly">;
    const inNamespace = (role: string, hardening: ContainerRole, containerName: string, image: pulumi.Input<string>, own: OwnArgs, files: Readonly<Record<string, string>> = {}) => {
      const container = { ...own, ...containerHardening(hardening), name: containerName, image, networkMode, restart: "unless-stopped", labels: labels(role, files) };
      return new docker.Container(`${name}-${role}`, container, childOpts);
    };
    const images = args.images;
    // The passwords go in files (`<VAR>_FILE`), never in the env `docker inspect` prints (layout.ts secretsDirectory).
    const secrets: Partial<Record<SecretInput, pulumi.Input<string>>> = { monitorPassword: args.monitorPassword, statsPassword: args.statsPassword };
    // Uploads holding one are secret as a whole; the files' hash labels show a changed configuration in a preview.
    const withSecretFiles = (launch: Launch, files: { file: string; content: pulumi.Input<string> }[]) =>
      pulumi.secret(pulumi.all([pulumi.output(secrets), pulumi.output(files)]).apply(([values, plain]) => [...plain, ...containerSecretFiles(launch, values)]));

    // Both exporters connect with sslmode=verify-full and sslrootcert at this path (their launches).
    const caUpload = { file: rendered.tls.files.ca, content: args.caCertificate };

    const queries = rendered.files["postgres-exporter-queries.yaml"];
    // postgres_exporter reads DATA_SOURCE_PASS_FILE itself.
    this.postgresExporter = inNamespace(
      "postgres-exporter",
      "postgresExporter",
      names.postgresExporter,
      images.postgresExporter,
      {
        command: containerCommand(launches.postgresExporter),
        envs: containerEnvs(launches.postgresExporter),
        uploads: withSecretFiles(launches.postgresExporter, [{ file: placement.paths.postgresExporterQueries, content: queries }, caUpload]),
      },
      { "postgres-exporter-queries": queries },
    );

    // pgbouncer_exporter 0.10 exits at start-up while PgBouncer does not answer yet (#140, #216): the restart policy
    // makes Docker start it again (with back-off) until PgBouncer is up.
    // Its lib/pq reads only PGPASSWORD: a shell shim reads the file into it (layout.ts fileSecretShim).
    this.pgbouncerExporter = inNamespace("pgbouncer-exporter", "pgbouncerExporter", names.pgbouncerExporter, images.pgbouncerExporter, {
      entrypoints: fileSecretShim(launches.pgbouncerExporter),
      command: containerCommand(launches.pgbouncerExporter),
      envs: containerEnvs(launches.pgbouncerExporter),
      uploads: withSecretFiles(launches.pgbouncerExporter, [caUpload]),
    });

    const dataMount = placement.dataVolumeMount;
    // stackProblems refuses a placement without one before any resource exists.
    if (dataMount === null) throw new Error(`DockerMonitoring ${name}: rendered.placement.dataVolumeMount is null`);
    const dataVolume = pulumi.output(args.dataVolumeName).apply((volume) => metricSourceVolumes(volume, dataMount));

    // CPU and memory come from /proc, which is the machine's in any container; the data volume's filesystem from the
    // volume mounted into it. So no host mounts of /, /proc or /sys, no host PID or network: the container sees no
    // more of the host than the other exporters do. The image runs as nobody, which may statfs the mountpoint
    // without reading the 0700 directory.
    // Nothing is uploaded into it, so its root filesystem is read-only (layout.ts containerHardening).
    this.nodeExporter = inNamespace("node-exporter", "nodeExporter", names.nodeExporter, images.nodeExporter, { command: containerCommand(launches.nodeExporter), volumes: dataVolume });

    // PostgreSQL's collector writes its log 0600 into the 0700 PGDATA: mtail reads it as the files' owner, from the
    // volume mounted read-only. The program is uploaded like the other files; its hash label shows a changed program
    // in a preview (and the upload itself replaces the container, which is how mtail loads it).
    const program = rendered.files["postgresql.mtail"];
    this.mtail = inNamespace(
      "mtail",
      "mtail",
      names.mtail,
      images.mtail,
      {
        command: containerCommand(launches.mtail),
        user: postgresOwner,
        uploads: [{ file: mtailProgramPath(placement), content: program }],
        // And PgBouncer's logfile, where PgBouncer has it (the path in mtail's --logs), read-only.
        volumes: pulumi.all([dataVolume, args.pgbouncerLogVolumeName]).apply(([data, log]) => [
          ...data,
          { volumeName: log, containerPath: path.posix.dirname(placement.paths.pgbouncerLog), readOnly: true },
        ]),
      },
      { "mtail-program": program },
    );

    // stackProblems refuses a Rendered without these before any resource exists.
    const prometheus = launches.prometheus;
    const config = rendered.files["prometheus.yml"];
    if (prometheus === null || config === undefined) throw new Error(`DockerMonitoring ${name}: Rendered has no Prometheus launch or prometheus.yml`);
    const rules = rendered.files["alert-rules.yaml"];
    this.prometheus = inNamespace(
      "prometheus",
      "prometheus",
      names.prometheus,
      images.prometheus,
      {
        // These replace the image's default flags (its CMD). The TSDB lives in the container: a developer's stack
        // keeps no metrics history across replacements.
        command: containerCommand(prometheus),
        uploads: [
          { file: placement.paths.prometheusConfig, content: config },
          { file: placement.paths.alertRules, content: rules },
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
