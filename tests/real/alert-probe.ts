/**
 * Reading alerts from a real Prometheus for the alert-firing tests: wait until an alert is quiet, wait until it fires
 * because of a cause that began at a given time, and check the labels and annotations every rendered alert carries.
 */
import { expect } from "vitest";
import { httpGet } from "../../local/runtime";

/** The alert tests open their sessions the way the product does (error listener, application_name, masked failures). */
export { connect } from "../../pgclient/connect";

export interface Alert {
  readonly labels: Record<string, string>;
  readonly annotations: Record<string, string>;
  readonly state: "pending" | "firing";
  readonly activeAt: string;
  readonly value: string;
}

export type Match = (labels: Record<string, string>) => boolean;

export const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function describeAlerts(list: readonly Alert[]): string {
  return list.map((a) => `${a.labels.alertname}/${a.labels.severity} ${a.state} since ${a.activeAt} ${JSON.stringify(a.labels)}`).join("\n  ") || "none";
}

export class AlertProbe {
  /** One line per alert that fired: how long after its cause. */
  readonly timings: string[] = [];

  constructor(
    private readonly prometheusUrl: () => string,
    private readonly stack: string,
  ) {}

  async activeAlerts(): Promise<Alert[]> {
    const response = await httpGet(`${this.prometheusUrl()}/api/v1/alerts`);
    return JSON.parse(response.body).data.alerts as Alert[];
  }

  async query(expr: string): Promise<string> {
    const response = await httpGet(`${this.prometheusUrl()}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const result = JSON.parse(response.body).data.result as { metric: Record<string, string>; value: [number, string] }[];
    return result.map((r) => `${JSON.stringify(r.metric)} ${r.value[1]}`).join("; ") || "(no series)";
  }

  /** The value of a query that yields one series, or undefined when it yields none. */
  async scalar(expr: string): Promise<number | undefined> {
    const response = await httpGet(`${this.prometheusUrl()}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const result = JSON.parse(response.body).data.result as { value: [number, string] }[];
    return result.length === 0 ? undefined : Number(result[0].value[1]);
  }

  /** Waits until no alert `alertname` matching `match` is pending or firing (left over from an earlier cause). */
  async waitUntilQuiet(alertname: string, match: Match = () => true, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const active = (await this.activeAlerts()).filter((a) => a.labels.alertname === alertname && match(a.labels));
      if (active.length === 0) return;
      if (Date.now() > deadline) throw new Error(`${alertname} is still active ${timeoutMs / 1000} s after its earlier cause:\n  ${describeAlerts(active)}`);
      await delay(500);
    }
  }

  /**
   * Polls until an alert `alertname` matching `match` fires that became active at or after `since` (ms): one an
   * earlier cause left firing does not count. On timeout the error shows every active alert and the `diagnose` queries.
   */
  async waitForFiring(alertname: string, since: number, match: Match, diagnose: readonly string[], timeoutMs = 90_000): Promise<Alert> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const all = await this.activeAlerts();
      const firing = all.find((a) => a.labels.alertname === alertname && a.state === "firing" && match(a.labels) && Date.parse(a.activeAt) >= since);
      if (firing !== undefined) {
        const severity = firing.labels.severity ? `/${firing.labels.severity}` : "";
        this.timings.push(`${alertname}${severity}: firing ${((Date.now() - since) / 1000).toFixed(1)} s after its cause`);
        return firing;
      }
      if (Date.now() > deadline) {
        const values = await Promise.all(diagnose.map(async (q) => `${q} = ${await this.query(q).catch((e: Error) => e.message)}`));
        throw new Error(`${alertname} did not fire within ${timeoutMs / 1000} s; active alerts:\n  ${describeAlerts(all)}\n${values.join("\n")}`);
      }
      await delay(500);
    }
  }

  /** The labels and annotations every rendered alert carries (configs/alerts.ts). */
  expectWellFormed(alert: Alert, severity: "warning" | "critical"): void {
    expect(alert.labels).toMatchObject({ severity, stack: this.stack });
    expect(alert.annotations.summary).toMatch(/\S/);
    expect(alert.annotations.description).toMatch(/\S/);
    expect(alert.annotations.runbook_url).toMatch(new RegExp(`^https?://\\S+#${alert.labels.alertname.toLowerCase()}$`));
    // Templates were expanded by Prometheus, not shipped raw.
    expect(`${alert.annotations.summary} ${alert.annotations.description}`).not.toContain("{{");
  }
}
