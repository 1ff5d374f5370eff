/** The docker target's pure layout functions (components/docker/layout.ts): no Pulumi involved. */
import { spawnSync } from "node:child_process";
import { pbkdf2Sync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import yaml from "js-yaml";
import { describe, expect, it } from "vitest";
import {
  connectionUrl,
  containerCommand,
  containerEnvs,
  containerSecretFiles,
  defaultHostCaPath,
  dockerNames,
  dockerServerNames,
  endpoints,
  hookTrigger,
  hugePagesDecision,
  loopbackAddresses,
  metricSourceVolumes,
  mtailProgramPath,
  postgresCommand,
  postgresEntrypoint,
  postgresHealthcheck,
  postgresOwner,
  publishedPorts,
  shmSizeMiB,
  sortedLabels,
  stackProblems,
} from "../../../components/docker/layout";
import { nodeExporterArgs } from "../../../configs/exporters";
import type { Launch } from "../../../configs/launches";
import { mtailArgs } from "../../../configs/mtail";
import { containerDataMount, defaultPorts, placementFor } from "../../../configs/placement";
import { renderStack } from "../../../configs/render";
import type { Rendered, RenderedMemory } from "../../../configs/rendered";
import { roleSalt as scramSalt } from "../../../configs/scram";
import { parseStackSpec, stackConfigFromFile } from "../../../configs/spec";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

type Config = Record<string, unknown>;

function devConfig(): Config {
  const file = yaml.load(readFileSync(`${__dirname}/../../../Pulumi.dev.yaml`, "utf8")) as { config: Config };
  return stackConfigFromFile(file.config);
}

function rendered(change: (config: Config) => void = () => {}): Rendered {
  const config = devConfig();
  change(config);
  return renderStack(parseStackSpec("dev", config));
}

function memory(overrides: Partial<RenderedMemory>): RenderedMemory {
  return {
    nodeMemoryBytes: 8 * GiB,
    sharedBuffersBytes: 2 * GiB,
    effectiveCacheSizeBytes: 6 * GiB,
    workMemBytes: 64 * MiB,
    maintenanceWorkMemBytes: 512 * MiB,
    sharedMemoryBytes: 2148 * MiB,
    hugePages: 1075,
    hugePagesSetting: "try",
    worstCaseBytes: 30 * GiB,
    ...overrides,
  };
}

/** The method of the first pg_hba.conf `local` line that matches user `user` on every database, or undefined. */
function socketMethod(pgHba: string, user: string): string | undefined {
  for (const raw of pgHba.split(/\r?\n/)) {
    const fields = raw.replace(/#.*$/, "").trim().split(/\s+/);
    if (fields[0] !== "local" || fields.length < 4) continue;
    const [, databases, users, method] = fields;
    const matches = (list: string, name: string) => list.split(",").some((item) => item === "all" || item === name);
    if (matches(databases, "postgres") && matches(users, user)) return method;
  }
  return undefined;
}

describe("shmSizeMiB", () => {
  it.each([
    // maintenance_work_mem, /dev/shm MiB: the build's graph plus Docker's own 64 MiB default.
    [64 * MiB, 128],
    [512 * MiB, 576],
    [2 * GiB, 2112],
    [8 * GiB, 8256],
    [100 * MiB + 1, 165],
  ] as const)("maintenance_work_mem %d bytes → %d MiB", (mwm, want) => {
    const shm = shmSizeMiB(memory({ maintenanceWorkMemBytes: mwm }));
    expect(shm).toBe(want);
    expect(shm * MiB).toBeGreaterThanOrEqual(mwm);
  });
});

describe("hugePagesDecision", () => {
  it.each([
    ["the dev stack", (): void => {}, "try", /docker.hostHugePages is false/],
    ["a host with huge pages", (c: Config): void => void (c.docker = { hostHugePages: true }), "on", /docker.hostHugePages is true/],
    ["huge pages asked for", (c: Config): void => void ((c.postgres as Config).hugePages = "on"), "on", /postgres.hugePages is on/],
    ["huge pages off", (c: Config): void => void ((c.postgres as Config).hugePages = "off"), "off", /postgres.hugePages is off/],
  ] as const)("%s → %s", (_what, change, mode, reason) => {
    const r = rendered(change);
    const decision = hugePagesDecision(r);
    expect(decision.mode).toBe(mode);
    expect(decision.mode).toBe(r.memory.hugePagesSetting);
    expect(decision.reason).toMatch(reason);
    expect(r.files["postgresql.conf"]).toMatch(new RegExp(`^huge_pages = ${mode}\\b`, "m"));
  });
});

describe("the database container", () => {
  it("starts PostgreSQL on the uploaded postgresql.conf, pg_hba.conf and pg_ident.conf", () => {
    expect(postgresCommand).toEqual([
      "postgres",
      "-c",
      "config_file=/etc/postgresql/postgresql.conf",
      "-c",
      "hba_file=/etc/postgresql/pg_hba.conf",
      "-c",
      "ident_file=/etc/postgresql/pg_ident.conf",
    ]);
    // hba_file and ident_file are the stack's own: the rendered file never names another one.
    expect(rendered().files["postgresql.conf"]).not.toMatch(/^\s*(hba_file|ident_file)\b/m);
  });

  it("the rendered pg_hba.conf admits the superuser on the socket by peer, as the image's role bootstrap needs", () => {
    // The entrypoint runs /docker-entrypoint-initdb.d as the OS user postgres on the socket, and POSTGRES_PASSWORD
    // holds a verifier, which cannot be sent as a password: only peer lets the bootstrap in.
    const r = rendered();
    expect(socketMethod(r.files["pg_hba.conf"], r.roles.superuser)).toBe("peer");
    // The helper is not vacuous.
    expect(socketMethod("local all all scram-sha-256\nlocal all postgres peer\n", "postgres")).toBe("scram-sha-256");
  });

  it("health-checks PostgreSQL at the placement's port as the rendered superuser", () => {
    const r = rendered();
    expect(postgresHealthcheck(r).tests).toEqual(["CMD", "pg_isready", "--host=127.0.0.1", `--port=${r.placement.ports.postgres}`, `--username=${r.roles.superuser}`]);
    expect(postgresHealthcheck({ ...r, roles: { ...r.roles, superuser: "admin" } }).tests).toContain("--username=admin");
  });
});

describe("hookTrigger", () => {
  it("is the sha256 of plan.json: same bytes, same trigger; one byte more, another", () => {
    const plan = rendered().files["plan.json"];
    expect(hookTrigger(plan)).toMatch(/^[0-9a-f]{64}$/);
    expect(hookTrigger(plan)).toBe(hookTrigger(rendered().files["plan.json"]));
    expect(hookTrigger(`${plan} `)).not.toBe(hookTrigger(plan));
    expect(dockerNames("pgstack-dev").hook(hookTrigger(plan))).toBe(`pgstack-dev-hook-${hookTrigger(plan).slice(0, 12)}`);
  });
});

describe("names, labels, endpoints, URLs", () => {
  it("names every container after the stack", () => {
    const names = dockerNames("pgstack-dev");
    expect({ nodeExporter: names.nodeExporter, mtail: names.mtail }).toEqual({ nodeExporter: "pgstack-dev-node-exporter", mtail: "pgstack-dev-mtail" });
    const fixed = Object.values(names).filter((n): n is string => typeof n === "string");
    expect(new Set(fixed).size, "no two Docker objects share a name").toBe(fixed.length);
  });

  it("refuses a prefix Docker would refuse", () => {
    expect(() => dockerNames("-x")).toThrow(/"-x"/);
    expect(() => dockerNames("a b")).toThrow(/"a b"/);
  });

  it("sorts labels by key", () => {
    expect(sortedLabels({ b: "2", a: "1" })).toEqual([
      { label: "a", value: "1" },
      { label: "b", value: "2" },
    ]);
  });

  it.each([
    ["127.0.0.1", { pooled: "127.0.0.1:6432", direct: "127.0.0.1:5432", prometheus: "127.0.0.1:9090" }],
    ["0.0.0.0", { pooled: "127.0.0.1:6432", direct: "127.0.0.1:5432", prometheus: "127.0.0.1:9090" }],
    ["192.168.1.5", { pooled: "192.168.1.5:6432", direct: "192.168.1.5:5432", prometheus: "192.168.1.5:9090" }],
  ] as const)("endpoints on %s", (publishAddress, want) => {
    expect(endpoints({ hostHugePages: false, publishAddress, exposeBeyondLoopback: true, ports: { postgres: 5432, pgbouncer: 6432, prometheus: 9090 } })).toEqual(want);
  });

  it("percent-encodes user and password", () => {
    expect(connectionUrl("app", "p@ss:/w?rd", "h:1", "db", "sslmode=verify-full&sslrootcert=ca.crt")).toBe(
      "postgresql://app:p%40ss%3A%2Fw%3Frd@h:1/db?sslmode=verify-full&sslrootcert=ca.crt",
    );
  });
});

describe("TLS", () => {
  it("names the server certificate after the network aliases, loopback and the published address", () => {
    expect(dockerServerNames(rendered())).toEqual({ dns: ["localhost", "pgbouncer", "postgres"], ips: ["127.0.0.1", "::1"] });
    // A wildcard bind is reached through 127.0.0.1, already there; any other address is a SAN of its own.
    expect(dockerServerNames(rendered((c) => (c.docker = { publishAddress: "0.0.0.0", exposeBeyondLoopback: true }))).ips).toEqual(["127.0.0.1", "::1"]);
    expect(dockerServerNames(rendered((c) => (c.docker = { publishAddress: "192.168.1.5", exposeBeyondLoopback: true }))).ips).toEqual(["127.0.0.1", "192.168.1.5", "::1"]);
  });

  it("gives the key to the postgres user, 0600, before the image's entrypoint runs with the same arguments", () => {
    const entrypoint = postgresEntrypoint("/etc/pgstack/tls/tls.key");
    expect(entrypoint).toEqual([
      "/bin/sh",
      "-c",
      `chown postgres:postgres '/etc/pgstack/tls/tls.key' && chmod 0600 '/etc/pgstack/tls/tls.key' && exec docker-entrypoint.sh "$@"`,
      "pgstack-postgres",
    ]);
    expect(postgresEntrypoint("/k/it's")[2]).toContain(`'/k/it'\\''s'`);
  });

  it("runs, under sh, chown and chmod on the key and then the image's entrypoint with the command word for word", () => {
    // Docker runs ENTRYPOINT followed by CMD; chown, chmod and docker-entrypoint.sh are stubs that record their arguments.
    const dir = mkdtempSync(path.join(os.tmpdir(), "pgstack-entrypoint-"));
    try {
      const log = path.join(dir, "log");
      for (const program of ["chown", "chmod", "docker-entrypoint.sh"]) {
        writeFileSync(path.join(dir, program), `#!/bin/sh\nprintf '%s|' ${program} "$@" >> ${log}\necho >> ${log}\n`, { mode: 0o755 });
      }
      const [shell, ...args] = [...postgresEntrypoint("/etc/pgstack/tls/tls.key"), ...postgresCommand, "-c", "x=a b"];
      const run = spawnSync(shell, args, { env: { PATH: `${dir}:/usr/bin:/bin` }, encoding: "utf8" });
      expect(run.status).toBe(0);
      expect(readFileSync(log, "utf8").trim().split("\n")).toEqual([
        "chown|postgres:postgres|/etc/pgstack/tls/tls.key|",
        "chmod|0600|/etc/pgstack/tls/tls.key|",
        `docker-entrypoint.sh|${[...postgresCommand, "-c", "x=a b"].join("|")}|`,
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("keeps the host's CA next to where the client runs, named after the stack, unless told otherwise", () => {
    expect(defaultHostCaPath("dev")).toBe("pgstack-dev-ca.crt");
  });
});

describe("ports: the placement's inside, docker.ports outside", () => {
  it("publishes PostgreSQL, PgBouncer and Prometheus from their placement ports", () => {
    const r = rendered((c) => (c.docker = { publishAddress: "0.0.0.0", exposeBeyondLoopback: true, ports: { postgres: 15432, pgbouncer: 16432, prometheus: 19090 } }));
    expect(publishedPorts(r)).toEqual([
      { internal: 5432, external: 15432, ip: "0.0.0.0", protocol: "tcp" },
      { internal: 6432, external: 16432, ip: "0.0.0.0", protocol: "tcp" },
      { internal: 9090, external: 19090, ip: "0.0.0.0", protocol: "tcp" },
    ]);
  });

  it("follows a placement with other ports everywhere, with no port of its own", () => {
    const ports = { ...defaultPorts, pgbouncer: 6433, prometheus: 9091 };
    const r = renderStack(rendered().spec, { ...placementFor("docker"), ports });
    expect(publishedPorts(r).map((p) => p.internal)).toEqual([5432, 6433, 9091]);
    expect(loopbackAddresses(r.placement)).toEqual({ pooled: "127.0.0.1:6433", direct: "127.0.0.1:5432" });
    // What the containers then run says the same, since it is rendered for that placement.
    expect(r.files["pgbouncer.ini"]).toMatch(/^listen_port = 6433$/m);
    expect(containerCommand(r.launches.prometheus!)).toContain("--web.listen-address=:9091");
    expect(stackProblems(r)).toEqual([]);
  });
});

describe("launches as containers", () => {
  const r = rendered();

  it("runs each metric source's launch as its command, on loopback", () => {
    const { launches } = r;
    expect(containerCommand(launches.nodeExporter)).toEqual([...nodeExporterArgs(), "--web.listen-address=127.0.0.1:9100"]);
    expect(containerCommand(launches.mtail)).toEqual([...mtailArgs({ programsDir: "/etc/mtail", pgdata: containerDataMount }), "--address", "127.0.0.1", "--port", "3903"]);
    expect(containerCommand(launches.mtail)).toContain("/var/lib/postgresql/data/log/postgresql-*.log");
    expect(containerCommand(launches.postgresExporter).slice(0, 2)).toEqual([
      "--web.listen-address=127.0.0.1:9187",
      "--extend.query-path=/etc/pgstack/postgres-exporter-queries.yaml",
    ]);
    expect(containerCommand(launches.pgbouncerExporter)).toEqual([
      "--web.listen-address=127.0.0.1:9127",
      "--pgBouncer.connectionString=postgres://pgstack_stats@127.0.0.1:6432/pgbouncer?sslmode=verify-full&sslrootcert=/etc/pgstack/tls/ca.crt&application_name=pgstack-pgbouncer-exporter",
      "--log.level=info",
    ]);
    expect(containerCommand(launches.prometheus!)).toEqual([
      "--config.file=/etc/prometheus/prometheus.yml",
      "--storage.tsdb.path=/prometheus",
      "--web.listen-address=:9090",
    ]);
  });

  it("runs pgstack (the canary) as node on the uploaded bundle", () => {
    expect(containerCommand(r.launches.canary)).toEqual(["node", "/hook/pgstack.js", "canary", "--listen", "127.0.0.1:9188"]);
  });

  it("fills each launch's environment: plain variables, then <VAR>_FILE for each secret, each in name order; the values go in files", () => {
    expect(containerEnvs(r.launches.postgresExporter)).toEqual([
      "DATA_SOURCE_URI=127.0.0.1:5432/app?sslmode=verify-full&sslrootcert=/etc/pgstack/tls/ca.crt&application_name=pgstack-postgres-exporter",
      "DATA_SOURCE_USER=pgstack_monitor",
      "DATA_SOURCE_PASS_FILE=/etc/pgstack/secrets/DATA_SOURCE_PASS",
    ]);
    expect(containerSecretFiles(r.launches.postgresExporter, { monitorPassword: "m-pw" })).toEqual([{ file: "/etc/pgstack/secrets/DATA_SOURCE_PASS", content: "m-pw" }]);
    expect(containerEnvs(r.launches.pgbouncerExporter)).toEqual(["PGPASSWORD_FILE=/etc/pgstack/secrets/PGPASSWORD"]);
    expect(containerSecretFiles(r.launches.pgbouncerExporter, { statsPassword: "s-pw" })).toEqual([{ file: "/etc/pgstack/secrets/PGPASSWORD", content: "s-pw" }]);
    expect(containerEnvs(r.launches.canary)).toEqual(["PGSTACK_DIRECT_URL_FILE=/etc/pgstack/secrets/PGSTACK_DIRECT_URL", "PGSTACK_POOLED_URL_FILE=/etc/pgstack/secrets/PGSTACK_POOLED_URL"]);
    expect(containerSecretFiles(r.launches.canary, { pooledUrl: "pooled", directUrl: "direct" })).toEqual([
      { file: "/etc/pgstack/secrets/PGSTACK_DIRECT_URL", content: "direct" },
      { file: "/etc/pgstack/secrets/PGSTACK_POOLED_URL", content: "pooled" },
    ]);
    expect(containerEnvs(r.launches.nodeExporter)).toEqual([]);
    expect(containerSecretFiles(r.launches.nodeExporter, {})).toEqual([]);
  });

  it("refuses a launch whose secret the container is not given", () => {
    expect(() => containerSecretFiles(r.launches.postgresExporter, { statsPassword: "s" })).toThrow(
      "postgres_exporter needs monitorPassword in DATA_SOURCE_PASS, but its container is not given it",
    );
    const launch: Launch = { program: "pgstack", args: [], env: {}, secretEnv: { X: "directUrl" }, port: 1 };
    expect(() => containerSecretFiles(launch, {})).toThrow("pgstack needs directUrl in X");
  });

  it("mounts the data volume read-only into the metric sources, where PostgreSQL has it and the disk alert looks", () => {
    expect(r.placement.dataVolumeMount).toBe(containerDataMount);
    expect(metricSourceVolumes("pgstack-dev-data", containerDataMount)).toEqual([{ volumeName: "pgstack-dev-data", containerPath: "/var/lib/postgresql/data", readOnly: true }]);
    expect(r.files["alert-rules.yaml"]).toContain(`mountpoint="${containerDataMount}"`);
    expect(mtailProgramPath(r.placement)).toBe("/etc/mtail/postgresql.mtail");
    expect(postgresOwner).toBe("999:999");
  });
});

/** Stack files the spec accepts, across the keys that shape what the Docker layout gets. */
function acceptedDockerConfigs(): [string, Config][] {
  const out: [string, Config][] = [];
  for (const memory of ["2Gi", "4Gi", "8Gi", "32Gi", "128Gi"]) {
    for (const hugePages of ["on", "try", "off"]) {
      for (const hostHugePages of [false, true]) {
        for (const maxConnections of [150, 200, 1000]) {
          const config = devConfig();
          config.node = { memory, cpus: 4 };
          config.postgres = { hugePages, maxConnections, appUser: "svc_search", database: "vectors" };
          config.docker = { hostHugePages, publishAddress: "0.0.0.0", exposeBeyondLoopback: true, ports: { postgres: 25432, pgbouncer: 26432, prometheus: 29090 } };
          out.push([`${memory} huge_pages ${hugePages} hostHugePages ${hostHugePages} max_connections ${maxConnections}`, config]);
        }
      }
    }
  }
  return out;
}

describe("stackProblems", () => {
  it("finds none in the dev stack", () => {
    expect(stackProblems(rendered())).toEqual([]);
  });

  it("finds none for any stack file the spec accepts", () => {
    let accepted = 0;
    for (const [what, config] of acceptedDockerConfigs()) {
      let r: Rendered;
      try {
        r = renderStack(parseStackSpec("dev-range", config));
      } catch (error) {
        // Refused by the one gate, with its own message: not a stack the layout must deploy.
        expect(String(error), what).toMatch(/SpecError|configuration error/);
        continue;
      }
      accepted++;
      expect(stackProblems(r), what).toEqual([]);
    }
    // The range is mostly accepted, so the check above is not vacuous.
    expect(accepted).toBeGreaterThan(60);
  });

  it.each([
    ["another target", (r: Rendered): Rendered => ({ ...r, spec: { ...r.spec, target: "kubernetes" } }), /target is "kubernetes"/],
    [
      "no Prometheus rendered",
      (r: Rendered): Rendered => ({ ...r, launches: { ...r.launches, prometheus: null } }),
      /no Prometheus launch or prometheus.yml \(placement.runsPrometheus is false\)/,
    ],
    [
      "no prometheus.yml rendered",
      (r: Rendered): Rendered => {
        const { "prometheus.yml": _, ...files } = r.files;
        return { ...r, files };
      },
      /no Prometheus launch or prometheus.yml/,
    ],
    [
      "no data volume mount",
      (r: Rendered): Rendered => ({ ...r, placement: { ...r.placement, dataVolumeMount: null } }),
      /placement.dataVolumeMount is null/,
    ],
    [
      "PGDATA off the data volume",
      (r: Rendered): Rendered => ({ ...r, placement: { ...r.placement, dataVolumeMount: "/srv/data" } }),
      /placement.paths.pgdata \/var\/lib\/postgresql\/data is not on the data volume \(mounted at \/srv\/data\)/,
    ],
  ] as const)("reports %s", (_what, change, message) => {
    const problems = stackProblems(change(rendered()));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(message);
  });

  it("reports a PGDATA other than the image's, which the container does not override", () => {
    const r = rendered();
    const placement = { ...r.placement, paths: { ...r.placement.paths, pgdata: "/var/lib/postgresql/data/pgdata" } };
    expect(stackProblems({ ...r, placement })).toEqual([
      "placement.paths.pgdata is /var/lib/postgresql/data/pgdata, but the postgres image keeps PGDATA at /var/lib/postgresql/data and the container does not override it",
    ]);
  });
});

describe("scramSalt", () => {
  it("is stable for the same stack, role and password, and differs when any of them does", () => {
    const salt = scramSalt("dev", "app", "pw");
    expect(salt).toHaveLength(16);
    expect(scramSalt("dev", "app", "pw").equals(salt)).toBe(true);
    for (const other of [scramSalt("prod", "app", "pw"), scramSalt("dev", "pgstack_monitor", "pw"), scramSalt("dev", "app", "pw2")]) {
      expect(other.equals(salt)).toBe(false);
    }
  });

  it("costs a full PBKDF2 run of the verifier's iteration count, not one hash", () => {
    expect(scramSalt("dev", "app", "pw").equals(pbkdf2Sync("pw", "pgvector-stack/scram-salt/dev/app", 4096, 16, "sha256"))).toBe(true);
  });

  it("refuses an empty password", () => {
    expect(() => scramSalt("dev", "app", "")).toThrow(/role "app" of stack "dev": the password is empty/);
  });
});
