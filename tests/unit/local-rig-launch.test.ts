/**
 * What the rig hands each program, without starting one: a runtime that records every spawn and then fails it.
 * The perf cluster's PostgreSQL and PgBouncer run the files rendered for its placement as they are (no `-c`, no
 * edited ini); the exporters start only from rendered launches, with every secret in the environment and none on a
 * command line; initdb's superuser is configs/roles.ts's.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Launch } from "../../configs/launches";
import { renderStack } from "../../configs/render";
import { superuser } from "../../configs/roles";
import { parseStackSpec } from "../../configs/spec";
import { serverNames } from "../../configs/tls";
import { clusterPlacement, filledSecretEnv, generatePasswords, secretInputs } from "../../local/cluster-files";
import * as rig from "../../local/runtime";
import { startLaunch } from "../../local/runtime/launch";
import { startPgBouncer } from "../../local/runtime/pgbouncer";
import { postgresDataEntry, startPostgres } from "../../local/runtime/postgres";
import type { ExecResult } from "../../local/runtime/processes";
import type { Runtime, SpawnOptions } from "../../local/runtime/runtime";
import type { ScratchDir } from "../../local/runtime/scratch";
import { runPgbench } from "../../local/pgbench";
import { certificateProblems, keyMatches } from "../../local/tls";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-rig-args-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A scratch directory in a temporary directory; programs and this process see it at the same path. */
function scratchDir(label: string): ScratchDir {
  const dir = fs.mkdtempSync(path.join(tmp, `${label}-`));
  const at = (name: string) => path.join(dir, name);
  return {
    hostPath: dir,
    path: dir,
    hostPathOf: at,
    pathOf: at,
    writeFile(name, text, mode = 0o600) {
      fs.mkdirSync(path.dirname(at(name)), { recursive: true });
      fs.writeFileSync(at(name), text, { mode });
      return at(name);
    },
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

interface Spawned {
  readonly program: string;
  readonly args: readonly string[];
  readonly opts: SpawnOptions;
}

class Recorded extends Error {}

/** A runtime whose commands succeed and whose every spawn is recorded, then fails (nothing is started). */
interface Exec {
  readonly program: string;
  readonly args: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
}

function recordingRuntime(): { runtime: Runtime; spawned: Spawned[]; execs: Exec[] } {
  const spawned: Spawned[] = [];
  const execs: Exec[] = [];
  const runtime: Runtime = {
    kind: "native",
    rootDir: "/",
    versions: new Proxy({}, { get: () => "0.0" }) as Runtime["versions"],
    reason: "unit test",
    postgresUser: { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, home: tmp },
    programPath: (name) => `/usr/bin/${name}`,
    hostPath: (p) => p,
    scratchDir,
    async exec(program, args, opts): Promise<ExecResult> {
      execs.push({ program, args, env: opts?.env });
      return { code: 0, signal: null, stdout: "", stderr: "", timedOut: false };
    },
    async spawn(program, args, opts) {
      spawned.push({ program, args, opts });
      throw new Recorded(`spawn of ${program} recorded`);
    },
  };
  return { runtime, spawned, execs };
}

const spec = parseStackSpec("perf", { target: "local", node: { memory: "2Gi", cpus: 2 } });

describe("startPostgres", () => {
  it("runs a placed conf as it is: postgres -D <data directory> and no -c of the rig's", async () => {
    const { runtime, spawned } = recordingRuntime();
    const dir = scratchDir("postgres");
    const rendered = renderStack(
      spec,
      clusterPlacement({
        ports: { postgres: 41001, pgbouncer: 41002, postgresExporter: 41003, pgbouncerExporter: 41004, nodeExporter: 41005, mtail: 41006, canary: 41007, prometheus: 41008 },
        dirs: { postgres: dir.path, pgbouncer: "/p/b", postgresExporter: "/p/e", mtail: "/p/m", prometheus: "/p/p", tls: "/p/t" },
        pgdataEntry: postgresDataEntry,
      }),
    );
    const conf = rendered.files["postgresql.conf"];
    await expect(
      startPostgres({ runtime, scratch: dir, placed: true, port: 41001, caHostPath: "/p/t/ca.crt", postgresqlConf: conf, pgHbaConf: rendered.files["pg_hba.conf"] }),
    ).rejects.toThrow(Recorded);
    expect(spawned.map((s) => [s.program, s.args])).toEqual([["postgres", ["-D", rendered.placement.paths.pgdata]]]);
    expect(fs.readFileSync(dir.hostPathOf(`${postgresDataEntry}/postgresql.conf`), "utf8")).toBe(conf);
  });

  it("needs the placed conf's port and the CA of the certificate it names", async () => {
    const { runtime } = recordingRuntime();
    await expect(startPostgres({ runtime, placed: true, postgresqlConf: "", pgHbaConf: "", caHostPath: "/ca.crt" })).rejects.toThrow(/placed postgresql\.conf needs `port`/);
    await expect(startPostgres({ runtime, placed: true, postgresqlConf: "", pgHbaConf: "", port: 41001 })).rejects.toThrow(/and `caHostPath`/);
  });

  it("puts any other conf on loopback with -c options and a certificate from the rig's CA, leaving the file unedited", async () => {
    const { runtime, spawned } = recordingRuntime();
    const dir = scratchDir("postgres");
    await expect(startPostgres({ runtime, scratch: dir, port: 41101, postgresqlConf: "shared_buffers = 128MB\n", pgHbaConf: "" })).rejects.toThrow(Recorded);
    expect(spawned[0].args).toEqual([
      "-D", dir.pathOf(postgresDataEntry),
      "-c", "port=41101",
      "-c", "listen_addresses=127.0.0.1",
      "-c", `unix_socket_directories=${dir.path}`,
      "-c", `ssl_cert_file=${dir.pathOf("tls/tls.crt")}`,
      "-c", `ssl_key_file=${dir.pathOf("tls/tls.key")}`,
    ]);
    // The key is the server's alone; the certificate chains to the CA every URL of the rig names.
    expect(fs.statSync(dir.hostPathOf("tls/tls.key")).mode & 0o777).toBe(0o600);
    const [ca, certificate] = ["tls/ca.crt", "tls/tls.crt"].map((f) => fs.readFileSync(dir.hostPathOf(f), "utf8"));
    expect(certificateProblems({ caPem: ca, certificatePem: certificate, names: serverNames() })).toEqual([]);
    expect(keyMatches(certificate, fs.readFileSync(dir.hostPathOf("tls/tls.key"), "utf8"))).toBe(true);
    expect(fs.readFileSync(dir.hostPathOf(`${postgresDataEntry}/postgresql.conf`), "utf8")).toBe("shared_buffers = 128MB\n");
  });

  it("creates the cluster with configs/roles.ts's superuser, the password in a file", async () => {
    const { runtime, execs } = recordingRuntime();
    await expect(startPostgres({ runtime, port: 41102, postgresqlConf: "", pgHbaConf: "", superuserPassword: "s3cret" })).rejects.toThrow(Recorded);
    const initdb = execs.find((e) => e.program === "initdb");
    expect(initdb?.args).toContain(`--username=${superuser}`);
    expect(initdb?.args.join(" ")).not.toContain("s3cret");
  });
});

describe("startPgBouncer", () => {
  it("has PgBouncer read a placed ini byte for byte", async () => {
    const { runtime, spawned } = recordingRuntime();
    const dir = scratchDir("pgbouncer");
    const ini = renderStack(spec).files["pgbouncer.ini"];
    await expect(startPgBouncer({ runtime, scratch: dir, ini, port: 6432, placed: true, caHostPath: "/etc/pgstack/tls/ca.crt" })).rejects.toThrow(Recorded);
    expect(spawned.map((s) => s.program)).toEqual(["pgbouncer"]);
    expect(spawned[0].args).toHaveLength(1);
    expect(fs.readFileSync(spawned[0].args[0], "utf8")).toBe(ini);
    expect(fs.readdirSync(dir.hostPath).sort()).toEqual(["pgbouncer.ini"]);
  });

  it("sets its own keys in any other ini (kept as stack.ini)", async () => {
    const { runtime, spawned } = recordingRuntime();
    const dir = scratchDir("pgbouncer");
    const ini = "[databases]\napp = host=127.0.0.1 port=5432\n[pgbouncer]\nlisten_port = 6432\n";
    await expect(startPgBouncer({ runtime, scratch: dir, ini, port: 41103, userlist: "" })).rejects.toThrow(Recorded);
    const read = fs.readFileSync(spawned[0].args[0], "utf8");
    for (const line of ["listen_addr = 127.0.0.1", "listen_port = 41103", `unix_socket_dir = ${dir.path}`, "logfile = ", "pidfile = "]) expect(read).toContain(`\n${line}\n`);
    // Its certificate and the CA of both legs: the rig's, which signed every PostgreSQL the rig started too.
    for (const [key, entry] of [["client_tls_cert_file", "tls.crt"], ["client_tls_key_file", "tls.key"], ["client_tls_ca_file", "ca.crt"], ["server_tls_ca_file", "ca.crt"]]) {
      expect(read).toContain(`\n${key} = ${dir.pathOf(`tls/${entry}`)}\n`);
    }
    expect(fs.readFileSync(dir.hostPathOf("stack.ini"), "utf8")).toBe(ini);
  });
});

describe("startLaunch: the rig's one way to start an exporter", () => {
  const rendered = renderStack(spec);
  const passwords = generatePasswords();
  const inputs = secretInputs(rendered, passwords, "/host/ca.crt");

  it.each(["postgresExporter", "pgbouncerExporter", "nodeExporter", "mtail"] as const)("runs the %s launch exactly, its secrets in the environment", async (key) => {
    const { runtime, spawned } = recordingRuntime();
    const launch = rendered.launches[key];
    const secretEnv = filledSecretEnv(launch, inputs);
    await expect(startLaunch({ runtime, launch, scratch: scratchDir(key), secretEnv })).rejects.toThrow(Recorded);
    expect(spawned.map((s) => [s.program, s.args])).toEqual([[launch.program, launch.args]]);
    expect(spawned[0].opts.env).toEqual({ ...launch.env, ...secretEnv });
    for (const pw of Object.values(passwords)) expect(spawned[0].args.join(" ")).not.toContain(pw);
  });

  it("refuses a launch whose secret is missing, or sits on its command line", async () => {
    const { runtime, spawned } = recordingRuntime();
    const launch = rendered.launches.pgbouncerExporter;
    await expect(startLaunch({ runtime, launch, scratch: scratchDir("x") })).rejects.toThrow(/needs PGPASSWORD filled in/);
    const leaky: Launch = { ...launch, args: [...launch.args, `--pgBouncer.connectionString=postgres://s:${passwords.stats}@127.0.0.1:1/pgbouncer`] };
    await expect(startLaunch({ runtime, launch: leaky, scratch: scratchDir("x"), secretEnv: { PGPASSWORD: passwords.stats } })).rejects.toThrow(
      /arguments hold the value of PGPASSWORD; a secret goes in the environment only/,
    );
    expect(spawned).toEqual([]);
  });

  it("leaves the canary to local/canary-process.ts", async () => {
    const { runtime } = recordingRuntime();
    await expect(startLaunch({ runtime, launch: rendered.launches.canary, scratch: scratchDir("x"), secretEnv: filledSecretEnv(rendered.launches.canary, inputs) })).rejects.toThrow(
      /runs on this host/,
    );
  });

  it("is the only exporter starter the rig offers", () => {
    expect(Object.keys(rig).filter((name) => /^start/.test(name)).sort()).toEqual(["startLaunch", "startPgBouncer", "startPostgres", "startPrometheus"]);
    expect(fs.existsSync(path.join(__dirname, "../../local/runtime/exporters.ts"))).toBe(false);
  });
});

describe("runPgbench: the pooler's URL as libpq's environment", () => {
  it("verifies the server as the URL says: PGSSLMODE, and PGSSLROOTCERT at a copy pgbench sees; the password only in PGPASSWORD", async () => {
    const { runtime, execs } = recordingRuntime();
    const ca = path.join(tmp, "ca.crt");
    fs.writeFileSync(ca, "-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n");
    const url = `postgresql://app:s3cret-pw@127.0.0.1:6432/app?sslmode=verify-full&sslrootcert=${ca}`;
    const scripts = { search: "SELECT 1;\n", hybrid: null, insert: "SELECT 2;\n" } as unknown as Parameters<typeof runPgbench>[0]["scripts"];
    // The recording runtime's pgbench prints nothing, so the run fails after the command was recorded.
    await expect(runPgbench({ runtime, url, scripts, scenario: "search", concurrency: 2, seconds: 1 })).rejects.toThrow(/tps/);
    const pgbench = execs.find((e) => e.program === "pgbench");
    expect(pgbench?.env).toMatchObject({ PGPASSWORD: "s3cret-pw", PGSSLMODE: "verify-full" });
    const copied = pgbench?.env?.PGSSLROOTCERT ?? "";
    expect(copied).not.toBe(ca);
    expect(copied.endsWith("/ca.crt")).toBe(true);
    expect(pgbench?.args.join(" ")).not.toMatch(/s3cret-pw|sslrootcert/);
  });
});
