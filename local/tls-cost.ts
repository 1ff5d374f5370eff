/**
 * `pgstack local perf --compare-tls`: what TLS costs through PgBouncer, side by side in one run. The perf cluster's
 * PgBouncer is started with client_tls_sslmode = allow for it (configs/placement.ts `clientTls`), so the same
 * PgBouncer, PostgreSQL (hostssl only, reached by PgBouncer over verify-full TLS either way), table and concurrency
 * serve both legs; only the client's leg to PgBouncer differs:
 *  - plain: sslmode=disable, no TLS at all;
 *  - tls: the cluster's own URL, sslmode=verify-full against its CA.
 *
 * Steady state: two smoke sessions (postdeploy/smoke.ts, the runners the benchmark itself uses, generated binary
 * vectors as an application sends them), one per leg, each holding its `concurrency` connections for the whole
 * comparison; search, hybrid, insert and mixed each run in rounds, each round both legs one after the other, the
 * first leg alternating (plain-tls, tls-plain, …) so neither always runs on the warmer or the more loaded server.
 * Reconnect: `pgbench -C` (local/pgbench.ts), a new connection per `SELECT 1`, so each transaction pays TCP, the TLS
 * handshake and SCRAM; alternating the same way.
 *
 * Each leg is checked to be what it claims from PgBouncer's side: SHOW CLIENTS, whose `tls` column is empty for a
 * plain-text client, lists the leg's connections by application_name; a leg that is not what it says fails the run
 * rather than report a number under the wrong name.
 */
import type { BenchmarkSpec } from "../configs/benchmark";
import type { IndexPlanEntry } from "../configs/hnsw";
import { silentProgress, type Progress } from "../configs/progress";
import type { Client } from "pg";
import { connect } from "../pgclient/connect";
import { SmokeSession, type ScenarioName } from "../postdeploy/smoke";
import {
  legEvidenceProblems,
  tlsCostRow,
  tlsSteadyStateGoal,
  type TlsCostReport,
  type TlsCostRow,
  type TlsLeg,
  type TlsLegEvidence,
  type TlsLegRun,
} from "../postdeploy/tls-cost";
import { runPgbenchReconnect, type PgbenchRun } from "./pgbench";
import type { Runtime } from "./runtime";

/** The steady-state scenarios the issue names, in its order. */
export const tlsCostScenarios: readonly ScenarioName[] = ["search", "hybrid", "insert", "mixed"];

/** How SHOW CLIENTS tells the legs apart. */
export const legApplicationNames = {
  node: { plain: "pgstack-tls-cost-plain", tls: "pgstack-tls-cost-tls" },
  pgbench: { plain: "pgstack-tls-cost-pgbench-plain", tls: "pgstack-tls-cost-pgbench-tls" },
} as const satisfies Record<string, Record<TlsLeg, string>>;

const nodeClient = "Node (smoke runners)";
const reconnectClient = "pgbench -C (SELECT 1)";

export interface TlsCostOptions {
  readonly runtime: Runtime;
  /** Through PgBouncer with sslmode=verify-full (the cluster's pooled URL); its PgBouncer must admit plain text too. */
  readonly pooledUrl: string;
  /** Straight to PostgreSQL: the sessions' DDL, as in the smoke benchmark. */
  readonly directUrl: string;
  /** PgBouncer's admin console (database pgbouncer) as an admin or stats user, for SHOW CLIENTS. */
  readonly consoleUrl: string;
  /** The table benchmarked (created and loaded already: the perf run did both). */
  readonly plan: IndexPlanEntry;
  readonly spec: BenchmarkSpec;
  /** Rounds per leg and scenario. */
  readonly rounds: number;
  /** Measured seconds per run. Defaults to spec.durationSeconds. */
  readonly seconds?: number;
  /** Defaults to tlsCostScenarios. */
  readonly scenarios?: readonly ScenarioName[];
  /** Defaults to true: the pgbench -C reconnect case after the steady-state scenarios. */
  readonly reconnect?: boolean;
  readonly progress?: Progress;
}

/**
 * The pooled URL as a leg connects: plain text (sslmode=disable, no CA) or as given, which must verify fully; with the
 * leg's application_name, which node-postgres takes from the URL over its own default.
 */
export function legUrl(pooledUrl: string, leg: TlsLeg, applicationName: string): string {
  const url = new URL(pooledUrl);
  if (leg === "plain") {
    url.searchParams.delete("sslrootcert");
    url.searchParams.set("sslmode", "disable");
  } else if (url.searchParams.get("sslmode") !== "verify-full" || !url.searchParams.get("sslrootcert")) {
    throw new Error("the TLS leg needs the pooled URL with sslmode=verify-full and its sslrootcert, as the cluster hands it out");
  }
  url.searchParams.set("application_name", applicationName);
  return url.toString();
}

interface ListedClient {
  readonly applicationName: string;
  /** SHOW CLIENTS' `tls` column: "" for plain text. */
  readonly tls: string;
}

/** PgBouncer's clients as SHOW CLIENTS lists them (admin console, simple query protocol). */
async function listClients(admin: Client): Promise<ListedClient[]> {
  const rows = await admin.query<{ application_name: string | null; tls: string | null }>("SHOW CLIENTS");
  return rows.rows.map((r) => ({ applicationName: r.application_name ?? "", tls: r.tls ?? "" }));
}

async function showClients(consoleUrl: string): Promise<ListedClient[]> {
  const admin = await connect(consoleUrl, "pgstack-tls-cost-console");
  try {
    return await listClients(admin);
  } finally {
    await admin.end().catch(() => undefined);
  }
}

/**
 * SHOW CLIENTS every `everyMs` on one admin connection until `stop()`. pgbench -C's clients are listed only between
 * their login (SHOW CLIENTS shows no client still logging in) and their one SELECT, a small part of each
 * connection's life, so a single look can miss all of them; a hundred looks do not.
 */
async function watchClients(consoleUrl: string, witness: LegWitness, everyMs = 100): Promise<{ stop(): Promise<void> }> {
  const admin = await connect(consoleUrl, "pgstack-tls-cost-console");
  let stopped = false;
  let failure: unknown;
  const loop = (async () => {
    while (!stopped) {
      try {
        witness.record(await listClients(admin));
      } catch (error) {
        failure = error;
        return;
      }
      await delay(everyMs);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      await admin.end().catch(() => undefined);
      if (failure !== undefined) throw failure;
      witness.check();
    },
  };
}

/** What SHOW CLIENTS says about one leg, merged over every look taken. */
class LegWitness {
  private clients = 0;
  private readonly tls = new Set<string>();

  constructor(
    readonly leg: TlsLeg,
    readonly client: string,
    readonly applicationName: string,
  ) {}

  /** Records one SHOW CLIENTS. */
  record(rows: readonly ListedClient[]): void {
    const mine = rows.filter((r) => r.applicationName === this.applicationName);
    this.clients = Math.max(this.clients, mine.length);
    for (const r of mine) this.tls.add(r.tls);
  }

  /** Throws when what was recorded says the leg is not what it claims (or was never seen). */
  check(): void {
    const problems = legEvidenceProblems(this.evidence());
    if (problems.length > 0) throw new Error(problems.join("; "));
  }

  see(rows: readonly ListedClient[]): void {
    this.record(rows);
    this.check();
  }

  evidence(): TlsLegEvidence {
    return { leg: this.leg, client: this.client, applicationName: this.applicationName, clients: this.clients, tls: [...this.tls].sort() };
  }
}

function otherLeg(leg: TlsLeg): TlsLeg {
  return leg === "plain" ? "tls" : "plain";
}

/** Round `round`'s order: plain first in even rounds, TLS first in odd ones. */
export function legOrder(round: number): readonly TlsLeg[] {
  const first: TlsLeg = round % 2 === 0 ? "plain" : "tls";
  return [first, otherLeg(first)];
}

export async function compareTlsCost(opts: TlsCostOptions): Promise<TlsCostReport> {
  const progress = opts.progress ?? silentProgress;
  const rounds = Math.max(1, Math.trunc(opts.rounds));
  const seconds = opts.seconds ?? opts.spec.durationSeconds;
  const rows: TlsCostRow[] = [];
  const witnesses: LegWitness[] = [];

  const node = { plain: new LegWitness("plain", nodeClient, legApplicationNames.node.plain), tls: new LegWitness("tls", nodeClient, legApplicationNames.node.tls) };
  witnesses.push(node.plain, node.tls);
  progress.step(`TLS cost: a plain-text and a verify-full TLS session through PgBouncer, ${opts.spec.concurrency} connections each`);
  const sessions: Partial<Record<TlsLeg, SmokeSession>> = {};
  try {
    for (const leg of ["plain", "tls"] as const) {
      sessions[leg] = await SmokeSession.open({
        pooledUrl: legUrl(opts.pooledUrl, leg, legApplicationNames.node[leg]),
        directUrl: opts.directUrl,
        plan: opts.plan,
        spec: opts.spec,
        progress,
        createTables: true,
      });
    }
    const look = async () => {
      const clients = await showClients(opts.consoleUrl);
      node.plain.see(clients);
      node.tls.see(clients);
    };
    await look();
    for (const scenario of opts.scenarios ?? tlsCostScenarios) {
      const runs: Record<TlsLeg, TlsLegRun[]> = { plain: [], tls: [] };
      let skipped = false;
      for (let round = 0; round < rounds && !skipped; round++) {
        for (const leg of legOrder(round)) {
          progress.step(`TLS cost: ${scenario}, ${leg === "plain" ? "plain text" : "TLS"} (round ${round + 1} of ${rounds})`);
          const result = await (sessions[leg] as SmokeSession).runScenario(scenario, {
            durationSeconds: seconds,
            // Each leg's connections prepare this scenario's statements in their first run; later rounds find them ready.
            ...(round > 0 ? { warmupSeconds: 0 } : {}),
            measureRecall: false,
          });
          if (result === null) {
            skipped = true;
            break;
          }
          runs[leg].push({ opsPerSec: result.opsPerSec, p50Ms: result.p50Ms, p99Ms: result.p99Ms, errors: result.errors });
        }
      }
      if (!skipped) rows.push(tlsCostRow({ scenario, client: nodeClient, plain: runs.plain, tls: runs.tls }));
    }
    // A runner whose operation failed was replaced by a new connection: look again at what the legs hold now.
    await look();
  } finally {
    // One after the other (both drop the same pool table); a failed close must not keep the other session open.
    for (const session of Object.values(sessions)) {
      await session?.close().catch((error: unknown) => progress.warn(`TLS cost: closing a session failed: ${error instanceof Error ? error.message : String(error)}`));
    }
  }

  let reconnectCommand: string | undefined;
  if (opts.reconnect !== false) {
    const reconnect = await reconnectRows(opts, rounds, seconds, progress);
    rows.push(reconnect.row);
    witnesses.push(...reconnect.witnesses);
    reconnectCommand = reconnect.command;
  }

  const steady = rows.filter((r) => r.steadyState);
  return {
    rounds,
    seconds,
    concurrency: opts.spec.concurrency,
    tlsMode: "verify-full (the cluster's CA)",
    rows,
    evidence: witnesses.map((w) => w.evidence()),
    goal: tlsSteadyStateGoal,
    meetsGoal: steady.length > 0 && steady.every((r) => r.meetsGoal === true),
    ...(reconnectCommand === undefined ? {} : { reconnectCommand }),
  };
}

/** pgbench -C plain vs TLS in alternating rounds, each run's clients looked at in SHOW CLIENTS halfway through. */
async function reconnectRows(
  opts: TlsCostOptions,
  rounds: number,
  seconds: number,
  progress: Progress,
): Promise<{ row: TlsCostRow; witnesses: LegWitness[]; command: string }> {
  const names = legApplicationNames.pgbench;
  const witness = { plain: new LegWitness("plain", reconnectClient, names.plain), tls: new LegWitness("tls", reconnectClient, names.tls) };
  const runs: Record<TlsLeg, TlsLegRun[]> = { plain: [], tls: [] };
  let command = "";
  for (let round = 0; round < rounds; round++) {
    for (const leg of legOrder(round)) {
      progress.step(`TLS cost: pgbench -C, ${leg === "plain" ? "plain text" : "TLS"}, ${seconds} s at concurrency ${opts.spec.concurrency} (round ${round + 1} of ${rounds})`);
      const watch = await watchClients(opts.consoleUrl, witness[leg]);
      let done: PgbenchRun;
      try {
        done = await runPgbenchReconnect({
          runtime: opts.runtime,
          url: legUrl(opts.pooledUrl, leg, names[leg]),
          concurrency: opts.spec.concurrency,
          seconds,
          applicationName: names[leg],
        });
      } catch (error) {
        // pgbench's own failure is the news; the watcher only has to end.
        await watch.stop().catch(() => undefined);
        throw error;
      }
      await watch.stop();
      // The script's path is a scratch directory of this run, gone now; its name and text say what it was.
      command = done.command.replace(/\S*\/select1\.sql/, "select1.sql");
      runs[leg].push({ opsPerSec: Math.round(done.tps * 10) / 10, p50Ms: null, p99Ms: null, errors: done.failed, connectionMs: done.averageConnectionMs });
    }
  }
  return {
    row: tlsCostRow({ scenario: "reconnect", client: reconnectClient, plain: runs.plain, tls: runs.tls }),
    witnesses: [witness.plain, witness.tls],
    command,
  };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
