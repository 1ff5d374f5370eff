/**
 * The rendered rules under the real promtool 2.53: `check rules` on every stack's rules, then `test rules` for every file in
 * tests/promtool (each runs against rules.yml rendered with the default thresholds next to it), and the rendered
 * Prometheus config under `check config`.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { listStacks, loadStackSpec } from "../../cli/stack-file";
import { defaultAlertThresholds, renderAlertRulesYaml } from "../../configs/alerts";
import { renderStack } from "../../configs/render";
import { parseStackSpec, SpecError } from "../../configs/spec";
import { renderPrometheusConfigYaml } from "../../configs/scrape";
import { getRuntime, promtool, type Runtime } from "../../local/runtime";
import { promtoolRulesFile, promtoolRulesInput, promtoolTestFiles, promtoolWorkspace } from "../promtool/fixture";

const testFiles = Object.keys(promtoolTestFiles());

describe("alert rules under promtool 2.53", () => {
  let runtime: Runtime;
  beforeAll(async () => {
    runtime = await getRuntime();
  });

  it("uses promtool 2.53", () => {
    expect(runtime.versions.promtool).toMatch(/^2\.53\./);
  });

  it("has promtool test files", () => {
    expect(testFiles).toEqual(expect.arrayContaining(["canary.yml", "mtail.yml", "node.yml", "pgbouncer.yml", "postgres.yml", "targets.yml"]));
  });

  it("check rules accepts the rendered rules", async () => {
    const files = { [promtoolRulesFile]: renderAlertRulesYaml(promtoolRulesInput) };
    const result = await promtool(["check", "rules", promtoolRulesFile], files, runtime);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(/SUCCESS: \d+ rules found/);
  });

  it("check rules accepts the smallest rule set too (no node, canary, mtail; huge pages off)", async () => {
    const rules = renderAlertRulesYaml({
      ...promtoolRulesInput,
      jobs: { ...promtoolRulesInput.jobs, node: null, canary: null, mtail: null },
      hugePages: "off",
      expectedSettings: {},
      maintenanceApplications: [],
      diskMountpoints: ["/var/lib/postgresql"],
    });
    const result = await promtool(["check", "rules", "small.yml"], { "small.yml": rules }, runtime);
    expect(result.code, result.stdout + result.stderr).toBe(0);
  });

  // What each stack deploys: the rules file in its rendered/ snapshot is what `render` writes for the Pulumi file.
  it.each(listStacks())("check rules accepts stack %s's rendered alert-rules.yaml", async (stack) => {
    const rules = renderStack(loadStackSpec(stack)).files["alert-rules.yaml"];
    const result = await promtool(["check", "rules", "alert-rules.yaml"], { "alert-rules.yaml": rules }, runtime);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(/SUCCESS: \d+ rules found/);
  });

  // The gate's promise for alerts.labels and alerts.runbookBaseUrl: what it accepts, Prometheus loads (labels and
  // annotations are templates to Prometheus); what Prometheus would refuse, it refuses.
  it("check rules accepts routing labels and a runbook URL the gate accepts, and the gate refuses what promtool would", async () => {
    const alerts = { labels: { team: "search", route: "db-oncall/pager" }, runbookBaseUrl: "https://wiki.example.com/db/runbooks?from=pgstack" };
    const spec = parseStackSpec("labelled", { target: "local", node: { memory: "8Gi", cpus: 2 }, alerts });
    const rules = renderStack(spec).files["alert-rules.yaml"];
    const result = await promtool(["check", "rules", "alert-rules.yaml"], { "alert-rules.yaml": rules }, runtime);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(rules).toContain("team: search");
    expect(rules).toContain("runbook_url: https://wiki.example.com/db/runbooks?from=pgstack#");
    for (const bad of [{ labels: { team: "{{ oops" } }, { runbookBaseUrl: "https://x.example/{{oops" }]) {
      expect(() => parseStackSpec("labelled", { target: "local", node: { memory: "8Gi", cpus: 2 }, alerts: bad }), JSON.stringify(bad)).toThrow(SpecError);
    }
  });

  it.each(testFiles)("test rules %s passes against the rules rendered with the default thresholds", async (file) => {
    const result = await promtool(["test", "rules", file], promtoolWorkspace(), runtime);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain("SUCCESS");
  });

  // The tests are bound to the thresholds: rules rendered with other values must fail them.
  it("test rules fails when the rules are rendered with other thresholds", async () => {
    const files = {
      ...promtoolWorkspace(),
      [promtoolRulesFile]: renderAlertRulesYaml({
        ...promtoolRulesInput,
        thresholds: { ...defaultAlertThresholds, poolUtilizationWarning: 0.85, cacheHitRatioMin: 0.9 },
      }),
    };
    const result = await promtool(["test", "rules", "pgbouncer.yml", "postgres.yml"], files, runtime);
    expect(result.code).not.toBe(0);
    expect(result.stdout + result.stderr).toMatch(/alertname: PgBouncerPoolUtilizationHigh/);
    expect(result.stdout + result.stderr).toMatch(/alertname: PostgresCacheHitRatioLow/);
  });

  it("check config accepts the rendered Prometheus config with its rule file", async () => {
    const config = renderPrometheusConfigYaml({
      stack: "test",
      targets: {
        postgres: ["127.0.0.1:9187"],
        pgbouncer: ["127.0.0.1:9127"],
        node: ["127.0.0.1:9100"],
        canary: ["127.0.0.1:9464"],
        mtail: ["127.0.0.1:3903"],
      },
      ruleFiles: [promtoolRulesFile],
    });
    const files = { "prometheus.yml": config, [promtoolRulesFile]: renderAlertRulesYaml(promtoolRulesInput) };
    const result = await promtool(["check", "config", "prometheus.yml"], files, runtime);
    expect(result.code, result.stdout + result.stderr).toBe(0);
  });
});
