/**
 * The dev stack on the real Docker engine: the real Pulumi program (program.ts → DockerVectorStack) runs under the
 * engine mocks (tests/docker-engine), which create every Docker object on the engine and return its real id, so
 * outputs flow between resources as under `pulumi up`. The images are this repository's (images/), built by the
 * program's docker.Image resources from the pinned Debian 13 packages.
 *
 * Not covered (the mocks only create): the provider's diff, update, replace and refresh.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import yaml from "js-yaml";
import type { Client } from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hookTrigger } from "../../components/docker/layout";
import { silentProgress } from "../../configs/progress";
import { renderStack } from "../../configs/render";
import type { Rendered } from "../../configs/rendered";
import { ensureBaseImage } from "../../local/docker/base-image";
import { ensureDockerEngine, type DockerEngine as LocalEngine } from "../../local/docker/engine";
import { delay } from "../../local/runtime/processes";
import { connect } from "../../pgclient/connect";
import type { EngineRun } from "../docker-engine/engine-mocks";
import { removeStaleStack, runDockerStack, type DockerStackRun } from "../docker-engine/stack-run";

const stack = "e2e";
const runLabel = `docker-stack-test-${process.pid}`;
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-docker-stack-"));
const caFile = path.join(scratch, "ca.crt");

let localEngine: LocalEngine | undefined;
let run: EngineRun | undefined;
/** The second deploy's run (rotated passwords), removed in afterAll as well. */
let rotatedRun: EngineRun | undefined;
let deployed: DockerStackRun;
let rendered: Rendered;
const clients: Client[] = [];

interface ContainerSummary {
  Id: string;
  Names: string[];
  State: string;
  Labels: Record<string, string>;
}
interface ContainerInspect {
  Id: string;
  State: { Running: boolean; ExitCode: number; Health?: { Status: string } };
  RestartCount: number;
  HostConfig: { ReadonlyRootfs: boolean; ShmSize: number; NetworkMode: string; CapAdd: string[] | null; CapDrop: string[] | null };
}

/** The run's containers by name (pgstack-e2e-<role>). */
async function containers(): Promise<Map<string, ContainerSummary>> {
  const filters = JSON.stringify({ label: [`pgvector-stack.engine-run=${runLabel}`] });
  const list = await run!.engine.json<ContainerSummary[]>("GET", "/containers/json", { query: { all: 1, filters } });
  return new Map(list.map((c) => [c.Names[0].replace(/^\//, ""), c]));
}

async function inspect(name: string): Promise<ContainerInspect> {
  return run!.engine.json<ContainerInspect>("GET", `/containers/${name}/json`);
}

/** What `cmd` prints inside the container (as its own user); fails the test on a non-zero exit. */
async function inside(name: string, cmd: string[]): Promise<string> {
  const result = await run!.engine.exec(name, cmd);
  if (result.exitCode !== 0) throw new Error(`${cmd.join(" ")} in ${name} exited ${result.exitCode}: ${result.stderr}${result.stdout}`);
  return result.stdout.trim();
}

/** A stack output URL, verifying the server against the CA where this test keeps it. */
function hostUrl(output: string): string {
  const url = new URL(deployed.outputs[output] as string);
  expect(url.searchParams.get("sslmode")).toBe("verify-full");
  url.searchParams.set("sslrootcert", caFile);
  return url.toString();
}

async function client(output: string): Promise<Client> {
  const c = await connect(hostUrl(output), "pgstack-docker-stack-test");
  clients.push(c);
  return c;
}

async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await delay(1000);
  }
}

async function prometheus<T>(apiPath: string): Promise<T> {
  const response = await fetch(`http://127.0.0.1:${deployed.ports.prometheus}${apiPath}`);
  if (!response.ok) throw new Error(`Prometheus ${apiPath} answered ${response.status}`);
  return ((await response.json()) as { data: T }).data;
}

beforeAll(async () => {
  localEngine = await ensureDockerEngine(silentProgress);
  await ensureBaseImage(silentProgress, { socketPath: localEngine.socketPath });
  // Left by a run that was killed before its afterAll (or by `e2e:docker --keep`, the same stack name).
  await removeStaleStack(stack);
  deployed = await runDockerStack({ stack, runLabel }, (r) => (run = r));
  // A first deploy: nothing adopted from an earlier run.
  expect(run!.created.filter((o) => o.adopted)).toEqual([]);
  // The same gate and renderers the program ran, over the same config (the mocks hold it); loaded after the mocks.
  const { readNamespaceConfig, stackSpecFromConfig } = await import("../../program");
  rendered = renderStack(stackSpecFromConfig(stack, readNamespaceConfig()));
  fs.writeFileSync(caFile, deployed.outputs.caCertificate as string);
}, 30 * 60_000);

afterAll(async () => {
  try {
    for (const c of clients) await c.end().catch(() => undefined);
    // Whatever happened: nothing of this run stays but the image layers (the next build's cache).
    for (const r of [rotatedRun, run]) if (r !== undefined) await r.removeEverything({ keepImages: true });
  } finally {
    await localEngine?.stop();
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}, 5 * 60_000);

describe("the dev stack on the real Docker engine", () => {
  it("starts every container: the database healthy, the rest running, the roles job and the hook run to completion", async () => {
    const all = await containers();
    const hook = `pgstack-${stack}-hook-${hookTrigger(rendered.files["plan.json"]).slice(0, 12)}`;
    const longRunning = ["netns", "postgres", "pgbouncer", "postgres-exporter", "pgbouncer-exporter", "node-exporter", "mtail", "prometheus", "canary"].map(
      (role) => `pgstack-${stack}-${role}`,
    );
    const roles = `pgstack-${stack}-roles`;
    expect([...all.keys()].sort()).toEqual([...longRunning, hook, roles].sort());
    for (const name of longRunning) expect((await inspect(name)).State.Running, name).toBe(true);
    expect((await inspect(`pgstack-${stack}-postgres`)).State.Health?.Status).toBe("healthy");
    for (const name of [hook, roles]) expect((await inspect(name)).State, name).toMatchObject({ Running: false, ExitCode: 0 });
  });

  it("makes the hook's report the hookReport output: indexes built, the smoke benchmark's table", async () => {
    const report = deployed.outputs.hookReport as { planSha256: string; exitCode: number; log: string };
    expect(report.exitCode).toBe(0);
    expect(report.planSha256).toBe(hookTrigger(rendered.files["plan.json"]));
    // The index of the stack's table and the benchmark's scratch table, and a result per scenario.
    expect(report.log).toContain("memories_embedding_hnsw_idx");
    for (const scenario of ["insert", "search", "hybrid", "mixed", "sustained"]) expect(report.log).toContain(`"name": "${scenario}"`);
    expect(report.log).toContain('"usesIndex": true');
  });

  it("admits a SCRAM login through PgBouncer on the published 127.0.0.1 port, verify-full against the CA output", async () => {
    const app = await client("connectionString");
    const { rows } = await app.query<{ who: string; ssl: boolean }>("SELECT current_user AS who, (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()) AS ssl");
    // PgBouncer's leg to PostgreSQL is TLS too (server_tls_sslmode verify-full).
    expect(rows[0]).toEqual({ who: "app", ssl: true });
    expect(new URL(hostUrl("connectionString")).port).toBe(String(deployed.ports.pgbouncer));
    const readOnly = await client("readOnlyConnectionString");
    await expect(readOnly.query("CREATE TABLE pgstack_should_fail (id int)")).rejects.toThrow(/permission denied/);
    // The superuser is refused on TCP whatever its password: socket only (pg_hba.conf).
    const superuser = new URL(hostUrl("ownerConnectionString"));
    superuser.username = "postgres";
    await expect(connect(superuser.toString(), "pgstack-docker-stack-test")).rejects.toThrow(/pg_hba\.conf rejects connection/);
  });

  it("has Prometheus scrape every job up and load every alert rule, read from its API", async () => {
    const jobs = ((yaml.load(rendered.files["prometheus.yml"]!) as { scrape_configs: { job_name: string }[] }).scrape_configs ?? []).map((j) => j.job_name).sort();
    expect(jobs.length).toBeGreaterThanOrEqual(5);
    const targets = await waitFor(
      "every scrape target up",
      async () => {
        const data = await prometheus<{ activeTargets: { labels: { job: string }; health: string }[] }>("/api/v1/targets");
        const up = data.activeTargets.filter((t) => t.health === "up").map((t) => t.labels.job);
        return up.length === data.activeTargets.length && [...new Set(up)].sort().join() === jobs.join() ? data.activeTargets : undefined;
      },
      180_000,
    );
    expect(targets.length).toBeGreaterThanOrEqual(jobs.length);
    const wantAlerts = (yaml.load(rendered.files["alert-rules.yaml"]) as { groups: { rules: { alert?: string }[] }[] }).groups
      .flatMap((g) => g.rules)
      .filter((r) => r.alert !== undefined)
      .map((r) => r.alert!)
      .sort();
    const loaded = await prometheus<{ groups: { rules: { type: string; name: string; health: string }[] }[] }>("/api/v1/rules");
    const alerting = loaded.groups.flatMap((g) => g.rules).filter((r) => r.type === "alerting");
    expect(alerting.map((r) => r.name).sort()).toEqual(wantAlerts);
    for (const rule of alerting) expect(rule.health, rule.name).not.toBe("err");
  });

  it("runs each program as the component says: users, file owners and modes, /dev/shm, one network namespace", async () => {
    const name = (role: string) => `pgstack-${stack}-${role}`;
    // PostgreSQL runs as 999 with no capability left (the entrypoint dropped to postgres); the key is postgres's, 0600.
    const status = await inside(name("postgres"), ["cat", "/proc/1/status"]);
    expect(status).toMatch(/^Uid:\s+999\s+999\s+999\s+999$/m);
    expect(status).toMatch(/^CapEff:\s+0+$/m);
    expect(await inside(name("postgres"), ["stat", "-c", "%u:%g %a", rendered.tls.files.key])).toBe("999:999 600");
    expect(await inside(name("postgres"), ["stat", "-c", "%u:%g %a", "/etc/postgresql/postgresql.conf"])).toBe("0:0 644");
    expect(await inside(name("postgres"), ["stat", "-c", "%u:%g %a", rendered.placement.paths.pgdata])).toBe("999:999 700");
    // /dev/shm as the memory plan says (shmSize), for parallel HNSW builds.
    const shm = Number(await inside(name("postgres"), ["df", "-B1", "--output=size", "/dev/shm"]).then((o) => o.split("\n")[1]));
    expect(shm).toBe((deployed.outputs.memoryPlan as { shmSizeBytes: number }).shmSizeBytes);
    // The images' users and ours (mtail as the postgres uid, the canary as node).
    const uid = (role: string) => inside(name(role), ["id", "-u"]);
    expect(await uid("pgbouncer")).toBe("999");
    expect(await uid("mtail")).toBe("999");
    expect(await uid("canary")).toBe("1000");
    for (const role of ["postgres-exporter", "pgbouncer-exporter", "node-exporter", "prometheus", "netns"]) expect(await uid(role), role).toBe("65534");
    // Read-only root filesystems where nothing is uploaded.
    expect((await inspect(name("node-exporter"))).HostConfig.ReadonlyRootfs).toBe(true);
    expect((await inspect(name("netns"))).HostConfig.ReadonlyRootfs).toBe(true);
    expect((await run!.engine.exec(name("node-exporter"), ["touch", "/probe"])).exitCode).not.toBe(0);
    // One network namespace, the holder's.
    const netns = await inside(name("netns"), ["readlink", "/proc/self/ns/net"]);
    for (const role of ["postgres", "pgbouncer", "postgres-exporter", "pgbouncer-exporter", "node-exporter", "mtail", "prometheus", "canary"]) {
      expect(await inside(name(role), ["readlink", "/proc/self/ns/net"]), role).toBe(netns);
    }
  });

  it("keeps the data and the shared namespace when the PostgreSQL container restarts", async () => {
    const owner = await connect(hostUrl("ownerConnectionString"), "pgstack-docker-stack-test");
    await owner.query("CREATE TABLE e2e_restart AS SELECT g AS id FROM generate_series(1, 1000) g");
    await owner.end();
    const postgres = `pgstack-${stack}-postgres`;
    const netnsBefore = await inside(postgres, ["readlink", "/proc/self/ns/net"]);
    await run!.engine.request("POST", `/containers/${postgres}/restart`, { query: { t: 60 } });
    await waitFor("PostgreSQL healthy again", async () => ((await inspect(postgres)).State.Health?.Status === "healthy" ? true : undefined), 120_000);
    expect(await inside(postgres, ["readlink", "/proc/self/ns/net"])).toBe(netnsBefore);
    // Through the same PgBouncer, which never restarted, on the same published port.
    const count = await waitFor(
      "a query through PgBouncer after the restart",
      async () => {
        const app = await connect(hostUrl("connectionString"), "pgstack-docker-stack-test");
        try {
          return (await app.query<{ n: string }>("SELECT count(*) AS n FROM e2e_restart")).rows[0].n;
        } finally {
          await app.end();
        }
      },
      60_000,
    );
    expect(count).toBe("1000");
    expect((await inspect(`pgstack-${stack}-pgbouncer`)).RestartCount).toBe(0);
  });

  it("leaves the retained data volume and nothing else when the stack is removed", async () => {
    const kept = await run!.destroy();
    const keptVolumes = kept.filter((k) => k.kind === "volume").map((k) => k.engineName);
    expect(keptVolumes).toEqual([`pgstack-${stack}-data`]);
    // Built images stay as @pulumi/docker's Image delete leaves them; nothing else is kept.
    expect(kept.filter((k) => k.kind !== "volume" && k.kind !== "image")).toEqual([]);
    const filters = JSON.stringify({ label: [`pgvector-stack.engine-run=${runLabel}`] });
    expect(await run!.engine.json<unknown[]>("GET", "/containers/json", { query: { all: 1, filters } })).toEqual([]);
    expect(await run!.engine.json<unknown[]>("GET", "/networks", { query: { filters } })).toEqual([]);
    const volumes = (await run!.engine.json<{ Volumes: { Name: string }[] | null }>("GET", "/volumes", { query: { filters } })).Volumes ?? [];
    expect(volumes.map((v) => v.Name)).toEqual([`pgstack-${stack}-data`]);
  });

  it("deployed again on the kept data with every password changed, applies them: new ones in, old ones out, data kept", async () => {
    // Every container replaced, as `pulumi up` replaces each whose uploads changed, on the data volume kept above. The
    // mocks generate new random passwords for every role, and the app's is set as a stack secret: a rotation of all.
    const oldApp = new URL(deployed.outputs.connectionString as string);
    const rotatedPassword = `rotated-${process.pid}-Pw`;
    const again = await runDockerStack({ stack, runLabel: `${runLabel}-rotated`, secrets: { appPassword: rotatedPassword } }, (r) => (rotatedRun = r));
    expect(again.run.created.find((o) => o.kind === "volume" && o.engineName === `pgstack-${stack}-data`)?.adopted).toBe(true);
    fs.writeFileSync(caFile, again.outputs.caCertificate as string);
    deployed = again;
    // The roles job ran on the initialised volume (the entrypoint's init scripts did not) and set every verifier.
    const url = new URL(hostUrl("connectionString"));
    expect(decodeURIComponent(url.password)).toBe(rotatedPassword);
    const app = await connect(url.toString(), "pgstack-docker-stack-test");
    expect((await app.query<{ n: string }>("SELECT count(*) AS n FROM e2e_restart")).rows[0].n).toBe("1000");
    await app.end();
    // The old password, at the new PgBouncer: refused.
    url.password = oldApp.password;
    await expect(connect(url.toString(), "pgstack-docker-stack-test")).rejects.toThrow(/SASL authentication failed|password authentication failed/);
    // The stack's own clients got theirs in their new containers: the exporters and the canary scrape up again.
    await waitFor(
      "every scrape target up with the rotated passwords",
      async () => {
        const data = await prometheus<{ activeTargets: { health: string }[] }>("/api/v1/targets");
        return data.activeTargets.length > 0 && data.activeTargets.every((t) => t.health === "up") ? true : undefined;
      },
      180_000,
    );
    expect((again.outputs.hookReport as { exitCode: number }).exitCode).toBe(0);
  });
});
