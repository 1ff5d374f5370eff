/**
 * The synthetic canary: a small long-running process that uses the database the way an application does, through
 * PgBouncer as the application's user, and exports what it saw on /metrics (the contract in configs/alert-sources.ts
 * and configs/canary.ts).
 *
 * Two loops, independent so a slow query round never delays the connection count:
 * - every `connectIntervalMs`, one new connection to each target (PgBouncer; PostgreSQL itself when a direct URL is
 *   given): connect, authenticate, `SELECT 1`, close — one attempt, a failure if any step fails or the whole does not
 *   finish within `connectTimeoutMs`; beside it, within the same timeout, a TLS handshake of its own that reads the
 *   certificate the target presents and exports its notAfter, whether or not it verifies (canary/certificate.ts);
 * - every `intervalMs`, one round on a new connection through PgBouncer (also counted as an attempt): the three
 *   scenarios `search`, `hybrid` and `insert`, each one pipelined transaction timed from BEGIN to COMMIT, then the
 *   table is trimmed back to `maxRows` (not timed).
 *
 * A scenario that does not finish within `queryTimeoutMs` is observed in the histogram at the time the canary gave
 * up, and counted as a `timeout`: a hung database then raises the latency quantiles instead of silencing them.
 * A scenario that fails with an error is not observed (its duration says nothing about latency) and is counted
 * as an `error`. After any failure the connection is replaced (a new, counted attempt) before the next scenario.
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import type { Client } from "pg";
import {
  canaryVectorScenarios,
  type CanaryFailureReason,
  type CanaryScenario,
  type CanarySettings,
  type CanaryTarget,
} from "../configs/canary";
import { maskSecrets, maskUrl, urlPasswords } from "../configs/secrets";
import { encodeVector } from "../postdeploy/vector-binary";
import { OperationRunner, settingStatements, statementName, type WireValue } from "../postdeploy/smoke-pg";
import { createRng, filterValues, normalize, type Rng } from "../postdeploy/vectors";
import { describeReading, readTargetCertificate, type CertificateReading } from "./certificate";
import { DeadlineError, describeError as describe, destroyClient, openReadyConnection, probeConnection, withDeadline } from "./connect";
import { CanaryMetrics } from "./metrics";
import { canarySql, type CanarySql, type CanaryStatement } from "./sql";

export interface CanaryOptions {
  readonly settings: CanarySettings;
  /** postgresql:// URL through PgBouncer, as the application's user (with its password). */
  readonly pooledUrl: string;
  /** postgresql:// URL of PostgreSQL itself; when given, its logins are probed too (target `postgres`). */
  readonly directUrl?: string;
  /** Where log lines go (already free of passwords). Defaults to nowhere. */
  readonly log?: (line: string) => void;
}

export type ScenarioOutcome =
  | { readonly ok: true; readonly seconds: number }
  | { readonly ok: false; readonly reason: CanaryFailureReason; readonly seconds: number | null; readonly error: string };

/** One connection probe of a target. */
export interface ProbeResult {
  /** Null when connect, login and SELECT 1 worked; otherwise why not (no password in it). */
  readonly connection: string | null;
  /** The certificate the target presented in the probe's own handshake, or why none was read. */
  readonly certificate: CertificateReading;
}

export interface RoundResult {
  /** Null when the round's connection and table setup worked. */
  readonly connectionError: string | null;
  readonly scenarios: Readonly<Record<CanaryScenario, ScenarioOutcome>>;
}

/** Extra time the client waits beyond the server's statement_timeout before it closes the connection itself. */
const clientGraceMs = 1_000;
/** Setting up the table (seeding and indexing up to 100,000 rows) may take this long. */
const setupTimeoutMs = 120_000;

/** SQLSTATE 57014: the server cancelled the statement (our statement_timeout). */
function isTimeout(error: unknown): boolean {
  return error instanceof DeadlineError || (error as { code?: string })?.code === "57014";
}

export class Canary {
  readonly metrics: CanaryMetrics;
  readonly sql: CanarySql;
  private readonly targets: readonly { readonly target: CanaryTarget; readonly url: string }[];
  /** The targets' passwords, masked in every log line. */
  private readonly secrets: readonly string[];
  private readonly rng: Rng;
  private tableReady = false;
  private server: http.Server | null = null;
  private probeTimer: NodeJS.Timeout | null = null;
  private roundLoop: Promise<void> | null = null;
  private wakeRoundLoop: (() => void) | null = null;
  private stopping = false;
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Last state logged per subject, so a failure is logged when it starts and when it ends, not every second. */
  private readonly lastState = new Map<string, string>();
  /** Certificate reads started so far, and per target the latest one whose certificate is in the gauge. */
  private certificateReads = 0;
  private readonly certificateShown = new Map<CanaryTarget, number>();

  constructor(private readonly options: CanaryOptions) {
    this.sql = canarySql(options.settings);
    this.targets = [
      { target: "pgbouncer", url: options.pooledUrl },
      ...(options.directUrl ? [{ target: "postgres" as const, url: options.directUrl }] : []),
    ];
    this.secrets = urlPasswords(this.targets.map((t) => t.url));
    this.metrics = new CanaryMetrics(this.targets.map((t) => t.target));
    this.rng = createRng(Date.now() >>> 0);
  }

  private get settings(): CanarySettings {
    return this.options.settings;
  }

  private log(line: string): void {
    this.options.log?.(maskSecrets(line, this.secrets));
  }

  /** Logs `state` for `subject` when it differs from the last one logged. */
  private note(subject: string, state: string): void {
    if (this.lastState.get(subject) === state) return;
    const first = !this.lastState.has(subject);
    this.lastState.set(subject, state);
    if (first && state === "ok") return;
    this.log(`${subject}: ${state}`);
  }

  /** Serves /metrics, then starts both loops. Resolves to the metrics URL. */
  async start(): Promise<string> {
    const { host, port } = this.settings.listen;
    const server = http.createServer((req, res) => void this.serve(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.server = server;
    const address = server.address() as AddressInfo;
    const shownHost = address.family === "IPv6" ? `[${address.address}]` : address.address;
    const url = `http://${shownHost}:${address.port}/metrics`;
    this.log(
      `serving ${url}; probing ${this.targets.map((t) => `${t.target} ${maskUrl(t.url)}`).join(", ")} every ${this.settings.connectIntervalMs} ms; ` +
        `scenarios ${canaryVectorScenarios.join(", ")} on ${this.settings.table} every ${this.settings.intervalMs} ms`,
    );
    this.probeTimer = setInterval(() => this.probeAll(), this.settings.connectIntervalMs);
    this.probeAll();
    this.roundLoop = this.runRounds();
    return url;
  }

  /** Stops both loops, waits for what is running (each bounded by its timeout), closes the HTTP server. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.wakeRoundLoop?.();
    await this.roundLoop;
    await Promise.allSettled([...this.inFlight]);
    const server = this.server;
    this.server = null;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  private async serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { Allow: "GET, HEAD" }).end();
    } else if (path === "/metrics") {
      try {
        const body = await this.metrics.text();
        res.writeHead(200, { "Content-Type": this.metrics.contentType }).end(req.method === "HEAD" ? undefined : body);
      } catch (error) {
        res.writeHead(500, { "Content-Type": "text/plain" }).end(`collecting metrics failed: ${describe(error)}\n`);
      }
    } else if (path === "/") {
      res.writeHead(200, { "Content-Type": "text/plain" }).end("pgstack canary: metrics at /metrics\n");
    } else {
      res.writeHead(404, { "Content-Type": "text/plain" }).end("not found; metrics are at /metrics\n");
    }
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.inFlight.add(promise);
    void promise.finally(() => this.inFlight.delete(promise)).catch(() => undefined);
    return promise;
  }

  /** One attempt per target. Attempts may overlap while a target hangs: each one is counted when it ends. */
  private probeAll(): void {
    if (this.stopping) return;
    for (const { target, url } of this.targets) void this.track(this.probe(target, url));
  }

  /**
   * One connection attempt to `target`, counted, and beside it one read of the certificate it presents, exported;
   * each logged when its state changes. The two run side by side, each within the connect timeout, so a target that
   * hangs holds the probe for one timeout, not two.
   */
  async probe(target: CanaryTarget, url = this.targets.find((t) => t.target === target)?.url): Promise<ProbeResult> {
    if (url === undefined) throw new Error(`the canary has no URL for target ${target}`);
    const [connection, certificate] = await Promise.all([
      probeConnection(url, this.settings.applicationName, this.settings.connectTimeoutMs),
      this.readCertificate(target, url),
    ]);
    this.metrics.connectionAttempt(target, connection === null);
    this.note(`connections to ${target}`, connection === null ? "ok" : `failing: ${connection}`);
    return { connection, certificate };
  }

  /**
   * Reads the certificate `target` presents and sets the gauge to its notAfter, verified or not (its verdict goes to
   * the log; the probe's login counts the failure). Without a certificate the gauge keeps the last one read.
   */
  private async readCertificate(target: CanaryTarget, url: string): Promise<CertificateReading> {
    const started = ++this.certificateReads;
    const reading = await readTargetCertificate(url, this.settings.connectTimeoutMs);
    // Probes overlap while a target hangs: a read that started earlier but ended later must not put an older
    // certificate back over a renewed one.
    if (reading.ok && started > (this.certificateShown.get(target) ?? 0)) {
      this.certificateShown.set(target, started);
      this.metrics.certificateSeen(target, reading.certificate.notAfter);
    }
    this.note(`certificate of ${target}`, describeReading(reading));
    return reading;
  }

  private async runRounds(): Promise<void> {
    let next = Date.now();
    while (!this.stopping) {
      // runRound counts and logs its own failures; anything that escapes it is a bug, logged, and the loop goes on.
      await this.track(this.runRound()).catch((error: unknown) => this.log(`round failed unexpectedly: ${describe(error)}`));
      next += this.settings.intervalMs;
      // A round longer than the interval (timeouts) starts the next one at once, without a burst of catch-up rounds.
      if (next < Date.now()) next = Date.now();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, next - Date.now());
        this.wakeRoundLoop = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeRoundLoop = null;
    }
  }

  /** A new connection through PgBouncer, counted as an attempt of target `pgbouncer`. */
  private async connectPooled(): Promise<Client> {
    try {
      const client = await openReadyConnection(this.options.pooledUrl, this.settings.applicationName, this.settings.connectTimeoutMs);
      this.metrics.connectionAttempt("pgbouncer", true);
      return client;
    } catch (error) {
      this.metrics.connectionAttempt("pgbouncer", false);
      throw error;
    }
  }

  /** Creates, seeds and indexes the canary's table when it is not there; idempotent. */
  private async ensureTable(client: Client): Promise<void> {
    const { sql, settings } = this;
    const work = async (): Promise<void> => {
      if ((await client.query(sql.vectorInstalled)).rowCount === 0) {
        throw new Error("the pgvector extension is not installed in this database; the stack's bootstrap creates it (CREATE EXTENSION vector, as a superuser)");
      }
      const existing = (await client.query<{ type: string }>(sql.existingColumnType)).rows[0]?.type;
      if (existing !== undefined && existing !== sql.columnType) {
        throw new Error(
          `${settings.table}.${sql.plan.column} is ${existing} but the canary uses ${sql.columnType}; pass --dimensions to match, or drop ${settings.table} (it holds canary rows only)`,
        );
      }
      for (const ddl of sql.createTable) await client.query(ddl);
      const rows = (await client.query<{ n: number }>(sql.countRows)).rows[0].n;
      if (rows < settings.maxRows) await client.query(sql.seed, [settings.maxRows - rows]);
      await client.query(sql.createIndex);
      await client.query(sql.analyze);
    };
    await withDeadline(work(), setupTimeoutMs, `setting up ${settings.table}`, () => destroyClient(client));
    this.tableReady = true;
  }

  private randomVector(): Buffer {
    const v = new Float32Array(this.settings.dimensions);
    for (let i = 0; i < v.length; i++) v[i] = this.rng.gaussian();
    return encodeVector(normalize(v));
  }

  private values(statement: CanaryStatement): WireValue[] {
    return statement.params.map((p) => {
      switch (p) {
        case "vector":
          return this.randomVector();
        case "filter":
          return filterValues[this.rng.int(filterValues.length)];
        default:
          throw new Error(`the canary has no value for parameter ${p}`);
      }
    });
  }

  /** Runs one scenario on `runner`; observes and counts its outcome. */
  private async runScenario(runner: OperationRunner, statement: CanaryStatement): Promise<ScenarioOutcome> {
    const { scenario } = statement;
    const values = this.values(statement);
    const started = performance.now();
    try {
      await withDeadline(
        runner.run(settingStatements(statement.setLocal), { name: statementName("canary", statement.text), text: statement.text }, values),
        this.settings.queryTimeoutMs + clientGraceMs,
        `the ${scenario} scenario`,
        () => destroyClient(runner.client),
      );
      const seconds = (performance.now() - started) / 1000;
      this.metrics.observe(scenario, seconds);
      this.note(`scenario ${scenario}`, "ok");
      return { ok: true, seconds };
    } catch (error) {
      runner.broken = true;
      const seconds = (performance.now() - started) / 1000;
      const reason: CanaryFailureReason = isTimeout(error) ? "timeout" : "error";
      if (reason === "timeout") this.metrics.observe(scenario, seconds);
      // Someone dropped the table (42P01): set it up again in the next round.
      if ((error as { code?: string })?.code === "42P01") this.tableReady = false;
      this.metrics.queryFailed(scenario, reason);
      const message = describe(error);
      this.note(`scenario ${scenario}`, `${reason}: ${message}`);
      return { ok: false, reason, seconds: reason === "timeout" ? seconds : null, error: message };
    }
  }

  /** One round: connect, set up the table if needed, the three scenarios, trim. Public for `--once` and tests. */
  async runRound(): Promise<RoundResult> {
    const outcomes: Partial<Record<CanaryScenario, ScenarioOutcome>> = {};
    const noConnection = (message: string): RoundResult => {
      for (const scenario of canaryVectorScenarios) {
        if (outcomes[scenario] !== undefined) continue;
        this.metrics.queryFailed(scenario, "no_connection");
        outcomes[scenario] = { ok: false, reason: "no_connection", seconds: null, error: message };
      }
      this.note("query rounds", `failing: ${message}`);
      return { connectionError: message, scenarios: outcomes as Record<CanaryScenario, ScenarioOutcome> };
    };

    let client: Client;
    try {
      client = await this.connectPooled();
      if (!this.tableReady) await this.ensureTable(client);
    } catch (error) {
      return noConnection(describe(error));
    }
    this.note("query rounds", "ok");
    let runner = new OperationRunner(client, true);
    try {
      for (const scenario of canaryVectorScenarios) {
        if (runner.broken) {
          destroyClient(runner.client);
          try {
            runner = new OperationRunner(await this.connectPooled(), true);
          } catch (error) {
            return noConnection(describe(error));
          }
        }
        outcomes[scenario] = await this.runScenario(runner, this.sql.scenarios[scenario]);
      }
      if (!runner.broken) {
        await withDeadline(runner.client.query(this.sql.trim), this.settings.queryTimeoutMs, "trimming the canary table", () =>
          destroyClient(runner.client),
        ).then(
          () => this.note("trimming", "ok"),
          (error: unknown) => {
            runner.broken = true;
            this.note("trimming", `failing: ${describe(error)}`);
          },
        );
      }
    } finally {
      if (runner.broken) destroyClient(runner.client);
      else await withDeadline(runner.client.end(), 1_000, "disconnect", () => destroyClient(runner.client)).catch(() => undefined);
    }
    return { connectionError: null, scenarios: outcomes as Record<CanaryScenario, ScenarioOutcome> };
  }
}
