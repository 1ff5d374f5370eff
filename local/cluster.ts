/**
 * The ephemeral perf cluster: a stack rendered for this run's placement, run as real processes on this host, on free
 * loopback ports — PostgreSQL 17 + pgvector (the rendered postgresql.conf and pg_hba.conf as they are), PgBouncer in
 * front of it (SCRAM, the rendered pgbouncer.ini), and the rendered launches: postgres_exporter, pgbouncer_exporter,
 * node_exporter, mtail following PostgreSQL's log with the rendered program, the synthetic canary (`pgstack canary`)
 * through PgBouncer, and Prometheus with the rendered prometheus.yml and alert rules. Every scrape job those rules
 * guard is there, so a quiet cluster has no ScrapeJobAbsent or ScrapeTargetDown alert.
 *
 *   const cluster = new LocalCluster({ name, spec, progress });
 *   try { await cluster.start(); … cluster.info … } finally { await cluster.stop(); }
 *
 * Rendered is the only input of every port, path and command line: the cluster chooses its ports and scratch
 * directories (`clusterPlacement`), renders the stack for them (configs/render.ts) and runs what comes back as it is.
 * It adds only what is this run's: passwords and their verifiers, the bootstrap, the URLs it hands out.
 *
 * A start is an ordered list of steps (`clusterSteps`) that one loop runs: each step reads the context earlier steps
 * built and returns what it adds (frozen); the loop records each step in the state file, checks for a stop request
 * between steps, honours `failAfter`, and on failure unwinds — stops every server started so far, newest first.
 *
 * `stop()` may be called at any moment, also while `start()` runs (Ctrl-C): it stops what is running, makes the start
 * fail at its next step, and lets no server start afterwards. Everything started is written to the cluster's state
 * file the moment it exists, so `pgstack local down` can end it from another process if this one dies.
 * The processes come from the rig (local/runtime); this file only wires them together.
 */
import { hugePageBytes } from "../configs/hugepages";
import type { Launch, SecretInput } from "../configs/launches";
import { mtailProgramFile } from "../configs/mtail";
import { localPlacement, placementProblems, type MonitoringIntervals, type PlacementPorts } from "../configs/placement";
import type { ClientTlsMode } from "../configs/pgbouncer";
import { silentProgress, type Progress } from "../configs/progress";
import { renderStack } from "../configs/render";
import type { Rendered, RenderedMemory } from "../configs/rendered";
import type { RoleKind } from "../configs/roles";
import { scramSaltBytes, scramVerifier } from "../configs/scram";
import { maskSecrets } from "../configs/secrets";
import type { StackSpec } from "../configs/stack-spec";
import { humanBytes, pgMemory } from "../configs/units";
import * as fs from "node:fs";
import { randomBytes } from "node:crypto";
import { connect, newClient } from "../pgclient/connect";
import { startCanaryProcess, type CanaryProcess } from "./canary-process";
import {
  certificateFacts,
  certificateProblems,
  createCertificateAuthority,
  describeCertificate,
  issueServerCertificate,
  keyFileProblem,
  servedCertificate,
  type CertificateAuthority,
  type CertificateFacts,
  type ServerCertificate,
} from "./tls";
import {
  alertRuleGroupNames,
  clusterBootstrapSql,
  clusterPlacement,
  clusterUrls,
  superuserSocketUrl,
  clusterUserlist,
  clusterVerifiers,
  entryIn,
  filledSecretEnv,
  generatePassword,
  generatePasswords,
  passwordList,
  renderedWith,
  secretInputs,
  type ClusterPasswords,
} from "./cluster-files";
import {
  describeHugePages,
  hugePagesIntent,
  kernelHugePages,
  reserveHugePages,
  type HugePagesIntent,
  type HugePagesPool,
  type HugePagesStatus,
} from "./hugepages";
import {
  freeLoopbackPort,
  getRuntime,
  httpGet,
  startPgBouncer,
  startPostgres,
  type HttpServer,
  type PgBouncerServer,
  type PostgresServer,
  type ProgramName,
  type Runtime,
  type ScratchDir,
  type ServerProcess,
} from "./runtime";
import { startLaunch as startRigLaunch } from "./runtime/launch";
import { PortInUseError } from "./runtime/ports";
import { postgresDataEntry } from "./runtime/postgres";
import { killTree } from "./runtime/processes";
import {
  createState,
  defaultStateRoot,
  isRunning,
  ownIdentity,
  processIdentity,
  readState,
  removeState,
  stateFilePath,
  writeState,
  type ClusterOwnerKind,
  type ClusterState,
  type RecordedHugePages,
} from "./state";
import { giveBackRecordedHugePages, giveBackRecordedHugePagesSync, removeScratchDirs } from "./teardown";

/**
 * For tests of the teardown: `PGSTACK_LOCAL_FAIL_AFTER=bootstrap pgstack local up` fails right after that step, as a
 * real failure would, with everything started so far still running.
 */
export const failAfterEnv = "PGSTACK_LOCAL_FAIL_AFTER";

export interface StartClusterOptions {
  /** Cluster name: the state directory and `--name` of `local down`. */
  readonly name: string;
  /**
   * The stack to run, sized for this host (cli/local.ts `clusterSpec`); its target must be `local`. The cluster
   * renders it for its own placement: this run's ports and scratch directories.
   */
  readonly spec: StackSpec;
  /** Defaults to silentProgress. */
  readonly progress?: Progress;
  /** Defaults to `getRuntime()`: native programs or the Debian 13 rootfs. */
  readonly runtime?: Runtime;
  /** False = `--no-huge-pages`: start with huge_pages = off and reserve nothing. Defaults to true. */
  readonly hugePages?: boolean;
  /** Directory of state files. Defaults to the project's .cache/local. */
  readonly stateRoot?: string;
  /** Recorded in the state file; `local down` signals only owners that are pgstack commands. Defaults to "library". */
  readonly owner?: ClusterOwnerKind;
  /** Throw after this step (teardown tests). Defaults to the PGSTACK_LOCAL_FAIL_AFTER environment variable. */
  readonly failAfter?: ClusterStepName;
  /** The huge page pool (tests pass a fake kernel). Defaults to the kernel's. */
  readonly hugePagesPool?: HugePagesPool;
  /**
   * Scrape, rule evaluation and canary intervals; the alert tests shorten them (with the stack's `alerts:` `for`
   * durations and rateWindow) so an alert fires within seconds. Defaults to the perf cluster's placement
   * (configs/placement.ts localIntervals: 5 s, 5 s, 10 s).
   */
  readonly monitoring?: Partial<MonitoringIntervals>;
  /**
   * PgBouncer's client_tls_sslmode for this run. "allow" (plain-text clients admitted beside TLS ones) only for
   * `local perf --compare-tls`, which measures both through one PgBouncer. Defaults to "require".
   */
  readonly clientTls?: ClientTlsMode;
  /**
   * The cluster's TLS: by default a throw-away CA made for this cluster and a server certificate from it for the
   * rendered server names, valid for the stack's tls.certificateValidity. Tests give their own CA or certificate to
   * see what the cluster refuses before it starts anything.
   */
  readonly tls?: {
    /** The CA to issue from and that every client trusts. Defaults to a new one (its key never leaves the cluster). */
    readonly ca?: CertificateAuthority;
    /** The first server certificate. Defaults to one the CA issues, valid for the stack's tls.certificateValidity. */
    readonly certificate?: CertificateRequest;
  };
}

/**
 * A server certificate for the cluster: issued by its CA (`validMs`) or made elsewhere (`provided`). Either way it is
 * checked before it replaces anything: it must chain to the cluster's CA, be valid now, carry the rendered server names,
 * and its key file must be one PostgreSQL accepts.
 */
export interface CertificateRequest {
  /** Lifetime of a certificate the cluster's CA issues. Defaults to the stack's tls.certificateValidity. */
  readonly validMs?: number;
  /** A certificate and its key made elsewhere, installed instead of issuing one. */
  readonly provided?: ServerCertificate;
  /**
   * Mode of the key file as written. Defaults to 0600 (owned by the servers' user), which with root's 0640 is all
   * PostgreSQL accepts; anything wider is refused before it is installed, as a person's copied-in key would be.
   */
  readonly keyMode?: number;
}

/** The certificate a renewal installed, as both servers now serve it. */
export interface RenewedCertificate extends CertificateFacts {
  /** The pids of PostgreSQL and PgBouncer, the same before and after: neither was restarted. */
  readonly pids: { readonly postgres: number; readonly pgbouncer: number };
}

/** The cluster's ports, by server: its placement's. */
export type ClusterPorts = PlacementPorts;

/** What a running cluster offers. URLs carry passwords: print them only where a person asked for them. */
export interface ClusterInfo {
  readonly name: string;
  readonly stack: string;
  readonly runtime: { readonly kind: Runtime["kind"]; readonly versions: Runtime["versions"] };
  /** The application role through PgBouncer (transaction pooling): DML on the owner's tables. */
  readonly pooledUrl: string;
  /** The owner straight to PostgreSQL: DDL, loads, index builds (the hook's direct URL). */
  readonly directUrl: string;
  /** The read-only role through PgBouncer. */
  readonly readOnlyUrl: string;
  /** PgBouncer's admin user on its console (database pgbouncer). */
  readonly pgbouncerAdminUrl: string;
  /** The superuser on PostgreSQL's Unix socket, by peer (never over TCP), in the maintenance database. */
  readonly superuserUrl: string;
  readonly prometheusUrl: string;
  /**
   * Host path of the cluster's CA certificate: the `sslrootcert` of every URL above (PostgreSQL and PgBouncer admit
   * TCP clients over TLS only; every client of ours verifies with sslmode=verify-full).
   */
  readonly caPath: string;
  readonly ports: ClusterPorts;
  readonly hugePages: HugePagesStatus;
  readonly stateFile: string;
  /**
   * Host paths of the servers' logs. `pgbouncer` is PgBouncer's stderr, `pgbouncer_logfile` the same lines in its
   * `logfile` (what mtail follows). `postgres` is its stderr up to the logging collector's start; `postgres_log_dir`
   * holds the rest (the collector's hourly files, as on the container targets).
   */
  readonly logs: Readonly<Record<string, string>>;
}

/** What a stop did. A stop that could not remove everything throws instead, keeping the state file for `local down`. */
export interface ClusterStopReport {
  readonly stopped: readonly string[];
  readonly removedDirs: readonly string[];
  readonly hugePagesGivenBack: number;
}

/** The settings a perf report shows: what sizes memory, parallelism and the planner for vector work. */
export const reportedSettings = [
  "server_version",
  "shared_buffers",
  "effective_cache_size",
  "work_mem",
  "maintenance_work_mem",
  "hash_mem_multiplier",
  "wal_buffers",
  "max_connections",
  "max_worker_processes",
  "max_parallel_workers",
  "max_parallel_workers_per_gather",
  "max_parallel_maintenance_workers",
  "random_page_cost",
  "effective_io_concurrency",
  "jit",
  "huge_pages",
  "huge_pages_status",
  "shared_memory_size",
  "shared_memory_size_in_huge_pages",
] as const;

class StopRequested extends Error {
  override readonly name = "StopRequested";
}

// ---- what a start builds ------------------------------------------------------------------------------------------

/** A scratch directory per server, created before anything starts so the placement can name paths inside them. */
interface ClusterDirs {
  readonly postgres: ScratchDir;
  readonly pgbouncer: ScratchDir;
  readonly postgresExporter: ScratchDir;
  readonly pgbouncerExporter: ScratchDir;
  readonly nodeExporter: ScratchDir;
  readonly mtail: ScratchDir;
  readonly canary: ScratchDir;
  readonly prometheus: ScratchDir;
  /** The server certificate, its key and the CA certificate, where the placement says; and the CA's key, root's only. */
  readonly tls: ScratchDir;
}

/** The cluster's CA and where its clients on this host find its certificate. */
interface ClusterTls {
  readonly ca: CertificateAuthority;
  /** Host path of the CA certificate (inside the rootfs under chroot): clients on this host verify with it. */
  readonly caHostPath: string;
  /** The certificate installed at the start. */
  readonly certificate: CertificateFacts;
}

/**
 * Everything a start builds, each field added by one step (a later step may replace `rendered`, `dirs` or
 * `hugePages` with what it learnt). A step's context is what the steps before it added, frozen.
 */
interface Built {
  /** Before the first step: the rig, recording every server and scratch directory in the state file as it appears. */
  readonly runtime: Runtime;
  /** placement */
  readonly dirs: ClusterDirs;
  /** placement: the stack rendered for this run; replaced by a step whose server had to move. */
  readonly rendered: Rendered;
  /** certificates */
  readonly tls: ClusterTls;
  /** huge-pages */
  readonly hugePagesIntent: HugePagesIntent;
  /** postgres (what was reserved), completed by bootstrap (what the running server reports). */
  readonly hugePages: HugePagesStatus;
  /** postgres */
  readonly postgres: PostgresServer;
  /** bootstrap */
  readonly verifiers: Readonly<Record<string, string>>;
  /** pgbouncer */
  readonly pgbouncer: PgBouncerServer;
  /** exporters */
  readonly postgresExporter: HttpServer;
  /** exporters */
  readonly pgbouncerExporter: HttpServer;
  /** exporters */
  readonly nodeExporter: HttpServer;
  /** mtail */
  readonly mtail: HttpServer;
  /** canary */
  readonly canary: CanaryProcess;
  /** prometheus */
  readonly prometheus: HttpServer;
}

/** The servers, by the name Placement.ports gives each. */
const serverKeys = ["postgres", "pgbouncer", "postgresExporter", "pgbouncerExporter", "nodeExporter", "mtail", "canary", "prometheus"] as const satisfies readonly (keyof PlacementPorts & keyof Built)[];

/** What the cluster lends its steps: its settings, its passwords and its state file. */
interface StepHost {
  readonly name: string;
  readonly spec: StackSpec;
  /** StartClusterOptions.tls. */
  readonly tls: StartClusterOptions["tls"];
  readonly progress: Progress;
  readonly passwords: ClusterPasswords;
  readonly secrets: readonly string[];
  readonly monitoring: Partial<MonitoringIntervals> | undefined;
  /** StartClusterOptions.clientTls. */
  readonly clientTls: ClientTlsMode | undefined;
  /** False with `--no-huge-pages`. */
  readonly hugePagesWanted: boolean;
  readonly pool: HugePagesPool;
  /** Throws once `stop()` was called: a start never goes on past it. */
  checkpoint(): void;
  /** Pages this cluster has added to the pool so far (all given back at teardown). */
  recordedHugePages(): number;
  /** Writes the pages added to the state file at once, before anything else can happen. */
  recordHugePages(pages: RecordedHugePages): void;
  /** Records a server the rig did not spawn (the canary) the moment it exists, as the rig's are. */
  track(server: ServerProcess, stopSignal: NodeJS.Signals): void;
}

interface ClusterStep<Name extends string = string> {
  readonly name: Name;
  readonly run: (ctx: Readonly<Partial<Built>>, host: StepHost) => Promise<Readonly<Partial<Built>>>;
}

/** The fields `keys` of the context, which earlier steps must have added. */
function picked<K extends keyof Built>(ctx: Readonly<Partial<Built>>, keys: readonly K[], who: string): Pick<Built, K> {
  const missing = keys.filter((k) => ctx[k] === undefined);
  if (missing.length > 0) throw new Error(`${who} needs ${missing.join(", ")}, which no earlier step added (a bug in the step order of local/cluster.ts)`);
  return ctx as Pick<Built, K>;
}

/** A step that reads `needs` from the context (checked when it runs) and returns what it adds. */
function step<const Name extends string, N extends keyof Built, A extends keyof Built>(
  name: Name,
  needs: readonly N[],
  // NoInfer: `needs` alone says what the step reads, and a run that reads more does not compile.
  run: (ctx: Pick<Built, NoInfer<N>>, host: StepHost) => Promise<Pick<Built, A>>,
): ClusterStep<Name> {
  return { name, run: (ctx, host) => run(picked(ctx, needs, `step ${name}`), host) };
}

// ---- the steps ----------------------------------------------------------------------------------------------------

/** How often a server is moved to another port before its start counts as failed (as the rig's onFreePort tries). */
const portAttempts = 5;

/**
 * Starts one server at the port its placement gives it. Between choosing a free port and the server binding it another
 * process may take it (local/runtime/ports.ts); then the server moves to a new free port, the stack is rendered again
 * and the start tried again. Servers only reference servers started before them (PgBouncer its PostgreSQL, each
 * exporter its server, Prometheus every metric source), so nothing running reads the port that moved.
 */
export async function onPlacedPort<T>(
  rendered: Rendered,
  server: keyof PlacementPorts,
  start: (rendered: Rendered) => Promise<T>,
): Promise<{ readonly started: T; readonly rendered: Rendered }> {
  let current = rendered;
  for (let attempt = 1; ; attempt++) {
    try {
      return { started: await start(current), rendered: current };
    } catch (error) {
      if (!(error instanceof PortInUseError) || attempt >= portAttempts) throw error;
      current = renderedWith(current, { ports: { [server]: await freeLoopbackPort() } });
    }
  }
}

/** Writes a rendered file exactly where the placement says, through the scratch directory that holds that path. */
function writePlaced(dir: ScratchDir, placed: string, text: string, mode?: number): void {
  dir.writeFile(entryIn(dir.path, placed), text, mode);
}

/**
 * A rendered launch as a rig server (local/runtime/launch.ts): program, arguments (listen address included) and
 * environment exactly as rendered, the secrets it names filled in (in its environment only), on the launch's port.
 */
function startLaunch(
  runtime: Runtime,
  launch: Launch,
  scratch: ScratchDir,
  secrets: Readonly<Record<SecretInput, string>>,
  readyPath = "/metrics",
): Promise<HttpServer> {
  return startRigLaunch({ runtime, launch, scratch, secretEnv: filledSecretEnv(launch, secrets), readyPath });
}

/** `runtime` whose spawn of `program` first awaits `before` and appends the options it returns. */
function beforeSpawning(runtime: Runtime, program: ProgramName, before: () => Promise<readonly string[]>): Runtime {
  return {
    ...runtime,
    spawn: async (p, args, opts) => (p === program ? runtime.spawn(p, [...args, ...(await before())], opts) : runtime.spawn(p, args, opts)),
  };
}

/**
 * 1. Where this run puts things: a scratch directory per server and a free loopback port per server, the stack
 * rendered for them. Every later step runs what this rendering (or one after a server moved) says.
 */
async function placement(ctx: Pick<Built, "runtime">, host: StepHost): Promise<Pick<Built, "dirs" | "rendered">> {
  const dir = (label: string): ScratchDir => ctx.runtime.scratchDir(label);
  const dirs: ClusterDirs = {
    postgres: dir("postgres"),
    pgbouncer: dir("pgbouncer"),
    postgresExporter: dir("postgres-exporter"),
    pgbouncerExporter: dir("pgbouncer-exporter"),
    nodeExporter: dir("node-exporter"),
    mtail: dir("mtail"),
    canary: dir("canary"),
    prometheus: dir("prometheus"),
    tls: dir("tls"),
  };
  const port = freeLoopbackPort;
  const ports: PlacementPorts = {
    postgres: await port(),
    pgbouncer: await port(),
    postgresExporter: await port(),
    pgbouncerExporter: await port(),
    nodeExporter: await port(),
    mtail: await port(),
    canary: await port(),
    prometheus: await port(),
  };
  const placed = clusterPlacement({
    ports,
    // As the programs see them: inside the rootfs under chroot.
    dirs: {
      postgres: dirs.postgres.path,
      pgbouncer: dirs.pgbouncer.path,
      postgresExporter: dirs.postgresExporter.path,
      mtail: dirs.mtail.path,
      prometheus: dirs.prometheus.path,
      tls: dirs.tls.path,
    },
    pgdataEntry: postgresDataEntry,
    intervals: host.monitoring,
    clientTls: host.clientTls,
  });
  return { dirs, rendered: renderStack(host.spec, placed) };
}

/** The CA's key beside the files the servers read, but root's alone (0600): kept for renewals, read by nobody else. */
const caKeyEntry = "ca.key";

/** Lifetime of a cluster's CA: twice the certificates' and a day, so a renewal at any point stays inside it. */
function caValidityMs(certificateValidityMs: number): number {
  return 2 * certificateValidityMs + 86_400_000;
}

/**
 * 2. TLS: the cluster's CA (a new throw-away one unless the caller gives one) and a server certificate from it for
 * the rendered server names, written where the placement says — checked first, so a bad one stops the start before
 * anything runs. PostgreSQL and PgBouncer present it; every client verifies it with the CA (sslmode=verify-full).
 */
async function certificates(ctx: Pick<Built, "runtime" | "rendered" | "dirs">, host: StepHost): Promise<Pick<Built, "tls">> {
  const { rendered } = ctx;
  const validMs = rendered.tls.certificateValidityMs;
  const ca = host.tls?.ca ?? (await createCertificateAuthority({ commonName: `pgvector-stack perf cluster ${host.name} CA`, validMs: caValidityMs(validMs) }));
  host.checkpoint();
  const dir = ctx.dirs.tls;
  // Root's only, not the postgres user's: no server needs it. Written before the certificate so a renewal always finds it.
  fs.writeFileSync(dir.hostPathOf(caKeyEntry), ca.keyPem, { mode: 0o600 });
  writePlaced(dir, rendered.placement.paths.tlsCa, ca.certificatePem, 0o644);
  const request = host.tls?.certificate ?? {};
  const material = request.provided ?? (await issueServerCertificate(ca, { names: rendered.tls.serverNames, validMs: request.validMs ?? validMs }));
  const certificate = installCertificate(ctx.runtime, dir, rendered, ca, material, request.keyMode, `cluster ${host.name}`);
  host.progress.step(`TLS: a CA for this cluster and a server certificate for ${[...rendered.tls.serverNames.dns, ...rendered.tls.serverNames.ips].join(", ")} (${describeCertificate(certificate)})`);
  return { tls: { ca, caHostPath: dir.hostPathOf(entryIn(dir.path, rendered.placement.paths.tlsCa)), certificate } };
}

/**
 * Puts a server certificate and its key where the placement says, and only if both pass: it chains to the cluster's
 * CA, is valid now, carries the rendered server names, and its key file is one PostgreSQL accepts (checked on the
 * file as written, beside the old one). Each file replaces the old by a rename; nothing is changed when a check
 * fails. Whether the key belongs to the certificate the servers check themselves when they load them.
 */
function installCertificate(
  runtime: Runtime,
  dir: ScratchDir,
  rendered: Rendered,
  ca: CertificateAuthority,
  material: ServerCertificate,
  keyMode: number | undefined,
  who: string,
): CertificateFacts {
  const { paths } = rendered.placement;
  const problems = certificateProblems({ caPem: ca.certificatePem, certificatePem: material.certificatePem, names: rendered.tls.serverNames });
  const keyEntry = entryIn(dir.path, paths.tlsKey);
  const certificateEntry = entryIn(dir.path, paths.tlsCertificate);
  const staged = { key: `${keyEntry}.new`, certificate: `${certificateEntry}.new` };
  if (problems.length === 0) {
    dir.writeFile(staged.key, material.keyPem, keyMode ?? 0o600);
    const keyProblem = keyFileProblem(dir.hostPathOf(staged.key), runtime.postgresUser.uid);
    if (keyProblem !== undefined) problems.push(keyProblem.replace(dir.hostPathOf(staged.key), runtime.hostPath(paths.tlsKey)));
  }
  if (problems.length > 0) {
    fs.rmSync(dir.hostPathOf(staged.key), { force: true });
    throw new Error(`${who}: the server certificate was refused and nothing was installed: ${problems.join("; ")}`);
  }
  dir.writeFile(staged.certificate, material.certificatePem, 0o644);
  fs.renameSync(dir.hostPathOf(staged.key), dir.hostPathOf(keyEntry));
  fs.renameSync(dir.hostPathOf(staged.certificate), dir.hostPathOf(certificateEntry));
  return certificateFacts(material.certificatePem);
}

/**
 * 3. Whether to reserve huge pages at all (root, the kernel's page size, --no-huge-pages). The pages themselves are
 * reserved by the postgres step, from inside its spawn, right before PostgreSQL maps its shared memory.
 */
async function decideHugePages(ctx: Pick<Built, "rendered">, host: StepHost): Promise<Pick<Built, "hugePagesIntent">> {
  const { memory } = ctx.rendered;
  let hostPageBytes: number | undefined;
  try {
    hostPageBytes = host.pool.meminfo().pageBytes;
  } catch {
    hostPageBytes = undefined;
  }
  const intent = hugePagesIntent({
    setting: memory.hugePagesSetting,
    pages: memory.hugePages,
    disabled: !host.hugePagesWanted,
    uid: process.getuid?.() ?? -1,
    hostPageBytes,
  });
  return { hugePagesIntent: intent };
}

/**
 * Huge pages for one PostgreSQL start, decided and reserved when postgres is spawned (after initdb, milliseconds
 * before it maps its shared memory): any other PostgreSQL on this host runs with huge_pages = try by default and takes
 * free pages it finds, so the window between reserving and mapping is kept that short. Where they cannot be used,
 * postgres gets `-c huge_pages=off` and the reason is kept for the report; where they are reserved and the file says
 * `try`, it gets `-c huge_pages=on`, so a missing page is a start failure rather than a quiet 4 kB start.
 */
function hugePagesAtSpawn(host: StepHost, memory: RenderedMemory, intent: HugePagesIntent) {
  let status: HugePagesStatus | undefined;
  let reserveAgain = false;
  let overrides: string[] = [];
  const off = (reason: string): void => {
    overrides = memory.hugePagesSetting === "off" ? [] : ["-c", "huge_pages=off"];
    status = { used: false, requested: memory.hugePages, reserved: host.recordedHugePages(), reason, serverStatus: null, serverPages: null };
    host.progress.warn(`huge pages: ${describeHugePages(status)}`);
  };
  return {
    /** The `-c` options postgres gets after the rig's own, reserving the pages first when that is the plan. */
    async beforeSpawn(): Promise<readonly string[]> {
      host.checkpoint();
      if (status !== undefined && !reserveAgain) return overrides;
      const again = reserveAgain;
      reserveAgain = false;
      if (!intent.reserve) {
        off(intent.reason);
        return overrides;
      }
      const pages = memory.hugePages;
      const before = host.recordedHugePages();
      host.progress.step(`huge pages: reserving ${pages} pages (${humanBytes(pages * hugePageBytes)}) on top of the ${host.pool.readNr()} already in the pool`);
      const result = await reserveHugePages(pages, (added) => host.recordHugePages({ requested: pages, added: before + added, released: false }), host.pool);
      if (!result.ok) {
        off(again ? `another process took the pages reserved first, and then ${result.reason}` : result.reason);
      } else {
        overrides = memory.hugePagesSetting === "on" ? [] : ["-c", "huge_pages=on"];
        status = { used: true, requested: pages, reserved: before + result.added, reason: null, serverStatus: null, serverPages: null };
      }
      return overrides;
    },
    /** The decision, once postgres was spawned. */
    status(): HugePagesStatus {
      if (status === undefined) throw new Error("PostgreSQL started without the huge pages decision (a bug in local/cluster.ts)");
      return status;
    },
    /** Whether a start failed because another process took the reserved pages between reserving and mapping. */
    takenBy(error: unknown): boolean {
      return status?.used === true && /could not map anonymous shared memory/.test((error as Error).message ?? "");
    },
    /** The next spawn reserves again (the pages reserved so far stay recorded and are given back at teardown). */
    again(): void {
      reserveAgain = true;
    },
  };
}

/**
 * 4. PostgreSQL with the rendered postgresql.conf and pg_hba.conf as they are (`placed`: the conf says its port,
 * listen address and socket directory; the rig adds no `-c` of its own), its data directory and socket where the
 * placement says. Started once more (in a fresh directory: initdb cannot run twice in one) when another process took
 * its port, or took the huge pages reserved for it.
 */
async function postgres(
  ctx: Pick<Built, "runtime" | "rendered" | "dirs" | "hugePagesIntent" | "tls">,
  host: StepHost,
): Promise<Pick<Built, "postgres" | "hugePages" | "rendered" | "dirs">> {
  const { spec, memory } = ctx.rendered;
  host.progress.step(
    `PostgreSQL ${ctx.runtime.versions.postgres}: initdb and start for ${humanBytes(spec.node.memoryBytes)} RAM (shared_buffers ${pgMemory(memory.sharedBuffersBytes)}, ` +
      `${humanBytes(memory.sharedMemoryBytes)} of shared memory, ${memory.hugePages} huge pages planned)`,
  );
  const pages = hugePagesAtSpawn(host, memory, ctx.hugePagesIntent);
  const runtime = beforeSpawning(ctx.runtime, "postgres", () => pages.beforeSpawn());
  let rendered = ctx.rendered;
  let dir = ctx.dirs.postgres;
  let pagesRetried = false;
  for (let attempt = 1; ; attempt++) {
    try {
      const { paths } = rendered.placement;
      if (paths.pgdata !== dir.pathOf(postgresDataEntry) || paths.postgresSocketDir !== dir.path) {
        throw new Error(`the placement puts PGDATA at ${paths.pgdata} and the socket in ${paths.postgresSocketDir}, not in ${dir.path} (a bug in local/cluster.ts)`);
      }
      const server = await startPostgres({
        runtime,
        scratch: dir,
        placed: true,
        port: rendered.placement.ports.postgres,
        caHostPath: ctx.tls.caHostPath,
        postgresqlConf: rendered.files["postgresql.conf"],
        pgHbaConf: rendered.files["pg_hba.conf"],
        pgIdentConf: rendered.files["pg_ident.conf"],
        superuserPassword: host.passwords.superuser,
      });
      return { postgres: server, hugePages: pages.status(), rendered, dirs: { ...ctx.dirs, postgres: dir } };
    } catch (error) {
      const portTaken = error instanceof PortInUseError;
      const pagesTaken = !portTaken && !pagesRetried && pages.takenBy(error);
      if (!(portTaken || pagesTaken) || attempt >= portAttempts) throw error;
      if (pagesTaken) {
        const now = host.pool.meminfo();
        host.progress.warn(
          `huge pages: PostgreSQL could not map the ${pages.status().reserved} pages reserved for it — another process took them first ` +
            `(now HugePages_Free ${now.free}, HugePages_Rsvd ${now.reserved}; a PostgreSQL with huge_pages = try elsewhere on this host ` +
            `takes any free page). Reserving again and starting once more`,
        );
        pagesRetried = true;
        pages.again();
      }
      dir = ctx.runtime.scratchDir("postgres");
      rendered = renderedWith(rendered, {
        ports: portTaken ? { postgres: await freeLoopbackPort() } : {},
        paths: { pgdata: dir.pathOf(postgresDataEntry), postgresSocketDir: dir.path },
      });
    }
  }
}

/** 5. Roles, the app database, CREATE EXTENSION vector; then a check that huge pages really are in use. */
async function bootstrap(ctx: Pick<Built, "runtime" | "rendered" | "postgres" | "hugePages" | "tls">, host: StepHost): Promise<Pick<Built, "verifiers" | "hugePages">> {
  const { rendered } = ctx;
  const { roles } = rendered;
  host.progress.step(`PostgreSQL on 127.0.0.1:${ctx.postgres.port}: roles ${roles.app}, ${roles.monitor}; database ${rendered.spec.postgres.database} with CREATE EXTENSION vector`);
  const verifiers = clusterVerifiers(roles, host.passwords);
  await ctx.postgres.psql(clusterBootstrapSql(rendered, verifiers));
  const server = await checkHugePages(superuserSocketUrl(rendered, ctx.runtime.hostPath(rendered.placement.paths.postgresSocketDir)), ctx.hugePages, host.progress);
  return { verifiers, hugePages: { ...ctx.hugePages, ...server } };
}

/** 6. PgBouncer with the rendered pgbouncer.ini; its auth_file, where the ini says, holds verifiers only. */
async function pgbouncer(ctx: Pick<Built, "runtime" | "rendered" | "dirs" | "verifiers" | "tls">, host: StepHost): Promise<Pick<Built, "pgbouncer" | "rendered">> {
  const dir = ctx.dirs.pgbouncer;
  const placed = await onPlacedPort(ctx.rendered, "pgbouncer", (rendered) => {
    writePlaced(dir, rendered.placement.paths.pgbouncerAuthFile, clusterUserlist(rendered.roles, ctx.verifiers));
    // `placed`: PgBouncer reads the rendered ini byte for byte (listen address and port, auth_file, no socket, no pid
    // file; it logs to stderr, which the rig captures, and to the placement's logfile in this directory, which mtail
    // follows).
    return startPgBouncer({
      runtime: ctx.runtime,
      scratch: dir,
      ini: rendered.files["pgbouncer.ini"],
      port: rendered.placement.ports.pgbouncer,
      placed: true,
      caHostPath: ctx.tls.caHostPath,
    });
  });
  const { rendered } = placed;
  const urls = clusterUrls(rendered, host.passwords, ctx.tls.caHostPath);
  host.progress.step(`PgBouncer ${ctx.runtime.versions.pgbouncer} on 127.0.0.1:${placed.started.port} (${rendered.spec.pgbouncer.poolMode} pooling, SCRAM)`);
  // pgbouncer_exporter 0.10 exits when it cannot log in at start-up: log in as it will before starting it.
  await checkLogin(urls.pooled, "SELECT 1", `${rendered.roles.app} through PgBouncer`, host);
  await checkLogin(urls.stats, "SHOW VERSION", `${rendered.roles.stats} on PgBouncer's admin console`, host);
  return { pgbouncer: placed.started, rendered };
}

/** 7. postgres_exporter (its queries file where the placement says), pgbouncer_exporter and node_exporter. */
async function exporters(
  ctx: Pick<Built, "runtime" | "rendered" | "dirs" | "tls">,
  host: StepHost,
): Promise<Pick<Built, "postgresExporter" | "pgbouncerExporter" | "nodeExporter" | "rendered">> {
  const { runtime, dirs } = ctx;
  let rendered = ctx.rendered;
  const place = async (server: "postgresExporter" | "pgbouncerExporter" | "nodeExporter", start: (r: Rendered) => Promise<HttpServer>) => {
    const placed = await onPlacedPort(rendered, server, start);
    rendered = placed.rendered;
    return placed.started;
  };
  const secrets = (r: Rendered) => secretInputs(r, host.passwords, ctx.tls.caHostPath);
  const postgresExporter = await place("postgresExporter", (r) => {
    writePlaced(dirs.postgresExporter, r.placement.paths.postgresExporterQueries, r.files["postgres-exporter-queries.yaml"], 0o644);
    return startLaunch(runtime, r.launches.postgresExporter, dirs.postgresExporter, secrets(r));
  });
  const pgbouncerExporter = await place("pgbouncerExporter", (r) => startLaunch(runtime, r.launches.pgbouncerExporter, dirs.pgbouncerExporter, secrets(r)));
  const nodeExporter = await place("nodeExporter", (r) => startLaunch(runtime, r.launches.nodeExporter, dirs.nodeExporter, secrets(r)));
  host.progress.step(
    `exporters: postgres_exporter :${postgresExporter.port}, pgbouncer_exporter :${pgbouncerExporter.port}, node_exporter :${nodeExporter.port}`,
  );
  return { postgresExporter, pgbouncerExporter, nodeExporter, rendered };
}

/**
 * 8. mtail, as the rig's postgres user, following the logging collector's files in PGDATA with the rendered program
 * and flags, as on the container targets: the metric source the exporters lack (docs/runbooks.md, "Metric sources").
 */
async function mtail(ctx: Pick<Built, "runtime" | "rendered" | "dirs" | "tls">, host: StepHost): Promise<Pick<Built, "mtail" | "rendered">> {
  const dir = ctx.dirs.mtail;
  const placed = await onPlacedPort(ctx.rendered, "mtail", (rendered) => {
    writePlaced(dir, `${rendered.placement.paths.mtailPrograms}/${mtailProgramFile}`, rendered.files["postgresql.mtail"], 0o644);
    return startLaunch(ctx.runtime, rendered.launches.mtail, dir, secretInputs(rendered, host.passwords, ctx.tls.caHostPath));
  });
  host.progress.step(`mtail ${ctx.runtime.versions.mtail} :${placed.started.port} following PostgreSQL's and PgBouncer's logs`);
  return { mtail: placed.started, rendered: placed.rendered };
}

/** 9. The canary: a process of this host (Node, not the rootfs), recorded like the rig's servers the moment it exists. */
async function canary(ctx: Pick<Built, "rendered" | "dirs" | "tls">, host: StepHost): Promise<Pick<Built, "canary" | "rendered">> {
  const placed = await onPlacedPort(ctx.rendered, "canary", (rendered) =>
    startCanaryProcess({
      scratch: ctx.dirs.canary,
      launch: rendered.launches.canary,
      secretEnv: filledSecretEnv(rendered.launches.canary, secretInputs(rendered, host.passwords, ctx.tls.caHostPath)),
      onSpawn: (server) => {
        host.track(server, "SIGTERM");
        // As for the rig's servers: a stop that came meanwhile has stopped the others; this one goes with them.
        host.checkpoint();
      },
    }),
  );
  host.progress.step(
    `canary :${placed.started.port} (search, hybrid, insert through PgBouncer every ${placed.rendered.placement.intervals.canaryMs / 1000} s)`,
  );
  return { canary: placed.started, rendered: placed.rendered };
}

/** 10. Prometheus with the rendered prometheus.yml and alert rules where the placement says; every target up. */
async function prometheus(ctx: Pick<Built, "runtime" | "rendered" | "dirs" | "tls">, host: StepHost): Promise<Pick<Built, "prometheus" | "rendered">> {
  const dir = ctx.dirs.prometheus;
  const placed = await onPlacedPort(ctx.rendered, "prometheus", (rendered) => {
    const launch = rendered.launches.prometheus;
    const config = rendered.files["prometheus.yml"];
    if (launch === null || config === undefined) throw new Error(`the perf cluster's placement runs Prometheus, but stack ${rendered.spec.stack} rendered none`);
    writePlaced(dir, rendered.placement.paths.prometheusConfig, config, 0o644);
    writePlaced(dir, rendered.placement.paths.alertRules, rendered.files["alert-rules.yaml"], 0o644);
    return startLaunch(ctx.runtime, launch, dir, secretInputs(rendered, host.passwords, ctx.tls.caHostPath), "/-/ready");
  });
  const { rendered } = placed;
  host.progress.step(`Prometheus ${ctx.runtime.versions.prometheus} on ${placed.started.url}: waiting for the first scrape of every target and the alert rules`);
  await checkPrometheus(placed.started.url, rendered.scrapeJobs.length, alertRuleGroupNames(rendered), host);
  return { prometheus: placed.started, rendered };
}

/** The steps of a start, in order. */
const steps = [
  step("placement", ["runtime"], placement),
  step("certificates", ["runtime", "rendered", "dirs"], certificates),
  step("huge-pages", ["rendered"], decideHugePages),
  step("postgres", ["runtime", "rendered", "dirs", "hugePagesIntent", "tls"], postgres),
  step("bootstrap", ["runtime", "rendered", "postgres", "hugePages", "tls"], bootstrap),
  step("pgbouncer", ["runtime", "rendered", "dirs", "verifiers", "tls"], pgbouncer),
  step("exporters", ["runtime", "rendered", "dirs", "tls"], exporters),
  step("mtail", ["runtime", "rendered", "dirs", "tls"], mtail),
  step("canary", ["rendered", "dirs", "tls"], canary),
  step("prometheus", ["runtime", "rendered", "dirs", "tls"], prometheus),
] as const;

export type ClusterStepName = (typeof steps)[number]["name"];

/** The names of the steps, in order; `failAfter` (or PGSTACK_LOCAL_FAIL_AFTER) makes the start throw after one. */
export const clusterSteps: readonly ClusterStepName[] = steps.map((s) => s.name);

/** The ports of the servers started so far, and the URLs that reach them, for the state file. */
function startedFacts(ctx: Readonly<Partial<Built>>, passwords: ClusterPasswords): { ports: Record<string, number>; urls: Record<string, string> } {
  const ports: Record<string, number> = {};
  for (const server of serverKeys) {
    const started = ctx[server];
    if (started !== undefined) ports[server] = started.port;
  }
  const urls = ctx.rendered === undefined || ctx.tls === undefined ? undefined : clusterUrls(ctx.rendered, passwords, ctx.tls.caHostPath);
  return {
    ports,
    urls: {
      ...(urls !== undefined && ctx.pgbouncer !== undefined ? { pooled: urls.pooled, direct: urls.direct } : {}),
      ...(urls !== undefined && ctx.prometheus !== undefined ? { prometheus: urls.prometheus } : {}),
    },
  };
}

// ---- the cluster --------------------------------------------------------------------------------------------------

export class LocalCluster {
  readonly name: string;
  readonly spec: StackSpec;
  private readonly progress: Progress;
  private readonly root: string;
  private readonly pool: HugePagesPool;
  /** This run's passwords; `rotatePassword` replaces one (the StepHost and the state file see the same object). */
  private readonly passwords: { -readonly [K in RoleKind]: string } = { ...generatePasswords() };
  /** Every password this cluster has had, rotated ones too: what is masked in anything printed. */
  private readonly everyPassword: string[] = passwordList(this.passwords);
  /** Every server started, in start order, recorded by the runtime's spawn the moment it exists: what a stop ends. */
  private readonly servers: ServerProcess[] = [];
  /** Servers ended on purpose by `stopServer` (an outage drill): their exit is not unexpected. */
  private readonly drilled = new Set<ServerProcess>();
  private readonly scratchDirs: ScratchDir[] = [];
  private state: ClusterState | undefined;
  private startPromise: Promise<ClusterInfo> | undefined;
  private stopPromise: Promise<ClusterStopReport> | undefined;
  private stopRequested = false;
  /** What a finished start built, frozen: what renewals and drills work on. */
  private up: Readonly<{ info: ClusterInfo; rendered: Rendered; built: Pick<Built, "runtime" | "dirs" | "tls" | "postgres" | "pgbouncer" | "verifiers"> }> | undefined;
  /** What the steps may use of the cluster. */
  private readonly host: StepHost;
  private reportExit: (message: string) => void = () => undefined;
  /**
   * Settles with a message when one of the cluster's servers exits on its own (a crash, an OOM kill), never when
   * `stop()` ends it: `local up` waits on this to tear down instead of serving a half-dead cluster.
   */
  readonly unexpectedExit: Promise<string> = new Promise((resolve) => {
    this.reportExit = resolve;
  });

  constructor(private readonly options: StartClusterOptions) {
    this.name = options.name;
    this.spec = options.spec;
    this.progress = options.progress ?? silentProgress;
    this.root = options.stateRoot ?? defaultStateRoot;
    this.pool = options.hugePagesPool ?? kernelHugePages();
    if (this.spec.target !== "local") {
      throw new Error(
        `stack ${this.spec.stack} targets ${this.spec.target}; the perf cluster runs stacks of target: local, which it renders for its own placement ` +
          `(ports and directories of this run)`,
      );
    }
    const problems = placementProblems(localPlacement({ intervals: options.monitoring, clientTls: options.clientTls }));
    if (problems.length > 0) throw new Error(`cluster ${options.name}: ${problems.join("; ")}`);
    const failAfter = options.failAfter ?? process.env[failAfterEnv];
    if (failAfter !== undefined && failAfter !== "" && !(clusterSteps as readonly string[]).includes(failAfter)) {
      throw new Error(`${failAfterEnv}="${failAfter}" is not a step; use one of ${clusterSteps.join(", ")}`);
    }
    this.host = {
      name: this.name,
      spec: this.spec,
      tls: options.tls,
      progress: this.progress,
      passwords: this.passwords,
      secrets: this.everyPassword,
      monitoring: options.monitoring,
      clientTls: options.clientTls,
      hugePagesWanted: options.hugePages !== false,
      pool: this.pool,
      checkpoint: () => this.checkpoint(),
      recordedHugePages: () => this.recordedHugePages(),
      recordHugePages: (pages) => this.record({ hugePages: pages }),
      track: (server, stopSignal) => this.track(server, stopSignal),
    };
  }

  /** Everything about the running cluster; throws before `start()` has finished. */
  get info(): ClusterInfo {
    if (this.up === undefined) throw new Error(`cluster ${this.name} is not up`);
    return this.up.info;
  }

  /** The stack as rendered for this run's placement (its ports and paths); throws before `start()` has finished. */
  get rendered(): Rendered {
    if (this.up === undefined) throw new Error(`cluster ${this.name} is not up`);
    return this.up.rendered;
  }

  get stateFile(): string {
    return stateFilePath(this.root, this.name);
  }

  /** The generated passwords (and any rotated away), for masking them in anything printed. */
  get secrets(): readonly string[] {
    return [...this.everyPassword];
  }

  /**
   * Rotates one role's password on the running cluster as a `pulumi up` with a changed `<kind>Password` does on the
   * targets: a new SCRAM verifier goes to PostgreSQL first (the rendered roles.sql and every verifier, run again on
   * the socket as the superuser: the same idempotent script a start runs), then into PgBouncer's auth_file, which
   * PgBouncer re-reads on RELOAD (SIGHUP) without dropping a client. From then on the new password logs in, directly
   * and through PgBouncer, and the old one is refused; sessions already open stay open. The application-facing roles
   * only (owner, app, readOnly): the canary's and the exporters' passwords are this run's own, held by processes the
   * cluster started. Returns the new URLs in `info`.
   */
  rotatePassword(kind: "owner" | "app" | "readOnly", password: string = generatePassword()): Promise<ClusterInfo> {
    const rotation = this.renewal.catch(() => undefined).then(() => this.rotateOnce(kind, password));
    this.renewal = rotation;
    return rotation;
  }

  private async rotateOnce(kind: "owner" | "app" | "readOnly", password: string): Promise<ClusterInfo> {
    if (!(["owner", "app", "readOnly"] as const).includes(kind)) {
      throw new Error(`cluster ${this.name}: rotatePassword rotates owner, app or readOnly, not "${String(kind)}"`);
    }
    if (password.length === 0) throw new Error(`cluster ${this.name}: the new ${kind} password is empty`);
    const { rendered, built, info } = this.running();
    const role = rendered.roles.plan.names[kind];
    this.everyPassword.push(password);
    const verifiers = { ...built.verifiers, [role]: scramVerifier(password, randomBytes(scramSaltBytes)) };
    // PostgreSQL first: PgBouncer must never hold a verifier PostgreSQL does not have yet (its SCRAM pass-through
    // would log in to PostgreSQL with keys PostgreSQL cannot check).
    await built.postgres.psql(clusterBootstrapSql(rendered, verifiers));
    writePlaced(built.dirs.pgbouncer, rendered.placement.paths.pgbouncerAuthFile, clusterUserlist(rendered.roles, verifiers));
    process.kill(built.pgbouncer.process.pid, "SIGHUP");
    this.passwords[kind] = password;
    const up = { ...built, verifiers };
    const urls = clusterUrls(rendered, this.passwords, built.tls.caHostPath);
    const next: ClusterInfo = Object.freeze({ ...info, pooledUrl: urls.pooled, directUrl: urls.direct, readOnlyUrl: urls.readOnly });
    this.up = Object.freeze({ info: next, rendered, built: up });
    this.record({ passwords: { ...this.passwords }, urls: { pooled: urls.pooled, direct: urls.direct } });
    this.progress.step(`roles: ${role}'s password rotated (PostgreSQL, then PgBouncer's auth_file and RELOAD)`);
    return next;
  }

  /** Brings the whole cluster up. On any failure it tears down what it started before rethrowing. */
  async start(): Promise<ClusterInfo> {
    if (this.startPromise) throw new Error(`cluster ${this.name} was already started`);
    this.startPromise = this.run();
    try {
      return await this.startPromise;
    } catch (error) {
      // After a stop request the start fails however it happens to (a server killed under its readiness check…).
      const reason = this.stopRequested ? new StopRequested(`cluster ${this.name}: start interrupted by a stop`) : error;
      if (reason instanceof Error) {
        reason.message = maskSecrets(reason.message, this.secrets);
        reason.stack = maskSecrets(reason.stack ?? "", this.secrets);
      }
      // The unwinding: every server started so far, newest first, then directories and huge pages.
      await this.stop().catch((stopError: Error) => {
        if (reason instanceof Error) reason.message += `\nand the teardown after it failed too: ${stopError.message}`;
      });
      throw reason;
    }
  }

  /** Stops everything this cluster started, gives back its huge pages and removes its state file. Idempotent. */
  stop(): Promise<ClusterStopReport> {
    this.stopRequested = true;
    this.stopPromise ??= this.teardown();
    return this.stopPromise;
  }

  /** Current values of `reportedSettings` from the running server, plus pgvector's version in the app database. */
  async settings(): Promise<Record<string, string>> {
    const { rendered } = this;
    const client = await connect(superuserSocketUrl(rendered, this.running().built.runtime.hostPath(rendered.placement.paths.postgresSocketDir), rendered.spec.postgres.database), "pgstack-local");
    try {
      const rows = await client.query<{ name: string; value: string }>(
        "SELECT name, current_setting(name) AS value FROM unnest($1::text[]) AS name",
        [reportedSettings],
      );
      const out: Record<string, string> = Object.fromEntries(rows.rows.map((r) => [r.name, r.value]));
      const ext = await client.query<{ v: string }>("SELECT extversion AS v FROM pg_extension WHERE extname = 'vector'");
      out.pgvector = ext.rows[0]?.v ?? "not installed";
      return out;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /**
   * A server certificate from this cluster's CA for the rendered server names, not installed: `renewCertificate`
   * installs one. `notBefore` in the past with a short `validMs` makes an expired one (tests of the checks).
   */
  async issueCertificate(opts: { readonly validMs?: number; readonly notBefore?: Date } = {}): Promise<ServerCertificate> {
    const { rendered, built } = this.running();
    return issueServerCertificate(built.tls.ca, { names: rendered.tls.serverNames, validMs: opts.validMs ?? rendered.tls.certificateValidityMs, notBefore: opts.notBefore });
  }

  /**
   * Renews the server certificate without a restart: a new certificate and key (from the cluster's CA, or `provided`)
   * checked and put in place, then PostgreSQL (SIGHUP, as pg_reload_conf() sends) and PgBouncer (SIGHUP, its RELOAD)
   * re-read them, and both are asked for the certificate they now serve. A certificate the checks refuse changes
   * nothing. One the servers refuse (a key that does not match it: both keep the old pair and log why) is taken out
   * again, the old files put back and re-read, and the error names what they logged; the old certificate stays served
   * throughout. Sessions open across the renewal keep their TLS session.
   */
  renewCertificate(request: CertificateRequest = {}): Promise<RenewedCertificate> {
    // One at a time: a second renewal's files must not replace the first's while its reload is being checked.
    const renewal = this.renewal.catch(() => undefined).then(() => this.renewOnce(request));
    this.renewal = renewal;
    return renewal;
  }

  private renewal: Promise<unknown> = Promise.resolve();

  private async renewOnce(request: CertificateRequest): Promise<RenewedCertificate> {
    const { rendered, built } = this.running();
    const { runtime, dirs, tls } = built;
    const who = `cluster ${this.name}: renewing the certificate`;
    const material =
      request.provided ?? (await issueServerCertificate(tls.ca, { names: rendered.tls.serverNames, validMs: request.validMs ?? rendered.tls.certificateValidityMs }));
    const { paths } = rendered.placement;
    const previous = { certificatePem: fs.readFileSync(runtime.hostPath(paths.tlsCertificate), "utf8"), keyPem: fs.readFileSync(runtime.hostPath(paths.tlsKey), "utf8") };
    const servers = { postgres: built.postgres, pgbouncer: built.pgbouncer };
    const pids = { postgres: servers.postgres.process.pid, pgbouncer: servers.pgbouncer.process.pid };
    const down = Object.entries(servers).filter(([, server]) => server.process.exitStatus() !== undefined);
    if (down.length > 0) throw new Error(`${who}: ${down.map(([name]) => name).join(" and ")} is not running (stopped by stopServer?); nothing was changed`);
    const wanted = installCertificate(runtime, dirs.tls, rendered, tls.ca, material, request.keyMode, who);
    const logs = { postgres: () => servers.postgres.logText(), pgbouncer: () => readText(servers.pgbouncer.logFile) };
    const reload = async (expected: string): Promise<Record<keyof typeof servers, { serial: string; logged: string }>> => {
      const before = { postgres: logs.postgres().length, pgbouncer: logs.pgbouncer().length };
      for (const server of Object.values(servers)) process.kill(server.process.pid, "SIGHUP");
      const served = await Promise.all(
        (["postgres", "pgbouncer"] as const).map(async (name) => {
          const serial = await this.servedSerialOnceSettled(servers[name].port, expected, () => refusedReload.test(logs[name]().slice(before[name])));
          return [name, { serial, logged: logs[name]().slice(before[name]) }] as const;
        }),
      );
      return Object.fromEntries(served) as Record<keyof typeof servers, { serial: string; logged: string }>;
    };
    const outcome = await reload(wanted.serial);
    const refused = (["postgres", "pgbouncer"] as const).filter((name) => outcome[name].serial !== wanted.serial);
    if (refused.length > 0) {
      // Back to the pair the servers still serve, so the files on disk are what runs (and what a restart would load).
      const restored = installCertificate(runtime, dirs.tls, rendered, tls.ca, previous, undefined, `${who} (putting the old one back)`);
      await reload(restored.serial);
      const said = refused.map((name) => {
        const lines = outcome[name].logged.split("\n").filter((line) => /SSL|TLS|certificate|private key|key values/i.test(line));
        return `${name} kept serving serial ${outcome[name].serial}${lines.length > 0 ? ` and logged: ${lines.map((l) => l.trim()).join(" | ")}` : " and logged nothing about it"}`;
      });
      throw new Error(`${who}: the servers refused serial ${wanted.serial}: ${said.join("; ")}. The previous certificate and key are back in place`);
    }
    for (const [name, pid] of Object.entries(pids)) {
      const now = servers[name as keyof typeof servers].process;
      if (now.exitStatus() !== undefined || now.pid !== pid) throw new Error(`${who}: ${name} (pid ${pid}) is no longer running after the reload`);
    }
    this.progress.step(`TLS: renewed without a restart, PostgreSQL and PgBouncer serve ${describeCertificate(wanted)}`);
    return { ...wanted, pids };
  }

  /**
   * The serial the server on `port` serves once it settled after a reload: `expected` as soon as it shows, else what
   * it still serves once it logged that it kept its old TLS configuration (`refused`), or after 10 s.
   */
  private async servedSerialOnceSettled(port: number, expected: string, refused: () => boolean): Promise<string> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const serial = certificateFacts(await servedCertificate(port)).serial;
      if (serial === expected || refused() || Date.now() > deadline) return serial;
      await delay(100);
    }
  }

  private running(): NonNullable<LocalCluster["up"]> {
    if (this.up === undefined || this.stopRequested) throw new Error(`cluster ${this.name} is not up`);
    return this.up;
  }

  /**
   * Stops one server of the running cluster by its name in `info.logs` ("pgbouncer", "postgres", …) and leaves the
   * rest up: an outage drill, as the alert tests run to see PgBouncerDown and PostgresDown fire. `unexpectedExit`
   * does not report it; `stop()` still ends everything else.
   */
  async stopServer(name: string): Promise<void> {
    if (this.up === undefined || this.stopRequested) throw new Error(`cluster ${this.name} is not up`);
    const server = this.servers.find((s) => s.name === name);
    if (server === undefined) {
      throw new Error(`cluster ${this.name} has no running server "${name}"; it runs ${this.servers.map((s) => s.name).join(", ")}`);
    }
    this.drilled.add(server);
    // PostgreSQL's fast shutdown ends its backends and writes a checkpoint: allow it 30 s before SIGKILL.
    await server.stop(undefined, 30_000);
    this.servers.splice(this.servers.indexOf(server), 1);
  }

  // ---- start ----------------------------------------------------------------------------------------------------

  /**
   * The loop: runs each step on the context the steps before it built, freezes what it adds into the next context,
   * records the step in the state file and stops when asked to. A failing step throws out of here; `start()` unwinds.
   */
  private async run(): Promise<ClusterInfo> {
    const { progress } = this;
    const initial: ClusterState = {
      version: 1,
      name: this.name,
      stack: this.spec.stack,
      createdAt: new Date().toISOString(),
      owner: { ...ownIdentity(), kind: this.options.owner ?? "library" },
      phase: "starting",
      steps: [],
      servers: [],
      scratchDirs: [],
      hugePages: null,
      ports: {},
      urls: {},
      passwords: { ...this.passwords },
    };
    createState(this.root, initial);
    this.state = initial;
    process.on("exit", this.onExit);

    const base = this.options.runtime ?? (await getRuntime({ progress }));
    this.checkpoint();
    const v = base.versions;
    progress.step(
      `cluster ${this.name}: ${base.kind === "chroot" ? "Debian 13 rootfs (chroot)" : "native programs"} — PostgreSQL ${v.postgres}, pgvector ${v.pgvector}, ` +
        `PgBouncer ${v.pgbouncer}, postgres_exporter ${v.postgres_exporter}, pgbouncer_exporter ${v.pgbouncer_exporter}, node_exporter ${v.node_exporter}, Prometheus ${v.prometheus}`,
    );

    let ctx: Readonly<Partial<Built>> = Object.freeze({ runtime: this.recordingRuntime(base) });
    for (const { name, run } of steps) {
      this.checkpoint();
      const added = Object.freeze(await run(ctx, this.host));
      ctx = Object.freeze({ ...ctx, ...added });
      this.record({ step: name, ...startedFacts(ctx, this.passwords) });
      this.failIfAsked(name);
    }

    const built = picked(ctx, ["runtime", "dirs", "tls", "rendered", "hugePages", "verifiers", ...serverKeys], "the cluster's info");
    const info = this.clusterInfo(base, built);
    this.up = Object.freeze({ info, rendered: built.rendered, built });
    this.record({ phase: "up" });
    return info;
  }

  private clusterInfo(base: Runtime, built: Pick<Built, "runtime" | "rendered" | "hugePages" | "tls" | (typeof serverKeys)[number]>): ClusterInfo {
    const { rendered } = built;
    const ports = rendered.placement.ports;
    // Each server was started from the rendering it is placed in, and a moved one re-rendered before the next started.
    const astray = serverKeys.filter((s) => built[s].port !== ports[s]);
    if (astray.length > 0) throw new Error(`servers off their placement (a bug in local/cluster.ts): ${astray.map((s) => `${s} on ${built[s].port}, placed on ${ports[s]}`).join("; ")}`);
    const urls = clusterUrls(rendered, this.passwords, built.tls.caHostPath);
    return Object.freeze({
      name: this.name,
      stack: rendered.spec.stack,
      runtime: { kind: base.kind, versions: base.versions },
      pooledUrl: urls.pooled,
      directUrl: urls.direct,
      readOnlyUrl: urls.readOnly,
      pgbouncerAdminUrl: urls.pgbouncerAdmin,
      superuserUrl: superuserSocketUrl(rendered, built.runtime.hostPath(rendered.placement.paths.postgresSocketDir)),
      prometheusUrl: urls.prometheus,
      caPath: built.tls.caHostPath,
      ports,
      hugePages: built.hugePages,
      stateFile: this.stateFile,
      logs: {
        postgres: built.postgres.logFile,
        postgres_log_dir: built.postgres.logDir,
        pgbouncer: built.pgbouncer.logFile,
        pgbouncer_logfile: built.runtime.hostPath(rendered.placement.paths.pgbouncerLog),
        postgres_exporter: built.postgresExporter.logFile,
        pgbouncer_exporter: built.pgbouncerExporter.logFile,
        node_exporter: built.nodeExporter.logFile,
        mtail: built.mtail.logFile,
        canary: built.canary.logFile,
        prometheus: built.prometheus.logFile,
      },
    });
  }

  /** A runtime that records every server and scratch directory in the state file the moment it exists. */
  private recordingRuntime(base: Runtime): Runtime {
    return {
      ...base,
      scratchDir: (label) => {
        this.checkpoint();
        const dir = base.scratchDir(`${this.name}-${label}`);
        this.scratchDirs.push(dir);
        this.record({ scratchDir: dir.hostPath });
        return dir;
      },
      spawn: async (program, args, opts) => {
        this.checkpoint();
        const server = await base.spawn(program, args, opts);
        this.track(server, opts.stopSignal ?? "SIGTERM");
        // A stop that came while this server was being spawned has already stopped the others; end this one too.
        this.checkpoint();
        return server;
      },
    };
  }

  /** Records a server that just started (list, state file) and watches for it exiting on its own. */
  private track(server: ServerProcess, stopSignal: NodeJS.Signals): void {
    this.servers.push(server);
    const identity = processIdentity(server.pid);
    this.record({
      server: { name: server.name, pid: server.pid, startTime: identity?.startTime ?? "", stopSignal, logFile: server.logFile },
    });
    void server.exited.then((exit) => {
      // During the start, a server that dies fails the start itself (its readiness check, the huge pages retry).
      if (this.stopRequested || this.up === undefined || this.drilled.has(server)) return;
      const how = exit.code !== null ? `with code ${exit.code}` : `by ${exit.signal}`;
      this.reportExit(`${server.name} (pid ${server.pid}) exited ${how}; last lines of ${server.logFile}:\n${server.logTail(15)}`);
    });
  }

  /** Pages this cluster has added to the pool so far (all given back at teardown). */
  private recordedHugePages(): number {
    const recorded = this.state?.hugePages;
    return recorded && !recorded.released ? recorded.added : 0;
  }

  private failIfAsked(step: ClusterStepName): void {
    this.checkpoint();
    const failAfter = this.options.failAfter ?? process.env[failAfterEnv];
    if (failAfter === step) throw new Error(`failing after step "${step}" as ${this.options.failAfter ? "failAfter" : failAfterEnv} asks (a test of the teardown)`);
  }

  private checkpoint(): void {
    if (this.stopRequested) throw new StopRequested(`cluster ${this.name}: start interrupted by a stop`);
  }

  /** Updates the state file (synchronously, so nothing started can be missing from it). */
  private record(change: {
    step?: string;
    ports?: Record<string, number>;
    urls?: Record<string, string>;
    server?: ClusterState["servers"][number];
    scratchDir?: string;
    hugePages?: ClusterState["hugePages"];
    phase?: ClusterState["phase"];
    passwords?: ClusterState["passwords"];
  }): void {
    const s = this.state;
    if (s === undefined) return;
    this.state = {
      ...s,
      steps: change.step ? [...s.steps, change.step] : s.steps,
      ports: { ...s.ports, ...change.ports },
      urls: { ...s.urls, ...change.urls },
      servers: change.server ? [...s.servers, change.server] : s.servers,
      scratchDirs: change.scratchDir ? [...s.scratchDirs, change.scratchDir] : s.scratchDirs,
      hugePages: change.hugePages !== undefined ? change.hugePages : s.hugePages,
      phase: change.phase ?? s.phase,
      passwords: change.passwords ?? s.passwords,
    };
    writeState(this.root, this.state);
  }

  // ---- stop -----------------------------------------------------------------------------------------------------

  private async teardown(): Promise<ClusterStopReport> {
    const problems: string[] = [];
    const stopped: string[] = [];
    if (this.state !== undefined && readState(this.root, this.name)?.owner.pid === process.pid) {
      try {
        this.record({ phase: "stopping" });
      } catch (error) {
        problems.push(`state file: ${(error as Error).message}`);
      }
    }
    if (this.servers.length > 0 || this.startPromise) this.progress.step(`cluster ${this.name}: stopping`);
    await this.stopServers(stopped, problems);
    // A start in progress fails at its next step; give it time to, then stop whatever it spawned meanwhile.
    if (this.startPromise) await within(this.startPromise.catch(() => undefined), 60_000);
    await this.stopServers(stopped, problems);

    const removedDirs: string[] = [];
    if (problems.length === 0) {
      for (const dir of this.scratchDirs.splice(0)) {
        try {
          dir.remove();
          removedDirs.push(dir.hostPath);
        } catch (error) {
          problems.push(`${dir.hostPath}: ${(error as Error).message}`);
        }
      }
    }
    let hugePagesGivenBack = 0;
    if (problems.length === 0 && this.state !== undefined) {
      try {
        hugePagesGivenBack = await giveBackRecordedHugePages(this.root, this.name, this.state.hugePages, this.pool);
        if (hugePagesGivenBack > 0) this.progress.step(`huge pages: gave back the ${hugePagesGivenBack} pages this cluster added`);
      } catch (error) {
        problems.push(`huge pages: ${(error as Error).message}`);
      }
    }
    if (problems.length > 0) {
      throw new Error(
        `cluster ${this.name} was not torn down completely: ${problems.join("; ")}. Its state file ${this.stateFile} is kept: run pgstack local down --name ${this.name}`,
      );
    }
    if (this.state !== undefined && readState(this.root, this.name)?.owner.pid === process.pid) removeState(this.root, this.name);
    this.state = undefined;
    process.removeListener("exit", this.onExit);
    return { stopped, removedDirs, hugePagesGivenBack };
  }

  /**
   * Last resort when the process exits without a finished stop (process.exit() somewhere, a crash in a handler):
   * only synchronous work is possible, so SIGKILL each server's process tree, delete the scratch directories, give
   * back the huge pages and remove the state file. Installed at start, removed by a completed stop.
   */
  private readonly onExit = (): void => {
    const state = this.state;
    if (state === undefined) return;
    try {
      // Our own detached children (the rig spawned them for us), each checked against its recorded start time.
      for (const recorded of state.servers) if (isRunning(recorded)) killTree(recorded.pid);
      const deadline = Date.now() + 2_000;
      while (state.servers.some(isRunning) && Date.now() < deadline) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
      if (state.servers.some(isRunning)) return; // the state file stays for `pgstack local down`
      removeScratchDirs(state);
      giveBackRecordedHugePagesSync(this.root, this.name, state.hugePages, this.pool);
      removeState(this.root, this.name);
    } catch {
      // exiting anyway; `pgstack local down` finds whatever is left in the state file
    }
  };

  /** Stops the recorded servers newest first, each by the rig's own stop (its pid, then its process group). */
  private async stopServers(stopped: string[], problems: string[]): Promise<void> {
    for (const server of [...this.servers].reverse()) {
      try {
        // PostgreSQL's fast shutdown ends its backends and writes a checkpoint: allow it 30 s before SIGKILL.
        await server.stop(undefined, 30_000);
        this.servers.splice(this.servers.indexOf(server), 1);
        stopped.push(`${server.name} (pid ${server.pid})`);
      } catch (error) {
        problems.push(`${server.name} (pid ${server.pid}): ${(error as Error).message}`);
      }
    }
  }
}

// ---- checks -------------------------------------------------------------------------------------------------------

/** SHOW huge_pages_status must say on when pages were reserved (pgvector-stack never trusts `try`). */
async function checkHugePages(superuserUrl: string, planned: HugePagesStatus, progress: Progress): Promise<Pick<HugePagesStatus, "serverStatus" | "serverPages">> {
  const client = await connect(superuserUrl, "pgstack-local");
  try {
    const row = (
      await client.query<{ status: string; pages: string }>(
        "SELECT current_setting('huge_pages_status') AS status, current_setting('shared_memory_size_in_huge_pages') AS pages",
      )
    ).rows[0];
    const serverPages = Number(row.pages);
    if (planned.used && row.status !== "on") {
      throw new Error(`huge pages were reserved but PostgreSQL reports huge_pages_status = ${row.status}`);
    }
    if (!planned.used && row.status === "on") {
      throw new Error(`huge pages were not reserved (${planned.reason}) yet PostgreSQL reports huge_pages_status = on`);
    }
    if (planned.used) {
      progress.step(`huge pages: huge_pages_status = on; PostgreSQL needs ${serverPages} of the ${planned.reserved} pages reserved`);
    }
    return { serverStatus: row.status, serverPages: Number.isFinite(serverPages) ? serverPages : null };
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function checkLogin(url: string, sql: string, who: string, host: StepHost): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const client = newClient(url, "pgstack-local");
    try {
      await client.connect();
      await client.query(sql);
      return;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`${who} cannot log in: ${maskSecrets((error as Error).message, host.secrets)}`);
    } finally {
      await client.end().catch(() => undefined);
    }
    host.checkpoint();
    await delay(200);
  }
}

/** Every scrape target up and every rendered rule group loaded; names the target and its error when not. */
async function checkPrometheus(url: string, expectedTargets: number, expectedGroups: readonly string[], host: StepHost): Promise<void> {
  const deadline = Date.now() + 60_000;
  let problem = "no answer yet";
  while (Date.now() < deadline) {
    host.checkpoint();
    try {
      const targets = JSON.parse((await httpGet(`${url}/api/v1/targets?state=active`)).body) as {
        data: { activeTargets: { labels: Record<string, string>; health: string; lastError: string }[] };
      };
      const rules = JSON.parse((await httpGet(`${url}/api/v1/rules`)).body) as { data: { groups: { name: string }[] } };
      const active = targets.data.activeTargets;
      const down = active.filter((t) => t.health !== "up");
      const loaded = new Set(rules.data.groups.map((g) => g.name));
      const missing = expectedGroups.filter((g) => !loaded.has(g));
      if (active.length === expectedTargets && down.length === 0 && missing.length === 0) return;
      problem =
        missing.length > 0
          ? `rule groups not loaded: ${missing.join(", ")}`
          : down.length > 0
            ? down.map((t) => `${t.labels.job} ${t.health}${t.lastError ? ` (${t.lastError})` : ""}`).join("; ")
            : `${active.length} of ${expectedTargets} targets known`;
    } catch (error) {
      problem = (error as Error).message;
    }
    await delay(500);
  }
  throw new Error(`Prometheus at ${url} is not scraping every metric source after 60 s: ${problem}`);
}

/** What PostgreSQL ("SSL configuration was not reloaded") and PgBouncer ("TLS configuration could not be reloaded") log when they keep the old pair. */
const refusedReload = /SSL configuration was not reloaded|TLS configuration could not be reloaded/;

function readText(file: string): string {
  return fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
