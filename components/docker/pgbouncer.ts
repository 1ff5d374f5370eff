/**
 * PgBouncer in the stack's network namespace (namespace.ts), beside PostgreSQL: it reaches PostgreSQL on loopback, as
 * the rendered pgbouncer.ini says, and its listen port is published by the namespace holder (a container in another's
 * namespace cannot publish ports).
 */
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import path from "node:path";
import { pgbouncerContainerCommand } from "../../configs/pgbouncer-log";
import type { Rendered } from "../../configs/rendered";
import { containerHardening, type DockerNames, paths, sha256, sortedLabels } from "./layout";
import type { ServerTlsPems } from "./postgres";

export interface DockerPgBouncerArgs {
  /** The rendered stack: pgbouncer.ini, the auth_file's path (placement), the TLS files' paths. Required; no default. */
  readonly rendered: Rendered;
  /** Docker object names of this stack (see `dockerNames`). Required; no default. */
  readonly names: DockerNames;
  /** The pgbouncer image (components/stack-images.ts). Required; no default. */
  readonly image: pulumi.Input<string>;
  /** Id of the namespace holder (namespace.ts) whose network namespace PgBouncer joins. Required; no default. */
  readonly namespaceOwnerId: pulumi.Input<string>;
  /** Resources that must be done first (the roles job, exited 0). Defaults to none. */
  readonly startAfter?: pulumi.Input<pulumi.Resource>[];
  /** PgBouncer's auth_file: SCRAM verifiers only, never a password (configs/pgbouncer.ts). Required; no default. */
  readonly userlist: pulumi.Input<string>;
  /** The server certificate, its key (secret) and the CA, PEM: PgBouncer presents the first two and verifies PostgreSQL with the CA. Required; no default. */
  readonly tls: ServerTlsPems;
}

export class DockerPgBouncer extends pulumi.ComponentResource {
  public readonly container: docker.Container;
  /** The volume holding PgBouncer's logfile, which mtail mounts read-only. */
  public readonly logVolume: docker.Volume;

  constructor(name: string, args: DockerPgBouncerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("pgvector-stack:docker:DockerPgBouncer", name, {}, opts);
    const { rendered } = args;
    const ini = rendered.files["pgbouncer.ini"];

    // PgBouncer's logfile, mtail's feed for refused logins (configs/pgbouncer-log.ts). Mounted at the image's own
    // /var/run/pgbouncer, which belongs to PgBouncer's user: a new volume takes that owner, so PgBouncer may write it.
    this.logVolume = new docker.Volume(
      `${name}-log`,
      { name: args.names.pgbouncerLogVolume, labels: sortedLabels({ "pgvector-stack.stack": rendered.spec.stack, "pgvector-stack.role": "pgbouncer-log" }) },
      { parent: this },
    );

    this.container = new docker.Container(
      `${name}-container`,
      {
        name: args.names.pgbouncer,
        image: args.image,
        // edoburu's entrypoint (upstream) generates a pgbouncer.ini only when none exists, then runs the command below;
        // this repository's image has no entrypoint. Either way, with
        // the rendered file uploaded there, PgBouncer reads exactly that.
        // The TLS files land root:root 0644 (the provider sets no owner or mode). PgBouncer, which runs as the image's
        // postgres user, can read them and checks no mode; nothing else runs in this container, and whoever may use
        // Docker here can read any container's files anyway (`docker cp`), so on a developer's host that is accepted.
        // A renewed certificate replaces the container (a restart of the pooler).
        uploads: [
          { file: paths.pgbouncerIni, content: ini },
          { file: rendered.placement.paths.pgbouncerAuthFile, content: args.userlist },
          { file: rendered.tls.files.certificate, content: args.tls.certificate },
          { file: rendered.tls.files.key, content: pulumi.secret(args.tls.privateKey) },
          { file: rendered.tls.files.ca, content: args.tls.caCertificate },
        ],
        // The command (after edoburu's entrypoint's `exec "$@"`, or alone): this shell starts the loop that keeps the logfile under its cap,
        // then execs PgBouncer with the rendered ini.
        command: pgbouncerContainerCommand(paths.pgbouncerIni, rendered.placement.paths.pgbouncerLog),
        volumes: [{ volumeName: this.logVolume.name, containerPath: path.posix.dirname(rendered.placement.paths.pgbouncerLog) }],
        networkMode: pulumi.interpolate`container:${args.namespaceOwnerId}`,
        // PgBouncer runs as the image's user: no capability; it writes only its log volume (layout.ts).
        ...containerHardening("pgbouncer"),
        restart: "unless-stopped",
        labels: sortedLabels({
          "pgvector-stack.stack": rendered.spec.stack,
          "pgvector-stack.role": "pgbouncer",
          "pgvector-stack.pgbouncer-ini-sha256": sha256(ini),
        }),
      },
      { parent: this, deleteBeforeReplace: true, dependsOn: args.startAfter ?? [] },
    );

    this.registerOutputs({ container: this.container, logVolume: this.logVolume });
  }
}
