/**
 * Issue 12, Hardening, on the Docker target under Pulumi's mocks: every container's capabilities, no-new-privileges,
 * read-only root filesystem where the provider allows it, and no secret in any container's environment (`docker
 * inspect` prints it): passwords, URLs that carry one and the superuser's verifier reach the programs as files.
 * What Docker does with these inputs is not exercised (no engine here; images come with a later issue).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import yaml from "js-yaml";
import { beforeEach, describe, expect, it } from "vitest";
import {
  containerHardening,
  fileSecretShim,
  postgresCapabilities,
  postgresEntrypoint,
  secretsDirectory,
  type ContainerRole,
} from "../../../components/docker/layout";
import { DockerVectorStack } from "../../../components/docker/vector-stack";
import { renderStack } from "../../../configs/render";
import type { Rendered } from "../../../configs/rendered";
import { passwordKey, roleKinds, type RoleKind } from "../../../configs/roles";
import { isScramVerifier } from "../../../configs/scram";
import { parseStackSpec, stackConfigFromFile } from "../../../configs/spec";
import { type RecordedResource, byType, installMocks, mockPrivateKeyPrefix, outputOf, settle } from "./pulumi-harness";

type Config = Record<string, unknown>;
const containerType = "docker:index/container:Container";
const hookBundle = "// bundled pgstack CLI\n";
const secretSig = "1b47061264138c4ac30d75fd1eb44270";
const sigKey = "4dabf18193072939515e22adb298388d";

function isSecretValue(v: unknown): v is { value: unknown } {
  return typeof v === "object" && v !== null && (v as Record<string, unknown>)[sigKey] === secretSig;
}

function reveal(v: unknown): unknown {
  if (isSecretValue(v)) return reveal(v.value);
  if (Array.isArray(v)) return v.map(reveal);
  if (typeof v === "object" && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, reveal(x)]));
  return v;
}

function rendered(change: (config: Config) => void = () => {}): Rendered {
  const file = yaml.load(readFileSync(`${__dirname}/../../../Pulumi.dev.yaml`, "utf8")) as { config: Config };
  const config = stackConfigFromFile(file.config);
  change(config);
  return renderStack(parseStackSpec("dev", config));
}

/** A password per role, each a marker a leak check can find. */
const passwords = Object.fromEntries(roleKinds.map((kind) => [kind, `Pw-${kind}-5xQ`])) as Record<RoleKind, string>;

/** Which hardening role each container of the stack plays, by its resource name's suffix. */
const roleOf: Record<string, ContainerRole> = {
  "namespace-container": "namespace",
  "roles-container": "roles",
  "postgres-container": "postgres",
  "pgbouncer-container": "pgbouncer",
  "monitoring-postgres-exporter": "postgresExporter",
  "monitoring-pgbouncer-exporter": "pgbouncerExporter",
  "monitoring-node-exporter": "nodeExporter",
  "monitoring-mtail": "mtail",
  "monitoring-prometheus": "prometheus",
  "canary-container": "canary",
  "hook-container": "hook",
};

let recorded: RecordedResource[];
beforeEach(() => {
  recorded = installMocks();
});

async function deploy(name: string, r: Rendered = rendered()): Promise<RecordedResource[]> {
  const stack = new DockerVectorStack(name, {
    rendered: r,
    hookBundle,
    ...Object.fromEntries(roleKinds.map((kind) => [passwordKey(kind), passwords[kind]])),
  });
  await outputOf(stack.hookReport);
  await outputOf(stack.connectionString);
  await settle();
  return byType(recorded, containerType).filter((c) => c.name.startsWith(`${name}-`));
}

function roleNamed(c: RecordedResource, stack: string): ContainerRole {
  const role = roleOf[c.name.slice(stack.length + 1)];
  expect(role, c.name).toBeDefined();
  return role;
}

function uploads(c: RecordedResource): { file: string; content: string }[] {
  return (reveal(c.inputs.uploads) ?? []) as { file: string; content: string }[];
}

describe("Docker hardening: privileges", () => {
  it("drops every capability of every container; postgres keeps only what its entrypoint does as root", async () => {
    const containers = await deploy("dev");
    expect(containers).toHaveLength(11);
    for (const c of containers) {
      const role = roleNamed(c, "dev");
      const want = role === "postgres" ? { drops: ["ALL"], adds: ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"] } : { drops: ["ALL"] };
      expect(c.inputs.capabilities, c.name).toEqual(want);
      expect(c.inputs.securityOpts, c.name).toEqual(["no-new-privileges:true"]);
      expect(c.inputs.privileged, c.name).toBeUndefined();
    }
    // Each capability kept has its reason; none of Docker's default set beyond them (no NET_RAW, MKNOD, KILL …),
    // and not DAC_READ_SEARCH (open_by_handle_at).
    expect(Object.keys(postgresCapabilities).sort()).toEqual(["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"]);
    for (const reason of Object.values(postgresCapabilities)) expect(reason.length).toBeGreaterThan(20);
  });

  it("keeps what the postgres entrypoint needs those capabilities for: it starts as root and drops to postgres itself", async () => {
    const db = (await deploy("dev")).find((c) => c.name === "dev-postgres-container")!;
    // No `user`: the entrypoint must start as root to chown the key and PGDATA, then gosu (SETUID/SETGID) lowers it.
    expect(db.inputs.user).toBeUndefined();
    const wrapper = (db.inputs.entrypoints as string[])[2];
    expect(wrapper).toBe(postgresEntrypoint("/etc/pgstack/tls/tls.key")[2]);
    expect(wrapper).toMatch(/^chown postgres:postgres .* && chmod 0600 .* && exec docker-entrypoint\.sh "\$@"$/);
    // Every other container runs as a non-root user: the images' USER (PgBouncer, the exporters, Prometheus) or ours.
    const users = Object.fromEntries((await deploy("users")).map((c) => [roleNamed(c, "users"), c.inputs.user]));
    expect(users).toMatchObject({ namespace: "65534:65534", roles: "999:999", mtail: "999:999", canary: "node", hook: "node" });
  });

  it("makes the root filesystem read-only exactly where the provider uploads nothing", async () => {
    for (const c of await deploy("dev")) {
      const role = roleNamed(c, "dev");
      // docker cp (the provider's uploads) into a read-only root filesystem is refused by Docker: see containerHardening.
      expect(c.inputs.readOnly, c.name).toBe(uploads(c).length === 0);
      expect(c.inputs.readOnly, c.name).toBe(role === "nodeExporter" || role === "namespace");
      expect(containerHardening(role).readOnly).toBe(c.inputs.readOnly);
      // node_exporter writes nothing, so it needs no tmpfs; no container mounts one it does not need.
      expect(c.inputs.tmpfs, c.name).toBeUndefined();
    }
  });
});

describe("Docker hardening: secrets never in a container's environment", () => {
  const leaks = (text: string): string[] =>
    [
      ...Object.values(passwords).filter((p) => text.includes(p)),
      ...(text.includes("SCRAM-SHA-256$") ? ["a SCRAM verifier"] : []),
      ...(text.includes(mockPrivateKeyPrefix) ? ["a private key"] : []),
      ...(/postgres(ql)?:\/\/[^@/\s"]*:[^@/\s"]*@/.test(text) ? ["a URL with a password"] : []),
    ];

  it("gives every container an environment `docker inspect` may show: no password, verifier, key or URL with a password", async () => {
    for (const c of await deploy("dev")) {
      const envs = c.inputs.envs;
      expect(isSecretValue(envs), `${c.name}.envs is plain: nothing in it needs hiding`).toBe(false);
      expect(leaks(JSON.stringify(reveal(envs) ?? [])), `${c.name}.envs`).toEqual([]);
      // Nor the command line, the entrypoint or a label.
      for (const key of ["command", "entrypoints", "labels"]) expect(leaks(JSON.stringify(reveal(c.inputs[key]) ?? [])), `${c.name}.${key}`).toEqual([]);
    }
  });

  it("hands each secret over as an uploaded file the env names (<VAR>_FILE), in secret uploads", async () => {
    const byRole = Object.fromEntries((await deploy("dev")).map((c) => [roleNamed(c, "dev"), c]));
    const fileEnvs = (role: ContainerRole) => ((reveal(byRole[role].inputs.envs) ?? []) as string[]).filter((e) => /^[A-Z_]+_FILE=/.test(e));
    const secretUploads = (role: ContainerRole) => Object.fromEntries(uploads(byRole[role]).filter((u) => u.file.startsWith(`${secretsDirectory}/`)).map((u) => [u.file, u.content]));

    expect(fileEnvs("postgres")).toEqual(["POSTGRES_PASSWORD_FILE=/etc/pgstack/secrets/POSTGRES_PASSWORD"]);
    const superuserFile = secretUploads("postgres")["/etc/pgstack/secrets/POSTGRES_PASSWORD"];
    expect(isScramVerifier(superuserFile), "the superuser's verifier, never its password").toBe(true);
    expect(fileEnvs("postgresExporter")).toEqual(["DATA_SOURCE_PASS_FILE=/etc/pgstack/secrets/DATA_SOURCE_PASS"]);
    expect(secretUploads("postgresExporter")).toEqual({ "/etc/pgstack/secrets/DATA_SOURCE_PASS": passwords.monitor });
    expect(fileEnvs("pgbouncerExporter")).toEqual(["PGPASSWORD_FILE=/etc/pgstack/secrets/PGPASSWORD"]);
    expect(secretUploads("pgbouncerExporter")).toEqual({ "/etc/pgstack/secrets/PGPASSWORD": passwords.stats });
    for (const role of ["canary", "hook"] as const) {
      expect(fileEnvs(role), role).toEqual(["PGSTACK_DIRECT_URL_FILE=/etc/pgstack/secrets/PGSTACK_DIRECT_URL", "PGSTACK_POOLED_URL_FILE=/etc/pgstack/secrets/PGSTACK_POOLED_URL"]);
      const urls = Object.values(secretUploads(role));
      expect(urls, role).toHaveLength(2);
      for (const url of urls) expect(url, role).toMatch(/^postgresql:\/\/[^:]+:Pw-[A-Za-z]+-5xQ@/);
    }
    for (const role of ["pgbouncer", "nodeExporter", "mtail", "prometheus"] as const) expect(fileEnvs(role), role).toEqual([]);
    // Whatever holds a secret file is a secret input as a whole, so Pulumi encrypts it in state.
    for (const c of Object.values(byRole)) {
      const files = uploads(c).filter((u) => u.file.startsWith(`${secretsDirectory}/`));
      if (files.length > 0) expect(isSecretValue(c.inputs.uploads), `${c.name}.uploads`).toBe(true);
      // Every <VAR>_FILE names a file that is uploaded.
      for (const e of (reveal(c.inputs.envs) ?? []) as string[]) {
        const m = /^[A-Z_]+_FILE=(.+)$/.exec(e);
        if (m) expect(files.map((f) => f.file), `${c.name}: ${e}`).toContain(m[1]);
      }
    }
  });

  it("starts pgbouncer_exporter through a shim that reads PGPASSWORD from its file, since lib/pq reads only the variable", async () => {
    const r = rendered();
    const exporter = (await deploy("dev", r)).find((c) => c.name === "dev-monitoring-pgbouncer-exporter")!;
    expect(exporter.inputs.entrypoints).toEqual([
      "/bin/sh",
      "-c",
      'PGPASSWORD="$(cat "$PGPASSWORD_FILE")" && export PGPASSWORD && unset PGPASSWORD_FILE && exec /bin/pgbouncer_exporter "$@"',
      "pgbouncer_exporter",
    ]);
    expect(exporter.inputs.command).toEqual(r.launches.pgbouncerExporter.args);
    // Programs that read <VAR>_FILE themselves keep their image's entrypoint.
    expect(fileSecretShim(r.launches.postgresExporter)).toBeUndefined();
    expect(fileSecretShim(r.launches.canary)).toBeUndefined();
    expect(fileSecretShim(r.launches.nodeExporter)).toBeUndefined();

    // The shim itself, run by this machine's POSIX sh with `env` in the exporter's place: the password reaches the
    // program's environment, the file variable does not, and the arguments pass through unchanged.
    const dir = mkdtempSync(path.join(tmpdir(), "pgstack-shim-"));
    try {
      const file = path.join(dir, "PGPASSWORD");
      writeFileSync(file, "s3cret with spaces", { mode: 0o600 });
      const [sh, dashC, script, argv0] = exporter.inputs.entrypoints as string[];
      const out = execFileSync(sh, [dashC, script.replace("exec /bin/pgbouncer_exporter", "exec env"), argv0], {
        env: { PATH: process.env.PATH, PGPASSWORD_FILE: file },
        encoding: "utf8",
      });
      expect(out.split("\n")).toContain("PGPASSWORD=s3cret with spaces");
      expect(out).not.toContain("PGPASSWORD_FILE=");
      // A missing file stops it before the program runs.
      expect(() =>
        execFileSync(sh, [dashC, script.replace("exec /bin/pgbouncer_exporter", "exec env"), argv0], { env: { PATH: process.env.PATH, PGPASSWORD_FILE: path.join(dir, "none") }, stdio: "pipe" }),
      ).toThrow();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("keeps the hardening on a stack published beyond loopback (with the opt-in)", async () => {
    const r = rendered((c) => (c.docker = { publishAddress: "0.0.0.0", exposeBeyondLoopback: true }));
    expect(r.warnings.some((w) => w.startsWith("docker.publishAddress is 0.0.0.0"))).toBe(true);
    const containers = await deploy("lan", r);
    const holder = containers.find((c) => c.name === "lan-namespace-container")!;
    expect((holder.inputs.ports as { ip: string }[]).map((p) => p.ip)).toEqual(["0.0.0.0", "0.0.0.0", "0.0.0.0"]);
    for (const c of containers) expect(c.inputs.securityOpts, c.name).toEqual(["no-new-privileges:true"]);
  });
});
