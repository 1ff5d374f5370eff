/**
 * The images under images/, built on the real Docker engine (started here when none answers) FROM debian:trixie-slim
 * (made with debootstrap when the engine lacks it), then run: each runs exactly the version images/packages.txt pins
 * (dpkg's record and the program's own --version), as the user with the uid the targets assume, with the entrypoint
 * and paths the Docker component relies on. The postgres image's entrypoint initialises an empty PGDATA from a SCRAM
 * verifier in POSTGRES_PASSWORD_FILE and an init .sql file, uploaded root:root as the component uploads them, under
 * the component's capabilities, then serves; PgBouncer writes its log on a new named volume, as on the Docker target.
 *
 * Builds reuse the engine's layer cache, so a second run takes seconds. Every container and volume carries the label
 * pgvector-stack.test=images and is removed afterwards, also when a test fails; the images stay, tagged by the hash of
 * their inputs (pgstack-test/<image>:<hash>).
 */
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { containerHardening, postgresEntrypoint, secretFile, superuserPasswordVariable } from "../../components/docker/layout";
import { buildLabels, imageTag, imageUsers, packagesFor, pgstackImages, type PgstackImage } from "../../configs/image-packages";
import { containerPgbouncerLog, pgbouncerContainerCommand } from "../../configs/pgbouncer-log";
import { silentProgress } from "../../configs/progress";
import { scramSaltBytes, scramVerifier } from "../../configs/scram";
import { ensureBaseImage } from "../../local/docker/base-image";
import { dockerAnswers, ensureDockerEngine, type DockerEngine } from "../../local/docker/engine";
import { buildImage, type BuiltImage } from "../../local/docker/image-build";
import { readPgstackImageInputs } from "../../components/image-inputs";
import { removeTreeWithoutMounts } from "../../local/runtime/mounts";
import { delay, runCommand, type ExecResult } from "../../local/runtime/processes";

const testLabel = "pgvector-stack.test=images";
const inputs = readPgstackImageInputs(path.resolve(__dirname, "..", ".."));
const list = inputs.list;
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-images-test-"));

let engine: DockerEngine | undefined;
const built = new Map<PgstackImage, BuiltImage>();

function docker(args: readonly string[], timeoutMs = 120_000): Promise<ExecResult> {
  return runCommand("docker", args, { env: { ...process.env, DOCKER_HOST: `unix://${engine!.socketPath}` }, timeoutMs });
}

/** stdout of a docker command that must succeed; its stderr in the error otherwise. */
async function ok(args: readonly string[], timeoutMs?: number): Promise<string> {
  const result = await docker(args, timeoutMs);
  if (result.code !== 0) throw new Error(`docker ${args.join(" ")} failed (exit ${result.code}):\n${result.stderr}${result.stdout}`);
  return result.stdout.trim();
}

/** Runs the image once and returns what it printed, stdout and stderr together (some programs print versions on stderr). */
async function runOnce(image: PgstackImage, args: readonly string[], entrypoint?: string): Promise<string> {
  const result = await docker(["run", "--rm", "--label", testLabel, ...(entrypoint === undefined ? [] : ["--entrypoint", entrypoint]), tag(image), ...args]);
  if (result.code !== 0) throw new Error(`${image} ${args.join(" ")} exited ${result.code}:\n${result.stderr}${result.stdout}`);
  return `${result.stdout}${result.stderr}`.trim();
}

function tag(image: PgstackImage): string {
  const b = built.get(image);
  if (b === undefined) throw new Error(`the ${image} image was not built (see beforeAll)`);
  return b.tag;
}

async function removeLabelled(): Promise<void> {
  const containers = (await ok(["ps", "-aq", "--filter", `label=${testLabel}`])).split("\n").filter(Boolean);
  if (containers.length > 0) await ok(["rm", "-fv", ...containers]);
  const volumes = (await ok(["volume", "ls", "-q", "--filter", `label=${testLabel}`])).split("\n").filter(Boolean);
  if (volumes.length > 0) await ok(["volume", "rm", "-f", ...volumes]);
}

/** The upstream release inside a Debian version: `1:0.10.2-2` → 0.10.2, `20.19.2+dfsg-1+deb13u3` → 20.19.2. */
function upstreamVersion(debianVersion: string): string {
  return debianVersion.replace(/^\d+:/, "").replace(/-[^-]*$/, "").split("+")[0];
}

function pinned(name: string): string {
  const p = list.packages.find((pkg) => pkg.name === name);
  if (p === undefined) throw new Error(`images/packages.txt pins no ${name}`);
  return p.version;
}

/**
 * Polls `check` until it holds. Fails at once when the container is no longer running, and with its log either way,
 * so a failure says why.
 */
async function waitFor(container: string, what: string, check: () => Promise<boolean>, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    const running = (await docker(["inspect", "--format", "{{.State.Running}}", container])).stdout.trim() === "true";
    if (!running || Date.now() > deadline) {
      const logs = await docker(["logs", "--tail", "40", container]);
      throw new Error(`${running ? `timed out after ${timeoutMs / 1000} s` : `${container} stopped`} waiting for ${what}; its log:\n${logs.stdout}${logs.stderr}`);
    }
    await delay(500);
  }
}

beforeAll(async () => {
  engine = await ensureDockerEngine(silentProgress);
  // Left over from a run that was killed before its afterAll.
  await removeLabelled();
  await ensureBaseImage(silentProgress, { socketPath: engine.socketPath });
  for (const image of pgstackImages) {
    const reference = imageTag("pgstack-test/", image, inputs.sha256[image]);
    built.set(image, await buildImage(image, reference, silentProgress, { socketPath: engine.socketPath, labels: buildLabels(image, list, inputs.sha256[image]) }));
  }
}, 30 * 60_000);

afterAll(async () => {
  try {
    if (engine !== undefined) await removeLabelled();
  } finally {
    await engine?.stop();
    fs.rmSync(scratch, { recursive: true, force: true });
  }
});

describe.each(pgstackImages)("the %s image", (image) => {
  it("holds exactly the packages packages.txt pins for it, and says so in its label", async () => {
    const expected = packagesFor(list, image).map((p) => `${p.name} ${p.version}`);
    expect(expected.length).toBeGreaterThan(0);
    expect((await runOnce(image, ["/usr/local/share/pgstack/installed"], "cat")).split("\n")).toEqual(expected);
    const names = packagesFor(list, image).map((p) => p.name);
    const dpkg = await runOnce(image, ["-W", "-f", "${Package} ${Version}\\n", ...names], "dpkg-query");
    expect(dpkg.split("\n").sort()).toEqual([...expected].sort());
    const labels = JSON.parse(await ok(["image", "inspect", "--format", "{{json .Config.Labels}}", tag(image)])) as Record<string, string>;
    expect(labels["pgvector-stack.packages"]).toBe(packagesFor(list, image).map((p) => `${p.name}=${p.version}`).join(" "));
    expect(labels["pgvector-stack.inputs-sha256"]).toBe(inputs.sha256[image]);
    expect(labels["org.opencontainers.image.title"]).toBe(`pgvector-stack ${image}`);
  });

  it("has its user with the fixed uid and gid, and runs as it", async () => {
    const user = imageUsers[image];
    expect(await runOnce(image, ["-u", user.user], "id")).toBe(String(user.uid));
    expect(await runOnce(image, ["-g", user.user], "id")).toBe(String(user.gid));
    // Without --user: the image's USER. postgres starts as root; its entrypoint drops to postgres (below).
    expect(await runOnce(image, ["-u"], "id")).toBe(image === "postgres" ? "0" : String(user.uid));
  });

  it("keeps no package lists and no documentation beyond copyright files", async () => {
    const left = await runOnce(image, ["-c", "ls /var/lib/apt/lists | grep -v -e '^lock$' -e '^partial$'; find /usr/share/doc -type f ! -name copyright | head -5; ls /usr/share/man"], "sh");
    expect(left).toBe("");
  });
});

describe("the programs run the pinned versions", () => {
  it.each([
    ["postgres", ["postgres", "--version"], undefined, "postgresql-17", /^postgres \(PostgreSQL\) (\S+) /],
    ["postgres", ["psql", "--version"], undefined, "postgresql-client-17", /^psql \(PostgreSQL\) (\S+) /],
    ["postgres", ["pg_isready", "--version"], undefined, "postgresql-client-17", /^pg_isready \(PostgreSQL\) (\S+) /],
    ["postgres", ["pgbackrest", "version"], undefined, "pgbackrest", /^pgBackRest (\S+)$/],
    ["pgbouncer", ["pgbouncer", "--version"], undefined, "pgbouncer", /^PgBouncer (\S+)$/m],
    ["postgres-exporter", ["--version"], undefined, "prometheus-postgres-exporter", /^postgres_exporter, version (\S+) /],
    ["pgbouncer-exporter", ["--version"], undefined, "prometheus-pgbouncer-exporter", /^pgbouncer_exporter, version (\S+) /],
    ["node-exporter", ["--version"], undefined, "prometheus-node-exporter", /^node_exporter, version (\S+) /],
    ["prometheus", ["--version"], undefined, "prometheus", /^prometheus, version (\d[\d.]*)/],
    ["prometheus", ["--version"], "promtool", "promtool", /^promtool, version (\d[\d.]*)/],
    ["mtail", ["--version"], undefined, "mtail", /^mtail version (\S+) /],
    ["node", ["node", "--version"], undefined, "nodejs", /^v(\S+)$/],
  ] as const)("%s: %s", async (image, args, entrypoint, pkg, pattern) => {
    const printed = await runOnce(image, args, entrypoint);
    expect(pattern.exec(printed)?.[1], printed).toBe(upstreamVersion(pinned(pkg)));
  });
});

describe("the entrypoints the Docker component relies on", () => {
  it.each([
    ["postgres-exporter", "/bin/postgres_exporter"],
    ["pgbouncer-exporter", "/bin/pgbouncer_exporter"],
    ["node-exporter", "/bin/node_exporter"],
    ["prometheus", "/bin/prometheus"],
    ["mtail", "/usr/bin/mtail"],
    ["postgres", "docker-entrypoint.sh"],
  ] as const)("%s: ENTRYPOINT [%s]", async (image, entrypoint) => {
    expect(JSON.parse(await ok(["image", "inspect", "--format", "{{json .Config.Entrypoint}}", tag(image)]))).toEqual([entrypoint]);
  });

  it("pgbouncer_exporter runs through the component's /bin/sh shim", async () => {
    // fileSecretShim's shape: sh reads the secret files, then execs the image's program with the command.
    const printed = await runOnce("pgbouncer-exporter", ["-c", 'exec /bin/pgbouncer_exporter "$@"', "pgbouncer_exporter", "--version"], "/bin/sh");
    expect(printed).toMatch(/^pgbouncer_exporter, version /);
  });

  it("prometheus works in /prometheus, nobody's, and has /etc/prometheus", async () => {
    const config = JSON.parse(await ok(["image", "inspect", "--format", "{{json .Config}}", tag("prometheus")])) as { WorkingDir: string; Volumes: Record<string, unknown> };
    expect(config.WorkingDir).toBe("/prometheus");
    expect(Object.keys(config.Volumes)).toEqual(["/prometheus"]);
    expect(await runOnce("prometheus", ["-c", "stat -c '%u:%g' /prometheus && test -d /etc/prometheus && echo ok"], "sh")).toBe("65534:65534\nok");
  });

  it("node: CMD node, and node runs a script", async () => {
    expect(JSON.parse(await ok(["image", "inspect", "--format", "{{json .Config.Cmd}}", tag("node")]))).toEqual(["node"]);
    expect(await runOnce("node", ["node", "-e", "console.log(require('node:crypto').createHash('sha256').update('x').digest('hex').length)"])).toBe("64");
  });

  it("pgbouncer: the component's command writes the log on a new named volume, as postgres", async () => {
    const volume = `pgstack-images-test-${process.pid}`;
    await ok(["volume", "create", "--label", testLabel, volume]);
    const name = `pgstack-images-test-pgbouncer-${process.pid}`;
    await ok([
      "create", "--name", name, "--label", testLabel,
      "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true",
      "-v", `${volume}:${path.posix.dirname(containerPgbouncerLog)}`,
      tag("pgbouncer"), ...pgbouncerContainerCommand("/etc/pgbouncer/pgbouncer.ini", containerPgbouncerLog),
    ]);
    // Uploaded root:root 0644, as the provider uploads the rendered file.
    const upload = path.join(scratch, "pgbouncer");
    fs.mkdirSync(path.join(upload, "etc/pgbouncer"), { recursive: true });
    fs.writeFileSync(
      path.join(upload, "etc/pgbouncer/pgbouncer.ini"),
      ["[databases]", "* = host=127.0.0.1 port=5432", "[pgbouncer]", "listen_addr = 127.0.0.1", "listen_port = 6432", "unix_socket_dir =",
        "auth_type = scram-sha-256", "auth_file = /etc/pgbouncer/userlist.txt", `logfile = ${containerPgbouncerLog}`, ""].join("\n"),
    );
    fs.writeFileSync(path.join(upload, "etc/pgbouncer/userlist.txt"), "");
    await ok(["cp", `${upload}/.`, `${name}:/`]);
    await ok(["start", name]);
    await waitFor(name, "PgBouncer's log file on the volume", async () => (await docker(["exec", name, "grep", "-q", "process up", containerPgbouncerLog])).code === 0, 30_000);
    expect(await ok(["exec", name, "stat", "-c", "%u:%g %U", path.posix.dirname(containerPgbouncerLog), containerPgbouncerLog])).toBe("999:999 postgres\n999:999 postgres");
    expect(await ok(["exec", name, "sh", "-c", "readlink /proc/1/exe; stat -c %u /proc/1"])).toBe("/usr/sbin/pgbouncer\n999");
  });
});

describe("the postgres image's entrypoint", () => {
  const name = `pgstack-images-test-postgres-${process.pid}`;
  const password = randomBytes(18).toString("hex");
  const verifier = scramVerifier(password, randomBytes(scramSaltBytes));
  const keyPath = "/etc/pgstack/tls/tls.key";
  const psql = (sql: string) => ok(["exec", "-u", "postgres", name, "psql", "-v", "ON_ERROR_STOP=1", "--no-psqlrc", "-tAc", sql]);
  const ready = async () => (await docker(["exec", name, "pg_isready", "--host=127.0.0.1", "--port=5432", "--username=postgres"])).code === 0;

  beforeAll(async () => {
    // As the Docker component runs it: its entrypoint wrapper (chown of the uploaded key, then docker-entrypoint.sh),
    // the superuser's verifier in POSTGRES_PASSWORD_FILE, every capability dropped but postgresCapabilities, and
    // no-new-privileges. The command adds pgaudit to the preload libraries, so its extension can be created below.
    const hardening = containerHardening("postgres");
    await ok([
      "create", "--name", name, "--label", testLabel,
      "--env", `${superuserPasswordVariable}_FILE=${secretFile(superuserPasswordVariable)}`,
      ...hardening.capabilities.drops.flatMap((c) => ["--cap-drop", c]),
      ...(hardening.capabilities.adds ?? []).flatMap((c) => ["--cap-add", c]),
      ...hardening.securityOpts.flatMap((o) => ["--security-opt", o]),
      "--entrypoint", postgresEntrypoint(keyPath)[0],
      tag("postgres"), ...postgresEntrypoint(keyPath).slice(1), "postgres", "-c", "shared_preload_libraries=pgaudit",
    ]);
    // The uploads, root:root as the provider writes them: the verifier, an init script, a stand-in for the TLS key.
    const upload = path.join(scratch, "postgres");
    for (const dir of ["etc/pgstack/secrets", "etc/pgstack/tls", "docker-entrypoint-initdb.d"]) fs.mkdirSync(path.join(upload, dir), { recursive: true });
    fs.writeFileSync(path.join(upload, secretFile(superuserPasswordVariable)), verifier);
    fs.writeFileSync(path.join(upload, "docker-entrypoint-initdb.d/10-test.sql"), "CREATE TABLE init_marker (value int);\nINSERT INTO init_marker VALUES (42);\n");
    fs.writeFileSync(path.join(upload, keyPath), "not a key: only its owner and mode are checked\n");
    await ok(["cp", `${upload}/.`, `${name}:/`]);
    await ok(["start", name]);
    await waitFor(name, "pg_isready on 127.0.0.1:5432", ready);
  }, 180_000);

  it("initialised PGDATA as postgres, ran the init script and serves on TCP", async () => {
    const logs = await docker(["logs", name]);
    expect(`${logs.stdout}${logs.stderr}`).toContain("running /docker-entrypoint-initdb.d/10-test.sql");
    expect(await psql("SELECT value FROM init_marker")).toBe("42");
    expect(await ok(["exec", name, "stat", "-c", "%u:%g %a", "/var/lib/postgresql/data", "/var/lib/postgresql/data/PG_VERSION"])).toBe("999:999 700\n999:999 600");
  });

  it("stored the SCRAM verifier from POSTGRES_PASSWORD_FILE as it is, which the password then matches", async () => {
    expect(await psql("SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'")).toBe(verifier);
    // A password login over TCP with scram-sha-256 proves the verifier is the password's. initdb's pg_hba.conf
    // trusts loopback, so the check writes its own (the stack passes its hba_file instead).
    const hba = await ok(["exec", "-u", "postgres", name, "sh", "-c", `printf 'local all all peer\\nhost all all 127.0.0.1/32 scram-sha-256\\n' > "$PGDATA/pg_hba.conf" && psql -tAc 'SELECT pg_reload_conf()'`]);
    expect(hba).toBe("t");
    const login = await docker(["exec", "-e", `PGPASSWORD=${password}`, name, "psql", "--host=127.0.0.1", "--username=postgres", "--dbname=postgres", "-tAc", "SELECT current_user"]);
    expect(login.stdout.trim(), login.stderr).toBe("postgres");
    const wrong = await docker(["exec", "-e", "PGPASSWORD=wrong", name, "psql", "--host=127.0.0.1", "--username=postgres", "--dbname=postgres", "-tAc", "SELECT 1"]);
    expect(wrong.stderr).toContain('password authentication failed for user "postgres"');
  });

  it("runs PostgreSQL as postgres with no capability left, and the key is postgres's 0600", async () => {
    expect(await ok(["exec", name, "sh", "-c", "stat -c %u /proc/1; grep -E '^Cap(Prm|Eff):' /proc/1/status"])).toBe("999\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000");
    expect(await ok(["exec", name, "stat", "-c", "%U %a", keyPath])).toBe("postgres 600");
    // The password's verifier does not reach the server's environment.
    expect(await ok(["exec", "-u", "postgres", name, "sh", "-c", "tr '\\0' '\\n' < /proc/1/environ | grep -c ^POSTGRES_PASSWORD || true"])).toBe("0");
  });

  it("has pgvector and pgaudit at the pinned versions", async () => {
    expect(await psql("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'")).toBe(upstreamVersion(pinned("postgresql-17-pgvector")));
    expect(await psql("SELECT default_version FROM pg_available_extensions WHERE name = 'pgaudit'")).toBe(upstreamVersion(pinned("postgresql-17-pgaudit")));
    await psql("CREATE EXTENSION IF NOT EXISTS vector; CREATE EXTENSION IF NOT EXISTS pgaudit");
    expect(await psql("SELECT string_agg(extname || ' ' || extversion, ', ' ORDER BY extname) FROM pg_extension WHERE extname IN ('vector', 'pgaudit')")).toBe(
      `pgaudit ${upstreamVersion(pinned("postgresql-17-pgaudit"))}, vector ${upstreamVersion(pinned("postgresql-17-pgvector"))}`,
    );
    expect(await psql("SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector")).toBe("1");
  });

  it("stops on SIGINT with a fast shutdown, and starts again without initialising", async () => {
    await ok(["stop", "--time", "60", name], 90_000);
    const state = JSON.parse(await ok(["inspect", "--format", "{{json .State}}", name])) as { ExitCode: number };
    expect(state.ExitCode).toBe(0);
    expect((await docker(["logs", name])).stderr).toContain("received fast shutdown request");
    await ok(["start", name]);
    await waitFor(name, "pg_isready after the restart", ready);
    const logs = await docker(["logs", name]);
    expect(`${logs.stdout}${logs.stderr}`).toContain("holds a database; skipping initialisation");
    expect(await psql("SELECT value FROM init_marker")).toBe("42");
  });

  it("refuses to initialise without a password", async () => {
    const result = await docker(["run", "--rm", "--label", testLabel, tag("postgres")]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("no superuser password is set: set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE");
  });
});

describe("ensureDockerEngine", () => {
  it("starts dockerd when none answers, finds it again without owning it, and stop() ends exactly that daemon", async () => {
    // A second daemon beside the engine above: its own socket, data and state, and its own network and mount
    // namespaces. Never in the host's: dockerd --bridge=none deletes the host's docker0, which the engine above uses.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-dockerd-test-"));
    const socketPath = path.join(dir, "docker.sock");
    /** Processes whose command line names the private directory: that dockerd and the containerd it starts. */
    const ours = () =>
      fs.readdirSync("/proc").filter((pid) => {
        try {
          return /^\d+$/.test(pid) && fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(dir);
        } catch {
          return false;
        }
      });
    const hostInterfaces = fs.readdirSync("/sys/class/net").sort();
    let started: DockerEngine | undefined;
    try {
      started = await ensureDockerEngine(silentProgress, {
        socketPath,
        dockerdCommand: ["unshare", "--net", "--mount", "--propagation", "private", "dockerd"],
        logFile: path.join(dir, "dockerd.log"),
        dockerdArgs: [`--data-root=${dir}/data`, `--exec-root=${dir}/exec`, `--pidfile=${dir}/docker.pid`, "--bridge=none", "--iptables=false", "--ip6tables=false"],
      });
      expect(started.startedHere).toBe(true);
      expect(ours().length).toBeGreaterThan(0);
      const found = await ensureDockerEngine(silentProgress, { socketPath });
      expect(found.startedHere).toBe(false);
      await found.stop();
      expect(await dockerAnswers(socketPath)).toBe(true);
      await started.stop();
      expect(await dockerAnswers(socketPath)).toBe(false);
      expect(ours()).toEqual([]);
      // The engine the other tests use is untouched, its containers' network included.
      expect(await dockerAnswers(engine!.socketPath)).toBe(true);
      expect(fs.readdirSync("/sys/class/net").sort()).toEqual(hostInterfaces);
    } finally {
      await started?.stop().catch(() => undefined);
      // Refuses (and fails the test) should the daemon have left a mount in its data root.
      removeTreeWithoutMounts(dir);
    }
  });
});
