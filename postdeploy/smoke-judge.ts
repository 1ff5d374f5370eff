/**
 * Judging smoke results: recall@k against exact search, and pass/fail of a scenario against the spec's targets.
 * Pure functions, table-tested.
 */
import type { BenchmarkTargets } from "../configs/benchmark";

export type ScenarioName = "insert" | "search" | "hybrid" | "mixed" | "sustained";

/** The guide's order (db-tuning-guide "Load Test Scenarios"). */
export const scenarioNames: readonly ScenarioName[] = ["insert", "search", "hybrid", "mixed", "sustained"];

export interface ScenarioTarget {
  readonly opsPerSec: number;
  readonly p99Ms: number;
}

/**
 * The guide gives a throughput per scenario; sustained load is the mixed workload held longer, so it is held to the
 * mixed target. The P99 baseline applies to every scenario.
 */
export function targetFor(name: ScenarioName, targets: BenchmarkTargets): ScenarioTarget {
  const opsPerSec = {
    insert: targets.insertOpsPerSec,
    search: targets.searchOpsPerSec,
    hybrid: targets.hybridOpsPerSec,
    mixed: targets.mixedOpsPerSec,
    sustained: targets.mixedOpsPerSec,
  }[name];
  return { opsPerSec, p99Ms: targets.p99Ms };
}

export interface Neighbour {
  readonly id: string;
  readonly distance: number;
}

/**
 * recall@k as ann-benchmarks counts it: the share of the k returned neighbours whose distance is within the true
 * k-th distance (+ epsilon). Counting by distance, not id, keeps exact ties (duplicate vectors) from counting as
 * misses. When the truth has fewer than k rows (a filter that matches few), the denominator is what exists.
 */
export function recallAtK(found: readonly Neighbour[], truth: readonly Neighbour[], k: number, epsilon = 1e-6): number {
  const expected = Math.min(k, truth.length);
  if (expected === 0) return 1;
  const threshold = truth[expected - 1].distance + epsilon;
  let hits = 0;
  for (const n of found.slice(0, k)) if (n.distance <= threshold) hits++;
  return Math.min(hits, expected) / expected;
}

export function meanRecall(values: readonly number[]): number {
  if (values.length === 0) return 0;
  return values.reduce((a, b) => a + b, 0) / values.length;
}

export interface Measured {
  readonly opsPerSec: number;
  readonly p99Ms: number;
  readonly errors: number;
  /** Present for search and hybrid: does their plan use the HNSW index? */
  readonly usesIndex?: boolean;
  readonly indexName?: string;
}

export interface Judgement {
  readonly pass: boolean;
  /** Why it failed, one reason a line, for people. Empty when it passed. */
  readonly failures: string[];
}

/** Pass = ops/s ≥ target and p99 ≤ target, with no errors and — for queries — a plan that uses the HNSW index. */
export function judgeScenario(m: Measured, target: ScenarioTarget): Judgement {
  const failures: string[] = [];
  if (!(m.opsPerSec >= target.opsPerSec)) failures.push(`${fmt(m.opsPerSec)} ops/s is below the target ${fmt(target.opsPerSec)} ops/s`);
  if (!(m.p99Ms <= target.p99Ms)) failures.push(`p99 ${fmt(m.p99Ms)} ms is above the target ${fmt(target.p99Ms)} ms`);
  if (m.errors > 0) failures.push(`${m.errors} operation${m.errors === 1 ? "" : "s"} failed`);
  if (m.usesIndex === false) failures.push(`the plan does not use the HNSW index ${m.indexName ?? ""}`.trimEnd());
  return { pass: failures.length === 0, failures };
}

function fmt(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}
