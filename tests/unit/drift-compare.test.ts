/**
 * The comparison logic of `pgstack drift`: values by meaning (units), settings files as settings, data and resources
 * per path, and the report in text, Markdown and JSON for: no change, a setting changed, a resource added, a resource
 * removed, a file added or removed.
 */
import { describe, expect, it } from "vitest";
import { parseKeyValueLines, parsePgBouncerIni, parsePostgresqlConf } from "../../drift/config-files";
import { formatSnapshotDrift, maxMarkdownChars } from "../../drift/report";
import { isPulumiSecret, normaliseResources, parseResourcesYaml, pulumiSecretSig, pulumiSigKey, redactionMarker, resourcesYaml, type RecordedResource } from "../../drift/resources";
import { compareRendered, expandEmbeddedFile, fileDrift } from "../../drift/snapshot";
import { unifiedDiff } from "../../drift/text-diff";
import { treeChanges } from "../../drift/tree-diff";
import { quantity, sameSetting } from "../../drift/values";

describe("setting values compare by meaning", () => {
  it.each([
    ["8GB", "8192MB", true],
    ["1GB", "1048576kB", true],
    ["16GB", "8GB", false],
    ["15min", "900s", true],
    ["5min", "300000ms", true],
    ["100ms", "1s", false],
    ["on", "true", true],
    ["off", "0", true],
    ["on", "1", true],
    ["2.0", "2", true],
    ["1.1", "1.10", true],
    ["'pg_stat_statements'", "pg_stat_statements", true],
    ["'a, b'", "a,b", true],
    ["scram-sha-256", "SCRAM-SHA-256", true],
    ["replica", "logical", false],
    ["64MB", "64", false],
  ])("%s vs %s → same: %s", (a, b, same) => {
    expect(sameSetting(a, b)).toBe(same);
  });

  it("parses sizes to bytes and durations to milliseconds", () => {
    expect(quantity("16GB")).toEqual({ kind: "bytes", value: 16 * 1024 ** 3 });
    expect(quantity("8Gi")).toEqual({ kind: "bytes", value: 8 * 1024 ** 3 });
    expect(quantity("15min")).toEqual({ kind: "ms", value: 900_000 });
    expect(quantity("-1")).toEqual({ kind: "number", value: -1 });
    expect(quantity("posix")).toEqual({ kind: "text", value: "posix" });
  });
});

describe("settings files read back as settings", () => {
  it("postgresql.conf: quoted values, escapes, comments, last one wins, names lower-cased", () => {
    const conf = [
      "# a comment",
      "shared_buffers = 16GB            # guide: 25% of RAM",
      "log_line_prefix = '%m [%p]: user=%u,db=%d '  # prefix # with hash",
      "search_path = 'it''s, \\'x\\''",
      "DateStyle = 'iso, mdy'",
      "work_mem 64MB",
      "work_mem = 128MB",
      "",
    ].join("\n");
    expect([...parsePostgresqlConf(conf)]).toEqual([
      ["shared_buffers", "16GB"],
      ["log_line_prefix", "%m [%p]: user=%u,db=%d "],
      ["search_path", "it's, 'x'"],
      ["datestyle", "iso, mdy"],
      ["work_mem", "128MB"],
    ]);
  });

  it("pgbouncer.ini: [pgbouncer] keys bare, other sections prefixed; empty values kept", () => {
    const ini = "[databases]\n;; comment\napp = host=127.0.0.1 port=5432 dbname=app\n\n[pgbouncer]\n;; why\nlisten_port = 6432\nunix_socket_dir = \n";
    expect([...parsePgBouncerIni(ini)]).toEqual([
      ["databases.app", "host=127.0.0.1 port=5432 dbname=app"],
      ["listen_port", "6432"],
      ["unix_socket_dir", ""],
    ]);
  });

  it("memory-plan.yaml: key: value lines, comments skipped", () => {
    expect([...parseKeyValueLines("# Memory plan\nnode_memory: 64GB\nhuge_pages: on\n# warning: x: y\n")]).toEqual([
      ["node_memory", "64GB"],
      ["huge_pages", "on"],
    ]);
  });
});

describe("data compared per path, named lists matched by name", () => {
  const statefulSet = (hugePages: string, extraEnv = false) => ({
    spec: {
      template: {
        spec: {
          containers: [
            { name: "pgbouncer", image: "pgbouncer:1.24" },
            {
              name: "postgres",
              env: [{ name: "PGDATA", value: "/data" }, ...(extraEnv ? [{ name: "TZ", value: "UTC" }] : [])],
              resources: { limits: { "hugepages-2Mi": hugePages, memory: "20Gi" } },
            },
          ],
        },
      },
    },
  });

  it("names a container's resource limit by the container's name", () => {
    expect(treeChanges(statefulSet("8448Mi"), statefulSet("16826Mi"))).toEqual([
      { path: "spec.template.spec.containers[name=postgres].resources.limits.hugepages-2Mi", old: "8448Mi", new: "16826Mi" },
    ]);
  });

  it("reports an added list element as added, not every later element as changed", () => {
    expect(treeChanges(statefulSet("1Mi"), statefulSet("1Mi", true))).toEqual([
      { path: "spec.template.spec.containers[name=postgres].env[name=TZ]", new: { name: "TZ", value: "UTC" } },
    ]);
  });

  it("matches alert rules by alert and severity, Docker env strings by variable, odd keys bracketed", () => {
    const rules = (w: number) => ({
      rules: [
        { record: "x:ratio", expr: "a / b" },
        { alert: "PoolHigh", expr: `x:ratio > ${w}`, labels: { severity: "warning" } },
        { alert: "PoolHigh", expr: "x:ratio > 0.9", labels: { severity: "critical" } },
      ],
    });
    expect(treeChanges(rules(0.7), rules(0.8))).toEqual([{ path: "rules[alert=PoolHigh,severity=warning].expr", old: "x:ratio > 0.7", new: "x:ratio > 0.8" }]);
    expect(treeChanges({ envs: ["A=1", "B=2"] }, { envs: ["B=3", "A=1"] })).toEqual([{ path: "envs[B]", old: "B=2", new: "B=3" }]);
    expect(treeChanges({ labels: { "app.kubernetes.io/name": "a" } }, { labels: { "app.kubernetes.io/name": "b" } })).toEqual([
      { path: 'labels["app.kubernetes.io/name"]', old: "a", new: "b" },
    ]);
  });

  it("says when only the order of named elements changed", () => {
    expect(treeChanges({ c: [{ name: "a" }, { name: "b" }] }, { c: [{ name: "b" }, { name: "a" }] })).toEqual([
      { path: "c (order)", old: ["name=a", "name=b"], new: ["name=b", "name=a"] },
    ]);
  });

  it("compares a rendered file carried inside a resource input the way the file is compared", () => {
    const conf = (sb: string) => `# header\nshared_buffers = ${sb}   # why\nwork_mem = 64MB\n`;
    expect(expandEmbeddedFile({ path: 'data["postgresql.conf"]', old: conf("8GB"), new: conf("16GB") })).toEqual([
      { path: 'data["postgresql.conf"] › shared_buffers', old: "8GB", new: "16GB" },
    ]);
    expect(expandEmbeddedFile({ path: "uploads[file=/etc/x/plan.json].content", old: '{\n"a": 1\n}', new: '{\n"a": 2\n}' })).toEqual([
      { path: "uploads[file=/etc/x/plan.json].content › a", old: 1, new: 2 },
    ]);
  });
});

describe("resources: normalised, secrets redacted, YAML round trip", () => {
  const secret = (value: unknown) => ({ [pulumiSigKey]: pulumiSecretSig, value });

  it("replaces Pulumi secrets by the marker, sorts keys, drops undefined, relativises the project path", () => {
    const recorded: RecordedResource[] = [
      { type: "t:b", name: "z", inputs: {} },
      {
        type: "t:a",
        name: "a",
        inputs: { zeta: 1, alpha: { path: "/home/me/project/x.conf", nothing: undefined }, password: secret("hunter2-planted"), list: [secret("s"), "x"] },
      },
    ];
    const out = normaliseResources(recorded, { projectRoot: "/home/me/project" });
    expect(out.map((r) => r.name)).toEqual(["a", "z"]);
    expect(out[0].inputs).toEqual({ alpha: { path: "<project>/x.conf" }, list: [redactionMarker, "x"], password: redactionMarker, zeta: 1 });
    expect(Object.keys(out[0].inputs)).toEqual(["alpha", "list", "password", "zeta"]);
    expect(JSON.stringify(out)).not.toContain("hunter2-planted");
    expect(isPulumiSecret(secret(1))).toBe(true);
  });

  it("redacts a known secret value that reached a non-secret input, and reports where", () => {
    const leaks: string[] = [];
    const out = normaliseResources([{ type: "k:ConfigMap", name: "cm", inputs: { data: { url: "postgresql://app:fake-pw-1@db/app" } } }], {
      secretValues: ["fake-pw-1"],
      onLeak: (resource, path) => leaks.push(`${resource} ${path}`),
    });
    expect(out[0].inputs).toEqual({ data: { url: `postgresql://app:${redactionMarker}@db/app` } });
    expect(leaks).toEqual(["k:ConfigMap cm data.url"]);
  });

  it("writes huge strings as their digest and empty lists with the reason", () => {
    const out = normaliseResources([{ type: "t", name: "n", inputs: { bundle: "x".repeat(100_000) } }]);
    expect(out[0].inputs.bundle).toMatch(/^\[sha256:[0-9a-f]{64}, 100000 bytes\]$/);
    expect(resourcesYaml([], { stack: "perf", target: "local" })).toMatch(/Target local registers no resources[^\n]*\n\[\]\n$/);
    expect(parseResourcesYaml(resourcesYaml([], { stack: "perf", target: "local" }))).toEqual([]);
  });

  it("round-trips through resources.yaml, multi-line strings as block scalars", () => {
    const resources = normaliseResources([{ type: "k:ConfigMap", name: "cm", inputs: { data: { "postgresql.conf": "a = 1\nb = 2\n" } } }]);
    const text = resourcesYaml(resources, { stack: "s", target: "kubernetes" });
    expect(text).toContain("postgresql.conf: |\n");
    expect(parseResourcesYaml(text)).toEqual(resources);
  });
});

/** A small rendered tree: two stacks, each with settings files, resources, a plan and SQL. */
function tree(over: { sharedBuffers?: string; resources?: RecordedResource[]; extraFile?: boolean; m?: number } = {}) {
  const resources: RecordedResource[] = over.resources ?? [
    { type: "kubernetes:apps/v1:StatefulSet", name: "prod-database-statefulset", inputs: { spec: { template: { spec: { containers: [{ name: "postgres", resources: { limits: { "hugepages-2Mi": "8448Mi" } } }] } } } } },
    { type: "kubernetes:core/v1:Secret", name: "prod-database-credentials", inputs: { stringData: redactionMarker } },
  ];
  const prod: Record<string, string> = {
    "memory-plan.yaml": `# plan\nnode_memory: 64GB\nshared_buffers: ${over.sharedBuffers ?? "16GB"}\n`,
    "postgresql.conf": `# conf\nshared_buffers = ${over.sharedBuffers ?? "16GB"}   # 25%\nwork_mem = 512MB\n`,
    "pgbouncer.ini": "[pgbouncer]\ndefault_pool_size = 100\n",
    "resources.yaml": resourcesYaml(resources, { stack: "prod", target: "kubernetes" }),
    "plan.json": `${JSON.stringify({ indexPlan: [{ indexName: "memories_embedding_hnsw_idx", m: over.m ?? 16 }] }, null, 2)}\n`,
    "hnsw-plan.sql": `CREATE INDEX … WITH (m = ${over.m ?? 16});\n`,
  };
  if (over.extraFile) prod["extra.txt"] = "hello\n";
  return { dev: { "postgresql.conf": "shared_buffers = 2GB\n" }, prod };
}

describe("snapshot drift: report content and what the exit code follows", () => {
  it("no change: drift false, every format says so", () => {
    const d = compareRendered(tree(), tree());
    expect(d.drift).toBe(false);
    expect(d.stacks.map((s) => s.change)).toEqual(["unchanged", "unchanged"]);
    expect(formatSnapshotDrift(d, "text")).toBe("no drift: this commit renders exactly rendered/ for 2 stacks (dev, prod)\n");
    expect(formatSnapshotDrift(d, "markdown")).toMatch(/^## pgstack drift: no drift\n/);
    expect(JSON.parse(formatSnapshotDrift(d, "json"))).toMatchObject({ drift: false });
  });

  it("a setting changed: old → new with units, per file, only in that stack; formatting-only changes are not settings", () => {
    const d = compareRendered(tree(), tree({ sharedBuffers: "32GB" }));
    expect(d.drift).toBe(true);
    expect(d.stacks.find((s) => s.stack === "dev")?.change).toBe("unchanged");
    const prod = d.stacks.find((s) => s.stack === "prod");
    expect(prod?.files.map((f) => f.file)).toEqual(["memory-plan.yaml", "postgresql.conf"]);
    const text = formatSnapshotDrift(d, "text");
    expect(text).toContain("    shared_buffers: 16GB → 32GB\n");
    expect(text).toMatch(/^drift: this commit renders differently from rendered\/ in 1 of 2 stacks \(prod\)/);
    const md = formatSnapshotDrift(d, "markdown");
    expect(md).toContain("| `shared_buffers` | `16GB` | `32GB` |");
    expect(md).toContain("### prod");
    expect(md).not.toContain("### dev");

    // 16GB → 16384MB is the same setting: not reported as one, the changed lines are shown instead.
    const same = fileDrift("postgresql.conf", "shared_buffers = 16GB\n", "shared_buffers = 16384MB  # same\n");
    expect(same).toMatchObject({ kind: "settings", settings: [] });
    expect(same && "diff" in same ? same.diff : []).toContain("+shared_buffers = 16384MB  # same");
  });

  it("a resource added and a resource removed, named by type and name; changed inputs per path", () => {
    const before = tree();
    const base = parseResourcesYaml(before.prod["resources.yaml"]);
    const added = [...base, { type: "kubernetes:core/v1:ConfigMap", name: "prod-extra", inputs: { data: { a: "1" } } }];
    const up = compareRendered(before, tree({ resources: added }));
    expect(up.drift).toBe(true);
    const file = up.stacks.find((s) => s.stack === "prod")?.files[0];
    expect(file).toMatchObject({ file: "resources.yaml", kind: "resources", resources: [{ type: "kubernetes:core/v1:ConfigMap", name: "prod-extra", change: "added" }] });
    expect(formatSnapshotDrift(up, "text")).toContain("  resources.yaml: 1 resource added\n    + kubernetes:core/v1:ConfigMap prod-extra\n");
    expect(formatSnapshotDrift(up, "markdown")).toContain("| ➕ `kubernetes:core/v1:ConfigMap` `prod-extra` | *resource added* |");

    const down = compareRendered(tree({ resources: added }), before);
    expect(formatSnapshotDrift(down, "text")).toContain("    - kubernetes:core/v1:ConfigMap prod-extra\n");

    const bigger = base.map((r) =>
      r.type.endsWith("StatefulSet")
        ? { ...r, inputs: { spec: { template: { spec: { containers: [{ name: "postgres", resources: { limits: { "hugepages-2Mi": "16826Mi" } } }] } } } } }
        : r,
    );
    const changed = compareRendered(before, tree({ resources: bigger }));
    expect(formatSnapshotDrift(changed, "text")).toContain(
      "    ~ kubernetes:apps/v1:StatefulSet prod-database-statefulset\n        spec.template.spec.containers[name=postgres].resources.limits.hugepages-2Mi: 8448Mi → 16826Mi\n",
    );
    expect(JSON.parse(formatSnapshotDrift(changed, "json")).stacks[1].files[0].resources[0].inputs[0]).toEqual({
      path: "spec.template.spec.containers[name=postgres].resources.limits.hugepages-2Mi",
      old: "8448Mi",
      new: "16826Mi",
    });
  });

  it("data files per path (plan.json), other files as a short unified diff", () => {
    const d = compareRendered(tree(), tree({ m: 24 }));
    const text = formatSnapshotDrift(d, "text");
    expect(text).toContain("    indexPlan[indexName=memories_embedding_hnsw_idx].m: 16 → 24\n");
    expect(text).toContain("-CREATE INDEX … WITH (m = 16);");
    expect(text).toContain("+CREATE INDEX … WITH (m = 24);");
    expect(formatSnapshotDrift(d, "markdown")).toContain("```diff\n");
  });

  it("files and stacks added or removed", () => {
    const d = compareRendered(tree(), tree({ extraFile: true }));
    expect(formatSnapshotDrift(d, "text")).toContain("  extra.txt: added (1 line)\n");
    const gone = compareRendered({ ...tree(), old: { "postgresql.conf": "x = 1\n" } }, tree());
    expect(gone.stacks.find((s) => s.stack === "old")?.change).toBe("removed");
    expect(formatSnapshotDrift(gone, "text")).toContain("old: stack removed");
  });

  it("secrets: a changed secret shows only markers, and a planted secret text never reaches any format", () => {
    const planted = "s3cr3t-planted-value";
    const withSecret = (v: string) => [
      ...normaliseResources([{ type: "kubernetes:core/v1:Secret", name: "prod-credentials", inputs: { stringData: { [pulumiSigKey]: pulumiSecretSig, value: { password: v } } } }]),
    ];
    const d = compareRendered(tree({ resources: withSecret(planted) }), tree({ resources: withSecret(`${planted}-rotated`) }));
    expect(d.drift).toBe(false);
    for (const format of ["text", "markdown", "json"] as const) expect(formatSnapshotDrift(d, format)).not.toContain(planted);
    expect(tree({ resources: withSecret(planted) }).prod["resources.yaml"]).not.toContain(planted);
  });

  it("keeps a huge Markdown report under GitHub's comment limit, closing what it cut", () => {
    const many = (v: string) => Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`s${i}`, { "postgresql.conf": Array.from({ length: 80 }, (_, j) => `setting_${j} = ${v}${"x".repeat(40)}`).join("\n") }]));
    const md = formatSnapshotDrift(compareRendered(many("a"), many("b")), "markdown");
    expect(md.length).toBeLessThan(maxMarkdownChars + 500);
    expect(md).toContain("Report cut at");
  });
});

describe("unified diff", () => {
  it("shows changed lines with context and hunk markers", () => {
    expect(unifiedDiff("a\nb\nc\nd\ne\nf\ng\n", "a\nb\nc\nD\ne\nf\ng\n", 1)).toEqual(["@@ line 3 @@", " c", "-d", "+D", " e"]);
    expect(unifiedDiff("same\n", "same\n")).toEqual([]);
  });
});
