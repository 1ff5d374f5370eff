/**
 * The TLS reloader's shell loop (components/kubernetes/tls-spec.ts tlsReloadScript), run for real under this machine's
 * /bin/sh with `psql` replaced by a stub that records its arguments. The mounted Secret is laid out as the kubelet
 * writes it (files that are symlinks through `..data`, swapped atomically on an update), so what is proven here is the
 * loop: one reload at start, none while nothing changes, one after each renewal, retries after a failure, a prompt
 * exit on SIGTERM; and a rotated password (the bootstrap Secret and PgBouncer's auth_file changed by `pulumi up`):
 * roles applied to PostgreSQL first, PgBouncer reloaded after, PostgreSQL's configuration not reloaded for it. What only a cluster proves: that psql reaches PostgreSQL's socket and PgBouncer's console from the
 * sidecar, and that both servers then serve the new certificate.
 */
import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { tlsReloadScript } from "../../../components/kubernetes/tls-spec";

interface Run {
  readonly child: ChildProcess;
  readonly dir: string;
  readonly tlsDir: string;
  readonly bootstrap: string;
  readonly userlist: string;
  readonly log: string;
  readonly failPgbouncer: string;
  stdout: string;
  stderr: string;
  exit: Promise<number | null>;
}

const runs: Run[] = [];

afterEach(() => {
  for (const r of runs.splice(0)) {
    if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill("SIGKILL");
    fs.rmSync(r.dir, { recursive: true, force: true });
  }
});

/** The kubelet's atomic writer: the files live in a timestamped directory, `..data` points at it, each key is a symlink through `..data`. */
function writeSecret(tlsDir: string, generation: number): void {
  const version = `..gen_${generation}`;
  fs.mkdirSync(path.join(tlsDir, version));
  for (const key of ["tls.crt", "tls.key", "ca.crt"]) fs.writeFileSync(path.join(tlsDir, version, key), `${key} generation ${generation}\n`);
  fs.symlinkSync(version, path.join(tlsDir, "..data_tmp"));
  fs.renameSync(path.join(tlsDir, "..data_tmp"), path.join(tlsDir, "..data"));
  for (const key of ["tls.crt", "tls.key", "ca.crt"]) {
    if (!fs.existsSync(path.join(tlsDir, key))) fs.symlinkSync(path.join("..data", key), path.join(tlsDir, key));
  }
}

function start(): Run {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-tls-reloader-"));
  const tlsDir = path.join(dir, "tls");
  const bin = path.join(dir, "bin");
  fs.mkdirSync(tlsDir);
  fs.mkdirSync(bin);
  writeSecret(tlsDir, 1);
  const log = path.join(dir, "psql.log");
  const failPgbouncer = path.join(dir, "fail-pgbouncer");
  // psql: records its arguments; the RELOAD on PgBouncer's console fails while the control file exists.
  fs.writeFileSync(
    path.join(bin, "psql"),
    [
      "#!/bin/sh",
      'echo "$*" >> "$PSQL_LOG"',
      'case "$*" in *RELOAD*) [ -e "$FAIL_PGBOUNCER" ] && exit 2 ;; esac',
      'case "$*" in *" -f "*) [ -e "$FAIL_ROLES" ] && exit 3 ;; esac',
      "exit 0",
      "",
    ].join("\n"),
    { mode: 0o755 },
  );
  const bootstrap = path.join(dir, "10-pgstack-roles.sql");
  const userlist = path.join(dir, "userlist.txt");
  fs.writeFileSync(bootstrap, "ALTER ROLE app PASSWORD 'SCRAM-SHA-256$1';\n");
  fs.writeFileSync(userlist, '"app" "SCRAM-SHA-256$1"\n');
  const script = tlsReloadScript({
    tlsDir,
    socketDir: "/run/pg",
    postgresPort: 5432,
    pgbouncerPort: 6432,
    superuser: "postgres",
    pgbouncerAdmin: "pgstack_pgbouncer_admin",
    bootstrapFile: bootstrap,
    userlistFile: userlist,
    intervalSeconds: 0.1,
  });
  const child = spawn("/bin/sh", ["-c", script], {
    env: { PATH: `${bin}:${process.env.PATH}`, PSQL_LOG: log, FAIL_PGBOUNCER: failPgbouncer, FAIL_ROLES: path.join(dir, "fail-roles") },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const run: Run = {
    child,
    dir,
    tlsDir,
    bootstrap,
    userlist,
    log,
    failPgbouncer,
    stdout: "",
    stderr: "",
    exit: new Promise((resolve) => child.on("exit", (code) => resolve(code))),
  };
  child.stdout?.on("data", (d) => (run.stdout += String(d)));
  child.stderr?.on("data", (d) => (run.stderr += String(d)));
  runs.push(run);
  return run;
}

function calls(run: Run): string[] {
  return fs.existsSync(run.log) ? fs.readFileSync(run.log, "utf8").split("\n").filter(Boolean) : [];
}

async function until(what: string, condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** How often `server` reported a successful reload. */
const reloaded = (run: Run, server: "PostgreSQL" | "PgBouncer" = "PgBouncer") =>
  run.stdout.split("\n").filter((l) => l.startsWith(`tls-reloader: ${server} reloaded its certificate files`)).length;

/** How often the roles script was applied. */
const applied = (run: Run) => run.stdout.split("\n").filter((l) => l.startsWith("tls-reloader: roles and passwords applied to PostgreSQL (sha256 ")).length;

describe("the TLS reloader's loop", () => {
  it("reloads PostgreSQL, applies the roles, then reloads PgBouncer, once at start and once per renewal; nothing while the files stay the same", async () => {
    const run = start();
    await until("the first reload", () => reloaded(run) === 1);
    expect(calls(run)).toEqual([
      "-X -q -w -v ON_ERROR_STOP=1 -h /run/pg -p 5432 -U postgres -d postgres -c SELECT pg_reload_conf()",
      `-X -q -w -v ON_ERROR_STOP=1 -h /run/pg -p 5432 -U postgres -d postgres -f ${run.bootstrap}`,
      "-X -q -w host=127.0.0.1 port=6432 dbname=pgbouncer user=pgstack_pgbouncer_admin sslmode=require sslcertmode=disable connect_timeout=10 application_name=pgstack-tls-reloader -c RELOAD",
    ]);
    // Ten rounds with unchanged files: no call.
    await new Promise((r) => setTimeout(r, 1000));
    expect(calls(run)).toHaveLength(3);

    writeSecret(run.tlsDir, 2);
    await until("the reloads after a renewal", () => reloaded(run) === 2 && reloaded(run, "PostgreSQL") === 2);
    expect(calls(run)).toHaveLength(5);
    expect(calls(run)[3]).toContain("pg_reload_conf()");
    expect(calls(run)[4]).toContain("RELOAD");
    await new Promise((r) => setTimeout(r, 500));
    expect(calls(run)).toHaveLength(5);
    expect(run.stderr).toBe("");
  }, 20_000);

  it("a rotated password: the roles script runs again, then PgBouncer reloads its auth_file; PostgreSQL's configuration is not reloaded", async () => {
    const run = start();
    await until("the first reload", () => reloaded(run) === 1);
    fs.writeFileSync(run.bootstrap, "ALTER ROLE app PASSWORD 'SCRAM-SHA-256$2';\n");
    fs.writeFileSync(run.userlist, '"app" "SCRAM-SHA-256$2"\n');
    await until("the rotation", () => reloaded(run) === 2);
    expect(applied(run)).toBe(2);
    expect(calls(run).slice(3)).toEqual([
      `-X -q -w -v ON_ERROR_STOP=1 -h /run/pg -p 5432 -U postgres -d postgres -f ${run.bootstrap}`,
      "-X -q -w host=127.0.0.1 port=6432 dbname=pgbouncer user=pgstack_pgbouncer_admin sslmode=require sslcertmode=disable connect_timeout=10 application_name=pgstack-tls-reloader -c RELOAD",
    ]);
  }, 20_000);

  it("holds PgBouncer's reload back while the roles script fails: PgBouncer never gets a verifier PostgreSQL lacks", async () => {
    const run = start();
    await until("the first reload", () => reloaded(run) === 1);
    // The stub fails every -f while the control file exists.
    fs.writeFileSync(path.join(run.dir, "fail-roles"), "");
    fs.writeFileSync(run.bootstrap, "ALTER ROLE app PASSWORD 'SCRAM-SHA-256$3';\n");
    fs.writeFileSync(run.userlist, '"app" "SCRAM-SHA-256$3"\n');
    await until("three failed applications", () => calls(run).filter((c) => c.includes(" -f ")).length >= 4);
    expect(reloaded(run)).toBe(1);
    expect(run.stderr).toContain("tls-reloader: the roles script failed on PostgreSQL; trying again in 0.1s");
    fs.rmSync(path.join(run.dir, "fail-roles"));
    await until("the rotation once PostgreSQL takes it", () => reloaded(run) === 2);
    expect(applied(run)).toBe(2);
  }, 20_000);

  it("retries the server whose reload failed, every round, until it succeeds; the other is not reloaded again", async () => {
    const run = start();
    await until("the first reload", () => reloaded(run) === 1);
    fs.writeFileSync(run.failPgbouncer, "");
    writeSecret(run.tlsDir, 2);
    await until("three failed attempts", () => calls(run).filter((c) => c.includes("RELOAD")).length >= 4);
    expect(run.stderr).toContain("tls-reloader: PgBouncer did not reload; trying again in 0.1s");
    expect(reloaded(run, "PostgreSQL")).toBe(2);
    expect(reloaded(run, "PgBouncer")).toBe(1);
    // PostgreSQL reloaded once for the renewal, not once per PgBouncer attempt.
    expect(calls(run).filter((c) => c.includes("pg_reload_conf()"))).toHaveLength(2);
    fs.rmSync(run.failPgbouncer);
    await until("the reload once PgBouncer answers", () => reloaded(run) === 2);
    const settled = calls(run).length;
    await new Promise((r) => setTimeout(r, 500));
    expect(calls(run)).toHaveLength(settled);
    expect(calls(run).filter((c) => c.includes("pg_reload_conf()"))).toHaveLength(2);
  }, 20_000);

  it("waits while a file is missing, and exits at once on SIGTERM", async () => {
    const run = start();
    await until("the first reload", () => reloaded(run) === 1);
    fs.rmSync(path.join(run.tlsDir, "tls.key"));
    await until("the complaint", () => run.stderr.includes("are not all readable yet"));
    expect(calls(run)).toHaveLength(3);
    const stopped = Date.now();
    run.child.kill("SIGTERM");
    expect(await run.exit).toBe(0);
    expect(Date.now() - stopped).toBeLessThan(2000);
  }, 20_000);
});
