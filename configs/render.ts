/**
 * StackSpec → Rendered: every file and number a target deploys, computed once, deterministic, without secrets.
 */
import { defaultScrapeJobNames, type ScrapeJobNames } from "./scrape";
import { renderAlertRules, renderAlertRulesYaml, type AlertRulesInput } from "./alerts";
import { pgbouncerExporterCommand, pgbouncerExporterPort, postgresExporterCommand, postgresExporterPort, postgresExporterQueriesYaml, watchedSettings } from "./exporters";
import { renderGrafanaDashboardJson } from "./grafana-dashboard";
import { planIndexes, renderIndexPlanSql } from "./hnsw";
import { memoryPlan } from "./memory";
import { renderMtailProgram } from "./mtail";
import { renderPgBouncerIni } from "./pgbouncer";
import { renderPgHba } from "./pg-hba";
import { parallelism, postgresqlSettingValues, renderPostgresqlConf } from "./postgresql";
import type { HookPlan, Rendered } from "./rendered";
import type { StackSpec, Target } from "./stack-spec";
import { parseBytes, parseDuration } from "./units";

/** Where the custom queries file sits in every target (container mount, local scratch dir is told separately). */
export const exporterQueriesPath = "/etc/pgstack/postgres-exporter-queries.yaml";

/** Runbooks as people read them: alerts link here with the alert's anchor. */
export const runbookBaseUrl = "https://github.com/pgvector-stack/pgvector-stack/blob/main/docs/runbooks.md";

/**
 * Metric sources each target deploys. A source a target does not run has no rules there, rather than rules that
 * could never fire (or an absent-guard that always fires).
 */
export function scrapeJobsFor(target: Target): ScrapeJobNames {
  const all = defaultScrapeJobNames;
  switch (target) {
    case "local":
      return all;
    case "docker":
    case "kubernetes":
      // Every source runs on every target: node_exporter and mtail beside PostgreSQL, the canary on its own.
      return all;
  }
}

/**
 * Where both container targets mount the data volume (components/docker/layout.ts, components/kubernetes/layout.ts),
 * in the postgres container and, read-only, in node_exporter's and mtail's. The disk alert watches this mount only:
 * node_exporter in a container also sees /etc/hosts and the like, bind mounts from the machine's root disk.
 */
export const containerDataMount = "/var/lib/postgresql/data";

/** The filesystems the disk alert watches: the data volume on the container targets, every real one on the perf host. */
export function diskMountpointsFor(target: Target): readonly string[] | undefined {
  return target === "local" ? undefined : [containerDataMount];
}

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

export function alertRulesInput(spec: StackSpec, settings: Readonly<Record<string, string>>, hugePages: "on" | "try" | "off"): AlertRulesInput {
  return {
    stack: spec.stack,
    thresholds: spec.alerts,
    jobs: scrapeJobsFor(spec.target),
    diskMountpoints: diskMountpointsFor(spec.target),
    runbookBaseUrl,
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

export function renderStack(spec: StackSpec): Rendered {
  const memory = memoryPlan(spec);
  const settings = postgresqlSettingValues(spec, memory);
  const indexPlan = planIndexes(spec.vectorTables, {
    maintenanceWorkMem: memory.rendered.maintenance_work_mem,
    maxParallelMaintenanceWorkers: parallelism(spec).maxParallelMaintenanceWorkers,
  });
  const rulesInput = alertRulesInput(spec, settings, memory.hugePagesMode);
  const postgresExporter = postgresExporterCommand({ database: spec.postgres.database, queriesPath: exporterQueriesPath });
  const pgbouncerExporter = pgbouncerExporterCommand();
  const hookPlan: HookPlan = {
    stack: spec.stack,
    database: spec.postgres.database,
    appUser: spec.postgres.appUser,
    indexPlan,
    benchmark: spec.benchmark,
  };
  return {
    spec,
    memory: {
      nodeMemoryBytes: spec.node.memoryBytes,
      sharedBuffersBytes: memory.sharedBuffersBytes,
      effectiveCacheSizeBytes: memory.effectiveCacheSizeBytes,
      workMemBytes: memory.workMemBytes,
      maintenanceWorkMemBytes: memory.maintenanceWorkMemBytes,
      sharedMemoryBytes: memory.sharedMemoryBytes,
      hugePages: memory.hugePages,
      hugePagesSetting: memory.hugePagesMode,
      worstCaseBytes: memory.worstCaseBytes,
    },
    files: {
      "postgresql.conf": renderPostgresqlConf(spec, memory),
      "pg_hba.conf": renderPgHba(),
      "pgbouncer.ini": renderPgBouncerIni(spec),
      "postgres-exporter-queries.yaml": postgresExporterQueriesYaml(),
      "alert-rules.yaml": renderAlertRulesYaml(rulesInput),
      "hnsw-plan.sql": renderIndexPlanSql(indexPlan),
      "plan.json": sortedJson(hookPlan),
      "postgresql.mtail": renderMtailProgram(),
      "grafana-dashboard.json": renderGrafanaDashboardJson({ stack: spec.stack, thresholds: spec.alerts, diskMountpoints: diskMountpointsFor(spec.target) }),
    },
    indexPlan,
    alertRuleGroups: renderAlertRules(rulesInput),
    exporters: {
      postgresExporterArgs: postgresExporter.args.filter((a) => !a.startsWith("--web.listen-address")),
      pgbouncerExporterArgs: pgbouncerExporter.args.filter((a) => !a.startsWith("--web.listen-address") && !a.startsWith("--pgBouncer.connectionString")),
      postgresExporterPort,
      pgbouncerExporterPort,
    },
    warnings: memory.warnings,
  };
}
