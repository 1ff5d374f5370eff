/**
 * The pure half of components/kubernetes: names, checks, exporter command lines, credentials, Service/NetworkPolicy,
 * Job, canary and dashboard specs. No Pulumi here; kubernetes-stack.test.ts checks the same through the components under mocks.
 */
import vm from "node:vm";
import { describe, expect, it } from "vitest";
import { nodeExporterArgs } from "../../../configs/exporters";
import { podResources } from "../../../configs/kubernetes-resources";
import type { Launch } from "../../../configs/launches";
import { mtailArgs } from "../../../configs/mtail";
import { defaultPorts, placementFor } from "../../../configs/placement";
import { renderStack } from "../../../configs/render";
import type { Rendered } from "../../../configs/rendered";
import { monitorRole, statsUser } from "../../../configs/roles";
import { isScramVerifier, scramVerifier } from "../../../configs/scram";
import { parseStackSpec } from "../../../configs/spec";
import { bootstrapScript, connectionUrl, roleVerifier, scramSalt, stackVerifiers, userlistFor } from "../../../components/kubernetes/credentials";
import { canaryConfigData, canaryDeploymentSpec } from "../../../components/kubernetes/canary-spec";
import { grafanaDashboardData, grafanaDashboardKey, grafanaDashboardLabels } from "../../../components/kubernetes/grafana-dashboard-config";
import { assertHookFits, configMapLimitBytes, hookJobSpec, waitForDatabaseScript } from "../../../components/kubernetes/hook-job-spec";
import {
  canaryScrapeJobs,
  configChecksum,
  containerEnv,
  containerLaunch,
  databaseScrapeJobs,
  databaseSecretRefs,
  kubernetesNames,
  kubernetesProblems,
  sha256,
  shortHash,
  urlSecretRefs,
} from "../../../components/kubernetes/layout";
import { canaryPodMonitorSpec, podMonitorSpec, prometheusRuleSpec } from "../../../components/kubernetes/monitoring-spec";
import { canaryNetworkPolicySpec, databaseNetworkPolicySpec, databasePorts, databaseServiceSpecs } from "../../../components/kubernetes/network";
import { databaseStatefulSetSpec, restrictedSecurityContext } from "../../../components/kubernetes/pod-template";
import {
  caProjection,
  certManagerCertificateSpec,
  goDuration,
  kubernetesServerNames,
  tlsCommonName,
  tlsReloadScript,
} from "../../../components/kubernetes/tls-spec";
import { certificateHours, mergeServerNames } from "../../../components/stack-certificates";

function rendered(overrides: Record<string, unknown> = {}): Rendered {
  return renderStack(
    parseStackSpec("staging", {
      target: "kubernetes",
      node: { memory: "32Gi", cpus: 8 },
      postgres: { hugePages: "on" },
      kubernetes: { namespace: "pgvector-test" },
      ...overrides,
    }),
  );
}

describe("kubernetesNames", () => {
  it("derives every object name from one prefix; the hook's carry the plan hash", () => {
    const names = kubernetesNames("pgvector");
    const sha = sha256("plan");
    expect(names).toMatchObject({ statefulSet: "pgvector", pooled: "pgvector-pooled", direct: "pgvector-direct", headless: "pgvector-headless" });
    expect(names.hookJob(sha)).toBe(`pgvector-postdeploy-${sha.slice(0, 10)}`);
    expect(names.hookConfig(sha)).toBe(`pgvector-hook-${sha.slice(0, 10)}`);
    expect(names.hookJob(sha).length).toBeLessThanOrEqual(63);
    expect(names.canary).toBe("pgvector-canary");
    expect(names.grafanaDashboard).toBe("pgvector-grafana-dashboard");
  });

  it.each(["PgVector", "1db", "db-", "a".repeat(43), "db_1"])("refuses %s", (prefix) => {
    expect(() => kubernetesNames(prefix)).toThrow(`Kubernetes object name prefix "${prefix}" must be lower-case letters, digits and -`);
  });

  it("shortHash refuses anything but a sha256", () => {
    expect(() => shortHash("abc")).toThrow('"abc" is not a sha256 in hex');
  });
});

/** Stack files the spec accepts, across the keys that shape what the Kubernetes layout gets. */
function acceptedKubernetesConfigs(): [string, Record<string, unknown>][] {
  const out: [string, Record<string, unknown>][] = [];
  const platforms = [
    {},
    {
      storageClassName: "fast-ssd",
      storageSize: "500Gi",
      prometheusOperator: false,
      grafanaDashboard: false,
    },
    {
      monitoringLabels: { release: "kube-prometheus-stack" },
      clientNamespaceSelector: { team: "search" },
      clientPodSelector: { "app.kubernetes.io/name": "api" },
      prometheusNamespaceSelector: { "kubernetes.io/metadata.name": "observability" },
      prometheusPodSelector: { app: "prometheus" },
    },
  ];
  for (const memory of ["4Gi", "8Gi", "16Gi", "32Gi", "64Gi", "256Gi"]) {
    for (const hugePages of ["on", "try", "off"]) {
      for (const maxConnections of [150, 400, 2000]) {
        platforms.forEach((platform, i) => {
          out.push([
            `${memory} huge_pages ${hugePages} max_connections ${maxConnections} platform ${i}`,
            {
              target: "kubernetes",
              node: { memory, cpus: 8, storage: "nvme" },
              postgres: { hugePages, maxConnections, appUser: "svc_search", database: "vectors" },
              kubernetes: { namespace: "db-prod", ...platform },
            },
          ]);
        });
      }
    }
  }
  return out;
}

describe("kubernetesProblems", () => {
  it("accepts the stack as rendered with huge_pages on, and with off", () => {
    expect(kubernetesProblems(rendered())).toEqual([]);
    expect(kubernetesProblems(rendered({ postgres: { hugePages: "off" } }))).toEqual([]);
  });

  it("finds none for any stack file the spec accepts, and the pod is then sized without error", () => {
    let accepted = 0;
    for (const [what, config] of acceptedKubernetesConfigs()) {
      let r: Rendered;
      try {
        r = renderStack(parseStackSpec("range", config));
      } catch (error) {
        // Refused by the one gate, with its own message: not a stack the layout must deploy.
        expect(String(error), what).toMatch(/SpecError|configuration error/);
        continue;
      }
      accepted++;
      expect(kubernetesProblems(r), what).toEqual([]);
      const resources = podResources({ memory: r.memory, cpus: r.spec.node.cpus, maxConnections: r.spec.postgres.maxConnections, maxClientConn: r.spec.pgbouncer.maxClientConn });
      expect(() => databaseStatefulSetSpec({ rendered: r, names: kubernetesNames("pgvector"), instance: "pgvector", resources, images: r.spec.images.upstream }), what).not.toThrow();
    }
    // Most of the range is accepted (small nodes with many connections are not), so the check is not vacuous.
    expect(accepted).toBeGreaterThan(100);
  });

  it("refuses huge_pages = try with pages to request: on Kubernetes it must be on or off", () => {
    // configs renders `try` as `on` for Kubernetes; the check still guards a Rendered that says otherwise.
    const onRendered = rendered({ postgres: { hugePages: "try" } });
    const r = { ...onRendered, memory: { ...onRendered.memory, hugePagesSetting: "try" as const } };
    expect(r.memory.hugePages).toBeGreaterThan(0);
    expect(kubernetesProblems(r)).toEqual([
      `rendered.memory.hugePages is ${r.memory.hugePages} but rendered.memory.hugePagesSetting is "try": on Kubernetes the pod requests ` +
        `exactly those pages, so huge_pages must be on (a shortfall then fails at start instead of running on 4 kB pages); set postgres.hugePages to on or off`,
    ]);
  });

  it("refuses huge_pages on without pages", () => {
    const r = rendered();
    expect(kubernetesProblems({ ...r, memory: { ...r.memory, hugePages: 0 } }).join("\n")).toContain(
      'rendered.memory.hugePagesSetting is "on" but rendered.memory.hugePages is 0',
    );
  });

  it("refuses other targets", () => {
    const r = rendered();
    expect(kubernetesProblems({ ...r, spec: { ...r.spec, target: "docker" } })).toEqual([
      'target is "docker"; the Kubernetes components deploy stacks with target: kubernetes',
    ]);
  });

  it.each([
    ["no data volume", { dataVolumeMount: null }, "placement.dataVolumeMount is null; the pod mounts the data volume's claim there"],
    [
      "PGDATA at the volume's root",
      { dataVolumeMount: "/var/lib/postgresql/data/pgdata" },
      "placement.paths.pgdata /var/lib/postgresql/data/pgdata is not a directory below the data volume's mount /var/lib/postgresql/data/pgdata; initdb needs an empty directory on the volume",
    ],
    [
      "PGDATA off the volume",
      { dataVolumeMount: "/srv" },
      "placement.paths.pgdata /var/lib/postgresql/data/pgdata is not a directory below the data volume's mount /srv; initdb needs an empty directory on the volume",
    ],
    [
      "metric sources on loopback",
      { metricsBind: "127.0.0.1" },
      'placement.metricsBind is "127.0.0.1"; Prometheus scrapes the pod\'s IP, so the metric sources must listen on every address',
    ],
  ] as const)("refuses a placement with %s", (_what, change, message) => {
    const r = rendered();
    expect(kubernetesProblems({ ...r, placement: { ...r.placement, ...change } })).toEqual([message]);
  });

  it("refuses an auth_file outside PgBouncer's config directory, where the pod mounts it", () => {
    const r = rendered();
    const placement = { ...r.placement, paths: { ...r.placement.paths, pgbouncerAuthFile: "/etc/pgbouncer/auth/userlist.txt" } };
    expect(kubernetesProblems({ ...r, placement })).toEqual([
      "placement.paths.pgbouncerAuthFile is /etc/pgbouncer/auth/userlist.txt; the pod mounts the auth_file beside pgbouncer.ini, in /etc/pgbouncer",
    ]);
  });

  it("refuses PgBouncer's logfile in a directory that holds another mount (its emptyDir is mounted at the file's directory)", () => {
    const r = rendered();
    const placement = { ...r.placement, paths: { ...r.placement.paths, pgbouncerLog: "/etc/pgbouncer/pgbouncer.log" } };
    expect(kubernetesProblems({ ...r, placement })).toEqual([
      "placement.paths.pgbouncerLog is /etc/pgbouncer/pgbouncer.log; the pod mounts PgBouncer's log volume at its directory, which must hold no other mount",
    ]);
  });
});

describe("TLS on the pod", () => {
  const names = kubernetesNames("pgvector");
  const withTls = (r: Rendered, files: Partial<Record<"tlsCertificate" | "tlsKey" | "tlsCa", string>>): Rendered => ({
    ...r,
    placement: { ...r.placement, paths: { ...r.placement.paths, ...files } },
  });

  it.each([
    [
      "the key under another name",
      { tlsKey: "/etc/pgstack/tls/server.key" },
      "placement.paths.tlsCertificate, tlsKey and tlsCa are /etc/pgstack/tls/tls.crt, /etc/pgstack/tls/server.key and /etc/pgstack/tls/ca.crt; the pod mounts the TLS Secret as one directory, so they must be tls.crt, tls.key, ca.crt in the same directory",
    ],
    [
      "the CA elsewhere",
      { tlsCa: "/etc/ssl/ca.crt" },
      "placement.paths.tlsCertificate, tlsKey and tlsCa are /etc/pgstack/tls/tls.crt, /etc/pgstack/tls/tls.key and /etc/ssl/ca.crt; the pod mounts the TLS Secret as one directory, so they must be tls.crt, tls.key, ca.crt in the same directory",
    ],
    [
      "the files over PgBouncer's configuration",
      { tlsCertificate: "/etc/tls.crt", tlsKey: "/etc/tls.key", tlsCa: "/etc/ca.crt" },
      "the pod mounts /etc/postgresql inside the TLS directory /etc, a read-only Secret volume that cannot hold a mount point",
    ],
  ] as const)("refuses a placement with %s", (_what, files, message) => {
    expect(kubernetesProblems(withTls(rendered(), files))[0]).toBe(message);
  });

  it("names the certificate after every Service, short to FQDN, the pod, and the rendered loopback names", () => {
    const r = rendered();
    const got = kubernetesServerNames(names, "db", "cluster.example", r.tls.serverNames);
    expect(got.ips).toEqual(["127.0.0.1", "::1"]);
    expect(got.dns).toEqual(
      [
        "localhost",
        "pgvector-0.pgvector-headless.db.svc.cluster.example",
        ...["pgvector-direct", "pgvector-headless", "pgvector-pooled"].flatMap((svc) => [svc, `${svc}.db`, `${svc}.db.svc`, `${svc}.db.svc.cluster.example`]),
      ].sort(),
    );
    // The rendered names come in as they are (nothing re-derived), each name once.
    expect(kubernetesServerNames(names, "db", "c", { dns: ["localhost", "pgvector-pooled"], ips: ["10.0.0.1"] }).ips).toEqual(["10.0.0.1"]);
    expect(mergeServerNames({ dns: ["b", "a"], ips: [] }, { dns: ["a"] })).toEqual({ dns: ["a", "b"], ips: [] });
    // The longest prefix still gives a common name within RFC 5280's 64 characters.
    expect(tlsCommonName(kubernetesNames("p".repeat(42))).length).toBeLessThanOrEqual(64);
  });

  it("turns rendered.tls into @pulumi/tls hours and cert-manager durations", () => {
    const day = 86_400_000;
    expect(certificateHours({ certificateValidityMs: 90 * day, renewBeforeMs: 30 * day })).toEqual({ validityPeriodHours: 2160, earlyRenewalHours: 720 });
    // Rounded towards renewing early, and never a window as long as the lifetime (that would renew on every run).
    expect(certificateHours({ certificateValidityMs: day + 90 * 60_000, renewBeforeMs: day + 80 * 60_000 })).toEqual({ validityPeriodHours: 25, earlyRenewalHours: 24 });
    expect(certificateHours({ certificateValidityMs: 2 * day, renewBeforeMs: 90 * 60_000 })).toEqual({ validityPeriodHours: 48, earlyRenewalHours: 2 });
    expect(goDuration(90 * day)).toBe("2160h0m0s");
    expect(goDuration(90 * 60_000 + 5000)).toBe("1h30m5s");
    const spec = certManagerCertificateSpec({
      secretName: "pgvector-tls",
      issuer: { name: "ca", kind: "Issuer" },
      commonName: "pgvector-pooled",
      serverNames: { dns: ["a"], ips: ["127.0.0.1"] },
      lifetime: { certificateValidityMs: 90 * day, renewBeforeMs: 30 * day },
      secretLabels: { b: "2", a: "1" },
    });
    expect(spec).toMatchObject({ duration: "2160h0m0s", renewBefore: "720h0m0s", issuerRef: { group: "cert-manager.io", kind: "Issuer", name: "ca" } });
    expect(Object.keys(spec)).toEqual([...Object.keys(spec)].sort());
    expect(Object.keys((spec.secretTemplate as { labels: object }).labels)).toEqual(["a", "b"]);
  });

  it("projects the CA into a client's volume only when its path is below that volume's directory", () => {
    expect(caProjection("/etc/pgstack", "/etc/pgstack/tls/ca.crt", "s")).toEqual({ secret: { items: [{ key: "ca.crt", path: "tls/ca.crt" }], name: "s" } });
    expect(caProjection("/etc/pgstack/tls", "/etc/pgstack/tls/ca.crt", "s")).toEqual({ secret: { items: [{ key: "ca.crt", path: "ca.crt" }], name: "s" } });
    for (const dir of ["/etc/other", "/etc/pgstack/tls/ca.crt", "/etc/pgstack/t"]) expect(caProjection(dir, "/etc/pgstack/tls/ca.crt", "s"), dir).toBeNull();
    // Elsewhere, the hook gets the CA volume of its own beside its plan.
    const job = hookJobSpec({
      image: "node",
      planSha256: sha256("plan"),
      configMapName: "cm",
      credentialsSecret: "pgvector-hook",
      tls: { secretName: "pgvector-tls", caPath: "/srv/ca/ca.crt" },
      databaseHost: "h",
      databasePort: 5432,
      podLabels: {},
      backoffLimit: 6,
      timeoutSeconds: 60,
      memoryBytes: 1024 ** 3,
    });
    // biome-ignore lint/suspicious/noExplicitAny: test navigation of a plain spec
    const pod = (job.template as any).spec;
    expect(pod.volumes).toContainEqual({ name: "tls-ca", secret: { defaultMode: 0o440, items: [{ key: "ca.crt", path: "ca.crt" }], secretName: "pgvector-tls" } });
    expect(pod.containers[0].volumeMounts).toContainEqual({ mountPath: "/srv/ca", name: "tls-ca", readOnly: true });
    expect(pod.volumes.find((v: { name: string }) => v.name === "plan")).toEqual({ configMap: { items: [{ key: "plan.json", path: "plan.json" }], name: "cm" }, name: "plan" });
  });

  it("quotes every value of the reloader's script for the shell", () => {
    const script = tlsReloadScript({
      tlsDir: "/x/it's",
      socketDir: "/run/pg",
      postgresPort: 5432,
      pgbouncerPort: 6432,
      superuser: "postgres",
      pgbouncerAdmin: "pgstack_pgbouncer_admin",
      bootstrapFile: "/boot/it's.sql",
      userlistFile: "/etc/pgbouncer/userlist.txt",
      intervalSeconds: 30,
    });
    expect(script).toContain(`-f '/boot/it'\\''s.sql'`);
    expect(script).toContain(`'/x/it'\\''s/tls.crt'`);
    expect(script).toContain("sleep 30 & wait $!");
  });
});

describe("the rendered files agree with the pod (checked here, not at deploy: the spec owns these settings)", () => {
  /** The last `name = value` of a postgresql.conf or pgbouncer.ini, quotes and a trailing `#` or `;` comment removed. */
  const setting = (text: string, name: string) => {
    const values = [...text.matchAll(new RegExp(`^${name}[ \\t]*=[ \\t]*('[^']*'|[^#;\\n]*)`, "gm"))].map((m) => m[1].trim().replace(/^'(.*)'$/, "$1"));
    return values.at(-1);
  };

  it.each(["on", "off"] as const)("huge_pages %s: postgresql.conf, the memory plan and the pod say the same", (hugePages) => {
    const r = rendered({ postgres: { hugePages } });
    const conf = r.files["postgresql.conf"];
    expect(setting(conf, "huge_pages")).toBe(r.memory.hugePagesSetting);
    expect(setting(conf, "port")).toBe(String(r.placement.ports.postgres));
    // The pod gives the server exactly this writable socket directory, and mounts pg_hba.conf where it passes it.
    expect(setting(conf, "unix_socket_directories")).toBe(r.placement.paths.postgresSocketDir);
    expect(setting(conf, "hba_file")).toBeUndefined();
    const ini = r.files["pgbouncer.ini"];
    expect(setting(ini, "listen_port")).toBe(String(r.placement.ports.pgbouncer));
    expect(setting(ini, "auth_file")).toBe(r.placement.paths.pgbouncerAuthFile);
    // PgBouncer's root filesystem is read-only: TCP only.
    expect(setting(ini, "unix_socket_dir")).toBe("");
  });
});

describe("configChecksum", () => {
  const r = rendered();
  it("is stable, and covers exactly the files the pod reads", () => {
    expect(configChecksum(r.files)).toBe(configChecksum(rendered().files));
    for (const name of ["postgresql.conf", "pg_hba.conf", "pgbouncer.ini", "postgres-exporter-queries.yaml", "postgresql.mtail"] as const) {
      expect(configChecksum({ ...r.files, [name]: `${r.files[name]}# changed\n` })).not.toBe(configChecksum(r.files));
    }
    for (const name of ["alert-rules.yaml", "hnsw-plan.sql", "plan.json", "grafana-dashboard.json"] as const) {
      expect(configChecksum({ ...r.files, [name]: `${r.files[name]}\n` })).toBe(configChecksum(r.files));
    }
  });
});

describe("launches as containers", () => {
  const r = rendered();
  const names = kubernetesNames("pgvector");

  it("gives each image its launch's args (the program is the image's entrypoint), and pgstack to node", () => {
    expect(containerLaunch(r.launches.nodeExporter)).toEqual({ args: [...nodeExporterArgs(), "--web.listen-address=:9100"] });
    expect(containerLaunch(r.launches.mtail)).toEqual({
      args: [...mtailArgs({ programsDir: "/etc/mtail", pgdata: "/var/lib/postgresql/data/pgdata" }), "--port", "3903"],
    });
    expect(containerLaunch(r.launches.mtail).args).toContain("/var/lib/postgresql/data/pgdata/log/postgresql-*.log");
    expect(containerLaunch(r.launches.postgresExporter).args?.slice(0, 2)).toEqual([
      "--web.listen-address=:9187",
      "--extend.query-path=/etc/pgstack/postgres-exporter-queries.yaml",
    ]);
    expect(containerLaunch(r.launches.pgbouncerExporter).args).toContain(
      `--pgBouncer.connectionString=postgres://${statsUser}@127.0.0.1:6432/pgbouncer?sslmode=verify-full&sslrootcert=/etc/pgstack/tls/ca.crt&application_name=pgstack-pgbouncer-exporter`,
    );
    expect(containerLaunch(r.launches.canary)).toEqual({ command: ["node", "/hook/pgstack.js", "canary", "--listen", "0.0.0.0:9188"] });
    // Kubernetes leaves Prometheus to the Prometheus Operator.
    expect(r.launches.prometheus).toBeNull();
  });

  it("fills plain variables as values and secret ones from the Secret holding them, never a literal", () => {
    expect(containerEnv(r.launches.postgresExporter, databaseSecretRefs(names))).toEqual([
      { name: "DATA_SOURCE_URI", value: "127.0.0.1:5432/app?sslmode=verify-full&sslrootcert=/etc/pgstack/tls/ca.crt&application_name=pgstack-postgres-exporter" },
      { name: "DATA_SOURCE_USER", value: monitorRole },
      { name: "DATA_SOURCE_PASS", valueFrom: { secretKeyRef: { key: "monitor-password", name: "pgvector-credentials" } } },
    ]);
    expect(containerEnv(r.launches.pgbouncerExporter, databaseSecretRefs(names))).toEqual([
      { name: "PGPASSWORD", valueFrom: { secretKeyRef: { key: "stats-password", name: "pgvector-credentials" } } },
    ]);
    expect(containerEnv(r.launches.canary, urlSecretRefs("pgvector-hook"))).toEqual([
      { name: "PGSTACK_DIRECT_URL", valueFrom: { secretKeyRef: { key: "direct-url", name: "pgvector-hook" } } },
      { name: "PGSTACK_POOLED_URL", valueFrom: { secretKeyRef: { key: "pooled-url", name: "pgvector-hook" } } },
    ]);
  });

  it("refuses a launch whose secret the pod is given no Secret for", () => {
    expect(() => containerEnv(r.launches.canary, databaseSecretRefs(names))).toThrow(
      "pgstack needs directUrl in PGSTACK_DIRECT_URL, but its pod is given no Secret holding it",
    );
    const launch: Launch = { program: "mtail", args: [], env: {}, secretEnv: { X: "statsPassword" }, port: 1 };
    expect(containerEnv(launch, databaseSecretRefs(names))).toEqual([{ name: "X", valueFrom: { secretKeyRef: { key: "stats-password", name: "pgvector-credentials" } } }]);
  });

  it("splits the scrape jobs between the database pod and the canary's, in rendered order", () => {
    expect(databaseScrapeJobs(r).map((j) => [j.job, j.port])).toEqual([
      ["postgres", 9187],
      ["pgbouncer", 9127],
      ["node", 9100],
      ["mtail", 3903],
    ]);
    expect(canaryScrapeJobs(r).map((j) => [j.job, j.port])).toEqual([["canary", 9188]]);
  });
});

describe("credentials", () => {
  const passwords = {
    superuser: "su-secret",
    owner: "owner-secret",
    app: "app-secret",
    readOnly: "ro-secret",
    canary: "canary-secret",
    monitor: "mon-secret",
    stats: "stats-secret",
    pgbouncerAdmin: "admin-secret",
  };

  it("derives the same 16-byte salt for the same stack, role and password, another one when any changes", () => {
    const salt = scramSalt("staging", "app", "pw");
    expect(salt).toHaveLength(16);
    expect(scramSalt("staging", "app", "pw").equals(salt)).toBe(true);
    for (const other of [scramSalt("prod", "app", "pw"), scramSalt("staging", "pgstack_monitor", "pw"), scramSalt("staging", "app", "pw2")]) {
      expect(other.equals(salt)).toBe(false);
    }
    expect(() => scramSalt("staging", "app", "")).toThrow('SCRAM salt for role "app" of stack "staging": the password is empty');
  });

  it("verifiers are PostgreSQL's, with that salt, and deterministic", () => {
    const v = roleVerifier("staging", "app", "app-secret");
    expect(isScramVerifier(v)).toBe(true);
    expect(v).toBe(scramVerifier("app-secret", scramSalt("staging", "app", "app-secret")));
    expect(roleVerifier("staging", "app", "app-secret")).toBe(v);
  });

  it("the userlist and bootstrap SQL carry verifiers for every role, never a password", () => {
    const r = rendered();
    const spec = r.spec;
    const verifiers = stackVerifiers(spec.stack, r.roles, passwords);
    const userlist = userlistFor(r.roles, verifiers);
    expect(userlist.split("\n").filter(Boolean)).toEqual([
      `"app" "${verifiers.app}"`,
      `"app_readonly" "${verifiers.app_readonly}"`,
      `"pgstack_canary" "${verifiers.pgstack_canary}"`,
      `"pgstack_pgbouncer_admin" "${verifiers.pgstack_pgbouncer_admin}"`,
      `"pgstack_stats" "${verifiers.pgstack_stats}"`,
    ]);
    const sql = bootstrapScript(r, verifiers);
    expect(sql.startsWith(r.files["roles.sql"])).toBe(true);
    for (const role of ["postgres", "app_owner", "app", "app_readonly", "pgstack_canary", "pgstack_monitor"]) {
      expect(sql).toContain(`ALTER ROLE "${role}" PASSWORD '${verifiers[role]}'`);
    }
    for (const secret of Object.values(passwords)) {
      expect(userlist).not.toContain(secret);
      expect(sql).not.toContain(secret);
    }
  });

  it("connection URLs percent-encode user, password and database", () => {
    expect(connectionUrl("app", "p@ss:w/rd?#", "h.ns.svc.cluster.local", 6432, "app", "sslmode=verify-full&sslrootcert=/etc/pgstack/tls/ca.crt")).toBe(
      "postgresql://app:p%40ss%3Aw%2Frd%3F%23@h.ns.svc.cluster.local:6432/app?sslmode=verify-full&sslrootcert=/etc/pgstack/tls/ca.crt",
    );
  });
});

describe("Services and NetworkPolicy", () => {
  const selector = { "app.kubernetes.io/instance": "pgvector" };
  const ports = databasePorts(rendered());

  it("takes PostgreSQL's and PgBouncer's ports from the placement, the metrics ports from the scrape jobs", () => {
    expect(ports).toEqual({
      postgres: 5432,
      pgbouncer: 6432,
      metrics: [
        { name: "pg-metrics", port: 9187 },
        { name: "pgb-metrics", port: 9127 },
        { name: "node-metrics", port: 9100 },
        { name: "mtail-metrics", port: 3903 },
      ],
    });
    const moved = renderStack(rendered().spec, { ...placementFor("kubernetes"), ports: { ...defaultPorts, pgbouncer: 6543, postgresExporter: 19187 } });
    expect(databasePorts(moved)).toMatchObject({ pgbouncer: 6543, metrics: expect.arrayContaining([{ name: "pg-metrics", port: 19187 }]) });
  });

  it("pooled 6432 for applications, direct 5432, headless with every named port", () => {
    const s = databaseServiceSpecs(selector, ports);
    expect(s.pooled.ports).toEqual([{ name: "pgbouncer", port: 6432, protocol: "TCP", targetPort: "pgbouncer" }]);
    expect(s.direct.ports).toEqual([{ name: "postgres", port: 5432, protocol: "TCP", targetPort: "postgres" }]);
    expect(s.headless).toMatchObject({ clusterIP: "None" });
    expect((s.headless.ports as { name: string; port: number }[]).map((p) => `${p.name}:${p.port}`)).toEqual([
      "postgres:5432",
      "pgbouncer:6432",
      "pg-metrics:9187",
      "pgb-metrics:9127",
      "node-metrics:9100",
      "mtail-metrics:3903",
    ]);
  });

  it("admits applications to 6432 only, the hook and the canary to 5432 and 6432, Prometheus to the metrics ports", () => {
    const spec = databaseNetworkPolicySpec(selector, ports, {
      namespace: "db",
      clientNamespaces: { team: "search" },
      clientPods: { app: "api" },
      hookPods: { hook: "yes" },
      canaryPods: { canary: "yes" },
      prometheusNamespaces: { "kubernetes.io/metadata.name": "observability" },
      prometheusPods: { "app.kubernetes.io/name": "prometheus" },
    });
    expect(spec.policyTypes).toEqual(["Ingress"]);
    expect(spec.ingress).toEqual([
      { from: [{ namespaceSelector: { matchLabels: { team: "search" } }, podSelector: { matchLabels: { app: "api" } } }], ports: [{ port: 6432, protocol: "TCP" }] },
      {
        from: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "db" } }, podSelector: { matchLabels: { hook: "yes" } } }],
        ports: [
          { port: 5432, protocol: "TCP" },
          { port: 6432, protocol: "TCP" },
        ],
      },
      {
        from: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "db" } }, podSelector: { matchLabels: { canary: "yes" } } }],
        ports: [
          { port: 5432, protocol: "TCP" },
          { port: 6432, protocol: "TCP" },
        ],
      },
      {
        from: [
          {
            namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "observability" } },
            podSelector: { matchLabels: { "app.kubernetes.io/name": "prometheus" } },
          },
        ],
        ports: [
          { port: 9187, protocol: "TCP" },
          { port: 9127, protocol: "TCP" },
          { port: 9100, protocol: "TCP" },
          { port: 3903, protocol: "TCP" },
        ],
      },
    ]);
  });
});

describe("the canary's NetworkPolicy", () => {
  it("admits Prometheus to the canary's metrics port and nothing else", () => {
    const spec = canaryNetworkPolicySpec({ "app.kubernetes.io/component": "canary" }, [9188], {
      namespaces: { "kubernetes.io/metadata.name": "observability" },
      pods: { "app.kubernetes.io/name": "prometheus" },
    });
    expect(spec).toEqual({
      ingress: [
        {
          from: [
            {
              namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "observability" } },
              podSelector: { matchLabels: { "app.kubernetes.io/name": "prometheus" } },
            },
          ],
          ports: [{ port: 9188, protocol: "TCP" }],
        },
      ],
      podSelector: { matchLabels: { "app.kubernetes.io/component": "canary" } },
      policyTypes: ["Ingress"],
    });
  });
});

describe("monitoring specs", () => {
  it("PodMonitor sets the job and stack labels the alert rules select on, and the pod's node as label node", () => {
    const spec = podMonitorSpec({ a: "b" }, databaseScrapeJobs(rendered()), { stack: "staging", interval: "15s" }) as {
      podMetricsEndpoints: { port: string; relabelings: unknown[] }[];
    };
    expect(spec.podMetricsEndpoints.map((e) => e.port)).toEqual(["pg-metrics", "pgb-metrics", "node-metrics", "mtail-metrics"]);
    expect(spec.podMetricsEndpoints.map((e) => e.relabelings)).toEqual(
      ["postgres", "pgbouncer", "node", "mtail"].map((job) => [
        { action: "replace", replacement: job, targetLabel: "job" },
        { action: "replace", replacement: "staging", targetLabel: "stack" },
        { action: "replace", sourceLabels: ["__meta_kubernetes_pod_node_name"], targetLabel: "node" },
      ]),
    );
  });

  it("the canary's PodMonitor scrapes its port as job canary with the stack label", () => {
    expect(canaryPodMonitorSpec({ a: "b" }, canaryScrapeJobs(rendered()), { stack: "staging", interval: "15s" })).toEqual({
      podMetricsEndpoints: [
        {
          interval: "15s",
          path: "/metrics",
          port: "canary-metrics",
          relabelings: [
            { action: "replace", replacement: "canary", targetLabel: "job" },
            { action: "replace", replacement: "staging", targetLabel: "stack" },
          ],
        },
      ],
      selector: { matchLabels: { a: "b" } },
    });
  });

  it("the dashboard ConfigMap carries the stack's rendered JSON byte for byte under a key of its own, labelled for the Grafana sidecar", () => {
    const r = rendered();
    const data = grafanaDashboardData(r);
    expect(Object.keys(data)).toEqual(["pgvector-stack-staging.json"]);
    expect(Buffer.from(data["pgvector-stack-staging.json"]).equals(Buffer.from(r.files["grafana-dashboard.json"]))).toBe(true);
    // The stack's own dashboard: its uid and title, and a file name no other stack's ConfigMap writes.
    expect(JSON.parse(data["pgvector-stack-staging.json"])).toMatchObject({ uid: "pgstack-staging", title: "pgvector-stack staging" });
    const prod = renderStack(parseStackSpec("prod", { target: "kubernetes", node: { memory: "64Gi", cpus: 16 }, postgres: { hugePages: "on" } }));
    expect(Object.keys(grafanaDashboardData(prod))).toEqual([grafanaDashboardKey("prod")]);
    expect(grafanaDashboardKey("prod")).not.toBe(grafanaDashboardKey("staging"));
    // A valid ConfigMap key for every stack name the spec allows (letters, digits, _ . -, at most 63).
    expect(grafanaDashboardKey(`A.b_c-${"x".repeat(57)}`)).toMatch(/^[-._a-zA-Z0-9]{1,253}$/);
    const labels = grafanaDashboardLabels({ "app.kubernetes.io/name": "pgvector-stack" });
    expect(labels).toEqual({ "app.kubernetes.io/name": "pgvector-stack", grafana_dashboard: "1" });
    expect(Object.keys(labels)).toEqual([...Object.keys(labels)].sort());
  });

  it("PrometheusRule carries the rendered groups unchanged", () => {
    const r = rendered();
    expect(prometheusRuleSpec(r)).toEqual(r.alertRuleGroups);
  });
});

describe("the hook Job", () => {
  it("refuses a bundle that would not fit one ConfigMap, naming the sizes", () => {
    const plan = rendered().files["plan.json"];
    const planBytes = Buffer.byteLength(plan);
    expect(() => assertHookFits("x".repeat(configMapLimitBytes - planBytes), plan)).not.toThrow();
    expect(() => assertHookFits("x".repeat(configMapLimitBytes - planBytes + 1), plan)).toThrow(
      `hookBundle is ${configMapLimitBytes - planBytes + 1} bytes and plan.json ${planBytes} bytes: together ${configMapLimitBytes + 1} bytes, over the 1048576 bytes (1 MiB)`,
    );
    // UTF-8 bytes, not characters.
    expect(() => assertHookFits("é".repeat(configMapLimitBytes / 2), plan)).toThrow("over the 1048576 bytes");
    expect(() => assertHookFits("", plan)).toThrow("hookBundle is empty");
  });

  it("runs the bundle with the plan, URLs from the Secret, after waiting for the database", () => {
    const spec = hookJobSpec({
      image: "node:20-bookworm-slim",
      planSha256: sha256("plan"),
      configMapName: "cm",
      credentialsSecret: "pgvector-hook",
      tls: { secretName: "pgvector-tls", caPath: "/etc/pgstack/tls/ca.crt" },
      databaseHost: "pgvector-direct.ns.svc.cluster.local",
      databasePort: 5432,
      podLabels: { a: "b" },
      backoffLimit: 6,
      timeoutSeconds: 3600,
      memoryBytes: 1024 ** 3,
    });
    const pod = spec.template as unknown as { metadata: { annotations: Record<string, string> }; spec: { containers: Record<string, unknown>[]; restartPolicy: string } };
    expect(pod.metadata.annotations["pgvector-stack/plan-sha256"]).toBe(sha256("plan"));
    expect(pod.spec.containers[0].command).toEqual(["node", "/hook/pgstack.js", "postdeploy", "--plan", "/etc/pgstack/plan.json"]);
    expect(pod.spec.containers[0].env).toEqual([
      { name: "PGSTACK_DIRECT_URL", valueFrom: { secretKeyRef: { key: "direct-url", name: "pgvector-hook" } } },
      { name: "PGSTACK_POOLED_URL", valueFrom: { secretKeyRef: { key: "pooled-url", name: "pgvector-hook" } } },
    ]);
    expect(pod.spec.restartPolicy).toBe("Never");
    expect(spec.backoffLimit).toBe(6);
    expect(() => new vm.Script(waitForDatabaseScript)).not.toThrow();
  });
});

describe("the canary Deployment", () => {
  const input = (bundle = "bundle()") => ({
    launch: rendered().launches.canary,
    image: "node:20-bookworm-slim",
    configMapName: "pgvector-canary",
    hookBundle: bundle,
    credentialsSecret: "pgvector-hook",
    tls: { secretName: "pgvector-tls", caPath: "/etc/pgstack/tls/ca.crt" },
    selector: { "app.kubernetes.io/component": "canary" },
    podLabels: { "app.kubernetes.io/component": "canary", "pgvector-stack/stack": "staging" },
  });
  // biome-ignore lint/suspicious/noExplicitAny: test navigation of a plain spec
  type Pod = { metadata: { annotations: Record<string, string>; labels: Record<string, string> }; spec: { containers: any[]; volumes: unknown[] } };

  it("runs `pgstack canary` from the bundle, listening on the pod, the URLs from the hook's Secret only", () => {
    const spec = canaryDeploymentSpec(input());
    const pod = spec.template as unknown as Pod;
    expect(spec.replicas).toBe(1);
    const [canary] = pod.spec.containers;
    expect(pod.spec.containers).toHaveLength(1);
    expect(canary.command).toEqual(["node", "/hook/pgstack.js", "canary", "--listen", "0.0.0.0:9188"]);
    expect(canary.args).toBeUndefined();
    expect(canary.image).toBe("node:20-bookworm-slim");
    expect(canary.env).toEqual([
      { name: "PGSTACK_DIRECT_URL", valueFrom: { secretKeyRef: { key: "direct-url", name: "pgvector-hook" } } },
      { name: "PGSTACK_POOLED_URL", valueFrom: { secretKeyRef: { key: "pooled-url", name: "pgvector-hook" } } },
    ]);
    expect(canary.ports).toEqual([{ containerPort: 9188, name: "canary-metrics", protocol: "TCP" }]);
    expect(canary.readinessProbe.httpGet).toEqual({ path: "/metrics", port: "canary-metrics" });
    expect(canary.livenessProbe.httpGet).toEqual({ path: "/metrics", port: "canary-metrics" });
    // Small, memory request = limit, no CPU limit (throttling would show as query latency).
    expect(canary.resources).toEqual({ limits: { memory: "192Mi" }, requests: { cpu: "50m", memory: "192Mi" } });
    expect(canary.securityContext).toEqual(restrictedSecurityContext(1000));
    expect(pod.spec.volumes[0]).toEqual({ configMap: { items: [{ key: "pgstack.js", path: "pgstack.js" }], name: "pgvector-canary" }, name: "bundle" });
    expect(canaryConfigData("bundle()")).toEqual({ "pgstack.js": "bundle()" });
    expect(pod.metadata.labels).toMatchObject(input().selector);
    expect(spec.selector).toEqual({ matchLabels: input().selector });
  });

  it("rolls the pod exactly when the bundle changes, and is deterministic", () => {
    const annotation = (bundle: string) => (canaryDeploymentSpec(input(bundle)).template as unknown as Pod).metadata.annotations["checksum/bundle"];
    expect(annotation("bundle()")).toBe(sha256("bundle()"));
    expect(annotation("bundle(2)")).not.toBe(annotation("bundle()"));
    expect(JSON.stringify(canaryDeploymentSpec(input()))).toBe(JSON.stringify(canaryDeploymentSpec(input())));
  });
});

describe("databaseStatefulSetSpec", () => {
  it("is deterministic: the same input gives the same object, key order included", () => {
    const r = rendered();
    const input = () => ({
      rendered: r,
      names: kubernetesNames("pgvector"),
      instance: "pgvector",
      images: r.spec.images.upstream,
      resources: podResources({
        memory: r.memory,
        cpus: 8,
        maxConnections: 200,
        maxClientConn: 2000,
      }),
    });
    expect(JSON.stringify(databaseStatefulSetSpec(input()))).toBe(JSON.stringify(databaseStatefulSetSpec(input())));
  });

  it("restricted security context", () => {
    expect(restrictedSecurityContext(999)).toEqual({
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
      readOnlyRootFilesystem: true,
      runAsGroup: 999,
      runAsNonRoot: true,
      runAsUser: 999,
      seccompProfile: { type: "RuntimeDefault" },
    });
  });
});
