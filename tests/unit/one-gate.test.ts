/**
 * One gate: whatever parseStackSpec accepts renders, and whatever would make a renderer throw is refused by it with
 * an error naming the key. The table pins the cases a user met as stack traces; the generated configs throw valid
 * and invalid values at every key at once and require: SpecError (each issue naming a key of the config), or a
 * Rendered from every renderer, the Kubernetes pod sizing included.
 */
import { describe, expect, it } from "vitest";
import { renderStack } from "../../configs/render";
import { parseStackSpec, SpecError } from "../../configs/spec";

const host = { memoryBytes: 24 * 1024 ** 3, cpus: 2 };

function issuesOf(stack: string, config: Record<string, unknown>, secretKeys: string[] = []): SpecError["issues"] {
  try {
    parseStackSpec(stack, config, { host, secretKeys });
  } catch (e) {
    if (e instanceof SpecError) return e.issues;
    throw e;
  }
  return [];
}

const k8s = { target: "kubernetes", node: { memory: "32Gi", cpus: 8 } };
const local = { target: "local", node: { memory: "auto", cpus: "auto" } };

describe("what used to fail later, with a stack trace, is refused at the gate", () => {
  it.each([
    ["efConstruction against the guide's m of 1,536 dimensions", { ...local, vectorTables: [{ dimensions: 1536, efConstruction: 50 }] }, "vectorTables[0].efConstruction", "at least 2 × m = 96"],
    ["m above the guide's ef_construction", { ...local, vectorTables: [{ dimensions: 768, m: 80 }] }, "vectorTables[0].m", "set vectorTables[0].efConstruction to at least 160"],
    ["an alert threshold out of range", { ...local, alerts: { poolUtilizationWarning: 70 } }, "alerts.poolUtilizationWarning", "is not a fraction"],
    ["a warning above its critical", { ...local, alerts: { memoryWarning: 0.97 } }, "alerts.memoryWarning", "must be below alerts.memoryCritical 0.95"],
    ["a zero duration", { ...local, alerts: { targetDownFor: "0m" } }, "alerts.targetDownFor", "a Prometheus duration of whole units"],
    ["a runbook URL with a fragment", { ...local, alerts: { runbookBaseUrl: "https://wiki.example/db#top" } }, "alerts.runbookBaseUrl", "without a #fragment"],
    ["an alert label the rules own", { ...local, alerts: { labels: { severity: "page" } } }, "alerts.labels.severity", "every alert already sets severity"],
    ["an alert label Prometheus would expand as a template", { ...local, alerts: { labels: { team: "{{ oops" } } }, "alerts.labels.team", "must not contain {{ or }}"],
    ["a runbook URL Prometheus would expand as a template", { ...local, alerts: { runbookBaseUrl: "https://x.example/{{oops" } }, "alerts.runbookBaseUrl", "without {{ }}"],
    ["memory: auto on Docker", { target: "docker", node: { memory: "auto", cpus: 4 } }, "node.memory", "for target: local only"],
    ["cpus: auto on Kubernetes", { ...k8s, node: { memory: "32Gi", cpus: "auto" } }, "node.cpus", "for target: local only"],
    ["a table name that makes the index name too long", { ...local, vectorTables: [{ table: "t".repeat(50), column: "embedding" }] }, "vectorTables[0].table/column", "over PostgreSQL's 63"],
    ["a filter column the stack's table already has", { ...local, vectorTables: [{ filterColumns: ["id"] }] }, "vectorTables[0].filterColumns[0]", "a column the stack's own table already has"],
    ["the application database named after PgBouncer's console", { ...local, postgres: { database: "pgbouncer" } }, "postgres.database", "PgBouncer's admin console"],
    ["the application user as the exporter's role", { ...local, postgres: { appUser: "pgstack_monitor" } }, "postgres.appUser", "postgres_exporter's least-privilege role"],
    ["a reserved role prefix", { ...local, postgres: { appUser: "pg_app" } }, "postgres.appUser", "reserves role names starting with pg_"],
    ["a memory setting that does not parse", { ...local, postgres: { settings: { work_mem: "lots" } } }, "postgres.settings.work_mem", "is not a PostgreSQL memory size"],
    ["a setting with a line break", { ...local, postgres: { settings: { search_path: "public\nfsync = off" } } }, "postgres.settings.search_path", "contains a line break"],
    ["a watched setting with quotes", { ...local, postgres: { settings: { max_parallel_workers: "4'" } } }, "postgres.settings.max_parallel_workers", "is not a plain value"],
    ["two Docker ports alike", { target: "docker", node: { memory: "8Gi", cpus: 4 }, docker: { ports: { pgbouncer: 5432 } } }, "docker.ports.pgbouncer", "each published port needs its own number"],
    ["a Kubernetes node too small for the pod", { ...k8s, node: { memory: "1Gi", cpus: 2 }, postgres: { hugePages: "on" } }, "node.memory", "leaves PostgreSQL"],
    ["DaemonSets that leave the pod too little", { ...k8s, kubernetes: { daemonSetMemory: "31Gi" } }, "node.memory", "31 GiB for DaemonSets"],
    ["a label selector value Kubernetes refuses", { ...k8s, kubernetes: { monitoringLabels: { release: "kube prometheus" } } }, "kubernetes.monitoringLabels.release", "a label value is at most 63"],
    ["a renewal window as long as the certificate lives", { ...local, tls: { certificateValidity: "30d", renewBefore: "30d" } }, "tls.renewBefore", "must be shorter than tls.certificateValidity"],
    ["an expiry warning that would fire before renewal is due", { ...local, tls: { renewBefore: "14d" } }, "alerts.certificateExpiryWarning", "must be shorter than tls.renewBefore"],
    ["an expiry critical longer than its warning", { ...local, alerts: { certificateExpiryCritical: "25d" } }, "alerts.certificateExpiryCritical", "must be shorter than alerts.certificateExpiryWarning"],
    ["a cert-manager issuer off Kubernetes", { target: "docker", node: { memory: "8Gi", cpus: 4 }, tls: { certManagerIssuer: { name: "ca" } } }, "tls.certManagerIssuer", "for target: kubernetes"],
    ["a resize record not below the size", { ...k8s, kubernetes: { storageSize: "100Gi", storageResizedFrom: "100Gi" } }, "kubernetes.storageResizedFrom", "must be smaller"],
  ])("%s", (_, config, key, text) => {
    const issues = issuesOf("staging", config);
    const issue = issues.find((i) => i.key === key);
    expect(issue, `no issue for ${key}; got ${JSON.stringify(issues)}`).toBeDefined();
    expect(issue?.message).toContain(text);
  });

  it("refuses a stack name that cannot be a Kubernetes label value or a Docker name", () => {
    expect(issuesOf("Stage one", local).map((i) => i.key)).toEqual(["stack"]);
    expect(issuesOf("-x", local).map((i) => i.key)).toEqual(["stack"]);
    expect(issuesOf("a".repeat(64), local).map((i) => i.key)).toEqual(["stack"]);
    expect(issuesOf("team.search_prod-2", local)).toEqual([]);
  });

  it("refuses a secret in plain text, accepts it encrypted, and never prints it", () => {
    const issues = issuesOf("staging", { ...k8s, superuserPassword: "s3cret-in-plain" });
    expect(issues.map((i) => i.key)).toEqual(["superuserPassword"]);
    expect(issues[0].message).toContain("pulumi config set --secret pgvector-stack:superuserPassword <value>");
    expect(JSON.stringify(issues)).not.toContain("s3cret-in-plain");
    expect(issuesOf("staging", { ...k8s, superuserPassword: "[secret]" }, ["superuserPassword"])).toEqual([]);
  });
});

/** mulberry32: a small seeded generator, so a failing case can be reproduced from its index. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Candidate values per key path, valid ones and the edges and mistakes people write. */
const candidates: Readonly<Record<string, readonly unknown[]>> = {
  target: ["kubernetes", "docker", "local", "k8s"],
  "node.memory": ["1Gi", "2Gi", "4Gi", "8Gi", "32Gi", "64Gi", "512Gi", "auto", "32", "512Mi"],
  "node.cpus": [1, 2, 4, 16, 64, "auto", 0],
  "node.storage": ["ssd", "nvme", "hdd", "tape"],
  "postgres.maxConnections": [20, 50, 200, 1000, 10_000, 19],
  "postgres.hugePages": ["on", "try", "off", true],
  "postgres.statementTimeout": ["0s", "5min", "24h", "25h"],
  "postgres.reservedConnections.maintenance": [3, 10, 100, 2],
  "postgres.reservedConnections.monitoring": [1, 5, 50],
  "postgres.database": ["app", "vectors", "postgres", "pgbouncer", "Bad"],
  "postgres.appUser": ["app", "svc", "postgres", "pg_x", "pgstack_stats"],
  "postgres.settings": [
    {},
    { work_mem: "64MB" },
    { work_mem: "2GB", maintenance_work_mem: "16GB" },
    { hash_mem_multiplier: "1.5" },
    { max_parallel_workers_per_gather: "4", random_page_cost: "1.1" },
    { effective_cache_size: "1TB" },
    { autovacuum_work_mem: "-1" },
    { work_mem: "lots" },
    { shared_buffers: "1GB" },
    { wrok_mem: "1MB" },
  ],
  "postgres.acceptWorstCaseMemory": [true, false, "yes"],
  "pgbouncer.poolMode": ["transaction", "session", "statement"],
  "pgbouncer.maxClientConn": [1, 100, 2000, 100_000],
  "pgbouncer.defaultPoolSize": [1, 20, 100, 5000],
  "pgbouncer.reservePoolSize": [0, 10, 1000],
  "pgbouncer.queryTimeout": ["0s", "300s", "1h", "2d"],
  vectorTables: [
    [{}],
    [{ dimensions: 384 }],
    [{ dimensions: 1536, efConstruction: 50 }],
    [{ dimensions: 1536, m: 24, efConstruction: 64 }],
    [{ dimensions: 3072 }],
    [{ dimensions: 4000, type: "halfvec", m: 100, efConstruction: 1000 }],
    [{ dimensions: 16_000 }],
    [{ table: "a", filterColumns: [] }, { table: "b", metric: "l2", filterColumns: ["tenant", "lang"] }],
    [{ table: "x".repeat(50) }],
    [{ filterColumns: ["created_at"] }],
    [{ m: 2, efConstruction: 4, efSearch: 1000 }],
  ],
  "benchmark.concurrency": [1, 8, 1000],
  "benchmark.rows": [100, 100_000],
  "alerts.poolUtilizationWarning": [0.5, 0.95, 70],
  "alerts.memoryCritical": [0.9, 1, 1.5],
  "alerts.clientsWaiting": [0, 3, 2.5],
  "alerts.rateWindow": ["1m", "5m", "0m", "5x"],
  "alerts.labels": [{}, { team: "search" }, { severity: "x" }, { "bad-name": "x" }],
  "alerts.runbookBaseUrl": ["https://wiki.example/runbooks", "ftp://x"],
  "kubernetes.storageSize": ["1Gi", "100Gi", "10Ti", "1Mi"],
  "kubernetes.monitoringLabels": [{}, { release: "kube-prometheus-stack" }, { "example.com/team": "db" }, { release: "" }, { "-x": "y" }],
  "kubernetes.clientNamespaceSelector": [{ "kubernetes.io/metadata.name": "apps" }, { tier: 3 }],
  "kubernetes.daemonSetMemory": ["256Mi", "2Gi", "60Gi"],
  "kubernetes.clusterDomain": ["cluster.local", "corp.internal", "Bad_Domain"],
  "docker.ports.pgbouncer": [6432, 5432, 9090, 70_000],
  "tls.certificateValidity": ["1d", "90d", "825d", "2000d"],
  "tls.renewBefore": ["1h", "22d", "30d", "60d"],
  "tls.certManagerIssuer": [{ name: "letsencrypt", kind: "ClusterIssuer" }, { name: "Bad Name" }],
  "docker.hostHugePages": [true, false],
};

function setPath(config: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split(".");
  let node = config;
  for (const part of parts.slice(0, -1)) {
    node[part] = { ...((node[part] as Record<string, unknown>) ?? {}) };
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1]] = value;
}

function generated(seed: number): Record<string, unknown> {
  const next = random(seed);
  const config: Record<string, unknown> = { target: "kubernetes", node: { memory: "32Gi", cpus: 8 } };
  for (const [path, values] of Object.entries(candidates)) {
    if (next() < 0.1) setPath(config, path, values[Math.floor(next() * values.length)]);
  }
  return config;
}

describe("generated stack configs: refused with named keys, or rendered without a throw", () => {
  const seeds = Array.from({ length: 1000 }, (_, i) => i + 1);
  it("holds for 1,000 configs", () => {
    let accepted = 0;
    for (const seed of seeds) {
      const config = generated(seed);
      let spec: ReturnType<typeof parseStackSpec>;
      try {
        spec = parseStackSpec(`s${seed}`, config, { host });
      } catch (e) {
        expect(e, `seed ${seed}`).toBeInstanceOf(SpecError);
        for (const issue of (e as SpecError).issues) expect(issue.key, `seed ${seed}: ${issue.message}`).not.toBe("");
        continue;
      }
      accepted++;
      const rendered = (() => {
        try {
          return renderStack(spec);
        } catch (e) {
          throw new Error(`seed ${seed}: accepted, but renderStack threw: ${(e as Error).message}\n${JSON.stringify(config)}`);
        }
      })();
      if (spec.target === "kubernetes") {
        expect(rendered.kubernetesPod, `seed ${seed}`).not.toBeNull();
      }
    }
    // The generator must exercise both branches, or the property proves nothing.
    expect(accepted).toBeGreaterThan(100);
    expect(accepted).toBeLessThan(seeds.length - 100);
  });
});
