/** The docker target's pure layout functions (components/docker/layout.ts, scram-salt.ts): no Pulumi involved. */
import { pbkdf2Sync } from "node:crypto";
import { readFileSync } from "node:fs";
import yaml from "js-yaml";
import { describe, expect, it } from "vitest";
import {
  canaryCommand,
  canaryConnectAddresses,
  confSetting,
  connectionUrl,
  dockerNames,
  endpoints,
  hookTrigger,
  hugePagesDecision,
  iniSetting,
  memlockUlimit,
  metricSourceVolumes,
  mtailCommand,
  mtailProgramPath,
  nodeExporterCommand,
  paths,
  pgbouncerExporterLaunch,
  pgbouncerLayout,
  postgresExporterLaunch,
  postgresLaunch,
  postgresOwner,
  prometheusConfigYaml,
  scrapeTargets,
  shmSizeMiB,
  sortedLabels,
  stackProblems,
  superuserSocketMethod,
} from "../../../components/docker/layout";
import { roleSalt as scramSalt } from "../../../configs/scram";
import { nodeExporterArgs } from "../../../configs/exporters";
import type { IndexPlanEntry } from "../../../configs/hnsw";
import { mtailArgs } from "../../../configs/mtail";
import { containerDataMount, diskMountpointsFor, renderStack, scrapeJobsFor } from "../../../configs/render";
import { jobNamesFor } from "../../../configs/scrape";
import type { Rendered, RenderedMemory } from "../../../configs/rendered";
import { parseStackSpec, stackConfigFromFile } from "../../../configs/spec";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

type Config = Record<string, unknown>;

function rendered(change: (config: Config) => void = () => {}): Rendered {
  const file = yaml.load(readFileSync(`${__dirname}/../../../Pulumi.dev.yaml`, "utf8")) as { config: Config };
  const config = stackConfigFromFile(file.config);
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

/** Every job the rules' `up` and `absent` guards name (`job="x"`, `job=~"x|y"`), sorted. */
function jobsNamedIn(rulesYaml: string): string[] {
  const jobs = new Set<string>();
  for (const m of rulesYaml.matchAll(/\bjob=~?"([^"]*)"/g)) for (const job of m[1].split("|")) jobs.add(job);
  return [...jobs].sort();
}

const build = (maintenanceWorkMem: string) => ({ indexName: "items_embedding_hnsw_idx", build: { maintenanceWorkMem, maxParallelMaintenanceWorkers: 2 } }) as IndexPlanEntry;

describe("shmSizeMiB", () => {
  it.each([
    // maintenance_work_mem, builds' SET maintenance_work_mem, /dev/shm MiB
    [64 * MiB, [], 128],
    [512 * MiB, [], 576],
    [2 * GiB, ["2GB"], 2112],
    [1 * GiB, ["4GB"], 4160],
    [8 * GiB, ["1GB", "512MB"], 8256],
    [100 * MiB + 1, [], 165],
  ] as const)("maintenance_work_mem %d bytes, builds %j → %d MiB", (mwm, builds, want) => {
    const shm = shmSizeMiB(memory({ maintenanceWorkMemBytes: mwm }), builds.map(build));
    expect(shm).toBe(want);
    expect(shm * MiB).toBeGreaterThanOrEqual(mwm);
  });

  it("names the index whose build size cannot be read", () => {
    expect(() => shmSizeMiB(memory({}), [build("lots")])).toThrow(/items_embedding_hnsw_idx: build.maintenanceWorkMem "lots"/);
  });
});

describe("memlockUlimit", () => {
  it.each([
    ["try", 1075, { name: "memlock", soft: 1075 * 2 * MiB, hard: 1075 * 2 * MiB }],
    ["on", 8, { name: "memlock", soft: 16 * MiB, hard: 16 * MiB }],
    ["off", 0, null],
  ] as const)("huge_pages %s with %d pages", (setting, pages, want) => {
    expect(memlockUlimit(memory({ hugePagesSetting: setting, hugePages: pages }))).toEqual(want);
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
    expect(confSetting(r.files["postgresql.conf"], "huge_pages")).toBe(mode);
  });
});

describe("config file readers", () => {
  it.each([
    ["[pgbouncer]\nlisten_port = 6433\n", "pgbouncer", "listen_port", "6433"],
    ["[databases]\nlisten_port = 1\n[pgbouncer]\n;listen_port = 2\n", "pgbouncer", "listen_port", undefined],
    ["[pgbouncer]\nauth_file = /a\nauth_file = /b\n", "pgbouncer", "auth_file", "/b"],
    ["[pgbouncer]\nunix_socket_dir = \n", "pgbouncer", "unix_socket_dir", ""],
  ] as const)("iniSetting %j %s.%s", (ini, section, key, want) => {
    expect(iniSetting(ini, section, key)).toBe(want);
  });

  it.each([
    ["hba_file = '/x/pg_hba.conf'  # comment\n", "hba_file", "/x/pg_hba.conf"],
    ["# hba_file = '/x'\n", "hba_file", undefined],
    ["huge_pages = try\nhuge_pages = on\n", "huge_pages", "on"],
    ["search_path = '\"$user\", public'\n", "search_path", '"$user", public'],
    ["log_line_prefix = 'it''s'\n", "log_line_prefix", "it's"],
  ] as const)("confSetting %j %s", (conf, name, want) => {
    expect(confSetting(conf, name)).toBe(want);
  });

  it("uploads pg_hba.conf where postgresql.conf says, else passes hba_file on the command line", () => {
    expect(postgresLaunch("shared_buffers = 1GB\n")).toEqual({
      command: ["postgres", "-c", "config_file=/etc/postgresql/postgresql.conf", "-c", "hba_file=/etc/postgresql/pg_hba.conf"],
      hbaPath: "/etc/postgresql/pg_hba.conf",
    });
    expect(postgresLaunch("hba_file = '/srv/hba.conf'\n")).toEqual({
      command: ["postgres", "-c", "config_file=/etc/postgresql/postgresql.conf"],
      hbaPath: "/srv/hba.conf",
    });
  });

  it("reads PgBouncer's port and auth_file from the rendered pgbouncer.ini", () => {
    expect(pgbouncerLayout(rendered().files["pgbouncer.ini"])).toEqual({ listenPort: 6432, userlistPath: "/etc/pgbouncer/userlist.txt" });
    expect(pgbouncerLayout("[pgbouncer]\n")).toEqual({ listenPort: 6432, userlistPath: "/etc/pgbouncer/userlist.txt" });
    expect(() => pgbouncerLayout("[pgbouncer]\nlisten_port = many\n")).toThrow(/listen_port "many"/);
  });

  it.each([
    ["local all postgres peer\nlocal all all scram-sha-256\n", "peer"],
    ["local all all scram-sha-256\nlocal all postgres peer\n", "scram-sha-256"],
    ["# local all postgres peer\nhost all all 127.0.0.1/32 scram-sha-256\n", undefined],
    ["local sameuser,postgres postgres,app trust\n", "trust"],
  ] as const)("superuserSocketMethod %j", (hba, want) => {
    expect(superuserSocketMethod(hba)).toBe(want);
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
    expect(endpoints({ hostHugePages: false, publishAddress, ports: { postgres: 5432, pgbouncer: 6432, prometheus: 9090 } })).toEqual(want);
  });

  it("percent-encodes user and password", () => {
    expect(connectionUrl("app", "p@ss:/w?rd", "h:1", "db")).toBe("postgresql://app:p%40ss%3A%2Fw%3Frd@h:1/db?sslmode=disable");
  });
});

describe("exporters and Prometheus", () => {
  const r = rendered();

  it("runs postgres_exporter on loopback with the rendered flags and queries path, password from env", () => {
    const launch = postgresExporterLaunch(r.spec, r.exporters);
    expect(launch.args[0]).toBe("--web.listen-address=127.0.0.1:9187");
    expect(launch.args.filter((a) => a.startsWith("--web.listen-address"))).toHaveLength(1);
    expect(launch.queriesPath).toBe("/etc/pgstack/postgres-exporter-queries.yaml");
    for (const flag of r.exporters.postgresExporterArgs) expect(launch.args).toContain(flag);
    expect(launch.env).toEqual({ DATA_SOURCE_URI: "127.0.0.1:5432/app?sslmode=disable&application_name=pgstack-postgres-exporter", DATA_SOURCE_USER: "pgstack_monitor" });
    expect(launch.passwordEnv).toBe("DATA_SOURCE_PASS");
  });

  it("runs pgbouncer_exporter on loopback against PgBouncer's port, without a password in its flags", () => {
    const launch = pgbouncerExporterLaunch(r.exporters, 6432);
    expect(launch.args).toEqual([
      "--web.listen-address=127.0.0.1:9127",
      "--pgBouncer.connectionString=postgres://pgstack_stats@127.0.0.1:6432/pgbouncer?sslmode=disable&application_name=pgstack-pgbouncer-exporter",
      ...r.exporters.pgbouncerExporterArgs,
    ]);
    expect(launch.passwordEnv).toBe("PGPASSWORD");
  });

  it("scrapes the exporters, mtail and the canary on loopback and loads the uploaded rules", () => {
    const config = yaml.load(prometheusConfigYaml(r)) as { rule_files: string[]; scrape_configs: { job_name: string; static_configs: { targets: string[]; labels: Record<string, string> }[] }[] };
    expect(config.rule_files).toEqual(["/etc/prometheus/rules/alert-rules.yaml"]);
    expect(config.scrape_configs).toEqual([
      { job_name: "postgres", static_configs: [{ targets: ["127.0.0.1:9187"], labels: { stack: "dev" } }] },
      { job_name: "pgbouncer", static_configs: [{ targets: ["127.0.0.1:9127"], labels: { stack: "dev" } }] },
      { job_name: "node", static_configs: [{ targets: ["127.0.0.1:9100"], labels: { stack: "dev" } }] },
      { job_name: "canary", static_configs: [{ targets: ["127.0.0.1:9188"], labels: { stack: "dev" } }] },
      { job_name: "mtail", static_configs: [{ targets: ["127.0.0.1:3903"], labels: { stack: "dev" } }] },
    ]);
  });

  it("scrapes exactly the jobs the rendered rules are written for", () => {
    // A job with rules but no target would leave its rules blind (and ScrapeJobAbsent firing); a target without
    // rules would be scraped for nothing.
    expect(jobNamesFor(scrapeTargets(r.exporters))).toEqual(scrapeJobsFor("docker"));
    expect(scrapeJobsFor("docker")).toEqual({ postgres: "postgres", pgbouncer: "pgbouncer", node: "node", canary: "canary", mtail: "mtail" });
    // The same from the files themselves: the jobs prometheus.yml scrapes are the jobs alert-rules.yaml names.
    const config = yaml.load(prometheusConfigYaml(r)) as { scrape_configs: { job_name: string }[] };
    expect(config.scrape_configs.map((c) => c.job_name).sort()).toEqual(jobsNamedIn(r.files["alert-rules.yaml"]));
  });

  it("runs node_exporter with the shared collector flags, on loopback", () => {
    expect(nodeExporterCommand()).toEqual([...nodeExporterArgs(), "--web.listen-address=127.0.0.1:9100"]);
  });

  it("runs mtail with the shared flags over PGDATA as mounted, on loopback, as PGDATA's owner", () => {
    expect(mtailCommand()).toEqual([...mtailArgs({ programsDir: "/etc/mtail", pgdata: containerDataMount }), "--address", "127.0.0.1", "--port", "3903"]);
    expect(mtailCommand()).toContain("/var/lib/postgresql/data/log/postgresql-*.log");
    expect(mtailProgramPath).toBe("/etc/mtail/postgresql.mtail");
    expect(postgresOwner).toBe("999:999");
  });

  it("mounts the data volume read-only into the metric sources, where PostgreSQL has it and the disk alert looks", () => {
    expect(paths.dataDirectory).toBe(containerDataMount);
    expect(diskMountpointsFor("docker")).toEqual([paths.dataDirectory]);
    expect(metricSourceVolumes("pgstack-dev-data")).toEqual([{ volumeName: "pgstack-dev-data", containerPath: "/var/lib/postgresql/data", readOnly: true }]);
  });

  it("runs the canary from the bundle on loopback, reaching PgBouncer and PostgreSQL on loopback", () => {
    expect(canaryCommand()).toEqual(["node", "/hook/pgstack.js", "canary", "--listen", "127.0.0.1:9188"]);
    expect(canaryConnectAddresses(6432)).toEqual({ pooled: "127.0.0.1:6432", direct: "127.0.0.1:5432" });
  });
});

describe("stackProblems", () => {
  it("finds none in the dev stack", () => {
    expect(stackProblems(rendered())).toEqual([]);
  });

  it.each([
    ["another target", (r: Rendered): Rendered => ({ ...r, spec: { ...r.spec, target: "kubernetes" } }), /target is "kubernetes"/],
    [
      "stale huge pages",
      (r: Rendered): Rendered => ({ ...r, spec: { ...r.spec, docker: { ...r.spec.docker, hostHugePages: true } } }),
      /docker.hostHugePages is true but the rendered huge_pages is try/,
    ],
    [
      "a password-only superuser socket",
      (r: Rendered): Rendered => ({ ...r, files: { ...r.files, "pg_hba.conf": "local all all scram-sha-256\n" } }),
      /superuser on the socket by scram-sha-256, not peer/,
    ],
    [
      "PgBouncer on Prometheus' port",
      (r: Rendered): Rendered => ({ ...r, files: { ...r.files, "pgbouncer.ini": "[pgbouncer]\nlisten_port = 9090\n" } }),
      /PgBouncer \(pgbouncer.ini listen_port\) and Prometheus both use port 9090/,
    ],
    [
      "postgres_exporter on the canary's port",
      (r: Rendered): Rendered => ({ ...r, exporters: { ...r.exporters, postgresExporterPort: 9188 } }),
      /postgres_exporter and the canary both use port 9188/,
    ],
    [
      "postgres_exporter on node_exporter's port",
      (r: Rendered): Rendered => ({ ...r, exporters: { ...r.exporters, postgresExporterPort: 9100 } }),
      /postgres_exporter and node_exporter both use port 9100/,
    ],
    [
      "pgbouncer_exporter on mtail's port",
      (r: Rendered): Rendered => ({ ...r, exporters: { ...r.exporters, pgbouncerExporterPort: 3903 } }),
      /pgbouncer_exporter and mtail both use port 3903/,
    ],
    [
      "two published ports alike",
      (r: Rendered): Rendered => ({ ...r, spec: { ...r.spec, docker: { ...r.spec.docker, ports: { postgres: 7000, pgbouncer: 7000, prometheus: 9090 } } } }),
      /docker.ports.postgres and docker.ports.pgbouncer both use port 7000/,
    ],
    [
      "an application role named like the superuser",
      (r: Rendered): Rendered => ({ ...r, spec: { ...r.spec, postgres: { ...r.spec.postgres, appUser: "postgres" } } }),
      /postgres.appUser "postgres" is one of the stack's own roles/,
    ],
  ] as const)("reports %s", (_what, change, message) => {
    const problems = stackProblems(change(rendered()));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(message);
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
