import * as fs from "node:fs";
import * as path from "node:path";
import yaml from "js-yaml";
import { describe, expect, it } from "vitest";
import {
  alertThresholdProblems,
  defaultAlertThresholds,
  isAlertingRule,
  renderAlertRules,
  renderAlertRulesYaml,
  type AlertingRule,
  type AlertRulesInput,
  type AlertThresholds,
  type RuleGroups,
} from "../../configs/alerts";
import { promtoolContainerRulesInput, promtoolDir, promtoolRulesInput } from "../promtool/fixture";
import { selectorsOfRules } from "../promtool/metric-names";

const input = promtoolRulesInput;
const alerts = (rules: RuleGroups): AlertingRule[] => rules.groups.flatMap((g) => g.rules.filter(isAlertingRule));
const find = (rules: RuleGroups, name: string, severity?: string): AlertingRule[] =>
  alerts(rules).filter((a) => a.alert === name && (severity === undefined || a.labels.severity === severity));

describe("defaultAlertThresholds", () => {
  // The tuning guide's "Alert Configuration" and "Performance Monitoring" targets, one row per policy item.
  it.each([
    ["poolUtilizationWarning", 0.7, "poolUtilizationWarningFor", "5m"],
    ["poolUtilizationCritical", 0.9, "poolUtilizationCriticalFor", "2m"],
    ["clientWaitSeconds", 0.1, null, null],
    ["connectionFailureRatio", 0.01, null, null],
    ["vectorQueryP95Seconds", 0.2, null, null],
    ["queryP99Seconds", 0.5, null, null],
    ["slowQueriesPerMinute", 10, null, null],
    ["memoryWarning", 0.8, null, null],
    ["memoryCritical", 0.95, null, null],
    ["cpuWarning", 0.8, "cpuWarningFor", "10m"],
    ["diskCritical", 0.9, null, null],
    ["cacheHitRatioMin", 0.99, null, null],
    ["indexHitRatioMin", 0.95, null, null],
    ["longTransactionAge", "5m", null, null],
  ] as const)("%s is the guide's %s", (key, value, forKey, forValue) => {
    expect(defaultAlertThresholds[key]).toBe(value);
    if (forKey !== null) expect(defaultAlertThresholds[forKey]).toBe(forValue);
  });

  it("is what configs/spec.ts can read: numbers, or durations of one unit", () => {
    for (const [key, value] of Object.entries(defaultAlertThresholds)) {
      if (typeof value === "string") expect(value, key).toMatch(/^\d+[smhd]$/);
      else expect(typeof value, key).toBe("number");
    }
    expect(alertThresholdProblems(defaultAlertThresholds)).toEqual([]);
  });
});

describe("renderAlertRules", () => {
  const rules = renderAlertRules(input);

  it("renders the same bytes for the same input, whatever the order of its keys", () => {
    const reordered: AlertRulesInput = {
      ...input,
      expectedSettings: Object.fromEntries(Object.entries(input.expectedSettings).reverse()),
      thresholds: Object.fromEntries(Object.entries(input.thresholds).reverse()) as unknown as AlertThresholds,
    };
    expect(renderAlertRulesYaml(reordered)).toBe(renderAlertRulesYaml(input));
    expect(renderAlertRulesYaml(input)).toBe(renderAlertRulesYaml(input));
  });

  it("writes YAML with sorted keys that loads back to the rule object", () => {
    const text = renderAlertRulesYaml(input);
    expect(yaml.load(text)).toEqual(JSON.parse(JSON.stringify(rules)));
    expect(yaml.dump(yaml.load(text), { sortKeys: true, lineWidth: -1, noRefs: true })).toBe(text);
  });

  it("names groups after the stack, so several stacks can share one Prometheus", () => {
    expect(rules.groups.map((g) => g.name)).toEqual([
      "pgstack-test-pgbouncer",
      "pgstack-test-postgres",
      "pgstack-test-canary",
      "pgstack-test-mtail",
      "pgstack-test-node",
      "pgstack-test-targets",
    ]);
  });

  it("has the policy's alerts, each from its source, with the severities the guide gives", () => {
    const list = alerts(rules).map((a) => `${a.alert} ${a.labels.severity}`);
    expect(list.sort()).toEqual(
      [
        "AuthenticationFailureBurst warning",
        "CanaryConnectionFailures critical",
        "CertificateExpiresSoon critical",
        "CertificateExpiresSoon warning",
        "HostCpuUsageHigh warning",
        "HostDiskUsageHigh critical",
        "HostMemoryUsageHigh critical",
        "HostMemoryUsageHigh warning",
        "PgBouncerClientConnectionsNearLimit critical",
        "PgBouncerClientConnectionsNearLimit warning",
        "PgBouncerClientWaitHigh warning",
        "PgBouncerClientsWaiting warning",
        "PgBouncerDown critical",
        "PgBouncerLogNotFollowed warning",
        "PgBouncerPoolUtilizationHigh critical",
        "PgBouncerPoolUtilizationHigh warning",
        "PgBouncerSettingsDrift warning",
        "PostgresCacheHitRatioLow warning",
        "PostgresConnectionsNearMax critical",
        "PostgresConnectionsNearMax warning",
        "PostgresDown critical",
        "PostgresExporterErrors warning",
        "PostgresHnswIndexInvalid warning",
        "PostgresHugePagesNotInUse warning",
        "PostgresIndexHitRatioLow warning",
        "PostgresLogNotFollowed warning",
        "PostgresLongRunningTransaction warning",
        "PostgresPendingRestart warning",
        "PostgresSettingsDrift warning",
        "PostgresSlowQueries warning",
        "QueryLatencyP99High critical",
        "ScrapeJobAbsent critical",
        "ScrapeJobAbsent warning",
        "ScrapeTargetDown critical",
        "ScrapeTargetDown warning",
        "VectorQueryLatencyP95High warning",
      ].sort(),
    );
  });

  it("gives every alert severity, stack, summary, a description with the value, and a runbook anchor", () => {
    for (const a of alerts(rules)) {
      expect(Object.keys(a.labels).sort(), a.alert).toEqual(["severity", "stack"]);
      expect(["warning", "critical"]).toContain(a.labels.severity);
      expect(a.labels.stack).toBe("test");
      expect(a.annotations.summary, a.alert).not.toBe("");
      expect(a.annotations.description, a.alert).toMatch(/\{\{ \$value|\{\{ \$labels\.value/);
      expect(a.annotations.runbook_url).toBe(`${input.runbookBaseUrl}#${a.alert.toLowerCase()}`);
    }
  });

  it("has a runbook section in docs/runbooks.md for every alert", () => {
    const runbooks = fs.readFileSync(path.join(__dirname, "../../docs/runbooks.md"), "utf8");
    const headings = new Set([...runbooks.matchAll(/^## (\S+)\s*$/gm)].map((m) => m[1].toLowerCase()));
    const names = [...alerts(rules), ...alerts(renderAlertRules(promtoolContainerRulesInput))].map((a) => a.alert);
    for (const name of new Set(names)) expect(headings.has(name.toLowerCase()), name).toBe(true);
  });

  it("matches stack=\"<stack>\" in every selector but absent()'s job guards' own", () => {
    for (const s of selectorsOfRules(rules)) {
      expect(s.matchers, `${s.rule}: ${s.metric}`).toContainEqual({ label: "stack", op: "=", value: "test" });
    }
    for (const g of rules.groups) for (const r of g.rules) if (!isAlertingRule(r)) expect(r.labels).toEqual({ stack: "test" });
  });

  it("guards every scrape job with up == 0 and absent(up)", () => {
    const down = find(rules, "ScrapeTargetDown").map((a) => a.expr);
    const absent = find(rules, "ScrapeJobAbsent").map((a) => a.expr).join("\n");
    expect(down).toEqual(['up{job=~"postgres|pgbouncer",stack="test"} == 0', 'up{job=~"node|canary|mtail",stack="test"} == 0']);
    for (const job of ["postgres", "pgbouncer", "node", "canary", "mtail"]) expect(absent).toContain(`absent(up{job="${job}",stack="test"})`);
  });

  it("leaves out the rules of sources the stack does not run, and the huge-pages rule when huge_pages is off", () => {
    const small = renderAlertRules({ ...input, jobs: { ...input.jobs, node: null, canary: null, mtail: null }, hugePages: "off" });
    expect(small.groups.map((g) => g.name)).toEqual(["pgstack-test-pgbouncer", "pgstack-test-postgres", "pgstack-test-targets"]);
    expect(find(small, "PostgresHugePagesNotInUse")).toEqual([]);
    expect(find(small, "ScrapeJobAbsent").map((a) => a.labels.severity)).toEqual(["critical"]);
    expect(find(small, "PostgresSettingsDrift")[0].expr).toContain('name="huge_pages",value!="off"');
  });

  it("uses the stack's job names", () => {
    const renamed = renderAlertRules({ ...input, jobs: { ...input.jobs, postgres: "db", pgbouncer: "pooler" } });
    expect(find(renamed, "ScrapeTargetDown", "critical")[0].expr).toBe('up{job=~"db|pooler",stack="test"} == 0');
  });

  it("compares every expected setting, huge_pages included, and excludes maintenance sessions from the long-transaction rule", () => {
    const drift = find(rules, "PostgresSettingsDrift")[0].expr;
    expect(drift).toContain('pgstack_settings_info{name="shared_buffers",value!="8589934592",stack="test"}');
    expect(drift).toContain('pgstack_settings_info{name="work_mem",value!="268435456",stack="test"}');
    expect(drift).toContain('pgstack_settings_info{name="max_connections",value!="200",stack="test"}');
    expect(drift).toContain('pgstack_settings_info{name="huge_pages",value!="try",stack="test"}');
    expect(find(rules, "PgBouncerSettingsDrift")[0].expr).toContain("pgbouncer_config_max_client_connections{stack=\"test\"} != 2000");
    expect(find(rules, "PostgresLongRunningTransaction")[0].expr).toContain('application_name!~"pgstack-postdeploy"');
    const custom = renderAlertRules({ ...input, maintenanceApplications: ["pgstack.hook", "ops"], diskMountpoints: ["/var/lib/postgresql"] });
    expect(find(custom, "PostgresLongRunningTransaction")[0].expr).toContain('application_name!~"pgstack\\\\.hook|ops"');
    expect(find(custom, "HostDiskUsageHigh")[0].expr).toContain('mountpoint=~"/var/lib/postgresql"');
  });
});

describe("threshold plumbing: a changed threshold changes its rule, and only its rule", () => {
  // key → the alert (and severity) it belongs to, and the text the new value must show up as.
  const rows: [keyof AlertThresholds, number | string, string | string[], string | undefined, string][] = [
    ["poolUtilizationWarning", 0.65, "PgBouncerPoolUtilizationHigh", "warning", "> 0.65"],
    ["poolUtilizationWarningFor", "7m", "PgBouncerPoolUtilizationHigh", "warning", "for 7m"],
    ["poolUtilizationCritical", 0.85, "PgBouncerPoolUtilizationHigh", "critical", "> 0.85"],
    ["poolUtilizationCriticalFor", "3m", "PgBouncerPoolUtilizationHigh", "critical", "for 3m"],
    ["clientWaitSeconds", 0.25, "PgBouncerClientWaitHigh", undefined, "> 0.25"],
    ["clientWaitFor", "7m", "PgBouncerClientWaitHigh", undefined, "for 7m"],
    ["clientsWaiting", 5, "PgBouncerClientsWaiting", undefined, "> 5"],
    ["clientsWaitingFor", "7m", "PgBouncerClientsWaiting", undefined, "for 7m"],
    ["clientConnectionsWarning", 0.75, "PgBouncerClientConnectionsNearLimit", "warning", "> 0.75"],
    ["clientConnectionsWarningFor", "7m", "PgBouncerClientConnectionsNearLimit", "warning", "for 7m"],
    ["clientConnectionsCritical", 0.9, "PgBouncerClientConnectionsNearLimit", "critical", "> 0.9"],
    ["clientConnectionsCriticalFor", "3m", "PgBouncerClientConnectionsNearLimit", "critical", "for 3m"],
    ["connectionFailureRatio", 0.05, "CanaryConnectionFailures", undefined, "> 0.05"],
    ["connectionFailureFor", "7m", ["CanaryConnectionFailures", "AuthenticationFailureBurst"], undefined, "for 7m"],
    ["certificateExpiryWarning", "14d", "CertificateExpiresSoon", "warning", "< 1209600"],
    ["certificateExpiryCritical", "2d", "CertificateExpiresSoon", "critical", "< 172800"],
    ["certificateExpiryFor", "30m", "CertificateExpiresSoon", undefined, "for 30m"],
    ["vectorQueryP95Seconds", 0.1, "VectorQueryLatencyP95High", undefined, "> 0.1"],
    ["vectorQueryP95For", "7m", "VectorQueryLatencyP95High", undefined, "for 7m"],
    ["queryP99Seconds", 0.3, "QueryLatencyP99High", undefined, "> 0.3"],
    ["queryP99For", "7m", "QueryLatencyP99High", undefined, "for 7m"],
    ["slowQueriesPerMinute", 30, "PostgresSlowQueries", undefined, "* 60 > 30"],
    ["slowQueriesFor", "7m", "PostgresSlowQueries", undefined, "for 7m"],
    ["memoryWarning", 0.7, "HostMemoryUsageHigh", "warning", "> 0.7"],
    ["memoryWarningFor", "7m", "HostMemoryUsageHigh", "warning", "for 7m"],
    ["memoryCritical", 0.9, "HostMemoryUsageHigh", "critical", "> 0.9"],
    ["memoryCriticalFor", "3m", "HostMemoryUsageHigh", "critical", "for 3m"],
    ["cpuWarning", 0.9, "HostCpuUsageHigh", undefined, "> 0.9"],
    ["cpuWarningFor", "20m", "HostCpuUsageHigh", undefined, "for 20m"],
    ["diskCritical", 0.85, "HostDiskUsageHigh", undefined, "> 0.85"],
    ["diskCriticalFor", "7m", "HostDiskUsageHigh", undefined, "for 7m"],
    ["cacheHitRatioMin", 0.98, "PostgresCacheHitRatioLow", undefined, "< 0.98"],
    ["cacheHitRatioFor", "30m", "PostgresCacheHitRatioLow", undefined, "for 30m"],
    ["indexHitRatioMin", 0.9, "PostgresIndexHitRatioLow", undefined, "< 0.9"],
    ["indexHitRatioFor", "30m", "PostgresIndexHitRatioLow", undefined, "for 30m"],
    ["longTransactionAge", "10m", "PostgresLongRunningTransaction", undefined, "> 600"],
    ["longTransactionFor", "3m", "PostgresLongRunningTransaction", undefined, "for 3m"],
    ["pgConnectionsWarning", 0.7, "PostgresConnectionsNearMax", "warning", "> 0.7"],
    ["pgConnectionsWarningFor", "7m", "PostgresConnectionsNearMax", "warning", "for 7m"],
    ["pgConnectionsCritical", 0.9, "PostgresConnectionsNearMax", "critical", "> 0.9"],
    ["pgConnectionsCriticalFor", "3m", "PostgresConnectionsNearMax", "critical", "for 3m"],
    ["unavailableFor", "3m", ["PostgresDown", "PgBouncerDown"], undefined, "for 3m"],
    ["pendingRestartFor", "1h", "PostgresPendingRestart", undefined, "for 1h"],
    ["hugePagesNotInUseFor", "7m", "PostgresHugePagesNotInUse", undefined, "for 7m"],
    ["settingsDriftFor", "20m", ["PostgresSettingsDrift", "PgBouncerSettingsDrift"], undefined, "for 20m"],
    ["hnswIndexInvalidFor", "7m", "PostgresHnswIndexInvalid", undefined, "for 7m"],
    ["exporterErrorsFor", "20m", "PostgresExporterErrors", undefined, "for 20m"],
    ["targetDownFor", "7m", "ScrapeTargetDown", undefined, "for 7m"],
    ["jobAbsentFor", "10m", "ScrapeJobAbsent", undefined, "for 10m"],
    ["logSilenceFor", "30m", ["PostgresLogNotFollowed", "PgBouncerLogNotFollowed"], undefined, "[30m])) == 0 for 30m"],
  ];

  const base = renderAlertRules(input);
  const shape = (a: AlertingRule): string => `${a.expr} for ${a.for}`;

  it("covers every threshold key except the shared ones tested below", () => {
    const shared = ["rateWindow", "hitRatioGraceAfterRestart", "diskUnwatchedFor"];
    expect([...rows.map((r) => r[0]), ...shared].sort()).toEqual(Object.keys(defaultAlertThresholds).sort());
  });

  it.each(rows)("%s = %s changes %s (%s) to show %s", (key, value, alert, severity, expected) => {
    const names = typeof alert === "string" ? [alert] : alert;
    const mine = (a: AlertingRule): boolean => names.includes(a.alert) && (severity === undefined || a.labels.severity === severity);
    const changed = renderAlertRules({ ...input, thresholds: { ...defaultAlertThresholds, [key]: value } });
    const targets = alerts(changed).filter(mine);
    expect(targets.map((t) => t.alert).sort()).toEqual(alerts(base).filter(mine).map((t) => t.alert).sort());
    expect(targets.length).toBeGreaterThanOrEqual(names.length);
    for (const t of targets) expect(shape(t)).toContain(expected);
    // Every other alert is untouched.
    const others = (rules: RuleGroups): string[] => alerts(rules).filter((a) => !mine(a)).map(shape);
    expect(others(changed)).toEqual(others(base));
  });

  it("diskUnwatchedFor changes the data volume guard of the container targets' rules, and only it", () => {
    const containers = renderAlertRules(promtoolContainerRulesInput);
    const changed = renderAlertRules({ ...promtoolContainerRulesInput, thresholds: { ...defaultAlertThresholds, diskUnwatchedFor: "30m" } });
    expect(find(containers, "HostDiskUnwatched").map((a) => a.for)).toEqual(["10m"]);
    expect(find(changed, "HostDiskUnwatched").map((a) => a.for)).toEqual(["30m"]);
    const others = (rules: RuleGroups): string[] => alerts(rules).filter((a) => a.alert !== "HostDiskUnwatched").map(shape);
    expect(others(changed)).toEqual(others(containers));
    // The perf cluster's rules watch every real filesystem: no mount point to guard.
    expect(find(base, "HostDiskUnwatched")).toEqual([]);
  });

  it("quotes the thresholds in the descriptions", () => {
    const changed = renderAlertRules({ ...input, thresholds: { ...defaultAlertThresholds, poolUtilizationWarning: 0.65, clientWaitSeconds: 0.25 } });
    expect(find(changed, "PgBouncerPoolUtilizationHigh", "warning")[0].annotations.description).toContain("above 65% of its pool_size for 5m");
    expect(find(changed, "PgBouncerClientWaitHigh")[0].annotations.description).toContain("above 250ms for 5m");
  });

  it("rateWindow changes every rate() and quantile window", () => {
    const changed = renderAlertRulesYaml({ ...input, thresholds: { ...defaultAlertThresholds, rateWindow: "10m" } });
    expect(changed).not.toContain("[5m]");
    expect(changed.match(/\[10m\]/g)?.length).toBe(renderAlertRulesYaml(input).match(/\[5m\]/g)?.length);
  });

  it("hitRatioGraceAfterRestart changes the restart grace of both hit-ratio rules", () => {
    const changed = renderAlertRules({ ...input, thresholds: { ...defaultAlertThresholds, hitRatioGraceAfterRestart: "1h" } });
    for (const name of ["PostgresCacheHitRatioLow", "PostgresIndexHitRatioLow"]) {
      expect(find(base, name)[0].expr).toContain("< 1800)");
      expect(find(changed, name)[0].expr).toContain("< 3600)");
    }
  });

  it("expected PgBouncer values change the PgBouncer drift rule", () => {
    const changed = renderAlertRules({ ...input, pgbouncer: { maxClientConn: 5000, defaultPoolSize: 50 } });
    expect(find(changed, "PgBouncerSettingsDrift")[0].expr).toContain("!= 5000");
    expect(find(changed, "PgBouncerSettingsDrift")[0].expr).toContain("!= 50,");
  });
});

describe("input validation", () => {
  it.each([
    [{ thresholds: { ...defaultAlertThresholds, poolUtilizationWarning: 70 } }, /alerts\.poolUtilizationWarning 70 is not a fraction/],
    [{ thresholds: { ...defaultAlertThresholds, poolUtilizationWarning: 0.95 } }, /alerts\.poolUtilizationWarning 0\.95 must be below alerts\.poolUtilizationCritical 0\.9/],
    [{ thresholds: { ...defaultAlertThresholds, cpuWarningFor: "10 minutes" } }, /alerts\.cpuWarningFor "10 minutes" is not a duration/],
    [{ thresholds: { ...defaultAlertThresholds, clientsWaiting: 1.5 } }, /alerts\.clientsWaiting 1\.5 must be a whole number/],
    [{ expectedSettings: { shared_bufers: 1 } }, /expectedSettings\.shared_bufers: postgres_exporter does not report it/],
    [{ expectedSettings: { huge_pages: "on" } }, /expectedSettings\.huge_pages: comes from hugePages/],
    [{ expectedSettings: { work_mem: 'x"}' } }, /expectedSettings\.work_mem .* is not a plain setting value/],
    [{ runbookBaseUrl: "https://x.example/runbooks.md#top" }, /runbookBaseUrl .* without a #fragment/],
    [{ stack: 'prod"' }, /stack "prod"" must be letters/],
    [{ pgbouncer: { maxClientConn: 0, defaultPoolSize: 100 } }, /pgbouncer\.maxClientConn 0 must be a whole number/],
  ] as [Partial<AlertRulesInput>, RegExp][])("refuses %j", (change, message) => {
    expect(() => renderAlertRules({ ...input, ...change })).toThrow(message);
  });

  it("reports every problem at once", () => {
    const bad = { ...defaultAlertThresholds, memoryWarning: 2, diskCriticalFor: "soon" };
    expect(alertThresholdProblems(bad)).toEqual([
      'alerts.diskCriticalFor "soon" is not a duration; write a whole number and s, m, h or d, such as 2m',
      "alerts.memoryWarning 2 is not a fraction; write it between 0 and 1 (0.8 = 80%)",
      "alerts.memoryWarning 2 must be below alerts.memoryCritical 0.95",
    ]);
  });
});

describe("promtool test files", () => {
  interface AlertTest {
    alertname: string;
    exp_alerts: { exp_labels: Record<string, string> }[];
  }
  const files = fs.readdirSync(promtoolDir).filter((f) => f.endsWith(".yml"));
  const cases: AlertTest[] = files.flatMap((f) => {
    const doc = yaml.load(fs.readFileSync(path.join(promtoolDir, f), "utf8")) as {
      rule_files: string[];
      tests: { alert_rule_test?: AlertTest[] }[];
    };
    expect([["rules.yml"], ["rules-containers.yml"]], f).toContainEqual(doc.rule_files);
    return doc.tests.flatMap((t) => t.alert_rule_test ?? []);
  });

  const everyVariant = [...alerts(renderAlertRules(input)), ...alerts(renderAlertRules(promtoolContainerRulesInput))];
  const named = [...new Map(everyVariant.map((a) => [`${a.alert}/${a.labels.severity}`, [a.alert, a.labels.severity] as const])).values()];
  it.each(named)(
    "%s (%s) has a firing and a quiet case",
    (name, severity) => {
      const mine = cases.filter((c) => c.alertname === name);
      expect(mine.some((c) => c.exp_alerts.length === 0), "quiet case").toBe(true);
      expect(mine.some((c) => c.exp_alerts.some((e) => e.exp_labels.severity === severity)), "firing case").toBe(true);
    },
  );
});
