import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { Rendered } from "../../configs/rendered";
import { kubernetesNames, objectLabels, selectorLabels, sortedRecord } from "./layout";
import { podMonitorSpec, prometheusRuleSpec } from "./monitoring-spec";
import type { Labels } from "./network";

export interface VectorMonitoringArgs {
  /** The rendered stack: alert rule groups, stack name, namespace. Required; no default. */
  readonly rendered: Rendered;
  /** Prefix of the object names and the `app.kubernetes.io/instance` of the database pod to scrape. Defaults to the component name. */
  readonly objectPrefix?: string;
  /** Namespace of the objects (the database's). Defaults to rendered.spec.kubernetes.namespace. */
  readonly namespace?: pulumi.Input<string>;
  /** Extra labels on the PodMonitor, for a Prometheus whose podMonitorSelector asks for them (e.g. `release`). Defaults to none. */
  readonly podMonitorLabels?: Labels;
  /** Extra labels on the PrometheusRule, for a Prometheus whose ruleSelector asks for them. Defaults to none. */
  readonly ruleLabels?: Labels;
  /** How often both exporters are scraped. Defaults to `15s` (the rules' shortest `for` is 1m: four scrapes). */
  readonly scrapeInterval?: string;
}

/**
 * The Prometheus Operator's PodMonitor and PrometheusRule for one stack. The CRDs (monitoring.coreos.com/v1) must
 * already be installed; VectorStack creates this component only when spec.kubernetes.prometheusOperator is true.
 */
export class VectorMonitoring extends pulumi.ComponentResource {
  public readonly podMonitor: k8s.apiextensions.CustomResource;
  public readonly prometheusRule: k8s.apiextensions.CustomResource;

  constructor(name: string, args: VectorMonitoringArgs, opts?: pulumi.ComponentResourceOptions) {
    super("pgvector-stack:kubernetes:VectorMonitoring", name, {}, opts);
    const { rendered } = args;
    const { spec } = rendered;
    const instance = args.objectPrefix ?? name;
    const names = kubernetesNames(instance);
    const namespace = args.namespace ?? spec.kubernetes.namespace;
    const labels = objectLabels(instance, "database", spec.stack);

    this.podMonitor = new k8s.apiextensions.CustomResource(
      `${name}-pod-monitor`,
      {
        apiVersion: "monitoring.coreos.com/v1",
        kind: "PodMonitor",
        metadata: { labels: sortedRecord({ ...labels, ...args.podMonitorLabels }), name: names.podMonitor, namespace },
        spec: podMonitorSpec(selectorLabels(instance, "database"), spec.stack, args.scrapeInterval ?? "15s"),
      },
      { parent: this },
    );
    this.prometheusRule = new k8s.apiextensions.CustomResource(
      `${name}-prometheus-rule`,
      {
        apiVersion: "monitoring.coreos.com/v1",
        kind: "PrometheusRule",
        metadata: { labels: sortedRecord({ ...labels, ...args.ruleLabels }), name: names.prometheusRule, namespace },
        spec: prometheusRuleSpec(rendered),
      },
      { parent: this },
    );
    // The Grafana dashboard ConfigMap (spec.kubernetes.grafanaDashboard) belongs here, as a third child
    // `${name}-dashboard` labelled for the Grafana sidecar, built from a pure function in its own file.

    this.registerOutputs({ podMonitor: this.podMonitor, prometheusRule: this.prometheusRule });
  }
}
