/**
 * The local perf cluster the alert-firing tests run: the perf stack at 1 GiB with the test's `pgbouncer`, `postgres`
 * and `alerts` overrides (short `for` durations), Prometheus scraping every 2 s and evaluating every second, the canary
 * running every second; its own state directory, and a stop that ends whatever a failed stop left.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { clusterSpec, parseClusterFlags } from "../../cli/local";
import { readStackConfig } from "../../cli/stack-file";
import type { MonitoringIntervals } from "../../configs/placement";
import type { StackSpec } from "../../configs/stack-spec";
import { LocalCluster } from "../../local/cluster";
import type { HugePagesPool } from "../../local/hugepages";
import { teardownFromState } from "../../local/teardown";

const monitoring: MonitoringIntervals = { scrapeMs: 2_000, evaluationMs: 1_000, canaryMs: 1_000 };

export interface AlertClusterOptions {
  /** Replaces the perf stack's sections of the same name (`postgres` is merged into the stack's). */
  readonly pgbouncer: Readonly<Record<string, unknown>>;
  readonly alerts: Readonly<Record<string, unknown>>;
  readonly postgres?: Readonly<Record<string, unknown>>;
  /** The stack's `tls` section (certificate validity, renewBefore). Defaults to the perf stack's. */
  readonly tls?: Readonly<Record<string, unknown>>;
  /** A fake kernel huge page pool, given the state directory for its lock file. Defaults to the kernel's. */
  readonly hugePagesPool?: (stateRoot: string) => HugePagesPool;
}

export interface AlertCluster {
  readonly cluster: LocalCluster;
  /** The stack the cluster runs; what it rendered for its placement is `cluster.rendered`, once it is up. */
  readonly spec: StackSpec;
  /** Date.now() when the test file began. */
  readonly started: number;
  /** Stops the cluster, ends what a failed stop left, removes the state directory and prints `timings`. */
  stop(timings: readonly string[]): Promise<void>;
}

export function alertCluster(label: string, options: AlertClusterOptions): AlertCluster {
  const started = Date.now();
  const name = `${label}-${process.pid}`;
  const stateRoot = fs.mkdtempSync(path.join(os.tmpdir(), `pgstack-${label}-`));
  const perf = readStackConfig("perf");
  const config = {
    ...perf,
    postgres: { ...(perf.postgres as object), ...options.postgres },
    pgbouncer: options.pgbouncer,
    alerts: options.alerts,
    ...(options.tls === undefined ? {} : { tls: options.tls }),
  };
  const { spec } = clusterSpec(parseClusterFlags(["--memory", "1Gi"]).flags, {}, config);
  const cluster = new LocalCluster({ name, spec, stateRoot, monitoring, hugePagesPool: options.hugePagesPool?.(stateRoot) });
  return {
    cluster,
    spec,
    started,
    async stop(timings) {
      try {
        await cluster.stop();
      } finally {
        // If the stop itself failed, the state file says what is left; end exactly that.
        await teardownFromState(stateRoot, name).catch(() => undefined);
        fs.rmSync(stateRoot, { recursive: true, force: true });
        console.log(`${label}: ${((Date.now() - started) / 1000).toFixed(1)} s in all\n  ${timings.join("\n  ")}`);
      }
    },
  };
}
