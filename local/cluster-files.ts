/**
 * What the local perf cluster adds to a stack's Rendered for THIS run, and nothing Rendered already says: the
 * placement it renders with (its free loopback ports, its scratch directories as the programs see them), the
 * generated passwords and their SCRAM verifiers, the role bootstrap, PgBouncer's userlist, the secrets its launches
 * name, and the connection URLs it hands out. Every port, path, command line and config file comes from Rendered
 * (configs/render.ts, rendered for that placement); nothing here rebuilds one. Plain functions of plain data (only
 * `generatePasswords` and the default salt draw randomness), so the wiring is unit-tested without starting anything.
 */
import { randomBytes } from "node:crypto";
import { monitoringSetupSql } from "../configs/exporters";
import type { Launch, SecretInput } from "../configs/launches";
import { localPlacement, type MonitoringIntervals, type Placement, type PlacementPaths, type PlacementPorts } from "../configs/placement";
import { pgbouncerUserlist, type ClientTlsMode } from "../configs/pgbouncer";
import { renderStack } from "../configs/render";
import type { Rendered, RenderedRoles } from "../configs/rendered";
import { bootstrapSql } from "../configs/roles";
import { scramSaltBytes, scramVerifier } from "../configs/scram";
import { quoteIdent, quoteLiteral } from "../configs/sql";
import { verifyFullQuery } from "../configs/tls";

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

/** The one masker (configs/secrets.ts) under its old name, for tests/unit/local-cluster-files.test.ts only. */
export { maskSecrets as maskPasswords } from "../configs/secrets";

// ---- placement -------------------------------------------------------------------------------------------------

/**
 * The cluster's scratch directories as the programs see them (ScratchDir.path: inside the rootfs under chroot), one
 * per server that reads a rendered file there; each server's log goes into its own directory too.
 */
export interface ClusterDirPaths {
  readonly postgres: string;
  readonly pgbouncer: string;
  readonly postgresExporter: string;
  readonly mtail: string;
  readonly prometheus: string;
  /** The server certificate, its key and the CA certificate (cert-manager's names): PostgreSQL, PgBouncer and every client read them. */
  readonly tls: string;
}

/** Names inside those directories; PGDATA's is the rig's (local/runtime/postgres.ts `postgresDataEntry`). */
export const clusterEntries = {
  queries: "postgres-exporter-queries.yaml",
  mtailPrograms: "progs",
  userlist: "userlist.txt",
  prometheusConfig: "prometheus.yml",
  alertRules: "alert-rules.yaml",
  prometheusData: "data",
  tlsCertificate: "tls.crt",
  tlsKey: "tls.key",
  tlsCa: "ca.crt",
} as const;

/**
 * Where this run puts things, over the perf cluster's reference placement (configs/placement.ts): its own ports, and
 * every path inside its scratch directories. `pgdataEntry` is the data directory's name in the postgres directory;
 * PostgreSQL's Unix socket goes into that directory itself (it exists before the server starts, and is short enough
 * for a socket path).
 */
export function clusterPlacement(input: {
  readonly ports: PlacementPorts;
  readonly dirs: ClusterDirPaths;
  readonly pgdataEntry: string;
  readonly intervals?: Partial<MonitoringIntervals>;
  /** PgBouncer's client_tls_sslmode: "allow" only for `local perf --compare-tls`. Defaults to "require". */
  readonly clientTls?: ClientTlsMode;
}): Placement {
  const { dirs } = input;
  const paths: PlacementPaths = {
    pgdata: `${dirs.postgres}/${input.pgdataEntry}`,
    postgresSocketDir: dirs.postgres,
    postgresExporterQueries: `${dirs.postgresExporter}/${clusterEntries.queries}`,
    tlsCertificate: `${dirs.tls}/${clusterEntries.tlsCertificate}`,
    tlsKey: `${dirs.tls}/${clusterEntries.tlsKey}`,
    tlsCa: `${dirs.tls}/${clusterEntries.tlsCa}`,
    mtailPrograms: `${dirs.mtail}/${clusterEntries.mtailPrograms}`,
    pgbouncerAuthFile: `${dirs.pgbouncer}/${clusterEntries.userlist}`,
    prometheusConfig: `${dirs.prometheus}/${clusterEntries.prometheusConfig}`,
    alertRules: `${dirs.prometheus}/${clusterEntries.alertRules}`,
    prometheusData: `${dirs.prometheus}/${clusterEntries.prometheusData}`,
  };
  return localPlacement({ ports: input.ports, paths, intervals: input.intervals, clientTls: input.clientTls });
}

/** A placement change: a server moved to another port, PGDATA (and PostgreSQL's socket) to a fresh directory. */
export interface PlacementChange {
  readonly ports?: Partial<PlacementPorts>;
  readonly paths?: Partial<PlacementPaths>;
}

/**
 * The stack rendered again with one change to where things are. Only what reads the changed port or path differs;
 * the cluster re-renders when a server had to move, before anything that reads it has started.
 */
export function renderedWith(rendered: Rendered, change: PlacementChange): Rendered {
  const p = rendered.placement;
  return renderStack(
    rendered.spec,
    localPlacement({ ports: { ...p.ports, ...change.ports }, paths: { ...p.paths, ...change.paths }, intervals: p.intervals, clientTls: p.clientTls }),
  );
}

/**
 * The name of `placed` inside the directory `dir` (both as the programs see them), for writing a rendered file
 * exactly where the placement says through the ScratchDir that owns it. Throws when the placement put it elsewhere.
 */
export function entryIn(dir: string, placed: string): string {
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  const entry = placed.startsWith(prefix) ? placed.slice(prefix.length) : "";
  if (entry === "" || entry.split("/").some((part) => part === "" || part === "." || part === "..")) {
    throw new Error(`${placed} is not inside ${dir}; the cluster writes rendered files only into its scratch directories`);
  }
  return entry;
}

// ---- roles, verifiers, bootstrap -------------------------------------------------------------------------------

/** Role → SCRAM verifier. Each gets a fresh random salt: the cluster lives for one run, nothing needs stable verifiers. */
export function clusterVerifiers(
  roles: RenderedRoles,
  passwords: ClusterPasswords,
  salt: () => Buffer = () => randomBytes(scramSaltBytes),
): Readonly<Record<string, string>> {
  return {
    [roles.superuser]: scramVerifier(passwords.superuser, salt()),
    [roles.app]: scramVerifier(passwords.app, salt()),
    [roles.monitor]: scramVerifier(passwords.monitor, salt()),
    [roles.stats]: scramVerifier(passwords.stats, salt()),
  };
}

function verifierOf(verifiers: Readonly<Record<string, string>>, user: string, what: string): string {
  const verifier = verifiers[user];
  if (verifier === undefined) throw new Error(`${what} needs a verifier for "${user}", but the cluster has no password for it`);
  return verifier;
}

/**
 * The psql script run once as the superuser: the stack's role bootstrap (configs/roles.ts: app and monitor roles,
 * the app database, CREATE EXTENSION vector and pg_stat_statements), then the exporter's setup (configs/exporters.ts)
 * in the app database. The superuser's password is set to the verifier PgBouncer also holds, so its SCRAM
 * pass-through works for the admin user too.
 */
export function clusterBootstrapSql(rendered: Rendered, verifiers: Readonly<Record<string, string>>): string {
  const { roles } = rendered;
  const what = "the cluster's bootstrap";
  const admin = verifierOf(verifiers, roles.superuser, what);
  const app = verifierOf(verifiers, roles.app, what);
  const monitor = verifierOf(verifiers, roles.monitor, what);
  return [
    `ALTER ROLE ${quoteIdent(roles.superuser)} PASSWORD ${quoteLiteral(admin)};`,
    bootstrapSql(rendered.spec.postgres.database, roles.app, { app, monitor }).trimEnd(),
    ...monitoringSetupSql().map((s) => `${s};`),
    "",
  ].join("\n");
}

/** PgBouncer's auth_file: a verifier for every user Rendered says PgBouncer must know. */
export function clusterUserlist(roles: RenderedRoles, verifiers: Readonly<Record<string, string>>): string {
  return pgbouncerUserlist(roles.pgbouncerUsers.map((user) => ({ user, verifier: verifierOf(verifiers, user, "PgBouncer's auth_file") })));
}

// ---- URLs and secrets ------------------------------------------------------------------------------------------

/**
 * `postgresql://user:pw@127.0.0.1:port/db?sslmode=verify-full&sslrootcert=<caPath>` with the parts percent-encoded:
 * every server of the cluster admits TCP clients over TLS only, and every client of ours verifies it fully.
 */
export function connectionUrl(user: string, password: string, port: number, database: string, caPath: string): string {
  return `postgresql://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}/${encodeURIComponent(database)}?${verifyFullQuery(caPath)}`;
}

/** The cluster's addresses, at the rendered placement's ports. The database URLs carry passwords. */
export interface ClusterUrls {
  /** The app user through PgBouncer (transaction pooling). */
  readonly pooled: string;
  /** The app user straight to PostgreSQL. */
  readonly direct: string;
  /** The superuser in the maintenance database `postgres`. */
  readonly superuser: string;
  /** The stats user on PgBouncer's admin console (database `pgbouncer`), as pgbouncer_exporter logs in. */
  readonly stats: string;
  readonly prometheus: string;
}

/**
 * Every program of the placement shares this host's loopback (Placement.ports): so do its clients here. They run on
 * this host, so they read the CA at its host path (`caHostPath`: inside the rootfs under chroot), where the
 * placement's `tlsCa` is the path the programs in the rootfs see.
 */
export function clusterUrls(rendered: Rendered, passwords: ClusterPasswords, caHostPath: string): ClusterUrls {
  const { ports } = rendered.placement;
  const { roles } = rendered;
  const database = rendered.spec.postgres.database;
  return {
    pooled: connectionUrl(roles.app, passwords.app, ports.pgbouncer, database, caHostPath),
    direct: connectionUrl(roles.app, passwords.app, ports.postgres, database, caHostPath),
    superuser: connectionUrl(roles.superuser, passwords.superuser, ports.postgres, "postgres", caHostPath),
    stats: connectionUrl(roles.stats, passwords.stats, ports.pgbouncer, "pgbouncer", caHostPath),
    prometheus: `http://127.0.0.1:${ports.prometheus}`,
  };
}

/**
 * What each secret a launch names holds on this cluster (configs/launches.ts SecretInput). The URLs go to the canary,
 * a process of this host: they name the CA by its host path.
 */
export function secretInputs(rendered: Rendered, passwords: ClusterPasswords, caHostPath: string): Readonly<Record<SecretInput, string>> {
  const urls = clusterUrls(rendered, passwords, caHostPath);
  return { monitorPassword: passwords.monitor, statsPassword: passwords.stats, pooledUrl: urls.pooled, directUrl: urls.direct };
}

/** A launch's secret environment variables, filled: variable → value. */
export function filledSecretEnv(launch: Launch, inputs: Readonly<Record<SecretInput, string>>): Readonly<Record<string, string>> {
  return Object.fromEntries(Object.entries(launch.secretEnv).map(([variable, input]) => [variable, inputs[input]]));
}

/** Names of the rule groups in the rendered rules, to check Prometheus loaded all of them. */
export function alertRuleGroupNames(rendered: Rendered): string[] {
  return rendered.alertRuleGroups.groups.map((g) => String((g as { name?: unknown }).name)).sort();
}
