import { verifyFullQuery, type TlsFiles } from "../../configs/tls";
import { acceptsTcp, onFreePort } from "./ports";
import type { ServerProcess } from "./processes";
import { waitUntilReady } from "./readiness";
import type { Runtime } from "./runtime";
import type { ScratchDir } from "./scratch";
import { writeRigTls, type RigTls } from "./tls";

export interface PgBouncerOptions {
  readonly runtime: Runtime;
  /** The stack's pgbouncer.ini, kept verbatim; its [databases] must point at the PostgreSQL to pool. */
  readonly ini: string;
  /** Content of the auth_file (`"user" "SCRAM-SHA-256$…"` lines). Defaults to none: the ini's own auth_file. */
  readonly userlist?: string;
  /** TCP port on 127.0.0.1. Defaults to a free one; required when `placed`. */
  readonly port?: number;
  /** Defaults to 30 s. */
  readonly startTimeoutMs?: number;
  /** The scratch directory for the ini, the log and the Unix socket. Defaults to a fresh one. */
  readonly scratch?: ScratchDir;
  /**
   * True when the ini was rendered for a placement (the perf cluster's, configs/placement.ts) and so says itself all
   * the rig needs: where PgBouncer listens (listen_addr, listen_port — `port` must be that listen_port, for the
   * readiness probe), which auth_file it reads (already written), no Unix socket (`unix_socket_dir` empty), and
   * no pidfile (a foreground process needs none); it logs to stderr, which the rig captures, and to the ini's
   * `logfile`, whose directory must exist. PgBouncer then reads the ini byte for byte as given. Defaults to false: any ini,
   * and the rig listens on `port` (or a free one), writes `userlist` as the auth_file and sets its socket
   * directory, log and pid file, whatever the ini says (see `iniForRig`), and its TLS files: a certificate of its
   * own from the rig's CA, and that CA for both legs (PostgreSQL servers the rig started carry certificates from it).
   * Whether each leg uses TLS stays the ini's to say (client_tls_sslmode, server_tls_sslmode).
   */
  readonly placed?: boolean;
  /** Host path of the CA that signed the certificate a placed ini names: what `url()` verifies with. Required when `placed`. */
  readonly caHostPath?: string;
  /** For an ini not placed: TLS files already written (see PostgresOptions.tls). Defaults to a certificate of its own. */
  readonly tls?: RigTls;
}

export interface PgBouncerServer {
  readonly host: "127.0.0.1";
  readonly port: number;
  /** Host path of the CA certificate its client certificate chains to: every URL's sslrootcert. */
  readonly caPath: string;
  /** The rig's TLS files for an ini not rendered for a placement, as PgBouncer sees them; undefined for a placed ini. */
  readonly tls: TlsFiles | undefined;
  /** Host path of the log. */
  readonly logFile: string;
  readonly scratch: ScratchDir;
  readonly process: ServerProcess;
  /** postgresql:// URL through the pooler, verifying it: `sslmode=verify-full` with `sslrootcert` = `caPath`. */
  url(database: string, user: string, password: string): string;
  /** Safe shutdown (SIGINT), then SIGKILL after 10 s. */
  stop(): Promise<void>;
}

/**
 * Runs PgBouncer in the foreground (not -d) as the postgres user.
 *
 * A placed ini (`placed`) is written as `pgbouncer.ini` and read as it is. Any other ini needs the rig's own keys:
 * PgBouncer has no command-line settings, and `%include` cannot layer settings either (a second [pgbouncer]
 * section starts again from the defaults, dropping the stack's own keys). So the file PgBouncer reads is then the
 * given ini with the keys that belong to the rig commented out and set again at the top of its [pgbouncer] section
 * (see `iniForRig`); the given ini is also kept unchanged as `stack.ini`.
 */
export async function startPgBouncer(opts: PgBouncerOptions): Promise<PgBouncerServer> {
  const { runtime } = opts;
  if (opts.placed === true && (opts.port === undefined || opts.caHostPath === undefined || opts.userlist !== undefined)) {
    throw new Error(
      "startPgBouncer: a placed ini needs `port` (its listen_port) and `caHostPath` (the CA of the certificate it names), and takes no `userlist` (its auth_file is already written)",
    );
  }
  const scratch = opts.scratch ?? runtime.scratchDir("pgbouncer");
  const placed = opts.placed === true;
  if (!placed) scratch.writeFile("stack.ini", opts.ini);
  const authFile = opts.userlist === undefined ? undefined : scratch.writeFile("userlist.txt", opts.userlist);
  const logFile = scratch.hostPathOf("pgbouncer.log");
  const rigTls = placed ? undefined : (opts.tls ?? (await writeRigTls(scratch)));
  const caPath = rigTls?.caHostPath ?? (opts.caHostPath as string);

  /** The rig's own keys for an ini not rendered for a placement. */
  const rigKeys = (port: number): Record<string, string> => ({
    listen_addr: "127.0.0.1",
    listen_port: String(port),
    unix_socket_dir: scratch.path,
    // Empty: log to stderr, which the rig captures; no pid file for a foreground process.
    logfile: "",
    pidfile: "",
    ...(authFile === undefined ? {} : { auth_file: authFile }),
    ...(rigTls === undefined
      ? {}
      : {
          client_tls_cert_file: rigTls.files.certificate,
          client_tls_key_file: rigTls.files.key,
          client_tls_ca_file: rigTls.files.ca,
          server_tls_ca_file: rigTls.files.ca,
        }),
  });

  return onFreePort(opts.port, async (port) => {
    const ini = scratch.writeFile("pgbouncer.ini", placed ? opts.ini : iniForRig(opts.ini, rigKeys(port)));
    const server = await runtime.spawn("pgbouncer", [ini], { logFile, stopSignal: "SIGINT", name: "pgbouncer" });
    await waitUntilReady({
      runtime,
      program: "pgbouncer",
      server,
      port,
      timeoutMs: opts.startTimeoutMs ?? 30_000,
      probe: () => acceptsTcp(port),
    });
    const pgbouncer: PgBouncerServer = {
      host: "127.0.0.1",
      port,
      caPath,
      tls: rigTls?.files,
      logFile,
      scratch,
      process: server,
      url: (database, user, password) =>
        `postgresql://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}/${encodeURIComponent(database)}?${verifyFullQuery(caPath)}`,
      async stop() {
        await server.stop("SIGINT", 10_000);
      },
    };
    return pgbouncer;
  });
}

/**
 * The given ini with `rigKeys` owning their values: their lines in [pgbouncer] are commented out (kept
 * visible for whoever reads the file) and the rig's values are set right after the section header.
 */
export function iniForRig(ini: string, rigKeys: Readonly<Record<string, string>>): string {
  if (/^\s*%include\b/m.test(ini)) {
    throw new Error("the pgbouncer.ini given to startPgBouncer uses %include; pass the ini with its includes inlined");
  }
  const rigBlock = [
    "; set by local/runtime: this PgBouncer listens on loopback with its files in a scratch directory",
    ...Object.entries(rigKeys).map(([key, value]) => `${key} = ${value}`),
  ];
  const out: string[] = [];
  let section = "";
  let placed = false;
  for (const line of ini.split("\n")) {
    const header = /^\s*\[([^\]]+)\]\s*$/.exec(line);
    if (header) {
      section = header[1].trim().toLowerCase();
      out.push(line);
      if (section === "pgbouncer" && !placed) {
        out.push(...rigBlock);
        placed = true;
      }
      continue;
    }
    const key = /^\s*([A-Za-z_][\w.]*)\s*=/.exec(line)?.[1].toLowerCase();
    if (section === "pgbouncer" && key !== undefined && key in rigKeys) out.push(`; replaced by local/runtime: ${line.trim()}`);
    else out.push(line);
  }
  if (!placed) out.push("", "[pgbouncer]", ...rigBlock);
  return `${out.join("\n").replace(/\n*$/, "")}\n`;
}
