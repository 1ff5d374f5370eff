/**
 * The stack's network namespace, held by a container that does nothing else: it is on the stack network (answering as
 * `postgres` and `pgbouncer`) and publishes every port, and PostgreSQL, PgBouncer, the exporters, mtail, Prometheus and
 * the canary all join it (`--network container:<id>`). The Kubernetes pod's pause container, on Docker.
 *
 * Why not PostgreSQL's own container, as before: a container that restarts gets a new network namespace, and the
 * containers that joined the old one stay in it, cut off (seen on the real engine: after `docker restart` of the
 * database, PgBouncer's namespace held only `lo` and nothing answered on the pooled port). PostgreSQL is the container
 * most likely to restart (a crash, an OOM kill, a configuration change that replaces it); this one runs `sleep` and has
 * no reason to.
 */
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { Rendered } from "../../configs/rendered";
import { containerHardening, type DockerNames, namespaceHolderCommand, networkAliases, publishedPorts, sortedLabels } from "./layout";

export interface DockerNamespaceArgs {
  /** The rendered stack: its ports (placement inside, docker.ports outside) and stack name. Required; no default. */
  readonly rendered: Rendered;
  /** Docker object names of this stack (see `dockerNames`). Required; no default. */
  readonly names: DockerNames;
  /** The stack's Docker network. Required; no default. */
  readonly networkName: pulumi.Input<string>;
  /** An image with `sleep` (coreutils): the postgres image, already on the host. Required; no default. */
  readonly image: pulumi.Input<string>;
}

export class DockerNamespace extends pulumi.ComponentResource {
  /** The container whose network namespace every other long-running container of the stack joins. */
  public readonly container: docker.Container;

  constructor(name: string, args: DockerNamespaceArgs, opts?: pulumi.ComponentResourceOptions) {
    super("pgvector-stack:docker:DockerNamespace", name, {}, opts);
    const { rendered } = args;
    this.container = new docker.Container(
      `${name}-container`,
      {
        name: args.names.namespace,
        image: args.image,
        entrypoints: [...namespaceHolderCommand],
        // Nobody, with nothing: it only holds the namespace (layout.ts containerHardening, read-only root filesystem).
        user: "65534:65534",
        ...containerHardening("namespace"),
        // `sleep` as PID 1 has no handler for SIGTERM, which the kernel then ignores: stop it with SIGKILL at once
        // instead of after the stop timeout. It holds no state.
        stopSignal: "SIGKILL",
        restart: "unless-stopped",
        networksAdvanced: [{ name: args.networkName, aliases: [networkAliases.postgres, networkAliases.pgbouncer] }],
        ports: publishedPorts(rendered),
        labels: sortedLabels({ "pgvector-stack.stack": rendered.spec.stack, "pgvector-stack.role": "namespace" }),
      },
      { parent: this, deleteBeforeReplace: true },
    );
    this.registerOutputs({ container: this.container });
  }
}
