/**
 * The rendered mtail program on the real mtail (3.0, Debian 13) over the log of a real PostgreSQL 17 that runs the
 * stack's rendered postgresql.conf (its log_line_prefix, log_min_duration_statement = 100ms, the logging
 * collector's hourly files in PGDATA/log), with the flags every target gives it (configs/mtail.ts mtailArgs):
 * mtail counts exactly the statements PostgreSQL logged as slow — simple and extended protocol, one-line and
 * multi-line — and nothing else (fast statements, a 50 ms one, connection lines, the startup log); it finds a log
 * file PostgreSQL opens after mtail started, a restarted mtail does not count old lines again, and an mtail started
 * before the log directory exists follows the file once it appears.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { Client } from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { logLinePrefixPattern, mtailArgs, mtailExtraMetrics, mtailMetrics, mtailProgramFile, renderMtailProgram, slowStatementLinePattern } from "../../configs/mtail";
import { renderPgHba } from "../../configs/pg-hba";
import { logLinePrefix, renderPostgresqlConf, slowQueryMs } from "../../configs/postgresql";
import { getRuntime, httpGet, startPostgres, stopAll, type HttpServer, type PostgresServer, type Runtime, type ScratchDir } from "../../local/runtime";
import { startHttpServer } from "../../local/runtime/httpServer";
import { samples } from "../exposition";
import { specFor } from "../unit/spec-fixture";

const spec = specFor({ target: "local", node: { memory: "4Gi", cpus: 2 } }, "perf");


const slowLine = new RegExp(slowStatementLinePattern().replace(/\(\?P</g, "(?<"));

/** Slow statements in the log as PostgreSQL wrote them: the ground truth mtail must agree with. */
function slowLinesIn(log: string): string[] {
  return log
    .split("\n")
    .filter((l) => {
      const m = slowLine.exec(l);
      return m !== null && Number(m.groups!.duration_ms) >= slowQueryMs;
    });
}

let runtime: Runtime;
let pg: PostgresServer;
let mtail: HttpServer;
let progs: ScratchDir;
const program = renderMtailProgram();
const counter = mtailMetrics.slowQueries.name;
const histogram = mtailExtraMetrics.slowQueryDuration.name;
const prog = `prog="${mtailProgramFile}"`;

async function scrape(): Promise<Map<string, number>> {
  const response = await httpGet(`${mtail.url}/metrics`);
  expect(response.status).toBe(200);
  return samples(response.body);
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

beforeAll(async () => {
  runtime = await getRuntime();
  pg = await startPostgres({ runtime, postgresqlConf: renderPostgresqlConf(spec), pgHbaConf: renderPgHba() });
  progs = runtime.scratchDir("mtail-progs");
  progs.writeFile(mtailProgramFile, program, 0o644);
  mtail = await startMtail();
});

/** mtail with the targets' flags over `pgdata` (this server's by default), on a free loopback port, logging into `scratch`. */
function startMtail(pgdata = pg.scratch.pathOf("data"), scratch: ScratchDir = progs): Promise<HttpServer> {
  return startHttpServer({
    runtime,
    program: "mtail",
    scratch,
    args: (port) => ["--address", "127.0.0.1", "--port", String(port), ...mtailArgs({ programsDir: progs.path, pgdata })],
    readyPath: "/metrics",
  });
}

afterAll(stopAll);

describe("mtail over PostgreSQL's slow-query log", () => {
  it("loads the rendered program and serves the counter at 0 before any slow statement", async () => {
    const metrics = await scrape();
    expect(metrics.get(`${counter}{${prog}}`)).toBe(0);
    expect(slowLinesIn(pg.logText())).toEqual([]);
    // The collector has the log; stderr has only what came before it.
    expect(fs.readdirSync(pg.logDir).filter((f) => /^postgresql-\d\d\.log$/.test(f))).toHaveLength(1);
    expect(slowLinesIn(fs.readFileSync(pg.logFile, "utf8"))).toEqual([]);
  });

  it("counts exactly the statements PostgreSQL logged as slow", async () => {
    // 5 slow simple-protocol statements, a multi-line one, and fast ones that are not logged.
    await pg.psql(
      [
        ...Array.from({ length: 5 }, () => "SELECT pg_sleep(0.15);"),
        "SELECT\n  pg_sleep(0.15)\n  AS multi_line;",
        "SELECT pg_sleep(0.05);",
        ...Array.from({ length: 10 }, (_, i) => `SELECT ${i};`),
      ].join("\n"),
    );
    // 2 slow extended-protocol statements (logged as `execute <unnamed>:`), and a fast one.
    const client = new Client({ connectionString: pg.url() });
    await client.connect();
    try {
      await client.query("SELECT pg_sleep($1)", [0.12]);
      await client.query("SELECT pg_sleep($1)", [0.13]);
      await client.query("SELECT $1::int", [1]);
    } finally {
      await client.end();
    }

    const logged = slowLinesIn(pg.logText());
    expect(logged).toHaveLength(8);
    expect(logged.filter((l) => /  execute <unnamed>: /.test(l))).toHaveLength(2);

    await waitFor("mtail to count 8 slow statements", async () => (await scrape()).get(`${counter}{${prog}}`) === 8);
    const metrics = await scrape();
    expect(metrics.get(`${histogram}_count{${prog}}`)).toBe(8);
    expect(metrics.get(`${histogram}_bucket{${prog},le="0.1"}`)).toBe(0);
    expect(metrics.get(`${histogram}_bucket{${prog},le="0.5"}`)).toBe(8);
    expect(metrics.get(`${histogram}_bucket{${prog},le="+Inf"}`)).toBe(8);
    const sum = metrics.get(`${histogram}_sum{${prog}}`)!;
    expect(sum).toBeGreaterThanOrEqual(5 * 0.15 + 0.15 + 0.12 + 0.13);
    expect(sum).toBeLessThan(8 * 0.5);
  });

  it("gives the same count reading the whole log from its first line (--one_shot)", async () => {
    const result = await runtime.exec(
      "mtail",
      ["--progs", progs.path, "--logs", `${pg.scratch.pathOf("data")}/log/*.log`, "--one_shot", "--one_shot_format", "prometheus", "--logtostderr"],
      { timeoutMs: 60_000 },
    );
    expect(result.code, result.stderr).toBe(0);
    const metrics = samples(result.stdout);
    expect(metrics.get(`${counter}{${prog}}`)).toBe(8);
    // Every log entry is counted once (continuation lines of the multi-line statement are not entries).
    const prefix = new RegExp(logLinePrefixPattern(logLinePrefix));
    const collected = fs.readdirSync(pg.logDir).map((f) => fs.readFileSync(path.join(pg.logDir, f), "utf8")).join("");
    const entries = collected.split("\n").filter((l) => prefix.test(l)).length;
    expect(entries).toBeGreaterThan(8);
    expect(metrics.get(`${mtailMetrics.logLines.name}{${prog}}`)).toBe(entries);
  });

  it("finds a log file PostgreSQL opens after mtail started (the next hour's, here forced by a new log_filename)", async () => {
    const before = (await scrape()).get(`${counter}{${prog}}`)!;
    // The stack renders allow_alter_system = off: change the file, as an operator would.
    const conf = path.join(pg.dataDir, "postgresql.conf");
    const rendered = fs.readFileSync(conf, "utf8");
    fs.appendFileSync(conf, "log_filename = 'postgresql-%H-%M-%S.log'\n");
    await pg.psql("SELECT pg_reload_conf();");
    // A changed log_filename makes the collector switch files on reload.
    await waitFor("PostgreSQL to open a second log file", async () => fs.readdirSync(pg.logDir).length >= 2);
    await pg.psql("SELECT pg_sleep(0.15); SELECT pg_sleep(0.15); SELECT pg_sleep(0.15);");
    const newest = fs
      .readdirSync(pg.logDir)
      .map((f) => path.join(pg.logDir, f))
      .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0];
    expect(path.basename(newest)).toMatch(/^postgresql-\d\d-\d\d-\d\d\.log$/);
    expect(slowLinesIn(fs.readFileSync(newest, "utf8"))).toHaveLength(3);
    await waitFor(`mtail to count 3 more than ${before}`, async () => (await scrape()).get(`${counter}{${prog}}`) === before + 3);
    fs.writeFileSync(conf, rendered);
    await pg.psql("SELECT pg_reload_conf();");
  });

  it("counts nothing twice when it restarts: files found at start are read from their end", async () => {
    expect(slowLinesIn(pg.logText()).length).toBeGreaterThanOrEqual(11);
    await mtail.stop();
    mtail = await startMtail();
    expect((await scrape()).get(`${counter}{${prog}}`)).toBe(0);
    await pg.psql("SELECT pg_sleep(0.15);");
    await waitFor("the restarted mtail to count the one new slow statement", async () => (await scrape()).get(`${counter}{${prog}}`) === 1);
  });

  it("started before PostgreSQL created its log directory (a fresh volume), follows the file once it appears, and after it is truncated", async () => {
    // A container target may start mtail before PostgreSQL's first start creates PGDATA/log.
    const fresh = runtime.scratchDir("mtail-fresh-pgdata");
    const early = await startMtail(fresh.path, fresh);
    const count = async (): Promise<number | undefined> => samples((await httpGet(`${early.url}/metrics`)).body).get(`${counter}{${prog}}`);
    try {
      expect(await count()).toBe(0);
      const slow = pg.logText().split("\n").find((l) => slowLine.test(l))!;
      fresh.writeFile("log/postgresql-00.log", "");
      // Lines are read from where mtail finds the file, so give it a poll to find it before PostgreSQL writes.
      await new Promise((r) => setTimeout(r, 1_000));
      fs.appendFileSync(fresh.hostPathOf("log/postgresql-00.log"), `${slow}\n${slow}\n`);
      await waitFor("the early mtail to count 2", async () => (await count()) === 2);
      // The next day the collector truncates this hour's file and writes into it again: mtail sees it shorter than
      // where it was and reads it from the start.
      fs.truncateSync(fresh.hostPathOf("log/postgresql-00.log"), 0);
      await new Promise((r) => setTimeout(r, 1_000));
      fs.appendFileSync(fresh.hostPathOf("log/postgresql-00.log"), `${slow}\n`);
      await waitFor("the early mtail to count the line after the truncation", async () => (await count()) === 3);
    } finally {
      await early.stop();
    }
  });
});
