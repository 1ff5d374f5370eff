/**
 * The post-deploy hook as a Kubernetes Job: the bundled pgstack CLI and plan.json in a ConfigMap, a Job whose name
 * and pod template carry the plan's hash. Plain data in, plain data out.
 */
import type * as k8s from "@pulumi/kubernetes";
import path from "node:path";
import { directUrlEnv, pooledUrlEnv } from "../../configs/canary";
import { k8sQuantity } from "../../configs/kubernetes-resources";
import { containerNames, nodeUid, paths, secretKeys } from "./layout";
import { restrictedPodSecurityContext, restrictedSecurityContext } from "./pod-template";
import { caProjection, caVolume, caVolumeMount } from "./tls-spec";

/** Kubernetes refuses a ConfigMap whose data adds up to more than 1 MiB (validation.MaxConfigMapSize… in apimachinery). */
export const configMapLimitBytes = 1024 * 1024;

/** The hook ConfigMap's data: the CLI bundle and the plan, under the names the Job mounts. */
export function hookConfigData(hookBundle: string, planJson: string): Record<string, string> {
  return { [path.posix.basename(paths.hookBundle)]: hookBundle, [path.posix.basename(paths.plan)]: planJson };
}

/** Throws, naming the sizes, when the bundle and plan would not fit one ConfigMap. */
export function assertHookFits(hookBundle: string, planJson: string): void {
  const bundleBytes = Buffer.byteLength(hookBundle, "utf8");
  const planBytes = Buffer.byteLength(planJson, "utf8");
  if (bundleBytes === 0) throw new Error("hookBundle is empty; pass the esbuild bundle of the pgstack CLI (one JS file)");
  if (bundleBytes + planBytes > configMapLimitBytes) {
    throw new Error(
      `hookBundle is ${bundleBytes} bytes and plan.json ${planBytes} bytes: together ${bundleBytes + planBytes} bytes, over the ` +
        `${configMapLimitBytes} bytes (1 MiB) Kubernetes allows in one ConfigMap; build the bundle with esbuild --minify ` +
        `and leave out what the postdeploy command does not import`,
    );
  }
}

/**
 * Waits until the direct Service accepts TCP connections (the database is up), then exits 0; exits 1 after the
 * deadline so the Job's backoff tries again. Node's own `net`: the hook image has no PostgreSQL client.
 */
export const waitForDatabaseScript = [
  'const net = require("net");',
  "const host = process.env.PGSTACK_WAIT_HOST, port = Number(process.env.PGSTACK_WAIT_PORT);",
  "const deadline = Date.now() + Number(process.env.PGSTACK_WAIT_SECONDS) * 1000;",
  "function attempt() {",
  "  let done = false;",
  "  const socket = net.connect(port, host);",
  "  const retry = () => {",
  "    if (done) return; done = true; socket.destroy();",
  "    if (Date.now() > deadline) { console.error(`${host}:${port} did not accept connections in time`); process.exit(1); }",
  "    setTimeout(attempt, 2000);",
  "  };",
  "  socket.setTimeout(5000);",
  '  socket.on("connect", () => { done = true; socket.end(); console.log(`${host}:${port} accepts connections`); process.exit(0); });',
  '  socket.on("error", retry);',
  '  socket.on("timeout", retry);',
  "}",
  "attempt();",
].join("\n");

export interface HookJobInput {
  /** The node image that runs the bundle. */
  readonly image: string;
  /** sha256 of plan.json, hex. */
  readonly planSha256: string;
  readonly configMapName: string;
  /** Secret with direct-url and pooled-url (VectorPostgres). */
  readonly credentialsSecret: string;
  /** The TLS Secret (its ca.crt) and where the URLs' sslrootcert expects the CA (rendered.tls.files.ca). */
  readonly tls: { readonly secretName: string; readonly caPath: string };
  /** The direct Service's host and port, which the init container waits for. */
  readonly databaseHost: string;
  readonly databasePort: number;
  /** Pod labels; the database's NetworkPolicy admits pods with the hook's selector labels. */
  readonly podLabels: Readonly<Record<string, string>>;
  readonly backoffLimit: number;
  readonly timeoutSeconds: number;
  readonly memoryBytes: number;
}

/** The Job's spec. Its pod template carries the plan hash: a new plan is a new template, hence a new Job. */
export function hookJobSpec(input: HookJobInput): k8s.types.input.batch.v1.JobSpec {
  const memory = k8sQuantity(input.memoryBytes);
  const planFile = path.posix.basename(paths.plan);
  // The CA goes into the plan's volume when its path is below the plan's directory (/etc/pgstack/tls under
  // /etc/pgstack): a second volume cannot be mounted inside a ConfigMap's.
  const ca = caProjection(paths.planDir, input.tls.caPath, input.tls.secretName);
  const planVolume: k8s.types.input.core.v1.Volume =
    ca === null
      ? { configMap: { items: [{ key: planFile, path: planFile }], name: input.configMapName }, name: "plan" }
      : { name: "plan", projected: { sources: [{ configMap: { items: [{ key: planFile, path: planFile }], name: input.configMapName } }, ca] } };
  const secret = (name: string, key: string) => ({ name, valueFrom: { secretKeyRef: { key, name: input.credentialsSecret } } });
  return {
    // The hook is idempotent and repairs what an interrupted run left (postdeploy/indexes.ts), so a failed attempt is retried.
    backoffLimit: input.backoffLimit,
    // Kubernetes gives up when Pulumi does, so no attempt outlives the deployment that waits for it.
    activeDeadlineSeconds: input.timeoutSeconds,
    template: {
      metadata: { annotations: { "pgvector-stack/plan-sha256": input.planSha256 }, labels: { ...input.podLabels } },
      spec: {
        automountServiceAccountToken: false,
        containers: [
          {
            name: containerNames.hook,
            image: input.image,
            command: ["node", paths.hookBundle, "postdeploy", "--plan", paths.plan],
            env: [secret(directUrlEnv, secretKeys.hookDirectUrl), secret(pooledUrlEnv, secretKeys.hookPooledUrl)],
            resources: { limits: { memory }, requests: { cpu: "500m", memory } },
            securityContext: restrictedSecurityContext(nodeUid),
            // The root filesystem is read-only; anything the CLI writes relative to its directory lands in /tmp.
            workingDir: paths.tmp,
            volumeMounts: [
              { mountPath: paths.hookDir, name: "hook", readOnly: true },
              { mountPath: paths.planDir, name: "plan", readOnly: true },
              { mountPath: paths.tmp, name: "tmp" },
              ...(ca === null ? [caVolumeMount(input.tls.caPath)] : []),
            ],
          },
        ],
        enableServiceLinks: false,
        initContainers: [
          {
            name: containerNames.waitForDatabase,
            image: input.image,
            command: ["node", "-e", waitForDatabaseScript],
            env: [
              { name: "PGSTACK_WAIT_HOST", value: input.databaseHost },
              { name: "PGSTACK_WAIT_PORT", value: String(input.databasePort) },
              { name: "PGSTACK_WAIT_SECONDS", value: "600" },
            ],
            resources: { limits: { memory: "64Mi" }, requests: { cpu: "10m", memory: "64Mi" } },
            securityContext: restrictedSecurityContext(nodeUid),
          },
        ],
        // Never: each failed attempt keeps its pod and log for `kubectl logs`, and counts against backoffLimit.
        restartPolicy: "Never",
        securityContext: restrictedPodSecurityContext(nodeUid),
        volumes: [
          { configMap: { items: [{ key: path.posix.basename(paths.hookBundle), path: path.posix.basename(paths.hookBundle) }], name: input.configMapName }, name: "hook" },
          planVolume,
          { emptyDir: {}, name: "tmp" },
          ...(ca === null ? [caVolume(input.tls.secretName, input.tls.caPath)] : []),
        ],
      },
    },
  };
}
