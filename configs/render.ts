/**
 * StackSpec (+ the target's Placement) → Rendered: every file, command line and number a target deploys, computed
 * once, deterministic, without secrets. Targets consume Rendered as it is; none re-derives a value from the spec or
 * re-parses a rendered file.
 */
import yaml from "js-yaml";
import { renderAlertRules, renderAlertRulesYaml, type AlertRulesInput } from "./alerts";
import { exposureWarnings } from "./docker-exposure";
import { postgresExporterQueriesYaml, watchedSettings } from "./exporters";
import { renderGrafanaDashboardJson } from "./grafana-dashboard";
import { planIndexes, renderIndexPlanSql } from "./hnsw";
import { podResources } from "./kubernetes-resources";
import { renderLaunches, type Launches } from "./launches";
import { memoryPlan, type MemoryPlan } from "./memory";
import { renderMtailProgram } from "./mtail";
import { placementFor, placementProblems, promDuration, serverPlacement, tlsFiles, type Placement } from "./placement";
import { renderPgBouncerIni } from "./pgbouncer";
import { renderPgHba, renderPgIdent } from "./pg-hba";
import { parallelism, postgresqlSettingValues, renderPostgresqlConf } from "./postgresql";
import type { HookPlan, Rendered, RenderedFiles, RenderedMemory, RenderedRoles, ScrapeJob } from "./rendered";
import { pgbouncerUsers, renderRolesSql, rolePlan, roleSettings } from "./roles";
import { defaultScrapeJobNames, jobSources, renderPrometheusConfigYaml } from "./scrape";
import type { StackSpec } from "./stack-spec";
import { serverNames, verifyFullQuery } from "./tls";
import { bytes, humanBytes, parseBytes, parseDuration, pgMemory } from "./units";

/** Rendered values as the alert rules compare them with pg_settings: memory in bytes, time in ms, the rest as text. */
export function expectedSettingsFor(values: Readonly<Record<string, string>>): Record<string, number | string> {
  const out: Record<string, number | string> = {};
  for (const name of watchedSettings) {
    const value = values[name];
    if (value === undefined || name === "huge_pages" || name === "huge_pages_status") continue;
    const memory = /^\d+(kB|MB|GB|TB)$/.test(value) ? parseBytes(value) : undefined;
    const time = /^\d+(ms|s|min|h|d)$/.test(value) ? parseDuration(value) : undefined;
    if (memory?.ok) out[name] = memory.value;
    else if (time?.ok) out[name] = time.value;
    else if (/^-?\d+(\.\d+)?$/.test(value)) out[name] = Number(value);
    else out[name] = value;
  }
  return out;
}

/**
 * Every target runs every metric source (the exporters, node_exporter and mtail beside PostgreSQL, the canary), so
 * every job is scraped and every rule of the policy is live everywhere; the disk rule watches the data volume's
 * mount where there is one.
 */
export function alertRulesInput(spec: StackSpec, settings: Readonly<Record<string, string>>, hugePages: "on" | "try" | "off", placement: Placement = placementFor(spec.target)): AlertRulesInput {
  return {
    stack: spec.stack,
    thresholds: spec.alerts,
    jobs: defaultScrapeJobNames,
    diskMountpoints: placement.dataVolumeMount === null ? undefined : [placement.dataVolumeMount],
    runbookBaseUrl: spec.alerts.runbookBaseUrl,
    labels: spec.alerts.labels,
    expectedSettings: expectedSettingsFor(settings),
    hugePages,
    pgbouncer: { maxClientConn: spec.pgbouncer.maxClientConn, defaultPoolSize: spec.pgbouncer.defaultPoolSize },
  };
}

function sortedJson(value: unknown): string {
  const sort = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(sort)
      : v && typeof v === "object"
        ? Object.fromEntries(Object.keys(v as object).sort().map((k) => [k, sort((v as Record<string, unknown>)[k])]))
        : v;
  return `${JSON.stringify(sort(value), null, 2)}\n`;
}

function scrapeJobsOf(launches: Launches): ScrapeJob[] {
  return Object.entries(jobSources).map(([job, source]) => ({ job: defaultScrapeJobNames[job as keyof typeof jobSources] ?? job, source, port: launches[source].port }));
}

/** prometheus.yml for a target that runs Prometheus in the programs' namespace: every job on loopback. */
function prometheusYaml(spec: StackSpec, placement: Placement, jobs: readonly ScrapeJob[]): string {
  const at = (source: string) => jobs.filter((j) => j.source === source).map((j) => `127.0.0.1:${j.port}`);
  const { scrapeMs, evaluationMs } = placement.intervals;
  return renderPrometheusConfigYaml({
    stack: spec.stack,
    targets: { postgres: at("postgresExporter"), pgbouncer: at("pgbouncerExporter"), node: at("nodeExporter"), canary: at("canary"), mtail: at("mtail") },
    ruleFiles: [placement.paths.alertRules],
    scrapeInterval: promDuration(scrapeMs),
    evaluationInterval: promDuration(evaluationMs),
    // Prometheus requires the timeout to be at most the interval: 80 % of it leaves room before the next scrape,
    // and 10 s (Prometheus' default) is enough for postgres_exporter's slowest scrape.
    scrapeTimeout: promDuration(Math.min(10_000, Math.round(scrapeMs * 0.8))),
  });
}

/**
 * The worst case of the memory plan, as one line: the detail (which settings, what would fit) is in
 * memory-plan.yaml and postgresql.conf's header. Nothing when it fits, or when the stack acknowledged it.
 */
function memoryWarnings(spec: StackSpec, plan: MemoryPlan): string[] {
  if (plan.warnings.length === 0 || spec.postgres.acceptWorstCaseMemory) return [];
  return [
    `memory worst case ${humanBytes(plan.worstCaseBytes)} exceeds node RAM ${humanBytes(plan.ramBytes)} (every connection using work_mem at once); ` +
      `see memory-plan.yaml, and set postgres.acceptWorstCaseMemory: true once read`,
  ];
}

/** memory-plan.yaml: the plan's numbers, one per line, and the worst-case explanation. */
function memoryPlanYaml(spec: StackSpec, m: RenderedMemory, plan: MemoryPlan): string {
  const auto = spec.node.memoryAuto ? `, memory: auto sized for a host of ${spec.node.memoryBytes / bytes.GiB}Gi / ${spec.node.cpus} cpus` : "";
  const verdict = spec.postgres.acceptWorstCaseMemory ? "accepted (postgres.acceptWorstCaseMemory)" : "warning";
  return [
    `# Memory plan for stack "${spec.stack}" (${spec.target})${auto}`,
    `node_memory: ${pgMemory(m.nodeMemoryBytes)}`,
    `shared_buffers: ${pgMemory(m.sharedBuffersBytes)}`,
    `effective_cache_size: ${pgMemory(m.effectiveCacheSizeBytes)}`,
    `work_mem: ${pgMemory(m.workMemBytes)}`,
    `maintenance_work_mem: ${pgMemory(m.maintenanceWorkMemBytes)}`,
    `shared_memory_estimate: ${Math.ceil(m.sharedMemoryBytes / bytes.MiB)}MB`,
    `huge_pages: ${m.hugePagesSetting}`,
    `huge_pages_2MiB: ${m.hugePages}`,
    `worst_case: ${pgMemory(Math.ceil(m.worstCaseBytes / bytes.MiB) * bytes.MiB)}`,
    ...plan.warnings.map((w) => `# ${verdict}: ${w}`),
    "",
  ].join("\n");
}

function renderedMemory(spec: StackSpec, memory: MemoryPlan): RenderedMemory {
  return {
    nodeMemoryBytes: spec.node.memoryBytes,
    sharedBuffersBytes: memory.sharedBuffersBytes,
    effectiveCacheSizeBytes: memory.effectiveCacheSizeBytes,
    workMemBytes: memory.workMemBytes,
    maintenanceWorkMemBytes: memory.maintenanceWorkMemBytes,
    sharedMemoryBytes: memory.sharedMemoryBytes,
    hugePages: memory.hugePages,
    hugePagesSetting: memory.hugePagesMode,
    worstCaseBytes: memory.worstCaseBytes,
  };
}

function renderedRoles(spec: StackSpec): RenderedRoles {
  const plan = rolePlan(spec);
  return { ...plan.names, pgbouncerUsers: pgbouncerUsers(plan), plan };
}

/**
 * Everything one stack deploys, for its target's placement (the perf cluster passes the one of its run). Throws
 * only on a placement that cannot work (a programming error of the caller): user input was checked by the spec.
 */
export function renderStack(spec: StackSpec, placement: Placement = placementFor(spec.target)): Rendered {
  const problems = placementProblems(placement);
  if (placement.target !== spec.target) problems.push(`placement is for target ${placement.target}, the stack's is ${spec.target}`);
  if (problems.length > 0) throw new Error(`stack "${spec.stack}": unusable placement: ${problems.join("; ")}`);
  const memory = memoryPlan(spec);
  const settings = postgresqlSettingValues(spec, memory);
  const indexPlan = planIndexes(spec.vectorTables, {
    maintenanceWorkMem: memory.rendered.maintenance_work_mem,
    maxParallelMaintenanceWorkers: parallelism(spec).maxParallelMaintenanceWorkers,
  });
  const rulesInput = alertRulesInput(spec, settings, memory.hugePagesMode, placement);
  const launches = renderLaunches(spec, placement);
  const scrapeJobs = scrapeJobsOf(launches);
  const roles = renderedRoles(spec);
  const hookPlan: HookPlan = {
    stack: spec.stack,
    database: spec.postgres.database,
    appUser: spec.postgres.appUser,
    extensions: roles.plan.extensions,
    roleSettings: roleSettings(roles.plan, spec.postgres.database),
    indexPlan,
    benchmark: spec.benchmark,
  };
  const rendered = renderedMemory(spec, memory);
  const files: RenderedFiles = {
    "postgresql.conf": renderPostgresqlConf(spec, memory, serverPlacement(placement)),
    "pg_hba.conf": renderPgHba(),
    "pg_ident.conf": renderPgIdent({ hostRoot: placement.target === "local" }),
    "roles.sql": renderRolesSql(roles.plan, spec.postgres.database),
    "pgbouncer.ini": renderPgBouncerIni(spec, {
      server: { host: "127.0.0.1", port: placement.ports.postgres },
      listenAddr: placement.pgbouncerListen,
      listenPort: placement.ports.pgbouncer,
      authFile: placement.paths.pgbouncerAuthFile,
      tls: tlsFiles(placement),
      clientTls: placement.clientTls,
      logFile: placement.paths.pgbouncerLog,
    }),
    "postgres-exporter-queries.yaml": postgresExporterQueriesYaml(),
    "alert-rules.yaml": renderAlertRulesYaml(rulesInput),
    "hnsw-plan.sql": renderIndexPlanSql(indexPlan),
    "plan.json": sortedJson(hookPlan),
    "postgresql.mtail": renderMtailProgram(),
    "grafana-dashboard.json": renderGrafanaDashboardJson({ stack: spec.stack, thresholds: spec.alerts, diskMountpoints: rulesInput.diskMountpoints }),
    "memory-plan.yaml": memoryPlanYaml(spec, rendered, memory),
    "launches.yaml": yaml.dump(launches, { sortKeys: true, lineWidth: -1, noRefs: true }),
    ...(placement.runsPrometheus ? { "prometheus.yml": prometheusYaml(spec, placement, scrapeJobs) } : {}),
  };
  return {
    spec,
    placement,
    memory: rendered,
    files,
    indexPlan,
    alertRuleGroups: renderAlertRules(rulesInput),
    launches,
    scrapeJobs,
    roles,
    tls: {
      files: tlsFiles(placement),
      serverNames: serverNames(),
      clientQuery: verifyFullQuery(placement.paths.tlsCa),
      certificateValidityMs: spec.tls.certificateValidityMs,
      renewBeforeMs: spec.tls.renewBeforeMs,
    },
    kubernetesPod:
      spec.target === "kubernetes"
        ? podResources({
            memory: rendered,
            cpus: spec.node.cpus,
            maxConnections: spec.postgres.maxConnections,
            maxClientConn: spec.pgbouncer.maxClientConn,
            // Every index build of the plan runs with the server's maintenance_work_mem, podResources' default for it.
            daemonSetMemoryBytes: spec.kubernetes.daemonSetMemoryBytes,
          })
        : null,
    // A Docker stack published beyond loopback says so on every render and `pulumi up` (configs/docker-exposure.ts).
    warnings: [...memoryWarnings(spec, memory), ...(spec.target === "docker" ? exposureWarnings(spec.docker) : [])],
  };
}
