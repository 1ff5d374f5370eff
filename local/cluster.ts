/**
 * The ephemeral perf cluster: a stack's rendered files run as real processes on this host, on free loopback ports —
 * PostgreSQL 17 + pgvector (the rendered postgresql.conf and pg_hba.conf as they are), PgBouncer in front of it
 * (SCRAM, the rendered ini), postgres_exporter, pgbouncer_exporter, node_exporter, mtail following PostgreSQL's log
 * with the rendered program, the synthetic canary (`pgstack canary`) through PgBouncer, and Prometheus scraping all
 * five with the rendered alert rules loaded: every scrape job those rules guard is there, so a quiet cluster has no
 * ScrapeJobAbsent or ScrapeTargetDown alert.
 *
 *   const cluster = new LocalCluster({ name, rendered, progress });
 *   try { await cluster.start(); … cluster.info … } finally { await cluster.stop(); }
 *
 * `stop()` may be called at any moment, also while `start()` runs (Ctrl-C): it stops what is running, makes the start
 * fail at its next step, and lets no server start afterwards. Everything started is written to the cluster's state
 * file the moment it exists, so `pgstack local down` can end it from another process if this one dies.
 * The processes come from the rig (local/runtime); this file only wires them together.
 */
import { Client } from "pg";
import { hugePageBytes } from "../configs/hugepages";
import { silentProgress, type Progress } from "../configs/progress";
import type { Rendered } from "../configs/rendered";
import { nodeExporterArgs } from "../configs/exporters";
import { mtailArgs, mtailProgramFile } from "../configs/mtail";
import { humanBytes, pgMemory } from "../configs/units";
import { startCanaryProcess } from "./canary-process";
import {
  alertRuleGroupNames,
  alertRulesFile,
  clusterBootstrapSql,
  clusterPgBouncerIni,
  clusterPrometheusYaml,
  clusterUserlist,
  clusterVerifiers,
  connectionUrl,
  generatePasswords,
  localMonitoring,
  maskPasswords,
  monitoringProblems,
  passwordList,
  pgbouncerExporterLaunch,
  postgresExporterLaunch,
  statsUser,
  superuser,
  type ClusterPasswords,
  type MonitoringIntervals,
} from "./cluster-files";
import {
  describeHugePages,
  hugePagesIntent,
  kernelHugePages,
  reserveHugePages,
  type HugePagesPool,
  type HugePagesStatus,
} from "./hugepages";
import {
  getRuntime,
  httpGet,
  startNodeExporter,
  startPgBouncer,
  startPostgres,
  startPostgresExporter,
  startPrometheus,
  type PostgresServer,
  type Runtime,
  type ScratchDir,
  type ServerProcess,
} from "./runtime";
import { startHttpServer } from "./runtime/httpServer";
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
} from "./state";
import { giveBackRecordedHugePages, giveBackRecordedHugePagesSync, removeScratchDirs } from "./teardown";

/** The steps of a start, in order; `failAfter` (or PGSTACK_LOCAL_FAIL_AFTER) makes the start throw after one. */
export const clusterSteps = ["huge-pages", "postgres", "bootstrap", "pgbouncer", "exporters", "prometheus"] as const;
export type ClusterStep = (typeof clusterSteps)[number];

/**
 * For tests of the teardown: `PGSTACK_LOCAL_FAIL_AFTER=bootstrap pgstack local up` fails right after that step, as a
 * real failure would, with everything started so far still running.
 */
export const failAfterEnv = "PGSTACK_LOCAL_FAIL_AFTER";

export interface StartClusterOptions {
  /** Cluster name: the state directory and `--name` of `local down`. */
  readonly name: string;
  /** The stack rendered for this host (configs/render.ts). */
  readonly rendered: Rendered;
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
  readonly failAfter?: ClusterStep;
  /** The huge page pool (tests pass a fake kernel). Defaults to the kernel's. */
  readonly hugePagesPool?: HugePagesPool;
  /**
   * Scrape, rule evaluation and canary intervals; the alert tests shorten them (with the stack's `alerts:` `for`
   * durations and rateWindow) so an alert fires within seconds. Defaults to localMonitoring (5 s, 5 s, 10 s).
   */
  readonly monitoring?: Partial<MonitoringIntervals>;
}

export interface ClusterPorts {
  readonly postgres: number;
  readonly pgbouncer: number;
  readonly postgresExporter: number;
  readonly pgbouncerExporter: number;
  readonly nodeExporter: number;
  readonly mtail: number;
  readonly canary: number;
  readonly prometheus: number;
}

/** What a running cluster offers. URLs carry passwords: print them only where a person asked for them. */
export interface ClusterInfo {
  readonly name: string;
  readonly stack: string;
  readonly runtime: { readonly kind: Runtime["kind"]; readonly versions: Runtime["versions"] };
  /** The app user through PgBouncer (transaction pooling). */
  readonly pooledUrl: string;
  /** The app user straight to PostgreSQL (index builds, loads). */
  readonly directUrl: string;
  readonly superuserUrl: string;
  readonly prometheusUrl: string;
  readonly ports: ClusterPorts;
  readonly hugePages: HugePagesStatus;
  readonly stateFile: string;
  /**
   * Host paths of the servers' logs. `postgres` is its stderr up to the logging collector's start; `postgres_log_dir`
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

export class LocalCluster {
  readonly name: string;
  readonly rendered: Rendered;
  private readonly progress: Progress;
  private readonly root: string;
  private readonly pool: HugePagesPool;
  private readonly monitoring: MonitoringIntervals;
  private readonly passwords: ClusterPasswords = generatePasswords();
  private readonly servers: ServerProcess[] = [];
  /** Servers ended on purpose by `stopServer` (an outage drill): their exit is not unexpected. */
  private readonly drilled = new Set<ServerProcess>();
  private readonly scratchDirs: ScratchDir[] = [];
  private state: ClusterState | undefined;
  private startPromise: Promise<ClusterInfo> | undefined;
  private stopPromise: Promise<ClusterStopReport> | undefined;
  private stopRequested = false;
  private clusterInfo: ClusterInfo | undefined;
  private reportExit: (message: string) => void = () => undefined;
  /**
   * Settles with a message when one of the cluster's servers exits on its own (a crash, an OOM kill), never when
   * `stop()` ends it: `local up` waits on this to tear down instead of serving a half-dead cluster.
   */
  readonly unexpectedExit: Promise<string> = new Promise((resolve) => {
    this.reportExit = resolve;
  });
  /** The huge pages decision, made when postgres is spawned. */
  private hugePages: HugePagesStatus | undefined;
  private reserveAgain = false;
  /** `-c name=value` options the rig's postgres gets after its own (huge_pages when it must differ from the file). */
  private postgresOverrides: string[] = [];

  constructor(private readonly options: StartClusterOptions) {
    this.name = options.name;
    this.rendered = options.rendered;
    this.progress = options.progress ?? silentProgress;
    this.root = options.stateRoot ?? defaultStateRoot;
    this.pool = options.hugePagesPool ?? kernelHugePages();
    this.monitoring = { ...localMonitoring, ...options.monitoring };
    const problems = monitoringProblems(this.monitoring);
    if (problems.length > 0) throw new Error(`cluster ${options.name}: ${problems.join("; ")}`);
    const failAfter = options.failAfter ?? process.env[failAfterEnv];
    if (failAfter !== undefined && failAfter !== "" && !(clusterSteps as readonly string[]).includes(failAfter)) {
      throw new Error(`${failAfterEnv}="${failAfter}" is not a step; use one of ${clusterSteps.join(", ")}`);
    }
  }

  /** Everything about the running cluster; throws before `start()` has finished. */
  get info(): ClusterInfo {
    if (this.clusterInfo === undefined) throw new Error(`cluster ${this.name} is not up`);
    return this.clusterInfo;
  }

  get stateFile(): string {
    return stateFilePath(this.root, this.name);
  }

  /** The generated passwords, for masking them in anything printed. */
  get secrets(): readonly string[] {
    return passwordList(this.passwords);
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
        reason.message = maskPasswords(reason.message, this.secrets);
        reason.stack = maskPasswords(reason.stack ?? "", this.secrets);
      }
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
    const url = connectionUrl(superuser, this.passwords.superuser, this.info.ports.postgres, this.rendered.spec.postgres.database);
    const client = new Client({ connectionString: url, application_name: "pgstack-local" });
    client.on("error", () => undefined);
    await client.connect();
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
   * Stops one server of the running cluster by its name in `info.logs` ("pgbouncer", "postgres", …) and leaves the
   * rest up: an outage drill, as the alert tests run to see PgBouncerDown and PostgresDown fire. `unexpectedExit`
   * does not report it; `stop()` still ends everything else.
   */
  async stopServer(name: string): Promise<void> {
    if (this.clusterInfo === undefined || this.stopRequested) throw new Error(`cluster ${this.name} is not up`);
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

  private async run(): Promise<ClusterInfo> {
    const { rendered, progress } = this;
    const spec = rendered.spec;
    const me = ownIdentity();
    const initial: ClusterState = {
      version: 1,
      name: this.name,
      stack: spec.stack,
      createdAt: new Date().toISOString(),
      owner: { ...me, kind: this.options.owner ?? "library" },
      phase: "starting",
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
    const runtime = this.recordingRuntime(base);

    // 1–2. PostgreSQL with the rendered files as they are; the rig sets only port, listen address and socket. Huge
    // pages are reserved from inside the spawn, after initdb and right before postgres maps its shared memory: any
    // other PostgreSQL on this host runs with huge_pages = try by default and takes free pages it finds, so the
    // window between reserving and mapping is kept to milliseconds.
    const m = rendered.memory;
    progress.step(
      `PostgreSQL ${v.postgres}: initdb and start for ${humanBytes(spec.node.memoryBytes)} RAM (shared_buffers ${pgMemory(m.sharedBuffersBytes)}, ` +
        `${humanBytes(m.sharedMemoryBytes)} of shared memory, ${m.hugePages} huge pages planned)`,
    );
    const pg = await this.startPostgres(runtime);
    const hugePages = this.hugePages;
    if (hugePages === undefined) throw new Error("PostgreSQL started without the huge pages decision (a bug in local/cluster.ts)");
    this.record({ ports: { postgres: pg.port } });
    this.failIfAsked("postgres");

    // 3. Roles, the app database, CREATE EXTENSION vector; then check huge pages really are in use.
    const { database, appUser } = spec.postgres;
    progress.step(`PostgreSQL on 127.0.0.1:${pg.port}: roles ${appUser}, pgstack_monitor; database ${database} with CREATE EXTENSION vector`);
    const verifiers = clusterVerifiers(spec, this.passwords);
    await pg.psql(clusterBootstrapSql(spec, verifiers));
    const superuserUrl = connectionUrl(superuser, this.passwords.superuser, pg.port, "postgres");
    const directUrl = connectionUrl(appUser, this.passwords.app, pg.port, database);
    const serverHugePages = await this.checkHugePages(superuserUrl, hugePages);
    this.failIfAsked("bootstrap");

    // 4. PgBouncer: the rendered ini with this cluster's server; the userlist holds verifiers only.
    const bouncer = await startPgBouncer({
      runtime,
      ini: clusterPgBouncerIni(spec, pg.port),
      userlist: clusterUserlist(spec, verifiers),
    });
    const pooledUrl = connectionUrl(appUser, this.passwords.app, bouncer.port, database);
    progress.step(`PgBouncer ${v.pgbouncer} on 127.0.0.1:${bouncer.port} (${spec.pgbouncer.poolMode} pooling, SCRAM)`);
    this.record({ ports: { pgbouncer: bouncer.port }, urls: { pooled: pooledUrl, direct: directUrl } });
    // pgbouncer_exporter 0.10 exits when it cannot log in at start-up: log in as it will before starting it.
    await this.checkLogin(pooledUrl, "SELECT 1", `${appUser} through PgBouncer`);
    await this.checkLogin(connectionUrl(statsUser, this.passwords.stats, bouncer.port, "pgbouncer"), "SHOW VERSION", `${statsUser} on PgBouncer's admin console`);
    this.failIfAsked("pgbouncer");

    // 5. Exporters, with the rendered flags and queries; passwords in their environment.
    const files = runtime.scratchDir("files");
    const queriesPath = files.writeFile("postgres-exporter-queries.yaml", rendered.files["postgres-exporter-queries.yaml"], 0o644);
    const pgLaunch = postgresExporterLaunch(spec, { postgresPort: pg.port, queriesPath, monitorPassword: this.passwords.monitor });
    const postgresExporter = await startPostgresExporter({ runtime, dataSourceName: pgLaunch.dataSourceName, args: pgLaunch.args, env: pgLaunch.env });
    const bouncerLaunch = pgbouncerExporterLaunch({ pgbouncerPort: bouncer.port, statsPassword: this.passwords.stats });
    // The rig's startPgbouncerExporter takes the password inside the connection string (visible in `ps`); its
    // building block takes an environment, where lib/pq reads PGPASSWORD.
    const pgbouncerExporter = await startHttpServer({
      runtime,
      program: "pgbouncer_exporter",
      scratch: runtime.scratchDir("pgbouncer-exporter"),
      args: (port) => [`--web.listen-address=127.0.0.1:${port}`, ...bouncerLaunch.args],
      env: bouncerLaunch.env,
      readyPath: "/metrics",
    });
    const nodeExporter = await startNodeExporter({ runtime, args: nodeExporterArgs() });
    progress.step(
      `exporters: postgres_exporter :${postgresExporter.port}, pgbouncer_exporter :${pgbouncerExporter.port}, node_exporter :${nodeExporter.port}`,
    );
    this.record({
      ports: { postgresExporter: postgresExporter.port, pgbouncerExporter: pgbouncerExporter.port, nodeExporter: nodeExporter.port },
    });

    // The metric sources the exporters lack (docs/runbooks.md, "Metric sources"). mtail, as the postgres user of the
    // rig, follows the logging collector's files in PGDATA with the same flags as on the container targets.
    const mtailDir = runtime.scratchDir("mtail");
    mtailDir.writeFile(mtailProgramFile, rendered.files["postgresql.mtail"], 0o644);
    const mtailFlags = mtailArgs({ programsDir: mtailDir.path, pgdata: pg.scratch.pathOf("data") });
    const mtail = await startHttpServer({
      runtime,
      program: "mtail",
      scratch: mtailDir,
      args: (port) => ["--address", "127.0.0.1", "--port", String(port), ...mtailFlags],
      readyPath: "/metrics",
    });
    // The canary runs on this host (Node, not the rootfs); recorded like the rig's servers the moment it exists.
    const canary = await startCanaryProcess({
      scratch: runtime.scratchDir("canary"),
      pooledUrl,
      directUrl,
      intervalMs: this.monitoring.canaryMs,
      onSpawn: (server) => {
        this.track(server, "SIGTERM");
        // As for the rig's servers: a stop that came meanwhile has stopped the others; this one goes with them.
        this.checkpoint();
      },
    });
    progress.step(
      `mtail ${v.mtail} :${mtail.port} following PostgreSQL's log; canary :${canary.port} (search, hybrid, insert through PgBouncer ` +
        `every ${this.monitoring.canaryMs / 1000} s)`,
    );
    this.record({ ports: { mtail: mtail.port, canary: canary.port } });
    this.failIfAsked("exporters");

    // 6. Prometheus scraping all five with `stack` labels, the rendered rules loaded.
    const scrapePorts = {
      postgresExporter: postgresExporter.port,
      pgbouncerExporter: pgbouncerExporter.port,
      nodeExporter: nodeExporter.port,
      canary: canary.port,
      mtail: mtail.port,
    };
    const prometheus = await startPrometheus({
      runtime,
      configYaml: clusterPrometheusYaml(spec, scrapePorts, this.monitoring),
      ruleFiles: { [alertRulesFile]: rendered.files["alert-rules.yaml"] },
    });
    this.record({ ports: { prometheus: prometheus.port }, urls: { prometheus: prometheus.url } });
    progress.step(`Prometheus ${v.prometheus} on ${prometheus.url}: waiting for the first scrape of every target and the alert rules`);
    await this.checkPrometheus(prometheus.url, Object.keys(scrapePorts).length);
    this.failIfAsked("prometheus");

    const ports: ClusterPorts = {
      postgres: pg.port,
      pgbouncer: bouncer.port,
      postgresExporter: postgresExporter.port,
      pgbouncerExporter: pgbouncerExporter.port,
      nodeExporter: nodeExporter.port,
      mtail: mtail.port,
      canary: canary.port,
      prometheus: prometheus.port,
    };
    this.clusterInfo = {
      name: this.name,
      stack: spec.stack,
      runtime: { kind: base.kind, versions: base.versions },
      pooledUrl,
      directUrl,
      superuserUrl,
      prometheusUrl: prometheus.url,
      ports,
      hugePages: { ...hugePages, ...serverHugePages },
      stateFile: this.stateFile,
      logs: {
        postgres: pg.logFile,
        postgres_log_dir: pg.logDir,
        pgbouncer: bouncer.logFile,
        postgres_exporter: postgresExporter.logFile,
        pgbouncer_exporter: pgbouncerExporter.logFile,
        node_exporter: nodeExporter.logFile,
        mtail: mtail.logFile,
        canary: canary.logFile,
        prometheus: prometheus.logFile,
      },
    };
    this.record({ phase: "up" });
    return this.clusterInfo;
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
        if (program === "postgres") await this.prepareHugePages();
        this.checkpoint();
        const extra = program === "postgres" ? this.postgresOverrides : [];
        const server = await base.spawn(program, [...args, ...extra], opts);
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
      if (this.stopRequested || this.clusterInfo === undefined || this.drilled.has(server)) return;
      const how = exit.code !== null ? `with code ${exit.code}` : `by ${exit.signal}`;
      this.reportExit(`${server.name} (pid ${server.pid}) exited ${how}; last lines of ${server.logFile}:\n${server.logTail(15)}`);
    });
  }

  /** startPostgres, once more when another process took the reserved huge pages between reserving and mapping. */
  private async startPostgres(runtime: Runtime): Promise<PostgresServer> {
    const start = () =>
      startPostgres({
        runtime,
        postgresqlConf: this.rendered.files["postgresql.conf"],
        pgHbaConf: this.rendered.files["pg_hba.conf"],
        superuserPassword: this.passwords.superuser,
      });
    try {
      return await start();
    } catch (error) {
      const status = this.hugePages;
      if (!status?.used || !/could not map anonymous shared memory/.test((error as Error).message ?? "")) throw error;
      const now = this.pool.meminfo();
      this.progress.warn(
        `huge pages: PostgreSQL could not map the ${status.reserved} pages reserved for it — another process took them first ` +
          `(now HugePages_Free ${now.free}, HugePages_Rsvd ${now.reserved}; a PostgreSQL with huge_pages = try elsewhere on this host ` +
          `takes any free page). Reserving again and starting once more`,
      );
      this.reserveAgain = true;
      return await start();
    }
  }

  /**
   * Decides and reserves huge pages (called by the spawn of postgres, see `recordingRuntime`). Where they cannot be
   * used, postgres gets `-c huge_pages=off` and the reason is kept for the report; where they are reserved and the
   * file says `try`, it gets `-c huge_pages=on`, so a missing page is a start failure rather than a quiet 4 kB start.
   */
  private async prepareHugePages(): Promise<void> {
    if (this.hugePages !== undefined && !this.reserveAgain) return;
    const { memory } = this.rendered;
    const off = (reason: string): void => {
      if (memory.hugePagesSetting !== "off") this.postgresOverrides = ["-c", "huge_pages=off"];
      this.hugePages = { used: false, requested: memory.hugePages, reserved: this.recordedHugePages(), reason, serverStatus: null, serverPages: null };
      this.progress.warn(`huge pages: ${describeHugePages(this.hugePages)}`);
    };
    const again = this.reserveAgain;
    this.reserveAgain = false;
    if (!again) {
      let hostPageBytes: number | undefined;
      try {
        hostPageBytes = this.pool.meminfo().pageBytes;
      } catch {
        hostPageBytes = undefined;
      }
      const intent = hugePagesIntent({
        setting: memory.hugePagesSetting,
        pages: memory.hugePages,
        disabled: this.options.hugePages === false,
        uid: process.getuid?.() ?? -1,
        hostPageBytes,
      });
      if (!intent.reserve) {
        off(intent.reason);
        this.failIfAsked("huge-pages");
        return;
      }
    }
    const pages = memory.hugePages;
    const before = this.recordedHugePages();
    this.progress.step(`huge pages: reserving ${pages} pages (${humanBytes(pages * hugePageBytes)}) on top of the ${this.pool.readNr()} already in the pool`);
    const result = await reserveHugePages(
      pages,
      (added) => this.record({ hugePages: { requested: pages, added: before + added, released: false } }),
      this.pool,
    );
    if (!result.ok) {
      off(again ? `another process took the pages reserved first, and then ${result.reason}` : result.reason);
    } else {
      if (memory.hugePagesSetting !== "on") this.postgresOverrides = ["-c", "huge_pages=on"];
      this.hugePages = { used: true, requested: pages, reserved: before + result.added, reason: null, serverStatus: null, serverPages: null };
    }
    this.failIfAsked("huge-pages");
  }

  /** Pages this cluster has added to the pool so far (all given back at teardown). */
  private recordedHugePages(): number {
    const recorded = this.state?.hugePages;
    return recorded && !recorded.released ? recorded.added : 0;
  }

  /** SHOW huge_pages_status must say on when pages were reserved (pgvector-stack never trusts `try`). */
  private async checkHugePages(superuserUrl: string, planned: HugePagesStatus): Promise<Pick<HugePagesStatus, "serverStatus" | "serverPages">> {
    const client = new Client({ connectionString: superuserUrl, application_name: "pgstack-local" });
    client.on("error", () => undefined);
    await client.connect();
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
        this.progress.step(`huge pages: huge_pages_status = on; PostgreSQL needs ${serverPages} of the ${planned.reserved} pages reserved`);
      }
      return { serverStatus: row.status, serverPages: Number.isFinite(serverPages) ? serverPages : null };
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  private async checkLogin(url: string, sql: string, who: string): Promise<void> {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const client = new Client({ connectionString: url, application_name: "pgstack-local" });
      client.on("error", () => undefined);
      try {
        await client.connect();
        await client.query(sql);
        return;
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`${who} cannot log in: ${maskPasswords((error as Error).message, this.secrets)}`);
      } finally {
        await client.end().catch(() => undefined);
      }
      this.checkpoint();
      await delay(200);
    }
  }

  /** Every scrape target up and every rendered rule group loaded; names the target and its error when not. */
  private async checkPrometheus(url: string, expectedTargets: number): Promise<void> {
    const expectedGroups = alertRuleGroupNames(this.rendered);
    const deadline = Date.now() + 60_000;
    let problem = "no answer yet";
    while (Date.now() < deadline) {
      this.checkpoint();
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

  private failIfAsked(step: ClusterStep): void {
    this.checkpoint();
    const failAfter = this.options.failAfter ?? process.env[failAfterEnv];
    if (failAfter === step) throw new Error(`failing after step "${step}" as ${this.options.failAfter ? "failAfter" : failAfterEnv} asks (a test of the teardown)`);
  }

  private checkpoint(): void {
    if (this.stopRequested) throw new StopRequested(`cluster ${this.name}: start interrupted by a stop`);
  }

  /** Updates the state file (synchronously, so nothing started can be missing from it). */
  private record(change: {
    ports?: Record<string, number>;
    urls?: Record<string, string>;
    server?: ClusterState["servers"][number];
    scratchDir?: string;
    hugePages?: ClusterState["hugePages"];
    phase?: ClusterState["phase"];
  }): void {
    const s = this.state;
    if (s === undefined) return;
    this.state = {
      ...s,
      ports: { ...s.ports, ...change.ports },
      urls: { ...s.urls, ...change.urls },
      servers: change.server ? [...s.servers, change.server] : s.servers,
      scratchDirs: change.scratchDir ? [...s.scratchDirs, change.scratchDir] : s.scratchDirs,
      hugePages: change.hugePages !== undefined ? change.hugePages : s.hugePages,
      phase: change.phase ?? s.phase,
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
