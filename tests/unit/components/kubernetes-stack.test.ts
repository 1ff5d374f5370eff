/**
 * VectorStack under Pulumi's mocks: what the program registers, checked object by object, and every Kubernetes
 * object validated against the API schema (kubernetes-models) with unknown fields refused (k8s-schema.ts).
 */
import yaml from "js-yaml";
import { beforeAll, describe, expect, it } from "vitest";
import type { Rendered } from "../../../configs/rendered";
import { redactedSecrets, schemaProblems, withoutSecretMarkers } from "./k8s-schema";
import { installMocks, mockPem, mockPrivateKeyPrefix, outputOf, type RecordedResource } from "./pulumi-harness";

/** A configured secret (Pulumi config, `--secret`), and the harness's generated passwords: neither may leak. */
const configuredSecret = "configured-app-password-3c1d9e";
const generatedPrefix = "mock-password-";
const recorded = installMocks({ "pgvector-stack:appPassword": configuredSecret });

type Modules = {
  pulumi: typeof import("@pulumi/pulumi");
  stack: typeof import("../../../components/kubernetes/vector-stack");
  render: typeof import("../../../configs/render");
  spec: typeof import("../../../configs/spec");
  credentials: typeof import("../../../components/kubernetes/credentials");
  layout: typeof import("../../../components/kubernetes/layout");
  exporters: typeof import("../../../configs/exporters");
  mtail: typeof import("../../../configs/mtail");
  pgbouncerLog: typeof import("../../../configs/pgbouncer-log");
};
let m: Modules;

beforeAll(async () => {
  // The program is imported after setMocks, as Pulumi's mock tests require.
  m = {
    pulumi: await import("@pulumi/pulumi"),
    stack: await import("../../../components/kubernetes/vector-stack"),
    render: await import("../../../configs/render"),
    spec: await import("../../../configs/spec"),
    credentials: await import("../../../components/kubernetes/credentials"),
    layout: await import("../../../components/kubernetes/layout"),
    exporters: await import("../../../configs/exporters"),
    mtail: await import("../../../configs/mtail"),
    pgbouncerLog: await import("../../../configs/pgbouncer-log"),
  };
});

function renderedFor(overrides: Record<string, unknown> = {}): Rendered {
  const base = { target: "kubernetes", node: { memory: "32Gi", cpus: 8 }, postgres: { hugePages: "on" }, kubernetes: { namespace: "pgvector-test" } };
  return m.render.renderStack(m.spec.parseStackSpec("staging", { ...base, ...overrides }));
}

/** Resolves once the mocks have stopped registering resources. */
async function quiesce(): Promise<void> {
  let seen = -1;
  while (seen !== recorded.length) {
    seen = recorded.length;
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Recorded Kubernetes objects, navigated freely: the schema test is what checks their shape. */
// biome-ignore lint/suspicious/noExplicitAny: test navigation of recorded inputs
type Obj = any;

interface Deployed {
  readonly stack: InstanceType<Modules["stack"]["VectorStack"]>;
  readonly resources: RecordedResource[];
  of(type: string): RecordedResource[];
  one(type: string, nameIncludes?: string): Obj;
}

const deployments = new Map<string, Promise<Deployed>>();

/** One VectorStack named `name` (memoized: tests share deployments), its registered resources, plain. */
function deploy(name: string, rendered: () => Rendered, args: Record<string, unknown> = {}): Promise<Deployed> {
  const existing = deployments.get(name);
  if (existing) return existing;
  const done = (async () => {
    const stack = new m.stack.VectorStack(name, {
      rendered: rendered(),
      hookBundle: "require('./cli').main(process.argv)",
      appPassword: new m.pulumi.Config("pgvector-stack").requireSecret("appPassword"),
      ...args,
    });
    await outputOf(stack.hookJobName);
    await outputOf(stack.connectionString);
    await quiesce();
    const resources = recorded.filter((r) => r.name === name || r.name.startsWith(`${name}-`));
    const of = (type: string) => resources.filter((r) => r.type === type);
    return {
      stack,
      resources,
      of,
      one(type: string, nameIncludes = "") {
        const found = of(type).filter((r) => r.name.includes(nameIncludes));
        if (found.length !== 1) throw new Error(`expected one ${type} *${nameIncludes}* in ${name}, found ${found.length}`);
        return withoutSecretMarkers(found[0].inputs);
      },
    };
  })();
  deployments.set(name, done);
  return done;
}

const T = {
  statefulSet: "kubernetes:apps/v1:StatefulSet",
  deployment: "kubernetes:apps/v1:Deployment",
  configMap: "kubernetes:core/v1:ConfigMap",
  secret: "kubernetes:core/v1:Secret",
  service: "kubernetes:core/v1:Service",
  job: "kubernetes:batch/v1:Job",
  namespace: "kubernetes:core/v1:Namespace",
  podMonitor: "kubernetes:monitoring.coreos.com/v1:PodMonitor",
  prometheusRule: "kubernetes:monitoring.coreos.com/v1:PrometheusRule",
  networkPolicy: "kubernetes:networking.k8s.io/v1:NetworkPolicy",
  pdb: "kubernetes:policy/v1:PodDisruptionBudget",
  certificate: "kubernetes:cert-manager.io/v1:Certificate",
};


function podSpec(sts: Obj): Obj {
  return sts.spec.template.spec;
}

function container(sts: Obj, name: string): Obj {
  const spec = podSpec(sts);
  const found = [...spec.containers, ...(spec.initContainers ?? [])].find((c: Obj) => c.name === name);
  if (!found) throw new Error(`no container ${name}`);
  return found;
}

const mainStack = () => deploy("s1", () => renderedFor());

describe("the database pod: huge pages, memory, /dev/shm", () => {
  it("requests hugepages-2Mi = pages × 2Mi as request and limit, with memory request = limit beside it", async () => {
    const d = await mainStack();
    const rendered = renderedFor();
    const postgres = container(d.one(T.statefulSet), "postgres");
    const pages = rendered.memory.hugePages;
    expect(pages).toBeGreaterThan(0);
    expect(postgres.resources.requests["hugepages-2Mi"]).toBe(`${pages * 2}Mi`);
    expect(postgres.resources.limits["hugepages-2Mi"]).toBe(`${pages * 2}Mi`);
    expect(postgres.resources.requests.memory).toMatch(/^\d+(Mi|Gi)$/);
    expect(postgres.resources.limits.memory).toBe(postgres.resources.requests.memory);
    expect(rendered.files["postgresql.conf"]).toMatch(/^huge_pages = on\b/m);
  });

  it("mounts an emptyDir of medium HugePages", async () => {
    const sts = (await mainStack()).one(T.statefulSet);
    const volume = podSpec(sts).volumes.find((v: Obj) => v.emptyDir?.medium === "HugePages");
    expect(volume).toBeDefined();
    expect(container(sts, "postgres").volumeMounts).toContainEqual({ mountPath: "/dev/hugepages", name: volume.name });
  });

  it("mounts a memory-backed /dev/shm of at least maintenance_work_mem", async () => {
    const sts = (await mainStack()).one(T.statefulSet);
    const mount = container(sts, "postgres").volumeMounts.find((v: Obj) => v.mountPath === "/dev/shm");
    const volume = podSpec(sts).volumes.find((v: Obj) => v.name === mount.name);
    expect(volume.emptyDir.medium).toBe("Memory");
    const size = /^(\d+)(Mi|Gi)$/.exec(volume.emptyDir.sizeLimit);
    expect(size).not.toBeNull();
    const sizeBytes = Number(size![1]) * (size![2] === "Gi" ? 1024 ** 3 : 1024 ** 2);
    expect(sizeBytes).toBeGreaterThanOrEqual(renderedFor().memory.maintenanceWorkMemBytes);
  });

  it("huge_pages = off: no hugepages request, limit or volume, and the file says off", async () => {
    const d = await deploy("s-off", () => renderedFor({ postgres: { hugePages: "off" } }));
    const sts = d.one(T.statefulSet);
    const text = JSON.stringify(sts);
    expect(text).not.toContain("hugepages-2Mi");
    expect(text).not.toContain("HugePages");
    expect(text).not.toContain("/dev/hugepages");
    expect(container(sts, "postgres").resources.limits.memory).toBeDefined();
    expect(d.one(T.configMap, "database").data["postgresql.conf"]).toMatch(/^huge_pages = off\b/m);
    // initdb runs with the same setting, not PostgreSQL's default `try`.
    expect(container(sts, "postgres").env).toContainEqual({ name: "POSTGRES_INITDB_ARGS", value: "--set=huge_pages=off" });
  });
});

describe("the database pod: containers", () => {
  it("runs PgBouncer as a native sidecar: an init container with restartPolicy Always", async () => {
    const spec = podSpec((await mainStack()).one(T.statefulSet));
    expect(spec.initContainers.map((c: Obj) => [c.name, c.restartPolicy])).toEqual([
      ["pgbouncer", "Always"],
      ["tls-reloader", "Always"],
    ]);
    expect(spec.containers.map((c: Obj) => c.name)).toEqual(["postgres", "postgres-exporter", "pgbouncer-exporter", "node-exporter", "mtail"]);
    expect(spec.containers.every((c: Obj) => c.restartPolicy === undefined)).toBe(true);
  });

  it("starts PostgreSQL on the rendered files, PGDATA below the mount, data on the claim template", async () => {
    const sts = (await mainStack()).one(T.statefulSet);
    const postgres = container(sts, "postgres");
    expect(postgres.args).toEqual([
      "postgres",
      "-c",
      "config_file=/etc/postgresql/postgresql.conf",
      "-c",
      "hba_file=/etc/postgresql/pg_hba.conf",
      "-c",
      "ident_file=/etc/postgresql/pg_ident.conf",
    ]);
    // The superuser's verifier, never its password, is what the entrypoint hands initdb.
    expect(postgres.env).toContainEqual({ name: "POSTGRES_PASSWORD", valueFrom: { secretKeyRef: { key: "superuser-verifier", name: "pgvector-credentials" } } });
    expect(postgres.env).toContainEqual({ name: "PGDATA", value: "/var/lib/postgresql/data/pgdata" });
    expect(postgres.volumeMounts).toContainEqual({ mountPath: "/var/lib/postgresql/data", name: "data" });
    expect(sts.spec.volumeClaimTemplates[0].metadata.name).toBe("data");
    expect(sts.spec.volumeClaimTemplates[0].spec.resources.requests.storage).toBe("100Gi");
    expect(postgres.readinessProbe.exec.command[0]).toBe("pg_isready");
    expect(container(sts, "pgbouncer").readinessProbe.tcpSocket.port).toBe("pgbouncer");
  });

  it("runs node_exporter with exactly the shared collector flags, the data volume read-only, and no host access", async () => {
    const sts = (await mainStack()).one(T.statefulSet);
    const rendered = renderedFor();
    const node = container(sts, "node-exporter");
    expect(node.image).toBe(rendered.spec.images.upstream.nodeExporter);
    expect(node.command).toBeUndefined();
    expect(node.args).toEqual([...m.exporters.nodeExporterArgs(), `--web.listen-address=:${m.exporters.nodeExporterPort}`]);
    expect(node.ports).toEqual([{ containerPort: 9100, name: "node-metrics", protocol: "TCP" }]);
    // The data volume is the filesystem the disk alert watches; node_exporter only statfs()es it.
    expect(node.volumeMounts).toEqual([{ mountPath: "/var/lib/postgresql/data", name: "data", readOnly: true }]);
    expect(rendered.placement.dataVolumeMount).toBe(node.volumeMounts[0].mountPath);
    expect(rendered.files["alert-rules.yaml"]).toContain(`mountpoint="${node.volumeMounts[0].mountPath}"`);
    expect(node.securityContext.runAsUser).toBe(65534);
    expect(node.resources).toEqual({ limits: { memory: "40Mi" }, requests: { cpu: "50m", memory: "40Mi" } });
  });

  it("runs mtail as the postgres uid over the collector's log files, the data volume read-only, the program from the ConfigMap", async () => {
    const sts = (await mainStack()).one(T.statefulSet);
    const rendered = renderedFor();
    const mtail = container(sts, "mtail");
    expect(mtail.image).toBe(rendered.spec.images.upstream.mtail);
    expect(mtail.command).toBeUndefined();
    expect(mtail.args).toEqual([
      ...m.mtail.mtailArgs({ programsDir: "/etc/mtail", pgdata: "/var/lib/postgresql/data/pgdata" }),
      "--port",
      String(m.mtail.mtailPort),
    ]);
    expect(mtail.ports).toEqual([{ containerPort: 3903, name: "mtail-metrics", protocol: "TCP" }]);
    // PostgreSQL's log files are 0600 in a 0700 PGDATA owned by 999: only that uid reads them.
    expect(mtail.securityContext.runAsUser).toBe(999);
    expect(mtail.securityContext.readOnlyRootFilesystem).toBe(true);
    expect(mtail.args).toContain("--logtostderr");
    expect(mtail.volumeMounts).toContainEqual({ mountPath: "/var/lib/postgresql/data", name: "data", readOnly: true });
    const programMount = mtail.volumeMounts.find((v: Obj) => v.mountPath === "/etc/mtail");
    expect(programMount.readOnly).toBe(true);
    const programVolume = podSpec(sts).volumes.find((v: Obj) => v.name === programMount.name);
    expect(programVolume.configMap).toMatchObject({ items: [{ key: "postgresql.mtail", path: "postgresql.mtail" }], name: "pgvector-config" });
    expect((await mainStack()).one(T.configMap, "database").data["postgresql.mtail"]).toBe(rendered.files["postgresql.mtail"]);
    expect(mtail.resources).toEqual({ limits: { memory: "48Mi" }, requests: { cpu: "50m", memory: "48Mi" } });
  });

  it("shares PgBouncer's logfile with mtail on an emptyDir: PgBouncer writes it (its loop keeps it under the cap), mtail reads it", async () => {
    const sts = (await mainStack()).one(T.statefulSet);
    const rendered = renderedFor();
    const spec = podSpec(sts);
    const pgbouncer = spec.initContainers.find((c: Obj) => c.name === "pgbouncer");
    expect(pgbouncer.command).toEqual(m.pgbouncerLog.pgbouncerContainerCommand("/etc/pgbouncer/pgbouncer.ini", rendered.placement.paths.pgbouncerLog));
    const logMounts = [...spec.containers, ...spec.initContainers].flatMap((c: Obj) =>
      (c.volumeMounts ?? []).filter((v: Obj) => v.name === "pgbouncer-log").map((v: Obj) => [c.name, v.mountPath, v.readOnly === true]),
    );
    expect(logMounts).toEqual([
      ["mtail", "/var/run/pgbouncer", true],
      ["pgbouncer", "/var/run/pgbouncer", false],
    ]);
    expect(spec.volumes.find((v: Obj) => v.name === "pgbouncer-log")).toEqual({ emptyDir: {}, name: "pgbouncer-log" });
    expect(container(sts, "mtail").args).toContain(rendered.placement.paths.pgbouncerLog);
    expect(rendered.files["pgbouncer.ini"]).toContain(`\nlogfile = ${rendered.placement.paths.pgbouncerLog}\n`);
  });

  it("mounts the data volume writable in PostgreSQL only, and asks for nothing from the host", async () => {
    const spec = podSpec((await mainStack()).one(T.statefulSet));
    const dataMounts = [...spec.containers, ...spec.initContainers].flatMap((c: Obj) =>
      (c.volumeMounts ?? []).filter((v: Obj) => v.name === "data").map((v: Obj) => [c.name, v.readOnly === true]),
    );
    expect(dataMounts).toEqual([
      ["postgres", false],
      ["node-exporter", true],
      ["mtail", true],
    ]);
    expect(spec.hostPID).toBeUndefined();
    expect(spec.hostNetwork).toBeUndefined();
    expect(spec.hostIPC).toBeUndefined();
    // node_exporter reads /proc/1/mountinfo: with a shared process namespace, PID 1 would be the pause container.
    expect(spec.shareProcessNamespace).toBeUndefined();
    expect(spec.volumes.filter((v: Obj) => v.hostPath)).toEqual([]);
    expect(JSON.stringify(spec)).not.toMatch(/hostPath|hostPID|hostNetwork|hostIPC|hostPort|privileged/);
  });

  it("gives every container, init and sidecar too, a restricted security context", async () => {
    const d = await mainStack();
    for (const workload of [podSpec(d.one(T.statefulSet)), d.one(T.job).spec.template.spec, podSpec(d.one(T.deployment))]) {
      expect(workload.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } });
      expect(workload.automountServiceAccountToken).toBe(false);
      for (const c of [...workload.containers, ...(workload.initContainers ?? [])]) {
        expect(c.securityContext, c.name).toEqual({
          allowPrivilegeEscalation: false,
          capabilities: { drop: ["ALL"] },
          readOnlyRootFilesystem: true,
          runAsGroup: c.securityContext.runAsUser,
          runAsNonRoot: true,
          runAsUser: c.securityContext.runAsUser,
          seccompProfile: { type: "RuntimeDefault" },
        });
      }
    }
    expect(container(d.one(T.statefulSet), "postgres").securityContext.runAsUser).toBe(999);
  });

  it("fills every password from a Secret, never a literal", async () => {
    const spec = podSpec((await mainStack()).one(T.statefulSet));
    const envs = [...spec.containers, ...spec.initContainers].flatMap((c: Obj) => c.env ?? []);
    for (const name of ["POSTGRES_PASSWORD", "DATA_SOURCE_PASS", "PGPASSWORD"]) {
      const env = envs.find((e: Obj) => e.name === name);
      expect(env?.value, name).toBeUndefined();
      expect(env?.valueFrom?.secretKeyRef?.name, name).toBe("pgvector-credentials");
    }
  });
});

describe("ConfigMap and the config checksum", () => {
  it("holds rendered.files byte for byte", async () => {
    const data = (await mainStack()).one(T.configMap, "database").data;
    expect(data).toEqual({ ...renderedFor().files });
    for (const [name, text] of Object.entries(renderedFor().files)) expect(Buffer.from(data[name]).equals(Buffer.from(text)), name).toBe(true);
  });

  it("changes checksum/config with the mtail program, so a new program rolls the pod", async () => {
    const checksum = async (d: Promise<Deployed>) => (await d).one(T.statefulSet).spec.template.metadata.annotations["checksum/config"];
    const base = renderedFor();
    const program = `${base.files["postgresql.mtail"]}# another program\n`;
    const reprogrammed = deploy("s-mtail", () => ({ ...renderedFor(), files: { ...renderedFor().files, "postgresql.mtail": program } }));
    expect((await reprogrammed).one(T.configMap, "database").data["postgresql.mtail"]).toBe(program);
    expect(await checksum(reprogrammed)).not.toBe(await checksum(mainStack()));
  });

  it("annotates the pod with checksum/config: unchanged when nothing changes, changed with postgresql.conf", async () => {
    const checksum = async (d: Promise<Deployed>) => (await d).one(T.statefulSet).spec.template.metadata.annotations["checksum/config"];
    const first = await checksum(mainStack());
    expect(first).toMatch(/^[0-9a-f]{64}$/);
    expect(await checksum(deploy("s-same", () => renderedFor()))).toBe(first);
    const tuned = deploy("s-tuned", () => renderedFor({ postgres: { hugePages: "on", settings: { random_page_cost: "1.5" } } }));
    expect((await tuned).one(T.configMap, "database").data["postgresql.conf"]).not.toBe(renderedFor().files["postgresql.conf"]);
    expect(await checksum(tuned)).not.toBe(first);
  });
});

describe("Services, NetworkPolicy, PodDisruptionBudget", () => {
  it("pooled 6432 for applications, direct 5432 for admin and the hook, named metrics ports", async () => {
    const d = await mainStack();
    const ports = (role: string) => d.one(T.service, role).spec.ports.map((p: Obj) => `${p.name}:${p.port}`);
    expect(ports("pooled")).toEqual(["pgbouncer:6432"]);
    expect(ports("direct")).toEqual(["postgres:5432"]);
    expect(ports("headless")).toEqual(["postgres:5432", "pgbouncer:6432", "pg-metrics:9187", "pgb-metrics:9127", "node-metrics:9100", "mtail-metrics:3903"]);
    const sts = d.one(T.statefulSet);
    expect(sts.spec.serviceName).toBe("pgvector-headless");
    const containerPorts = [...podSpec(sts).containers, ...podSpec(sts).initContainers].flatMap((c: Obj) => (c.ports ?? []).map((p: Obj) => `${p.name}:${p.containerPort}`));
    expect(containerPorts.sort()).toEqual(["mtail-metrics:3903", "node-metrics:9100", "pg-metrics:9187", "pgb-metrics:9127", "pgbouncer:6432", "postgres:5432"]);
  });

  it("admits only the namespace's pods to 6432, the hook and the canary to 5432, Prometheus to the metrics ports by default", async () => {
    const d = await mainStack();
    const policy = d.one(T.networkPolicy, "database");
    const rules = policy.spec.ingress.map((r: Obj) => ({ from: r.from[0], ports: r.ports.map((p: Obj) => p.port) }));
    expect(rules).toEqual([
      { from: { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "pgvector-test" } }, podSelector: { matchLabels: {} } }, ports: [6432] },
      {
        from: {
          namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "pgvector-test" } },
          podSelector: { matchLabels: { "app.kubernetes.io/component": "postdeploy-hook", "app.kubernetes.io/instance": "pgvector", "app.kubernetes.io/name": "pgvector-stack" } },
        },
        ports: [5432, 6432],
      },
      {
        from: {
          namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "pgvector-test" } },
          podSelector: { matchLabels: { "app.kubernetes.io/component": "canary", "app.kubernetes.io/instance": "pgvector", "app.kubernetes.io/name": "pgvector-stack" } },
        },
        ports: [5432, 6432],
      },
      {
        from: { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } }, podSelector: { matchLabels: { "app.kubernetes.io/name": "prometheus" } } },
        ports: [9187, 9127, 9100, 3903],
      },
    ]);
    // The hook's and the canary's pods carry the labels the policy admits.
    const hookLabels = d.one(T.job).spec.template.metadata.labels;
    expect(hookLabels).toMatchObject(rules[1].from.podSelector.matchLabels);
    expect(d.one(T.deployment).spec.template.metadata.labels).toMatchObject(rules[2].from.podSelector.matchLabels);
    expect(d.one(T.pdb)).toMatchObject({ spec: { minAvailable: 1, unhealthyPodEvictionPolicy: "AlwaysAllow" } });
  });

  it("runs every container of the pod as its rendered launch says: args, plain env, ports", async () => {
    const sts = (await mainStack()).one(T.statefulSet);
    const { launches } = renderedFor();
    for (const [name, launch] of [
      ["postgres-exporter", launches.postgresExporter],
      ["pgbouncer-exporter", launches.pgbouncerExporter],
      ["node-exporter", launches.nodeExporter],
      ["mtail", launches.mtail],
    ] as const) {
      const c = container(sts, name);
      expect(c.args, name).toEqual(launch.args);
      expect(c.ports.map((p: Obj) => p.containerPort), name).toEqual([launch.port]);
      for (const [k, v] of Object.entries(launch.env)) expect(c.env, `${name} ${k}`).toContainEqual({ name: k, value: v });
      for (const k of Object.keys(launch.secretEnv)) expect(c.env.find((e: Obj) => e.name === k)?.valueFrom?.secretKeyRef, `${name} ${k}`).toBeDefined();
    }
    const canary = podSpec((await mainStack()).one(T.deployment)).containers[0];
    expect(canary.command).toEqual(["node", "/hook/pgstack.js", ...launches.canary.args]);
  });
});

describe("platform knobs from the stack file (kubernetes: …)", () => {
  const knobs = {
    namespace: "pgvector-test",
    monitoringLabels: { release: "kps-7f3a" },
    clientNamespaceSelector: { team: "search" },
    clientPodSelector: { app: "api" },
    prometheusNamespaceSelector: { "kubernetes.io/metadata.name": "observability" },
    prometheusPodSelector: { "app.kubernetes.io/name": "prometheus-k8s" },
  };
  const knobbed = () => deploy("s-knobs", () => renderedFor({ kubernetes: knobs }));

  it("are read from a stack file as Pulumi passes it, through the spec", () => {
    const file = [
      "config:",
      "  pgvector-stack:target: kubernetes",
      "  pgvector-stack:node: { memory: 32Gi, cpus: 8 }",
      "  pgvector-stack:kubernetes:",
      "    monitoringLabels: { release: kps-7f3a }",
      "    clientNamespaceSelector: { team: search }",
      "    clientPodSelector: { app: api }",
      "    prometheusNamespaceSelector: { kubernetes.io/metadata.name: observability }",
      "    prometheusPodSelector: { app.kubernetes.io/name: prometheus-k8s }",
    ].join("\n");
    const config = m.spec.stackConfigFromFile((yaml.load(file) as { config: Record<string, unknown> }).config);
    const spec = m.spec.parseStackSpec("staging", config);
    const { namespace: _, ...wanted } = knobs;
    expect(spec.kubernetes).toMatchObject(wanted);
  });

  it("admits the stack file's clients to PgBouncer and its Prometheus to the metrics ports, in both NetworkPolicies", async () => {
    const d = await knobbed();
    const ingress = d.one(T.networkPolicy, "database").spec.ingress;
    expect(ingress[0].from[0]).toEqual({ namespaceSelector: { matchLabels: { team: "search" } }, podSelector: { matchLabels: { app: "api" } } });
    expect(ingress[3].from[0]).toEqual({
      namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "observability" } },
      podSelector: { matchLabels: { "app.kubernetes.io/name": "prometheus-k8s" } },
    });
    // The canary's own policy admits the same Prometheus.
    expect(d.one(T.networkPolicy, "canary").spec.ingress[0].from[0]).toEqual(ingress[3].from[0]);
  });

  it("puts monitoringLabels on both PodMonitors and the PrometheusRule, and on nothing else", async () => {
    const d = await knobbed();
    const selected = [...d.of(T.podMonitor), ...d.of(T.prometheusRule)];
    expect(selected).toHaveLength(3);
    for (const r of selected) {
      const labels = (r.inputs as Obj).metadata.labels;
      expect(labels.release, r.name).toBe("kps-7f3a");
      // Beside the stack's own labels, which stay.
      expect(labels, r.name).toMatchObject({ "app.kubernetes.io/managed-by": "pulumi", "pgvector-stack/stack": "staging" });
      expect(Object.keys(labels), r.name).toEqual([...Object.keys(labels)].sort());
    }
    const others = d.resources.filter((r) => !selected.includes(r));
    expect(others.length).toBeGreaterThan(15);
    for (const r of others) expect(JSON.stringify(r.inputs).includes("kps-7f3a"), `${r.type} ${r.name}`).toBe(false);
  });

  it("default to the database's namespace, every pod there, the monitoring namespace's Prometheus, and no extra labels", async () => {
    const d = await mainStack();
    const spec = renderedFor().spec.kubernetes;
    expect(spec).toMatchObject({
      monitoringLabels: {},
      clientNamespaceSelector: null,
      clientPodSelector: {},
      prometheusNamespaceSelector: { "kubernetes.io/metadata.name": "monitoring" },
      prometheusPodSelector: { "app.kubernetes.io/name": "prometheus" },
    });
    const ingress = d.one(T.networkPolicy, "database").spec.ingress;
    expect(ingress[0].from[0].namespaceSelector.matchLabels).toEqual({ "kubernetes.io/metadata.name": "pgvector-test" });
    expect(ingress[3].from[0].podSelector.matchLabels).toEqual({ "app.kubernetes.io/name": "prometheus" });
    for (const r of [...d.of(T.podMonitor), ...d.of(T.prometheusRule)]) {
      expect(Object.keys((r.inputs as Obj).metadata.labels).sort(), r.name).toEqual([
        "app.kubernetes.io/component",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/managed-by",
        "app.kubernetes.io/name",
        "app.kubernetes.io/part-of",
        "pgvector-stack/stack",
      ]);
    }
  });
});

describe("secrets", () => {
  const secretValues = [configuredSecret, generatedPrefix, mockPrivateKeyPrefix];

  it("appear in no ConfigMap and no resource input other than Secrets; super() records nothing", async () => {
    const d = await mainStack();
    const nonSecret = d.resources.filter((r) => r.type !== T.secret);
    expect(nonSecret.length).toBeGreaterThan(10);
    // The canary and the dashboard are among the inputs checked.
    expect(nonSecret.map((r) => r.name)).toEqual(
      expect.arrayContaining(["s1-canary-deployment", "s1-canary-config", "s1-canary-network-policy", "s1-monitoring-canary-pod-monitor", "s1-monitoring-dashboard"]),
    );
    for (const r of nonSecret) {
      const text = JSON.stringify(r.type.startsWith("tls:") ? redactedSecrets(r.inputs) : r.inputs);
      for (const value of [...secretValues, "SCRAM-SHA-256$"]) expect(text.includes(value), `${r.type} ${r.name} holds ${value}`).toBe(false);
    }
    for (const r of d.resources.filter((x) => x.type.startsWith("pgvector-stack:"))) expect(r.inputs, r.name).toEqual({});
  });

  it("appear in no plain output; the connection string is a secret", async () => {
    const { stack } = await mainStack();
    const plain = JSON.stringify({
      endpoints: { pooled: await outputOf(stack.endpoints.pooled.host), direct: await outputOf(stack.endpoints.direct.host) },
      memoryPlan: stack.memoryPlan,
      hookJobName: await outputOf(stack.hookJobName),
    });
    for (const value of secretValues) expect(plain).not.toContain(value);
    expect(await m.pulumi.isSecret(stack.connectionString)).toBe(true);
    expect(await outputOf(stack.connectionString)).toBe(
      `postgresql://app:${configuredSecret}@pgvector-pooled.pgvector-test.svc.cluster.local:6432/app?sslmode=verify-full&sslrootcert=/etc/pgstack/tls/ca.crt`,
    );
    // The read-only role through PgBouncer, the owner straight to PostgreSQL (migrations); both secrets. No output
    // reaches the superuser, who logs in on the socket only.
    expect(await m.pulumi.isSecret(stack.readOnlyConnectionString)).toBe(true);
    expect(await m.pulumi.isSecret(stack.ownerConnectionString)).toBe(true);
    expect(await outputOf(stack.readOnlyConnectionString)).toBe(
      `postgresql://app_readonly:${generatedPrefix}s1-database-readOnly-password@pgvector-pooled.pgvector-test.svc.cluster.local:6432/app?sslmode=verify-full&sslrootcert=/etc/pgstack/tls/ca.crt`,
    );
    expect(await outputOf(stack.ownerConnectionString)).toBe(
      `postgresql://app_owner:${generatedPrefix}s1-database-owner-password@pgvector-direct.pgvector-test.svc.cluster.local:5432/app?sslmode=verify-full&sslrootcert=/etc/pgstack/tls/ca.crt`,
    );
    expect(Object.keys(stack).filter((k) => /superuser/i.test(k))).toEqual([]);
  });

  it("the Secrets hold the passwords, and verifiers where PostgreSQL and PgBouncer need them", async () => {
    const d = await mainStack();
    const data = (role: string) => d.one(T.secret, role).stringData;
    expect(data("credentials")).toEqual({
      "monitor-password": `${generatedPrefix}s1-database-monitor-password`,
      "stats-password": `${generatedPrefix}s1-database-stats-password`,
      "pgbouncer-admin-password": `${generatedPrefix}s1-database-pgbouncerAdmin-password`,
      // POSTGRES_PASSWORD: a verifier, as on Docker; the superuser has no password anyone types (socket and peer only).
      "superuser-verifier": m.credentials.roleVerifier("staging", "postgres", `${generatedPrefix}s1-database-superuser-password`),
    });
    const appVerifier = m.credentials.roleVerifier("staging", "app", configuredSecret);
    expect(data("pgbouncer-auth")["userlist.txt"]).toContain(`"app" "${appVerifier}"`);
    expect(data("pgbouncer-auth")["userlist.txt"]).not.toContain(configuredSecret);
    expect(data("pgbouncer-auth")["userlist.txt"]).not.toContain('"postgres"');
    expect(data("bootstrap")["bootstrap.sql"]).toContain(`ALTER ROLE "app" PASSWORD '${appVerifier}'`);
    expect(data("bootstrap")["bootstrap.sql"]).not.toContain(configuredSecret);
    const tls = "sslmode=verify-full&sslrootcert=/etc/pgstack/tls/ca.crt";
    const host = (service: string) => `pgvector-${service}.pgvector-test.svc.cluster.local`;
    // The hook: DDL and index builds as the owner, straight to PostgreSQL; its benchmark through PgBouncer as the application.
    expect(data("hook")).toEqual({
      "direct-url": `postgresql://app_owner:${generatedPrefix}s1-database-owner-password@${host("direct")}:5432/app?${tls}`,
      "pooled-url": `postgresql://app:${configuredSecret}@${host("pooled")}:6432/app?${tls}`,
    });
    expect(data("canary")).toEqual({
      "direct-url": `postgresql://pgstack_canary:${generatedPrefix}s1-database-canary-password@${host("direct")}:5432/app?${tls}`,
      "pooled-url": `postgresql://pgstack_canary:${generatedPrefix}s1-database-canary-password@${host("pooled")}:6432/app?${tls}`,
    });
  });

  it("verifiers are the same on every run (derived salts), so nothing changes between previews", async () => {
    const userlist = async (name: string) => ((await deploy(name, () => renderedFor())).one(T.secret, "pgbouncer-auth")).stringData["userlist.txt"];
    const a = await userlist("s1");
    const b = await userlist("s-same");
    // The generated passwords differ by resource name under the mocks; the configured app password does not.
    const appLine = (text: string) => text.split("\n").find((l: string) => l.startsWith('"app"'));
    expect(appLine(b)).toBe(appLine(a));
  });
});

describe("the post-deploy Job", () => {
  it("runs the bundle on the node image with the plan, its name and pod template carrying plan.json's hash", async () => {
    const d = await mainStack();
    const rendered = renderedFor();
    const sha = m.layout.sha256(rendered.files["plan.json"]);
    const job = d.one(T.job);
    expect(job.metadata.name).toBe(`pgvector-postdeploy-${sha.slice(0, 10)}`);
    expect(await outputOf(d.stack.hookJobName)).toBe(job.metadata.name);
    expect(job.spec.template.metadata.annotations["pgvector-stack/plan-sha256"]).toBe(sha);
    const hook = job.spec.template.spec.containers[0];
    expect(hook.image).toBe(rendered.spec.images.upstream.node);
    expect(hook.command).toEqual(["node", "/hook/pgstack.js", "postdeploy", "--plan", "/etc/pgstack/plan.json"]);
    expect(hook.env.map((e: Obj) => [e.name, e.valueFrom.secretKeyRef.name, e.value])).toEqual([
      ["PGSTACK_DIRECT_URL", "pgvector-hook", undefined],
      ["PGSTACK_POOLED_URL", "pgvector-hook", undefined],
    ]);
    const config = d.one(T.configMap, "postdeploy");
    expect(config.metadata.name).toBe(`pgvector-hook-${sha.slice(0, 10)}`);
    expect(config.data["plan.json"]).toBe(rendered.files["plan.json"]);
    expect(config.data["pgstack.js"]).toBe("require('./cli').main(process.argv)");
  });

  it("gets a new name (so it runs again) exactly when plan.json changes", async () => {
    const jobName = async (d: Promise<Deployed>) => (await d).one(T.job).metadata.name;
    const checksum = async (d: Promise<Deployed>) => (await d).one(T.statefulSet).spec.template.metadata.annotations["checksum/config"];
    const replanned = deploy("s-plan", () => renderedFor({ benchmark: { rows: 5000 } }));
    expect(renderedFor({ benchmark: { rows: 5000 } }).files["plan.json"]).not.toBe(renderedFor().files["plan.json"]);
    expect(await jobName(replanned)).not.toBe(await jobName(mainStack()));
    expect(await checksum(replanned)).toBe(await checksum(mainStack()));
    expect(await jobName(deploy("s-same", () => renderedFor()))).toBe(await jobName(mainStack()));
    // A new postgresql.conf rolls the database, not the hook.
    expect(await jobName(deploy("s-tuned", () => renderedFor({ postgres: { hugePages: "on", settings: { random_page_cost: "1.5" } } })))).toBe(
      await jobName(mainStack()),
    );
  });

  it("refuses a bundle over the ConfigMap limit at construction", () => {
    expect(() => new m.stack.VectorStack("s-big", { rendered: renderedFor(), hookBundle: "x".repeat(1024 * 1024) })).toThrow(
      /hookBundle is 1048576 bytes and plan\.json \d+ bytes: together \d+ bytes, over the 1048576 bytes \(1 MiB\) Kubernetes allows in one ConfigMap/,
    );
  });
});

describe("monitoring objects and the namespace", () => {
  it("registers a PodMonitor and a PrometheusRule with the rendered rule groups", async () => {
    const d = await mainStack();
    const rule = d.one(T.prometheusRule);
    expect(rule.apiVersion).toBe("monitoring.coreos.com/v1");
    expect(rule.spec).toEqual(JSON.parse(JSON.stringify(renderedFor().alertRuleGroups)));
    const monitor = d.one(T.podMonitor, "monitoring-pod-monitor");
    expect(monitor.spec.podMetricsEndpoints.map((e: Obj) => e.port)).toEqual(["pg-metrics", "pgb-metrics", "node-metrics", "mtail-metrics"]);
    expect(monitor.spec.selector.matchLabels).toEqual(d.one(T.statefulSet).spec.selector.matchLabels);
  });

  it("leaves them out without the Prometheus Operator, and the namespace when it exists already", async () => {
    const d = await deploy("s-plain", () => renderedFor({ kubernetes: { namespace: "pgvector-test", prometheusOperator: false } }), { createNamespace: false });
    expect(d.of(T.podMonitor)).toEqual([]);
    expect(d.of(T.prometheusRule)).toEqual([]);
    expect(d.of(T.namespace)).toEqual([]);
    expect(d.one(T.statefulSet).metadata.namespace).toBe("pgvector-test");
    // The canary runs anyway (any Prometheus may scrape it), and the dashboard needs no CRD.
    expect(d.of(T.deployment)).toHaveLength(1);
    expect(d.one(T.configMap, "dashboard").metadata.labels.grafana_dashboard).toBe("1");
  });

  it("creates the namespace enforcing the restricted Pod Security Standard", async () => {
    const ns = (await mainStack()).one(T.namespace);
    expect(ns.metadata.name).toBe("pgvector-test");
    expect(ns.metadata.labels["pod-security.kubernetes.io/enforce"]).toBe("restricted");
  });
});

describe("the canary", () => {
  it("one replica of the node image running `pgstack canary` from its own ConfigMap, after the bundle's hash", async () => {
    const d = await mainStack();
    const rendered = renderedFor();
    const deployment = d.one(T.deployment);
    expect(deployment.metadata).toMatchObject({ name: "pgvector-canary", namespace: "pgvector-test" });
    expect(deployment.spec.replicas).toBe(1);
    const canary = podSpec(deployment).containers[0];
    expect(podSpec(deployment).containers).toHaveLength(1);
    expect(canary.image).toBe(rendered.spec.images.upstream.node);
    expect(canary.command).toEqual(["node", "/hook/pgstack.js", "canary", "--listen", "0.0.0.0:9188"]);
    expect(canary.ports).toEqual([{ containerPort: 9188, name: "canary-metrics", protocol: "TCP" }]);
    expect(canary.readinessProbe.httpGet).toEqual({ path: "/metrics", port: "canary-metrics" });
    expect(canary.livenessProbe.httpGet).toEqual({ path: "/metrics", port: "canary-metrics" });
    expect(canary.resources.requests.cpu).toBe("50m");
    expect(canary.resources.limits).toEqual({ memory: canary.resources.requests.memory });
    expect(deployment.spec.template.metadata.annotations["checksum/bundle"]).toBe(m.layout.sha256("require('./cli').main(process.argv)"));
    const bundleVolume = podSpec(deployment).volumes.find((v: Obj) => v.configMap);
    expect(bundleVolume.configMap.name).toBe("pgvector-canary");
    expect(canary.volumeMounts).toContainEqual({ mountPath: "/hook", name: bundleVolume.name, readOnly: true });
    const config = d.one(T.configMap, "canary");
    expect(config.metadata.name).toBe("pgvector-canary");
    expect(config.data).toEqual({ "pgstack.js": "require('./cli').main(process.argv)" });
  });

  it("takes both URLs, its own role's, from its own Secret, never a literal value", async () => {
    const canary = podSpec((await mainStack()).one(T.deployment)).containers[0];
    expect(canary.env).toEqual([
      { name: "PGSTACK_DIRECT_URL", valueFrom: { secretKeyRef: { key: "direct-url", name: "pgvector-canary-credentials" } } },
      { name: "PGSTACK_POOLED_URL", valueFrom: { secretKeyRef: { key: "pooled-url", name: "pgvector-canary-credentials" } } },
    ]);
    expect(canary.envFrom).toBeUndefined();
  });

  it("is created after the database StatefulSet, the Secret and the Services", async () => {
    // Resource options never reach the mocks; a (legacy) transformation on the component sees each child's options.
    const options: Record<string, Obj> = {};
    const stack = new m.stack.VectorStack(
      "s-opts",
      { rendered: renderedFor(), hookBundle: "x", appPassword: "x" },
      { transformations: [(a) => void (options[a.name] = a.opts)] },
    );
    await outputOf(stack.hookJobName);
    await quiesce();
    const after = await Promise.all((options["s-opts-canary-deployment"].dependsOn as Obj[]).map((r) => outputOf(r.urn)));
    expect(after.map((u: string) => u.split("::").pop()).sort()).toEqual([
      "s-opts-canary-config",
      "s-opts-database-canary",
      "s-opts-database-direct",
      "s-opts-database-pooled",
      "s-opts-database-statefulset",
    ]);
  });

  it("is scraped as job canary with the stack label, by a PodMonitor selecting exactly its pod", async () => {
    const d = await mainStack();
    const monitor = d.one(T.podMonitor, "canary");
    expect(monitor.metadata.name).toBe("pgvector-canary");
    expect(monitor.spec.podMetricsEndpoints).toEqual([
      {
        interval: "15s",
        path: "/metrics",
        port: "canary-metrics",
        relabelings: [
          { action: "replace", replacement: "canary", targetLabel: "job" },
          { action: "replace", replacement: "staging", targetLabel: "stack" },
        ],
      },
    ]);
    const deployment = d.one(T.deployment);
    expect(monitor.spec.selector.matchLabels).toEqual(deployment.spec.selector.matchLabels);
    expect(deployment.spec.template.metadata.labels).toMatchObject(monitor.spec.selector.matchLabels);
    // The database's PodMonitor does not select the canary's pod, nor the canary's the database's.
    expect(d.one(T.podMonitor, "monitoring-pod-monitor").spec.selector.matchLabels).not.toEqual(monitor.spec.selector.matchLabels);
  });

  it("admits Prometheus to 9188 on the canary pod, and nothing else", async () => {
    const d = await mainStack();
    const policy = d.one(T.networkPolicy, "canary");
    expect(policy.metadata.name).toBe("pgvector-canary");
    expect(policy.spec).toEqual({
      ingress: [
        {
          from: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } }, podSelector: { matchLabels: { "app.kubernetes.io/name": "prometheus" } } }],
          ports: [{ port: 9188, protocol: "TCP" }],
        },
      ],
      podSelector: { matchLabels: d.one(T.deployment).spec.selector.matchLabels },
      policyTypes: ["Ingress"],
    });
  });

  it("has its alert rules in the PrometheusRule: the canary group and its scrape guards", async () => {
    const rule = (await mainStack()).one(T.prometheusRule);
    const groups = rule.spec.groups as Obj[];
    expect(groups.map((g) => g.name)).toEqual([
      "pgstack-staging-pgbouncer",
      "pgstack-staging-postgres",
      "pgstack-staging-canary",
      "pgstack-staging-mtail",
      "pgstack-staging-node",
      "pgstack-staging-targets",
    ]);
    const canaryAlerts = groups.find((g) => g.name === "pgstack-staging-canary").rules.filter((r: Obj) => r.alert).map((r: Obj) => r.alert);
    expect(canaryAlerts).toEqual(["CanaryConnectionFailures", "CertificateExpiresSoon", "CertificateExpiresSoon", "VectorQueryLatencyP95High", "QueryLatencyP99High"]);
    const guards = groups.find((g) => g.name === "pgstack-staging-targets").rules.map((r: Obj) => r.expr).join("\n");
    for (const job of ["postgres", "pgbouncer", "node", "canary", "mtail"]) expect(guards).toContain(`absent(up{job="${job}",stack="staging"})`);
  });

  it("scrapes exactly the jobs the alert rules are written for, each with the stack label", async () => {
    const d = await mainStack();
    const rules = JSON.stringify(d.one(T.prometheusRule).spec.groups);
    // job="x" and job=~"x|y" in the rule expressions (JSON-escaped quotes).
    const ruleJobs = new Set([...rules.matchAll(/job=~?\\"([^"\\]+)\\"/g)].flatMap((match) => match[1].split("|")));
    const endpoints = d.of(T.podMonitor).flatMap((r) => (r.inputs as Obj).spec.podMetricsEndpoints);
    const scraped = endpoints.map((e: Obj) => e.relabelings.find((l: Obj) => l.targetLabel === "job").replacement);
    expect(scraped.sort()).toEqual([...ruleJobs].sort());
    expect(scraped.sort()).toEqual(["canary", "mtail", "node", "pgbouncer", "postgres"]);
    for (const e of endpoints) expect(e.relabelings).toContainEqual({ action: "replace", replacement: "staging", targetLabel: "stack" });
    // Every scraped port is one a container of the selected pod declares, and the NetworkPolicy admits Prometheus to it.
    const database = d.one(T.statefulSet);
    const declared = new Map<string, number>(
      podSpec(database).containers.flatMap((c: Obj) => (c.ports ?? []).map((p: Obj) => [p.name, p.containerPort] as [string, number])),
    );
    const databaseEndpoints = d.one(T.podMonitor, "monitoring-pod-monitor").spec.podMetricsEndpoints;
    const admitted = d.one(T.networkPolicy, "database").spec.ingress[3].ports.map((p: Obj) => p.port);
    for (const e of databaseEndpoints) {
      expect(declared.has(e.port), e.port).toBe(true);
      expect(admitted).toContain(declared.get(e.port));
    }
  });
});

describe("TLS", () => {
  const caPath = "/etc/pgstack/tls/ca.crt";
  const tlsQuery = `sslmode=verify-full&sslrootcert=${caPath}`;
  const tlsTypes = {
    privateKey: "tls:index/privateKey:PrivateKey",
    selfSigned: "tls:index/selfSignedCert:SelfSignedCert",
    request: "tls:index/certRequest:CertRequest",
    signed: "tls:index/locallySignedCert:LocallySignedCert",
  };
  const certManager = () =>
    deploy("s-cm", () => renderedFor({ tls: { certManagerIssuer: { name: "stack-ca", kind: "ClusterIssuer" }, renewBefore: "25d" } }));

  /** Where a container reads `file`: the Secret or ConfigMap key behind the mount that holds it (no subPath is used). */
  function sourceOf(pod: Obj, c: Obj, file: string): { secret?: string; configMap?: string; key: string } | undefined {
    const mounts = ((c.volumeMounts ?? []) as Obj[])
      .filter((m) => file.startsWith(`${m.mountPath}/`))
      .sort((a, b) => b.mountPath.length - a.mountPath.length);
    if (mounts.length === 0) return undefined;
    const relative = file.slice(mounts[0].mountPath.length + 1);
    const volume = (pod.volumes as Obj[]).find((v) => v.name === mounts[0].name);
    const fromItems = (items: Obj[] | undefined, name: string, kind: "secret" | "configMap") => {
      if (items === undefined) return { [kind]: name, key: relative };
      const item = items.find((i) => i.path === relative);
      return item === undefined ? undefined : { [kind]: name, key: item.key };
    };
    if (volume.secret) return fromItems(volume.secret.items, volume.secret.secretName, "secret");
    if (volume.configMap) return fromItems(volume.configMap.items, volume.configMap.name, "configMap");
    for (const source of volume.projected?.sources ?? []) {
      const found = source.secret ? fromItems(source.secret.items, source.secret.name, "secret") : fromItems(source.configMap.items, source.configMap.name, "configMap");
      if (found) return found;
    }
    return undefined;
  }

  it("makes the CA and the server certificate with @pulumi/tls: ECDSA P-256, every Service name and loopback, rendered.tls' lifetime", async () => {
    const d = await mainStack();
    const of = (type: string) => d.resources.filter((r) => r.type === type).map((r) => ({ name: r.name, inputs: withoutSecretMarkers(r.inputs) as Obj }));
    expect(of(tlsTypes.privateKey).map((k) => [k.name, k.inputs])).toEqual([
      ["s1-database-tls-certificates-ca-key", { algorithm: "ECDSA", ecdsaCurve: "P256" }],
      ["s1-database-tls-certificates-server-key", { algorithm: "ECDSA", ecdsaCurve: "P256" }],
    ]);
    const [ca] = of(tlsTypes.selfSigned);
    expect(ca.inputs).toMatchObject({
      allowedUses: ["cert_signing", "crl_signing", "digital_signature"],
      isCaCertificate: true,
      privateKeyPem: mockPem("EC PRIVATE KEY", `${mockPrivateKeyPrefix}s1-database-tls-certificates-ca-key`),
      subject: { commonName: "pgvector-stack staging CA" },
      validityPeriodHours: 87600,
    });
    const [request] = of(tlsTypes.request);
    const ns = "pgvector-test";
    const service = (svc: string) => [svc, `${svc}.${ns}`, `${svc}.${ns}.svc`, `${svc}.${ns}.svc.cluster.local`];
    expect(request.inputs.dnsNames).toEqual(
      ["localhost", `pgvector-0.pgvector-headless.${ns}.svc.cluster.local`, ...service("pgvector-direct"), ...service("pgvector-headless"), ...service("pgvector-pooled")].sort(),
    );
    // PgBouncer's server leg and the exporters connect to 127.0.0.1 with verify-full: the address is a SAN.
    expect(request.inputs.ipAddresses).toEqual(["127.0.0.1", "::1"]);
    expect(request.inputs.subject).toEqual({ commonName: "pgvector-pooled", organization: "pgvector-stack" });
    const [signed] = of(tlsTypes.signed);
    // Defaults: 90 days, renewed 30 days before the end.
    expect(signed.inputs).toMatchObject({ allowedUses: ["digital_signature", "key_encipherment", "server_auth"], earlyRenewalHours: 720, validityPeriodHours: 2160 });
    expect(signed.inputs.caCertPem).toBe(mockPem("CERTIFICATE", "mock-certificate-s1-database-tls-certificates-ca"));
    // Keys handed on stay secrets.
    const raw = d.resources.find((r) => r.type === tlsTypes.signed)!.inputs as Obj;
    expect(JSON.stringify(redactedSecrets(raw.caPrivateKeyPem))).toBe('"[secret]"');
    expect(JSON.stringify(redactedSecrets(d.resources.find((r) => r.type === tlsTypes.request)!.inputs.privateKeyPem))).toBe('"[secret]"');
  });

  it("takes the lifetime and renewal window from spec.tls", async () => {
    const d = await deploy("s-life", () => renderedFor({ tls: { certificateValidity: "60d", renewBefore: "25d" } }));
    expect(withoutSecretMarkers(d.of(tlsTypes.signed)[0].inputs)).toMatchObject({ validityPeriodHours: 1440, earlyRenewalHours: 600 });
  });

  it("stores them in one kubernetes.io/tls Secret, the key a secret; the CA is an output and the app Secret's ca.crt", async () => {
    const d = await mainStack();
    const secret = d.one(T.secret, "database-tls-secret");
    expect(secret.metadata.name).toBe("pgvector-tls");
    expect(secret.type).toBe("kubernetes.io/tls");
    const ca = mockPem("CERTIFICATE", "mock-certificate-s1-database-tls-certificates-ca");
    expect(secret.stringData).toEqual({
      "ca.crt": ca,
      "tls.crt": mockPem("CERTIFICATE", "mock-certificate-s1-database-tls-certificates-server"),
      "tls.key": mockPem("EC PRIVATE KEY", `${mockPrivateKeyPrefix}s1-database-tls-certificates-server-key`),
    });
    const raw = d.resources.find((r) => r.name === "s1-database-tls-secret")!.inputs as Obj;
    expect(redactedSecrets(raw.stringData)).toBe("[secret]");
    // The CA: a plain output, the same bytes as in the Secrets.
    expect(d.stack.caCertificate).toBeDefined();
    expect(await m.pulumi.isSecret(d.stack.caCertificate!)).toBe(false);
    expect(await outputOf(d.stack.caCertificate!)).toBe(ca);
    const app = d.one(T.secret, "database-app");
    expect(app.stringData["ca.crt"]).toBe(ca);
    expect(app.stringData.uri).toMatch(new RegExp(`\\?${tlsQuery.replace(/[?.]/g, "\\$&")}$`));
    expect(app.metadata.annotations["pgvector-stack/ca-certificate"]).toBe(
      `uri verifies the server (sslmode=verify-full) against ${caPath}: mount this Secret's key ca.crt there`,
    );
  });

  it("mounts the whole Secret into PostgreSQL, PgBouncer and the reloader only, read-only and without subPath", async () => {
    const d = await mainStack();
    const pod = podSpec(d.one(T.statefulSet));
    const volume = pod.volumes.find((v: Obj) => v.name === "tls");
    expect(volume).toEqual({ name: "tls", secret: { defaultMode: 0o440, secretName: "pgvector-tls" } });
    const mounting = [...pod.initContainers, ...pod.containers].filter((c: Obj) => (c.volumeMounts ?? []).some((m: Obj) => m.name === "tls"));
    expect(mounting.map((c: Obj) => c.name).sort()).toEqual(["pgbouncer", "postgres", "tls-reloader"]);
    for (const c of mounting) expect(c.volumeMounts.find((m: Obj) => m.name === "tls"), c.name).toEqual({ mountPath: "/etc/pgstack/tls", name: "tls", readOnly: true });
    // The files the servers are configured with are the Secret's keys.
    const rendered = renderedFor();
    const setting = (text: string, name: string) => new RegExp(`^${name}\\s*=\\s*'?([^'\\s#;]+)`, "m").exec(text)?.[1];
    const conf = rendered.files["postgresql.conf"];
    const ini = rendered.files["pgbouncer.ini"];
    expect(sourceOf(pod, container(d.one(T.statefulSet), "postgres"), setting(conf, "ssl_cert_file")!)).toEqual({ secret: "pgvector-tls", key: "tls.crt" });
    expect(sourceOf(pod, container(d.one(T.statefulSet), "postgres"), setting(conf, "ssl_key_file")!)).toEqual({ secret: "pgvector-tls", key: "tls.key" });
    const pgbouncer = container(d.one(T.statefulSet), "pgbouncer");
    expect(sourceOf(pod, pgbouncer, setting(ini, "client_tls_cert_file")!)).toEqual({ secret: "pgvector-tls", key: "tls.crt" });
    expect(sourceOf(pod, pgbouncer, setting(ini, "client_tls_key_file")!)).toEqual({ secret: "pgvector-tls", key: "tls.key" });
    expect(sourceOf(pod, pgbouncer, setting(ini, "server_tls_ca_file")!)).toEqual({ secret: "pgvector-tls", key: "ca.crt" });
    // subPath mounts never see an updated Secret: none anywhere.
    for (const workload of [pod, d.one(T.job).spec.template.spec, podSpec(d.one(T.deployment))]) {
      expect(JSON.stringify(workload)).not.toContain("subPath");
    }
  });

  it("gives every client the CA alone, where its sslrootcert says: both exporters, the canary, the hook", async () => {
    const d = await mainStack();
    const { launches } = renderedFor();
    const sslrootcert = (text: string) => /sslrootcert=([^&\s"]+)/.exec(text)?.[1];
    const pod = podSpec(d.one(T.statefulSet));
    const clients: [Obj, Obj, string | undefined][] = [
      [pod, container(d.one(T.statefulSet), "postgres-exporter"), sslrootcert(launches.postgresExporter.env.DATA_SOURCE_URI)],
      [pod, container(d.one(T.statefulSet), "pgbouncer-exporter"), sslrootcert(launches.pgbouncerExporter.args.join(" "))],
      [podSpec(d.one(T.deployment)), podSpec(d.one(T.deployment)).containers[0], sslrootcert(d.one(T.secret, "database-hook").stringData["pooled-url"])],
      [d.one(T.job).spec.template.spec, d.one(T.job).spec.template.spec.containers[0], sslrootcert(d.one(T.secret, "database-hook").stringData["direct-url"])],
    ];
    for (const [spec, c, file] of clients) {
      expect(file, c.name).toBe(caPath);
      expect(sourceOf(spec, c, file!), c.name).toEqual({ secret: "pgvector-tls", key: "ca.crt" });
      // Nothing of the key: the client's volumes name the TLS Secret with the ca.crt item only.
      const tlsVolumes = JSON.stringify(spec.volumes.filter((v: Obj) => JSON.stringify(v).includes("pgvector-tls")));
      expect(tlsVolumes, c.name).not.toContain("tls.key");
      expect(tlsVolumes, c.name).not.toContain("tls.crt");
    }
    // The exporter's queries and the hook's plan are still where they were, beside the CA in one projected volume.
    expect(sourceOf(pod, clients[0][1], "/etc/pgstack/postgres-exporter-queries.yaml")).toEqual({ configMap: "pgvector-config", key: "postgres-exporter-queries.yaml" });
    const job = d.one(T.job).spec.template.spec;
    expect(sourceOf(job, job.containers[0], "/etc/pgstack/plan.json")?.key).toBe("plan.json");
  });

  it("leaves the certificate out of the pod template: a renewed one is reloaded, never a restart", async () => {
    // Two stacks whose certificates differ (the mocks name them after the stack) have the same pod template.
    const [a, b] = await Promise.all([mainStack(), deploy("s-same", () => renderedFor())]);
    expect(a.one(T.secret, "database-tls-secret").stringData["tls.crt"]).not.toBe(b.one(T.secret, "database-tls-secret").stringData["tls.crt"]);
    expect(b.one(T.statefulSet)).toEqual(a.one(T.statefulSet));
    expect(JSON.stringify(a.one(T.statefulSet))).not.toContain("BEGIN");
    expect(m.layout.podFiles).not.toContain("tls.crt");
  });

  it("runs the reloader as a native sidecar from the postgres image: the Secrets and the socket read-only, PgBouncer's admin password from the Secret", async () => {
    const sts = (await mainStack()).one(T.statefulSet);
    const reloader = container(sts, "tls-reloader");
    const rendered = renderedFor();
    expect(reloader.image).toBe(rendered.spec.images.upstream.postgres);
    expect(reloader.restartPolicy).toBe("Always");
    expect(reloader.command.slice(0, 2)).toEqual(["sh", "-c"]);
    expect(reloader.command[2]).toContain("SELECT pg_reload_conf()");
    expect(reloader.command[2]).toContain("-c RELOAD");
    expect(reloader.command[2]).toContain("-h '/var/run/postgresql' -p 5432 -U 'postgres'");
    expect(reloader.command[2]).toContain("host=127.0.0.1 port=6432 dbname=pgbouncer user=pgstack_pgbouncer_admin sslmode=require sslcertmode=disable");
    // A rotated password: the bootstrap Secret's script applied on the socket, PgBouncer's auth_file watched.
    expect(reloader.command[2]).toContain("-f '/docker-entrypoint-initdb.d/10-pgstack-roles.sql'");
    expect(reloader.command[2]).toContain("'/etc/pgbouncer/userlist.txt'");
    expect(reloader.env).toEqual([{ name: "PGPASSWORD", valueFrom: { secretKeyRef: { key: "pgbouncer-admin-password", name: "pgvector-credentials" } } }]);
    expect(reloader.volumeMounts).toEqual([
      { mountPath: "/etc/pgstack/tls", name: "tls", readOnly: true },
      { mountPath: "/var/run/postgresql", name: "run", readOnly: true },
      { mountPath: "/docker-entrypoint-initdb.d", name: "bootstrap", readOnly: true },
      { mountPath: "/etc/pgbouncer", name: "pgbouncer-config", readOnly: true },
    ]);
    // The socket directory PostgreSQL writes, the same volume.
    expect(container(sts, "postgres").volumeMounts).toContainEqual({ mountPath: "/var/run/postgresql", name: "run" });
    expect(reloader.securityContext.runAsUser).toBe(999);
    expect(reloader.resources).toEqual({ limits: { memory: "32Mi" }, requests: { cpu: "10m", memory: "32Mi" } });
    // No process namespace is shared for it.
    expect(podSpec(sts).shareProcessNamespace).toBeUndefined();
  });

  it("creates the StatefulSet after the TLS Secret, and asks for the keys as secret outputs", async () => {
    const options: Record<string, Obj> = {};
    const stack = new m.stack.VectorStack(
      "s-tls-opts",
      { rendered: renderedFor(), hookBundle: "x", appPassword: "x" },
      { transformations: [(a) => void (options[a.name] = a.opts)] },
    );
    await outputOf(stack.hookJobName);
    await quiesce();
    const after = await Promise.all((options["s-tls-opts-database-statefulset"].dependsOn as Obj[]).map((r) => outputOf(r.urn)));
    expect(after.map((u: string) => u.split("::").pop())).toContain("s-tls-opts-database-tls-secret");
    // The keys are secret outputs in a real deploy too (the mocks do not apply additionalSecretOutputs).
    for (const key of ["ca-key", "server-key"]) {
      expect(options[`s-tls-opts-database-tls-certificates-${key}`].additionalSecretOutputs, key).toEqual(
        expect.arrayContaining(["privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh"]),
      );
    }
  });

  it("with tls.certManagerIssuer: a cert-manager Certificate writes the Secret, awaited until Ready; nothing of @pulumi/tls", async () => {
    const d = await certManager();
    expect(d.resources.filter((r) => r.type.startsWith("tls:"))).toEqual([]);
    expect(d.of(T.secret).map((r) => (withoutSecretMarkers(r.inputs) as Obj).metadata.name)).not.toContain("pgvector-tls");
    const certificate = d.one(T.certificate);
    expect(certificate.apiVersion).toBe("cert-manager.io/v1");
    expect(certificate.kind).toBe("Certificate");
    expect(certificate.metadata).toMatchObject({ annotations: { "pulumi.com/waitFor": "condition=Ready" }, name: "pgvector-tls", namespace: "pgvector-test" });
    const request = withoutSecretMarkers(d.of(T.certificate)[0].inputs) as Obj;
    expect(request.spec).toEqual({
      commonName: "pgvector-pooled",
      dnsNames: expect.arrayContaining(["localhost", "pgvector-pooled", "pgvector-pooled.pgvector-test.svc.cluster.local", "pgvector-direct.pgvector-test.svc"]),
      duration: "2160h0m0s",
      ipAddresses: ["127.0.0.1", "::1"],
      issuerRef: { group: "cert-manager.io", kind: "ClusterIssuer", name: "stack-ca" },
      privateKey: { algorithm: "ECDSA", rotationPolicy: "Always", size: 256 },
      renewBefore: "600h0m0s",
      secretName: "pgvector-tls",
      secretTemplate: { labels: certificate.metadata.labels },
      usages: ["digital signature", "key encipherment", "server auth"],
    });
    // The same names as the generated certificate would carry.
    const generated = withoutSecretMarkers((await mainStack()).of("tls:index/certRequest:CertRequest")[0].inputs) as Obj;
    expect(request.spec.dnsNames).toEqual(generated.dnsNames);
    // The pod mounts the Secret cert-manager writes, and waits for it.
    expect(podSpec(d.one(T.statefulSet)).volumes.find((v: Obj) => v.name === "tls").secret.secretName).toBe("pgvector-tls");
    // The CA is the issuer's: no output, no copy in the app Secret, whose annotation says where to get it.
    expect(d.stack.caCertificate).toBeUndefined();
    const app = d.one(T.secret, "database-app");
    expect(app.stringData["ca.crt"]).toBeUndefined();
    expect(app.metadata.annotations["pgvector-stack/ca-certificate"]).toBe(
      `uri verifies the server (sslmode=verify-full) against ${caPath}: mount key ca.crt of Secret pgvector-tls (cert-manager's issuer CA) there`,
    );
  });

  it("the cert-manager Certificate passes @kubernetes-models/cert-manager's schema, and the check is not vacuous", async () => {
    const d = await certManager();
    const inputs = d.of(T.certificate)[0].inputs;
    expect(schemaProblems(T.certificate, inputs)).toEqual([]);
    const broken = structuredClone(withoutSecretMarkers(inputs)) as Obj;
    broken.spec.privateKey.rotationpolicy = "Always";
    broken.spec.usages = ["server auth", "serverauth"];
    const problems = schemaProblems(T.certificate, broken);
    expect(problems).toContainEqual({ path: ".spec.privateKey.rotationpolicy", message: 'unknown field "rotationpolicy"' });
    expect(problems.some((p) => p.path === "" && /usages/.test(p.message))).toBe(true);
  });
});

describe("the StatefulSet's volume claim template", () => {
  it("is ignored in updates (ignoreChanges), so a changed one can never replace the StatefulSet; a first create uses it", async () => {
    // Resource options never reach the mocks; a (legacy) transformation on the component sees each child's options.
    const options: Record<string, Obj> = {};
    const stack = new m.stack.VectorStack(
      "s-claims",
      { rendered: renderedFor({ kubernetes: { namespace: "pgvector-test", storageSize: "250Gi", storageClassName: "fast-ssd" } }), hookBundle: "x", appPassword: "x" },
      { transformations: [(a) => void (options[a.name] = a.opts)] },
    );
    await outputOf(stack.hookJobName);
    await quiesce();
    expect(options["s-claims-database-statefulset"].ignoreChanges).toEqual(["spec.volumeClaimTemplates"]);
    // Only there: every other object follows the stack file.
    const ignoring = Object.entries(options).filter(([, o]) => o.ignoreChanges !== undefined).map(([n]) => n);
    expect(ignoring).toEqual(["s-claims-database-statefulset"]);
    // The template itself is still the stack file's, for the first create.
    const sts = withoutSecretMarkers(recorded.find((r) => r.name === "s-claims-database-statefulset")!.inputs) as Obj;
    expect(sts.spec.volumeClaimTemplates[0].spec).toMatchObject({ resources: { requests: { storage: "250Gi" } }, storageClassName: "fast-ssd" });
  });
});

describe("scrape interval", () => {
  it("is the placement's, on every PodMonitor endpoint", async () => {
    const base = renderedFor();
    const rendered = m.render.renderStack(base.spec, { ...base.placement, intervals: { ...base.placement.intervals, scrapeMs: 30_000 } });
    const d = await deploy("s-interval", () => rendered);
    const intervals = d.of(T.podMonitor).flatMap((r) => (r.inputs as Obj).spec.podMetricsEndpoints.map((e: Obj) => e.interval));
    expect(intervals).toEqual(["30s", "30s", "30s", "30s", "30s"]);
    expect(new Set((await mainStack()).of(T.podMonitor).flatMap((r) => (r.inputs as Obj).spec.podMetricsEndpoints.map((e: Obj) => e.interval)))).toEqual(new Set(["15s"]));
  });
});

describe("the Grafana dashboard", () => {
  it("is a ConfigMap labelled for the sidecar, with the rendered JSON byte for byte", async () => {
    const config = (await mainStack()).one(T.configMap, "dashboard");
    expect(config.metadata.name).toBe("pgvector-grafana-dashboard");
    expect(config.metadata.namespace).toBe("pgvector-test");
    expect(config.metadata.labels).toMatchObject({ grafana_dashboard: "1", "pgvector-stack/stack": "staging" });
    // A file name of its own: the sidecar writes every stack's ConfigMap into one folder.
    expect(Object.keys(config.data)).toEqual(["pgvector-stack-staging.json"]);
    const text = renderedFor().files["grafana-dashboard.json"];
    expect(Buffer.from(config.data["pgvector-stack-staging.json"]).equals(Buffer.from(text))).toBe(true);
    // The per-stack dashboard: its own uid and title.
    expect(JSON.parse(config.data["pgvector-stack-staging.json"])).toMatchObject({ uid: "pgstack-staging", title: "pgvector-stack staging" });
  });

  it("is left out with kubernetes.grafanaDashboard false", async () => {
    const d = await deploy("s-nodash", () => renderedFor({ kubernetes: { namespace: "pgvector-test", grafanaDashboard: false } }));
    expect(d.of(T.configMap).filter((r) => r.name.includes("dashboard"))).toEqual([]);
    expect(d.of(T.podMonitor)).toHaveLength(2);
  });
});

describe("outputs", () => {
  it("endpoints, memory plan and hook Job name", async () => {
    const { stack } = await mainStack();
    expect(await outputOf(stack.endpoints.pooled.host)).toBe("pgvector-pooled.pgvector-test.svc.cluster.local");
    expect(stack.endpoints.pooled.port).toBe(6432);
    expect(await outputOf(stack.endpoints.direct.host)).toBe("pgvector-direct.pgvector-test.svc.cluster.local");
    expect(stack.endpoints.direct.port).toBe(5432);
    const rendered = renderedFor();
    expect(stack.memoryPlan).toMatchObject({ ...rendered.memory, hugePagesBytes: rendered.memory.hugePages * 2 * 1024 ** 2 });
    expect(stack.memoryPlan.pod.postgresBytes).toBeGreaterThan(stack.memoryPlan.pod.postgresFloorBytes);
  });

  it("refuses huge_pages = try at construction: the pod would request pages PostgreSQL might not use", () => {
    // configs renders `try` as `on` for Kubernetes; the component still refuses a Rendered that says otherwise.
    const rendered = renderedFor({ postgres: { hugePages: "try" } });
    expect(rendered.memory.hugePagesSetting).toBe("on");
    const tampered = { ...rendered, memory: { ...rendered.memory, hugePagesSetting: "try" as const } };
    expect(() => new m.stack.VectorStack("s-try", { rendered: tampered, hookBundle: "x" })).toThrow(
      /rendered\.memory\.hugePagesSetting is "try"/,
    );
  });
});

describe("schema", () => {
  it("the checker is not vacuous: it reports a misspelt field and a wrong type", async () => {
    const sts = structuredClone(recorded.find((r) => r.type === T.statefulSet)!.inputs) as Obj;
    sts.spec.template.spec.volumes[0].sizelimit = "1Gi";
    sts.spec.replicas = "one";
    expect(schemaProblems(T.statefulSet, sts)).toEqual([
      { path: "", message: "data/spec/replicas must be integer" },
      { path: ".spec.template.spec.volumes[0].sizelimit", message: 'unknown field "sizelimit"' },
    ]);
  });

  it("the walk reaches node_exporter's and mtail's containers too", async () => {
    const sts = structuredClone(recorded.find((r) => r.type === T.statefulSet)!.inputs) as Obj;
    const containers = sts.spec.template.spec.containers as Obj[];
    const at = (name: string) => containers.findIndex((c) => c.name === name);
    containers[at("node-exporter")].volumeMounts[0].readonly = true;
    containers[at("mtail")].securityContext.runAsUSer = 999;
    expect(schemaProblems(T.statefulSet, sts)).toEqual([
      { path: `.spec.template.spec.containers[${at("node-exporter")}].volumeMounts[0].readonly`, message: 'unknown field "readonly"' },
      { path: `.spec.template.spec.containers[${at("mtail")}].securityContext.runAsUSer`, message: 'unknown field "runAsUSer"' },
    ]);
  });

  it("no secret value in any non-Secret input of any deployment", async () => {
    await Promise.all([...deployments.values()]);
    for (const r of recorded.filter((x) => x.type !== T.secret)) {
      // A key handed to @pulumi/tls as a secret input stays in Pulumi's state, encrypted; anywhere else (a ConfigMap
      // with a secret-marked value is still plain text in the cluster) a secret is a leak, marked or not.
      const text = JSON.stringify(r.type.startsWith("tls:") ? redactedSecrets(r.inputs) : r.inputs);
      const leaked = [configuredSecret, generatedPrefix, "SCRAM-SHA-256$", mockPrivateKeyPrefix].filter((v) => text.includes(v));
      expect(leaked, `${r.type} ${r.name}`).toEqual([]);
    }
  });

  it("every Kubernetes object the program registers is valid for the API and has no unknown field", async () => {
    await Promise.all([...deployments.values()]);
    await mainStack();
    const objects = recorded.filter((r) => r.type.startsWith("kubernetes:"));
    expect(new Set(objects.map((r) => r.type))).toEqual(new Set(Object.values(T)));
    for (const r of objects) expect(schemaProblems(r.type, r.inputs), `${r.type} ${r.name}`).toEqual([]);
  });
});

describe("images: this repository's, built and pushed to images.registry, or the upstream ones", () => {
  it("with images.source pgstack, builds each image from images/, pushes it to the registry and runs it there by digest", async () => {
    const inputs = await import("../../../components/image-inputs");
    const imageInputs = inputs.readPgstackImageInputs(`${__dirname}/../../..`);
    const registry = "registry.example.com/team";
    const d = await deploy("s-pgstack-images", () => renderedFor({ images: { source: "pgstack", registry } }));
    const builds = d.of("docker:index/image:Image");
    expect(builds).toHaveLength(8);
    const name = (key: keyof typeof inputs.pgstackImageOf) => `${registry}/pgstack-${inputs.pgstackImageOf[key]}:${imageInputs.sha256[inputs.pgstackImageOf[key]].slice(0, 12)}`;
    const postgresBuild = builds.find((b) => b.name === "s-pgstack-images-images-postgres")!.inputs;
    expect(postgresBuild).toEqual({
      imageName: name("postgres"),
      build: { context: "images", dockerfile: "images/postgres/Dockerfile", platform: "linux/amd64" },
      buildOnPreview: false,
      skipPush: false,
    });
    // The pod pulls what was pushed: repoDigest (registry/name@sha256:…), here the mocks' stand-in.
    const sts = d.one(T.statefulSet);
    expect(container(sts, "postgres").image).toBe(`${name("postgres")}@sha256:mock`);
    expect(container(sts, "tls-reloader").image).toBe(`${name("postgres")}@sha256:mock`);
    expect(container(sts, "pgbouncer").image).toBe(`${name("pgbouncer")}@sha256:mock`);
    expect(container(sts, "postgres-exporter").image).toBe(`${name("postgresExporter")}@sha256:mock`);
    expect(container(sts, "pgbouncer-exporter").image).toBe(`${name("pgbouncerExporter")}@sha256:mock`);
    expect(container(sts, "node-exporter").image).toBe(`${name("nodeExporter")}@sha256:mock`);
    expect(container(sts, "mtail").image).toBe(`${name("mtail")}@sha256:mock`);
    expect(d.one(T.job).spec.template.spec.containers[0].image).toBe(`${name("node")}@sha256:mock`);
    expect(podSpec(d.one(T.deployment)).containers[0].image).toBe(`${name("node")}@sha256:mock`);
    // Each container runs as the uid its image was built with (configs/image-packages.ts imageUsers): the files the
    // image owns (PGDATA, /var/run/pgbouncer, /prometheus) are that user's.
    const { imageUsers } = await import("../../../configs/image-packages");
    const runsAs = (c: Obj) => c.securityContext?.runAsUser ?? podSpec(sts).securityContext.runAsUser;
    for (const [containerName, image] of [
      ["postgres", "postgres"],
      ["tls-reloader", "postgres"],
      ["pgbouncer", "pgbouncer"],
      ["postgres-exporter", "postgres-exporter"],
      ["pgbouncer-exporter", "pgbouncer-exporter"],
      ["node-exporter", "node-exporter"],
      ["mtail", "mtail"],
    ] as const) {
      expect(runsAs(container(sts, containerName)), containerName).toBe(imageUsers[image].uid);
    }
    const hookPod = d.one(T.job).spec.template.spec;
    expect(hookPod.containers[0].securityContext?.runAsUser ?? hookPod.securityContext.runAsUser).toBe(imageUsers.node.uid);
    const canaryPod = podSpec(d.one(T.deployment));
    expect(canaryPod.containers[0].securityContext?.runAsUser ?? canaryPod.securityContext.runAsUser).toBe(imageUsers.node.uid);
  });

  it("with the upstream default, registers no image resource: the kubelet pulls each reference as written", async () => {
    const d = await mainStack();
    expect(d.of("docker:index/image:Image")).toEqual([]);
    expect(d.of("docker:index/remoteImage:RemoteImage")).toEqual([]);
    expect(container(d.one(T.statefulSet), "postgres").image).toBe(renderedFor().spec.images.upstream.postgres);
  });
});
