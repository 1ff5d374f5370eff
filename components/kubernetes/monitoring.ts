import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { Rendered } from "../../configs/rendered";
import { grafanaDashboardData, grafanaDashboardLabels } from "./grafana-dashboard-config";
import { kubernetesNames, objectLabels, selectorLabels, sortedRecord } from "./layout";
import { canaryPodMonitorSpec, podMonitorSpec, prometheusRuleSpec } from "./monitoring-spec";
import type { Labels } from "./network";

export interface VectorMonitoringArgs {
  /** The rendered stack: alert rule groups, dashboard, stack name, namespace, which objects to create. Required; no default. */
  readonly rendered: Rendered;
  /** Prefix of the object names and the `app.kubernetes.io/instance` of the pods to scrape. Defaults to the component name. */
  readonly objectPrefix?: string;
  /** Namespace of the objects (the database's). Defaults to rendered.spec.kubernetes.namespace. */
  readonly namespace?: pulumi.Input<string>;
  /** Extra labels on the PodMonitors, for a Prometheus whose podMonitorSelector asks for them (e.g. `release`). Defaults to none. */
  readonly podMonitorLabels?: Labels;
  /** Extra labels on the PrometheusRule, for a Prometheus whose ruleSelector asks for them. Defaults to none. */
  readonly ruleLabels?: Labels;
  /** How often the exporters and the canary are scraped. Defaults to `15s` (the rules' shortest `for` is 1m: four scrapes). */
  readonly scrapeInterval?: string;
}

/**
 * How one stack is watched. With spec.kubernetes.prometheusOperator, the Prometheus Operator's PodMonitors (the
 * database's exporters, the canary) and PrometheusRule; the CRDs (monitoring.coreos.com/v1) must already be
 * installed. With spec.kubernetes.grafanaDashboard, the dashboard ConfigMap for the Grafana sidecar, which needs no
 * CRD and serves a Prometheus run any other way as well.
 */
export class VectorMonitoring extends pulumi.ComponentResource {
  /** Undefined without spec.kubernetes.prometheusOperator, as are the two below. */
  public readonly podMonitor: k8s.apiextensions.CustomResource | undefined;
  public readonly canaryPodMonitor: k8s.apiextensions.CustomResource | undefined;
  public readonly prometheusRule: k8s.apiextensions.CustomResource | undefined;
  /** Undefined without spec.kubernetes.grafanaDashboard. */
  public readonly dashboard: k8s.core.v1.ConfigMap | undefined;

  constructor(name: string, args: VectorMonitoringArgs, opts?: pulumi.ComponentResourceOptions) {
    super("pgvector-stack:kubernetes:VectorMonitoring", name, {}, opts);
    const { rendered } = args;
    const { spec } = rendered;
    const instance = args.objectPrefix ?? name;
    const names = kubernetesNames(instance);
    const namespace = args.namespace ?? spec.kubernetes.namespace;
    const labels = objectLabels(instance, "database", spec.stack);
    const canaryLabels = objectLabels(instance, "canary", spec.stack);
    const scrapeInterval = args.scrapeInterval ?? "15s";

    const customResource = (role: string, kind: string, metadata: { name: string; labels: Labels; extraLabels?: Labels }, body: Record<string, unknown>) =>
      new k8s.apiextensions.CustomResource(
        `${name}-${role}`,
        {
          apiVersion: "monitoring.coreos.com/v1",
          kind,
          metadata: { labels: sortedRecord({ ...metadata.labels, ...metadata.extraLabels }), name: metadata.name, namespace },
          spec: body,
        },
        { parent: this },
      );

    if (spec.kubernetes.prometheusOperator) {
      this.podMonitor = customResource(
        "pod-monitor",
        "PodMonitor",
        { name: names.podMonitor, labels, extraLabels: args.podMonitorLabels },
        podMonitorSpec(selectorLabels(instance, "database"), spec.stack, scrapeInterval),
      );
      this.canaryPodMonitor = customResource(
        "canary-pod-monitor",
        "PodMonitor",
        { name: names.canary, labels: canaryLabels, extraLabels: args.podMonitorLabels },
        canaryPodMonitorSpec(selectorLabels(instance, "canary"), spec.stack, scrapeInterval),
      );
      this.prometheusRule = customResource(
        "prometheus-rule",
        "PrometheusRule",
        { name: names.prometheusRule, labels, extraLabels: args.ruleLabels },
        prometheusRuleSpec(rendered),
      );
    }

    if (spec.kubernetes.grafanaDashboard) {
      this.dashboard = new k8s.core.v1.ConfigMap(
        `${name}-dashboard`,
        { metadata: { labels: grafanaDashboardLabels(labels), name: names.grafanaDashboard, namespace }, data: grafanaDashboardData(rendered) },
        { parent: this },
      );
    }

    this.registerOutputs({
      podMonitor: this.podMonitor,
      canaryPodMonitor: this.canaryPodMonitor,
      prometheusRule: this.prometheusRule,
      dashboard: this.dashboard,
    });
  }
}
