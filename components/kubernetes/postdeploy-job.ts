import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { Rendered } from "../../configs/rendered";
import { bytes } from "../../configs/units";
import { assertHookFits, hookConfigData, hookJobSpec } from "./hook-job-spec";
import { kubernetesNames, objectLabels, sha256 } from "./layout";

export interface PostDeployJobArgs {
  /** The rendered stack: plan.json, stack name, namespace, the CA's path (rendered.tls.files.ca). Required; no default. */
  readonly rendered: Rendered;
  /** The bundled pgstack CLI: one JavaScript file built by esbuild, at most 1 MiB with plan.json. Required; no default. */
  readonly hookBundle: string;
  /** The node image (components/stack-images.ts). Required; no default. */
  readonly image: pulumi.Input<string>;
  /** Name of the Secret holding `direct-url` and `pooled-url` (VectorPostgres.hookSecret). Required; no default. */
  readonly credentialsSecret: pulumi.Input<string>;
  /** Host of the direct Service; the Job waits until it accepts connections. Required; no default. */
  readonly databaseHost: pulumi.Input<string>;
  /** Port of the direct Service. Defaults to PostgreSQL's port in the placement (rendered.placement.ports.postgres). */
  readonly databasePort?: number;
  /** Resources the Job is created after, e.g. the database StatefulSet (Pulumi waits until its pod is Ready). Defaults to none. */
  readonly after?: pulumi.Resource[];
  /** Prefix of the object names and the `app.kubernetes.io/instance` label. Defaults to the component name. */
  readonly objectPrefix?: string;
  /** Namespace of the ConfigMap and the Job (the database's). Defaults to rendered.spec.kubernetes.namespace. */
  readonly namespace?: pulumi.Input<string>;
  /** Failed attempts before the Job fails. Defaults to 6 (Kubernetes' own default, stated). */
  readonly backoffLimit?: number;
  /** How long the Job may run, and Pulumi waits for it (index builds on large tables take long). Defaults to 60 minutes. */
  readonly timeoutMinutes?: number;
  /** Memory request = limit of the hook container. Defaults to 1 GiB (the smoke benchmark holds its vectors in memory). */
  readonly memoryBytes?: number;
}

/**
 * Runs `pgstack postdeploy` (ensure the HNSW indexes, smoke benchmark, report) once per plan: the Job's name and pod
 * template carry the sha256 of plan.json, so a changed plan is a new Job, which runs; an unchanged plan leaves the
 * finished Job alone. No Pulumi resource hooks or transforms: the Job is an ordinary resource, awaited by Pulumi
 * until it completes.
 */
export class PostDeployJob extends pulumi.ComponentResource {
  public readonly job: k8s.batch.v1.Job;
  public readonly jobName: pulumi.Output<string>;
  /** sha256 of the plan.json this Job runs. */
  public readonly planSha256: string;

  constructor(name: string, args: PostDeployJobArgs, opts?: pulumi.ComponentResourceOptions) {
    super("pgvector-stack:kubernetes:PostDeployJob", name, {}, opts);
    const { rendered, hookBundle } = args;
    const { spec } = rendered;
    const planJson = rendered.files["plan.json"];
    assertHookFits(hookBundle, planJson);

    const instance = args.objectPrefix ?? name;
    const names = kubernetesNames(instance);
    const namespace = args.namespace ?? spec.kubernetes.namespace;
    const labels = objectLabels(instance, "postdeploy-hook", spec.stack);
    const timeoutMinutes = args.timeoutMinutes ?? 60;
    this.planSha256 = sha256(planJson);

    const config = new k8s.core.v1.ConfigMap(
      `${name}-config`,
      { metadata: { labels, name: names.hookConfig(this.planSha256), namespace }, data: hookConfigData(hookBundle, planJson) },
      { parent: this },
    );

    this.job = new k8s.batch.v1.Job(
      `${name}-job`,
      {
        metadata: { labels, name: names.hookJob(this.planSha256), namespace },
        spec: pulumi.all([args.credentialsSecret, args.databaseHost, args.image]).apply(([credentialsSecret, databaseHost, image]) =>
          hookJobSpec({
            image,
            planSha256: this.planSha256,
            configMapName: names.hookConfig(this.planSha256),
            credentialsSecret,
            tls: { secretName: names.tls, caPath: rendered.tls.files.ca },
            databaseHost,
            databasePort: args.databasePort ?? rendered.placement.ports.postgres,
            podLabels: labels,
            backoffLimit: args.backoffLimit ?? 6,
            timeoutSeconds: timeoutMinutes * 60,
            memoryBytes: args.memoryBytes ?? bytes.GiB,
          }),
        ),
      },
      {
        parent: this,
        dependsOn: [config, ...(args.after ?? [])],
        customTimeouts: { create: `${timeoutMinutes}m`, update: `${timeoutMinutes}m` },
      },
    );
    this.jobName = this.job.metadata.name;

    this.registerOutputs({ jobName: this.jobName, planSha256: this.planSha256 });
  }
}
