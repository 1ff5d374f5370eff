/**
 * What the Prometheus Operator needs to watch one stack: a PodMonitor for the database pod's metric sources, one for
 * the canary, and a PrometheusRule with the rendered alert rules. The endpoints are the rendered scrape jobs, each on
 * the named container port of its source. Plain data in, plain data out.
 */
import type { Rendered, ScrapeJob } from "../../configs/rendered";
import { metricsPortNames } from "./layout";
import type { Labels } from "./network";

/** A Prometheus relabeling that sets `label` to a fixed value on every target of the endpoint. */
function fixedLabel(label: string, value: string): Record<string, string> {
  return { action: "replace", replacement: value, targetLabel: label };
}

/** How often and under which labels every endpoint is scraped. */
export interface ScrapeSettings {
  /** The `stack` label the alert rules select on. */
  readonly stack: string;
  /** Prometheus duration (placement.intervals.scrapeMs as rendered). */
  readonly interval: string;
}

/**
 * Scrape every metrics port of the database pod, one endpoint per rendered scrape job. The alert rules select
 * `job="<job>"` and `stack="<stack>"` (configs/scrape.ts, configs/alerts.ts), so each endpoint sets both; without them
 * the operator's own job name (`<namespace>/<podmonitor>`) would leave every rule blind and ScrapeJobAbsent firing.
 */
export function podMonitorSpec(selector: Labels, jobs: readonly ScrapeJob[], scrape: ScrapeSettings): Record<string, unknown> {
  // The node the pod runs on, as label `node`: the host alerts' instance is the pod's IP, and the runbooks' first
  // step on the host needs the node's name.
  const endpoint = (job: ScrapeJob) => {
    const e = metricsEndpoint(job, scrape);
    return { ...e, relabelings: [...(e.relabelings as object[]), nodeNameLabel] };
  };
  return {
    podMetricsEndpoints: jobs.map(endpoint),
    selector: { matchLabels: { ...selector } },
  };
}

/**
 * Scrape the canary pod as its rendered job (`canary`) with the stack label, which the canary rules and their
 * `up`/`absent` guards select on. Its own PodMonitor: the canary's pod has other labels than the database's, and the
 * database PodMonitor's selector stays as it was.
 */
export function canaryPodMonitorSpec(selector: Labels, jobs: readonly ScrapeJob[], scrape: ScrapeSettings): Record<string, unknown> {
  return {
    podMetricsEndpoints: jobs.map((job) => metricsEndpoint(job, scrape)),
    selector: { matchLabels: { ...selector } },
  };
}

const nodeNameLabel = { action: "replace", sourceLabels: ["__meta_kubernetes_pod_node_name"], targetLabel: "node" };

function metricsEndpoint(job: ScrapeJob, scrape: ScrapeSettings): Record<string, unknown> {
  return {
    interval: scrape.interval,
    path: "/metrics",
    port: metricsPortNames[job.source],
    relabelings: [fixedLabel("job", job.job), fixedLabel("stack", scrape.stack)],
  };
}

/** The rule groups as rendered: the very object alert-rules.yaml serializes, so both say the same. */
export function prometheusRuleSpec(rendered: Rendered): Record<string, unknown> {
  return JSON.parse(JSON.stringify(rendered.alertRuleGroups)) as Record<string, unknown>;
}
