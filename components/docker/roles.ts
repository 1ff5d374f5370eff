/**
 * The roles and their passwords applied on every deploy that changes them: a run-to-completion container that runs the
 * bootstrap SQL (configs/roles.ts `bootstrapSql`: the rendered roles.sql, then `ALTER ROLE … PASSWORD '<verifier>'`)
 * as the superuser on PostgreSQL's socket, which it reaches through a volume shared with the database container.
 * Peer authentication admits it: it runs as the image's postgres user (pg_ident.conf map `superuser`), so no password
 * is sent, and the superuser stays off TCP.
 *
 * It is the Docker side of password rotation (Kubernetes: the tls-reloader applies the bootstrap Secret). The entrypoint's
 * /docker-entrypoint-initdb.d scripts run only when the data volume is empty, so before this a changed password
 * reached PgBouncer's auth_file but never PostgreSQL, and the application was locked out. A new password is new SQL,
 * a changed (secret) upload, so Docker's immutable container is replaced: it runs again, after the database is healthy
 * and before PgBouncer (whose auth_file carries the same new verifiers) is replaced, which waits for its exit code 0.
 * No hash of the SQL in its name or labels: the salts are derived from the passwords (configs/scram.ts), so a plain
 * hash of the verifiers would let anyone who reads the state or a preview test guesses of a chosen password offline.
 */
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { Rendered } from "../../configs/rendered";
import { containerHardening, type DockerNames, paths, postgresOwner, rolesCommand, runToCompletion, sortedLabels } from "./layout";

export interface DockerRolesArgs {
  /** The rendered stack: the superuser's name, the socket directory and port (placement). Required; no default. */
  readonly rendered: Rendered;
  /** Docker object names of this stack (see `dockerNames`). Required; no default. */
  readonly names: DockerNames;
  /** The postgres image (psql, and the postgres user peer authentication maps). Required; no default. */
  readonly image: pulumi.Input<string>;
  /** The volume PostgreSQL keeps its socket in (DockerPostgres.socketVolume). Required; no default. */
  readonly socketVolumeName: pulumi.Input<string>;
  /** configs/roles.ts `bootstrapSql`: SCRAM verifiers, never passwords (secret all the same). Required; no default. */
  readonly bootstrapSql: pulumi.Input<string>;
  /** Resources that must be up first (the database, healthy). Defaults to none. */
  readonly startAfter?: pulumi.Input<pulumi.Resource>[];
}

export class DockerRoles extends pulumi.ComponentResource {
  public readonly container: docker.Container;
  /** psql's exit code: 0, or the deploy has already failed. */
  public readonly exitCode: pulumi.Output<number>;
  /** The container, once it exited 0: what PgBouncer depends on, so a failed script never reaches its auth_file. */
  public readonly succeeded: pulumi.Output<docker.Container>;

  constructor(name: string, args: DockerRolesArgs, opts?: pulumi.ComponentResourceOptions) {
    // Args carry verifiers: keep them out of the component's recorded inputs.
    super("pgvector-stack:docker:DockerRoles", name, {}, opts);
    const { rendered, names } = args;
    this.container = new docker.Container(
      `${name}-container`,
      {
        name: names.roles,
        image: args.image,
        command: rolesCommand(rendered),
        // The image's postgres user (999, whose name PostgreSQL looks up for peer authentication) and nothing else.
        user: postgresOwner,
        ...containerHardening("roles"),
        uploads: [{ file: paths.rolesSql, content: pulumi.secret(args.bootstrapSql) }],
        volumes: [{ volumeName: args.socketVolumeName, containerPath: rendered.placement.paths.postgresSocketDir }],
        networkMode: "none",
        ...runToCompletion,
        labels: sortedLabels({ "pgvector-stack.stack": rendered.spec.stack, "pgvector-stack.role": "roles" }),
      },
      { parent: this, dependsOn: args.startAfter ?? [], deleteBeforeReplace: true },
    );

    // A failure here is a lockout in waiting (PgBouncer would get verifiers PostgreSQL does not hold): fail the deploy.
    this.exitCode = pulumi.all([this.container.exitCode, this.container.containerLogs]).apply(([exitCode, log]) => {
      if (exitCode !== undefined && exitCode !== null && exitCode !== 0) {
        throw new Error(`applying the roles and passwords (container ${names.roles}) exited with ${exitCode}:\n${log ?? ""}`);
      }
      return exitCode ?? 0;
    });
    this.succeeded = this.exitCode.apply(() => this.container);
    this.registerOutputs({ container: this.container, exitCode: this.exitCode });
  }
}
