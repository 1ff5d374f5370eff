/**
 * What TLS costs through PgBouncer, as `pgstack local perf --compare-tls` measures it (local/tls-cost.ts): the smoke
 * scenarios on the same table and at the same concurrency, once over plain-text connections to PgBouncer and once
 * over verify-full TLS, in alternating rounds; and the reconnect case, `pgbench -C` (a new connection, so a new TLS
 * handshake and SCRAM exchange, per transaction). The goal: steady-state throughput with TLS within 10 % of
 * plain text. Plain data and the verdict only; postdeploy/report.ts prints it.
 *
 * A leg's number is the median of its rounds: on a shared 2-core machine one round swings by several percent either
 * way, and the median ignores one lucky or unlucky round where the best-of would keep the lucky one.
 */
import type { ScenarioName } from "./smoke-judge";

/** The two ways a client reaches PgBouncer in the comparison. */
export type TlsLeg = "plain" | "tls";

/** The bar: with TLS, steady-state ops/s at least 90 % of plain text. */
export const tlsSteadyStateGoal = 0.9;

/** One measured run of one leg. */
export interface TlsLegRun {
  readonly opsPerSec: number;
  /** Null for pgbench, which reports an average only. */
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  readonly errors: number;
  /** pgbench -C: its "average connection time" (TCP connect, TLS handshake, SCRAM, startup), ms. */
  readonly connectionMs?: number;
}

/** One leg of one scenario over all its rounds. */
export interface TlsLegSummary {
  /** Median ops/s of the rounds (pgbench: tps including reconnection). */
  readonly opsPerSec: number;
  readonly bestOpsPerSec: number;
  /** Every round in the order run, so a reader sees the spread. */
  readonly rounds: readonly TlsLegRun[];
  /** Latency of the median round (the one whose ops/s is the median; the lower middle one for an even count). */
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  /** Summed over the rounds. */
  readonly errors: number;
  /** pgbench -C: the median of the rounds' average connection times, ms. */
  readonly connectionMs?: number;
}

export interface TlsCostRow {
  /** A smoke scenario (Node, steady state: connections opened once), or `reconnect` (pgbench -C). */
  readonly scenario: ScenarioName | "reconnect";
  readonly client: string;
  readonly plain: TlsLegSummary;
  readonly tls: TlsLegSummary;
  /** tls.opsPerSec / plain.opsPerSec, to three decimals. */
  readonly ratio: number;
  /** The goal applies to steady state; the reconnect case shows the handshake's cost and is not judged. */
  readonly steadyState: boolean;
  /** ratio ≥ tlsSteadyStateGoal and no errors on either leg; null where the goal does not apply. */
  readonly meetsGoal: boolean | null;
}

/**
 * What PgBouncer's SHOW CLIENTS said about one leg's connections (found by their application_name) while the leg was
 * connected: how many, and the distinct values of its `tls` column ("" = plain text, else e.g.
 * "TLSv1.3/TLS_AES_256_GCM_SHA384/ECDH=prime256v1").
 */
export interface TlsLegEvidence {
  readonly leg: TlsLeg;
  readonly client: string;
  readonly applicationName: string;
  readonly clients: number;
  readonly tls: readonly string[];
}

export interface TlsCostReport {
  /** Rounds per leg and scenario; each round runs both legs, the first one alternating. */
  readonly rounds: number;
  /** Measured seconds per run. */
  readonly seconds: number;
  readonly concurrency: number;
  /** How the TLS leg connects (the plain leg: sslmode=disable). */
  readonly tlsMode: string;
  readonly rows: readonly TlsCostRow[];
  readonly evidence: readonly TlsLegEvidence[];
  readonly goal: number;
  /** Every steady-state row meets the goal. */
  readonly meetsGoal: boolean;
  /** The pgbench command line of the reconnect case (no password in it), when it ran. */
  readonly reconnectCommand?: string;
}

/** The median of `values` (the mean of the two middle ones for an even count); NaN for none. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const round1 = (v: number) => Math.round(v * 10) / 10;

/** One leg's rounds summed up: the median ops/s, the best, and the latency of the median round. */
export function legSummary(runs: readonly TlsLegRun[]): TlsLegSummary {
  if (runs.length === 0) throw new Error("a leg needs at least one round");
  const byOps = [...runs].sort((a, b) => a.opsPerSec - b.opsPerSec);
  const middle = byOps[Math.floor((byOps.length - 1) / 2)];
  const connections = runs.map((r) => r.connectionMs).filter((c): c is number => c !== undefined);
  return {
    opsPerSec: round1(median(runs.map((r) => r.opsPerSec))),
    bestOpsPerSec: byOps[byOps.length - 1].opsPerSec,
    rounds: runs,
    p50Ms: middle.p50Ms,
    p99Ms: middle.p99Ms,
    errors: runs.reduce((sum, r) => sum + r.errors, 0),
    ...(connections.length > 0 ? { connectionMs: Math.round(median(connections) * 1000) / 1000 } : {}),
  };
}

/** A row of the comparison with its ratio and, for steady state, the verdict. */
export function tlsCostRow(input: { scenario: TlsCostRow["scenario"]; client: string; plain: readonly TlsLegRun[]; tls: readonly TlsLegRun[] }): TlsCostRow {
  const plain = legSummary(input.plain);
  const tls = legSummary(input.tls);
  const ratio = plain.opsPerSec > 0 ? Math.round((tls.opsPerSec / plain.opsPerSec) * 1000) / 1000 : 0;
  const steadyState = input.scenario !== "reconnect";
  return {
    scenario: input.scenario,
    client: input.client,
    plain,
    tls,
    ratio,
    steadyState,
    meetsGoal: steadyState ? ratio >= tlsSteadyStateGoal && plain.errors === 0 && tls.errors === 0 : null,
  };
}

/**
 * Why a leg is not what it claims, from what SHOW CLIENTS said: none of its connections seen, a plain-text leg with a
 * TLS connection, or a TLS leg with a plain-text one. Empty when the leg is what it says.
 */
export function legEvidenceProblems(e: TlsLegEvidence): string[] {
  const what = `the ${e.leg === "plain" ? "plain-text" : "TLS"} leg (${e.client}, application_name ${e.applicationName})`;
  if (e.clients === 0) return [`${what}: PgBouncer's SHOW CLIENTS listed none of its connections`];
  if (e.leg === "plain" && e.tls.some((t) => t !== "")) return [`${what}: PgBouncer's SHOW CLIENTS shows TLS on its connections (${e.tls.filter((t) => t !== "").join(", ")})`];
  if (e.leg === "tls" && e.tls.some((t) => t === "")) return [`${what}: PgBouncer's SHOW CLIENTS shows connections without TLS`];
  return [];
}
