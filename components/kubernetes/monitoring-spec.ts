/**
 * What the Prometheus Operator needs to watch one stack: a PodMonitor for the database pod's four metric sources,
 * one for the canary, and a PrometheusRule with the rendered alert rules. Plain data in, plain data out.
 */
import type { Rendered } from "../../configs/rendered";
import { canaryJob, mtailJob, nodeJob, pgbouncerJob, postgresJob } from "../../configs/scrape";
import { portNames } from "./layout";
import type { Labels } from "./network";

/** A Prometheus relabeling that sets `label` to a fixed value on every target of the endpoint. */
function fixedLabel(label: string, value: string): Record<string, string> {
  return { action: "replace", replacement: value, targetLabel: label };
}

/**
 * Scrape every metrics port of the database pod. The alert rules select `job="postgres"`, `job="pgbouncer"`,
 * `job="node"`, `job="mtail"` and `stack="<stack>"` (configs/scrape.ts, configs/alerts.ts), so each endpoint sets
 * both; without them the operator's own job name (`<namespace>/<podmonitor>`) would leave every rule blind and
 * ScrapeJobAbsent firing.
 */
export function podMonitorSpec(selector: Labels, stack: string, scrapeInterval: string): Record<string, unknown> {
  // The node the pod runs on, as label `node`: the host alerts' instance is the pod's IP, and the runbooks' first
  // step on the host needs the node's name.
  const endpoint = (port: string, job: string) => {
    const e = metricsEndpoint(port, job, stack, scrapeInterval);
    return { ...e, relabelings: [...(e.relabelings as object[]), nodeNameLabel] };
  };
  return {
    podMetricsEndpoints: [
      endpoint(portNames.postgresMetrics, postgresJob),
      endpoint(portNames.pgbouncerMetrics, pgbouncerJob),
      endpoint(portNames.nodeMetrics, nodeJob),
      endpoint(portNames.mtailMetrics, mtailJob),
    ],
    selector: { matchLabels: { ...selector } },
  };
}

/**
 * Scrape the canary pod as job `canary` with the stack label, which the canary rules and their `up`/`absent` guards
 * select on. Its own PodMonitor: the canary's pod has other labels than the database's, and the database
 * PodMonitor's selector stays as it was.
 */
export function canaryPodMonitorSpec(selector: Labels, stack: string, scrapeInterval: string): Record<string, unknown> {
  return {
    podMetricsEndpoints: [metricsEndpoint(portNames.canaryMetrics, canaryJob, stack, scrapeInterval)],
    selector: { matchLabels: { ...selector } },
  };
}

const nodeNameLabel = { action: "replace", sourceLabels: ["__meta_kubernetes_pod_node_name"], targetLabel: "node" };

function metricsEndpoint(port: string, job: string, stack: string, scrapeInterval: string): Record<string, unknown> {
  return { interval: scrapeInterval, path: "/metrics", port, relabelings: [fixedLabel("job", job), fixedLabel("stack", stack)] };
}

/** The rule groups as rendered: the very object alert-rules.yaml serializes, so both say the same. */
export function prometheusRuleSpec(rendered: Rendered): Record<string, unknown> {
  return JSON.parse(JSON.stringify(rendered.alertRuleGroups)) as Record<string, unknown>;
}
