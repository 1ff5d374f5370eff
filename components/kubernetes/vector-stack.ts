import * as k8s from "@pulumi/kubernetes";
import { StackImages } from "../stack-images";
import * as pulumi from "@pulumi/pulumi";
import type { Rendered } from "../../configs/rendered";
import { passwordKeys, type PasswordArgs } from "../../configs/roles";
import { VectorCanary } from "./canary";
import { assertHookFits } from "./hook-job-spec";
import { type KubernetesMemoryPlan, kubernetesNames, kubernetesProblems } from "./layout";
import type { Endpoint } from "./network";
import { VectorMonitoring } from "./monitoring";
import { PostDeployJob } from "./postdeploy-job";
import { VectorPostgres } from "./vector-postgres";

/** Passwords: one per role kind (configs/roles.ts, e.g. `appPassword`, `readOnlyPassword`), each generated when not given. */
export interface VectorStackArgs extends PasswordArgs<pulumi.Input<string>> {
  /**
   * The rendered stack (configs/render.ts renderStack). Its spec.kubernetes also holds the platform's knobs: which
   * clients and which Prometheus the NetworkPolicies admit, and the labels the cluster's Prometheus selects the
   * PodMonitors and the PrometheusRule by. Required; no default.
   */
  readonly rendered: Rendered;
  /** The bundled pgstack CLI the post-deploy Job and the canary run (one esbuild JS file). Required; no default. */
  readonly hookBundle: string;
  /** Create spec.kubernetes.namespace (restricted Pod Security Standard, kept on delete); false uses an existing one. Defaults to true. */
  readonly createNamespace?: boolean;
  /** Prefix of every Kubernetes object name. Defaults to `pgvector`. */
  readonly objectPrefix?: string;
  /** How long the post-deploy Job may run. Defaults to 60 minutes. */
  readonly hookTimeoutMinutes?: number;
}

/**
 * One pgvector stack on Kubernetes: the namespace (optional), the database (VectorPostgres), the canary
 * (VectorCanary), the Prometheus Operator objects (when spec.kubernetes.prometheusOperator) and the Grafana dashboard
 * (when spec.kubernetes.grafanaDashboard), and the post-deploy Job after the database is Ready.
 */
export class VectorStack extends pulumi.ComponentResource {
  public readonly endpoints: { readonly pooled: Endpoint; readonly direct: Endpoint };
  /** The application role's URL through PgBouncer (secret), verifying the server against the CA at rendered.tls.files.ca. */
  public readonly connectionString: pulumi.Output<string>;
  /** The read-only role's URL through PgBouncer (secret). */
  public readonly readOnlyConnectionString: pulumi.Output<string>;
  /** The owner's URL straight to PostgreSQL, for migrations (secret). */
  public readonly ownerConnectionString: pulumi.Output<string>;
  public readonly memoryPlan: KubernetesMemoryPlan;
  public readonly hookJobName: pulumi.Output<string>;
  /**
   * The CA certificate (PEM, not secret) both servers' certificate verifies against: the application's
   * sslrootcert. Undefined with spec.tls.certManagerIssuer: the issuer's CA, in the TLS Secret's ca.crt.
   */
  public readonly caCertificate: pulumi.Output<string> | undefined;

  constructor(name: string, args: VectorStackArgs, opts?: pulumi.ComponentResourceOptions) {
    // Args carry passwords: what super() receives is recorded in state, so it gets nothing.
    super("pgvector-stack:kubernetes:VectorStack", name, {}, opts);
    const { rendered } = args;
    const { spec } = rendered;
    // Everything that cannot deploy is refused before the first object exists (the children check again).
    const problems = kubernetesProblems(rendered);
    if (problems.length > 0) throw new Error(`VectorStack ${name}:\n  - ${problems.join("\n  - ")}`);
    assertHookFits(args.hookBundle, rendered.files["plan.json"]);
    const objectPrefix = args.objectPrefix ?? "pgvector";
    kubernetesNames(objectPrefix);

    const namespace: pulumi.Input<string> =
      args.createNamespace ?? true
        ? new k8s.core.v1.Namespace(
            `${name}-namespace`,
            {
              metadata: {
                labels: {
                  "app.kubernetes.io/managed-by": "pulumi",
                  "app.kubernetes.io/part-of": "pgvector-stack",
                  // Every pod of the stack meets the restricted standard; the API server now refuses any that does not.
                  "pod-security.kubernetes.io/enforce": "restricted",
                  "pod-security.kubernetes.io/enforce-version": "latest",
                  "pgvector-stack/stack": spec.stack,
                },
                name: spec.kubernetes.namespace,
              },
            },
            // Deleting a namespace deletes its PersistentVolumeClaims, and with the usual reclaim policy the data: removing
            // it from the program (or `pulumi destroy`) leaves it in the cluster, for a person to delete on purpose.
            { parent: this, retainOnDelete: true },
          ).metadata.name
        : spec.kubernetes.namespace;

    const images = new StackImages(`${name}-images`, { spec }, { parent: this }).references;

    const database = new VectorPostgres(
      `${name}-database`,
      {
        rendered,
        images,
        objectPrefix,
        namespace,
        ...Object.fromEntries(passwordKeys.map((key) => [key, args[key]])),
      },
      { parent: this },
    );

    // The canary measures the database being down, so it need not wait for the hook; it starts after the database
    // only so that its first minutes are not all failures. The alert rules include its group and its scrape
    // job is among rendered.scrapeJobs, so it is not optional.
    new VectorCanary(
      `${name}-canary`,
      {
        rendered,
        image: images.node,
        hookBundle: args.hookBundle,
        credentialsSecret: database.canarySecret.metadata.name,
        after: [database.statefulSet, database.canarySecret, database.services.pooled, database.services.direct],
        objectPrefix,
        namespace,
      },
      { parent: this },
    );

    if (spec.kubernetes.prometheusOperator || spec.kubernetes.grafanaDashboard) {
      new VectorMonitoring(`${name}-monitoring`, { rendered, objectPrefix, namespace }, { parent: this });
    }

    const hook = new PostDeployJob(
      `${name}-postdeploy`,
      {
        rendered,
        image: images.node,
        hookBundle: args.hookBundle,
        credentialsSecret: database.hookSecret.metadata.name,
        databaseHost: database.direct.host,
        databasePort: database.direct.port,
        // Pulumi waits until the StatefulSet's pod is Ready before it creates the Job.
        after: [database.statefulSet, database.hookSecret, database.services.direct],
        objectPrefix,
        namespace,
        timeoutMinutes: args.hookTimeoutMinutes,
      },
      { parent: this },
    );

    this.endpoints = { pooled: database.pooled, direct: database.direct };
    this.connectionString = database.connectionString;
    this.readOnlyConnectionString = database.readOnlyConnectionString;
    this.ownerConnectionString = database.ownerConnectionString;
    this.memoryPlan = {
      ...rendered.memory,
      pod: database.resources.budget,
      shmBytes: database.resources.shmBytes,
      hugePagesBytes: database.resources.hugePagesBytes,
    };
    this.hookJobName = hook.jobName;
    this.caCertificate = database.caCertificate;

    this.registerOutputs({
      endpoints: this.endpoints,
      connectionString: this.connectionString,
      readOnlyConnectionString: this.readOnlyConnectionString,
      ownerConnectionString: this.ownerConnectionString,
      memoryPlan: this.memoryPlan,
      hookJobName: this.hookJobName,
      caCertificate: this.caCertificate,
    });
  }
}
