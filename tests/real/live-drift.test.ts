/**
 * `pgstack drift --live` against a real PostgreSQL 17 + pgvector and PgBouncer (local/runtime), started with a
 * stack's rendered files (the perf stack scaled to a 2Gi, 2-cpu node). Clean → exit 0; then each kind of drift is
 * made for real and must be reported with its source: ALTER SYSTEM + reload, ALTER DATABASE … SET, a setting waiting
 * for a restart, an HNSW index rebuilt with another m, a PgBouncer with another default_pool_size. Bad connection
 * input gets one clean line and exit 2, and no password is ever printed.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { pgbouncerUserlist } from "../../configs/pgbouncer";
import { renderStack } from "../../configs/render";
import { monitorRole, statsUser } from "../../configs/roles";
import { testBootstrapSql } from "./roles-fixture";
import { scramVerifier } from "../../configs/scram";
import { parseStackSpec } from "../../configs/spec";
import { driftCommand } from "../../cli/drift";
import { renderedFiles } from "../../cli/render";
import { readStackConfig } from "../../cli/stack-file";
import type { LiveDrift } from "../../drift/live-report";
import { freeLoopbackPort, getRuntime, startPgBouncer, startPostgres, stopAll, writeRigTls, type PgBouncerServer, type RigTls, type PostgresServer, type Runtime } from "../../local/runtime";
import { localPlacement } from "../../configs/placement";
import type { TlsFiles } from "../../configs/tls";

const superuserPassword = "Drift-Test-Superuser-7f3a9c";
/** drift --live reads the server as the monitor role (pg_monitor reads every setting) and PgBouncer as its stats user: neither is the superuser, who never logs in over TCP. */
const driftUser = monitorRole;
const driftPassword = "Drift-Test-Monitor-7f3a9c";
const consoleUser = statsUser;
const consolePassword = "Drift-Test-Stats-5b1e02";
const appPassword = "Drift-Test-App-1b2c3d";

/**
 * The perf stack, scaled down so the rig starts it anywhere. huge_pages = try: the test host may have no pages free.
 * allow_alter_system is rendered `off` (so ALTER SYSTEM cannot drift a real deployment); the test turns it on in the
 * server's file AND in the desired files, so the desired state still matches and ALTER SYSTEM can be exercised.
 */
/**
 * The perf stack's files, rendered with the TLS files the rig wrote for this test in place of the reference
 * placement's: PostgreSQL and PgBouncer read exactly the paths their files name, so the certificate is no drift.
 */
function testSpec() {
  const config = readStackConfig("perf");
  return parseStackSpec("perf", {
    ...config,
    node: { memory: "2Gi", cpus: 2, storage: "ssd" },
    postgres: { ...(config.postgres as object), hugePages: "try" },
  });
}

function testFiles(tls: TlsFiles): Record<string, string> {
  const spec = testSpec();
  const files = renderedFiles(renderStack(spec, localPlacement({ paths: { tlsCertificate: tls.certificate, tlsKey: tls.key, tlsCa: tls.ca } })));
  files["postgresql.conf"] = files["postgresql.conf"].replace(/^allow_alter_system = off\b/m, "allow_alter_system = on ");
  if (!/^allow_alter_system = on/m.test(files["postgresql.conf"])) throw new Error("the rendered postgresql.conf has no allow_alter_system line to turn on");
  return files;
}

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

async function drift(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const out = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  const err = vi.spyOn(console, "error").mockImplementation((...parts: unknown[]) => {
    stderr += `${parts.join(" ")}\n`;
  });
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  try {
    const code = await driftCommand.run(args);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

function report(run: Run): LiveDrift {
  return JSON.parse(run.stdout) as LiveDrift;
}

function driftOf(r: LiveDrift) {
  return r.findings.filter((f) => f.drift);
}

describe("pgstack drift --live on a real PostgreSQL 17 and PgBouncer", () => {
  let runtime: Runtime;
  let pg: PostgresServer;
  let bouncer: PgBouncerServer;
  let files: Record<string, string>;
  let dir: string;
  let userlist: string;
  /** One certificate for both servers, at the paths the rendered files name. */
  let tls: RigTls;
  const pgbouncerIni = (pgPort: number, text: string) => text.replace(/^(app = host=127\.0\.0\.1 port=)5432\b/m, `$1${pgPort}`);

  /** What every client's URL carries: the server admits TCP clients over TLS only (verify-full, the rig's CA). */
  const tlsQuery = () => `sslmode=verify-full&sslrootcert=${pg.caPath}`;
  const baseArgs = () => ["--live", "--stack", "perf", "--rendered", dir, "--url", pg.url("app", driftUser, driftPassword), "--pgbouncer-url", bouncer.url("pgbouncer", consoleUser, consolePassword)];

  beforeAll(async () => {
    runtime = await getRuntime();
    tls = await writeRigTls(runtime.scratchDir("tls"));
    files = testFiles(tls.files);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-live-drift-"));
    for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);

    pg = await startPostgres({ runtime, postgresqlConf: files["postgresql.conf"], pgHbaConf: files["pg_hba.conf"], superuserPassword, tls });
    const salt = (n: number) => Buffer.alloc(16, n);
    // The stack's own bootstrap (roles, database, extensions), then its index plan, as the post-deploy hook would.
    await pg.psql(testBootstrapSql(testSpec(), { app: scramVerifier(appPassword, salt(1)), monitor: scramVerifier(driftPassword, salt(2)) }));
    const plan = JSON.parse(files["plan.json"]) as { indexPlan: { createTableSql: string[] | null; storageSql: string | null; createIndexSql: string }[] };
    for (const entry of plan.indexPlan) {
      await pg.psql([...(entry.createTableSql ?? []), entry.storageSql, entry.createIndexSql].filter(Boolean).map((s) => `${s};`).join("\n"), "app");
    }
    userlist = pgbouncerUserlist([{ user: consoleUser, verifier: scramVerifier(consolePassword, salt(3)) }]);
    bouncer = await startPgBouncer({ runtime, ini: pgbouncerIni(pg.port, files["pgbouncer.ini"]), userlist, tls });
  });

  afterAll(async () => {
    await stopAll();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("reports no drift (exit 0) for a server started from the rendered files", async () => {
    const run = await drift([...baseArgs(), "--format", "json"]);
    expect(run.stderr).toBe("");
    const r = report(run);
    expect(driftOf(r)).toEqual([]);
    expect(run.code).toBe(0);
    expect(r.postgres.version).toMatch(/^17\./);
    expect(r.checked.settings).toBeGreaterThan(50);
    expect(r.checked.pgbouncerSettings).toBeGreaterThan(20);
    // What the rig sets on the command line (port, listen address, socket) is a note, not drift.
    expect(r.findings.filter((f) => f.area === "postgresql").map((f) => f.name).sort()).toEqual(["port", "unix_socket_directories"]);
    // The text format says so too, and the password is nowhere.
    const text = await drift(baseArgs());
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^no drift: stack perf vs postgresql:\/\/pgstack_monitor@127\.0\.0\.1:\d+\/app \(PostgreSQL 17\./);
    expect(text.stdout).not.toContain(driftPassword);
  });

  it("reports ALTER SYSTEM + reload and ALTER DATABASE … SET exactly, with old/new values and their sources", async () => {
    await pg.psql("ALTER SYSTEM SET work_mem = '64MB'; SELECT pg_reload_conf();");
    await pg.psql("ALTER DATABASE app SET hnsw.ef_search = 100;");
    try {
      await new Promise((r) => setTimeout(r, 500));
      const run = await drift([...baseArgs(), "--format", "json"]);
      expect(run.code).toBe(1);
      const found = driftOf(report(run));
      const renderedWorkMem = /^work_mem = (\S+)/m.exec(files["postgresql.conf"])?.[1];
      expect(renderedWorkMem).toBe("16MB");
      expect(found).toEqual([
        expect.objectContaining({ area: "postgresql", name: "work_mem", desired: "16MB", live: "64MB", source: expect.stringMatching(/^ALTER SYSTEM \(postgresql\.auto\.conf line \d+\)$/) }),
        expect.objectContaining({ area: "override", name: "hnsw.ef_search", live: "100", source: "ALTER DATABASE app SET", desired: expect.stringContaining("40") }),
      ]);

      const md = await drift([...baseArgs(), "--format", "markdown"]);
      expect(md.code).toBe(1);
      expect(md.stdout).toContain("| `work_mem` | `16MB` | `64MB` | ALTER SYSTEM (postgresql.auto.conf line");
      expect(md.stdout).toContain("| `hnsw.ef_search` |");
      expect(md.stdout).not.toContain(driftPassword);
      console.log(md.stdout);
    } finally {
      await pg.psql("ALTER SYSTEM RESET work_mem; SELECT pg_reload_conf();");
      await pg.psql("ALTER DATABASE app RESET hnsw.ef_search;");
    }
  });

  it("reports a setting that waits for a restart (pending_restart) with the value the restart would apply", async () => {
    await pg.psql("ALTER SYSTEM SET max_connections = 150; SELECT pg_reload_conf();");
    try {
      await new Promise((r) => setTimeout(r, 500));
      const run = await drift([...baseArgs(), "--format", "json"]);
      expect(run.code).toBe(1);
      const pending = driftOf(report(run)).filter((f) => f.name === "max_connections");
      expect(pending).toContainEqual(expect.objectContaining({ live: "200", detail: expect.stringMatching(/pending restart: the files now say 150, the server runs 200/) }));
    } finally {
      await pg.psql("ALTER SYSTEM RESET max_connections; SELECT pg_reload_conf();");
    }
  });

  it("reports an HNSW index rebuilt with another m, from its reloptions", async () => {
    await pg.psql(
      'DROP INDEX memories_embedding_hnsw_idx; CREATE INDEX memories_embedding_hnsw_idx ON memories USING hnsw (embedding vector_cosine_ops) WITH (m = 8, ef_construction = 128);',
      "app",
    );
    const run = await drift([...baseArgs(), "--format", "json"]);
    expect(run.code).toBe(1);
    expect(driftOf(report(run))).toEqual([
      expect.objectContaining({ area: "index", name: "memories_embedding_hnsw_idx", live: expect.stringContaining("m=8"), detail: "m 8, plan 16" }),
    ]);
  });

  it("reports a PgBouncer running another default_pool_size (SHOW CONFIG on the admin console)", async () => {
    const other = await startPgBouncer({
      runtime,
      ini: pgbouncerIni(pg.port, files["pgbouncer.ini"]).replace(/^default_pool_size = \d+$/m, "default_pool_size = 50"),
      userlist,
      tls,
    });
    try {
      const args = baseArgs();
      args[args.indexOf("--pgbouncer-url") + 1] = other.url("pgbouncer", consoleUser, consolePassword);
      const run = await drift([...args, "--format", "json"]);
      expect(run.code).toBe(1);
      expect(driftOf(report(run)).filter((f) => f.area === "pgbouncer")).toEqual([
        expect.objectContaining({ name: "default_pool_size", desired: "100", live: "50", source: "SHOW CONFIG" }),
      ]);
    } finally {
      await other.stop();
    }
  });

  it("takes the password from PGPASSWORD when the URL has none", async () => {
    const run = await drift(
      ["--live", "--stack", "perf", "--rendered", dir, "--url", `postgresql://${driftUser}@127.0.0.1:${pg.port}/app?${tlsQuery()}`, "--format", "json"],
      { PGPASSWORD: driftPassword },
    );
    expect(run.stderr).toBe("");
    expect(report(run).postgres.url).toBe(`postgresql://${driftUser}@127.0.0.1:${pg.port}/app`);
  });

  describe("bad connection input: one line, exit 2, no stack trace, no password", () => {
    const oneCleanLine = (run: Run) => {
      expect(run.code).toBe(2);
      expect(run.stdout).toBe("");
      expect(run.stderr.trim().split("\n")).toHaveLength(1);
      expect(run.stderr).not.toMatch(/\n\s+at /);
      expect(run.stderr).not.toContain(driftPassword);
      expect(run.stderr).not.toContain(consolePassword);
      expect(run.stderr).not.toContain("Wrong-Password-123");
    };

    it("an unparsable URL", async () => {
      const run = await drift(["--live", "--stack", "perf", "--rendered", dir, "--url", `postgresql://${driftUser}:Wrong-Password-123@127.0.0.1:notaport/app`]);
      oneCleanLine(run);
      expect(run.stderr).toMatch(/^pgstack drift: --url .* is not a URL/);
    });

    it("a refused connection", async () => {
      const port = await freeLoopbackPort();
      const run = await drift(["--live", "--stack", "perf", "--rendered", dir, "--url", `postgresql://${driftUser}@127.0.0.1:${port}/app`], { PGPASSWORD: driftPassword });
      oneCleanLine(run);
      expect(run.stderr).toContain(`cannot connect to PostgreSQL at postgresql://${driftUser}@127.0.0.1:${port}/app: connection refused`);
    });

    it("a wrong password, in the URL or in PGPASSWORD", async () => {
      const inUrl = await drift(["--live", "--stack", "perf", "--rendered", dir, "--url", `postgresql://${driftUser}:Wrong-Password-123@127.0.0.1:${pg.port}/app?${tlsQuery()}`]);
      oneCleanLine(inUrl);
      expect(inUrl.stderr).toContain(`password authentication failed for user "${driftUser}"`);
      const inEnv = await drift(["--live", "--stack", "perf", "--rendered", dir, "--url", `postgresql://${driftUser}@127.0.0.1:${pg.port}/app?${tlsQuery()}`], { PGPASSWORD: "Wrong-Password-123" });
      oneCleanLine(inEnv);
      expect(inEnv.stderr).toContain("password authentication failed");
    });

    it("no password at all", async () => {
      const run = await drift(["--live", "--stack", "perf", "--rendered", dir, "--url", `postgresql://${driftUser}@127.0.0.1:${pg.port}/app?${tlsQuery()}`], { PGPASSWORD: undefined });
      oneCleanLine(run);
      expect(run.stderr).toMatch(/none was given|password authentication failed/);
    });

    it("a wrong password for PgBouncer's admin console", async () => {
      const run = await drift([...baseArgs().slice(0, -1), bouncer.url("pgbouncer", consoleUser, "Wrong-Password-123")]);
      oneCleanLine(run);
      expect(run.stderr).toContain(`PgBouncer at postgresql://${consoleUser}@127.0.0.1:`);
    });
  });
});
