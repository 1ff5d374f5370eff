/**
 * The Kubernetes pod's tls-reloader script (components/kubernetes/tls-spec.ts tlsReloadScript), run for real with
 * Debian 13's sh and psql as the postgres OS user against a real perf cluster (PostgreSQL 17, PgBouncer 1.24), the way
 * the sidecar runs it in the pod: PostgreSQL's socket by peer, PgBouncer's console as its admin user over loopback.
 * A `pulumi up` with a changed appPassword changes two Secrets, the bootstrap script (a new verifier) and PgBouncer's
 * auth_file; here those two files change the same way, and the loop must apply the first to PostgreSQL, then reload
 * PgBouncer: the new password logs in directly and through PgBouncer, the old one is refused, and nothing else
 * (the canary, the exporters' logins) notices.
 */
import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Client } from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterSpec, parseClusterFlags } from "../../cli/local";
import { tlsReloadScript } from "../../components/kubernetes/tls-spec";
import { scramSaltBytes, scramVerifier } from "../../configs/scram";
import { LocalCluster } from "../../local/cluster";
import { clusterBootstrapSql, clusterUserlist, connectionUrl } from "../../local/cluster-files";
import { getRuntime, stopAll, type Runtime } from "../../local/runtime";
import { readState, type ClusterState } from "../../local/state";
import { teardownFromState } from "../../local/teardown";
import { randomBytes } from "node:crypto";

const stateRoot = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-reloader-"));
const name = `reloader-${process.pid}`;
const { spec } = clusterSpec(parseClusterFlags(["--memory", "1Gi"]).flags);
const cluster = new LocalCluster({ name, spec, stateRoot, hugePages: false });
let state: ClusterState;
let runtime: Runtime;
let loop: ChildProcess | undefined;
let stdout = "";
let stderr = "";

beforeAll(async () => {
  runtime = await getRuntime();
  await cluster.start();
  state = readState(stateRoot, name) as ClusterState;
});

afterAll(async () => {
  loop?.kill("SIGKILL");
  await cluster.stop().catch(() => undefined);
  await teardownFromState(stateRoot, name).catch(() => undefined);
  await stopAll();
  fs.rmSync(stateRoot, { recursive: true, force: true });
});

async function outcome(url: string): Promise<string> {
  const client = new Client({ connectionString: url, application_name: "reloader-test" });
  try {
    await client.connect();
    await client.query("SELECT 1");
    return "ok";
  } catch (error) {
    return (error as Error).message;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function until(what: string, condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; the loop said:\n${stdout}${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The verifiers PostgreSQL holds now, by role (read on the socket as the superuser). */
async function currentVerifiers(): Promise<Record<string, string>> {
  const client = new Client({ connectionString: cluster.info.superuserUrl });
  await client.connect();
  try {
    const rows = await client.query<{ rolname: string; rolpassword: string }>("SELECT rolname, rolpassword FROM pg_authid WHERE rolpassword IS NOT NULL");
    return Object.fromEntries(rows.rows.map((r) => [r.rolname, r.rolpassword]));
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Replaces a file the way the kubelet updates a mounted Secret: the new content appears at once, never half-written. */
function swap(hostPath: string, text: string): void {
  fs.writeFileSync(`${hostPath}.new`, text, { mode: 0o644 });
  fs.renameSync(`${hostPath}.new`, hostPath);
}

describe("the tls-reloader script against real servers", () => {
  it("applies a rotated password to PostgreSQL, then reloads PgBouncer: new password in, old one out", async () => {
    const { rendered } = cluster;
    const { placement } = rendered;
    const scratch = runtime.scratchDir("reloader");
    const bootstrapFile = `${scratch.path}/10-pgstack-roles.sql`;
    const pgbouncerVerifiers = await currentVerifiers();
    // PgBouncer's users that are not database roles keep the verifiers its auth_file holds now.
    const userlistNow = fs.readFileSync(runtime.hostPath(placement.paths.pgbouncerAuthFile), "utf8");
    for (const line of userlistNow.split("\n").filter(Boolean)) {
      const [user, verifier] = line.split(" ").map((q) => q.slice(1, -1));
      pgbouncerVerifiers[user] ??= verifier;
    }
    fs.writeFileSync(scratch.hostPathOf("10-pgstack-roles.sql"), clusterBootstrapSql(rendered, pgbouncerVerifiers), { mode: 0o644 });

    const script = tlsReloadScript({
      tlsDir: path.posix.dirname(placement.paths.tlsCertificate),
      socketDir: placement.paths.postgresSocketDir,
      postgresPort: placement.ports.postgres,
      pgbouncerPort: placement.ports.pgbouncer,
      superuser: rendered.roles.superuser,
      pgbouncerAdmin: rendered.roles.pgbouncerAdmin,
      bootstrapFile,
      userlistFile: placement.paths.pgbouncerAuthFile,
      intervalSeconds: 0.5,
    });
    const env = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", HOME: "/tmp", LANG: "C.UTF-8", PGPASSWORD: state.passwords.pgbouncerAdmin };
    const { uid, gid } = runtime.postgresUser;
    loop =
      runtime.kind === "chroot"
        ? spawn("chroot", [`--userspec=${uid}:${gid}`, `--groups=${gid}`, runtime.rootDir, "/bin/sh", "-c", script], { env, stdio: ["ignore", "pipe", "pipe"] })
        : spawn("/bin/sh", ["-c", script], { env, uid, gid, stdio: ["ignore", "pipe", "pipe"] });
    loop.stdout?.on("data", (d) => (stdout += String(d)));
    loop.stderr?.on("data", (d) => (stderr += String(d)));
    const count = (line: string) => stdout.split("\n").filter((l) => l.startsWith(`tls-reloader: ${line}`)).length;

    // At start: everything once, in order.
    await until("the first round", () => count("PgBouncer reloaded") === 1);
    expect(stdout.split("\n").filter(Boolean).map((l) => l.replace(/ \(sha256 .*$/, ""))).toEqual([
      "tls-reloader: PostgreSQL reloaded its certificate files",
      "tls-reloader: roles and passwords applied to PostgreSQL",
      "tls-reloader: PgBouncer reloaded its certificate files and auth_file",
    ]);

    // pulumi up with a new appPassword: both Secrets change.
    const oldApp = state.passwords.app;
    const newApp = "Reloader-Rotated-0002";
    const verifiers = { ...pgbouncerVerifiers, [rendered.roles.app]: scramVerifier(newApp, randomBytes(scramSaltBytes)) };
    swap(scratch.hostPathOf("10-pgstack-roles.sql"), clusterBootstrapSql(rendered, verifiers));
    swap(runtime.hostPath(placement.paths.pgbouncerAuthFile), clusterUserlist(rendered.roles, verifiers));
    await until("the rotation", () => count("PgBouncer reloaded") === 2);
    expect(count("roles and passwords applied")).toBe(2);
    expect(count("PostgreSQL reloaded")).toBe(1);

    const url = (password: string, port: number) => connectionUrl(rendered.roles.app, password, port, spec.postgres.database, cluster.info.caPath);
    expect(await outcome(url(newApp, placement.ports.pgbouncer))).toBe("ok");
    expect(await outcome(url(newApp, placement.ports.postgres))).toBe("ok");
    expect(await outcome(url(oldApp, placement.ports.pgbouncer))).toBe("SASL authentication failed");
    expect(await outcome(url(oldApp, placement.ports.postgres))).toMatch(/password authentication failed for user "app"/);
    // The other roles kept their verifiers: the read-only role still gets in through PgBouncer.
    expect(await outcome(cluster.info.readOnlyUrl)).toBe("ok");
    expect(stderr).toBe("");
  }, 90_000);
});
