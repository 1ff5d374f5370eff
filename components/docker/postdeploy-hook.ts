/**
 * The post-deploy hook as a run-to-completion container: `pgstack postdeploy` ensures the HNSW indexes of the plan
 * and runs the smoke benchmark. `pulumi up` attaches to it, waits for it to exit and keeps its log as the report.
 *
 * It runs again exactly when plan.json changes (index plan or benchmark settings): the plan's sha256 is in the
 * container's name and labels, and a Docker container cannot be updated in place, so a new hash is a new container.
 * Of the TLS files it gets only the CA, which lives ten years: a renewed server certificate does not re-run it.
 * It reaches the database by name on the stack network rather than through the database's namespace, so replacing
 * the database container (a postgresql.conf change) does not re-run it.
 */
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { directUrlEnv, pooledUrlEnv } from "../../configs/canary";
import type { Rendered } from "../../configs/rendered";
import { containerHardening, type DockerNames, fileVariable, hookTrigger, paths, runToCompletion, secretFile, sortedLabels } from "./layout";

export interface DockerPostDeployHookArgs {
  /** The rendered stack: plan.json and where the CA goes (rendered.tls.files.ca). Required; no default. */
  readonly rendered: Rendered;
  /** Docker object names of this stack (see `dockerNames`). Required; no default. */
  readonly names: DockerNames;
  /** The node image (components/stack-images.ts). Required; no default. */
  readonly image: pulumi.Input<string>;
  /** The stack's Docker network, where the database answers as `postgres` and `pgbouncer`. Required; no default. */
  readonly networkName: pulumi.Input<string>;
  /** The bundled pgstack CLI (one CommonJS file), run as /hook/pgstack.js. Required; no default. */
  readonly hookBundle: string;
  /** Direct PostgreSQL URL for index builds (PGSTACK_DIRECT_URL), a secret. Required; no default. */
  readonly directUrl: pulumi.Input<string>;
  /** PgBouncer URL for the smoke benchmark (PGSTACK_POOLED_URL), a secret. Required; no default. */
  readonly pooledUrl: pulumi.Input<string>;
  /** The CA certificate (PEM) its URLs verify the servers with, uploaded where rendered.tls.files.ca says. Required; no default. */
  readonly caCertificate: pulumi.Input<string>;
  /** Resources that must be up first (the database, PgBouncer). Defaults to none. */
  readonly startAfter?: pulumi.Input<pulumi.Resource>[];
}

/** What the hook left behind: its exit code and everything it printed (URLs are masked by the CLI). */
export interface HookReport {
  readonly planSha256: string;
  /** null until the container has exited (e.g. in a preview). */
  readonly exitCode: number | null;
  readonly log: string;
}

export class DockerPostDeployHook extends pulumi.ComponentResource {
  public readonly container: docker.Container;
  /** sha256 of plan.json: the re-run trigger. */
  public readonly planSha256: string;
  public readonly report: pulumi.Output<HookReport>;

  constructor(name: string, args: DockerPostDeployHookArgs, opts?: pulumi.ComponentResourceOptions) {
    // Args carry connection URLs with passwords: keep them out of the component's recorded inputs.
    super("pgvector-stack:docker:DockerPostDeployHook", name, {}, opts);
    const { rendered } = args;
    const plan = rendered.files["plan.json"];
    this.planSha256 = hookTrigger(plan);

    this.container = new docker.Container(
      `${name}-container`,
      {
        name: args.names.hook(this.planSha256),
        image: args.image,
        command: ["node", paths.hookBundle, "postdeploy", "--plan", paths.hookPlan],
        // The URLs carry passwords: files `pgstack postdeploy` reads through PGSTACK_*_URL_FILE (cli/secret-env.ts),
        // never the env `docker inspect` prints.
        uploads: [
          { file: paths.hookBundle, content: args.hookBundle },
          { file: paths.hookPlan, content: plan },
          { file: rendered.tls.files.ca, content: args.caCertificate },
          { file: secretFile(directUrlEnv), content: pulumi.secret(args.directUrl) },
          { file: secretFile(pooledUrlEnv), content: pulumi.secret(args.pooledUrl) },
        ],
        envs: [`${fileVariable(directUrlEnv)}=${secretFile(directUrlEnv)}`, `${fileVariable(pooledUrlEnv)}=${secretFile(pooledUrlEnv)}`],
        user: "node",
        ...containerHardening("hook"),
        networksAdvanced: [{ name: args.networkName }],
        ...runToCompletion,
        labels: sortedLabels({
          "pgvector-stack.stack": rendered.spec.stack,
          "pgvector-stack.role": "postdeploy-hook",
          "pgvector-stack.plan-sha256": this.planSha256,
        }),
      },
      // The labels carry the trigger; replaceOnChanges states that a new one must replace, not update.
      { parent: this, dependsOn: args.startAfter ?? [], replaceOnChanges: ["labels"], deleteBeforeReplace: true },
    );

    const planSha256 = this.planSha256;
    this.report = pulumi.all([this.container.exitCode, this.container.containerLogs]).apply(([exitCode, log]): HookReport => {
      // The provider does not fail on a non-zero exit, and an unchanged plan will not run the hook again.
      if (exitCode !== undefined && exitCode !== null && exitCode !== 0) {
        pulumi.log.warn(
          `post-deploy hook ${args.names.hook(planSha256)} exited with ${exitCode}; see the hookReport output. Run it again with \`pulumi up --replace <its URN>\``,
          this,
        );
      }
      return { planSha256, exitCode: exitCode ?? null, log: log ?? "" };
    });

    this.registerOutputs({ container: this.container, planSha256: this.planSha256, report: this.report });
  }
}
