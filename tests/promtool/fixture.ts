/**
 * The rules the promtool tests run against: the default thresholds (the tuning guide's policy) for a stack named
 * `test`, rendered as `rules.yml` (the perf cluster's shape) and `rules-containers.yml` (Docker's and Kubernetes':
 * the disk rule on the data volume) next to copies of the test files, which name one of them in `rule_files`.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { defaultAlertThresholds, renderAlertRulesYaml, type AlertRulesInput } from "../../configs/alerts";
import { containerDataMount } from "../../configs/placement";
import { defaultScrapeJobNames } from "../../configs/scrape";

export const promtoolRulesFile = "rules.yml";
/** The same rules as the container targets render them: the disk rule on the data volume, and its guard. */
export const promtoolContainerRulesFile = "rules-containers.yml";

export const promtoolRulesInput: AlertRulesInput = {
  stack: "test",
  thresholds: defaultAlertThresholds,
  jobs: defaultScrapeJobNames,
  runbookBaseUrl: "https://runbooks.example/pgvector-stack/docs/runbooks.md",
  expectedSettings: { max_connections: 200, shared_buffers: 8589934592, work_mem: 268435456 },
  hugePages: "try",
  pgbouncer: { maxClientConn: 2000, defaultPoolSize: 100 },
};

export const promtoolContainerRulesInput: AlertRulesInput = { ...promtoolRulesInput, diskMountpoints: [containerDataMount] };

export const promtoolDir = __dirname;

/** The promtool test files of this folder, by file name. */
export function promtoolTestFiles(): Record<string, string> {
  const files: Record<string, string> = {};
  for (const name of fs.readdirSync(promtoolDir).filter((f) => f.endsWith(".yml")).sort()) {
    files[name] = fs.readFileSync(path.join(promtoolDir, name), "utf8");
  }
  return files;
}

/** Test files plus the rendered rules file: everything `promtool test rules` needs in one directory. */
export function promtoolWorkspace(): Record<string, string> {
  return {
    ...promtoolTestFiles(),
    [promtoolRulesFile]: renderAlertRulesYaml(promtoolRulesInput),
    [promtoolContainerRulesFile]: renderAlertRulesYaml(promtoolContainerRulesInput),
  };
}
