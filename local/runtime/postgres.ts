import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { renderPgIdent } from "../../configs/pg-hba";
import { postgresLogDirectory } from "../../configs/postgresql";
import { superuser } from "../../configs/roles";
import { verifyFullQuery, type TlsFiles } from "../../configs/tls";
import { onFreePort } from "./ports";
import type { ServerProcess } from "./processes";
import { waitUntilReady } from "./readiness";
import type { Runtime } from "./runtime";
import type { ScratchDir } from "./scratch";
import { writeRigTls, type RigTls } from "./tls";

export interface PostgresOptions {
  readonly runtime: Runtime;
  /** The stack's rendered postgresql.conf, written verbatim as the data directory's postgresql.conf. */
  readonly postgresqlConf: string;
  /** pg_hba.conf, written verbatim. It must let the superuser in on the Unix socket (`local`) for `psql()`. */
  readonly pgHbaConf: string;
  /**
   * pg_ident.conf, written verbatim: the map the rendered pg_hba.conf's superuser peer line names. Defaults to the
   * perf cluster's (configs/pg-hba.ts renderPgIdent: the server's OS user and this host's root).
   */
  readonly pgIdentConf?: string;
  /** Password of the superuser initdb creates (configs/roles.ts `superuser`). Defaults to a random one. */
  readonly superuserPassword?: string;
  /** TCP port on 127.0.0.1. Defaults to a free one; required when `placed`. */
  readonly port?: number;
  /**
   * True when `postgresqlConf` was rendered for a placement (the perf cluster's, configs/placement.ts) and so says
   * itself where the server listens — listen_addresses 127.0.0.1 and port `port` — and where its Unix socket goes (a
   * directory that exists). The server then runs on the conf as it is, `postgres -D <data directory>` and nothing
   * else; a port taken meanwhile is a PortInUseError, for the caller to render again. Defaults to false: any conf,
   * and the rig puts the server on 127.0.0.1 at `port` (or a free one) with its socket in the scratch directory, by
   * `-c` options, which take precedence over the file, and gives it a certificate of its own (`ssl_cert_file`,
   * `ssl_key_file`: local/runtime/tls.ts) that clients verify with the rig's CA (`caPath`). Whether TCP clients must
   * use TLS stays the conf's and pg_hba.conf's to say (`ssl = on`, `hostssl`). A placed conf names its certificate
   * files itself; the caller writes them before the start and names their CA in `caHostPath`.
   */
  readonly placed?: boolean;
  /** Host path of the CA that signed the certificate a placed conf names: what `url()` verifies with. Required when `placed`. */
  readonly caHostPath?: string;
  /**
   * For a conf not placed: TLS files already written (local/runtime/tls.ts `writeRigTls`), e.g. one set a test
   * renders the stack with and gives PostgreSQL and PgBouncer alike. Defaults to a certificate of its own in the
   * scratch directory.
   */
  readonly tls?: RigTls;
  /** Added to the server's environment. Defaults to none. */
  readonly extraEnv?: Readonly<Record<string, string>>;
  /** How long startup (crash recovery, huge shared_buffers) may take. Defaults to 120 s. */
  readonly startTimeoutMs?: number;
  /**
   * The scratch directory to run in: its `postgresDataEntry` becomes the data directory (initdb creates it, so it must
   * not exist yet). A caller that has to name PGDATA before the start (the perf cluster renders it into mtail's
   * command line) creates it first. Defaults to a fresh one.
   */
  readonly scratch?: ScratchDir;
}

/** The data directory's name inside the server's scratch directory. */
export const postgresDataEntry = "data";

export interface PostgresServer {
  readonly host: "127.0.0.1";
  readonly port: number;
  /** Host path of the CA certificate its server certificate chains to: every URL's sslrootcert. */
  readonly caPath: string;
  /**
   * The rig's TLS files for a server started without a placement, as the server sees them (PgBouncer's
   * server_tls_ca_file is the same CA); undefined for a placed conf, which names its own.
   */
  readonly tls: TlsFiles | undefined;
  readonly superuser: typeof superuser;
  readonly password: string;
  /** Host path of the data directory. */
  readonly dataDir: string;
  /**
   * Host path of postgres's stdout and stderr: what it says before the logging collector starts (configuration and
   * shared memory errors among it). With the stack's logging_collector = on, everything after is in `logDir`.
   */
  readonly logFile: string;
  /** Host path of the logging collector's directory (the stack's log_directory inside the data directory). */
  readonly logDir: string;
  /** Everything the server logged: `logFile`, then the collector's files, oldest first. */
  logText(): string;
  /** The scratch directory holding the data directory, the log and the Unix socket. */
  readonly scratch: ScratchDir;
  readonly process: ServerProcess;
  /**
   * postgresql:// URL for `pg` and the other clients on this host, verifying the server: `sslmode=verify-full` with
   * `sslrootcert` = `caPath`. Defaults: database postgres, the superuser.
   */
  url(database?: string, user?: string, password?: string): string;
  /**
   * Runs SQL with psql (-X -At, ON_ERROR_STOP) as the superuser on the Unix socket in the scratch directory (pg_hba's
   * `local` lines: peer, or the password; no TLS on a socket); resolves to its output.
   */
  psql(sql: string, database?: string): Promise<string>;
  /** Fast shutdown (SIGINT), then SIGKILL after 30 s. The data directory stays until stopAll(). */
  stop(): Promise<void>;
}

/**
 * Creates a cluster with initdb and runs postgres on a loopback port as our child (not daemonised by
 * pg_ctl), so that stopping it is certain.
 *
 * The given postgresql.conf is never edited. A conf rendered for a placement (`placed`) is run as it is; for any
 * other conf, what belongs to the rig (port, listen address, socket directory) is passed as `-c` options.
 */
export async function startPostgres(opts: PostgresOptions): Promise<PostgresServer> {
  const { runtime } = opts;
  if (opts.placed === true && (opts.port === undefined || opts.caHostPath === undefined)) {
    throw new Error("startPostgres: a placed postgresql.conf needs `port` (the port it sets) and `caHostPath` (the CA of the certificate it names), for the readiness probe and the URLs");
  }
  const password = opts.superuserPassword ?? randomBytes(18).toString("base64url");
  const scratch = opts.scratch ?? runtime.scratchDir("postgres");
  const dataPath = scratch.pathOf(postgresDataEntry);

  // The password reaches initdb through a file, never the command line; SCRAM from the first start, no trust.
  const passwordFile = scratch.writeFile("superuser-password", `${password}\n`);
  const initdb = await runtime.exec("initdb", [
    `--pgdata=${dataPath}`,
    `--username=${superuser}`,
    "--auth=scram-sha-256",
    `--pwfile=${passwordFile}`,
    "--encoding=UTF8",
    "--locale=C",
    // A throw-away cluster: skipping the final fsync saves seconds and risks nothing.
    "--no-sync",
  ]);
  fs.rmSync(scratch.hostPathOf("superuser-password"));
  if (initdb.code !== 0) {
    throw new Error(
      `initdb ${runtime.versions.initdb} (${runtime.kind} runtime) failed with exit ${initdb.code ?? initdb.signal}:\n` +
        `${initdb.stdout}${initdb.stderr}`.trim(),
    );
  }
  scratch.writeFile(`${postgresDataEntry}/postgresql.conf`, opts.postgresqlConf);
  scratch.writeFile(`${postgresDataEntry}/pg_hba.conf`, opts.pgHbaConf);
  scratch.writeFile(`${postgresDataEntry}/pg_ident.conf`, opts.pgIdentConf ?? renderPgIdent({ hostRoot: true }));
  const logFile = scratch.hostPathOf("postgres.log");
  // The stack owns log_directory ('log', PostgreSQL's default too), relative to the data directory.
  const logDir = path.join(scratch.hostPathOf(postgresDataEntry), postgresLogDirectory);
  const rigTls = opts.placed === true ? undefined : (opts.tls ?? (await writeRigTls(scratch)));
  const caPath = rigTls?.caHostPath ?? (opts.caHostPath as string);

  return onFreePort(opts.port, async (port) => {
    const rigOptions =
      rigTls === undefined
        ? []
        : [
            ...["-c", `port=${port}`, "-c", "listen_addresses=127.0.0.1", "-c", `unix_socket_directories=${scratch.path}`],
            ...["-c", `ssl_cert_file=${rigTls.files.certificate}`, "-c", `ssl_key_file=${rigTls.files.key}`],
          ];
    const server = await runtime.spawn("postgres", ["-D", dataPath, ...rigOptions], {
      logFile,
      env: opts.extraEnv,
      stopSignal: "SIGINT",
      name: "postgres",
    });
    await waitUntilReady({
      runtime,
      program: "postgres",
      server,
      port,
      timeoutMs: opts.startTimeoutMs ?? 120_000,
      // pg_isready answers 0 only once the server accepts connections; it needs no password to ask.
      probe: async () => (await runtime.exec("pg_isready", ["-q", "-h", "127.0.0.1", "-p", String(port), "-t", "2"])).code === 0,
    });

    const postgres: PostgresServer = {
      host: "127.0.0.1",
      port,
      caPath,
      tls: rigTls?.files,
      superuser,
      password,
      dataDir: scratch.hostPathOf(postgresDataEntry),
      logFile,
      logDir,
      logText: () => serverLogText(logFile, logDir),
      scratch,
      process: server,
      // The superuser on the Unix socket (pg_hba.conf rejects it on every TCP line): by peer where the conf says so
      // (pg_ident.conf maps this host's root to it), by its password where a test's own pg_hba.conf asks for SCRAM;
      // every other role over TCP with TLS, verified against the CA.
      url: (database = "postgres", user = superuser, userPassword = password) =>
        user === superuser
          ? `postgresql://${encodeURIComponent(user)}:${encodeURIComponent(userPassword)}@localhost/${encodeURIComponent(database)}?${new URLSearchParams({ host: scratch.hostPath, port: String(port) }).toString()}`
          : `postgresql://${encodeURIComponent(user)}:${encodeURIComponent(userPassword)}@127.0.0.1:${port}/${encodeURIComponent(database)}?${verifyFullQuery(caPath)}`,
      async psql(sql, database = "postgres") {
        // The socket is in the scratch directory: the rig puts it there, and a placed conf must too (the cluster's does).
        const result = await runtime.exec(
          "psql",
          ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", scratch.path, "-p", String(port), "-U", superuser, "-d", database, "-f", "-"],
          { input: sql, env: { PGPASSWORD: password } },
        );
        if (result.code !== 0) {
          throw new Error(`psql on ${scratch.path} (port ${port})/${database} failed (exit ${result.code ?? result.signal}): ${result.stderr.trim()}`);
        }
        return result.stdout.replace(/\n$/, "");
      },
      async stop() {
        await server.stop("SIGINT", 30_000);
      },
    };
    return postgres;
  });
}

function serverLogText(logFile: string, logDir: string): string {
  const read = (file: string): string => (fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "");
  const files = fs.existsSync(logDir)
    ? fs
        .readdirSync(logDir)
        .map((name) => ({ file: path.join(logDir, name), stat: fs.statSync(path.join(logDir, name)) }))
        .filter(({ stat }) => stat.isFile())
        .sort((a, b) => a.stat.mtimeMs - b.stat.mtimeMs || a.file.localeCompare(b.file))
        .map(({ file }) => file)
    : [];
  return [logFile, ...files].map(read).join("");
}
