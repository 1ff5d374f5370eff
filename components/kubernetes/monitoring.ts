import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { promDuration } from "../../configs/placement";
import type { Rendered } from "../../configs/rendered";
import { grafanaDashboardData, grafanaDashboardLabels } from "./grafana-dashboard-config";
import { canaryScrapeJobs, databaseScrapeJobs, kubernetesNames, objectLabels, selectorLabels, sortedRecord } from "./layout";
import { canaryPodMonitorSpec, podMonitorSpec, prometheusRuleSpec } from "./monitoring-spec";
import type { Labels } from "./network";

export interface VectorMonitoringArgs {
  /**
   * The rendered stack: scrape jobs and interval, alert rule groups, dashboard, stack name, namespace, which objects to
   * create, and the extra labels for the cluster's Prometheus (spec.kubernetes.monitoringLabels). Required; no default.
   */
  readonly rendered: Rendered;
  /** Prefix of the object names and the `app.kubernetes.io/instance` of the pods to scrape. Defaults to the component name. */
  readonly objectPrefix?: string;
  /** Namespace of the objects (the database's). Defaults to rendered.spec.kubernetes.namespace. */
  readonly namespace?: pulumi.Input<string>;
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
    const scrape = { stack: spec.stack, interval: promDuration(rendered.placement.intervals.scrapeMs) };
    // A Prometheus selects PodMonitors and PrometheusRules by label (kube-prometheus-stack: `release: <its release>`):
    // these go on exactly those three objects, and nowhere else.
    const selectedBy = spec.kubernetes.monitoringLabels;

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
        { name: names.podMonitor, labels, extraLabels: selectedBy },
        podMonitorSpec(selectorLabels(instance, "database"), databaseScrapeJobs(rendered), scrape),
      );
      this.canaryPodMonitor = customResource(
        "canary-pod-monitor",
        "PodMonitor",
        { name: names.canary, labels: canaryLabels, extraLabels: selectedBy },
        canaryPodMonitorSpec(selectorLabels(instance, "canary"), canaryScrapeJobs(rendered), scrape),
      );
      this.prometheusRule = customResource(
        "prometheus-rule",
        "PrometheusRule",
        { name: names.prometheusRule, labels, extraLabels: selectedBy },
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
