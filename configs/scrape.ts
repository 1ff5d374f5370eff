/**
 * The Prometheus configuration: one scrape job per metric source, the rule files, the evaluation interval.
 * Every target carries a `stack` label; the alert rules select on it, so several stacks can share one Prometheus
 * without one stack's rules judging another stack's series.
 */
import yaml from "js-yaml";

/** Prometheus's own port (its UI and API); Docker publishes it as docker.ports.prometheus. */
export const prometheusPort = 9090;

/**
 * Scrape job names. The alert rules' `up`/`absent` guards name these jobs, so a target scraped under another job
 * name (a PodMonitor without `jobLabel`, say) is reported absent instead of silently unwatched.
 */
export const postgresJob = "postgres";
export const pgbouncerJob = "pgbouncer";
export const nodeJob = "node";
export const canaryJob = "canary";
export const mtailJob = "mtail";

/** The job name of each metric source; `null` where the stack does not run that source (its rules are left out). */
export interface ScrapeJobNames {
  /** postgres_exporter. */
  readonly postgres: string;
  /** pgbouncer_exporter. */
  readonly pgbouncer: string;
  /** node_exporter on the database host. */
  readonly node: string | null;
  /** The synthetic canary (see docs/runbooks.md, "Metric sources"). */
  readonly canary: string | null;
  /** mtail over PostgreSQL's slow-query log. */
  readonly mtail: string | null;
}

export const defaultScrapeJobNames: ScrapeJobNames = {
  postgres: postgresJob,
  pgbouncer: pgbouncerJob,
  node: nodeJob,
  canary: canaryJob,
  mtail: mtailJob,
};

/** `host:port` targets per source. A source without targets gets no job (and `jobNamesFor` gives it `null`). */
export interface ScrapeTargets {
  readonly postgres: readonly string[];
  readonly pgbouncer: readonly string[];
  readonly node?: readonly string[];
  readonly canary?: readonly string[];
  readonly mtail?: readonly string[];
}

export interface PrometheusConfigInput {
  /** Stack name, put on every target as the `stack` label. */
  readonly stack: string;
  readonly targets: ScrapeTargets;
  /** Rule files as Prometheus will see them (paths relative to the config file or absolute). */
  readonly ruleFiles: readonly string[];
  /** Defaults to 15s. */
  readonly scrapeInterval?: string;
  /** Defaults to 15s: the alert rules' smallest `for` is 1m, so four evaluations per minute. */
  readonly evaluationInterval?: string;
  /** Defaults to 10s (below the scrape interval, as Prometheus requires). */
  readonly scrapeTimeout?: string;
  /** Defaults to `defaultScrapeJobNames`. */
  readonly jobNames?: ScrapeJobNames;
}

export interface ScrapeConfig {
  readonly job_name: string;
  readonly static_configs: readonly { readonly targets: readonly string[]; readonly labels: Readonly<Record<string, string>> }[];
}

export interface PrometheusConfig {
  readonly global: { readonly scrape_interval: string; readonly scrape_timeout: string; readonly evaluation_interval: string };
  readonly rule_files: readonly string[];
  readonly scrape_configs: readonly ScrapeConfig[];
}

const sources = ["postgres", "pgbouncer", "node", "canary", "mtail"] as const;
type Source = (typeof sources)[number];

/** The program behind each scrape job (configs/launches.ts names them so). */
export type MetricSource = "postgresExporter" | "pgbouncerExporter" | "nodeExporter" | "canary" | "mtail";

/** Which program each job scrapes. */
export const jobSources: Readonly<Record<Source, MetricSource>> = {
  postgres: "postgresExporter",
  pgbouncer: "pgbouncerExporter",
  node: "nodeExporter",
  canary: "canary",
  mtail: "mtail",
};

const promDuration = /^(\d+(ms|s|m|h|d|w|y))+$/;
/** Prometheus label values are free text, but the stack name also ends up inside PromQL string literals. */
const stackName = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const target = /^[^\s/]+:\d{1,5}$/;

/** The job names for the sources that have targets: what `renderAlertRules` should be given for this config. */
export function jobNamesFor(targets: ScrapeTargets, jobNames: ScrapeJobNames = defaultScrapeJobNames): ScrapeJobNames {
  const has = (s: Source): boolean => (targets[s]?.length ?? 0) > 0;
  return {
    postgres: jobNames.postgres,
    pgbouncer: jobNames.pgbouncer,
    node: has("node") ? jobNames.node : null,
    canary: has("canary") ? jobNames.canary : null,
    mtail: has("mtail") ? jobNames.mtail : null,
  };
}

export function renderPrometheusConfig(input: PrometheusConfigInput): PrometheusConfig {
  const problems: string[] = [];
  if (!stackName.test(input.stack)) problems.push(`stack "${input.stack}" must be letters, digits, _ . - (it becomes the stack label)`);
  const scrapeInterval = input.scrapeInterval ?? "15s";
  const evaluationInterval = input.evaluationInterval ?? "15s";
  const scrapeTimeout = input.scrapeTimeout ?? "10s";
  for (const [key, value] of [
    ["scrapeInterval", scrapeInterval],
    ["evaluationInterval", evaluationInterval],
    ["scrapeTimeout", scrapeTimeout],
  ] as const) {
    if (!promDuration.test(value)) problems.push(`${key} "${value}" is not a Prometheus duration; write e.g. 15s`);
  }
  const jobNames = input.jobNames ?? defaultScrapeJobNames;
  for (const s of ["postgres", "pgbouncer"] as const) {
    if (input.targets[s].length === 0) problems.push(`targets.${s} is empty; the ${s} exporter is part of every stack`);
  }
  for (const s of sources) {
    for (const t of input.targets[s] ?? []) {
      if (!target.test(t)) problems.push(`targets.${s} "${t}" is not host:port`);
    }
    if ((input.targets[s]?.length ?? 0) > 0 && jobNames[s] === null) problems.push(`targets.${s} are given but jobNames.${s} is null`);
  }
  if (problems.length > 0) throw new Error(`Prometheus config: ${problems.join("; ")}`);

  const scrapeConfigs: ScrapeConfig[] = [];
  for (const s of sources) {
    const targets = input.targets[s] ?? [];
    const job = jobNames[s];
    if (targets.length === 0 || job === null) continue;
    scrapeConfigs.push({ job_name: job, static_configs: [{ targets: [...targets].sort(), labels: { stack: input.stack } }] });
  }
  return {
    global: { scrape_interval: scrapeInterval, scrape_timeout: scrapeTimeout, evaluation_interval: evaluationInterval },
    rule_files: [...input.ruleFiles],
    scrape_configs: scrapeConfigs,
  };
}

/** prometheus.yml text: sorted keys, no line folding, same input → same bytes. */
export function renderPrometheusConfigYaml(input: PrometheusConfigInput): string {
  return yaml.dump(renderPrometheusConfig(input), { sortKeys: true, lineWidth: -1, noRefs: true });
}
