/**
 * The canary's Prometheus metrics (prom-client), exactly the contract of configs/alert-sources.ts plus
 * configs/canary.ts, in a registry of its own. Every labelled counter and histogram the rules read is created at 0
 * when the canary starts, so the first failure or the first slow query is a step in an existing series that `rate()`
 * sees; the certificate gauge has no meaningful zero and appears with the first certificate read.
 * Process metrics (`process_*`, `nodejs_*`) come with it: `process_start_time_seconds` tells a restart.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import {
  canaryExtraMetrics,
  canaryFailureReasons,
  canaryMetricHelp,
  canaryMetrics,
  canaryVectorScenarios,
  type CanaryFailureReason,
  type CanaryScenario,
  type CanaryTarget,
} from "../configs/canary";

export class CanaryMetrics {
  readonly registry = new Registry();
  private readonly duration: Histogram<"scenario">;
  private readonly attempts: Counter<"target">;
  private readonly failures: Counter<"target">;
  private readonly queryFailures: Counter<"scenario" | "reason">;
  private readonly certificateNotAfter: Gauge<"target">;

  constructor(targets: readonly CanaryTarget[]) {
    const registers = [this.registry];
    const d = canaryMetrics.queryDuration;
    this.duration = new Histogram({ name: d.name, help: canaryMetricHelp[d.name], labelNames: [...d.labels], buckets: [...d.buckets], registers });
    const a = canaryMetrics.connectionAttempts;
    this.attempts = new Counter({ name: a.name, help: canaryMetricHelp[a.name], labelNames: [...a.labels], registers });
    const f = canaryMetrics.connectionFailures;
    this.failures = new Counter({ name: f.name, help: canaryMetricHelp[f.name], labelNames: [...f.labels], registers });
    const q = canaryExtraMetrics.queryFailures;
    this.queryFailures = new Counter({ name: q.name, help: canaryMetricHelp[q.name], labelNames: [...q.labels], registers });
    // Not created at 0 like the counters: 0 would be a certificate that expired in 1970, and the expiry alert would
    // fire for a target whose certificate was never read. The series appears with the first handshake.
    const n = canaryMetrics.certificateNotAfter;
    this.certificateNotAfter = new Gauge({ name: n.name, help: canaryMetricHelp[n.name], labelNames: [...n.labels], registers });
    for (const target of targets) {
      this.attempts.inc({ target }, 0);
      this.failures.inc({ target }, 0);
    }
    for (const scenario of canaryVectorScenarios) {
      this.duration.zero({ scenario });
      for (const reason of canaryFailureReasons) this.queryFailures.inc({ scenario, reason }, 0);
    }
    collectDefaultMetrics({ register: this.registry });
  }

  connectionAttempt(target: CanaryTarget, ok: boolean): void {
    this.attempts.inc({ target });
    if (!ok) this.failures.inc({ target });
  }

  /** The notAfter of the certificate `target` presented, in whole Unix seconds (X.509 dates have no fractions). */
  certificateSeen(target: CanaryTarget, notAfter: Date): void {
    this.certificateNotAfter.set({ target }, Math.floor(notAfter.getTime() / 1000));
  }

  observe(scenario: CanaryScenario, seconds: number): void {
    this.duration.observe({ scenario }, seconds);
  }

  queryFailed(scenario: CanaryScenario, reason: CanaryFailureReason): void {
    this.queryFailures.inc({ scenario, reason });
  }

  /** The Prometheus text exposition. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
