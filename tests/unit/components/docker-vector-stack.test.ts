/**
 * The docker target under Pulumi's mocks: the dev stack (Pulumi.dev.yaml) rendered by configs/render.ts and wired by
 * DockerVectorStack. What Docker itself would do with these inputs is not exercised here (no engine).
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import * as pulumi from "@pulumi/pulumi";
import yaml from "js-yaml";
import { beforeEach, describe, expect, it } from "vitest";
import { DockerVectorStack } from "../../../components/docker/vector-stack";
import { pgstackImageOf, pgstackImageTag, readPgstackImageInputs } from "../../../components/image-inputs";
import type { ImageKey } from "../../../configs/stack-spec";
import { nodeExporterArgs } from "../../../configs/exporters";
import { mtailArgs } from "../../../configs/mtail";
import { pgbouncerContainerCommand } from "../../../configs/pgbouncer-log";
import { roleSalt as scramSalt } from "../../../configs/scram";
import { containerDataMount, defaultPorts, placementFor } from "../../../configs/placement";
import { renderStack } from "../../../configs/render";
import type { Rendered } from "../../../configs/rendered";
import { monitorRole, passwordKey, roleKinds, statsUser, type RoleKind } from "../../../configs/roles";
import { isScramVerifier, scramVerifier } from "../../../configs/scram";
import { parseStackSpec, stackConfigFromFile } from "../../../configs/spec";
import { parseBytes } from "../../../configs/units";
import { type RecordedResource, byType, installMocks, mockPem, mockPrivateKeyPrefix, one, outputOf, settle } from "./pulumi-harness";

const MiB = 1024 * 1024;
const containerType = "docker:index/container:Container";
const configuredSecret = "configured-app-Secret-7f3kQ";
const hookBundle = "// bundled pgstack CLI\nrequire('./cli/main');\n";

type Config = Record<string, unknown>;

const projectRoot = `${__dirname}/../../..`;
const imageKeys = Object.keys(pgstackImageOf).sort() as ImageKey[];

function devConfig(): Config {
  const file = yaml.load(readFileSync(`${__dirname}/../../../Pulumi.dev.yaml`, "utf8")) as { config: Config };
  return stackConfigFromFile(file.config);
}

function rendered(change: (config: Config) => void = () => {}): Rendered {
  const config = devConfig();
  change(config);
  return renderStack(parseStackSpec("dev", config));
}

// Pulumi's wire format for a secret value, as the mocks receive it.
const secretSig = "1b47061264138c4ac30d75fd1eb44270";
const sigKey = "4dabf18193072939515e22adb298388d";

function isSecretValue(v: unknown): v is { value: unknown } {
  return typeof v === "object" && v !== null && (v as Record<string, unknown>)[sigKey] === secretSig;
}

/** The value with every secret wrapper removed. */
function reveal(v: unknown): unknown {
  if (isSecretValue(v)) return reveal(v.value);
  if (Array.isArray(v)) return v.map(reveal);
  if (typeof v === "object" && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, reveal(x)]));
  return v;
}

interface Upload {
  file: string;
  content: string;
}

function uploads(r: RecordedResource): Upload[] {
  return (reveal(r.inputs.uploads) ?? []) as Upload[];
}

function upload(r: RecordedResource, file: string): string {
  const found = uploads(r).filter((u) => u.file === file);
  expect(found, `${r.name} uploads ${file} once`).toHaveLength(1);
  return found[0].content;
}

function labels(r: RecordedResource): Record<string, string> {
  return Object.fromEntries(((r.inputs.labels ?? []) as { label: string; value: string }[]).map((l) => [l.label, l.value]));
}

function container(recorded: readonly RecordedResource[], role: string): RecordedResource {
  return one(recorded, containerType, `-${role}`);
}

/**
 * A container's environment with every `<VAR>_FILE=<secret file>` read back as `VAR=<the uploaded value>`: what the
 * program sees. The env itself holds only the paths (tests/unit/components/docker-hardening.test.ts).
 */
function filledEnvs(r: RecordedResource): string[] {
  return ((reveal(r.inputs.envs) ?? []) as string[]).map((e) => {
    const m = /^([A-Z_]+)_FILE=(\/etc\/pgstack\/secrets\/.+)$/.exec(e);
    return m === null ? e : `${m[1]}=${upload(r, m[2])}`;
  });
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** Every job the rules' `up` and `absent` guards name (`job="x"`, `job=~"x|y"`), sorted. */
function jobsNamedIn(rulesYaml: string): string[] {
  const jobs = new Set<string>();
  for (const m of rulesYaml.matchAll(/\bjob=~?"([^"]*)"/g)) for (const job of m[1].split("|")) jobs.add(job);
  return [...jobs].sort();
}

interface Deployed {
  readonly recorded: RecordedResource[];
  readonly stack: DockerVectorStack;
  readonly rendered: Rendered;
}

let recorded: RecordedResource[];

/** A password for every role kind: two stacks given the same get the same verifiers. */
const everyPassword: Record<RoleKind, string> = { superuser: "s", owner: "o", app: "a", readOnly: "r", canary: "c", monitor: "m", stats: "t", pgbouncerAdmin: "b" };

beforeEach(() => {
  recorded = installMocks({ "pgvector-stack:appPassword": configuredSecret });
});

async function deploy(name: string, r: Rendered, passwords: Partial<Record<RoleKind, string>> = {}): Promise<Deployed> {
  const config = new pulumi.Config("pgvector-stack");
  const stack = new DockerVectorStack(name, {
    rendered: r,
    hookBundle,
    ...Object.fromEntries(roleKinds.map((kind) => [passwordKey(kind), passwords[kind]])),
    appPassword: passwords.app ?? config.requireSecret("appPassword"),
  });
  await outputOf(stack.hookReport);
  await outputOf(stack.connectionString);
  await settle();
  return { recorded: recorded.filter((x) => x.name === name || x.name.startsWith(`${name}-`)), stack, rendered: r };
}

describe("DockerVectorStack: the dev stack", () => {
  it("creates a network, three volumes, nine containers, the roles job and the hook, each running its image built from images/", async () => {
    const { recorded: res, rendered: r } = await deploy("dev", rendered());
    expect(byType(res, "docker:index/network:Network").map((n) => n.inputs.name)).toEqual(["pgstack-dev"]);
    expect(byType(res, "docker:index/volume:Volume").map((v) => v.inputs.name).sort()).toEqual(["pgstack-dev-data", "pgstack-dev-pgbouncer-log", "pgstack-dev-socket"]);
    const planSha256 = createHash("sha256").update(r.files["plan.json"]).digest("hex");
    expect(
      byType(res, containerType)
        .map((c) => c.inputs.name)
        .sort(),
    ).toEqual([
      "pgstack-dev-canary",
      `pgstack-dev-hook-${planSha256.slice(0, 12)}`,
      "pgstack-dev-mtail",
      "pgstack-dev-netns",
      "pgstack-dev-node-exporter",
      "pgstack-dev-pgbouncer",
      "pgstack-dev-pgbouncer-exporter",
      "pgstack-dev-postgres",
      "pgstack-dev-postgres-exporter",
      "pgstack-dev-prometheus",
      "pgstack-dev-roles",
    ]);
    // images.source defaults to pgstack on Docker: each of this repository's images built on the engine, pushed nowhere,
    // tagged by the hash of its inputs, and each container runs its build by digest (repoDigest: the local image ID).
    expect(byType(res, "docker:index/remoteImage:RemoteImage")).toEqual([]);
    const builds = byType(res, "docker:index/image:Image");
    const inputs = readPgstackImageInputs(projectRoot);
    expect(builds.map((b) => b.inputs.imageName).sort()).toEqual(
      imageKeys.map((key) => pgstackImageTag(inputs, pgstackImageOf[key])).sort(),
    );
    for (const key of imageKeys) {
      const build = builds.find((b) => b.name === `dev-images-${key}`)!;
      expect(build.inputs).toEqual({
        imageName: `pgstack-${pgstackImageOf[key]}:${inputs.sha256[pgstackImageOf[key]].slice(0, 12)}`,
        // The engine's own platform: the one that runs it.
        build: { context: "images", dockerfile: `images/${pgstackImageOf[key]}/Dockerfile` },
        // Built by `pulumi up`, not by `pulumi preview`.
        buildOnPreview: false,
        skipPush: true,
      });
    }
    const runs = (role: string) => container(res, role).inputs.image;
    const digest = (key: ImageKey) => `${pgstackImageTag(inputs, pgstackImageOf[key])}@sha256:mock`;
    expect(runs("postgres-container")).toBe(digest("postgres"));
    expect(runs("pgbouncer-container")).toBe(digest("pgbouncer"));
    expect(runs("postgres-exporter")).toBe(digest("postgresExporter"));
    expect(runs("pgbouncer-exporter")).toBe(digest("pgbouncerExporter"));
    expect(runs("node-exporter")).toBe(digest("nodeExporter"));
    expect(runs("mtail")).toBe(digest("mtail"));
    expect(runs("prometheus")).toBe(digest("prometheus"));
    expect(runs("canary-container")).toBe(digest("node"));
    expect(runs("hook-container")).toBe(digest("node"));
  });

  it("with images.source upstream, pulls each public image once, pinned by tag, and runs it by image ID", async () => {
    const { recorded: res, rendered: r } = await deploy("dev", rendered((c) => (c.images = { source: "upstream" })));
    expect(byType(res, "docker:index/image:Image")).toEqual([]);
    const images = byType(res, "docker:index/remoteImage:RemoteImage").map((i) => i.inputs.name);
    const want = r.spec.images.upstream;
    // One pull per image key: the hook and the canary share the node image (keepLocally: never removed by either).
    expect(images.sort()).toEqual(imageKeys.map((key) => want[key]).sort());
    for (const image of images) expect(image).toMatch(/:[A-Za-z0-9._-]+$/);
    expect(images).not.toContainEqual(expect.stringMatching(/:latest$/));
    expect(container(res, "postgres-container").inputs.image).toBe(`${want.postgres}@sha256:mock`);
    expect(container(res, "hook-container").inputs.image).toBe(`${want.node}@sha256:mock`);
    expect(container(res, "mtail").inputs.image).toBe(`${want.mtail}@sha256:mock`);
  });

  it("uploads the rendered files byte for byte, as content", async () => {
    const { recorded: res, rendered: r } = await deploy("dev", rendered());
    const db = container(res, "postgres-container");
    expect(upload(db, "/etc/postgresql/postgresql.conf")).toBe(r.files["postgresql.conf"]);
    expect(upload(db, "/etc/postgresql/pg_hba.conf")).toBe(r.files["pg_hba.conf"]);
    expect(upload(db, "/etc/postgresql/pg_ident.conf")).toBe(r.files["pg_ident.conf"]);
    expect(db.inputs.command).toEqual([
      "postgres",
      "-c",
      "config_file=/etc/postgresql/postgresql.conf",
      "-c",
      "hba_file=/etc/postgresql/pg_hba.conf",
      "-c",
      "ident_file=/etc/postgresql/pg_ident.conf",
    ]);
    expect(upload(container(res, "pgbouncer-container"), "/etc/pgbouncer/pgbouncer.ini")).toBe(r.files["pgbouncer.ini"]);
    expect(upload(container(res, "postgres-exporter"), "/etc/pgstack/postgres-exporter-queries.yaml")).toBe(r.files["postgres-exporter-queries.yaml"]);
    expect(upload(container(res, "mtail"), "/etc/mtail/postgresql.mtail")).toBe(r.files["postgresql.mtail"]);
    const prometheus = container(res, "prometheus");
    expect(upload(prometheus, "/etc/prometheus/rules/alert-rules.yaml")).toBe(r.files["alert-rules.yaml"]);
    // The rendered prometheus.yml as it is, not one built here.
    expect(r.files["prometheus.yml"]).toBeDefined();
    expect(upload(prometheus, "/etc/prometheus/prometheus.yml")).toBe(r.files["prometheus.yml"]);
    const scrape = yaml.load(upload(prometheus, "/etc/prometheus/prometheus.yml")) as {
      rule_files: string[];
      scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
    };
    expect(scrape.rule_files).toEqual(["/etc/prometheus/rules/alert-rules.yaml"]);
    expect(scrape.scrape_configs.map((c) => [c.job_name, c.static_configs[0].targets])).toEqual([
      ["postgres", ["127.0.0.1:9187"]],
      ["pgbouncer", ["127.0.0.1:9127"]],
      ["node", ["127.0.0.1:9100"]],
      ["canary", ["127.0.0.1:9188"]],
      ["mtail", ["127.0.0.1:3903"]],
    ]);
    const hook = container(res, "hook-container");
    expect(upload(hook, "/etc/pgstack/plan.json")).toBe(r.files["plan.json"]);
    expect(upload(hook, "/hook/pgstack.js")).toBe(hookBundle);
    expect(upload(container(res, "canary-container"), "/hook/pgstack.js")).toBe(hookBundle);
    for (const c of byType(res, containerType)) {
      for (const u of uploads(c)) {
        expect(Object.keys(u).sort(), `${c.name} ${u.file}`).toEqual(["content", "file"]);
      }
    }
  });

  it("bootstraps roles and PgBouncer from the same SCRAM verifiers, never from passwords", async () => {
    const passwords = { superuser: "su-Pw-1", app: "app-Pw-2", monitor: "mon-Pw-3", stats: "stats-Pw-4" };
    const r0 = rendered();
    const { recorded: res } = await deploy("dev", r0, passwords);
    const verifier = (role: string, pw: string) => scramVerifier(pw, scramSalt("dev", role, pw));
    const db = container(res, "postgres-container");
    // Applied by the roles job on every deploy that changes it, not by the entrypoint on the first start only.
    expect(uploads(db).map((u) => u.file)).not.toContain("/docker-entrypoint-initdb.d/10-pgstack-roles.sql");
    const roles = container(res, "roles-container");
    const sql = upload(roles, "/etc/pgstack/roles-bootstrap.sql");
    expect(roles.inputs.command).toEqual([
      "psql",
      "--no-psqlrc",
      "-v",
      "ON_ERROR_STOP=1",
      "--host=/var/run/postgresql",
      "--port=5432",
      "--username=postgres",
      "--dbname=postgres",
      "--file=/etc/pgstack/roles-bootstrap.sql",
    ]);
    // On the socket only, as the image's postgres user (peer authentication): no network, no password.
    expect(roles.inputs).toMatchObject({ user: "999:999", networkMode: "none", attach: true, restart: "no" });
    expect(roles.inputs.volumes).toEqual([{ volumeName: "pgstack-dev-socket", containerPath: "/var/run/postgresql" }]);
    // No hash of the SQL anywhere in plain sight: the salts are derived from the passwords, so it would let a chosen
    // password be guessed offline. The secret upload itself replaces the container when a password changes.
    expect(roles.inputs.name).toBe("pgstack-dev-roles");
    expect(isSecretValue(roles.inputs.uploads)).toBe(true);
    expect(JSON.stringify(roles.inputs.labels)).not.toContain(sha256(sql));
    expect(JSON.stringify(roles.inputs.labels)).not.toContain(sha256(sql).slice(0, 12));
    expect(sql.startsWith(r0.files["roles.sql"])).toBe(true);
    expect(sql).toContain(`ALTER ROLE "app" PASSWORD '${verifier("app", passwords.app)}'`);
    expect(sql).toContain(`ALTER ROLE "${monitorRole}" PASSWORD '${verifier(monitorRole, passwords.monitor)}'`);
    expect(sql).toContain(`ALTER ROLE "postgres" PASSWORD '${verifier("postgres", passwords.superuser)}'`);
    // initdb stores the superuser's verifier from POSTGRES_PASSWORD as it is.
    expect(filledEnvs(db)).toEqual([`POSTGRES_PASSWORD=${verifier("postgres", passwords.superuser)}`]);
    const userlist = upload(container(res, "pgbouncer-container"), "/etc/pgbouncer/userlist.txt");
    const generated = (kind: string) => `mock-password-dev-${kind}-password`;
    expect(userlist).toBe(
      [
        `"app" "${verifier("app", passwords.app)}"`,
        `"app_readonly" "${verifier("app_readonly", generated("readOnly"))}"`,
        `"pgstack_canary" "${verifier("pgstack_canary", generated("canary"))}"`,
        `"pgstack_pgbouncer_admin" "${verifier("pgstack_pgbouncer_admin", generated("pgbouncerAdmin"))}"`,
        `"${statsUser}" "${verifier(statsUser, passwords.stats)}"`,
        "",
      ].join("\n"),
    );
    for (const line of userlist.trim().split("\n")) expect(isScramVerifier(line.split(" ")[1].slice(1, -1))).toBe(true);
  });

  it("gives the same verifiers on every run, so a preview replaces nothing", async () => {
    const first = await deploy("a", rendered(), everyPassword);
    const second = await deploy("b", rendered(), everyPassword);
    // The TLS files aside: every stack has a CA and a certificate of its own (the mocks name theirs after the stack).
    const withoutTls = (inputs: Record<string, unknown>) => (reveal(inputs.uploads) as Upload[]).filter((u) => !u.file.startsWith("/etc/pgstack/tls/"));
    for (const role of ["postgres-container", "pgbouncer-container"]) {
      const [a, b] = [first, second].map((d) => container(d.recorded, role).inputs);
      expect(withoutTls(b), role).toEqual(withoutTls(a));
      expect(reveal(b.envs), role).toEqual(reveal(a.envs));
    }
  });

  it("sizes /dev/shm at least to maintenance_work_mem, for every node size", async () => {
    for (const memory of ["8Gi", "32Gi", "128Gi"]) {
      recorded = installMocks();
      const r = rendered((c) => ((c.node as Config).memory = memory));
      const { recorded: res, stack } = await deploy(`shm-${memory}`, r, { app: "x" });
      const shm = container(res, "postgres-container").inputs.shmSize as number;
      expect(shm * MiB, memory).toBeGreaterThanOrEqual(r.memory.maintenanceWorkMemBytes);
      for (const e of r.indexPlan) {
        const build = parseBytes(e.build.maintenanceWorkMem);
        expect(build.ok && shm * MiB >= build.value, `${memory}: the hook's build maintenance_work_mem ${e.build.maintenanceWorkMem}`).toBe(true);
      }
      expect(shm, "more than Docker's 64 MiB default").toBeGreaterThan(64);
      expect(stack.memoryPlan.shmSizeBytes).toBe(shm * MiB);
    }
  });

  it("sets no ulimit: huge pages mapped with MAP_HUGETLB are not charged to memlock, whatever huge_pages says", async () => {
    const { recorded: res } = await deploy("dev", rendered());
    expect(container(res, "postgres-container").inputs.ulimits).toBeUndefined();

    recorded = installMocks();
    const off = await deploy("off", rendered((c) => ((c.postgres as Config).hugePages = "off")), { app: "x" });
    expect(container(off.recorded, "postgres-container").inputs.ulimits).toBeUndefined();
    expect(off.stack.hugePages.mode).toBe("off");
  });

  it("retains the data volume, frees fixed names before replacing, orders the hook after the database and PgBouncer", async () => {
    // Resource options never reach the mocks; a (legacy) transformation on the component sees each child's options.
    const options: Record<string, pulumi.CustomResourceOptions> = {};
    const stack = new DockerVectorStack(
      "opts",
      { rendered: rendered(), hookBundle, appPassword: "x" },
      { transformations: [(a) => void (options[a.name] = a.opts as pulumi.CustomResourceOptions)] },
    );
    await outputOf(stack.hookReport);
    await settle();
    expect(options["opts-postgres-data"].retainOnDelete).toBe(true);
    const containers = Object.keys(options).filter((n) => byType(recorded, containerType).some((c) => c.name === n));
    expect(containers).toHaveLength(11);
    for (const n of containers) expect(options[n].deleteBeforeReplace, n).toBe(true);
    const canaryAfter = await Promise.all(((options["opts-canary-container"].dependsOn ?? []) as pulumi.Resource[]).map((d) => outputOf(d.urn)));
    expect(canaryAfter.map((u) => u.split("::").pop())).toEqual(["opts-pgbouncer-container"]);
    const hook = options["opts-hook-container"];
    expect(hook.replaceOnChanges).toEqual(["labels"]);
    const after = (hook.dependsOn ?? []) as pulumi.Resource[];
    const urns = await Promise.all(after.map((d) => outputOf(d.urn)));
    expect(urns.map((u) => u.split("::").pop()).sort()).toEqual(["opts-pgbouncer-container", "opts-postgres-container"]);
  });

  it("health-checks PostgreSQL with pg_isready on TCP, waits for it, restarts it", async () => {
    const db = container((await deploy("dev", rendered())).recorded, "postgres-container");
    expect(db.inputs.healthcheck).toEqual({
      tests: ["CMD", "pg_isready", "--host=127.0.0.1", "--port=5432", "--username=postgres"],
      // Go's Duration.String() spelling, which the provider reads back: anything else would diff on every run.
      interval: "5s",
      timeout: "3s",
      retries: 6,
      startPeriod: "2m0s",
    });
    expect(db.inputs.wait).toBe(true);
    expect(db.inputs.restart).toBe("unless-stopped");
    expect(db.inputs.volumes).toEqual([
      { volumeName: "pgstack-dev-data", containerPath: "/var/lib/postgresql/data" },
      { volumeName: "pgstack-dev-socket", containerPath: "/var/run/postgresql" },
    ]);
  });

  it("runs PostgreSQL, PgBouncer, the metric sources and Prometheus in the namespace holder's network namespace", async () => {
    const { recorded: res } = await deploy("dev", rendered());
    const dbId = "dev-namespace-container-id"; // the mocks' id for the namespace holder
    // It holds the namespace and nothing else: sleep as nobody, read-only, killed at once on stop, restarted if it dies.
    expect(container(res, "namespace-container").inputs).toMatchObject({
      entrypoints: ["sleep", "infinity"],
      user: "65534:65534",
      readOnly: true,
      stopSignal: "SIGKILL",
      restart: "unless-stopped",
      networksAdvanced: [{ name: "pgstack-dev", aliases: ["postgres", "pgbouncer"] }],
    });
    expect(container(res, "namespace-container").inputs.uploads).toBeUndefined();
    for (const role of ["postgres-container", "pgbouncer-container", "postgres-exporter", "pgbouncer-exporter", "node-exporter", "mtail", "prometheus", "canary-container"]) {
      const c = container(res, role);
      expect(c.inputs.networkMode, role).toBe(`container:${dbId}`);
      expect(c.inputs.networksAdvanced, role).toBeUndefined();
      expect(c.inputs.restart, `${role}: Docker restarts it (pgbouncer_exporter exits while PgBouncer is down)`).toBe("unless-stopped");
    }
    expect(container(res, "postgres-exporter").inputs.command).toContain("--web.listen-address=127.0.0.1:9187");
    expect(container(res, "pgbouncer-exporter").inputs.command).toContain("--web.listen-address=127.0.0.1:9127");
  });

  it("runs node_exporter and mtail with the shared command lines, the data volume read-only, nothing of the host", async () => {
    const { recorded: res, rendered: r } = await deploy("dev", rendered());
    const node = container(res, "node-exporter");
    const mtail = container(res, "mtail");
    expect(node.inputs.name).toBe("pgstack-dev-node-exporter");
    expect(mtail.inputs.name).toBe("pgstack-dev-mtail");
    expect(node.inputs.command).toEqual([...nodeExporterArgs(), "--web.listen-address=127.0.0.1:9100"]);
    expect(mtail.inputs.command).toEqual([...mtailArgs({ programsDir: "/etc/mtail", pgdata: containerDataMount }), "--address", "127.0.0.1", "--port", "3903"]);
    // The files' owner in the postgres image: PGDATA is 0700 and the collector's log files 0600.
    expect(mtail.inputs.user).toBe("999:999");
    expect(node.inputs.user, "the image's own user (nobody)").toBeUndefined();
    // The very volume PostgreSQL writes, at its path there, read-only.
    const db = container(res, "postgres-container");
    expect(db.inputs.volumes).toEqual([
      { volumeName: "pgstack-dev-data", containerPath: containerDataMount },
      { volumeName: "pgstack-dev-socket", containerPath: "/var/run/postgresql" },
    ]);
    expect(node.inputs.volumes).toEqual([{ volumeName: "pgstack-dev-data", containerPath: containerDataMount, readOnly: true }]);
    // mtail also reads PgBouncer's logfile from the volume PgBouncer writes it to, read-only.
    expect(mtail.inputs.volumes).toEqual([
      { volumeName: "pgstack-dev-data", containerPath: containerDataMount, readOnly: true },
      { volumeName: "pgstack-dev-pgbouncer-log", containerPath: "/var/run/pgbouncer", readOnly: true },
    ]);
    const pgbouncer = container(res, "pgbouncer-container");
    expect(pgbouncer.inputs.volumes).toEqual([{ volumeName: "pgstack-dev-pgbouncer-log", containerPath: "/var/run/pgbouncer" }]);
    expect(pgbouncer.inputs.command).toEqual(pgbouncerContainerCommand("/etc/pgbouncer/pgbouncer.ini", r.placement.paths.pgbouncerLog));
    expect(mtail.inputs.command).toContain(r.placement.paths.pgbouncerLog);
    for (const c of [node, mtail]) {
      // Every capability dropped (docker-hardening.test.ts holds every container to its set).
      expect(c.inputs.capabilities, `${c.name}.capabilities`).toEqual({ drops: ["ALL"] });
      for (const key of ["mounts", "pidMode", "ipcMode", "usernsMode", "privileged", "devices", "ports", "publishAllPorts", "networksAdvanced"]) {
        expect(c.inputs[key], `${c.name}.${key}`).toBeUndefined();
      }
      expect(c.inputs.networkMode, c.name).toBe("container:dev-namespace-container-id");
      expect(c.inputs.restart, c.name).toBe("unless-stopped");
    }
    // No container of the stack binds a host path.
    for (const c of byType(res, containerType)) {
      expect(c.inputs.mounts, `${c.name}.mounts`).toBeUndefined();
      for (const v of (c.inputs.volumes ?? []) as Record<string, unknown>[]) expect(v.hostPath, `${c.name} volume ${JSON.stringify(v)}`).toBeUndefined();
    }
  });

  it("labels mtail with its program's sha256, so a new program is a new container, and nothing else moves", async () => {
    const passwords = { superuser: "s", app: "a", monitor: "m", stats: "t" };
    const base = rendered();
    const edited: Rendered = { ...base, files: { ...base.files, "postgresql.mtail": `${base.files["postgresql.mtail"]}# edited\n` } };
    // The same stack name twice, each in a fresh mock session, so ids and URNs match and only the program differs.
    const before = await deploy("program", base, passwords);
    recorded = installMocks();
    const after = await deploy("program", edited, passwords);
    const mtailOf = (d: Deployed) => container(d.recorded, "mtail");
    for (const d of [before, after]) {
      expect(labels(mtailOf(d))["pgvector-stack.mtail-program-sha256"]).toBe(sha256(d.rendered.files["postgresql.mtail"]));
      expect(upload(mtailOf(d), "/etc/mtail/postgresql.mtail")).toBe(d.rendered.files["postgresql.mtail"]);
    }
    expect(labels(mtailOf(after))["pgvector-stack.mtail-program-sha256"]).not.toBe(labels(mtailOf(before))["pgvector-stack.mtail-program-sha256"]);
    for (const role of ["node-exporter", "postgres-container", "prometheus"]) {
      expect(reveal(container(after.recorded, role).inputs), role).toEqual(reveal(container(before.recorded, role).inputs));
    }
  });

  it("publishes ports only on the namespace holder, bound to 127.0.0.1", async () => {
    const { recorded: res, rendered: r, stack } = await deploy("dev", rendered());
    const withPorts = byType(res, containerType).filter((c) => c.inputs.ports !== undefined);
    expect(withPorts.map((c) => c.inputs.name)).toEqual(["pgstack-dev-netns"]);
    const { ports } = r.spec.docker;
    expect(withPorts[0].inputs.ports).toEqual([
      { internal: 5432, external: ports.postgres, ip: "127.0.0.1", protocol: "tcp" },
      { internal: 6432, external: ports.pgbouncer, ip: "127.0.0.1", protocol: "tcp" },
      { internal: 9090, external: ports.prometheus, ip: "127.0.0.1", protocol: "tcp" },
    ]);
    expect(stack.endpoints).toEqual({ pooled: "127.0.0.1:6432", direct: "127.0.0.1:5432", prometheus: "127.0.0.1:9090" });
  });

  it("runs the canary from the bundle as its own role on loopback, scraped as job canary", async () => {
    const { recorded: res, rendered: r } = await deploy("dev", rendered());
    const canary = container(res, "canary-container");
    expect(canary.inputs.name).toBe("pgstack-dev-canary");
    expect(canary.inputs.command).toEqual(["node", "/hook/pgstack.js", "canary", "--listen", "127.0.0.1:9188"]);
    expect(canary.inputs).toMatchObject({ networkMode: "container:dev-namespace-container-id", restart: "unless-stopped", user: "node" });
    expect(canary.inputs.ports).toBeUndefined();
    expect(labels(canary)["pgvector-stack.bundle-sha256"]).toBe(sha256(hookBundle));
    // The URLs are secret env, never a label, command or upload.
    expect(isSecretValue(canary.inputs.uploads)).toBe(true);
    expect(filledEnvs(canary)).toEqual([
      "PGSTACK_DIRECT_URL=postgresql://pgstack_canary:mock-password-dev-canary-password@127.0.0.1:5432/app?sslmode=verify-full&sslrootcert=/etc/pgstack/tls/ca.crt",
      "PGSTACK_POOLED_URL=postgresql://pgstack_canary:mock-password-dev-canary-password@127.0.0.1:6432/app?sslmode=verify-full&sslrootcert=/etc/pgstack/tls/ca.crt",
    ]);
    // Prometheus, in the same namespace, scrapes it with the stack label, and its rules are in the uploaded file.
    const prometheus = container(res, "prometheus");
    const scrape = yaml.load(upload(prometheus, "/etc/prometheus/prometheus.yml")) as { scrape_configs: { job_name: string; static_configs: { targets: string[]; labels: Record<string, string> }[] }[] };
    expect(scrape.scrape_configs.find((c) => c.job_name === "canary")).toEqual({ job_name: "canary", static_configs: [{ targets: ["127.0.0.1:9188"], labels: { stack: "dev" } }] });
    const rules = yaml.load(upload(prometheus, "/etc/prometheus/rules/alert-rules.yaml")) as { groups: { name: string; rules: { alert?: string; expr: string }[] }[] };
    expect(rules.groups.map((g) => g.name)).toEqual([
      "pgstack-dev-pgbouncer",
      "pgstack-dev-postgres",
      "pgstack-dev-canary",
      "pgstack-dev-mtail",
      "pgstack-dev-node",
      "pgstack-dev-targets",
    ]);
    const canaryAlerts = rules.groups.find((g) => g.name === "pgstack-dev-canary")!.rules.flatMap((x) => (x.alert ? [x.alert] : []));
    expect(canaryAlerts).toEqual(["CanaryConnectionFailures", "CertificateExpiresSoon", "CertificateExpiresSoon", "VectorQueryLatencyP95High", "QueryLatencyP99High"]);
    expect(rules.groups.find((g) => g.name === "pgstack-dev-targets")!.rules.map((x) => x.expr).join("\n")).toContain('job="canary"');
    // node_exporter and mtail run beside it now, so their rules are rendered too: every job a rule's guard names is
    // scraped, and nothing else is.
    expect(scrape.scrape_configs.map((c) => c.job_name).sort()).toEqual(jobsNamedIn(r.files["alert-rules.yaml"]));
  });

  it("runs the hook to completion and reports its log", async () => {
    const { recorded: res, stack, rendered: r } = await deploy("dev", rendered());
    const hook = container(res, "hook-container");
    expect(hook.inputs.command).toEqual(["node", "/hook/pgstack.js", "postdeploy", "--plan", "/etc/pgstack/plan.json"]);
    expect(hook.inputs).toMatchObject({ attach: true, logs: true, mustRun: false, restart: "no" });
    expect(hook.inputs.networksAdvanced).toEqual([{ name: "pgstack-dev" }]);
    expect(isSecretValue(hook.inputs.uploads)).toBe(true);
    expect(filledEnvs(hook)).toEqual([
      // The owner for DDL and index builds, straight to PostgreSQL; the application's role through PgBouncer.
      "PGSTACK_DIRECT_URL=postgresql://app_owner:mock-password-dev-owner-password@postgres:5432/app?sslmode=verify-full&sslrootcert=/etc/pgstack/tls/ca.crt",
      `PGSTACK_POOLED_URL=postgresql://app:${configuredSecret}@pgbouncer:6432/app?sslmode=verify-full&sslrootcert=/etc/pgstack/tls/ca.crt`,
    ]);
    const report = await outputOf(stack.hookReport);
    expect(report.planSha256).toBe(labels(hook)["pgvector-stack.plan-sha256"]);
    expect(report.planSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(r.files["plan.json"]).toContain('"benchmark"');
  });

  it("re-runs the hook when plan.json changes, and not otherwise", async () => {
    const passwords = everyPassword;
    const hookOf = async (name: string, change: (c: Config) => void) => {
      const d = await deploy(name, rendered(change), passwords);
      const inputs = (suffix: string) => {
        const found = d.recorded.find((x) => x.name === `${name}-${suffix}`);
        expect(found, `${name}-${suffix}`).toBeDefined();
        return reveal(found?.inputs);
      };
      return { hook: container(d.recorded, "hook-container"), plan: d.rendered.files["plan.json"], inputs };
    };
    const base = await hookOf("base", () => {});
    // The CA upload aside: the mocks give each stack name a CA of its own, where a real stack keeps its CA (ten years)
    // through all of these changes.
    const withoutCa = (inputs: Record<string, unknown>) => {
      const all = reveal(inputs) as Record<string, unknown>;
      return { ...all, uploads: (all.uploads as Upload[]).filter((u) => u.file !== "/etc/pgstack/tls/ca.crt") };
    };
    const trigger = (h: RecordedResource) => ({ name: h.inputs.name, sha: labels(h)["pgvector-stack.plan-sha256"] });

    // Index plan or benchmark settings: a new plan.json, a new container name and label.
    for (const [what, change] of [
      ["benchmark rows", (c: Config): void => void ((c.benchmark as Config).rows = 30000)],
      ["HNSW m", (c: Config): void => void ((c.vectorTables as Config[])[0].m = 24)],
    ] as const) {
      const changed = await hookOf(`plan-${what.replace(/\W/g, "")}`, change);
      expect(changed.plan, what).not.toBe(base.plan);
      expect(trigger(changed.hook).name, what).not.toBe(trigger(base.hook).name);
      expect(trigger(changed.hook).sha, what).not.toBe(trigger(base.hook).sha);
    }

    // Everything else: the hook container's inputs do not move at all, so Pulumi has nothing to replace.
    // (Each change does move the resource named beside it, so the comparison is not vacuous.)
    for (const [what, moved, change] of [
      ["postgres settings", "postgres-container", (c: Config): void => void ((c.postgres as Config).settings = { random_page_cost: "1.1" })],
      ["pgbouncer pool", "pgbouncer-container", (c: Config): void => void (c.pgbouncer = { defaultPoolSize: 50 })],
      ["alert thresholds", "monitoring-prometheus", (c: Config): void => void (c.alerts = { cpuWarning: 0.9 })],
      ["published ports", "postgres-container", (c: Config): void => void (c.docker = { ports: { postgres: 15432 } })],
    ] as const) {
      const other = await hookOf(`other-${what.replace(/\W/g, "")}`, change);
      expect(other.plan, what).toBe(base.plan);
      expect(other.inputs(moved), `${what} moves ${moved}`).not.toEqual(base.inputs(moved));
      expect(withoutCa(other.hook.inputs), what).toEqual(withoutCa(base.hook.inputs));
    }
  });

  it("runs every rendered launch as it is: command and environment", async () => {
    const passwords = { superuser: "su-pw", app: "app-pw", monitor: "mon-pw", stats: "stats-pw" };
    const { recorded: res, rendered: r } = await deploy("dev", rendered(), passwords);
    const { launches } = r;
    const runs = (role: string) => {
      const c = container(res, role);
      return { command: c.inputs.command, envs: filledEnvs(c) };
    };
    expect(runs("postgres-exporter")).toEqual({
      command: launches.postgresExporter.args,
      envs: [...Object.entries(launches.postgresExporter.env).map(([k, v]) => `${k}=${v}`), "DATA_SOURCE_PASS=mon-pw"],
    });
    expect(runs("pgbouncer-exporter")).toEqual({ command: launches.pgbouncerExporter.args, envs: ["PGPASSWORD=stats-pw"] });
    expect(runs("node-exporter").command).toEqual(launches.nodeExporter.args);
    expect(runs("mtail").command).toEqual(launches.mtail.args);
    expect(runs("prometheus").command).toEqual(launches.prometheus?.args);
    expect(runs("canary-container").command).toEqual(["node", "/hook/pgstack.js", ...launches.canary.args]);
  });

  it("follows the placement: ports, the auth_file's path and the URLs move with it, and nothing is decided here", async () => {
    const base = rendered();
    const placement = {
      ...placementFor("docker"),
      ports: { ...defaultPorts, pgbouncer: 6433, prometheus: 9091, canary: 9189 },
      paths: { ...placementFor("docker").paths, pgbouncerAuthFile: "/etc/pgbouncer/auth/users.txt", postgresExporterQueries: "/etc/queries/pg.yaml" },
    };
    const r = renderStack(base.spec, placement);
    const { recorded: res } = await deploy("moved", r, { superuser: "s", app: "a", monitor: "m", stats: "t" });
    const pgbouncer = container(res, "pgbouncer-container");
    expect(uploads(pgbouncer).map((u) => u.file)).toEqual([
      "/etc/pgbouncer/pgbouncer.ini",
      "/etc/pgbouncer/auth/users.txt",
      "/etc/pgstack/tls/tls.crt",
      "/etc/pgstack/tls/tls.key",
      "/etc/pgstack/tls/ca.crt",
    ]);
    expect(upload(pgbouncer, "/etc/pgbouncer/pgbouncer.ini")).toMatch(/^auth_file = \/etc\/pgbouncer\/auth\/users.txt$/m);
    expect(upload(container(res, "postgres-exporter"), "/etc/queries/pg.yaml")).toBe(r.files["postgres-exporter-queries.yaml"]);
    expect((container(res, "namespace-container").inputs.ports as { internal: number }[]).map((p) => p.internal)).toEqual([5432, 6433, 9091]);
    expect(filledEnvs(container(res, "canary-container"))).toEqual([
      "PGSTACK_DIRECT_URL=postgresql://pgstack_canary:mock-password-moved-canary-password@127.0.0.1:5432/app?sslmode=verify-full&sslrootcert=/etc/pgstack/tls/ca.crt",
      "PGSTACK_POOLED_URL=postgresql://pgstack_canary:mock-password-moved-canary-password@127.0.0.1:6433/app?sslmode=verify-full&sslrootcert=/etc/pgstack/tls/ca.crt",
    ]);
    expect(container(res, "canary-container").inputs.command).toContain("127.0.0.1:9189");
    expect(filledEnvs(container(res, "hook-container"))).toEqual([
      "PGSTACK_DIRECT_URL=postgresql://app_owner:mock-password-moved-owner-password@postgres:5432/app?sslmode=verify-full&sslrootcert=/etc/pgstack/tls/ca.crt",
      "PGSTACK_POOLED_URL=postgresql://app:a@pgbouncer:6433/app?sslmode=verify-full&sslrootcert=/etc/pgstack/tls/ca.crt",
    ]);
    expect(upload(container(res, "prometheus"), "/etc/prometheus/prometheus.yml")).toContain("127.0.0.1:9189");
    expect(container(res, "prometheus").inputs.command).toContain("--web.listen-address=:9091");
  });

  it("reports huge pages: try without host pages, on with docker.hostHugePages", async () => {
    const dev = await deploy("dev", rendered());
    expect(dev.stack.hugePages.mode).toBe("try");
    expect(dev.stack.hugePages.reason).toContain("docker.hostHugePages is false");
    recorded = installMocks();
    const host = await deploy("host", rendered((c) => (c.docker = { hostHugePages: true })), { app: "x" });
    expect(host.stack.hugePages.mode).toBe("on");
    expect(host.stack.hugePages.reason).toContain("docker.hostHugePages is true");
    expect(host.rendered.files["postgresql.conf"]).toMatch(/^huge_pages = 'on'|^huge_pages = on/m);
  });

  it("rejects a rendered stack of another target", () => {
    const r = rendered((c) => (c.target = "kubernetes"));
    expect(() => new DockerVectorStack("k8s", { rendered: r, hookBundle })).toThrow(/target is "kubernetes"/);
  });
});

describe("DockerVectorStack: TLS", () => {
  const ca = mockPem("CERTIFICATE", "mock-certificate-dev-tls-ca");
  const certificate = mockPem("CERTIFICATE", "mock-certificate-dev-tls-server");
  const tlsFiles = ["/etc/pgstack/tls/tls.crt", "/etc/pgstack/tls/tls.key", "/etc/pgstack/tls/ca.crt"];

  it("makes the CA and the server certificate with @pulumi/tls for the network aliases, loopback and the published address", async () => {
    const { recorded: res } = await deploy("dev", rendered());
    const request = reveal(one(res, "tls:index/certRequest:CertRequest").inputs) as Record<string, unknown>;
    expect(request.dnsNames).toEqual(["localhost", "pgbouncer", "postgres"]);
    expect(request.ipAddresses).toEqual(["127.0.0.1", "::1"]);
    expect(request.subject).toEqual({ commonName: "postgres", organization: "pgvector-stack" });
    expect(reveal(one(res, "tls:index/selfSignedCert:SelfSignedCert").inputs)).toMatchObject({ isCaCertificate: true, subject: { commonName: "pgvector-stack dev CA" } });
    expect(reveal(one(res, "tls:index/locallySignedCert:LocallySignedCert").inputs)).toMatchObject({ validityPeriodHours: 2160, earlyRenewalHours: 720 });
    for (const key of byType(res, "tls:index/privateKey:PrivateKey")) expect(key.inputs).toEqual({ algorithm: "ECDSA", ecdsaCurve: "P256" });

    recorded = installMocks();
    const lan = await deploy("lan", rendered((c) => (c.docker = { publishAddress: "192.168.1.5", exposeBeyondLoopback: true })), { app: "x" });
    expect((reveal(one(lan.recorded, "tls:index/certRequest:CertRequest").inputs) as Record<string, unknown>).ipAddresses).toEqual(["127.0.0.1", "192.168.1.5", "::1"]);
  });

  it("uploads certificate, key and CA into PostgreSQL and PgBouncer, and the CA alone wherever a client's sslrootcert points", async () => {
    const { recorded: res, rendered: r } = await deploy("dev", rendered());
    const server = (role: string) => container(res, role);
    for (const role of ["postgres-container", "pgbouncer-container"]) {
      expect(upload(server(role), "/etc/pgstack/tls/tls.crt"), role).toBe(certificate);
      expect(upload(server(role), "/etc/pgstack/tls/ca.crt"), role).toBe(ca);
    }
    // What the servers are configured with is what was uploaded.
    expect(r.files["postgresql.conf"]).toContain("ssl_cert_file = '/etc/pgstack/tls/tls.crt'");
    expect(r.files["postgresql.conf"]).toContain("ssl_key_file = '/etc/pgstack/tls/tls.key'");
    expect(r.files["pgbouncer.ini"]).toMatch(/^client_tls_key_file = \/etc\/pgstack\/tls\/tls.key$/m);
    // Every client: its sslrootcert (in its command line, its environment or its URLs) names an uploaded CA.
    for (const role of ["postgres-exporter", "pgbouncer-exporter", "canary-container", "hook-container"]) {
      const c = server(role);
      const said = JSON.stringify([c.inputs.command, filledEnvs(c)]);
      const roots = [...new Set([...said.matchAll(/sslrootcert=([^&"\s]+)/g)].map((m) => m[1]))];
      expect(roots, role).toEqual(["/etc/pgstack/tls/ca.crt"]);
      expect(upload(c, roots[0]), role).toBe(ca);
      // The CA alone: neither the certificate nor the key.
      expect(uploads(c).filter((u) => tlsFiles.includes(u.file)).map((u) => u.file), role).toEqual(["/etc/pgstack/tls/ca.crt"]);
    }
    // node_exporter, mtail and Prometheus talk to no server of the stack: no TLS file.
    for (const role of ["node-exporter", "mtail", "prometheus"]) expect(uploads(server(role)).filter((u) => tlsFiles.includes(u.file)), role).toEqual([]);
  });

  it("hands the uploaded key to the postgres user, 0600, before the image's entrypoint starts the server", async () => {
    const db = container((await deploy("dev", rendered())).recorded, "postgres-container");
    expect(db.inputs.entrypoints).toEqual([
      "/bin/sh",
      "-c",
      `chown postgres:postgres '/etc/pgstack/tls/tls.key' && chmod 0600 '/etc/pgstack/tls/tls.key' && exec docker-entrypoint.sh "$@"`,
      "pgstack-postgres",
    ]);
    // The command stays the image's CMD replacement: the wrapper hands it on as "$@".
    expect(db.inputs.command).toEqual([
      "postgres",
      "-c",
      "config_file=/etc/postgresql/postgresql.conf",
      "-c",
      "hba_file=/etc/postgresql/pg_hba.conf",
      "-c",
      "ident_file=/etc/postgresql/pg_ident.conf",
    ]);
  });

  it("outputs the CA in the clear, and host URLs that verify against it where the user keeps it", async () => {
    const { stack } = await deploy("dev", rendered());
    expect(await pulumi.isSecret(stack.caCertificate)).toBe(false);
    expect(await outputOf(stack.caCertificate)).toBe(ca);
    expect(await outputOf(stack.directConnectionString)).toBe(`postgresql://app:${configuredSecret}@127.0.0.1:5432/app?sslmode=verify-full&sslrootcert=pgstack-dev-ca.crt`);

    recorded = installMocks({ "pgvector-stack:appPassword": configuredSecret });
    const config = new pulumi.Config("pgvector-stack");
    const placed = new DockerVectorStack("ca-path", { rendered: rendered(), hookBundle, appPassword: config.requireSecret("appPassword"), hostCaPath: "/home/dev/.pgstack/ca.crt" });
    expect(await outputOf(placed.connectionString)).toBe(`postgresql://app:${configuredSecret}@127.0.0.1:6432/app?sslmode=verify-full&sslrootcert=/home/dev/.pgstack/ca.crt`);
    await outputOf(placed.hookReport);
    await settle();
    expect(() => new DockerVectorStack("no-ca-path", { rendered: rendered(), hookBundle, hostCaPath: " " })).toThrow(/hostCaPath is empty/);
  });
});

describe("DockerVectorStack: secrets", () => {
  it("keeps every password out of uploads, labels, plain outputs and non-secret inputs", async () => {
    const { recorded: res, stack } = await deploy("dev", rendered());
    const generated = byType(res, "random:index/randomPassword:RandomPassword").map((p) => p.name);
    expect(generated.sort()).toEqual(
      ["canary", "monitor", "owner", "pgbouncerAdmin", "readOnly", "stats", "superuser"].map((kind) => `dev-${kind}-password`).sort(),
    );
    const leaks = (text: string) => text.includes("mock-password-") || text.includes(configuredSecret) || text.includes(mockPrivateKeyPrefix);

    // A key handed to @pulumi/tls as a secret input stays in Pulumi's state, encrypted; every other resource is checked.
    // The server key's own upload is where the key belongs (checked below); nothing else uploaded may hold a secret.
    const keyFile = "/etc/pgstack/tls/tls.key";
    for (const r of res.filter((x) => !x.type.startsWith("tls:"))) {
      for (const [key, value] of Object.entries(r.inputs)) {
        if (key === "uploads" || key === "labels" || !isSecretValue(value)) {
          // The secret files are where passwords belong (checked below, and in docker-hardening.test.ts).
          const shown = key === "uploads" ? (reveal(value) as Upload[]).filter((u) => u.file !== keyFile && !u.file.startsWith("/etc/pgstack/secrets/")) : reveal(value);
          expect(leaks(JSON.stringify(shown)), `${r.name}.${key}`).toBe(false);
        }
      }
      expect(isSecretValue(r.inputs.labels), `${r.name}.labels`).toBe(false);
    }
    // The server key reaches the two servers only, as a secret upload.
    const withKey = byType(res, containerType).filter((c) => uploads(c).some((u) => u.file === keyFile));
    expect(withKey.map((c) => c.inputs.name).sort()).toEqual(["pgstack-dev-pgbouncer", "pgstack-dev-postgres"]);
    for (const c of withKey) {
      expect(isSecretValue(c.inputs.uploads), `${c.name}.uploads`).toBe(true);
      expect(upload(c, keyFile)).toBe(mockPem("EC PRIVATE KEY", `${mockPrivateKeyPrefix}dev-tls-server-key`));
    }
    // The passwords the clients need do reach them, as secret uploads their env names (<VAR>_FILE), never as env.
    const withPasswords = byType(res, containerType).filter((c) => leaks(JSON.stringify(filledEnvs(c))));
    for (const c of withPasswords) {
      expect(isSecretValue(c.inputs.uploads), `${c.name}.uploads`).toBe(true);
      expect(leaks(JSON.stringify(reveal(c.inputs.envs))), `${c.name}.envs`).toBe(false);
    }
    expect(withPasswords.map((c) => c.inputs.name).sort()).toEqual(
      [container(res, "hook-container").inputs.name, "pgstack-dev-canary", "pgstack-dev-pgbouncer-exporter", "pgstack-dev-postgres-exporter"].sort(),
    );

    const plain = { endpoints: stack.endpoints, memoryPlan: stack.memoryPlan, hugePages: stack.hugePages, hookReport: await outputOf(stack.hookReport) };
    expect(leaks(JSON.stringify(plain))).toBe(false);
    for (const output of [stack.connectionString, stack.directConnectionString, stack.readOnlyConnectionString, stack.ownerConnectionString]) {
      expect(await pulumi.isSecret(output)).toBe(true);
    }
    expect(await outputOf(stack.connectionString)).toBe(`postgresql://app:${configuredSecret}@127.0.0.1:6432/app?sslmode=verify-full&sslrootcert=pgstack-dev-ca.crt`);
    expect(await outputOf(stack.readOnlyConnectionString)).toBe("postgresql://app_readonly:mock-password-dev-readOnly-password@127.0.0.1:6432/app?sslmode=verify-full&sslrootcert=pgstack-dev-ca.crt");
    expect(await outputOf(stack.ownerConnectionString)).toBe("postgresql://app_owner:mock-password-dev-owner-password@127.0.0.1:5432/app?sslmode=verify-full&sslrootcert=pgstack-dev-ca.crt");
    // No output reaches the superuser: it logs in on the socket only.
    expect(Object.keys(stack)).not.toContain("superuserConnectionString");
  });
});
