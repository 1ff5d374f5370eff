/**
 * The synthetic canary (`pgstack canary`, see canary/) in the stack's network namespace (namespace.ts): it reaches
 * PgBouncer and PostgreSQL on loopback as the application's role, and Prometheus, in the same namespace, scrapes its
 * /metrics on loopback as job `canary`.
 */
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { Rendered } from "../../configs/rendered";
import { containerCommand, containerEnvs, containerHardening, containerSecretFiles, type DockerNames, paths, sha256, sortedLabels } from "./layout";

export interface DockerCanaryArgs {
  /** The rendered stack: the canary's launch, the stack name and the CA's path (rendered.tls.files). Required; no default. */
  readonly rendered: Rendered;
  /** Docker object names of this stack (see `dockerNames`). Required; no default. */
  readonly names: DockerNames;
  /** The node image (components/stack-images.ts). Required; no default. */
  readonly image: pulumi.Input<string>;
  /** Id of the namespace holder (namespace.ts) whose network namespace the canary joins. Required; no default. */
  readonly namespaceOwnerId: pulumi.Input<string>;
  /** The bundled pgstack CLI (one CommonJS file), run as /hook/pgstack.js. Required; no default. */
  readonly hookBundle: string;
  /** The application role's URL through PgBouncer on loopback (the launch's `pooledUrl`), a secret. Required; no default. */
  readonly pooledUrl: pulumi.Input<string>;
  /** The application role's URL of PostgreSQL on loopback (the launch's `directUrl`), a secret. Required; no default. */
  readonly directUrl: pulumi.Input<string>;
  /** The CA certificate (PEM) its URLs verify the servers with, uploaded where rendered.tls.files.ca says. Required; no default. */
  readonly caCertificate: pulumi.Input<string>;
  /** Resources to create first (the database, PgBouncer). Defaults to none. */
  readonly startAfter?: pulumi.Input<pulumi.Resource>[];
}

export class DockerCanary extends pulumi.ComponentResource {
  public readonly container: docker.Container;

  constructor(name: string, args: DockerCanaryArgs, opts?: pulumi.ComponentResourceOptions) {
    // Args carry connection URLs with passwords: keep them out of the component's recorded inputs.
    super("pgvector-stack:docker:DockerCanary", name, {}, opts);
    const { rendered } = args;
    const launch = rendered.launches.canary;
    const urls = { directUrl: args.directUrl, pooledUrl: args.pooledUrl };


    this.container = new docker.Container(
      `${name}-container`,
      {
        name: args.names.canary,
        image: args.image,
        command: containerCommand(launch),
        // The URLs carry the canary role's password: files it reads through PGSTACK_*_URL_FILE (cli/secret-env.ts),
        // not arguments (a process list shows them) nor env (`docker inspect` shows it).
        uploads: pulumi.secret(
          pulumi.all([pulumi.output(urls), args.caCertificate]).apply(([values, ca]) => [
            { file: paths.hookBundle, content: args.hookBundle },
            { file: rendered.tls.files.ca, content: ca },
            ...containerSecretFiles(launch, values),
          ]),
        ),
        envs: containerEnvs(launch),
        user: "node",
        ...containerHardening("canary"),
        networkMode: pulumi.interpolate`container:${args.namespaceOwnerId}`,
        // It keeps running while the database is down (that is what it measures); Docker restarts it after a crash
        // or a reboot of the host.
        restart: "unless-stopped",
        // A clean stop lets a running round finish (three scenarios of at most 10 s each) before Docker kills it.
        stopTimeout: 45,
        destroyGraceSeconds: 45,
        labels: sortedLabels({
          "pgvector-stack.stack": rendered.spec.stack,
          "pgvector-stack.role": "canary",
          // Which bundle runs, for `docker inspect` and a preview, without the ~400 kB bundle itself.
          "pgvector-stack.bundle-sha256": sha256(args.hookBundle),
        }),
      },
      // Fixed container name: the old container must be gone before its replacement takes the name.
      { parent: this, deleteBeforeReplace: true, dependsOn: args.startAfter ?? [] },
    );

    this.registerOutputs({ container: this.container });
  }
}
