/**
 * What the local perf cluster derives from a stack's Rendered files for THIS run: passwords and their SCRAM verifiers,
 * the role bootstrap, PgBouncer's ini pointed at this cluster's PostgreSQL, its userlist, the command lines of the
 * exporters, mtail and the canary, and the Prometheus config. Plain functions of plain data (only `generatePasswords`
 * draws randomness), so the wiring is unit-tested without starting anything. The rendered postgresql.conf,
 * pg_hba.conf, exporter queries, alert rules and mtail program are used as they are; nothing here edits them.
 */
import { randomBytes } from "node:crypto";
import { directUrlEnv, pooledUrlEnv } from "../configs/canary";
import { monitoringSetupSql, pgbouncerExporterCommand, postgresExporterCommand } from "../configs/exporters";
import { pgbouncerAdminUser, pgbouncerUserlist, pgbouncerUsers, renderPgBouncerIni } from "../configs/pgbouncer";
import type { Rendered } from "../configs/rendered";
import { bootstrapSql, monitorRole, statsUser } from "../configs/roles";
import { scramSaltBytes, scramVerifier } from "../configs/scram";
import { renderPrometheusConfigYaml } from "../configs/scrape";
import type { StackSpec } from "../configs/stack-spec";

/** The superuser the rig's initdb creates. */
export const superuser = "postgres";

/** Every password the cluster uses, generated per run; never written anywhere but the 0600 state file. */
export interface ClusterPasswords {
  readonly superuser: string;
  readonly app: string;
  readonly monitor: string;
  readonly stats: string;
}

/** 24 random bytes as base64url: 32 printable ASCII characters, safe in URLs, SASLprep-neutral. */
export function generatePasswords(): ClusterPasswords {
  const one = () => randomBytes(24).toString("base64url");
  return { superuser: one(), app: one(), monitor: one(), stats: one() };
}

/** The passwords as a list, for masking them in anything printed. */
export function passwordList(p: ClusterPasswords): string[] {
  return [p.superuser, p.app, p.monitor, p.stats];
}

/** Replaces every password in `text` with ***. */
export function maskPasswords(text: string, passwords: readonly string[]): string {
  let out = text;
  for (const pw of passwords) {
    if (pw === "") continue;
    out = out.split(pw).join("***").split(encodeURIComponent(pw)).join("***");
  }
  return out;
}

/** Role → SCRAM verifier. Each gets a fresh random salt: the cluster lives for one run, nothing needs stable verifiers. */
export function clusterVerifiers(
  spec: StackSpec,
  passwords: ClusterPasswords,
  salt: () => Buffer = () => randomBytes(scramSaltBytes),
): Readonly<Record<string, string>> {
  return {
    [superuser]: scramVerifier(passwords.superuser, salt()),
    [spec.postgres.appUser]: scramVerifier(passwords.app, salt()),
    [monitorRole]: scramVerifier(passwords.monitor, salt()),
    [statsUser]: scramVerifier(passwords.stats, salt()),
  };
}

/**
 * The psql script run once as the superuser: the stack's role bootstrap (configs/roles.ts: app and monitor roles,
 * the app database, CREATE EXTENSION vector and pg_stat_statements), then the exporter's setup (configs/exporters.ts)
 * in the app database. The superuser's password is set to the verifier PgBouncer also holds, so its SCRAM
 * pass-through works for the admin user too.
 */
export function clusterBootstrapSql(spec: StackSpec, verifiers: Readonly<Record<string, string>>): string {
  const { database, appUser } = spec.postgres;
  const app = verifiers[appUser];
  const monitor = verifiers[monitorRole];
  const admin = verifiers[superuser];
  if (app === undefined || monitor === undefined || admin === undefined) {
    throw new Error(`verifiers for ${appUser}, ${monitorRole} and ${superuser} are needed to bootstrap the cluster`);
  }
  return [
    `ALTER ROLE ${superuser} PASSWORD '${admin}';`,
    bootstrapSql(database, appUser, { app, monitor }).trimEnd(),
    ...monitoringSetupSql().map((s) => `${s};`),
    "",
  ].join("\n");
}

/** PgBouncer's auth_file: a verifier for every user PgBouncer must know (configs/pgbouncer.ts `pgbouncerUsers`). */
export function clusterUserlist(spec: StackSpec, verifiers: Readonly<Record<string, string>>): string {
  return pgbouncerUserlist(
    pgbouncerUsers(spec).map((user) => {
      const verifier = verifiers[user];
      if (verifier === undefined) throw new Error(`PgBouncer's auth_file needs user "${user}", but the cluster has no password for it`);
      return { user, verifier };
    }),
  );
}

/** The stack's pgbouncer.ini, rendered by configs/ with this cluster's PostgreSQL as its server. */
export function clusterPgBouncerIni(spec: StackSpec, postgresPort: number): string {
  return renderPgBouncerIni(spec, { server: { host: "127.0.0.1", port: postgresPort } });
}

const listenFlag = /^--web\.listen-address(=|$)/;

export interface ExporterLaunch {
  /** Flags without the listen address, which the rig sets to a free loopback port. */
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
}

/**
 * postgres_exporter as configs/exporters.ts renders it, pointed at this cluster, as the monitor role. The rig passes
 * the connection as DATA_SOURCE_NAME (environment, not the command line), built from the rendered DATA_SOURCE_URI.
 */
export function postgresExporterLaunch(
  spec: StackSpec,
  opts: { readonly postgresPort: number; readonly queriesPath: string; readonly monitorPassword: string },
): ExporterLaunch & { readonly dataSourceName: string } {
  const command = postgresExporterCommand({ port: opts.postgresPort, database: spec.postgres.database, queriesPath: opts.queriesPath });
  const { DATA_SOURCE_URI: uri, DATA_SOURCE_USER: user } = command.env;
  if (uri === undefined || user === undefined) throw new Error("postgresExporterCommand no longer renders DATA_SOURCE_URI and DATA_SOURCE_USER");
  return {
    args: command.args.filter((a) => !listenFlag.test(a)),
    env: {},
    dataSourceName: `postgresql://${encodeURIComponent(user)}:${encodeURIComponent(opts.monitorPassword)}@${uri}`,
  };
}

/** pgbouncer_exporter as rendered, on this cluster's PgBouncer; the stats user's password goes in PGPASSWORD. */
export function pgbouncerExporterLaunch(opts: { readonly pgbouncerPort: number; readonly statsPassword: string }): ExporterLaunch {
  const command = pgbouncerExporterCommand({ port: opts.pgbouncerPort });
  return { args: command.args.filter((a) => !listenFlag.test(a)), env: { [command.passwordEnv]: opts.statsPassword } };
}

/** The rendered alert rules are written under this name next to prometheus.yml. */
export const alertRulesFile = "alert-rules.yaml";

/** How often the cluster's monitoring looks, in milliseconds. */
export interface MonitoringIntervals {
  /** Prometheus's scrape interval; each scrape may take 80 % of it. */
  readonly scrapeMs: number;
  /** Prometheus's rule evaluation interval. */
  readonly evaluationMs: number;
  /** How often the canary runs its scenarios (`pgstack canary --interval`). */
  readonly canaryMs: number;
}

/**
 * Scrape and evaluate every 5 s rather than the production 15 s: a perf run lasts minutes, and its graphs and
 * `up` checks should not wait a quarter of a minute for the first sample. The canary keeps its own default of 10 s
 * (configs/canary.ts): the rules' 5-minute windows see 30 rounds, as in production.
 */
export const localMonitoring: MonitoringIntervals = { scrapeMs: 5_000, evaluationMs: 5_000, canaryMs: 10_000 };

/** Milliseconds as a Prometheus (and `pgstack canary`) duration: whole seconds as `5s`, anything else as `1500ms`. */
export function promDuration(ms: number): string {
  if (!Number.isInteger(ms) || ms < 1) throw new Error(`interval ${ms} ms must be a whole number of milliseconds ≥ 1`);
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** Problems with intervals, each naming the key and value; empty when usable. */
export function monitoringProblems(m: MonitoringIntervals): string[] {
  const problems: string[] = [];
  // Below 1 s postgres_exporter's scrape (dozens of queries) overlaps the next one on a small host.
  if (!Number.isInteger(m.scrapeMs) || m.scrapeMs < 1_000) problems.push(`monitoring.scrapeMs ${m.scrapeMs} must be a whole number ≥ 1000`);
  if (!Number.isInteger(m.evaluationMs) || m.evaluationMs < 100) problems.push(`monitoring.evaluationMs ${m.evaluationMs} must be a whole number ≥ 100`);
  // configs/canary.ts accepts intervals from 100 ms.
  if (!Number.isInteger(m.canaryMs) || m.canaryMs < 100) problems.push(`monitoring.canaryMs ${m.canaryMs} must be a whole number ≥ 100`);
  return problems;
}

export interface ScrapePorts {
  readonly postgresExporter: number;
  readonly pgbouncerExporter: number;
  readonly nodeExporter: number;
  readonly canary: number;
  readonly mtail: number;
}

/**
 * prometheus.yml: one job per metric source — the three exporters, the canary and mtail, the jobs the rendered rules
 * of a `local` stack guard (configs/render.ts `scrapeJobsFor`) — each target labelled `stack="<stack>"` as the rules
 * select.
 */
export function clusterPrometheusYaml(spec: StackSpec, ports: ScrapePorts, intervals: MonitoringIntervals = localMonitoring): string {
  return renderPrometheusConfigYaml({
    stack: spec.stack,
    targets: {
      postgres: [`127.0.0.1:${ports.postgresExporter}`],
      pgbouncer: [`127.0.0.1:${ports.pgbouncerExporter}`],
      node: [`127.0.0.1:${ports.nodeExporter}`],
      canary: [`127.0.0.1:${ports.canary}`],
      mtail: [`127.0.0.1:${ports.mtail}`],
    },
    ruleFiles: [alertRulesFile],
    scrapeInterval: promDuration(intervals.scrapeMs),
    evaluationInterval: promDuration(intervals.evaluationMs),
    // Prometheus requires the timeout to be at most the interval; 80 % leaves room before the next scrape.
    scrapeTimeout: promDuration(Math.round(intervals.scrapeMs * 0.8)),
  });
}

export interface CanaryLaunchInput {
  /** The canary's /metrics port on 127.0.0.1. */
  readonly port: number;
  /** The app user through this cluster's PgBouncer. */
  readonly pooledUrl: string;
  /** The app user straight to this cluster's PostgreSQL: its logins are probed too (target `postgres`). */
  readonly directUrl: string;
  /** How often the scenarios run. */
  readonly intervalMs: number;
}

/**
 * `pgstack canary` as the cluster runs it (after the program, `bin/pgstack.js`): arguments without any password;
 * the URLs, which carry the app user's password, go in its environment (cli/canary.ts reads them from there only).
 */
export function canaryLaunch(input: CanaryLaunchInput): ExporterLaunch {
  return {
    args: ["canary", "--listen", `127.0.0.1:${input.port}`, "--interval", promDuration(input.intervalMs)],
    env: { [pooledUrlEnv]: input.pooledUrl, [directUrlEnv]: input.directUrl },
  };
}

/** Names of the rule groups in the rendered rules, to check Prometheus loaded all of them. */
export function alertRuleGroupNames(rendered: Rendered): string[] {
  return rendered.alertRuleGroups.groups.map((g) => String((g as { name?: unknown }).name)).sort();
}

/** `postgresql://user:pw@127.0.0.1:port/db` with the parts percent-encoded. */
export function connectionUrl(user: string, password: string, port: number, database: string): string {
  return `postgresql://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
}

export { pgbouncerAdminUser, monitorRole, statsUser };
