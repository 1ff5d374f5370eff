import yaml from "js-yaml";
import { describe, expect, it } from "vitest";
import {
  canaryJob,
  defaultScrapeJobNames,
  jobNamesFor,
  mtailJob,
  nodeJob,
  pgbouncerJob,
  postgresJob,
  renderPrometheusConfig,
  renderPrometheusConfigYaml,
  type PrometheusConfigInput,
} from "../../configs/scrape";

const input: PrometheusConfigInput = {
  stack: "perf",
  targets: {
    postgres: ["127.0.0.1:9187"],
    pgbouncer: ["127.0.0.1:9127"],
    node: ["127.0.0.1:9100"],
    canary: ["127.0.0.1:9464"],
    mtail: ["127.0.0.1:3903"],
  },
  ruleFiles: ["rules/pgvector-stack.yml"],
};

describe("Prometheus scrape config", () => {
  it("has the job names the alert rules guard", () => {
    expect([postgresJob, pgbouncerJob, nodeJob, canaryJob, mtailJob]).toEqual(["postgres", "pgbouncer", "node", "canary", "mtail"]);
    expect(defaultScrapeJobNames).toEqual({ postgres: "postgres", pgbouncer: "pgbouncer", node: "node", canary: "canary", mtail: "mtail" });
  });

  it("renders one job per source, each target labelled with the stack", () => {
    expect(renderPrometheusConfig(input)).toEqual({
      global: { scrape_interval: "15s", scrape_timeout: "10s", evaluation_interval: "15s" },
      rule_files: ["rules/pgvector-stack.yml"],
      scrape_configs: [
        { job_name: "postgres", static_configs: [{ targets: ["127.0.0.1:9187"], labels: { stack: "perf" } }] },
        { job_name: "pgbouncer", static_configs: [{ targets: ["127.0.0.1:9127"], labels: { stack: "perf" } }] },
        { job_name: "node", static_configs: [{ targets: ["127.0.0.1:9100"], labels: { stack: "perf" } }] },
        { job_name: "canary", static_configs: [{ targets: ["127.0.0.1:9464"], labels: { stack: "perf" } }] },
        { job_name: "mtail", static_configs: [{ targets: ["127.0.0.1:3903"], labels: { stack: "perf" } }] },
      ],
    });
  });

  it("is deterministic YAML with sorted keys and sorted targets", () => {
    const shuffled = { ...input, targets: { ...input.targets, postgres: ["127.0.0.2:9187", "127.0.0.1:9187"] } };
    const text = renderPrometheusConfigYaml(shuffled);
    expect(text).toBe(renderPrometheusConfigYaml({ ...shuffled, targets: { ...shuffled.targets, postgres: ["127.0.0.1:9187", "127.0.0.2:9187"] } }));
    expect(yaml.dump(yaml.load(text), { sortKeys: true, lineWidth: -1 })).toBe(text);
    expect(text.startsWith("global:\n  evaluation_interval: 15s\n")).toBe(true);
  });

  it("leaves out sources without targets, and jobNamesFor tells the alert rules the same", () => {
    const small = { ...input, targets: { postgres: ["127.0.0.1:9187"], pgbouncer: ["127.0.0.1:9127"] } };
    expect(renderPrometheusConfig(small).scrape_configs.map((c) => c.job_name)).toEqual(["postgres", "pgbouncer"]);
    expect(jobNamesFor(small.targets)).toEqual({ postgres: "postgres", pgbouncer: "pgbouncer", node: null, canary: null, mtail: null });
    expect(jobNamesFor(input.targets)).toEqual(defaultScrapeJobNames);
  });

  it("uses the intervals and job names it is given", () => {
    const config = renderPrometheusConfig({
      ...input,
      scrapeInterval: "5s",
      scrapeTimeout: "4s",
      evaluationInterval: "5s",
      jobNames: { ...defaultScrapeJobNames, postgres: "db" },
    });
    expect(config.global).toEqual({ scrape_interval: "5s", scrape_timeout: "4s", evaluation_interval: "5s" });
    expect(config.scrape_configs[0].job_name).toBe("db");
  });

  it.each([
    [{ stack: "a b" }, /stack "a b" must be letters/],
    [{ scrapeInterval: "15 seconds" }, /scrapeInterval "15 seconds" is not a Prometheus duration/],
    [{ targets: { postgres: [], pgbouncer: ["127.0.0.1:9127"] } }, /targets\.postgres is empty/],
    [{ targets: { postgres: ["http://127.0.0.1:9187"], pgbouncer: ["127.0.0.1:9127"] } }, /targets\.postgres "http:\/\/127\.0\.0\.1:9187" is not host:port/],
    [{ jobNames: { ...defaultScrapeJobNames, mtail: null } }, /targets\.mtail are given but jobNames\.mtail is null/],
  ] as [Partial<PrometheusConfigInput>, RegExp][])("refuses %j", (change, message) => {
    expect(() => renderPrometheusConfig({ ...input, ...change })).toThrow(message);
  });
});
