/**
 * The Grafana dashboard as a ConfigMap the Grafana sidecar (kiwigrid k8s-sidecar, as kube-prometheus-stack and the
 * Grafana chart run it) loads: the rendered grafana-dashboard.json under one key, and the label the sidecar watches.
 * Plain data in, plain data out.
 */
import type { Rendered } from "../../configs/rendered";
import { sortedRecord } from "./layout";

/**
 * The file name Grafana sees: the sidecar writes each data key as a file of that name into one folder, whichever
 * namespace the ConfigMap is in (unless the sidecar runs with UNIQUE_FILENAMES, off by default), so two stacks'
 * dashboards under the same key would overwrite each other, and deleting one would delete both (kiwigrid/k8s-sidecar
 * #72). Per stack, as the dashboard's uid and title are. Stack names are valid key characters
 * (configs/spec.ts: letters, digits, _ . -).
 */
export function grafanaDashboardKey(stack: string): string {
  return `pgvector-stack-${stack}.json`;
}

/**
 * The Grafana chart's sidecar loads ConfigMaps labelled `grafana_dashboard` (`sidecar.dashboards.label`; any value
 * unless `labelValue` is set), and kube-prometheus-stack labels its own dashboards `"1"`: this value matches both.
 * The sidecar searches Grafana's own namespace unless `sidecar.dashboards.searchNamespace` is ALL or names the
 * stack's.
 */
export const grafanaSidecarLabel = { grafana_dashboard: "1" } as const;

/** The ConfigMap's data: the stack's rendered dashboard (its own uid and title), byte for byte. */
export function grafanaDashboardData(rendered: Rendered): Record<string, string> {
  return { [grafanaDashboardKey(rendered.spec.stack)]: rendered.files["grafana-dashboard.json"] };
}

/** The stack's object labels plus the sidecar's. Sorted keys. */
export function grafanaDashboardLabels(labels: Readonly<Record<string, string>>): Record<string, string> {
  return sortedRecord({ ...labels, ...grafanaSidecarLabel });
}
