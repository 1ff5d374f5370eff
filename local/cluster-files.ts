/**
 * What the local perf cluster adds to a stack's Rendered for THIS run, and nothing Rendered already says: the
 * placement it renders with (its free loopback ports, its scratch directories as the programs see them), the
 * generated passwords and their SCRAM verifiers, the role bootstrap, PgBouncer's userlist, the secrets its launches
 * name, and the connection URLs it hands out. Every port, path, command line and config file comes from Rendered
 * (configs/render.ts, rendered for that placement); nothing here rebuilds one. Plain functions of plain data (only
 * `generatePasswords` and the default salt draw randomness), so the wiring is unit-tested without starting anything.
 */
import { randomBytes } from "node:crypto";
import type { Launch, SecretInput } from "../configs/launches";
import { localPlacement, type MonitoringIntervals, type Placement, type PlacementPaths, type PlacementPorts } from "../configs/placement";
import { pgbouncerUserlist, type ClientTlsMode } from "../configs/pgbouncer";
import { renderStack } from "../configs/render";
import type { Rendered, RenderedRoles } from "../configs/rendered";
import { bootstrapSql, roleKinds, type RoleKind } from "../configs/roles";
import { scramSaltBytes, scramVerifier } from "../configs/scram";
import { verifyFullQuery } from "../configs/tls";

/** Every password the cluster uses, one per role kind (configs/roles.ts), generated per run; never written anywhere but the 0600 state file. */
export type ClusterPasswords = Readonly<Record<RoleKind, string>>;

/** 24 random bytes as base64url: 32 printable ASCII characters, safe in URLs, SASLprep-neutral. */
export function generatePassword(): string {
  return randomBytes(24).toString("base64url");
}

export function generatePasswords(): ClusterPasswords {
  return Object.fromEntries(roleKinds.map((kind) => [kind, generatePassword()])) as Record<RoleKind, string>;
}

/** The passwords as a list, for masking them in anything printed. */
export function passwordList(p: ClusterPasswords): string[] {
  return roleKinds.map((kind) => p[kind]);
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
  /** PgBouncer's logfile, which mtail follows; `pgbouncer.log` beside it is the rig's capture of PgBouncer's stderr. */
  pgbouncerLog: "logfile.log",
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
    pgbouncerLog: `${dirs.pgbouncer}/${clusterEntries.pgbouncerLog}`,
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
  return Object.fromEntries(roleKinds.map((kind) => [roles.plan.names[kind], scramVerifier(passwords[kind], salt())]));
}

function verifierOf(verifiers: Readonly<Record<string, string>>, user: string, what: string): string {
  const verifier = verifiers[user];
  if (verifier === undefined) throw new Error(`${what} needs a verifier for "${user}", but the cluster has no password for it`);
  return verifier;
}

/**
 * The psql script run as the superuser on the socket: the stack's roles.sql as rendered (roles, limits, the database,
 * extensions, grants), then every role's verifier (configs/roles.ts passwordsSql). Run at the start and again by
 * `rotatePassword`: idempotent.
 */
export function clusterBootstrapSql(rendered: Rendered, verifiers: Readonly<Record<string, string>>): string {
  return bootstrapSql(rendered.files["roles.sql"], rendered.roles.plan, verifiers);
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
  /** The application role through PgBouncer (transaction pooling): DML on the owner's tables. */
  readonly pooled: string;
  /** The owner straight to PostgreSQL: DDL, loading, index builds (what the hook's PGSTACK_DIRECT_URL is). */
  readonly direct: string;
  /** The read-only role through PgBouncer. */
  readonly readOnly: string;
  /** The canary's role through PgBouncer, and straight to PostgreSQL (its login probe). */
  readonly canaryPooled: string;
  readonly canaryDirect: string;
  /** The stats user on PgBouncer's admin console (database `pgbouncer`), as pgbouncer_exporter logs in. */
  readonly stats: string;
  /** PgBouncer's admin user on its console (RELOAD, PAUSE). */
  readonly pgbouncerAdmin: string;
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
    direct: connectionUrl(roles.owner, passwords.owner, ports.postgres, database, caHostPath),
    readOnly: connectionUrl(roles.readOnly, passwords.readOnly, ports.pgbouncer, database, caHostPath),
    canaryPooled: connectionUrl(roles.canary, passwords.canary, ports.pgbouncer, database, caHostPath),
    canaryDirect: connectionUrl(roles.canary, passwords.canary, ports.postgres, database, caHostPath),
    stats: connectionUrl(roles.stats, passwords.stats, ports.pgbouncer, "pgbouncer", caHostPath),
    pgbouncerAdmin: connectionUrl(roles.pgbouncerAdmin, passwords.pgbouncerAdmin, ports.pgbouncer, "pgbouncer", caHostPath),
    prometheus: `http://127.0.0.1:${ports.prometheus}`,
  };
}

/**
 * The superuser on PostgreSQL's Unix socket (`socketHostDir`: the placement's postgresSocketDir as this host sees it),
 * by peer: pg_hba.conf rejects the superuser on every TCP line, and pg_ident.conf maps this host's root to it. No
 * password. `database` defaults to the maintenance database.
 */
export function superuserSocketUrl(rendered: Rendered, socketHostDir: string, database = "postgres"): string {
  const query = new URLSearchParams({ host: socketHostDir, port: String(rendered.placement.ports.postgres) });
  // "localhost" only makes it a URL WHATWG parsers accept; the `host` parameter (the socket directory) wins over it.
  return `postgresql://${encodeURIComponent(rendered.roles.superuser)}@localhost/${encodeURIComponent(database)}?${query.toString()}`;
}

/**
 * What each secret a launch names holds on this cluster (configs/launches.ts SecretInput). The URLs go to the canary,
 * a process of this host, as its own role: they name the CA by its host path.
 */
export function secretInputs(rendered: Rendered, passwords: ClusterPasswords, caHostPath: string): Readonly<Record<SecretInput, string>> {
  const urls = clusterUrls(rendered, passwords, caHostPath);
  return { monitorPassword: passwords.monitor, statsPassword: passwords.stats, pooledUrl: urls.canaryPooled, directUrl: urls.canaryDirect };
}

/** A launch's secret environment variables, filled: variable → value. */
export function filledSecretEnv(launch: Launch, inputs: Readonly<Record<SecretInput, string>>): Readonly<Record<string, string>> {
  return Object.fromEntries(Object.entries(launch.secretEnv).map(([variable, input]) => [variable, inputs[input]]));
}

/** Names of the rule groups in the rendered rules, to check Prometheus loaded all of them. */
export function alertRuleGroupNames(rendered: Rendered): string[] {
  return rendered.alertRuleGroups.groups.map((g) => String((g as { name?: unknown }).name)).sort();
}
