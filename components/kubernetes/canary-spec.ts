/**
 * The synthetic canary as a Kubernetes Deployment: the bundled pgstack CLI from its own ConfigMap, run as its
 * rendered launch says (`pgstack canary`, rendered.launches.canary), its URLs from the hook's Secret. Plain data in,
 * plain data out.
 */
import type * as k8s from "@pulumi/kubernetes";
import path from "node:path";
import { k8sQuantity } from "../../configs/kubernetes-resources";
import type { Launch } from "../../configs/launches";
import { bytes } from "../../configs/units";
import { containerEnv, containerLaunch, containerNames, nodeUid, paths, portNames, sha256, sortedRecord, urlSecretRefs } from "./layout";
import { restrictedPodSecurityContext, restrictedSecurityContext } from "./pod-template";
import { caVolume, caVolumeMount } from "./tls-spec";

const bundleFile = path.posix.basename(paths.hookBundle);

/**
 * Memory request = limit of the canary container. The bundled CLI idles at about 58 MB RSS on node 20 (measured with
 * both targets refusing connections); its rounds add a few 768-dimension vectors and ten-row results. 192 MiB is
 * three times that, so a slow garbage collection never turns into an OOM kill that would read as a canary outage.
 */
export const canaryMemoryBytes = 192 * bytes.MiB;

/** The canary ConfigMap's data: the bundle alone, under the name the container runs. */
export function canaryConfigData(hookBundle: string): Record<string, string> {
  return { [bundleFile]: hookBundle };
}

export interface CanaryDeploymentInput {
  /**
   * `pgstack canary` as rendered (rendered.launches.canary): /metrics on every pod address, since Prometheus scrapes
   * the pod IP; the interval the placement says, timeouts and table configs/canary.ts' defaults.
   */
  readonly launch: Launch;
  /** The node image that runs the bundle (spec.images.node). */
  readonly image: string;
  /** The ConfigMap holding the bundle (canaryConfigData). */
  readonly configMapName: string;
  /** The bundle itself: its hash goes on the pod template, so a new bundle rolls the pod. */
  readonly hookBundle: string;
  /** Secret with direct-url and pooled-url (VectorPostgres.hookSecret): the application's role, as the canary must be. */
  readonly credentialsSecret: string;
  /** The TLS Secret (its ca.crt) and where the URLs' sslrootcert expects the CA (rendered.tls.files.ca). */
  readonly tls: { readonly secretName: string; readonly caPath: string };
  /** Selector labels (immutable on a live Deployment). */
  readonly selector: Readonly<Record<string, string>>;
  /** Pod labels: the selector labels plus ownership; the database's NetworkPolicy admits the selector labels. */
  readonly podLabels: Readonly<Record<string, string>>;
}

/** The Deployment's spec. Deterministic: the same input gives the same object, key order included. */
export function canaryDeploymentSpec(input: CanaryDeploymentInput): k8s.types.input.apps.v1.DeploymentSpec {
  const memory = k8sQuantity(canaryMemoryBytes);
  // Served from memory without touching the database, so both probes pass while the database is down: the canary
  // keeps running and reporting exactly then, which is what it is for.
  const metrics = { httpGet: { path: "/metrics", port: portNames.canaryMetrics }, timeoutSeconds: 5 };
  return {
    // One canary: two would only double the probe load; its own restarts show as ScrapeTargetDown on job canary.
    replicas: 1,
    revisionHistoryLimit: 3,
    selector: { matchLabels: { ...input.selector } },
    // The new pod is up before the old one stops, so a rollout leaves no gap in the canary's series.
    strategy: { rollingUpdate: { maxSurge: 1, maxUnavailable: 0 }, type: "RollingUpdate" },
    template: {
      metadata: {
        annotations: sortedRecord({
          // The ConfigMap is updated in place; this makes a new bundle a new pod, which loads it.
          "checksum/bundle": sha256(input.hookBundle),
          "kubectl.kubernetes.io/default-container": containerNames.canary,
        }),
        labels: sortedRecord({ ...input.podLabels }),
      },
      spec: {
        automountServiceAccountToken: false,
        containers: [
          {
            name: containerNames.canary,
            image: input.image,
            ...containerLaunch(input.launch),
            // The environment, not arguments: a process list shows arguments. Read at start: after a password
            // change (ALTER ROLE, then the Secret), `kubectl rollout restart` the canary, or it reports failures.
            env: containerEnv(input.launch, urlSecretRefs(input.credentialsSecret)),
            ports: [{ containerPort: input.launch.port, name: portNames.canaryMetrics, protocol: "TCP" }],
            readinessProbe: { ...metrics, failureThreshold: 3, periodSeconds: 10 },
            livenessProbe: { ...metrics, failureThreshold: 6, periodSeconds: 20 },
            // No CPU limit: CFS throttling would land in the very latencies the canary measures.
            resources: { limits: { memory }, requests: { cpu: "50m", memory } },
            securityContext: restrictedSecurityContext(nodeUid),
            // The root filesystem is read-only; anything the CLI writes relative to its directory lands in /tmp.
            workingDir: paths.tmp,
            volumeMounts: [
              { mountPath: paths.hookDir, name: "bundle", readOnly: true },
              { mountPath: paths.tmp, name: "tmp" },
              // The CA its URLs verify both servers with; a CA the issuer rotates reaches it in place.
              caVolumeMount(input.tls.caPath),
            ],
          },
        ],
        enableServiceLinks: false,
        securityContext: restrictedPodSecurityContext(nodeUid),
        // On SIGTERM the canary lets a running round finish (three scenarios, each cut off by the 10 s query
        // timeout) and exits; usually within a second. A first start's table setup may take longer, and SIGKILL then
        // only abandons it: the setup is idempotent and the next pod repeats it.
        terminationGracePeriodSeconds: 45,
        volumes: [
          { configMap: { items: [{ key: bundleFile, path: bundleFile }], name: input.configMapName }, name: "bundle" },
          { emptyDir: { sizeLimit: "16Mi" }, name: "tmp" },
          caVolume(input.tls.secretName, input.tls.caPath),
        ],
      },
    },
  };
}
