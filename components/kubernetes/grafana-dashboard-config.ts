/**
 * The Grafana dashboard as a ConfigMap the Grafana sidecar (kiwigrid k8s-sidecar, as kube-prometheus-stack and the
 * Grafana chart run it) loads: the rendered grafana-dashboard.json under one key, and the label the sidecar watches.
 * Plain data in, plain data out.
 */
import type { Rendered } from "../../configs/rendered";
import { sortedRecord } from "./layout";

/** The file name Grafana sees; the sidecar writes each data key as a file of that name. */
export const grafanaDashboardKey = "pgvector-stack.json";

/**
 * The Grafana chart's sidecar loads ConfigMaps labelled `grafana_dashboard` (`sidecar.dashboards.label`; any value
 * unless `labelValue` is set), and kube-prometheus-stack labels its own dashboards `"1"`: this value matches both.
 * The sidecar searches Grafana's own namespace unless `sidecar.dashboards.searchNamespace` is ALL or names the
 * stack's.
 */
export const grafanaSidecarLabel = { grafana_dashboard: "1" } as const;

/** The ConfigMap's data: the rendered dashboard, byte for byte. */
export function grafanaDashboardData(rendered: Rendered): Record<string, string> {
  return { [grafanaDashboardKey]: rendered.files["grafana-dashboard.json"] };
}

/** The stack's object labels plus the sidecar's. Sorted keys. */
export function grafanaDashboardLabels(labels: Readonly<Record<string, string>>): Record<string, string> {
  return sortedRecord({ ...labels, ...grafanaSidecarLabel });
}
