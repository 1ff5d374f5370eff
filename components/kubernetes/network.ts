/**
 * How the database pod is reached and protected: its Services, the NetworkPolicy that admits only applications,
 * the post-deploy hook, the canary and Prometheus, the canary's own NetworkPolicy, and the PodDisruptionBudget.
 * Plain data in, plain data out.
 */
import type * as k8s from "@pulumi/kubernetes";
import type * as pulumi from "@pulumi/pulumi";
import type { Rendered } from "../../configs/rendered";
import type { Labels } from "../../configs/stack-spec";
import { databaseScrapeJobs, metricsPortNames, portNames } from "./layout";

export type { Labels } from "../../configs/stack-spec";

/** A named container port of the database pod. */
export interface NamedPort {
  readonly name: string;
  readonly port: number;
}

export interface DatabasePorts {
  readonly postgres: number;
  readonly pgbouncer: number;
  /** Every metrics port of the pod (exporters, node_exporter, mtail), named as its container declares it, in rendered.scrapeJobs order. */
  readonly metrics: readonly NamedPort[];
}

/** Where a Service answers: its cluster DNS name and port. */
export interface Endpoint {
  readonly host: pulumi.Output<string>;
  readonly port: number;
}

function servicePort(name: string, port: number): k8s.types.input.core.v1.ServicePort {
  return { name, port, protocol: "TCP", targetPort: name };
}

export interface DatabaseServiceSpecs {
  /** For applications: PgBouncer. */
  readonly pooled: k8s.types.input.core.v1.ServiceSpec;
  /** For administrators and the post-deploy hook: PostgreSQL itself. */
  readonly direct: k8s.types.input.core.v1.ServiceSpec;
  /** Governs the StatefulSet (stable per-pod DNS); lists every port by name, the metrics ports included. */
  readonly headless: k8s.types.input.core.v1.ServiceSpec;
}

export function databaseServiceSpecs(selector: Labels, ports: DatabasePorts): DatabaseServiceSpecs {
  return {
    pooled: { ports: [servicePort(portNames.pgbouncer, ports.pgbouncer)], selector: { ...selector }, type: "ClusterIP" },
    direct: { ports: [servicePort(portNames.postgres, ports.postgres)], selector: { ...selector }, type: "ClusterIP" },
    headless: {
      clusterIP: "None",
      ports: [
        servicePort(portNames.postgres, ports.postgres),
        servicePort(portNames.pgbouncer, ports.pgbouncer),
        ...ports.metrics.map((m) => servicePort(m.name, m.port)),
      ],
      // The pod's DNS name resolves while it starts, so an administrator can reach a pod that is not Ready yet.
      publishNotReadyAddresses: true,
      selector: { ...selector },
    },
  };
}

/** Who may connect to what. Selectors are label maps; `{}` selects everything in its scope. */
export interface DatabasePeers {
  /** Namespaces whose pods may use the pooled port. */
  readonly clientNamespaces: Labels;
  /** Pods in those namespaces that may use the pooled port. */
  readonly clientPods: Labels;
  /** The database's own namespace: where the hook runs. */
  readonly namespace: string;
  /** Pods of the post-deploy hook (in the database's namespace): direct and pooled ports. */
  readonly hookPods: Labels;
  /** Pods of the canary (in the database's namespace): direct and pooled ports, as its two probe targets. */
  readonly canaryPods: Labels;
  /** Namespaces and pods of Prometheus: the metrics ports. */
  readonly prometheusNamespaces: Labels;
  readonly prometheusPods: Labels;
}

/** The namespace's own name label, set by Kubernetes (≥ 1.21) on every namespace. */
export function namespaceNameLabel(namespace: string): Labels {
  return { "kubernetes.io/metadata.name": namespace };
}

function peer(namespaces: Labels, pods: Labels): k8s.types.input.networking.v1.NetworkPolicyPeer {
  // One peer with both selectors: pods matching podSelector *in* namespaces matching namespaceSelector.
  return { namespaceSelector: { matchLabels: { ...namespaces } }, podSelector: { matchLabels: { ...pods } } };
}

function tcp(port: number): k8s.types.input.networking.v1.NetworkPolicyPort {
  return { port, protocol: "TCP" };
}

/**
 * Ingress only: the containers of the pod talk to each other over loopback, which no policy sees, and the pod
 * opens no connection of its own; egress stays with the cluster's defaults. Applications reach PgBouncer only; the
 * hook reaches PostgreSQL directly (index builds, bypassing the transaction pool) and PgBouncer (the smoke
 * benchmark); the canary probes logins on both, as its `postgres` and `pgbouncer` targets; Prometheus reaches every
 * metrics port (both exporters, node_exporter, mtail). Anything else, including application pods on 5432, is dropped. `kubectl port-forward` and `exec` enter through the kubelet,
 * not the pod network, so administrators still reach 5432.
 */
export function databaseNetworkPolicySpec(selector: Labels, ports: DatabasePorts, peers: DatabasePeers): k8s.types.input.networking.v1.NetworkPolicySpec {
  return {
    ingress: [
      { from: [peer(peers.clientNamespaces, peers.clientPods)], ports: [tcp(ports.pgbouncer)] },
      { from: [peer(namespaceNameLabel(peers.namespace), peers.hookPods)], ports: [tcp(ports.postgres), tcp(ports.pgbouncer)] },
      { from: [peer(namespaceNameLabel(peers.namespace), peers.canaryPods)], ports: [tcp(ports.postgres), tcp(ports.pgbouncer)] },
      {
        from: [peer(peers.prometheusNamespaces, peers.prometheusPods)],
        ports: ports.metrics.map((m) => tcp(m.port)),
      },
    ],
    podSelector: { matchLabels: { ...selector } },
    policyTypes: ["Ingress"],
  };
}

/**
 * The canary pod: only Prometheus may reach it, on the metrics port. Ingress only, as for the database: the canary's
 * own connections to 5432/6432 are admitted by the database's policy, and egress (DNS included) stays with the
 * cluster's defaults.
 */
export function canaryNetworkPolicySpec(
  selector: Labels,
  metricsPorts: readonly number[],
  prometheus: { readonly namespaces: Labels; readonly pods: Labels },
): k8s.types.input.networking.v1.NetworkPolicySpec {
  return {
    ingress: [{ from: [peer(prometheus.namespaces, prometheus.pods)], ports: metricsPorts.map(tcp) }],
    podSelector: { matchLabels: { ...selector } },
    policyTypes: ["Ingress"],
  };
}

/**
 * One instance: a voluntary eviction (node drain, cluster upgrade) waits until a person moves the database on
 * purpose, instead of taking it down unannounced. A pod that is not Ready anyway may always be evicted, so a broken
 * database never blocks a drain (unhealthyPodEvictionPolicy, Kubernetes ≥ 1.27).
 */
export function databaseDisruptionBudgetSpec(selector: Labels): k8s.types.input.policy.v1.PodDisruptionBudgetSpec {
  return { minAvailable: 1, selector: { matchLabels: { ...selector } }, unhealthyPodEvictionPolicy: "AlwaysAllow" };
}

/**
 * The ports of one database pod, for Services and the NetworkPolicy: PostgreSQL's and PgBouncer's from the placement,
 * the metrics ports from the rendered scrape jobs of the pod's metric sources.
 */
export function databasePorts(rendered: Rendered): DatabasePorts {
  const { ports } = rendered.placement;
  return {
    postgres: ports.postgres,
    pgbouncer: ports.pgbouncer,
    metrics: databaseScrapeJobs(rendered).map((job) => ({ name: metricsPortNames[job.source], port: job.port })),
  };
}
