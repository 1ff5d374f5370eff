import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { Rendered } from "../../configs/rendered";
import { canaryConfigData, canaryDeploymentSpec } from "./canary-spec";
import { assertHookFits } from "./hook-job-spec";
import { canaryScrapeJobs, kubernetesNames, objectLabels, selectorLabels } from "./layout";
import { canaryNetworkPolicySpec } from "./network";

export interface VectorCanaryArgs {
  /**
   * The rendered stack: the canary's launch and scrape job, stack name, namespace, the Prometheus
   * selectors (spec.kubernetes) its NetworkPolicy admits, and where its URLs expect the CA (rendered.tls.files.ca,
   * mounted from the TLS Secret). Required; no default.
   */
  readonly rendered: Rendered;
  /** The node image (components/stack-images.ts). Required; no default. */
  readonly image: pulumi.Input<string>;
  /** The bundled pgstack CLI (one esbuild JS file), which carries `pgstack canary`. Required; no default. */
  readonly hookBundle: string;
  /** Name of the Secret holding `direct-url` and `pooled-url` (VectorPostgres.hookSecret). Required; no default. */
  readonly credentialsSecret: pulumi.Input<string>;
  /** Resources the Deployment is created after, e.g. the database StatefulSet. Defaults to none. */
  readonly after?: pulumi.Resource[];
  /** Prefix of the object names and the `app.kubernetes.io/instance` label. Defaults to the component name. */
  readonly objectPrefix?: string;
  /** Namespace of the objects (the database's). Defaults to rendered.spec.kubernetes.namespace. */
  readonly namespace?: pulumi.Input<string>;
}

/**
 * The synthetic canary (`pgstack canary`, see canary/): one pod that uses the database the way an application does,
 * through PgBouncer as the application's role, and serves what it saw on /metrics for Prometheus (job `canary`,
 * scraped by VectorMonitoring's canary PodMonitor). Its bundle lives in its own ConfigMap rather than the hook's,
 * which is named after plan.json and would roll the canary on every new index plan.
 */
export class VectorCanary extends pulumi.ComponentResource {
  public readonly deployment: k8s.apps.v1.Deployment;

  constructor(name: string, args: VectorCanaryArgs, opts?: pulumi.ComponentResourceOptions) {
    super("pgvector-stack:kubernetes:VectorCanary", name, {}, opts);
    const { rendered, hookBundle } = args;
    const { spec } = rendered;
    assertHookFits(hookBundle, "");

    const instance = args.objectPrefix ?? name;
    const names = kubernetesNames(instance);
    const namespace = args.namespace ?? spec.kubernetes.namespace;
    const labels = objectLabels(instance, "canary", spec.stack);
    const selector = selectorLabels(instance, "canary");
    const metadata = { labels, name: names.canary, namespace };

    const config = new k8s.core.v1.ConfigMap(`${name}-config`, { metadata, data: canaryConfigData(hookBundle) }, { parent: this });

    new k8s.networking.v1.NetworkPolicy(
      `${name}-network-policy`,
      {
        metadata,
        spec: canaryNetworkPolicySpec(
          selector,
          canaryScrapeJobs(rendered).map((job) => job.port),
          { namespaces: spec.kubernetes.prometheusNamespaceSelector, pods: spec.kubernetes.prometheusPodSelector },
        ),
      },
      { parent: this },
    );

    this.deployment = new k8s.apps.v1.Deployment(
      `${name}-deployment`,
      {
        metadata,
        spec: pulumi.all([args.credentialsSecret, args.image]).apply(([credentialsSecret, image]) =>
          canaryDeploymentSpec({
            launch: rendered.launches.canary,
            image,
            configMapName: names.canary,
            hookBundle,
            credentialsSecret,
            tls: { secretName: names.tls, caPath: rendered.tls.files.ca },
            selector,
            podLabels: labels,
          }),
        ),
      },
      // The ConfigMap's name is a fixed string, so Pulumi sees no dependency on it: state it.
      { parent: this, dependsOn: [config, ...(args.after ?? [])] },
    );

    this.registerOutputs({ deployment: this.deployment });
  }
}
